//! Load and counts across nodes: every `report_ms` each node writes its report (viewers,
//! CPU, per-room online and uplink counters) under a key with a TTL of three periods, then
//! reads everyone's. Readers sum: a room's online count is its local viewers plus the others'
//! reports; stats add the other nodes' uplink counters; the allocator sorts the nodes by load.
//! A node that stops reporting drops out when its key expires.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::allocate::{Allocator, NodeLoad};
use super::Cluster;
use crate::chat::stats::RoomStats;
use crate::clock::now_ms;
use crate::rooms::live::{LiveInfo, Notice};
use crate::series::sample::Sample;
use crate::sync::lock;

/// One node's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    pub id: String,
    /// Base URL viewers reach the node at.
    pub url: String,
    /// WebSocket viewers on the node.
    pub connections: u64,
    /// Process CPU use, 0..=1 of the machine.
    pub cpu: f64,
    pub at_ms: i64,
    pub rooms: BTreeMap<String, RoomReport>,
    /// Broadcasts this node takes in: room -> session and wall time of the first frame.
    #[serde(default)]
    pub live: BTreeMap<String, LiveReport>,
    /// Recent notices of rooms whose broadcasts this node took in (refused codecs,
    /// reconnects, recoveries), for every node's host console.
    #[serde(default)]
    pub notices: BTreeMap<String, Vec<Notice>>,
    /// Each room's last seconds on this node ([`SERIES_IN_REPORT_S`]), which every node sums
    /// into its answer of `GET /api/rooms/{room}/series`.
    #[serde(default)]
    pub series: BTreeMap<String, Vec<(u64, Sample)>>,
}

/// Seconds of series a report carries: a report can be missed (Redis slow, a node late) and
/// the next still brings the seconds in between.
pub const SERIES_IN_REPORT_S: u64 = 5;

/// A broadcast one node takes in, as the others need it (stream time of their events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveReport {
    pub session: String,
    /// Wall-clock ms of the first frame (None until it came).
    pub first_frame_ms: Option<i64>,
    /// The broadcast's live status as this node has it (resolution, bitrate, reconnecting...).
    #[serde(default)]
    pub status: Option<LiveInfo>,
}

/// One room's numbers on one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoomReport {
    pub online: u64,
    pub owner: bool,
    pub uplink_received_total: u64,
    pub uplink_accepted_total: u64,
    pub uplink_received_per_s: f64,
    pub uplink_accepted_per_s: f64,
    pub refused: BTreeMap<String, u64>,
}

/// The latest reports and the allocator walking them.
#[derive(Debug)]
pub(crate) struct NodeTable {
    pub reports: Vec<NodeReport>,
    pub allocator: Allocator,
}

impl NodeTable {
    pub(crate) fn new(per_node: u32) -> NodeTable {
        NodeTable {
            reports: Vec::new(),
            allocator: Allocator::new(per_node),
        }
    }
}

/// This process's CPU use between two samples, as a share of the machine.
struct CpuSampler {
    last: Option<(Instant, f64)>,
    cores: f64,
}

impl CpuSampler {
    fn new() -> CpuSampler {
        CpuSampler {
            last: None,
            cores: std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
        }
    }

    fn sample(&mut self) -> f64 {
        let now = Instant::now();
        let cpu_s = crate::proc_stats::cpu_seconds(None);
        let share = match self.last {
            Some((at, before)) => {
                let secs = now.duration_since(at).as_secs_f64().max(1e-3);
                ((cpu_s - before) / secs / self.cores).clamp(0.0, 1.0)
            }
            None => 0.0,
        };
        self.last = Some((now, cpu_s));
        share
    }
}

impl Cluster {
    /// Reports this node and reads the others', every `report_ms`.
    pub(crate) async fn report_loop(self: Arc<Self>) {
        let mut cpu = CpuSampler::new();
        let mut every = tokio::time::interval(self.settings.report_every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            let mine = self.report(cpu.sample());
            let reports = if self.is_up() {
                match self.exchange(&mine).await {
                    Ok(reports) => reports,
                    Err(e) => {
                        self.redis_failed("report", &e);
                        vec![mine]
                    }
                }
            } else {
                vec![mine]
            };
            self.set_table(reports);
        }
    }

    fn report(&self, cpu: f64) -> NodeReport {
        let mut rooms = BTreeMap::new();
        let mut connections = 0;
        for shared in self.rooms_snapshot() {
            let s = shared.room.stats();
            let online = shared.room.local_online();
            connections += online;
            rooms.insert(
                shared.room.id.to_string(),
                RoomReport {
                    online,
                    owner: shared.is_owner(),
                    uplink_received_total: s.uplink_received_total,
                    uplink_accepted_total: s.uplink_accepted_total,
                    uplink_received_per_s: s.uplink_received_per_s,
                    uplink_accepted_per_s: s.uplink_accepted_per_s,
                    refused: s.refused,
                },
            );
        }
        let live = self
            .live
            .list()
            .into_iter()
            .map(|l| {
                (
                    l.room.clone(),
                    LiveReport {
                        session: l.session.clone(),
                        first_frame_ms: l.first_frame_ms,
                        status: Some(l),
                    },
                )
            })
            .collect();
        let notices = self.live.all_notices().into_iter().collect();
        let now_s = (now_ms().max(0) / 1000) as u64;
        let series = self.series.get().map_or_else(BTreeMap::new, |book| {
            book.recent(now_s.saturating_sub(SERIES_IN_REPORT_S), now_s)
        });
        NodeReport {
            id: self.node_id.clone(),
            url: self.advertise_url(),
            connections,
            cpu,
            at_ms: now_ms(),
            rooms,
            live,
            notices,
            series,
        }
    }

    /// Writes this node's report and reads every live node's (this one's included).
    async fn exchange(&self, mine: &NodeReport) -> redis::RedisResult<Vec<NodeReport>> {
        let ttl_ms = (self.settings.report_every * 3).as_millis() as u64;
        let body = serde_json::to_vec(mine).unwrap_or_default();
        let mut conn = self.link.conn();
        let (ids,): (Vec<String>,) = redis::pipe()
            .cmd("SET")
            .arg(self.keys.node(&self.node_id))
            .arg(body)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .sadd(self.keys.nodes(), &self.node_id)
            .ignore()
            .smembers(self.keys.nodes())
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(vec![mine.clone()]);
        }
        let keys: Vec<String> = ids.iter().map(|id| self.keys.node(id)).collect();
        let bodies: Vec<Option<Vec<u8>>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        let mut reports = Vec::new();
        let mut gone = Vec::new();
        for (id, body) in ids.iter().zip(bodies) {
            match body.and_then(|b| serde_json::from_slice::<NodeReport>(&b).ok()) {
                Some(r) => reports.push(r),
                None => gone.push(id.clone()),
            }
        }
        if !gone.is_empty() {
            let _ = redis::cmd("SREM")
                .arg(self.keys.nodes())
                .arg(&gone)
                .query_async::<()>(&mut conn)
                .await;
        }
        Ok(reports)
    }

    /// Keeps the reports, hands the load table to the allocator and the other nodes' online
    /// counts to this node's rooms.
    fn set_table(&self, reports: Vec<NodeReport>) {
        if let Some(book) = self.series.get() {
            for r in reports.iter().filter(|r| r.id != self.node_id) {
                for (room, points) in &r.series {
                    book.merge_remote(&r.id, room, points);
                }
            }
        }
        for shared in self.rooms_snapshot() {
            let others: u64 = reports
                .iter()
                .filter(|r| r.id != self.node_id)
                .filter_map(|r| r.rooms.get(&*shared.room.id))
                .map(|r| r.online)
                .sum();
            shared.room.set_others_online(others);
        }
        let loads = reports
            .iter()
            .filter(|r| !r.url.is_empty())
            .map(|r| NodeLoad {
                id: r.id.clone(),
                url: r.url.clone(),
                connections: r.connections,
                cpu: r.cpu,
            })
            .collect();
        let mut table = lock(&self.table);
        table.allocator.set_nodes(loads);
        table.reports = reports;
    }

    /// Stream time of a room's broadcast taken in by another node, from its report (wall
    /// clocks of the nodes agree to NTP accuracy, far below a danmaku's timing needs).
    pub(crate) fn remote_stream_ms(&self, room: &str) -> Option<u64> {
        let table = lock(&self.table);
        let live = table
            .reports
            .iter()
            .filter(|r| r.id != self.node_id)
            .find_map(|r| r.live.get(room))?;
        let first = live.first_frame_ms?;
        Some(u64::try_from(now_ms() - first).unwrap_or(0))
    }

    /// A room's broadcast taken in by another node, with that node's name, from the newest
    /// report that has it (reports live three `report_ms`; a dead node's drop out).
    pub fn live_elsewhere(&self, room: &str) -> Option<(String, LiveInfo)> {
        let table = lock(&self.table);
        table
            .reports
            .iter()
            .filter(|r| r.id != self.node_id)
            .filter_map(|r| r.live.get(room).map(|l| (r, l)))
            .max_by_key(|(r, _)| r.at_ms)
            .map(|(r, l)| (r.id.clone(), reported_status(room, l)))
    }

    /// The notices other nodes report for `room`.
    pub fn notices_elsewhere(&self, room: &str) -> Vec<Notice> {
        lock(&self.table)
            .reports
            .iter()
            .filter(|r| r.id != self.node_id)
            .filter_map(|r| r.notices.get(room))
            .flatten()
            .cloned()
            .collect()
    }

    /// A room's viewers on every node.
    pub fn online(&self, room: &str) -> u64 {
        let here = self.shared(room).map_or(0, |s| s.room.local_online());
        let others: u64 = lock(&self.table)
            .reports
            .iter()
            .filter(|r| r.id != self.node_id)
            .filter_map(|r| r.rooms.get(room))
            .map(|r| r.online)
            .sum();
        here + others
    }

    /// A room's stats with the other nodes' uplink counters added (online is already the
    /// sum, see [`crate::chat::room::Room::online`]).
    pub fn sum_stats(&self, mut stats: RoomStats) -> RoomStats {
        let table = lock(&self.table);
        for r in table.reports.iter().filter(|r| r.id != self.node_id) {
            let Some(room) = r.rooms.get(&stats.room) else {
                continue;
            };
            stats.uplink_received_total += room.uplink_received_total;
            stats.uplink_accepted_total += room.uplink_accepted_total;
            stats.uplink_received_per_s += room.uplink_received_per_s;
            stats.uplink_accepted_per_s += room.uplink_accepted_per_s;
            for (reason, n) in &room.refused {
                *stats.refused.entry(reason.clone()).or_default() += n;
            }
        }
        stats
    }

    /// WebSocket base URLs for one viewer: the assigned node first, then alternatives. This
    /// node alone when no report has been read (Redis down at start).
    pub fn assign(&self) -> Vec<String> {
        let picks = lock(&self.table).allocator.pick(self.settings.connect_urls);
        if picks.is_empty() {
            return vec![self.advertise_url()];
        }
        picks.into_iter().map(|n| n.url).collect()
    }

    /// The latest reports (for `/api/cluster`).
    pub fn reports(&self) -> Vec<NodeReport> {
        lock(&self.table).reports.clone()
    }
}

/// A reported broadcast's status (a node that reports no status: what its report says).
fn reported_status(room: &str, l: &LiveReport) -> LiveInfo {
    l.status.clone().unwrap_or_else(|| {
        let mut info = LiveInfo::new(room, &l.session, l.first_frame_ms.unwrap_or(0));
        info.first_frame_ms = l.first_frame_ms;
        info
    })
}
