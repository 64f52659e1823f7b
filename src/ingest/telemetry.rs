//! The ingest metrics, in one place so names and labels stay consistent.

/// Where the connection limits count open RTMP connections (`[rtmp]` keys, gauge
/// `barrage_rtmp_connections`).
pub const CONNECTION_SCOPE: crate::conn_limits::LimitScope = crate::conn_limits::LimitScope {
    section: "rtmp",
    gauge: "barrage_rtmp_connections",
};

/// A connection closed at accept (`max_connections`, `max_connections_per_ip`).
pub fn connection_refused(reason: &'static str) {
    metrics::counter!("barrage_rtmp_connections_refused_total", "reason" => reason).increment(1);
}

/// Bytes read from publishers (handshake included); a session takes the handle once and
/// counts every read on it.
pub fn bytes_received() -> metrics::Counter {
    metrics::counter!("barrage_ingest_bytes_total")
}

/// A publish was accepted by the gate.
pub fn publish_started() {
    metrics::counter!("barrage_ingest_publishes_total").increment(1);
}

/// A publish refused, by `PublishRefusal::reason()`.
pub fn publish_refused(reason: &'static str) {
    metrics::counter!("barrage_ingest_publish_refusals_total", "reason" => reason).increment(1);
}

/// A connection closed for breaking the protocol or our bounds, by kind.
pub fn protocol_error(kind: &'static str) {
    metrics::counter!("barrage_rtmp_protocol_errors_total", "kind" => kind).increment(1);
}
