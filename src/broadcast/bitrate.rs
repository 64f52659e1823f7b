//! Ingest bitrate over a sliding window, for the room's status ("how is the stream doing").

use std::collections::VecDeque;

/// Bytes received over the last `window_ms`, as kbit/s. Times are caller-supplied ms, so the
/// meter is pure and testable.
#[derive(Debug, Clone)]
pub struct BitrateMeter {
    window_ms: u64,
    samples: VecDeque<(u64, u64)>,
    bytes_in_window: u64,
    /// When the first sample arrived: a young stream is averaged over its age, not the window.
    first_ms: Option<u64>,
}

impl BitrateMeter {
    /// A meter averaging over the last `window_ms`.
    pub fn new(window_ms: u64) -> BitrateMeter {
        BitrateMeter {
            window_ms: window_ms.max(1),
            samples: VecDeque::new(),
            bytes_in_window: 0,
            first_ms: None,
        }
    }

    /// Records `bytes` received at `now_ms`.
    pub fn add(&mut self, now_ms: u64, bytes: u64) {
        self.first_ms.get_or_insert(now_ms);
        self.samples.push_back((now_ms, bytes));
        self.bytes_in_window += bytes;
        self.expire(now_ms);
    }

    /// kbit/s over the window ending at `now_ms`.
    pub fn kbps(&mut self, now_ms: u64) -> f64 {
        self.expire(now_ms);
        let Some(first) = self.first_ms else {
            return 0.0;
        };
        let span = now_ms.saturating_sub(first).clamp(1_000, self.window_ms);
        self.bytes_in_window as f64 * 8.0 / span as f64
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some(&(t, bytes)) = self.samples.front() {
            if now_ms.saturating_sub(t) < self.window_ms {
                break;
            }
            self.samples.pop_front();
            self.bytes_in_window -= bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_stream_and_silence() {
        let mut m = BitrateMeter::new(5_000);
        assert_eq!(m.kbps(0), 0.0);
        // 1 Mbit/s: 12_500 bytes every 100 ms.
        for i in 0..100 {
            m.add(i * 100, 12_500);
        }
        assert!((m.kbps(9_900) - 1000.0).abs() < 30.0, "{}", m.kbps(9_900));
        // Early on, the rate is over the stream's age (at least a second).
        let mut young = BitrateMeter::new(5_000);
        young.add(0, 125_000);
        assert!((young.kbps(500) - 1000.0).abs() < 1e-9);
        // Nothing for longer than the window: zero.
        assert_eq!(m.kbps(20_000), 0.0);
    }
}
