//! Connection limits checked at accept, for RTMP ingest and for HTTP/WebSocket alike: at most
//! `max_connections` open at once, at most `max_connections_per_ip` from one address (an IPv6
//! /64 counts as one address), and at most `max_unauthenticated` of them not yet proven.
//!
//! A connection is *unauthenticated* from accept until its protocol says it is real (RTMP: a
//! publish was accepted; HTTP: a complete request head arrived) and calls
//! [`ConnectionPermit::authenticated`]. Until then it may be evicted, oldest first, to make
//! room for a new connection: when the unauthenticated budget is full, or when a new
//! connection would pass a limit and an unauthenticated one holds a place under it. So silent
//! connections from many addresses (measured before: 64 from 64 loopback addresses locked every
//! RTMP publisher out for the handshake deadline) cost only their own small budget, and a real
//! peer always gets in. Only proven connections can fill the limits, and then a new connection
//! is refused.
//!
//! A [`ConnectionPermit`] holds the connection's place until it is dropped (so a connection
//! that ends in any way, even a panic, gives it back) or the connection is evicted (its
//! [`ConnectionPermit::evicted`] token is cancelled; the session ends on it). Together with each
//! protocol's per-connection bounds this keeps the memory of a node bounded.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

/// Which listener the limits belong to: the config section that sets them (for messages) and
/// the gauge of open connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitScope {
    /// `rtmp` or `http`: the section holding `max_connections` and `max_connections_per_ip`.
    pub section: &'static str,
    /// Gauge of connections open now, e.g. `barrage_rtmp_connections`.
    pub gauge: &'static str,
}

/// Why a connection was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitRefusal {
    #[error("{limit} connections are open ({section}.max_connections)")]
    Global { limit: usize, section: &'static str },
    #[error("{limit} connections are open from this address ({section}.max_connections_per_ip)")]
    PerIp { limit: usize, section: &'static str },
}

impl LimitRefusal {
    /// Metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            LimitRefusal::Global { .. } => "max_connections",
            LimitRefusal::PerIp { .. } => "max_connections_per_ip",
        }
    }
}

/// The key per-address limits count under: an IPv4 address as it is, an IPv6 address by its
/// /64 (one subscriber is usually handed a whole /64, so counting exact IPv6 addresses would
/// let one host take every place), and an IPv4-mapped IPv6 address as its IPv4 address.
pub fn address_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// How many connections of each kind the limits allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSizes {
    pub max_connections: usize,
    pub max_per_ip: usize,
    /// Connections not yet proven, at most (a new one evicts the oldest past it).
    pub max_unauthenticated: usize,
}

/// One open connection's entry.
#[derive(Debug)]
struct Member {
    group: IpAddr,
    /// Cancelled when the connection is evicted.
    evicted: CancellationToken,
}

/// Who holds a place now. Ids grow with accept order, so the first unauthenticated id is the
/// oldest.
#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    members: HashMap<u64, Member>,
    per_group: HashMap<IpAddr, usize>,
    /// Unauthenticated members by id (accept order) with their address group.
    unauthenticated: BTreeMap<u64, IpAddr>,
}

impl Registry {
    /// Takes `id` out; false when it was already gone (evicted).
    fn release(&mut self, id: u64) -> bool {
        let Some(member) = self.members.remove(&id) else {
            return false;
        };
        self.unauthenticated.remove(&id);
        if let Some(open) = self.per_group.get_mut(&member.group) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                self.per_group.remove(&member.group);
            }
        }
        true
    }

    /// The oldest unauthenticated member (of `group`, when given).
    fn oldest_unauthenticated(&self, group: Option<IpAddr>) -> Option<u64> {
        self.unauthenticated
            .iter()
            .find(|(_, g)| group.is_none_or(|want| **g == want))
            .map(|(id, _)| *id)
    }
}

/// The counters behind the limits, shared by the listener and every permit.
#[derive(Debug)]
pub struct ConnectionLimits {
    sizes: LimitSizes,
    registry: Mutex<Registry>,
    scope: LimitScope,
}

impl ConnectionLimits {
    /// Limits of `sizes` (each at least 1).
    pub fn new(sizes: LimitSizes, scope: LimitScope) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            sizes: LimitSizes {
                max_connections: sizes.max_connections.max(1),
                max_per_ip: sizes.max_per_ip.max(1),
                max_unauthenticated: sizes.max_unauthenticated.max(1),
            },
            registry: Mutex::new(Registry::default()),
            scope,
        })
    }

    /// Admits a connection from `ip`, evicting the oldest unauthenticated connection where one
    /// stands in the way, or says which limit (held by proven connections only) it hit.
    pub fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, LimitRefusal> {
        let group = address_group(ip);
        let mut reg = self.lock();
        if reg.per_group.get(&group).copied().unwrap_or(0) >= self.sizes.max_per_ip {
            let Some(victim) = reg.oldest_unauthenticated(Some(group)) else {
                return Err(LimitRefusal::PerIp {
                    limit: self.sizes.max_per_ip,
                    section: self.scope.section,
                });
            };
            self.evict(&mut reg, victim);
        }
        if reg.members.len() >= self.sizes.max_connections {
            let Some(victim) = reg.oldest_unauthenticated(None) else {
                return Err(LimitRefusal::Global {
                    limit: self.sizes.max_connections,
                    section: self.scope.section,
                });
            };
            self.evict(&mut reg, victim);
        }
        if reg.unauthenticated.len() >= self.sizes.max_unauthenticated {
            if let Some(victim) = reg.oldest_unauthenticated(None) {
                self.evict(&mut reg, victim);
            }
        }
        let id = reg.next_id;
        reg.next_id += 1;
        let evicted = CancellationToken::new();
        reg.members.insert(
            id,
            Member {
                group,
                evicted: evicted.clone(),
            },
        );
        reg.unauthenticated.insert(id, group);
        *reg.per_group.entry(group).or_insert(0) += 1;
        metrics::gauge!(self.scope.gauge).increment(1.0);
        metrics::gauge!(self.unauthenticated_gauge()).increment(1.0);
        Ok(ConnectionPermit {
            limits: self.clone(),
            id,
            evicted,
        })
    }

    /// Ends connection `id` to make room: its place is free at once, its session ends on the
    /// cancelled token.
    fn evict(&self, reg: &mut Registry, id: u64) {
        let token = reg.members.get(&id).map(|m| m.evicted.clone());
        if reg.release(id) {
            metrics::gauge!(self.scope.gauge).decrement(1.0);
            metrics::gauge!(self.unauthenticated_gauge()).decrement(1.0);
            metrics::counter!(
                "barrage_connections_evicted_total",
                "section" => self.scope.section
            )
            .increment(1);
        }
        if let Some(token) = token {
            token.cancel();
        }
    }

    /// Gauge of unauthenticated connections of this scope.
    fn unauthenticated_gauge(&self) -> &'static str {
        match self.scope.section {
            "rtmp" => "barrage_rtmp_unauthenticated_connections",
            "http" => "barrage_http_unauthenticated_connections",
            _ => "barrage_unauthenticated_connections",
        }
    }

    /// Connections open from `ip`'s address group now.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.lock()
            .per_group
            .get(&address_group(ip))
            .copied()
            .unwrap_or(0)
    }

    /// Unauthenticated connections open now (never more than `max_unauthenticated`).
    pub fn unauthenticated(&self) -> usize {
        self.lock().unauthenticated.len()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        crate::sync::lock(&self.registry)
    }
}

/// A place in the limits for one connection; released on drop.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    id: u64,
    evicted: CancellationToken,
}

impl ConnectionPermit {
    /// Cancelled when the connection is evicted to make room for a new one (only ever while
    /// unauthenticated); its session should end then.
    pub fn evicted(&self) -> &CancellationToken {
        &self.evicted
    }

    /// The connection proved itself (a publish accepted, a complete request): from now on it
    /// is never evicted. Idempotent.
    pub fn authenticated(&self) {
        let mut reg = self.limits.lock();
        if reg.unauthenticated.remove(&self.id).is_some() {
            metrics::gauge!(self.limits.unauthenticated_gauge()).decrement(1.0);
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut reg = self.limits.lock();
        let was_unauthenticated = reg.unauthenticated.contains_key(&self.id);
        if reg.release(self.id) {
            metrics::gauge!(self.limits.scope.gauge).decrement(1.0);
            if was_unauthenticated {
                metrics::gauge!(self.limits.unauthenticated_gauge()).decrement(1.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: LimitScope = LimitScope {
        section: "test",
        gauge: "barrage_test_connections",
    };

    fn sizes(max_connections: usize, max_per_ip: usize, max_unauthenticated: usize) -> LimitSizes {
        LimitSizes {
            max_connections,
            max_per_ip,
            max_unauthenticated,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn proven_connections_fill_the_limits_then_new_ones_are_refused() {
        let limits = ConnectionLimits::new(sizes(3, 2, 3), SCOPE);
        let a1 = limits.try_admit(ip("127.0.0.1")).unwrap();
        let a2 = limits.try_admit(ip("127.0.0.1")).unwrap();
        a1.authenticated();
        a2.authenticated();
        assert_eq!(
            limits.try_admit(ip("127.0.0.1")).unwrap_err(),
            LimitRefusal::PerIp {
                limit: 2,
                section: "test"
            }
        );
        let b1 = limits.try_admit(ip("127.0.0.2")).unwrap();
        b1.authenticated();
        assert_eq!(
            limits.try_admit(ip("127.0.0.3")).unwrap_err(),
            LimitRefusal::Global {
                limit: 3,
                section: "test"
            }
        );
        drop(a1);
        assert_eq!(limits.open_from(ip("127.0.0.1")), 1);
        let c1 = limits.try_admit(ip("127.0.0.3")).unwrap();
        assert_eq!(limits.open_from(ip("127.0.0.3")), 1);
        drop(c1);
        assert_eq!(limits.open_from(ip("127.0.0.3")), 0);
        assert!(!limits.lock().per_group.contains_key(&ip("127.0.0.3")));
    }

    #[test]
    fn silent_connections_are_evicted_oldest_first_and_never_keep_a_new_one_out() {
        let limits = ConnectionLimits::new(sizes(64, 8, 4), SCOPE);
        // 100 silent connections from 100 addresses: only the newest 4 stay.
        let silent: Vec<ConnectionPermit> = (0..100)
            .map(|i| limits.try_admit(ip(&format!("127.0.{}.{}", i / 200, i % 200 + 1))))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(limits.unauthenticated(), 4);
        let evicted = silent.iter().filter(|p| p.evicted().is_cancelled()).count();
        assert_eq!(evicted, 96);
        assert!(silent[..96].iter().all(|p| p.evicted().is_cancelled()));
        // A real peer arrives, proves itself, and is never evicted by later silent ones.
        let publisher = limits.try_admit(ip("127.9.9.9")).unwrap();
        publisher.authenticated();
        for i in 0..20 {
            let _ = limits.try_admit(ip(&format!("127.1.0.{}", i + 1))).unwrap();
        }
        assert!(!publisher.evicted().is_cancelled());
        // Dropping evicted permits does not free places twice.
        drop(silent);
        assert_eq!(limits.lock().members.len(), 1, "only the publisher is left");
    }

    #[test]
    fn a_full_address_evicts_its_own_oldest_silent_connection() {
        let limits = ConnectionLimits::new(sizes(64, 2, 16), SCOPE);
        let a1 = limits.try_admit(ip("127.0.0.1")).unwrap();
        let a2 = limits.try_admit(ip("127.0.0.1")).unwrap();
        let other = limits.try_admit(ip("127.0.0.2")).unwrap();
        let a3 = limits.try_admit(ip("127.0.0.1")).unwrap();
        assert!(a1.evicted().is_cancelled());
        assert!(!a2.evicted().is_cancelled() && !other.evicted().is_cancelled());
        assert_eq!(limits.open_from(ip("127.0.0.1")), 2);
        drop((a2, a3));
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let limits = ConnectionLimits::new(sizes(100, 2, 100), SCOPE);
        let a = limits.try_admit(ip("2001:db8:1:2::1")).unwrap();
        let b = limits.try_admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        a.authenticated();
        b.authenticated();
        assert!(matches!(
            limits.try_admit(ip("2001:db8:1:2:abcd::1")),
            Err(LimitRefusal::PerIp { .. })
        ));
        let _other_64 = limits.try_admit(ip("2001:db8:1:3::1")).unwrap();
        assert_eq!(address_group(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }
}
