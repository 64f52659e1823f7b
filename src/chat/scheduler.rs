//! The per-room priority scheduler (pure: no clock, no I/O; the room task calls it).
//!
//! Four queues, highest first: system > gift_high > gift_low > danmaku. Every tick the room may
//! deliver `budget × tick_ms / 1000` events (the per-viewer budget: every viewer gets every
//! event). That allowance is kept exactly with carried fractions, so budget 60 at 100 ms gives
//! 6 every tick and budget 25 gives 2, 3, 2, 3, ...
//!
//! The tick's allowance (a whole number) is split between the queues by their ratios; each
//! queue carries the credit it was owed but not given to later ticks, so a queue with a
//! 0.6-slot share gets 3 slots every 5 ticks. A queue that cannot use its slots passes them to
//! the next queue; what even the last queue cannot use goes round once more from the top (a
//! quiet room sends waiting system messages faster than their share), and what is still left
//! is lost: an idle room does not bank credit for a burst later. So a tick never delivers more
//! than its allowance, and delivers all of it whenever enough is waiting.
//!
//! System messages and high gifts are never dropped: they wait, strictly oldest first. Low gifts
//! and danmaku are bounded: a push to a full queue drops that queue's oldest item (`overflow`),
//! and items older than `max_age_ms` at a tick are dropped (`stale`). When more of them wait
//! than a tick may send, `backlog_order` picks which go: the newest (default; under a flood the
//! room shows what was just said instead of comments five seconds old, and what is left waits
//! for a quieter tick or goes stale) or the oldest (strict FIFO). Either way a tick's events of
//! one queue are in arrival order.
//!
//! Each delivered event takes the room's next seq, so seqs are contiguous; a tick's events are
//! grouped by queue, highest first.

use std::collections::VecDeque;

use super::protocol::{Body, Event, Priority};
use crate::config::{BacklogOrder, ChatConfig};

/// Fixed-point scale for queue ratios (parts per million).
const RATIO_SCALE: f64 = 1_000_000.0;

/// The scheduler's settings, taken from `[chat]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    pub tick_ms: u64,
    /// Events per viewer per second.
    pub budget: u32,
    /// Queue shares in parts per million, in [`Priority::ALL`] order.
    pub weights: [u64; 4],
    pub gift_low_queue: usize,
    pub danmaku_queue: usize,
    pub max_age_ms: u64,
    /// Which waiting low gifts and danmaku go first when not all can.
    pub backlog_order: BacklogOrder,
}

impl SchedulerConfig {
    /// Reads the scheduler keys of `[chat]`; ratios that are all zero share equally.
    pub fn from_chat(c: &ChatConfig) -> SchedulerConfig {
        let ratios = [
            c.ratio_system,
            c.ratio_gift_high,
            c.ratio_gift_low,
            c.ratio_danmaku,
        ];
        let mut weights = ratios.map(|r| (r.clamp(0.0, 1.0) * RATIO_SCALE).round() as u64);
        if weights.iter().sum::<u64>() == 0 {
            weights = [1; 4];
        }
        SchedulerConfig {
            tick_ms: c.tick_ms,
            budget: c.budget,
            weights,
            gift_low_queue: c.gift_low_queue.max(1),
            danmaku_queue: c.danmaku_queue.max(1),
            max_age_ms: c.max_age_ms,
            backlog_order: c.backlog_order,
        }
    }

    /// The most events one tick may deliver: `ceil(budget × tick_ms / 1000)`.
    pub fn max_per_tick(&self) -> u64 {
        (u64::from(self.budget) * self.tick_ms).div_ceil(1000)
    }

    fn bound(&self, p: Priority) -> Option<usize> {
        match p {
            Priority::System | Priority::GiftHigh => None,
            Priority::GiftLow => Some(self.gift_low_queue),
            Priority::Danmaku => Some(self.danmaku_queue),
        }
    }
}

/// Accepted content waiting for its tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub body: Body,
    /// Wall time (ms since the epoch) at acceptance; becomes the event's `ts_ms`.
    pub ts_ms: i64,
    /// Stream time at acceptance (or the sender's plausible position).
    pub stream_ms: u64,
}

/// Why the scheduler dropped an accepted item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Its bounded queue was full; the oldest item made room.
    Overflow,
    /// It waited longer than `max_age_ms`.
    Stale,
}

impl DropReason {
    /// The `reason` label of drop metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Overflow => "overflow",
            DropReason::Stale => "stale",
        }
    }
}

/// Drops of one queue, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    pub overflow: u64,
    pub stale: u64,
}

impl DropCounts {
    fn add(&mut self, reason: DropReason, n: u64) {
        match reason {
            DropReason::Overflow => self.overflow += n,
            DropReason::Stale => self.stale += n,
        }
    }
}

/// What one tick produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tick {
    /// The events to deliver, seq-numbered, grouped by queue (highest first), each queue's in
    /// arrival order.
    pub events: Vec<Event>,
    /// Events this tick was allowed to deliver.
    pub allowance: u64,
    /// Each queue's own slots this tick (before slots passed on), in [`Priority::ALL`] order.
    pub shares: [u64; 4],
    /// Items dropped as stale at this tick, per queue.
    pub stale: [u64; 4],
}

#[derive(Debug, Clone)]
struct Waiting {
    pending: Pending,
    /// The scheduler clock (ms) when it was queued; staleness is measured from here.
    queued_ms: u64,
}

/// One room's queues, credits and seq counter.
#[derive(Debug, Clone)]
pub struct RoomScheduler {
    config: SchedulerConfig,
    queues: [VecDeque<Waiting>; 4],
    /// Thousandths of an event owed to the room from earlier ticks (always < 1000).
    room_credit_milli: u64,
    /// Each queue's owed credit, in units of 1/Σweights of an event; they sum to less than one
    /// slot, and each stays within a slot or two of zero.
    queue_credit: [i128; 4],
    last_seq: u64,
    drops: [DropCounts; 4],
}

impl RoomScheduler {
    /// A scheduler whose first event gets `last_seq + 1`.
    pub fn new(config: SchedulerConfig, last_seq: u64) -> RoomScheduler {
        RoomScheduler {
            config,
            queues: Default::default(),
            room_credit_milli: 0,
            queue_credit: [0; 4],
            last_seq,
            drops: Default::default(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Queues an item. `now_ms` is the scheduler clock (monotonic, never decreasing between
    /// calls). Returns the drop it caused, if the queue was full.
    pub fn push(
        &mut self,
        priority: Priority,
        pending: Pending,
        now_ms: u64,
    ) -> Option<DropReason> {
        let i = priority.index();
        let mut dropped = None;
        if let Some(bound) = self.config.bound(priority) {
            while self.queues[i].len() >= bound {
                self.queues[i].pop_front();
                self.drops[i].add(DropReason::Overflow, 1);
                dropped = Some(DropReason::Overflow);
            }
        }
        self.queues[i].push_back(Waiting {
            pending,
            queued_ms: now_ms,
        });
        dropped
    }

    /// Items waiting in a queue.
    pub fn len(&self, priority: Priority) -> usize {
        self.queues[priority.index()].len()
    }

    /// Whether nothing waits in any queue.
    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(VecDeque::is_empty)
    }

    /// The seq of the last delivered event (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Takes everything waiting, highest queue first, oldest first (a node hands a room it
    /// stops scheduling to another node).
    pub fn drain(&mut self) -> Vec<(Priority, Pending)> {
        let mut out = Vec::new();
        for p in Priority::ALL {
            out.extend(self.queues[p.index()].drain(..).map(|w| (p, w.pending)));
        }
        out
    }

    /// Numbers the next event after `seq` when that is ahead (the room went on elsewhere).
    pub fn continue_after(&mut self, seq: u64) {
        self.last_seq = self.last_seq.max(seq);
    }

    /// Drops so far, per queue in [`Priority::ALL`] order.
    pub fn drops(&self) -> [DropCounts; 4] {
        self.drops
    }

    /// Runs one tick at scheduler clock `now_ms`: drops stale items, computes the allowance,
    /// splits it, and takes the events to deliver.
    pub fn tick(&mut self, now_ms: u64) -> Tick {
        let mut tick = Tick::default();
        for p in [Priority::GiftLow, Priority::Danmaku] {
            tick.stale[p.index()] = self.drop_stale(p, now_ms);
        }

        let milli = self.room_credit_milli + u64::from(self.config.budget) * self.config.tick_ms;
        tick.allowance = milli / 1000;
        self.room_credit_milli = milli % 1000;
        tick.shares = self.split(tick.allowance);

        // Count first, take after: a queue's slots from both passes come out as one run, so
        // its events stay in arrival order whichever end of the queue they come from.
        let mut counts = [0u64; 4];
        // First pass: each queue its share plus what the queues above could not use.
        let mut carry = 0u64;
        for p in Priority::ALL {
            let can = tick.shares[p.index()] + carry;
            carry = can - self.claim(p, can, &mut counts);
        }
        // Slots even the last queue could not use go round once more from the top, so a queue
        // whose own share is small (or zero) still drains while the room has spare budget.
        for p in Priority::ALL {
            if carry == 0 {
                break;
            }
            carry -= self.claim(p, carry, &mut counts);
        }
        for p in Priority::ALL {
            self.take(p, counts[p.index()], &mut tick.events);
        }
        tick
    }

    /// Gives queue `p` up to `n` more of this tick's slots, as far as it has items; returns how
    /// many it took.
    fn claim(&self, p: Priority, n: u64, counts: &mut [u64; 4]) -> u64 {
        let i = p.index();
        let got = n.min(self.queues[i].len() as u64 - counts[i]);
        counts[i] += got;
        got
    }

    /// Moves `n` items of queue `p` into `events` with the next seqs: the oldest, or for a
    /// bounded queue under [`BacklogOrder::Newest`] the newest (still in arrival order).
    fn take(&mut self, p: Priority, n: u64, events: &mut Vec<Event>) {
        let newest =
            self.config.backlog_order == BacklogOrder::Newest && self.config.bound(p).is_some();
        let queue = &mut self.queues[p.index()];
        let n = (n as usize).min(queue.len());
        let range = if newest {
            queue.len() - n..queue.len()
        } else {
            0..n
        };
        for waiting in queue.drain(range) {
            self.last_seq += 1;
            events.push(Event {
                seq: self.last_seq,
                ts_ms: waiting.pending.ts_ms,
                stream_ms: waiting.pending.stream_ms,
                priority: p,
                body: waiting.pending.body,
            });
        }
    }

    /// Apportions `allowance` whole slots by weight: every queue is credited its share, then
    /// each slot goes to the queue owed the most (ties to the higher priority). Credits carry
    /// to the next tick, so fractional shares add up over ticks.
    fn split(&mut self, allowance: u64) -> [u64; 4] {
        let total: i128 = self.config.weights.iter().map(|&w| i128::from(w)).sum();
        for (credit, &w) in self.queue_credit.iter_mut().zip(&self.config.weights) {
            *credit += i128::from(allowance) * i128::from(w);
        }
        let mut shares = [0u64; 4];
        for _ in 0..allowance {
            let mut best = 0;
            for i in 1..4 {
                if self.queue_credit[i] > self.queue_credit[best] {
                    best = i;
                }
            }
            shares[best] += 1;
            self.queue_credit[best] -= total;
        }
        shares
    }

    fn drop_stale(&mut self, p: Priority, now_ms: u64) -> u64 {
        let i = p.index();
        let max_age = self.config.max_age_ms;
        let mut n = 0;
        while self.queues[i]
            .front()
            .is_some_and(|w| now_ms.saturating_sub(w.queued_ms) > max_age)
        {
            self.queues[i].pop_front();
            n += 1;
        }
        self.drops[i].add(DropReason::Stale, n);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::SystemMessage;
    use proptest::prelude::*;

    fn config(tick_ms: u64, budget: u32, ratios: [f64; 4]) -> SchedulerConfig {
        SchedulerConfig {
            tick_ms,
            budget,
            weights: ratios.map(|r| (r * RATIO_SCALE).round() as u64),
            gift_low_queue: 1000,
            danmaku_queue: 1000,
            max_age_ms: 5000,
            backlog_order: BacklogOrder::Oldest,
        }
    }

    const DEFAULT_RATIOS: [f64; 4] = [0.1, 0.2, 0.2, 0.5];

    /// An item whose text names its queue and number, to check order and loss.
    fn item(p: Priority, n: u64) -> Pending {
        Pending {
            body: Body::System(SystemMessage {
                text: format!("{}-{n}", p.as_str()),
            }),
            ts_ms: n as i64,
            stream_ms: 0,
        }
    }

    fn text(e: &Event) -> &str {
        match &e.body {
            Body::System(s) => &s.text,
            _ => "",
        }
    }

    /// The number `item` put in the text.
    fn number(body: &Body) -> u64 {
        match body {
            Body::System(s) => s.text.rsplit('-').next().unwrap().parse().unwrap(),
            _ => unreachable!("tests queue system bodies only"),
        }
    }

    #[test]
    fn budget_60_at_100ms_is_6_per_tick_and_25_alternates() {
        let mut s = RoomScheduler::new(config(100, 60, DEFAULT_RATIOS), 0);
        for n in 0..100 {
            s.push(Priority::Danmaku, item(Priority::Danmaku, n), 0);
        }
        for _ in 0..10 {
            let t = s.tick(0);
            assert_eq!(t.allowance, 6);
            assert_eq!(t.events.len(), 6, "passed-on shares fill the budget");
        }
        let mut s = RoomScheduler::new(config(100, 25, DEFAULT_RATIOS), 0);
        let allowances: Vec<u64> = (0..4).map(|_| s.tick(0).allowance).collect();
        assert_eq!(allowances, vec![2, 3, 2, 3]);
    }

    #[test]
    fn a_small_share_accumulates_across_ticks() {
        // System's share is 0.6 of a slot per tick: 6 slots in 10 ticks, never more than 1.
        let mut s = RoomScheduler::new(config(100, 60, DEFAULT_RATIOS), 0);
        for n in 0..100 {
            for p in Priority::ALL {
                s.push(p, item(p, n), 0);
            }
        }
        let mut per_queue = [0u64; 4];
        for _ in 0..10 {
            let t = s.tick(0);
            assert!(t.shares[0] <= 1);
            for e in &t.events {
                per_queue[e.priority.index()] += 1;
            }
        }
        assert_eq!(per_queue, [6, 12, 12, 30]);
    }

    #[test]
    fn system_waits_and_goes_first_within_its_share() {
        let mut s = RoomScheduler::new(config(100, 60, [0.5, 0.0, 0.0, 0.5]), 0);
        for n in 0..10 {
            s.push(Priority::Danmaku, item(Priority::Danmaku, n), 0);
        }
        s.push(Priority::System, item(Priority::System, 0), 0);
        let t = s.tick(0);
        assert_eq!(text(&t.events[0]), "system-0");
        assert_eq!(t.events[0].seq, 1);
        assert_eq!(t.events.len(), 6);
    }

    #[test]
    fn a_quiet_room_sends_waiting_system_messages_at_the_full_budget() {
        // System's ratio is 0 here: it still drains through the slots others leave unused.
        let mut s = RoomScheduler::new(config(100, 60, [0.0, 0.2, 0.2, 0.6]), 0);
        for n in 0..12 {
            s.push(Priority::System, item(Priority::System, n), 0);
        }
        assert_eq!(s.tick(0).events.len(), 6);
        assert_eq!(s.tick(0).events.len(), 6);
        assert!(s.is_empty());
    }

    #[test]
    fn an_idle_room_does_not_bank_credit() {
        let mut s = RoomScheduler::new(config(100, 60, DEFAULT_RATIOS), 0);
        for _ in 0..100 {
            assert!(s.tick(0).events.is_empty());
        }
        for n in 0..100 {
            s.push(Priority::Danmaku, item(Priority::Danmaku, n), 0);
        }
        assert_eq!(s.tick(0).events.len(), 6);
    }

    #[test]
    fn bounded_queues_drop_oldest_on_overflow_and_stale_at_tick() {
        let mut c = config(100, 10, DEFAULT_RATIOS);
        c.danmaku_queue = 3;
        c.max_age_ms = 1000;
        let mut s = RoomScheduler::new(c, 41);
        assert_eq!(
            s.push(Priority::Danmaku, item(Priority::Danmaku, 0), 0),
            None
        );
        s.push(Priority::Danmaku, item(Priority::Danmaku, 1), 0);
        s.push(Priority::Danmaku, item(Priority::Danmaku, 2), 500);
        assert_eq!(
            s.push(Priority::Danmaku, item(Priority::Danmaku, 3), 500),
            Some(DropReason::Overflow)
        );
        // Item 1 (queued at 0) is stale at 1001; items 2 and 3 are not.
        let t = s.tick(1001);
        assert_eq!(t.stale[Priority::Danmaku.index()], 1);
        assert_eq!(
            t.events.iter().map(text).collect::<Vec<_>>(),
            vec!["danmaku-2"]
        );
        assert_eq!(t.events[0].seq, 42);
        assert_eq!(
            s.drops()[Priority::Danmaku.index()],
            DropCounts {
                overflow: 1,
                stale: 1
            }
        );
        // System never overflows or goes stale.
        for n in 0..5000 {
            s.push(Priority::System, item(Priority::System, n), 0);
        }
        s.tick(1_000_000);
        assert_eq!(s.drops()[0], DropCounts::default());
    }

    #[test]
    fn under_a_flood_newest_order_delivers_what_was_just_said() {
        // 6 slots a tick, 50 danmaku arriving every tick: each tick shows that tick's newest 6.
        let mut c = config(100, 60, DEFAULT_RATIOS);
        c.backlog_order = BacklogOrder::Newest;
        c.max_age_ms = 1000;
        let mut s = RoomScheduler::new(c, 0);
        let mut n = 0;
        for t in 1..=30u64 {
            for _ in 0..50 {
                s.push(Priority::Danmaku, item(Priority::Danmaku, n), t * 100);
                n += 1;
            }
            let got: Vec<u64> = s
                .tick(t * 100)
                .events
                .iter()
                .map(|e| number(&e.body))
                .collect();
            assert_eq!(got, (n - 6..n).collect::<Vec<_>>(), "tick {t}");
        }
        // The waiting backlog is bounded by max_age: older comments went stale, not out late.
        assert!(s.len(Priority::Danmaku) <= 11 * 50);
        assert!(s.drops()[Priority::Danmaku.index()].stale > 0);

        // A burst in a quiet room is not lost: the newest go first, the rest next tick.
        let mut s = RoomScheduler::new(s.config().clone(), 0);
        for n in 0..10 {
            s.push(Priority::Danmaku, item(Priority::Danmaku, n), 0);
        }
        let first: Vec<u64> = s.tick(0).events.iter().map(|e| number(&e.body)).collect();
        let second: Vec<u64> = s.tick(100).events.iter().map(|e| number(&e.body)).collect();
        assert_eq!(first, vec![4, 5, 6, 7, 8, 9]);
        assert_eq!(second, vec![0, 1, 2, 3]);

        // FIFO would have sent the oldest six: items from three ticks back under the same flood.
        let mut c = s.config().clone();
        c.backlog_order = BacklogOrder::Oldest;
        let mut s = RoomScheduler::new(c, 0);
        for n in 0..150 {
            s.push(Priority::Danmaku, item(Priority::Danmaku, n), 0);
        }
        let got: Vec<u64> = s.tick(0).events.iter().map(|e| number(&e.body)).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(usize, u8),
        Tick(u16),
    }

    fn arb_ops() -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec(
            prop_oneof![
                3 => (0usize..4, 1u8..20).prop_map(|(q, n)| Op::Push(q, n)),
                1 => (0u16..300).prop_map(Op::Tick),
            ],
            1..200,
        )
    }

    fn arb_config() -> impl Strategy<Value = SchedulerConfig> {
        (
            1u64..500,
            1u32..200,
            proptest::array::uniform4(prop_oneof![Just(0.0f64), 0.0f64..1.0]),
            1usize..50,
            1usize..50,
            0u64..2000,
            any::<bool>(),
        )
            .prop_filter(
                "at least 0.1 event per tick, to drain in bounded time",
                |t| u64::from(t.1) * t.0 >= 100,
            )
            .prop_map(|(tick_ms, budget, ratios, gl, dm, age, newest)| {
                let mut c = config(tick_ms, budget, ratios);
                if c.weights.iter().sum::<u64>() == 0 {
                    c.weights = [1; 4];
                }
                c.gift_low_queue = gl;
                c.danmaku_queue = dm;
                c.max_age_ms = age;
                if newest {
                    c.backlog_order = BacklogOrder::Newest;
                }
                c
            })
    }

    proptest! {
        /// Runs random pushes and ticks, then drains: checks no system/high-gift loss, seq
        /// contiguity, the budget in every tick, arrival order within each queue in a tick
        /// (and across ticks for FIFO queues), newest-first choice under `Newest`, and that
        /// every pushed item is delivered, dropped or still waiting.
        #[test]
        fn invariants_hold_for_any_load(config in arb_config(), ops in arb_ops()) {
            let mut s = RoomScheduler::new(config.clone(), 0);
            let mut now = 0u64;
            let mut pushed = [0u64; 4];
            let mut delivered: Vec<Event> = Vec::new();
            let mut ticks = 0u64;
            let mut allowance_sum = 0u64;
            let mut run_tick = |s: &mut RoomScheduler, now: u64, delivered: &mut Vec<Event>| {
                let t = s.tick(now);
                prop_assert!(t.events.len() as u64 <= t.allowance, "over the allowance");
                prop_assert!(t.allowance <= config.max_per_tick());
                prop_assert_eq!(t.shares.iter().sum::<u64>(), t.allowance);
                prop_assert!(
                    t.events.windows(2).all(|w| w[0].priority.index() <= w[1].priority.index()),
                    "a tick's events are grouped by queue, highest first"
                );
                for p in Priority::ALL {
                    let got: Vec<u64> = t.events.iter().filter(|e| e.priority == p).map(|e| number(&e.body)).collect();
                    prop_assert!(got.windows(2).all(|w| w[0] < w[1]), "arrival order within {:?} in a tick", p);
                    let newest = config.backlog_order == BacklogOrder::Newest && config.bound(p).is_some();
                    if let (true, Some(&first)) = (newest, got.first()) {
                        let older = s.queues[p.index()].iter().all(|w| number(&w.pending.body) < first);
                        prop_assert!(older, "{:?} under Newest left a newer item waiting", p);
                    }
                }
                ticks += 1;
                allowance_sum += t.allowance;
                prop_assert_eq!(
                    allowance_sum,
                    ticks * u64::from(config.budget) * config.tick_ms / 1000,
                    "fractional room credit is carried exactly"
                );
                delivered.extend(t.events);
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Push(q, n) => {
                        let p = Priority::ALL[q];
                        for _ in 0..n {
                            s.push(p, item(p, pushed[q]), now);
                            pushed[q] += 1;
                        }
                    }
                    Op::Tick(dt) => {
                        now += u64::from(dt);
                        run_tick(&mut s, now, &mut delivered)?;
                    }
                }
            }
            // Drain with time standing still so nothing more goes stale.
            let mut guard = 0;
            while !s.is_empty() && guard < 1_000_000 {
                run_tick(&mut s, now, &mut delivered)?;
                guard += 1;
            }
            prop_assert!(s.is_empty());

            for (i, e) in delivered.iter().enumerate() {
                prop_assert_eq!(e.seq, i as u64 + 1, "seqs are contiguous from 1");
            }
            for p in Priority::ALL {
                let numbers: Vec<u64> = delivered
                    .iter()
                    .filter(|e| e.priority == p)
                    .map(|e| number(&e.body))
                    .collect();
                let fifo = config.backlog_order == BacklogOrder::Oldest || config.bound(p).is_none();
                if fifo {
                    prop_assert!(numbers.windows(2).all(|w| w[0] < w[1]), "FIFO within {:?}", p);
                }
                let drops = s.drops()[p.index()];
                prop_assert_eq!(numbers.len() as u64 + drops.overflow + drops.stale, pushed[p.index()]);
                if matches!(p, Priority::System | Priority::GiftHigh) {
                    prop_assert_eq!(numbers.len() as u64, pushed[p.index()], "{:?} lost", p);
                }
            }
        }

        /// With every queue always full, each queue gets its ratio of the allowance to within
        /// one event at every tick (fractions carried), and the whole allowance is used.
        #[test]
        fn shares_follow_ratios_with_carried_fractions(
            tick_ms in 1u64..500,
            budget in 1u32..300,
            ratios in proptest::array::uniform4(0.01f64..1.0),
            ticks in 1usize..300,
        ) {
            let mut c = config(tick_ms, budget, ratios);
            c.gift_low_queue = 100_000;
            c.danmaku_queue = 100_000;
            let weights = c.weights;
            let total_w: u64 = weights.iter().sum();
            let mut s = RoomScheduler::new(c, 0);
            let mut got = [0u64; 4];
            let mut allowance_sum = 0u64;
            let mut n = 0;
            for _ in 0..ticks {
                for p in Priority::ALL {
                    while s.len(p) < 1000 {
                        s.push(p, item(p, n), 0);
                        n += 1;
                    }
                }
                let t = s.tick(0);
                prop_assert_eq!(t.events.len() as u64, t.allowance, "full queues use the whole allowance");
                allowance_sum += t.allowance;
                for e in &t.events {
                    got[e.priority.index()] += 1;
                }
                for i in 0..4 {
                    let owed = allowance_sum as f64 * weights[i] as f64 / total_w as f64;
                    prop_assert!((got[i] as f64 - owed).abs() < 1.0 + 1e-9,
                        "queue {} got {} owed {}", i, got[i], owed);
                }
            }
        }

        /// Slots a queue cannot use pass down (and round from the top): whichever single queue
        /// has enough waiting gets the whole allowance, even one whose ratio is 0.
        #[test]
        fn unused_shares_pass_to_the_next_queue(
            tick_ms in 1u64..500,
            budget in 1u32..300,
            ratios in proptest::array::uniform4(prop_oneof![Just(0.0f64), 0.01f64..1.0]),
            waiting in 0usize..4,
            ticks in 1usize..50,
        ) {
            let mut c = config(tick_ms, budget, ratios);
            if c.weights.iter().sum::<u64>() == 0 {
                c.weights = [1; 4];
            }
            c.danmaku_queue = 100_000;
            c.gift_low_queue = 100_000;
            let mut s = RoomScheduler::new(c, 0);
            let p = Priority::ALL[waiting];
            for n in 0..20_000 {
                s.push(p, item(p, n), 0);
            }
            for _ in 0..ticks {
                let t = s.tick(0);
                prop_assert_eq!(t.events.len() as u64, t.allowance);
            }
        }
    }
}
