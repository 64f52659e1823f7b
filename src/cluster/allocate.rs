//! The access-address allocator of the seed article: nodes sorted by load, and each address
//! handed out a fixed number of times before the next one, so the least-loaded node is not
//! flattened by every request that arrives between two load reports. Pure: the table comes
//! from the reports, the picks go to the connect endpoint.

/// One node as the allocator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeLoad {
    pub id: String,
    /// The node's base URL (`http://host:port`).
    pub url: String,
    /// WebSocket viewers connected to it.
    pub connections: u64,
    /// Its process CPU use, 0..=1 of the machine.
    pub cpu: f64,
}

impl NodeLoad {
    /// Sort key: a node past [`HOT_CPU`] goes behind every other (whatever its count), then
    /// fewest connections first.
    fn rank(&self) -> (bool, u64) {
        (self.cpu >= HOT_CPU, self.connections)
    }
}

/// CPU share (of the machine) past which a node is avoided while others are cooler.
pub const HOT_CPU: f64 = 0.85;

/// Walks the load-sorted list with a fixed number of assignments per address.
#[derive(Debug, Clone)]
pub struct Allocator {
    nodes: Vec<NodeLoad>,
    per_node: u32,
    cursor: usize,
    given: u32,
}

impl Allocator {
    /// An allocator giving each address `per_node` viewers in turn (at least 1).
    pub fn new(per_node: u32) -> Allocator {
        Allocator {
            nodes: Vec::new(),
            per_node: per_node.max(1),
            cursor: 0,
            given: 0,
        }
    }

    /// A fresh load table: sorted, and the walk starts again from the least loaded.
    pub fn set_nodes(&mut self, mut nodes: Vec<NodeLoad>) {
        nodes.sort_by(|a, b| a.rank().cmp(&b.rank()).then_with(|| a.id.cmp(&b.id)));
        self.nodes = nodes;
        self.cursor = 0;
        self.given = 0;
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Assigns one viewer: the current address first (it is charged one assignment), then up
    /// to `n - 1` alternatives that follow it in load order, for the client to fail over to.
    pub fn pick(&mut self, n: usize) -> Vec<NodeLoad> {
        if self.nodes.is_empty() || n == 0 {
            return Vec::new();
        }
        let len = self.nodes.len();
        let start = self.cursor % len;
        let picked: Vec<NodeLoad> = (0..n.min(len))
            .map(|i| self.nodes[(start + i) % len].clone())
            .collect();
        self.given += 1;
        if self.given >= self.per_node {
            self.given = 0;
            self.cursor = (start + 1) % len;
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, connections: u64, cpu: f64) -> NodeLoad {
        NodeLoad {
            id: id.into(),
            url: format!("http://{id}"),
            connections,
            cpu,
        }
    }

    #[test]
    fn each_address_gets_its_share_in_load_order_then_the_walk_wraps() {
        let mut a = Allocator::new(2);
        a.set_nodes(vec![
            node("busy", 900, 0.1),
            node("idle", 10, 0.0),
            node("mid", 300, 0.05),
        ]);
        let firsts: Vec<String> = (0..8).map(|_| a.pick(1)[0].id.clone()).collect();
        assert_eq!(
            firsts,
            ["idle", "idle", "mid", "mid", "busy", "busy", "idle", "idle"]
        );
    }

    #[test]
    fn alternatives_follow_the_pick_and_never_repeat() {
        let mut a = Allocator::new(1);
        a.set_nodes(vec![
            node("a", 1, 0.0),
            node("b", 2, 0.0),
            node("c", 3, 0.0),
        ]);
        let ids = |v: Vec<NodeLoad>| v.into_iter().map(|n| n.id).collect::<Vec<_>>();
        assert_eq!(ids(a.pick(3)), ["a", "b", "c"]);
        assert_eq!(ids(a.pick(5)), ["b", "c", "a"]);
        assert_eq!(ids(a.pick(2)), ["c", "a"]);
    }

    #[test]
    fn a_busy_cpu_outranks_a_low_count_and_a_new_table_restarts_the_walk() {
        let mut a = Allocator::new(1);
        a.set_nodes(vec![
            node("hot", 1, 0.95),
            node("cool", 5000, 0.2),
            node("warm", 4000, 0.6),
        ]);
        assert_eq!(a.pick(1)[0].id, "warm");
        assert_eq!(a.pick(1)[0].id, "cool");
        assert_eq!(a.pick(1)[0].id, "hot");
        a.set_nodes(vec![node("hot", 1, 0.95), node("cool", 5000, 0.2)]);
        assert_eq!(a.pick(1)[0].id, "cool");
        let mut empty = Allocator::new(3);
        assert!(empty.pick(2).is_empty());
        empty.set_nodes(vec![node("x", 0, 0.0)]);
        assert_eq!(empty.pick(0).len(), 0);
        assert_eq!(empty.pick(3).len(), 1);
    }
}
