//! What a credential is and what was done with it: `GET /api/whoami` tells a caller which
//! credential it holds (the host console asks it to know whether it runs every room or one),
//! and `GET /api/rooms/{room}/audit` lists who moderated the room (admin and host).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::db::AuditRow;
use crate::http::api_error::ApiError;
use crate::http::api_rooms::{check_page, room_or_404, Page, RoomsApi};
use crate::http::caller::Caller;
use crate::rights::{Action, Credential};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/whoami", get(whoami))
        .route("/api/rooms/{room}/audit", get(audit))
}

/// A credential described: its kind, role, room and user.
#[derive(Debug, Serialize)]
struct WhoAmI {
    /// `admin_key`, `host_key` or `token`.
    credential: &'static str,
    role: &'static str,
    /// The one room it is for; absent for the admin key and tokens without a room claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<String>,
    /// A token's user.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
}

async fn whoami(caller: Caller) -> Result<Json<WhoAmI>, ApiError> {
    let Some(credential) = caller.credential else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a key or token as Authorization: Bearer <key or token>",
        ));
    };
    let kind = match &credential {
        Credential::AdminKey => "admin_key",
        Credential::HostKey { .. } => "host_key",
        Credential::Token { .. } => "token",
    };
    let user = match &credential {
        Credential::Token { user, .. } => Some(user.clone()),
        _ => None,
    };
    Ok(Json(WhoAmI {
        credential: kind,
        role: credential.role().as_str(),
        room: credential.room().map(str::to_string),
        user,
    }))
}

#[derive(Debug, Serialize)]
struct AuditPage {
    room: String,
    entries: Vec<AuditRow>,
    page: usize,
    per_page: usize,
    total: i64,
}

async fn audit(
    State(state): State<RoomsApi>,
    caller: Caller,
    Path(room): Path<String>,
    Query(p): Query<Page>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.allow(Action::ReadAudit, &room)?;
    check_page(&p)?;
    room_or_404(&state, &room)?;
    let (entries, total) = state
        .audit
        .page(&room, p.page, p.per_page)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "listing the audit log failed");
            ApiError::internal("database unavailable")
        })?;
    Ok(Json(AuditPage {
        room,
        entries,
        page: p.page,
        per_page: p.per_page,
        total,
    }))
}
