//! Connection limits checked at accept, for RTMP ingest and for HTTP/WebSocket alike: at most
//! `max_connections` open at once, and at most `max_connections_per_ip` from one address. A
//! [`ConnectionPermit`] holds a place in both until it is dropped, so a connection that ends in
//! any way (even a panic) gives it back. Together with each protocol's per-connection bounds
//! this is what keeps the memory of a node bounded however many peers arrive.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// The counters behind the limits, shared by the listener and every permit.
#[derive(Debug)]
pub struct ConnectionLimits {
    /// One permit per open connection.
    global: Arc<Semaphore>,
    max_connections: usize,
    /// Open connections per address; an address leaves the map at zero.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: usize,
    scope: LimitScope,
}

impl ConnectionLimits {
    /// Limits for `max_connections` in all and `max_per_ip` per address.
    pub fn new(
        max_connections: usize,
        max_per_ip: usize,
        scope: LimitScope,
    ) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            global: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip,
            scope,
        })
    }

    /// Admits a connection from `ip` or says which limit it hit.
    pub fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, LimitRefusal> {
        let ip = address_group(ip);
        let mut per_ip = self.lock();
        let open = per_ip.get(&ip).copied().unwrap_or(0);
        if open >= self.max_per_ip {
            return Err(LimitRefusal::PerIp {
                limit: self.max_per_ip,
                section: self.scope.section,
            });
        }
        let global = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| LimitRefusal::Global {
                limit: self.max_connections,
                section: self.scope.section,
            })?;
        per_ip.insert(ip, open + 1);
        metrics::gauge!(self.scope.gauge).increment(1.0);
        Ok(ConnectionPermit {
            limits: self.clone(),
            ip,
            _global: global,
        })
    }

    /// Connections open from `ip` now.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.lock().get(&address_group(ip)).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        crate::sync::lock(&self.per_ip)
    }
}

/// A place in the limits for one connection; released on drop.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    _global: OwnedSemaphorePermit,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut per_ip = self.limits.lock();
        if let Some(open) = per_ip.get_mut(&self.ip) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                per_ip.remove(&self.ip);
            }
        }
        metrics::gauge!(self.limits.scope.gauge).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_then_global_and_released_on_drop() {
        const SCOPE: LimitScope = LimitScope {
            section: "test",
            gauge: "barrage_test_connections",
        };
        let limits = ConnectionLimits::new(3, 2, SCOPE);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let c: IpAddr = "127.0.0.3".parse().unwrap();
        let a1 = limits.try_admit(a).unwrap();
        let _a2 = limits.try_admit(a).unwrap();
        assert_eq!(
            limits.try_admit(a).unwrap_err(),
            LimitRefusal::PerIp {
                limit: 2,
                section: "test"
            }
        );
        let _b1 = limits.try_admit(b).unwrap();
        assert_eq!(
            limits.try_admit(c).unwrap_err(),
            LimitRefusal::Global {
                limit: 3,
                section: "test"
            }
        );
        drop(a1);
        assert_eq!(limits.open_from(a), 1);
        let _c1 = limits.try_admit(c).unwrap();
        assert_eq!(limits.open_from(c), 1);
        drop(_c1);
        assert_eq!(limits.open_from(c), 0);
        assert!(limits.lock().get(&c).is_none());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        const SCOPE: LimitScope = LimitScope {
            section: "test",
            gauge: "barrage_test_connections",
        };
        let limits = ConnectionLimits::new(100, 2, SCOPE);
        let _a = limits
            .try_admit("2001:db8:1:2::1".parse().unwrap())
            .unwrap();
        let _b = limits
            .try_admit("2001:db8:1:2:ffff::9".parse().unwrap())
            .unwrap();
        assert!(matches!(
            limits.try_admit("2001:db8:1:2:abcd::1".parse().unwrap()),
            Err(LimitRefusal::PerIp { .. })
        ));
        let _other_64 = limits
            .try_admit("2001:db8:1:3::1".parse().unwrap())
            .unwrap();
        assert_eq!(
            address_group("::ffff:10.1.2.3".parse().unwrap()),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }
}
