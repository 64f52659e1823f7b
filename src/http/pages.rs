//! The pages people use (home, viewer, OBS overlay, host console) and their scripts, styles
//! and vendored hls.js, embedded in the binary so that `barrage serve` works from any folder.
//!
//! Every answer carries a strict Content-Security-Policy: scripts only from this origin (no
//! inline code), media and workers also from `blob:` (hls.js feeds the video through Media
//! Source and runs its demuxer in a blob worker), and fetches and sockets to this origin, any
//! `ws:`/`wss:` and the configured CDN bases.

use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::config::Config;
use crate::state::AppState;

/// One embedded file under `static/`.
struct Asset {
    /// Path below `static/` (also its URL below `/static/`).
    path: &'static str,
    body: &'static [u8],
    content_type: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Embeds `static/<path>` with its content type.
macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/static/", $path)),
            content_type: $content_type,
        }
    };
}

/// Everything under `static/` that is served; a file not listed here is not in the binary.
static ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("room.html", HTML),
    asset!("overlay.html", HTML),
    asset!("host.html", HTML),
    asset!("favicon.svg", SVG),
    asset!("css/base.css", CSS),
    asset!("css/home.css", CSS),
    asset!("css/room.css", CSS),
    asset!("css/danmaku.css", CSS),
    asset!("css/overlay.css", CSS),
    asset!("css/host.css", CSS),
    asset!("css/moderator.css", CSS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/format.js", JS),
    asset!("js/danmaku-lanes.js", JS),
    asset!("js/danmaku-stage.js", JS),
    asset!("js/seq-filter.js", JS),
    asset!("js/ws-client.js", JS),
    asset!("js/cdn-poller.js", JS),
    asset!("js/replay.js", JS),
    asset!("js/player.js", JS),
    asset!("js/live-watch.js", JS),
    asset!("js/sync-gate.js", JS),
    asset!("js/stream-danmaku.js", JS),
    asset!("js/chat-list.js", JS),
    asset!("js/guest.js", JS),
    asset!("js/home.js", JS),
    asset!("js/room.js", JS),
    asset!("js/overlay.js", JS),
    asset!("js/host.js", JS),
    asset!("js/host-moderation.js", JS),
    asset!("js/host-access.js", JS),
    asset!("js/host-audit.js", JS),
    asset!("js/host-charts.js", JS),
    asset!("js/host-health.js", JS),
    asset!("js/host-replays.js", JS),
    asset!("js/charts.js", JS),
    asset!("js/moderator-actions.js", JS),
    asset!("vendor/hls.min.js", JS),
    asset!("vendor/LICENSE-hls.js.txt", TEXT),
    asset!("vendor/mpegts.js", JS),
    asset!("vendor/LICENSE-mpegts.js.txt", TEXT),
    asset!("vendor/README.md", TEXT),
];

/// Routes for the pages and `/static/...`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/rooms/{room}", get(viewer))
        .route("/overlay/{room}", get(overlay))
        .route("/host", get(host))
        .route("/favicon.ico", get(favicon))
        .route("/static/{*path}", get(static_file))
}

/// Which kind of page an answer is, for `frame-ancestors`: the host console may not be framed
/// by anyone (clickjacking of admin actions); the overlay may be embedded anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    SameOrigin,
    Nowhere,
    Anywhere,
}

async fn home(State(config): State<Arc<Config>>, headers: HeaderMap) -> Response {
    serve("index.html", &config, &headers, Framing::SameOrigin)
}

async fn viewer(
    State(config): State<Arc<Config>>,
    Path(_room): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve("room.html", &config, &headers, Framing::SameOrigin)
}

async fn overlay(
    State(config): State<Arc<Config>>,
    Path(_room): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve("overlay.html", &config, &headers, Framing::Anywhere)
}

async fn host(State(config): State<Arc<Config>>, headers: HeaderMap) -> Response {
    serve("host.html", &config, &headers, Framing::Nowhere)
}

async fn favicon(State(config): State<Arc<Config>>, headers: HeaderMap) -> Response {
    serve("favicon.svg", &config, &headers, Framing::SameOrigin)
}

async fn static_file(
    State(config): State<Arc<Config>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve(&path, &config, &headers, Framing::SameOrigin)
}

/// Strong ETags of the embedded files (FNV-1a 64 of the bytes), computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{:016x}\"", fnv1a(a.body)))
            .collect()
    })
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Answers one embedded file with its headers (304 when the client has this version).
fn serve(path: &str, config: &Config, headers: &HeaderMap, framing: Framing) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store")],
            "not found\n",
        )
            .into_response();
    };
    let asset = &ASSETS[i];
    let etag = &etags()[i];
    // Pages are revalidated every time (cheap: 304); scripts and styles may be reused briefly.
    let cache = if asset.content_type == HTML {
        "no-cache"
    } else {
        "public, max-age=60"
    };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let csp = content_security_policy(config, framing);
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, asset.content_type)],
            asset.body.to_vec(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The origins (`scheme://host[:port]`) of the configured CDN bases and public URL, which the
/// pages may fetch danmaku files and HLS from.
fn extra_origins(config: &Config) -> Vec<String> {
    let mut origins: Vec<String> = config
        .cdn
        .bases
        .iter()
        .map(|b| b.url.as_str())
        .chain(std::iter::once(config.http.public_url.as_str()))
        .filter_map(|u| url::Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .collect();
    origins.sort();
    origins.dedup();
    origins
}

/// The Content-Security-Policy header value for a page of this service.
fn content_security_policy(config: &Config, framing: Framing) -> String {
    let extra = extra_origins(config)
        .into_iter()
        .fold(String::new(), |acc, o| acc + " " + &o);
    let frame_ancestors = match framing {
        Framing::SameOrigin => "'self'",
        Framing::Nowhere => "'none'",
        Framing::Anywhere => "*",
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         media-src 'self' blob:{extra}; worker-src 'self' blob:; \
         connect-src 'self' ws: wss:{extra}; font-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors {frame_ancestors}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_toml_str("").expect("defaults")
    }

    #[test]
    fn every_asset_has_a_unique_path_and_a_body() {
        let mut paths: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), ASSETS.len());
        assert!(ASSETS.iter().all(|a| !a.body.is_empty()));
    }

    #[test]
    fn every_page_module_is_embedded() {
        // A module left out is a 404 in the browser, and every page importing it stops.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/static/js");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".js") {
                let path = format!("js/{name}");
                assert!(
                    ASSETS.iter().any(|a| a.path.ends_with(&path)),
                    "static/{path} is not in ASSETS"
                );
            }
        }
    }

    #[test]
    fn csp_forbids_inline_script_and_names_cdn_origins() {
        let mut c = config();
        c.cdn.bases = vec![
            crate::config::CdnBase {
                url: "https://cdn.example.com/live/".into(),
                weight: 2,
            },
            crate::config::CdnBase {
                url: "not a url".into(),
                weight: 1,
            },
        ];
        let csp = content_security_policy(&c, Framing::SameOrigin);
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe-inline"));
        assert!(csp.contains("connect-src 'self' ws: wss: https://cdn.example.com;"));
        assert!(csp.contains("media-src 'self' blob: https://cdn.example.com;"));
        assert!(!csp.contains("not a url"));
    }

    #[test]
    fn host_console_cannot_be_framed() {
        let csp = content_security_policy(&config(), Framing::Nowhere);
        assert!(csp.ends_with("frame-ancestors 'none'"));
    }

    #[test]
    fn etag_is_stable_per_content() {
        assert_eq!(fnv1a(b"abc"), fnv1a(b"abc"));
        assert_ne!(fnv1a(b"abc"), fnv1a(b"abd"));
    }
}
