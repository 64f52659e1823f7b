//! Every Redis key barrage uses, in one place, under `cluster.key_prefix`.

/// Key names for one cluster.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// The lease naming the node that runs the room's scheduler and CDN writer.
    pub(crate) fn owner(&self, room: &str) -> String {
        format!("{}:room:{room}:owner", self.prefix)
    }

    /// The node that has the room's RTMP push live (one publisher per room in the cluster).
    pub(crate) fn live(&self, room: &str) -> String {
        format!("{}:room:{room}:live", self.prefix)
    }

    /// The last seq the room's owner published (the next owner continues after it).
    pub(crate) fn seq(&self, room: &str) -> String {
        format!("{}:room:{room}:seq", self.prefix)
    }

    /// The stream of the room's delivered batches, read by every node.
    pub(crate) fn events(&self, room: &str) -> String {
        format!("{}:room:{room}:events", self.prefix)
    }

    /// The list of content other nodes accepted, popped by the owner.
    pub(crate) fn uplink(&self, room: &str) -> String {
        format!("{}:room:{room}:uplink", self.prefix)
    }

    /// The room id of an uplink key.
    pub(crate) fn room_of_uplink<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.prefix)?
            .strip_prefix(":room:")?
            .strip_suffix(":uplink")
    }

    /// Cluster-wide rate state of a user (GCRA theoretical arrival time).
    pub(crate) fn user_rate(&self, user: &str) -> String {
        format!("{}:rate:user:{user}", self.prefix)
    }

    /// Cluster-wide rate state of a room.
    pub(crate) fn room_rate(&self, room: &str) -> String {
        format!("{}:rate:room:{room}", self.prefix)
    }

    /// The set of node ids that have reported.
    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// One node's latest report (expires when the node stops reporting).
    pub(crate) fn node(&self, id: &str) -> String {
        format!("{}:node:{id}", self.prefix)
    }

    /// Changes every node applies (moderation), as a stream.
    pub(crate) fn control(&self) -> String {
        format!("{}:control", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uplink_keys_name_their_room() {
        let k = Keys::new("t1");
        assert_eq!(k.room_of_uplink(&k.uplink("demo")), Some("demo"));
        assert_eq!(k.room_of_uplink("t2:room:demo:uplink"), None);
        assert_eq!(k.room_of_uplink(&k.events("demo")), None);
    }
}
