//! Who is live, as every node of a cluster answers it: this node's own broadcasts from its
//! registry, the others' from the reports they write to Redis (refreshed every
//! `cluster.report_ms`), each with the name of the node that takes it in. Room JSON, the room
//! lists (`?live=true`), the sessions' `live` flag and the pages built on them read this, so a
//! room live on node A is live on node B too. A node alone answers from its registry.

use std::sync::Arc;

use axum::extract::FromRef;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::rooms::live::{Notice, NOTICES_KEPT};
use crate::rooms::{LiveInfo, LiveRegistry};
use crate::state::AppState;

/// A room's broadcast and the node that takes it in.
#[derive(Debug, Clone, Serialize)]
pub struct LiveView {
    #[serde(flatten)]
    pub info: LiveInfo,
    /// The node that takes the push in (`cluster.node_id`).
    pub node: String,
}

/// The cluster-wide view of broadcasts (see the module doc).
#[derive(Clone)]
pub struct LiveStatus {
    live: Arc<LiveRegistry>,
    cluster: Option<Arc<Cluster>>,
    /// This node's name.
    node: String,
}

impl FromRef<AppState> for LiveStatus {
    fn from_ref(state: &AppState) -> LiveStatus {
        LiveStatus {
            live: state.live.clone(),
            cluster: state.cluster.clone(),
            node: state.config.cluster.node_id.clone(),
        }
    }
}

impl LiveStatus {
    /// `room`'s broadcast on any node, if one is live.
    pub fn get(&self, room: &str) -> Option<LiveView> {
        if let Some(info) = self.live.get(room) {
            return Some(LiveView {
                info,
                node: self.node.clone(),
            });
        }
        let (node, info) = self.cluster.as_ref()?.live_elsewhere(room)?;
        Some(LiveView { info, node })
    }

    /// Whether `room` is live on any node.
    pub fn is_live(&self, room: &str) -> bool {
        self.get(room).is_some()
    }

    /// `room`'s recent notices from every node, oldest first (the newest few).
    pub fn notices(&self, room: &str) -> Vec<Notice> {
        let mut all = self.live.notices(room);
        if let Some(cluster) = &self.cluster {
            all.extend(cluster.notices_elsewhere(room));
            all.sort_by_key(|n| n.at_ms);
        }
        let skip = all.len().saturating_sub(NOTICES_KEPT);
        all.split_off(skip)
    }
}
