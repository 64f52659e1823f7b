//! Danmaku carried inside the media: a session writer follows its room's delivered batches
//! and puts each event into the segment whose time span holds its `stream_ms`, as `emsg`
//! boxes in front of the fragment ([`crate::media::emsg`]).
//!
//! The writer reads the same broadcast ring as the room's sockets, so the chat path never
//! waits for it: if the writer falls more than `chat.socket_backlog` batches behind (a store
//! write stalled that long), the batches it missed are not in the stream (counted in
//! `barrage_hls_danmaku_lagged_total`). This copy is best effort; the WebSocket and the CDN
//! files stay complete. An event whose segment was already cut when it was delivered goes
//! into the next segment with its own `stream_ms`, so a player shows it up to one segment
//! late. Each segment carries at most the per-viewer budget (`chat.budget` events per second
//! of media); past that the earliest are left out and counted.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::chat::fanout::DeliveredBatch;
use crate::chat::ChatEngine;
use crate::media::emsg::{encode_emsg_boxes, TimedEvent};
use crate::media::fmp4::VIDEO_TIMESCALE;
use crate::media::Segment;

/// Where a session writer gets its room's delivered events.
pub trait DanmakuFeed: Send + Sync {
    /// The room's delivered batches from now on (None when the room has no chat).
    fn subscribe(&self, room: &str) -> Option<broadcast::Receiver<Arc<DeliveredBatch>>>;
    /// Events per viewer per second (`chat.budget`): the most a second of media carries.
    fn budget_per_s(&self) -> u32;
}

impl DanmakuFeed for ChatEngine {
    fn subscribe(&self, room: &str) -> Option<broadcast::Receiver<Arc<DeliveredBatch>>> {
        self.room(room).ok().map(|r| r.subscribe_batches())
    }

    fn budget_per_s(&self) -> u32 {
        self.config().budget
    }
}

/// Seconds of budget that may wait for a segment (events a little ahead of the media cut).
const WAITING_SECONDS: usize = 30;

/// Events waiting for the segment that holds their time; pure (no clock, no I/O).
#[derive(Debug)]
pub struct WaitingEvents {
    waiting: VecDeque<TimedEvent>,
    budget_per_s: u32,
    capacity: usize,
    /// Events left out (over a segment's budget, or over `capacity` while waiting).
    pub dropped: u64,
}

impl WaitingEvents {
    /// Carrying at most `budget_per_s` events per second of media.
    pub fn new(budget_per_s: u32) -> WaitingEvents {
        let budget = budget_per_s.max(1);
        WaitingEvents {
            waiting: VecDeque::new(),
            budget_per_s: budget,
            capacity: budget as usize * WAITING_SECONDS,
            dropped: 0,
        }
    }

    /// Queues one event; past the capacity the oldest waiting one goes.
    pub fn push(&mut self, event: TimedEvent) {
        if self.waiting.len() >= self.capacity {
            self.waiting.pop_front();
            self.dropped += 1;
        }
        self.waiting.push_back(event);
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The events for a segment `start_ms..end_ms`: every waiting event before `end_ms`
    /// (also those before `start_ms`: delivered after their segment was cut), in time order,
    /// at most the budget for the segment's length (the latest kept). Later ones wait.
    pub fn take_for(&mut self, start_ms: u64, end_ms: u64) -> Vec<TimedEvent> {
        let (mut due, later): (Vec<_>, Vec<_>) = self
            .waiting
            .drain(..)
            .partition(|e| e.presentation_ms < end_ms);
        self.waiting = later.into();
        due.sort_by_key(|e| (e.presentation_ms, e.id));
        let seconds = end_ms.saturating_sub(start_ms).div_ceil(1000).max(1);
        let allowed = usize::try_from(seconds.saturating_mul(u64::from(self.budget_per_s)))
            .unwrap_or(usize::MAX);
        if due.len() > allowed {
            let over = due.len() - allowed;
            self.dropped += over as u64;
            due.drain(..over);
        }
        due
    }
}

/// A session's in-stream danmaku: the room's feed and what waits for the next segment.
#[derive(Debug)]
pub struct InStreamDanmaku {
    feed: Option<broadcast::Receiver<Arc<DeliveredBatch>>>,
    waiting: WaitingEvents,
}

impl InStreamDanmaku {
    /// Nothing carried (no chat to follow).
    pub fn off() -> InStreamDanmaku {
        InStreamDanmaku {
            feed: None,
            waiting: WaitingEvents::new(1),
        }
    }

    /// Follows `room` through `feed` from now on.
    pub fn follow(feed: &dyn DanmakuFeed, room: &str) -> InStreamDanmaku {
        InStreamDanmaku {
            feed: feed.subscribe(room),
            waiting: WaitingEvents::new(feed.budget_per_s()),
        }
    }

    /// Whether a feed is followed (the writer then waits on [`InStreamDanmaku::recv`] too).
    pub fn is_following(&self) -> bool {
        self.feed.is_some()
    }

    /// Waits for the next delivered batch and keeps its events; pending forever without a
    /// feed, and stops following when the room's chat ends.
    pub async fn recv(&mut self) {
        let Some(feed) = &mut self.feed else {
            return std::future::pending().await;
        };
        match feed.recv().await {
            Ok(batch) => self.keep(&batch),
            Err(broadcast::error::RecvError::Lagged(n)) => lagged(n),
            Err(broadcast::error::RecvError::Closed) => self.feed = None,
        }
    }

    /// Takes what was delivered and not yet received without waiting.
    fn drain(&mut self) {
        while let Some(feed) = &mut self.feed {
            match feed.try_recv() {
                Ok(batch) => self.keep(&batch),
                Err(TryRecvError::Lagged(n)) => lagged(n),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Closed) => self.feed = None,
            }
        }
    }

    fn keep(&mut self, batch: &DeliveredBatch) {
        for event in &batch.events {
            match serde_json::to_vec(event) {
                Ok(json) => self.waiting.push(TimedEvent {
                    id: event.seq as u32,
                    presentation_ms: event.stream_ms,
                    json: Bytes::from(json),
                }),
                Err(e) => {
                    tracing::warn!(error = %e, seq = event.seq, "event not encoded for the stream")
                }
            }
        }
    }

    /// The hook where a segment is written: puts the events due by its end in front of its
    /// `moof` (see [`InStreamDanmaku::carry_fragment`]).
    pub fn carry(&mut self, mut segment: Segment) -> Segment {
        let end_ms = segment.start_ms + (segment.duration * 1000.0).round() as u64;
        segment.bytes = self.carry_fragment(segment.start_ms, end_ms, segment.bytes);
        segment
    }

    /// Puts the events due by `end_ms` (and any that came late for earlier fragments) as
    /// `emsg` boxes in front of `fragment` (`moof` + `mdat`) spanning `start_ms..end_ms`. For
    /// any fragment that is written on its own (a segment; an LL-HLS part, which then carries
    /// the events and its segment need not). Nothing due: the fragment as it was.
    pub fn carry_fragment(&mut self, start_ms: u64, end_ms: u64, fragment: Bytes) -> Bytes {
        if self.feed.is_none() && self.waiting.is_empty() {
            return fragment;
        }
        self.drain();
        let dropped_before = self.waiting.dropped;
        let due = self.waiting.take_for(start_ms, end_ms);
        let dropped = self.waiting.dropped - dropped_before;
        if dropped > 0 {
            metrics::counter!("barrage_hls_danmaku_dropped_total").increment(dropped);
        }
        if due.is_empty() {
            return fragment;
        }
        match encode_emsg_boxes(&due, VIDEO_TIMESCALE) {
            Ok(boxes) => {
                let mut bytes = BytesMut::with_capacity(boxes.len() + fragment.len());
                bytes.extend_from_slice(&boxes);
                bytes.extend_from_slice(&fragment);
                metrics::counter!("barrage_hls_danmaku_carried_total").increment(due.len() as u64);
                bytes.freeze()
            }
            Err(e) => {
                tracing::warn!(error = %e, "danmaku not carried in the fragment");
                fragment
            }
        }
    }
}

fn lagged(n: u64) {
    metrics::counter!("barrage_hls_danmaku_lagged_total").increment(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: u32, ms: u64) -> TimedEvent {
        TimedEvent {
            id,
            presentation_ms: ms,
            json: Bytes::from_static(b"{}"),
        }
    }

    fn ids(events: &[TimedEvent]) -> Vec<u32> {
        events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn a_segment_takes_what_falls_in_it_and_late_ones_later_wait() {
        let mut w = WaitingEvents::new(60);
        w.push(at(1, 2_500));
        w.push(at(2, 4_100));
        w.push(at(3, 3_999));
        assert_eq!(ids(&w.take_for(2_000, 4_000)), vec![1, 3]);
        assert_eq!(w.len(), 1);
        assert_eq!(ids(&w.take_for(4_000, 6_000)), vec![2]);
        assert!(w.is_empty());
    }

    #[test]
    fn an_event_delivered_after_its_segment_goes_in_the_next_with_its_time() {
        let mut w = WaitingEvents::new(60);
        assert!(w.take_for(0, 2_000).is_empty());
        w.push(at(5, 1_200));
        let next = w.take_for(2_000, 4_000);
        assert_eq!(ids(&next), vec![5]);
        assert_eq!(next[0].presentation_ms, 1_200);
    }

    #[test]
    fn a_segment_carries_at_most_the_budget_keeping_the_latest() {
        let mut w = WaitingEvents::new(2);
        for i in 0..10 {
            w.push(at(i, 100 * u64::from(i)));
        }
        // 2 s of media at 2 per second: 4 events.
        assert_eq!(ids(&w.take_for(0, 2_000)), vec![6, 7, 8, 9]);
        assert_eq!(w.dropped, 6);
    }

    #[test]
    fn waiting_is_bounded() {
        let mut w = WaitingEvents::new(1);
        for i in 0..(WAITING_SECONDS as u32 + 5) {
            w.push(at(i, 1_000_000));
        }
        assert_eq!(w.len(), WAITING_SECONDS);
        assert_eq!(w.dropped, 5);
    }
}
