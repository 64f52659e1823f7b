//! The cluster-wide uplink layers: one GCRA per user and per room, kept in Redis so a user
//! sending through two nodes gets one budget, not one per node.
//!
//! The trade-off: an exact shared limit costs one Redis round trip per send (sub-millisecond
//! on a LAN; a user sends about once a second, so this is small next to delivery), where a
//! local share of the budget (each node `rate / nodes`) would cost nothing per send but is
//! unfair when a user's or a room's senders are spread unevenly, and wrong for a user on one
//! node. The node layer stays local (it protects the node itself). When Redis does not
//! answer, sends pass this layer and the local layers alone apply.

use std::time::Duration;

use super::{scripts, Cluster};
use crate::chat::limits::{Layer, LimitRefusal};

impl Cluster {
    /// Takes a cell from the user's and the room's shared limiters (user first).
    pub(crate) async fn check_send_shared(
        &self,
        room: &str,
        user: &str,
    ) -> Result<(), LimitRefusal> {
        if !self.is_up() {
            return Ok(());
        }
        let (user_interval, user_burst) = self.settings.user_quota;
        let (room_interval, room_burst) = self.settings.room_quota;
        let mut conn = self.link.conn();
        let verdict = scripts::GCRA
            .key(self.keys.user_rate(user))
            .key(self.keys.room_rate(room))
            .arg(user_interval)
            .arg(user_burst)
            .arg(room_interval)
            .arg(room_burst)
            .invoke_async::<(i64, i64)>(&mut conn)
            .await;
        match verdict {
            Ok((0, _)) => Ok(()),
            Ok((which, wait_us)) => {
                let layer = if which == 1 { Layer::User } else { Layer::Room };
                metrics::counter!("barrage_cluster_limit_refusals_total", "layer" => layer.as_str())
                    .increment(1);
                Err(LimitRefusal {
                    layer,
                    retry_after: Duration::from_micros(wait_us.max(1) as u64),
                })
            }
            Err(e) => {
                self.redis_failed("limits", &e);
                Ok(())
            }
        }
    }
}
