//! Object keys of a broadcast session. They are also the HTTP paths (`/hls/...`), so a CDN can
//! pull from barrage or straight from the bucket.

/// The keys one session writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeys {
    room: String,
    session: String,
}

impl SessionKeys {
    /// The keys of `session` in `room`.
    pub fn new(room: &str, session: &str) -> SessionKeys {
        SessionKeys {
            room: room.to_string(),
            session: session.to_string(),
        }
    }

    /// `hls/{room}/{session}/init.mp4`
    pub fn init(&self) -> String {
        format!("hls/{}/{}/init.mp4", self.room, self.session)
    }

    /// The init segment of `part` (1 for the first publish, 2 after the first reconnect, ...)
    /// inside the session folder: `init.mp4`, then `init-2.mp4`, `init-3.mp4`, ...
    pub fn init_file(part: u32) -> String {
        match part {
            0 | 1 => "init.mp4".to_string(),
            n => format!("init-{n}.mp4"),
        }
    }

    /// `hls/{room}/{session}/init.mp4` for part 1, `.../init-{part}.mp4` after reconnects.
    pub fn part_init(&self, part: u32) -> String {
        format!(
            "hls/{}/{}/{}",
            self.room,
            self.session,
            SessionKeys::init_file(part)
        )
    }

    /// The name of segment `n` inside the session folder: `000001.m4s`.
    pub fn segment_file(n: u64) -> String {
        format!("{n:06}.m4s")
    }

    /// `hls/{room}/{session}/{n:06}.m4s`
    pub fn segment(&self, n: u64) -> String {
        format!(
            "hls/{}/{}/{}",
            self.room,
            self.session,
            SessionKeys::segment_file(n)
        )
    }

    /// `hls/{room}/{session}/index.m3u8`: EVENT while live, the VOD afterwards.
    pub fn session_playlist(&self) -> String {
        format!("hls/{}/{}/index.m3u8", self.room, self.session)
    }

    /// `hls/{room}/live.m3u8`: the room's stable live URL.
    pub fn live_playlist(&self) -> String {
        format!("hls/{}/live.m3u8", self.room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_published_layout() {
        let k = SessionKeys::new("demo", "20261125T130501Z-k3f9");
        assert_eq!(k.init(), "hls/demo/20261125T130501Z-k3f9/init.mp4");
        assert_eq!(k.segment(1), "hls/demo/20261125T130501Z-k3f9/000001.m4s");
        assert_eq!(
            k.segment(1234567),
            "hls/demo/20261125T130501Z-k3f9/1234567.m4s"
        );
        assert_eq!(
            k.session_playlist(),
            "hls/demo/20261125T130501Z-k3f9/index.m3u8"
        );
        assert_eq!(k.live_playlist(), "hls/demo/live.m3u8");
        assert_eq!(k.part_init(1), k.init());
        assert_eq!(k.part_init(2), "hls/demo/20261125T130501Z-k3f9/init-2.mp4");
    }
}
