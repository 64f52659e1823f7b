//! How many guest tokens one address (an IPv6 /64 counts as one) and the whole node hand out.
//! Each guest token is a fresh user id, so without a bound a script mints identities forever
//! and walks past per-user rate limits, mutes and bans. Two GCRA limiters: per address group
//! (`auth.guest_tokens_per_ip_per_min`) and in total (`auth.guest_tokens_per_min`); a refusal
//! says how long until the next token would pass.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

type Plain<C> = NoOpMiddleware<<C as Clock>::Instant>;

use crate::conn_limits::address_group;

/// Address groups remembered before idle ones are forgotten (they are full again by then).
const FORGET_IDLE_PAST: usize = 10_000;

/// Which bound refused a guest token, and when a retry would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRefusal {
    /// `auth.guest_tokens_per_ip_per_min` or `auth.guest_tokens_per_min`.
    pub key: &'static str,
    pub retry_after: Duration,
}

/// The per-address and node-wide guest-token limiters.
pub struct GuestTokenLimits<C: Clock = DefaultClock> {
    per_address: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, C, Plain<C>>,
    total: RateLimiter<NotKeyed, InMemoryState, C, Plain<C>>,
    clock: C,
}

impl<C: Clock> std::fmt::Debug for GuestTokenLimits<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GuestTokenLimits")
    }
}

/// `per_min` tokens a minute, all of which may be taken at once.
fn per_minute(per_min: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_min).unwrap_or(NonZeroU32::MIN))
}

impl GuestTokenLimits<DefaultClock> {
    /// Limits on the real clock.
    pub fn new(per_ip_per_min: u32, total_per_min: u32) -> GuestTokenLimits<DefaultClock> {
        GuestTokenLimits::with_clock(per_ip_per_min, total_per_min, DefaultClock::default())
    }
}

impl<C: Clock + Clone> GuestTokenLimits<C> {
    /// Limits on `clock` (tests drive a fake one).
    pub fn with_clock(per_ip_per_min: u32, total_per_min: u32, clock: C) -> GuestTokenLimits<C> {
        GuestTokenLimits {
            per_address: RateLimiter::dashmap_with_clock(per_minute(per_ip_per_min), clock.clone()),
            total: RateLimiter::direct_with_clock(per_minute(total_per_min), clock.clone()),
            clock,
        }
    }

    /// Takes one token's place for `peer`, or says which limit refused. The address is checked
    /// first so one address hammering does not use up the node's total.
    pub fn check(&self, peer: IpAddr) -> Result<(), GuestRefusal> {
        if self.per_address.len() > FORGET_IDLE_PAST {
            self.per_address.retain_recent();
        }
        let now = self.clock.now();
        self.per_address
            .check_key(&address_group(peer))
            .map_err(|not_until| GuestRefusal {
                key: "auth.guest_tokens_per_ip_per_min",
                retry_after: not_until.wait_time_from(now),
            })?;
        self.total.check().map_err(|not_until| GuestRefusal {
            key: "auth.guest_tokens_per_min",
            retry_after: not_until.wait_time_from(now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn per_address_then_total_with_ipv6_by_64_and_refill_over_time() {
        let clock = FakeRelativeClock::default();
        let limits = GuestTokenLimits::with_clock(3, 5, clock.clone());
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let a_same_64: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        for _ in 0..2 {
            limits.check(a).unwrap();
        }
        limits.check(a_same_64).unwrap();
        let refusal = limits.check(a_same_64).unwrap_err();
        assert_eq!(refusal.key, "auth.guest_tokens_per_ip_per_min");
        assert_eq!(refusal.retry_after, Duration::from_secs(20));
        limits.check("10.0.0.1".parse().unwrap()).unwrap();
        limits.check("10.0.0.2".parse().unwrap()).unwrap();
        let refusal = limits.check("10.0.0.3".parse().unwrap()).unwrap_err();
        assert_eq!(refusal.key, "auth.guest_tokens_per_min");
        clock.advance(Duration::from_secs(60));
        limits.check(a).unwrap();
    }
}
