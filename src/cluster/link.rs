//! The connections to Redis: one auto-reconnecting multiplexed connection for every short
//! command, and dedicated connections for the blocking reads (a blocked XREAD or BLMPOP would
//! hold up every command queued behind it on a shared connection).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisResult};

use super::ClusterError;

/// How long a connection attempt may take; Redis on the same network answers in far less.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a short command may take before Redis is taken for down.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The node's way to Redis.
pub(crate) struct RedisLink {
    client: Client,
    manager: ConnectionManager,
}

impl RedisLink {
    /// Parses the URL; connects on first use (a Redis that is down at start is not an error).
    pub(crate) fn new(url: &str) -> Result<RedisLink, ClusterError> {
        let bad = |source| ClusterError::BadUrl {
            url: url.to_string(),
            source,
        };
        let client = Client::open(url).map_err(bad)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(bad)?;
        Ok(RedisLink { client, manager })
    }

    /// The shared connection (cheap clone; reconnects by itself after an error).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// A connection of its own for a loop that blocks up to `longest_block` per command.
    pub(crate) async fn dedicated(
        &self,
        longest_block: Duration,
    ) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(longest_block + RESPONSE_TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}
