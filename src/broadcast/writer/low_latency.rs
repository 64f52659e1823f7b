//! The writer's side of LL-HLS: each part the muxer cuts (with the danmaku due by its end,
//! which its segment then carries too) is kept in memory in [`LiveEdges`], served from there,
//! and listed in the room's in-memory live playlist.
//!
//! Parts are a low-latency copy; the segments stay the record. Only this node's playlist lists
//! them, so they never go to the store (that was five file creations and deletions a second per
//! room). While the store is behind (the spool holds segments), no more parts of that segment
//! are listed (a playlist's parts must follow each other) and players fall back to whole
//! segments, which the spool still delivers in order. Parts of segments more than
//! [`SEGMENTS_WITH_PARTS`] back are dropped, and all of a session's when its writer ends: the
//! VOD lists segments only.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::SessionWriter;
use crate::broadcast::keys::SessionKeys;
use crate::hls::live_edge::{LiveEdge, LiveEdges};
use crate::hls::low_latency::{
    add_parts, ListedPart, PartsView, PlaylistPosition, SegmentParts, SEGMENTS_WITH_PARTS,
};
use crate::media::segmenter::Part;

/// Parts of one segment not listed yet.
#[derive(Debug, Default)]
struct Pending {
    parts: Vec<ListedPart>,
    /// `emsg` boxes its parts carried: the segment carries them too.
    carried: BytesMut,
    /// A part could not be stored: later ones are not listed.
    broken: bool,
}

/// Which parts are listed, per segment (pure bookkeeping; the writer does the I/O).
#[derive(Debug)]
pub(super) struct ListedParts {
    part_target_s: f64,
    /// Parts of segments not listed yet, by segment number (normally just the one being built).
    pending: BTreeMap<u64, Pending>,
    /// Parts of the newest listed segments: (segment number, parts under its msn), oldest first.
    listed: VecDeque<(u64, SegmentParts)>,
    /// The next segment starts a new publish (its own init segment): its parts would need a
    /// discontinuity before them, so they are left out until it is listed.
    new_publish: bool,
}

impl ListedParts {
    pub(super) fn new(part_ms: u64) -> ListedParts {
        ListedParts {
            part_target_s: part_ms as f64 / 1000.0,
            pending: BTreeMap::new(),
            listed: VecDeque::new(),
            new_publish: false,
        }
    }

    /// Whether parts of `segment` are still listed as they come.
    fn open(&self, segment: u64) -> bool {
        !self.pending.get(&segment).is_some_and(|p| p.broken)
    }

    fn carried(&mut self, segment: u64, emsg: &[u8]) {
        self.pending
            .entry(segment)
            .or_default()
            .carried
            .extend_from_slice(emsg);
    }

    fn stored(&mut self, segment: u64, part: ListedPart) {
        let pending = self.pending.entry(segment).or_default();
        if !pending.broken {
            pending.parts.push(part);
        }
    }

    pub(super) fn failed(&mut self, segment: u64) {
        self.pending.entry(segment).or_default().broken = true;
    }

    /// The `emsg` boxes `segment`'s parts carried (the segment goes out with them in front).
    pub(super) fn take_carried(&mut self, segment: u64) -> Bytes {
        self.pending
            .get_mut(&segment)
            .map(|p| std::mem::take(&mut p.carried).freeze())
            .unwrap_or_default()
    }

    /// `segment` is listed as media sequence number `msn`; returns the parts no longer listed
    /// (segment number, part count) so their objects can go.
    pub(super) fn segment_listed(&mut self, segment: u64, msn: u64) -> Vec<(u64, usize)> {
        self.new_publish = false;
        let mut gone = Vec::new();
        // Anything older that never got listed (a lost segment) goes too.
        let older: Vec<u64> = self.pending.range(..=segment).map(|(s, _)| *s).collect();
        for s in older {
            if let Some(p) = self.pending.remove(&s) {
                if s == segment && !p.broken {
                    self.listed.push_back((
                        s,
                        SegmentParts {
                            msn,
                            parts: p.parts,
                        },
                    ));
                } else if !p.parts.is_empty() {
                    gone.push((s, p.parts.len()));
                }
            }
        }
        while self.listed.len() > SEGMENTS_WITH_PARTS {
            if let Some((s, old)) = self.listed.pop_front() {
                gone.push((s, old.parts.len()));
            }
        }
        gone
    }

    /// A publisher is coming back: its first segment follows a discontinuity.
    pub(super) fn new_publish(&mut self) {
        self.new_publish = true;
    }

    /// The LL-HLS lines' content for a playlist whose last segment has msn `last_msn`, the
    /// segment being built being number `building` (URIs relative to the room folder).
    fn view(&self, session: &str, last_msn: u64, building: u64) -> PartsView {
        let parts = match self.pending.get(&building) {
            Some(p) if !p.broken && !self.new_publish => p.parts.clone(),
            _ => Vec::new(),
        };
        let next = SessionKeys::part_file(building, parts.len() as u32);
        PartsView {
            part_target_s: self.part_target_s,
            complete: self.listed.iter().map(|(_, p)| p.clone()).collect(),
            building: SegmentParts {
                msn: last_msn + 1,
                parts,
            },
            next_part_uri: format!("{session}/{next}"),
        }
    }
}

/// The LL-HLS state a writer keeps when `hls.part_ms` is on.
pub(super) struct LowLatency {
    pub(super) parts: ListedParts,
    edges: Arc<LiveEdges>,
    /// The session's folder (`hls/{room}/{session}/`): its parts go when the writer does.
    folder: String,
}

impl LowLatency {
    pub(super) fn new(part_ms: u64, edges: Arc<LiveEdges>, folder: String) -> LowLatency {
        LowLatency {
            parts: ListedParts::new(part_ms),
            edges,
            folder,
        }
    }
}

impl Drop for LowLatency {
    fn drop(&mut self) {
        self.edges.drop_parts_under(&self.folder);
    }
}

impl SessionWriter {
    /// Serves LL-HLS from `edges` (parts of `settings.part_ms`; 0 leaves it off).
    pub fn with_low_latency(mut self, edges: Arc<LiveEdges>) -> SessionWriter {
        if self.settings.part_ms > 0 {
            let folder = self.keys.in_folder("");
            self.low_latency = Some(LowLatency::new(self.settings.part_ms, edges, folder));
            self.muxer = self.new_muxer(crate::media::TimelineStart::default());
        }
        self
    }

    /// Keeps one part in memory and lists it (see the module doc).
    pub(super) fn store_part(&mut self, part: Part) {
        let Some(ll) = &mut self.low_latency else {
            return;
        };
        let end_ms = part.start_ms + (part.duration * 1000.0).round() as u64;
        let fragment_len = part.bytes.len();
        let body = self
            .danmaku
            .carry_fragment(part.start_ms, end_ms, part.bytes);
        ll.parts
            .carried(part.segment, &body[..body.len() - fragment_len]);
        if !self.spool.is_empty() || !ll.parts.open(part.segment) {
            ll.parts.failed(part.segment);
            return;
        }
        let file = SessionKeys::part_file(part.segment, part.index);
        ll.edges.put_part(self.keys.in_folder(&file), body);
        ll.parts.stored(
            part.segment,
            ListedPart {
                uri: format!("{}/{file}", self.settings.session),
                duration: part.duration,
                independent: part.independent,
            },
        );
        metrics::counter!("barrage_hls_parts_total").increment(1);
        self.publish_edge();
    }

    /// A segment was listed: its parts move under its msn; parts that fell out are dropped.
    pub(super) fn parts_listed(&mut self, segment: u64) {
        let msn = self.playlists.len() as u64;
        let Some(ll) = &mut self.low_latency else {
            return;
        };
        for (old, count) in ll.parts.segment_listed(segment, msn) {
            let keys =
                (0..count as u32).map(|i| self.keys.in_folder(&SessionKeys::part_file(old, i)));
            ll.edges.drop_parts(keys);
        }
    }

    /// Renders the room's LL-HLS playlist into [`LiveEdges`], or withdraws it (then the
    /// stored plain playlist is served) while there is none to give: before the first
    /// segment, while the store is behind, while the publisher is away, once ending.
    pub(super) fn publish_edge(&mut self) {
        let Some(ll) = &self.low_latency else {
            return;
        };
        let room = &self.settings.room;
        if self.ending
            || self.left_ms.is_some()
            || !self.spool.is_empty()
            || self.playlists.is_empty()
        {
            ll.edges.publish(room, None);
            return;
        }
        let plain = match self
            .playlists
            .live_playlist(self.settings.window_segments, false)
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "live playlist not rendered");
                ll.edges.publish(room, None);
                return;
            }
        };
        let last_msn = self.playlists.len() as u64;
        let building = self.muxer_next_segment();
        let view = ll.parts.view(&self.settings.session, last_msn, building);
        let position = PlaylistPosition {
            last_complete: Some(last_msn),
            building_parts: view.building.parts.len() as u64,
        };
        ll.edges.publish(
            room,
            Some(LiveEdge {
                playlist: Arc::from(add_parts(&plain, &view)),
                position,
                target_duration_s: self.playlists.target_duration(),
            }),
        );
    }

    /// Withdraws the room's LL-HLS playlist (the stored one is served).
    pub(super) fn withdraw_edge(&self) {
        if let Some(ll) = &self.low_latency {
            ll.edges.publish(&self.settings.room, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(uri: &str) -> ListedPart {
        ListedPart {
            uri: uri.into(),
            duration: 0.3,
            independent: false,
        }
    }

    #[test]
    fn parts_move_under_their_segments_msn_and_old_ones_go() {
        let mut l = ListedParts::new(300);
        l.stored(1, part("s/000001.0.m4s"));
        l.stored(1, part("s/000001.1.m4s"));
        let v = l.view("s", 0, 1);
        assert_eq!(v.building.msn, 1);
        assert_eq!(v.building.parts.len(), 2);
        assert_eq!(v.next_part_uri, "s/000001.2.m4s");
        assert!(l.segment_listed(1, 1).is_empty());
        let v = l.view("s", 1, 2);
        assert_eq!(v.complete.len(), 1);
        assert_eq!(v.complete[0].msn, 1);
        assert!(v.building.parts.is_empty());
        assert_eq!(v.next_part_uri, "s/000002.0.m4s");
        for s in 2..=4 {
            l.stored(s, part("x"));
            let gone = l.segment_listed(s, s);
            if s == 4 {
                assert_eq!(gone, vec![(1, 2)], "the oldest listed parts go");
            } else {
                assert!(gone.is_empty());
            }
        }
    }

    #[test]
    fn a_failed_part_stops_listing_the_rest_of_its_segment() {
        let mut l = ListedParts::new(300);
        l.stored(5, part("a"));
        l.failed(5);
        l.stored(5, part("c"));
        assert!(!l.open(5));
        assert!(l.view("s", 4, 5).building.parts.is_empty());
        // The segment itself is still listed; its parts are not.
        assert_eq!(l.segment_listed(5, 5), vec![(5, 1)]);
        assert!(l.view("s", 5, 6).complete.is_empty());
        assert!(l.open(6));
    }

    #[test]
    fn the_segment_gets_the_danmaku_its_parts_carried() {
        let mut l = ListedParts::new(300);
        l.carried(3, b"one");
        l.carried(3, b"two");
        assert_eq!(&l.take_carried(3)[..], b"onetwo");
        assert!(l.take_carried(3).is_empty());
        assert!(l.take_carried(4).is_empty());
    }

    #[test]
    fn a_new_publish_hides_building_parts_until_its_first_segment_is_listed() {
        let mut l = ListedParts::new(300);
        l.new_publish();
        l.stored(7, part("a"));
        assert!(l.view("s", 6, 7).building.parts.is_empty());
        l.segment_listed(7, 7);
        l.stored(8, part("b"));
        assert_eq!(l.view("s", 7, 8).building.parts.len(), 1);
    }
}
