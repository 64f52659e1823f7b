//! Stream health: is the publisher sending what players need? [`watch::StreamWatch`] follows a
//! session's frames (keyframes, frame rate, audio, timestamp jumps) and what the encoder
//! announced; [`judge::judge`] turns those figures into [`Problem`]s with plain advice; and
//! [`report::SessionHealth`] (the only part with side effects) puts them in the room's live
//! status, logs each problem once per broadcast and exports them in `/metrics`.

pub mod judge;
pub mod report;
pub mod watch;

use serde::{Deserialize, Serialize};

/// One thing wrong with a broadcast, as `GET /api/rooms/{room}` shows it under `live.health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable label: `keyframe_interval`, `frame_rate`, `bitrate_low`, `no_audio`,
    /// `timestamp_jumps`.
    pub code: String,
    /// What is wrong and what to change, in plain words.
    pub message: String,
}

pub use report::SessionHealth;
pub use watch::StreamWatch;
