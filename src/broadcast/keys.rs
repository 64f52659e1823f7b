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

    /// The name of LL-HLS part `index` of segment `n` inside the session folder:
    /// `000001.0.m4s` (not a segment name: recovery and the VOD never list parts).
    pub fn part_file(n: u64, index: u32) -> String {
        format!("{n:06}.{index}.m4s")
    }

    /// `hls/{room}/{session}/{file}`: an object of the session folder.
    pub fn in_folder(&self, file: &str) -> String {
        format!("hls/{}/{}/{file}", self.room, self.session)
    }

    /// The segment number of a name made by [`SessionKeys::segment_file`] (None for others).
    pub fn parse_segment_file(name: &str) -> Option<u64> {
        let digits = name.strip_suffix(".m4s")?;
        if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().filter(|n| *n > 0)
    }

    /// The part number of an init file made by [`SessionKeys::init_file`] (None for others).
    pub fn parse_init_file(name: &str) -> Option<u32> {
        if name == "init.mp4" {
            return Some(1);
        }
        let digits = name.strip_prefix("init-")?.strip_suffix(".mp4")?;
        digits.parse().ok().filter(|n| *n > 1)
    }

    /// `hls/{room}/{session}/`: the folder of every object of the session.
    pub fn folder(&self) -> String {
        format!("hls/{}/{}/", self.room, self.session)
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
        assert_eq!(SessionKeys::parse_segment_file("000042.m4s"), Some(42));
        assert_eq!(
            SessionKeys::parse_segment_file("1234567.m4s"),
            Some(1234567)
        );
        assert_eq!(SessionKeys::parse_segment_file("42.m4s"), None);
        assert_eq!(SessionKeys::parse_segment_file("index.m3u8"), None);
        assert_eq!(SessionKeys::parse_init_file("init.mp4"), Some(1));
        assert_eq!(SessionKeys::parse_init_file("init-12.mp4"), Some(12));
        assert_eq!(SessionKeys::parse_init_file("init-1.mp4"), None);
        assert_eq!(SessionKeys::parse_init_file("000001.m4s"), None);
        assert_eq!(k.folder(), "hls/demo/20261125T130501Z-k3f9/");
        assert_eq!(k.part_init(2), "hls/demo/20261125T130501Z-k3f9/init-2.mp4");
    }
}
