//! Fewer wake-ups per live stream: while a publish is live, the socket's receive low-water mark
//! (`SO_RCVLOWAT`) asks the kernel to wake the session only once about 25 ms of the stream's
//! bytes are waiting, instead of for every audio frame. A real-time publisher sends ~80
//! messages a second, each as it is due, and the per-wake-up cost (epoll, task, timers) was most
//! of ingest's CPU (docs/BENCHMARKS.md). Outside a publish the mark stays at 1 byte, so commands
//! are answered at once; a FIN or an error wakes the session whatever the mark.

use std::time::{Duration, Instant};

/// Bounds on the mark: below 1 KiB it saves nothing; above 32 KiB a burst could sit waiting.
const MIN_BYTES: u64 = 1024;
const MAX_BYTES: u64 = 32 * 1024;
/// How often the rate is measured and the mark moved.
const EVERY: Duration = Duration::from_secs(1);

/// Sets a socket's receive low-water mark.
pub trait SetLowWater: Send {
    fn set(&self, bytes: u32);
}

/// `SO_RCVLOWAT` on a raw socket descriptor.
pub struct SocketLowWater {
    fd: std::os::fd::RawFd,
}

impl SocketLowWater {
    /// For the socket behind `fd`; the caller keeps the socket open as long as this is used
    /// (the session owns both).
    pub fn new(fd: std::os::fd::RawFd) -> SocketLowWater {
        SocketLowWater { fd }
    }
}

impl SetLowWater for SocketLowWater {
    fn set(&self, bytes: u32) {
        let value = bytes.max(1) as libc::c_int;
        // SAFETY: a valid pointer to a c_int of the size given; an fd that is not (or no longer)
        // a socket only makes the call fail, which is harmless here.
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "SO_RCVLOWAT not set");
        }
    }
}

/// The mark for a stream arriving at `bytes_per_s` gathered over `gather` (pure, for tests).
pub fn mark_for_rate(bytes_per_s: u64, gather: Duration) -> u32 {
    let bytes = bytes_per_s * gather.as_millis() as u64 / 1000;
    bytes.clamp(MIN_BYTES, MAX_BYTES) as u32
}

/// Follows a live publish's byte rate and moves the mark with it.
pub struct LowWater {
    socket: Box<dyn SetLowWater>,
    /// `rtmp.gather_ms`.
    gather: Duration,
    /// Measuring since, with the byte count then; None outside a publish.
    window: Option<(Instant, u64)>,
    current: u32,
}

impl LowWater {
    pub fn new(socket: Box<dyn SetLowWater>, gather: Duration) -> LowWater {
        LowWater {
            socket,
            gather,
            window: None,
            current: 1,
        }
    }

    /// A publish started: measure from here (the mark moves after the first second).
    pub fn start(&mut self, received: u64) {
        self.window = Some((Instant::now(), received));
    }

    /// Called after each read with the total bytes read so far.
    pub fn on_read(&mut self, received: u64) {
        let Some((since, at)) = self.window else {
            return;
        };
        let elapsed = since.elapsed();
        if elapsed < EVERY {
            return;
        }
        let rate = (received - at) * 1000 / (elapsed.as_millis() as u64).max(1);
        self.window = Some((Instant::now(), received));
        self.apply(mark_for_rate(rate, self.gather));
    }

    /// The publish ended: commands must be answered at once again.
    pub fn stop(&mut self) {
        self.window = None;
        self.apply(1);
    }

    fn apply(&mut self, bytes: u32) {
        if bytes != self.current {
            self.current = bytes;
            self.socket.set(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_is_the_gather_time_of_the_stream_within_bounds() {
        let ms25 = Duration::from_millis(25);
        assert_eq!(mark_for_rate(0, ms25), 1024);
        assert_eq!(mark_for_rate(375_000, ms25), 9375, "3 Mbit/s");
        assert_eq!(mark_for_rate(10_000_000, ms25), 32 * 1024);
        assert_eq!(mark_for_rate(375_000, Duration::from_millis(50)), 18750);
    }

    /// Records the marks set, as the socket would get them.
    struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<u32>>>);

    impl SetLowWater for Recorder {
        fn set(&self, bytes: u32) {
            self.0.lock().unwrap().push(bytes);
        }
    }

    #[test]
    fn the_mark_follows_the_publish_and_returns_to_one_byte_after() {
        let marks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut lw = LowWater::new(Box::new(Recorder(marks.clone())), Duration::from_millis(25));
        lw.on_read(1_000_000);
        assert!(marks.lock().unwrap().is_empty(), "nothing before a publish");
        lw.start(0);
        // Pretend a second went by at 3 Mbit/s.
        lw.window = Some((Instant::now() - Duration::from_secs(1), 0));
        lw.on_read(375_000);
        lw.stop();
        let got = marks.lock().unwrap().clone();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!((9_000..=9_400).contains(&got[0]), "{got:?}");
        assert_eq!(got[1], 1);
    }
}
