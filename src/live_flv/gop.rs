//! What a viewer who joins now needs before the live tags (pure): the metadata, the codec
//! configurations, and every tag since the latest video keyframe, so the first picture
//! decodes at once. Bounded: a group of pictures longer than the budget is dropped and joiners
//! wait for the next keyframe instead.

use super::tag::Unframed;
use bytes::Bytes;

/// What a framed tag is, as far as joining and skipping care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Metadata,
    VideoConfig,
    AudioConfig,
    /// A video keyframe: a viewer may start (or resume after a skip) here.
    Keyframe,
    Video,
    Audio,
}

impl TagKind {
    /// Configuration and metadata: every viewer needs them, even one skipping to a keyframe.
    pub fn is_setup(self) -> bool {
        matches!(
            self,
            TagKind::Metadata | TagKind::VideoConfig | TagKind::AudioConfig
        )
    }
}

/// The room's join state.
#[derive(Debug)]
pub struct GopCache {
    metadata: Option<Unframed>,
    video_config: Option<Unframed>,
    audio_config: Option<Unframed>,
    /// Tags from the latest keyframe on (empty: waiting for one); they share the bodies ingest
    /// read, and are framed only for a joiner.
    gop: Vec<Unframed>,
    gop_bytes: usize,
    max_bytes: usize,
}

impl GopCache {
    pub fn new(max_bytes: usize) -> GopCache {
        GopCache {
            metadata: None,
            video_config: None,
            audio_config: None,
            gop: Vec::new(),
            gop_bytes: 0,
            max_bytes,
        }
    }

    /// Takes one tag in arrival order.
    pub fn push(&mut self, kind: TagKind, tag: &Unframed) {
        match kind {
            TagKind::Metadata => self.metadata = Some(tag.clone()),
            TagKind::VideoConfig => self.video_config = Some(tag.clone()),
            TagKind::AudioConfig => self.audio_config = Some(tag.clone()),
            TagKind::Keyframe => {
                self.gop.clear();
                self.gop_bytes = 0;
                self.keep(tag);
            }
            TagKind::Video | TagKind::Audio => {
                if !self.gop.is_empty() {
                    self.keep(tag);
                }
            }
        }
    }

    fn keep(&mut self, tag: &Unframed) {
        if self.gop_bytes + tag.framed_len() > self.max_bytes {
            // Too long a group to replay: joiners wait for the next keyframe.
            self.gop.clear();
            self.gop_bytes = 0;
            return;
        }
        self.gop_bytes += tag.framed_len();
        self.gop.push(tag.clone());
    }

    /// Whether a joiner gets a keyframe from the cache (else it must wait for the next one).
    pub fn starts_with_keyframe(&self) -> bool {
        !self.gop.is_empty()
    }

    pub fn has_video(&self) -> bool {
        self.video_config.is_some()
    }

    pub fn has_audio(&self) -> bool {
        self.audio_config.is_some()
    }

    /// The tags a joiner gets first, framed, in order (the FLV header is the caller's).
    pub fn joining_tags(&self) -> Vec<Bytes> {
        let setup = [&self.metadata, &self.video_config, &self.audio_config];
        setup
            .into_iter()
            .flatten()
            .chain(self.gop.iter())
            .map(Unframed::framed)
            .collect()
    }

    /// Bytes held for joiners (for the bound's test and metrics).
    pub fn held_bytes(&self) -> usize {
        self.gop_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Unframed {
        Unframed {
            kind: super::super::tag::VIDEO,
            timestamp: 0,
            body: Bytes::copy_from_slice(s.as_bytes()),
        }
    }

    fn framed(names: &[&str]) -> Vec<Bytes> {
        names.iter().map(|s| b(s).framed()).collect()
    }

    #[test]
    fn a_joiner_gets_setup_then_the_latest_group() {
        let mut c = GopCache::new(1000);
        c.push(TagKind::Metadata, &b("m"));
        c.push(TagKind::VideoConfig, &b("vc"));
        c.push(TagKind::AudioConfig, &b("ac"));
        c.push(TagKind::Audio, &b("a0"));
        assert!(!c.starts_with_keyframe());
        c.push(TagKind::Keyframe, &b("k1"));
        c.push(TagKind::Video, &b("p1"));
        c.push(TagKind::Keyframe, &b("k2"));
        c.push(TagKind::Audio, &b("a2"));
        assert_eq!(c.joining_tags(), framed(&["m", "vc", "ac", "k2", "a2"]));
        assert!(c.starts_with_keyframe() && c.has_audio() && c.has_video());
    }

    #[test]
    fn a_group_over_the_budget_is_dropped_until_the_next_keyframe() {
        // Framed, "kkkk" and "pppp" take 19 bytes each: two fit, three do not.
        let mut c = GopCache::new(40);
        c.push(TagKind::Keyframe, &b("kkkk"));
        c.push(TagKind::Video, &b("pppp"));
        c.push(TagKind::Video, &b("pppp"));
        assert!(!c.starts_with_keyframe());
        assert_eq!(c.held_bytes(), 0);
        c.push(TagKind::Video, &b("p"));
        assert_eq!(c.held_bytes(), 0);
        c.push(TagKind::Keyframe, &b("k"));
        assert_eq!(c.joining_tags(), framed(&["k"]));
    }
}
