//! Uplink flow control, coarse to fine as the seed article layers it: per connection (every
//! frame), per user (keyed by user id across the node), per room, and per node. Each layer is
//! a governor GCRA limiter; a refusal says which layer refused and when to try again.
//!
//! The clock is a parameter so tests drive time by hand ([`governor::clock::FakeRelativeClock`]).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::ChatConfig;

/// Which layer refused a message (the `reason` label of refusal metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    Connection,
    User,
    Room,
    Node,
}

impl Layer {
    /// The metric label and stats key of the layer.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Connection => "connection",
            Layer::User => "user",
            Layer::Room => "room",
            Layer::Node => "node",
        }
    }
}

/// A rate-limit refusal: the layer and how long until a retry can pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitRefusal {
    pub layer: Layer,
    pub retry_after: Duration,
}

/// The rates of every layer, from `[chat]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    pub conn_rate_per_s: f64,
    pub conn_burst: u32,
    pub user_rate_per_s: f64,
    pub user_burst: u32,
    pub room_rate_per_s: u32,
    pub node_rate_per_s: u32,
}

impl LimitsConfig {
    /// Reads the limit keys of `[chat]`.
    pub fn from_chat(c: &ChatConfig) -> LimitsConfig {
        LimitsConfig {
            conn_rate_per_s: c.conn_rate_per_s,
            conn_burst: c.conn_burst,
            user_rate_per_s: c.user_rate_per_s,
            user_burst: c.user_burst,
            room_rate_per_s: c.room_rate_per_s,
            node_rate_per_s: c.node_rate_per_s,
        }
    }
}

/// `rate` per second with bursts of `burst` (both at least the smallest usable value).
fn quota(rate_per_s: f64, burst: u32) -> Quota {
    let period = if rate_per_s.is_finite() && rate_per_s > 0.0 {
        Duration::from_secs_f64((1.0 / rate_per_s).min(1e9))
    } else {
        Duration::from_secs(1_000_000_000)
    };
    let period = period.max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst)
}

type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Keyed<C> =
    RateLimiter<String, DashMapStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One unkeyed limiter (a connection's or a room's), tagged with its layer.
pub struct LayerLimiter<C: Clock = DefaultClock> {
    layer: Layer,
    limiter: Direct<C>,
    clock: C,
}

impl<C: Clock> std::fmt::Debug for LayerLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LayerLimiter({})", self.layer.as_str())
    }
}

impl<C: Clock + Clone> LayerLimiter<C> {
    fn new(layer: Layer, quota: Quota, clock: C) -> LayerLimiter<C> {
        LayerLimiter {
            layer,
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
        }
    }

    /// Takes one cell, or says how long until one is free.
    pub fn check(&self) -> Result<(), LimitRefusal> {
        self.limiter.check().map_err(|not_until| LimitRefusal {
            layer: self.layer,
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }
}

/// The node-wide layers (per user, per node) and the factory for room and connection limiters.
pub struct NodeLimits<C: Clock = DefaultClock> {
    config: LimitsConfig,
    users: Keyed<C>,
    node: Direct<C>,
    clock: C,
}

impl<C: Clock> std::fmt::Debug for NodeLimits<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeLimits")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NodeLimits<DefaultClock> {
    /// Limits on the real clock.
    pub fn new(config: LimitsConfig) -> NodeLimits<DefaultClock> {
        NodeLimits::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> NodeLimits<C> {
    /// Limits on a given clock (tests pass a fake one).
    pub fn with_clock(config: LimitsConfig, clock: C) -> NodeLimits<C> {
        let users = RateLimiter::new(
            quota(config.user_rate_per_s, config.user_burst),
            DashMapStateStore::default(),
            clock.clone(),
        );
        let node_rate = config.node_rate_per_s.max(1);
        let node =
            RateLimiter::direct_with_clock(quota(f64::from(node_rate), node_rate), clock.clone());
        NodeLimits {
            config,
            users,
            node,
            clock,
        }
    }

    /// A fresh limiter for one connection's frames (all kinds, not only sends).
    pub fn connection_limiter(&self) -> LayerLimiter<C> {
        LayerLimiter::new(
            Layer::Connection,
            quota(self.config.conn_rate_per_s, self.config.conn_burst),
            self.clock.clone(),
        )
    }

    /// A fresh limiter for one room's accepted uplink (a second's worth of burst).
    pub fn room_limiter(&self) -> LayerLimiter<C> {
        let rate = self.config.room_rate_per_s.max(1);
        LayerLimiter::new(
            Layer::Room,
            quota(f64::from(rate), rate),
            self.clock.clone(),
        )
    }

    /// Checks a send against the user, room and node layers in that order; the first refusal
    /// wins (cells already taken by earlier layers stay taken: a refused flood still costs).
    pub fn check_send(&self, user: &str, room: &LayerLimiter<C>) -> Result<(), LimitRefusal> {
        let now = self.clock.now();
        self.users
            .check_key(&user.to_string())
            .map_err(|n| LimitRefusal {
                layer: Layer::User,
                retry_after: n.wait_time_from(now),
            })?;
        room.check()?;
        self.node.check().map_err(|n| LimitRefusal {
            layer: Layer::Node,
            retry_after: n.wait_time_from(self.clock.now()),
        })
    }

    /// Forgets users whose limiter is back to full (keeps the keyed map small).
    pub fn forget_idle_users(&self) {
        self.users.retain_recent();
        self.users.shrink_to_fit();
    }

    /// Users currently tracked by the per-user layer.
    pub fn tracked_users(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn config() -> LimitsConfig {
        LimitsConfig {
            conn_rate_per_s: 10.0,
            conn_burst: 2,
            user_rate_per_s: 1.0,
            user_burst: 3,
            room_rate_per_s: 5,
            node_rate_per_s: 7,
        }
    }

    #[test]
    fn a_user_gets_a_burst_then_one_per_second_with_retry_after() {
        let clock = FakeRelativeClock::default();
        let limits = NodeLimits::with_clock(config(), clock.clone());
        let room = limits.room_limiter();
        for _ in 0..3 {
            limits.check_send("a", &room).unwrap();
        }
        let refusal = limits.check_send("a", &room).unwrap_err();
        assert_eq!(refusal.layer, Layer::User);
        assert!(
            refusal.retry_after > Duration::ZERO && refusal.retry_after <= Duration::from_secs(1)
        );
        // Another user is not affected by a's flood.
        limits.check_send("b", &room).unwrap();
        clock.advance(Duration::from_secs(1));
        limits.check_send("a", &room).unwrap();
    }

    #[test]
    fn the_room_layer_caps_many_users_and_the_node_caps_many_rooms() {
        let clock = FakeRelativeClock::default();
        let limits = NodeLimits::with_clock(config(), clock.clone());
        let room = limits.room_limiter();
        for u in 0..5 {
            limits.check_send(&format!("u{u}"), &room).unwrap();
        }
        let refusal = limits.check_send("u5", &room).unwrap_err();
        assert_eq!(refusal.layer, Layer::Room);
        assert!(refusal.retry_after > Duration::ZERO);
        let other = limits.room_limiter();
        limits.check_send("v0", &other).unwrap();
        limits.check_send("v1", &other).unwrap();
        // 5 + 2 accepted on the node; the node cap is 7.
        assert_eq!(
            limits.check_send("v2", &other).unwrap_err().layer,
            Layer::Node
        );
    }

    #[test]
    fn a_connection_limiter_refuses_past_its_burst() {
        let clock = FakeRelativeClock::default();
        let limits = NodeLimits::with_clock(config(), clock.clone());
        let conn = limits.connection_limiter();
        conn.check().unwrap();
        conn.check().unwrap();
        let refusal = conn.check().unwrap_err();
        assert_eq!(refusal.layer, Layer::Connection);
        assert_eq!(refusal.retry_after, Duration::from_millis(100));
        clock.advance(Duration::from_millis(100));
        conn.check().unwrap();
    }

    #[test]
    fn idle_users_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let limits = NodeLimits::with_clock(config(), clock.clone());
        let room = limits.room_limiter();
        limits.check_send("a", &room).unwrap();
        assert_eq!(limits.tracked_users(), 1);
        clock.advance(Duration::from_secs(10));
        limits.forget_idle_users();
        assert_eq!(limits.tracked_users(), 0);
    }

    #[test]
    fn odd_rates_still_make_a_quota() {
        let _ = quota(0.0, 0);
        let _ = quota(f64::INFINITY, 1);
        let _ = quota(1e12, 5);
        let _ = quota(1e-12, 5);
    }
}
