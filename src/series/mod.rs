//! Per-second series of each room for the host console's charts (`GET
//! /api/rooms/{room}/series?seconds=N`): viewers, danmaku received / accepted / refused by
//! reason, delivered, gifts, ingest bitrate and frame rate, and the segment delay. Kept in
//! memory for the last [`book::SERIES_SECONDS`] per room ([`ring::SecondRing`]); in a cluster
//! each node's report carries its last seconds and every node sums them ([`book::SeriesBook`]).
//!
//! [`spawn_sampler`] reads the chat's counters and the live status once a second.

pub mod book;
pub mod ring;
pub mod sample;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::chat::ChatEngine;
use crate::rooms::LiveRegistry;
pub use book::{SeriesAnswer, SeriesBook, SERIES_SECONDS};
use sample::{Gauges, Totals};

/// Samples every room on this node once a second until `cancel`.
pub fn spawn_sampler(
    book: Arc<SeriesBook>,
    chat: Arc<ChatEngine>,
    live: Arc<LiveRegistry>,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            let now_s = (crate::clock::now_ms().max(0) / 1000) as u64;
            sample_once(&book, &chat, &live, now_s);
        }
    });
}

/// One second of every room with a chat task or a broadcast here.
pub fn sample_once(book: &SeriesBook, chat: &ChatEngine, live: &LiveRegistry, now_s: u64) {
    let mut broadcasts: std::collections::HashMap<String, crate::rooms::LiveInfo> = live
        .list()
        .into_iter()
        .map(|l| (l.room.clone(), l))
        .collect();
    let gauges = |online: u64, info: Option<&crate::rooms::LiveInfo>| Gauges {
        online,
        ingest_kbps: info.map(|l| l.bitrate_kbps),
        fps: info.and_then(|l| l.frame_rate),
        playlist_delay_ms: info.and_then(|l| l.playlist_delay_ms),
    };
    for (stats, online) in chat.local_stats() {
        let info = broadcasts.remove(&stats.room);
        let totals = Totals {
            received: stats.uplink_received_total,
            accepted: stats.uplink_accepted_total,
            delivered: stats.delivered_total,
            gifts: stats.gifts_total,
            refused: stats.refused,
        };
        book.record(&stats.room, now_s, totals, &gauges(online, info.as_ref()));
    }
    for (room, info) in broadcasts {
        book.record(&room, now_s, Totals::default(), &gauges(0, Some(&info)));
    }
    if now_s.is_multiple_of(60) {
        book.forget_stale(now_s);
    }
}
