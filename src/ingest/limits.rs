//! Connection limits checked at accept: at most `max_connections` open at once, and at most
//! `max_connections_per_ip` from one address. A [`ConnectionPermit`] holds a place in both
//! until it is dropped, so a session that ends in any way (even a panic) gives it back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::telemetry;

/// Why a connection was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitRefusal {
    #[error("{limit} connections are open (rtmp.max_connections)")]
    Global { limit: usize },
    #[error("{limit} connections are open from this address (rtmp.max_connections_per_ip)")]
    PerIp { limit: usize },
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

/// The counters behind the limits, shared by the listener and every permit.
#[derive(Debug)]
pub struct ConnectionLimits {
    /// One permit per open connection.
    global: Arc<Semaphore>,
    max_connections: usize,
    /// Open connections per address; an address leaves the map at zero.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: usize,
}

impl ConnectionLimits {
    /// Limits for `max_connections` in all and `max_per_ip` per address.
    pub fn new(max_connections: usize, max_per_ip: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            global: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip,
        })
    }

    /// Admits a connection from `ip` or says which limit it hit.
    pub fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, LimitRefusal> {
        let mut per_ip = self.lock();
        let open = per_ip.get(&ip).copied().unwrap_or(0);
        if open >= self.max_per_ip {
            return Err(LimitRefusal::PerIp {
                limit: self.max_per_ip,
            });
        }
        let global = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| LimitRefusal::Global {
                limit: self.max_connections,
            })?;
        per_ip.insert(ip, open + 1);
        telemetry::connection_opened();
        Ok(ConnectionPermit {
            limits: self.clone(),
            ip,
            _global: global,
        })
    }

    /// Connections open from `ip` now.
    #[cfg(test)]
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.lock().get(&ip).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_ip.lock().unwrap_or_else(|p| p.into_inner())
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
        telemetry::connection_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_then_global_and_released_on_drop() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let c: IpAddr = "127.0.0.3".parse().unwrap();
        let a1 = limits.try_admit(a).unwrap();
        let _a2 = limits.try_admit(a).unwrap();
        assert_eq!(
            limits.try_admit(a).unwrap_err(),
            LimitRefusal::PerIp { limit: 2 }
        );
        let _b1 = limits.try_admit(b).unwrap();
        assert_eq!(
            limits.try_admit(c).unwrap_err(),
            LimitRefusal::Global { limit: 3 }
        );
        drop(a1);
        assert_eq!(limits.open_from(a), 1);
        let _c1 = limits.try_admit(c).unwrap();
        assert_eq!(limits.open_from(c), 1);
        drop(_c1);
        assert_eq!(limits.open_from(c), 0);
        assert!(limits.lock().get(&c).is_none());
    }
}
