//! Wall-clock time as barrage stores and sends it: milliseconds since the Unix epoch, the unit
//! of every `*_ms` time stamp in events, files, the database and the API.

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
