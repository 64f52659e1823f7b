//! Typed configuration: the embedded `config/default.toml`, then an optional file, then
//! `BARRAGE_*` environment overrides, merged as TOML values and checked once at start.
//!
//! Merging values before deserialising lets a file give only some keys, and lets an error name
//! the exact key that is wrong (`http.listen: invalid socket address syntax`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The defaults, compiled in so `barrage serve` works from any folder.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// A configuration that could not be loaded; the message names the file or key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config key `{key}`: {message}")]
    Key { key: String, message: String },
}

/// Every setting; see config/default.toml for what each one means.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub log: String,
    pub shutdown_grace_s: u64,
    pub rtmp: RtmpConfig,
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    pub hls: HlsConfig,
    pub flv: FlvConfig,
    pub chat: ChatConfig,
    pub cdn: CdnConfig,
    pub db: DbConfig,
    pub cluster: ClusterConfig,
    pub thumbnails: ThumbnailConfig,
    #[serde(default)]
    pub rooms: Vec<RoomConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtmpConfig {
    pub listen: SocketAddr,
    pub app: String,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_unauthenticated: usize,
    pub handshake_timeout_s: u64,
    pub idle_timeout_s: u64,
    pub max_chunk_size: u32,
    pub max_message_bytes: u32,
    pub max_chunk_streams: usize,
    pub gather_ms: u64,
    pub reconnect_grace_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub public_url: String,
    pub max_body_bytes: usize,
    pub cors_origins: Vec<String>,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_unauthenticated: usize,
    pub request_timeout_s: u64,
    pub idle_timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub url: String,
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub allow_http: bool,
    pub request_timeout_s: u64,
    /// Per session: media held in memory while the store does not take it (MiB).
    pub spool_memory_mb: u64,
    /// Per session: media spilled to `<data_dir>/spool` past the memory part (MiB; 0: none).
    pub spool_disk_mb: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub token_secret: String,
    pub admin_key: String,
    pub guest_token_ttl_s: u64,
    pub guest_tokens: bool,
    pub guest_tokens_per_ip_per_min: u32,
    pub guest_tokens_per_min: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HlsConfig {
    pub target_segment_s: f64,
    pub window_segments: usize,
    pub max_segment_bytes: usize,
    pub max_segment_wall_s: u64,
    /// LL-HLS part target in ms (0: no parts; see `crate::hls::low_latency`).
    pub part_ms: u64,
}

/// `[flv]`: the live broadcast as HTTP-FLV (`GET /live/{room}.flv`, see `crate::live_flv`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlvConfig {
    pub enabled: bool,
    /// Tags a room keeps for its FLV viewers (one ring shared by all); a viewer further behind
    /// skips to the next keyframe.
    pub queue_tags: usize,
}

/// `[thumbnails]`: stills of live rooms and replay posters (see `crate::thumbnails`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThumbnailConfig {
    pub enabled: bool,
    /// The ffmpeg program (a name on PATH or a path).
    pub ffmpeg: String,
    /// Seconds between two stills of a room.
    pub interval_s: u64,
    /// Still height in pixels (width keeps the aspect).
    pub height: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    pub tick_ms: u64,
    pub budget: u32,
    pub ratio_system: f64,
    pub ratio_gift_high: f64,
    pub ratio_gift_low: f64,
    pub ratio_danmaku: f64,
    pub gift_high_threshold: u64,
    pub danmaku_queue: usize,
    pub gift_low_queue: usize,
    pub max_age_ms: u64,
    pub backlog_order: BacklogOrder,
    pub conn_rate_per_s: f64,
    pub conn_burst: u32,
    pub user_rate_per_s: f64,
    pub user_burst: u32,
    pub room_rate_per_s: u32,
    pub node_rate_per_s: u32,
    pub max_text_chars: usize,
    pub blocked_words: Vec<String>,
    pub history: usize,
    pub socket_backlog: usize,
    pub slow_policy: SlowPolicy,
    pub idle_timeout_s: u64,
    pub max_frame_bytes: usize,
    pub read_needs_token: bool,
    pub max_position_lag_ms: u64,
    pub priority_queue_max: usize,
}

/// Which waiting danmaku and low gifts a tick delivers when more wait than it may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BacklogOrder {
    /// The newest first (in arrival order among themselves): under overload viewers see what
    /// was just said, and older items wait for a quieter tick or go stale.
    Newest,
    /// The oldest first (strict FIFO): every item waits its turn, up to `max_age_ms`.
    Oldest,
}

/// What happens to a socket that cannot keep up with its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowPolicy {
    /// Drop the backlog, tell the client the seq range it missed, go on with the newest.
    Skip,
    /// Close the socket; the client reconnects and resumes from history.
    Close,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdnConfig {
    pub period_ms: u64,
    pub bases: Vec<CdnBase>,
    pub max_pending: usize,
}

/// One CDN (or origin) base URL and its share of clients in weighted round robin.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CdnBase {
    pub url: String,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbConfig {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub redis_url: String,
    pub node_id: String,
    pub key_prefix: String,
    pub advertise_url: String,
    pub lease_ms: u64,
    pub report_ms: u64,
    pub assignments_per_node: u32,
    pub connect_urls: usize,
}

/// A room declared in config; upserted into the database at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomConfig {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub stream_key: String,
    /// The room's host key; empty: generated at first start and kept in secrets.toml.
    #[serde(default)]
    pub host_key: String,
    /// Whether the host key may post gifts; absent: as stored (the API can change it).
    #[serde(default)]
    pub host_gifts: Option<bool>,
}

impl Config {
    /// Loads defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(file, &env)
    }

    /// Like [`Config::load`] with an explicit environment (tests use this).
    pub fn load_with_env(
        file: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut merged = parse_toml(DEFAULT_TOML, Path::new("<embedded default.toml>"))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let overlay = parse_toml(&text, path)?;
            merge(&mut merged, overlay);
        }
        apply_env(&mut merged, env)?;
        let config: Config =
            serde_path_to_error::deserialize(merged).map_err(|e| ConfigError::Key {
                key: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML text as an overlay on the defaults (no file, no environment).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let mut merged = parse_toml(DEFAULT_TOML, Path::new("<embedded default.toml>"))?;
        merge(&mut merged, parse_toml(text, Path::new("<string>"))?);
        let config: Config =
            serde_path_to_error::deserialize(merged).map_err(|e| ConfigError::Key {
                key: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the relations serde cannot: ranges, non-empty names, unique rooms.
    fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &str, message: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::Key {
                key: key.to_string(),
                message: message.into(),
            })
        }
        if !(1..=600).contains(&self.shutdown_grace_s) {
            return bad("shutdown_grace_s", "must be between 1 and 600");
        }
        if self.rtmp.app.is_empty() || self.rtmp.app.contains('/') {
            return bad("rtmp.app", "must be a non-empty name without '/'");
        }
        if !(128..=16 * 1024 * 1024).contains(&self.rtmp.max_chunk_size) {
            return bad("rtmp.max_chunk_size", "must be between 128 and 16777216");
        }
        if self.rtmp.max_message_bytes < 1024 {
            return bad("rtmp.max_message_bytes", "must be at least 1024");
        }
        if self.rtmp.max_connections == 0 || self.rtmp.max_chunk_streams == 0 {
            return bad("rtmp.max_connections", "limits must be at least 1");
        }
        if self.rtmp.max_connections_per_ip == 0 {
            return bad("rtmp.max_connections_per_ip", "must be at least 1");
        }
        if self.rtmp.max_unauthenticated == 0 {
            return bad("rtmp.max_unauthenticated", "must be at least 1");
        }
        if self.http.max_unauthenticated == 0 {
            return bad("http.max_unauthenticated", "must be at least 1");
        }
        if self.rtmp.gather_ms > 500 {
            return bad(
                "rtmp.gather_ms",
                "must be at most 500 (it delays the live edge by up to that much)",
            );
        }
        if self.rtmp.reconnect_grace_s > 3600 {
            return bad(
                "rtmp.reconnect_grace_s",
                "must be at most 3600 (0 ends a broadcast when its publisher leaves)",
            );
        }
        if self.http.max_connections == 0 {
            return bad("http.max_connections", "must be at least 1");
        }
        if self.http.max_connections_per_ip == 0 {
            return bad("http.max_connections_per_ip", "must be at least 1");
        }
        if self.http.request_timeout_s == 0 || self.http.idle_timeout_s == 0 {
            return bad(
                "http.request_timeout_s",
                "request_timeout_s and idle_timeout_s must be at least 1",
            );
        }
        if self.http.max_body_bytes == 0 {
            return bad("http.max_body_bytes", "must be at least 1");
        }
        if !(16..=65_536).contains(&self.flv.queue_tags) {
            return bad("flv.queue_tags", "must be between 16 and 65536");
        }
        if !(1..=3600).contains(&self.thumbnails.interval_s) {
            return bad("thumbnails.interval_s", "must be between 1 and 3600");
        }
        if !(16..=2160).contains(&self.thumbnails.height) {
            return bad("thumbnails.height", "must be between 16 and 2160");
        }
        if !(self.hls.target_segment_s >= 0.5 && self.hls.target_segment_s <= 60.0) {
            return bad("hls.target_segment_s", "must be between 0.5 and 60");
        }
        if self.hls.part_ms != 0 && !(100..=2000).contains(&self.hls.part_ms) {
            return bad("hls.part_ms", "must be 0 (off) or between 100 and 2000");
        }
        if self.hls.part_ms as f64 >= self.hls.target_segment_s * 1000.0 {
            return bad("hls.part_ms", "must be shorter than hls.target_segment_s");
        }
        if self.hls.window_segments < 2 {
            return bad("hls.window_segments", "must be at least 2");
        }
        if self.hls.max_segment_bytes < 1 << 20 {
            return bad("hls.max_segment_bytes", "must be at least 1048576");
        }
        if (self.hls.max_segment_wall_s as f64) < self.hls.target_segment_s * 3.0 {
            return bad(
                "hls.max_segment_wall_s",
                "must be at least 3 times hls.target_segment_s",
            );
        }
        if self.chat.tick_ms == 0 || self.chat.tick_ms > 10_000 {
            return bad("chat.tick_ms", "must be between 1 and 10000");
        }
        if self.chat.budget == 0 {
            return bad("chat.budget", "must be at least 1");
        }
        for (key, r) in [
            ("chat.ratio_system", self.chat.ratio_system),
            ("chat.ratio_gift_high", self.chat.ratio_gift_high),
            ("chat.ratio_gift_low", self.chat.ratio_gift_low),
            ("chat.ratio_danmaku", self.chat.ratio_danmaku),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return bad(key, "must be between 0 and 1");
            }
        }
        if self.chat.ratio_system
            + self.chat.ratio_gift_high
            + self.chat.ratio_gift_low
            + self.chat.ratio_danmaku
            <= 0.0
        {
            return bad("chat.ratio_danmaku", "the four ratios cannot all be 0");
        }
        if self.chat.user_rate_per_s <= 0.0 || self.chat.user_burst == 0 {
            return bad("chat.user_rate_per_s", "rate and burst must be positive");
        }
        if self.chat.conn_rate_per_s <= 0.0 || self.chat.conn_burst == 0 {
            return bad("chat.conn_rate_per_s", "rate and burst must be positive");
        }
        if self.chat.priority_queue_max == 0 {
            return bad("chat.priority_queue_max", "must be at least 1");
        }
        if self.chat.room_rate_per_s == 0 || self.chat.node_rate_per_s == 0 {
            return bad("chat.room_rate_per_s", "must be at least 1");
        }
        if self.chat.history == 0 || self.chat.socket_backlog == 0 {
            return bad(
                "chat.history",
                "history and socket_backlog must be at least 1",
            );
        }
        if self.chat.max_frame_bytes < 64 {
            return bad("chat.max_frame_bytes", "must be at least 64");
        }
        if self.cdn.period_ms < 100 {
            return bad("cdn.period_ms", "must be at least 100");
        }
        for (i, base) in self.cdn.bases.iter().enumerate() {
            if url::Url::parse(&base.url).is_err() {
                return bad(&format!("cdn.bases[{i}].url"), "is not a URL");
            }
        }
        if !self.http.public_url.is_empty() && url::Url::parse(&self.http.public_url).is_err() {
            return bad("http.public_url", "is not a URL");
        }
        if !self.cluster.redis_url.is_empty() {
            let ok = url::Url::parse(&self.cluster.redis_url)
                .is_ok_and(|u| matches!(u.scheme(), "redis" | "rediss" | "redis+unix"));
            if !ok {
                return bad(
                    "cluster.redis_url",
                    "must be redis://host:port[/db] (or rediss://)",
                );
            }
        }
        if self.cluster.key_prefix.is_empty()
            || self.cluster.key_prefix.contains(char::is_whitespace)
        {
            return bad(
                "cluster.key_prefix",
                "must be a non-empty name without spaces",
            );
        }
        if !(300..=60_000).contains(&self.cluster.lease_ms) {
            return bad("cluster.lease_ms", "must be between 300 and 60000");
        }
        if !(100..=60_000).contains(&self.cluster.report_ms) {
            return bad("cluster.report_ms", "must be between 100 and 60000");
        }
        if self.cluster.assignments_per_node == 0 || self.cluster.connect_urls == 0 {
            return bad(
                "cluster.assignments_per_node",
                "assignments and connect_urls must be at least 1",
            );
        }
        if !self.cluster.advertise_url.is_empty()
            && url::Url::parse(&self.cluster.advertise_url).is_err()
        {
            return bad("cluster.advertise_url", "is not a URL");
        }
        if self.auth.guest_tokens_per_ip_per_min == 0 || self.auth.guest_tokens_per_min == 0 {
            return bad(
                "auth.guest_tokens_per_ip_per_min",
                "guest token limits must be at least 1 (switch the endpoint off with auth.guest_tokens = false)",
            );
        }
        for (key, value) in [
            ("auth.token_secret", &self.auth.token_secret),
            ("auth.admin_key", &self.auth.admin_key),
        ] {
            // Empty is fine: a random one is generated and kept in secrets.toml.
            if let Some(why) = (!value.is_empty())
                .then(|| crate::secret_strength::weakness(value))
                .flatten()
            {
                return bad(key, why);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, room) in self.rooms.iter().enumerate() {
            if !crate::rooms::valid_room_id(&room.id) {
                return bad(
                    &format!("rooms[{i}].id"),
                    "must be 1-64 characters of a-z, 0-9, '-' or '_'",
                );
            }
            if !seen.insert(room.id.as_str()) {
                return bad(&format!("rooms[{i}].id"), format!("room {} twice", room.id));
            }
            if !room.host_key.is_empty() && room.host_key.trim().chars().count() < 16 {
                return bad(
                    &format!("rooms[{i}].host_key"),
                    "must be at least 16 characters (or empty: generated)",
                );
            }
        }
        Ok(())
    }

    /// The database URL, defaulting to SQLite under the data folder.
    pub fn db_url(&self) -> String {
        if self.db.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("barrage.db").display())
        } else {
            self.db.url.clone()
        }
    }
}

fn parse_toml(text: &str, path: &Path) -> Result<toml::Value, ConfigError> {
    text.parse::<toml::Table>()
        .map(toml::Value::Table)
        .map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Overlays `over` on `base`: tables merge key by key, anything else (arrays included) replaces.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Applies `BARRAGE_SECTION__KEY=value` (and `BARRAGE_KEY` for top-level keys).
fn apply_env(merged: &mut toml::Value, env: &[(String, String)]) -> Result<(), ConfigError> {
    let overrides: BTreeMap<&str, &str> = env
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("BARRAGE_").map(|rest| (rest, v.as_str())))
        .collect();
    for (name, raw) in overrides {
        let path: Vec<String> = name.split("__").map(|p| p.to_ascii_lowercase()).collect();
        let key = path.join(".");
        let value = env_value(raw);
        let toml::Value::Table(root) = merged else {
            unreachable!("the merged config is always a table")
        };
        let known_section = match path.as_slice() {
            [top] => root.contains_key(top.as_str()),
            [section, _] => root.get(section.as_str()).is_some_and(|v| v.is_table()),
            _ => false,
        };
        if !known_section {
            return Err(ConfigError::Key {
                key: format!("{key} (from environment BARRAGE_{name})"),
                message: "no such setting".to_string(),
            });
        }
        match path.as_slice() {
            [top] => {
                root.insert(top.clone(), value);
            }
            [section, field] => {
                if let Some(toml::Value::Table(t)) = root.get_mut(section.as_str()) {
                    t.insert(field.clone(), value);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads an environment value as TOML when it is a number, boolean or array, else as a string.
fn env_value(raw: &str) -> toml::Value {
    let probe = format!("v = {raw}");
    match probe.parse::<toml::Table>() {
        Ok(mut t) => match t.remove("v") {
            Some(
                v @ (toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Boolean(_)
                | toml::Value::Array(_)),
            ) => v,
            _ => toml::Value::String(raw.to_string()),
        },
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_and_match_the_design() {
        let c = Config::load_with_env(None, &[]).unwrap();
        assert_eq!(c.rtmp.listen.to_string(), "0.0.0.0:1935");
        assert_eq!(c.http.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.chat.tick_ms, 100);
        assert_eq!(c.cdn.period_ms, 1000);
        assert_eq!(c.rtmp.reconnect_grace_s, 10);
        assert_eq!(c.rooms.len(), 1);
        assert_eq!(c.rooms[0].id, "demo");
        assert!(c.db_url().starts_with("sqlite://"));
    }

    #[test]
    fn environment_overrides_keys_with_types() {
        let c = Config::load_with_env(
            None,
            &env(&[
                ("BARRAGE_HTTP__LISTEN", "127.0.0.1:18080"),
                ("BARRAGE_CHAT__BUDGET", "30"),
                ("BARRAGE_CHAT__READ_NEEDS_TOKEN", "true"),
                ("BARRAGE_DATA_DIR", "/tmp/x"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:18080");
        assert_eq!(c.chat.budget, 30);
        assert!(c.chat.read_needs_token);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = Config::load_with_env(None, &env(&[("BARRAGE_RTMP__LISTEN", "nonsense")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rtmp.listen"), "{err}");
        let err = Config::from_toml_str("[hls]\nwindow_segments = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hls.window_segments"), "{err}");
        let err = Config::from_toml_str("[rtmp]\ngather_ms = 5000\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rtmp.gather_ms"), "{err}");
        let err = Config::from_toml_str("[http]\nlisen = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        let err = Config::load_with_env(None, &env(&[("BARRAGE_NOPE__X", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.x"), "{err}");
    }

    #[test]
    fn a_file_may_give_only_some_keys() {
        let c = Config::from_toml_str(
            "[hls]\ntarget_segment_s = 4.0\n[[rooms]]\nid = \"a\"\n[[rooms]]\nid = \"b\"\n",
        )
        .unwrap();
        assert_eq!(c.hls.target_segment_s, 4.0);
        assert_eq!(c.hls.window_segments, 6);
        assert_eq!(c.rooms.len(), 2);
        let err = Config::from_toml_str("[[rooms]]\nid = \"a\"\n[[rooms]]\nid = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rooms[1].id"), "{err}");
        let err = Config::from_toml_str("[[rooms]]\nid = \"a\"\nhost_key = \"short\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rooms[0].host_key"), "{err}");
        let c = Config::from_toml_str("[[rooms]]\nid = \"a\"\nhost_gifts = true\n").unwrap();
        assert_eq!(c.rooms[0].host_gifts, Some(true));
    }

    #[test]
    fn a_placeholder_or_short_secret_is_refused_naming_its_key() {
        for (var, key) in [
            ("BARRAGE_AUTH__ADMIN_KEY", "auth.admin_key"),
            ("BARRAGE_AUTH__TOKEN_SECRET", "auth.token_secret"),
        ] {
            for value in ["change-me-admin-key", "change-me-token-secret", "tooshort"] {
                let err = Config::load_with_env(None, &env(&[(var, value)]))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(key), "{value}: {err}");
            }
            Config::load_with_env(None, &env(&[(var, "Zt4kq9Lm2Xw8Rv5Nc7Pb")])).unwrap();
        }
    }
}
