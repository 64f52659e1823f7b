//! Rooms API: create (returns the stream and host keys once), list (paged, public), get, and
//! the list of a room's broadcast sessions for replay. What a room's admin or host changes on
//! it (keys, closing, settings) is in `api_room_control`.

use std::sync::Arc;

use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::chat::ChatEngine;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::http::api_error::{ApiError, ApiJson};
use crate::http::caller::Caller;
use crate::http::live_status::{LiveStatus, LiveView};
use crate::http::public_base;
use crate::rights::Action;
use crate::rooms::live::Notice;
use crate::rooms::{AuditLog, CatalogError, RoomCatalog, RoomRecord};
use crate::state::{AppState, RtmpBound};
use crate::storage::Storage;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/rooms", get(list_rooms).post(create_room))
        .route("/api/rooms/{room}", get(get_room))
        .route("/api/rooms/{room}/sessions", get(list_sessions))
        .route(
            "/api/rooms/{room}/sessions/{session}/danmaku.xml",
            get(session_danmaku_xml),
        )
}

/// What the room routes use: the catalog (writes, and the room directory it keeps), who is
/// live and online, where OBS connects, and the store for session exports.
#[derive(Clone)]
pub(super) struct RoomsApi {
    pub(super) config: Arc<Config>,
    pub(super) catalog: Arc<RoomCatalog>,
    pub(super) audit: Arc<AuditLog>,
    /// Who is live, on any node.
    live: LiveStatus,
    pub(super) chat: Arc<ChatEngine>,
    cluster: Option<Arc<Cluster>>,
    rtmp_bound: RtmpBound,
    storage: Arc<Storage>,
}

impl FromRef<AppState> for RoomsApi {
    fn from_ref(state: &AppState) -> RoomsApi {
        RoomsApi {
            config: state.config.clone(),
            catalog: state.catalog.clone(),
            audit: state.audit.clone(),
            live: LiveStatus::from_ref(state),
            chat: state.chat.clone(),
            cluster: state.cluster.clone(),
            rtmp_bound: state.rtmp_bound.clone(),
            storage: state.storage.clone(),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> ApiError {
        match &e {
            CatalogError::BadId(_) => ApiError::bad_request("bad_room_id", e.to_string()),
            CatalogError::BadTitle => ApiError::bad_request("bad_title", e.to_string()),
            CatalogError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "room_exists", e.to_string())
            }
            CatalogError::NotFound(_) => ApiError::not_found(e.to_string()),
            CatalogError::Db(db) => {
                tracing::error!(error = %db, "room write failed");
                ApiError::internal("database unavailable; nothing was changed")
            }
        }
    }
}

/// A room as the API shows it (never its key).
#[derive(Debug, Serialize)]
pub struct RoomView {
    pub id: String,
    pub title: String,
    pub closed: bool,
    pub created_ms: i64,
    /// Whether the room's host key may post gifts.
    pub host_gifts: bool,
    /// Present while the room is on air (on any node; `node` names the one taking it in).
    pub live: Option<LiveView>,
    /// Recent notices for the room's host (refused codecs, reconnects, recoveries), oldest
    /// first.
    pub notices: Vec<Notice>,
    /// Viewers connected over WebSocket (on every node of a cluster).
    pub online: u64,
    pub hls_url: String,
    /// The room's latest still while it is live (`crate::thumbnails`; None until the first
    /// is stored, or when thumbnails are off).
    pub thumbnail_url: Option<String>,
    /// This node's clock when it answered (unix ms): pages compare it with theirs to tell how
    /// far behind live their picture is (`live.first_frame_ms` is on this clock).
    pub server_ms: i64,
}

pub(super) fn view(room: RoomRecord, state: &RoomsApi, base: &str) -> RoomView {
    let live = state.live.get(&room.id);
    RoomView {
        hls_url: format!("{base}/hls/{}/live.m3u8", room.id),
        thumbnail_url: live.as_ref().and_then(|l| l.info.thumbnail_ms).map(|at| {
            format!(
                "{base}/{}?t={at}",
                crate::thumbnails::room_still_key(&room.id)
            )
        }),
        live,
        notices: state.live.notices(&room.id),
        online: match &state.cluster {
            Some(cluster) => cluster.online(&room.id),
            None => state.chat.online(&room.id),
        },
        id: room.id,
        title: room.title,
        closed: room.closed,
        created_ms: room.created_ms,
        host_gifts: room.host_gifts,
        server_ms: crate::clock::now_ms(),
    }
}

/// What to type into OBS: Settings > Stream > Custom.
#[derive(Debug, Serialize)]
pub struct ObsSettings {
    pub server: String,
    pub stream_key: String,
}

pub(super) fn obs(state: &RoomsApi, headers: &HeaderMap, key: String) -> ObsSettings {
    let base = public_base(&state.config, headers);
    let host = url::Url::parse(&base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "HOST".to_string());
    ObsSettings {
        server: format!(
            "rtmp://{host}:{}/{}",
            state
                .rtmp_bound
                .get()
                .map_or(state.config.rtmp.listen.port(), |a| a.port()),
            state.config.rtmp.app
        ),
        stream_key: key,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoom {
    #[serde(default)]
    id: Option<String>,
    title: String,
}

/// `POST /api/rooms` body checks, without the database: what the fuzz harness runs on any bytes.
#[cfg(feature = "testing")]
pub(crate) fn check_create_room(body: &[u8]) -> Result<(), ApiError> {
    let body: CreateRoom = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("bad_json", e.to_string()))?;
    let id = body.id.unwrap_or_else(|| "room-fuzz".to_string());
    crate::rooms::check_new_room(&id, &body.title)?;
    Ok(())
}

/// A new room's keys, each shown this once.
#[derive(Debug, Serialize)]
struct CreatedAnswer {
    room: RoomView,
    stream_key: String,
    obs: ObsSettings,
    /// Opens this room's own API calls and the host console (`/host`) for its host.
    host_key: String,
}

async fn create_room(
    State(state): State<RoomsApi>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateRoom>,
) -> Result<impl IntoResponse, ApiError> {
    caller.allow_global(Action::CreateRoom)?;
    let id = body.id.unwrap_or_else(|| {
        format!(
            "room-{}",
            crate::secrets::random_secret(8).to_ascii_lowercase()
        )
    });
    let created = state.catalog.create(&id, &body.title).await?;
    rooms_changed(&state);
    let base = public_base(&state.config, &headers);
    let answer = CreatedAnswer {
        obs: obs(&state, &headers, created.stream_key.clone()),
        room: view(created.room, &state, &base),
        stream_key: created.stream_key,
        host_key: created.host_key,
    };
    Ok((StatusCode::CREATED, Json(answer)))
}

#[derive(Debug, Deserialize)]
pub(super) struct Page {
    #[serde(default = "first_page")]
    pub(super) page: usize,
    #[serde(default = "default_per_page")]
    pub(super) per_page: usize,
    /// Only rooms on air.
    #[serde(default)]
    live: bool,
}

fn first_page() -> usize {
    1
}
fn default_per_page() -> usize {
    20
}

/// Highest page number asked for: past it `(page - 1) * per_page` as an SQL OFFSET would
/// overflow (a 500 on PostgreSQL, a panic in debug builds) long before it found a row.
const MAX_PAGE: usize = 1_000_000;

pub(super) fn check_page(p: &Page) -> Result<(), ApiError> {
    if p.page == 0 || p.page > MAX_PAGE || p.per_page == 0 || p.per_page > 100 {
        return Err(ApiError::bad_request(
            "bad_page",
            format!("page is 1 to {MAX_PAGE}; per_page is 1 to 100"),
        ));
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct RoomPage {
    rooms: Vec<RoomView>,
    page: usize,
    per_page: usize,
    total: usize,
}

async fn list_rooms(
    State(state): State<RoomsApi>,
    headers: HeaderMap,
    Query(p): Query<Page>,
) -> Result<Json<RoomPage>, ApiError> {
    check_page(&p)?;
    let base = public_base(&state.config, &headers);
    let all: Vec<RoomRecord> = state
        .catalog
        .rooms
        .list()
        .into_iter()
        .filter(|r| !r.closed && (!p.live || state.live.is_live(&r.id)))
        .collect();
    let total = all.len();
    let rooms = all
        .into_iter()
        .skip((p.page - 1) * p.per_page)
        .take(p.per_page)
        .map(|r| view(r, &state, &base))
        .collect();
    Ok(Json(RoomPage {
        rooms,
        page: p.page,
        per_page: p.per_page,
        total,
    }))
}

/// Tells the other nodes of a cluster to reload the rooms (they read the shared database).
pub(super) fn rooms_changed(state: &RoomsApi) {
    if let Some(cluster) = &state.cluster {
        cluster.announce_rooms_changed();
    }
}

pub(super) fn room_or_404(state: &RoomsApi, id: &str) -> Result<RoomRecord, ApiError> {
    state
        .catalog
        .rooms
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("no room {id}")))
}

async fn get_room(
    State(state): State<RoomsApi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    let room = room_or_404(&state, &id)?;
    let base = public_base(&state.config, &headers);
    Ok(Json(view(room, &state, &base)))
}

#[derive(Debug, Serialize)]
struct SessionView {
    #[serde(flatten)]
    row: crate::db::SessionRow,
    /// The session's playlist: EVENT while live, a complete VOD once ended.
    playlist_url: String,
    /// The session's danmaku in one file (`danmaku_key` under this base), once it ended.
    danmaku_url: Option<String>,
    /// The session as one MP4 file (`crate::download`).
    download_url: String,
    /// The replay's poster (the broadcast's last still; 404 when none was taken).
    poster_url: String,
    live: bool,
}

#[derive(Debug, Serialize)]
struct SessionPage {
    sessions: Vec<SessionView>,
    page: usize,
    per_page: usize,
    total: i64,
}

async fn list_sessions(
    State(state): State<RoomsApi>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Page>,
) -> Result<Json<SessionPage>, ApiError> {
    check_page(&p)?;
    room_or_404(&state, &id)?;
    let (rows, total) = state
        .catalog
        .db
        .list_sessions(&id, ((p.page - 1) * p.per_page) as i64, p.per_page as i64)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "listing sessions failed");
            ApiError::internal("database unavailable")
        })?;
    let base = public_base(&state.config, &headers);
    let live_session = state.live.get(&id).map(|l| l.info.session);
    let sessions = rows
        .into_iter()
        .map(|row| SessionView {
            playlist_url: format!("{base}/hls/{}/{}/index.m3u8", row.room, row.session),
            danmaku_url: row.danmaku_key.as_ref().map(|k| format!("{base}/{k}")),
            download_url: format!(
                "{base}/api/rooms/{}/sessions/{}/download.mp4",
                row.room, row.session
            ),
            poster_url: format!(
                "{base}/{}",
                crate::thumbnails::poster_key(&row.room, &row.session)
            ),
            live: live_session.as_deref() == Some(row.session.as_str()),
            row,
        })
        .collect();
    Ok(Json(SessionPage {
        sessions,
        page: p.page,
        per_page: p.per_page,
        total,
    }))
}

/// A session's danmaku as Bilibili-style XML, for common danmaku players.
async fn session_danmaku_xml(
    State(state): State<RoomsApi>,
    Path((room, session)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    room_or_404(&state, &room)?;
    crate::http::api_host::check_session_id(&session)?;
    use crate::cdn::export::ExportError;
    // Built once from the finished session's file and stored; never rebuilt per request.
    let xml = crate::cdn::xml_export::session_xml(&state.storage, &room, &session)
        .await
        .map_err(|e| match e {
            ExportError::NoSession { .. } => ApiError::not_found(e.to_string()),
            ExportError::NotFinished { .. } => {
                ApiError::new(StatusCode::CONFLICT, "session_not_finished", e.to_string())
            }
            other => {
                tracing::error!(error = %other, "danmaku export failed");
                ApiError::internal(other.to_string())
            }
        })?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/xml; charset=utf-8",
            ),
            (
                axum::http::header::CACHE_CONTROL,
                "public, max-age=31536000, immutable",
            ),
        ],
        xml,
    ))
}
