//! [`SessionHealth`]: a session's [`StreamWatch`] and what is done with its judgement once a
//! second: the writer puts it in the live status, each problem is logged once per broadcast
//! (when first found), and the gauge `barrage_stream_health_problem{room,code}` is 1 while the
//! problem lasts (0 after; every gauge of the session goes to 0 when it ends).

use std::collections::{BTreeMap, HashSet};

use super::judge::judge;
use super::{Problem, StreamWatch};
use crate::media::StreamMetadata;

/// The live-status fields one judgement sets.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthUpdate {
    pub frame_rate: Option<f64>,
    pub keyframe_interval_s: Option<f64>,
    pub problems: Vec<Problem>,
}

/// One session's health (see the module doc).
pub struct SessionHealth {
    room: String,
    watch: StreamWatch,
    /// Codes logged in this broadcast.
    logged: HashSet<String>,
    /// The gauges set so far, by code.
    gauges: BTreeMap<String, metrics::Gauge>,
}

impl SessionHealth {
    pub fn new(room: &str) -> SessionHealth {
        SessionHealth {
            room: room.to_string(),
            watch: StreamWatch::new(),
            logged: HashSet::new(),
            gauges: BTreeMap::new(),
        }
    }

    pub fn metadata(&mut self, meta: &StreamMetadata) {
        self.watch.metadata(meta);
    }

    pub fn video(&mut self, now_ms: u64, timestamp: u32, body: &[u8]) {
        self.watch.video(now_ms, timestamp, body);
    }

    pub fn audio(&mut self, now_ms: u64, timestamp: u32, body: &[u8]) {
        self.watch.audio(now_ms, timestamp, body);
    }

    /// Judges the stream at `now_ms` with the measured bitrate; logs new problems, sets the
    /// gauges, and returns what the live status shows.
    pub fn second(&mut self, now_ms: u64, kbps: f64) -> HealthUpdate {
        let vitals = self.watch.vitals(now_ms, kbps);
        let problems = judge(&vitals);
        for p in &problems {
            if self.logged.insert(p.code.clone()) {
                tracing::warn!(code = %p.code, advice = %p.message, "stream health problem (logged once per broadcast)");
            }
        }
        for (code, gauge) in &self.gauges {
            if !problems.iter().any(|p| &p.code == code) {
                gauge.set(0.0);
            }
        }
        for p in &problems {
            let room = self.room.clone();
            self.gauges
                .entry(p.code.clone())
                .or_insert_with(|| {
                    metrics::gauge!("barrage_stream_health_problem", "room" => room, "code" => p.code.clone())
                })
                .set(1.0);
        }
        HealthUpdate {
            frame_rate: vitals.fps,
            keyframe_interval_s: vitals.keyframe_interval_ms.map(|ms| ms as f64 / 1000.0),
            problems,
        }
    }
}

impl Drop for SessionHealth {
    fn drop(&mut self) {
        for gauge in self.gauges.values() {
            gauge.set(0.0);
        }
    }
}
