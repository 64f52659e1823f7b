//! `barrage bench uplink`: the cost of the whole uplink path for one danmaku — decode the
//! client's JSON frame, the connection layer, per-user / per-room / per-node limits,
//! moderation (length, blocked words, mutes, bans, slow mode), and the room scheduler's queue —
//! in danmaku per second per core, with the share each layer refused. The baseline in the same
//! run is the minimum any server does with a frame: decode the same JSON and queue it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::auth::Role;
use crate::chat::codec::decode_client_text;
use crate::chat::protocol::ClientFrame;
use crate::chat::uplink::{self, Identity};
use crate::chat::ChatEngine;

/// What to run.
#[derive(Debug, Clone)]
pub struct UplinkOptions {
    pub messages: u64,
    pub users: u64,
    /// Per-user rate for the run (messages/s), so a share is refused by the user layer.
    pub user_rate: f64,
}

/// The run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct UplinkReport {
    pub messages: u64,
    pub users: u64,
    pub barrage_per_s_per_core: f64,
    pub baseline_per_s_per_core: f64,
    pub ratio: f64,
    /// Ack status -> share of messages.
    pub outcomes: BTreeMap<String, f64>,
}

fn frames(n: u64) -> Vec<String> {
    let words = [
        "666",
        "hello",
        "great show",
        "lol",
        "this has a badword",
        "wow",
    ];
    (0..n)
        .map(|i| {
            format!(
                "{{\"type\":\"send\",\"client_id\":{i},\"text\":\"{} {i}\",\"color\":16777215,\"mode\":\"scroll\"}}",
                words[(i % words.len() as u64) as usize]
            )
        })
        .collect()
}

/// Runs both paths on one thread and reports.
pub async fn run(opts: UplinkOptions) -> Result<UplinkReport, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = crate::testutil::test_config(dir.path());
    config.log = "warn".into();
    config.chat.user_rate_per_s = opts.user_rate;
    config.chat.user_burst = 3;
    config.chat.room_rate_per_s = 10_000_000;
    config.chat.node_rate_per_s = 10_000_000;
    config.chat.conn_rate_per_s = 10_000_000.0;
    config.chat.conn_burst = 1_000_000;
    config.chat.blocked_words = vec!["badword".into()];
    config.chat.danmaku_queue = 100_000;
    let server = crate::app::start(config).await.map_err(|e| e.to_string())?;
    let chat: Arc<ChatEngine> = server.state.chat.clone();
    let room = chat.room("demo").map_err(|e| e.to_string())?;
    let conn = chat.connection_limiter();
    let identities: Vec<Identity> = (0..opts.users)
        .map(|u| Identity {
            user: format!("user-{u}"),
            name: format!("User {u}"),
            role: Role::Viewer,
            room_claim: None,
            valid_until_ms: None,
        })
        .collect();
    let input = frames(opts.messages);
    eprintln!(
        "uplink: {} messages from {} users through decode, limits, moderation and the scheduler",
        opts.messages, opts.users
    );

    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let cpu0 = crate::proc_stats::cpu_seconds(None);
    let start = Instant::now();
    for (i, text) in input.iter().enumerate() {
        let who = &identities[i % identities.len()];
        let status = match decode_client_text(text) {
            Ok(ClientFrame::Send(send)) => match conn.check() {
                Ok(()) => format!(
                    "{:?}",
                    uplink::submit(&chat, &room, Some(who), &send, Ok(()))
                        .await
                        .status
                ),
                Err(_) => "connection_limited".to_string(),
            },
            Ok(_) => "other_frame".to_string(),
            Err(_) => "bad_frame".to_string(),
        };
        *outcomes.entry(status).or_default() += 1;
        if i % 200_000 == 0 && i > 0 {
            eprint!("\r  {i}/{}", opts.messages);
        }
    }
    let barrage_cpu = crate::proc_stats::cpu_seconds(None) - cpu0;
    let barrage_wall = start.elapsed();
    eprintln!();
    server.stop().await;

    // Baseline: decode the same frames and push them onto a bounded queue.
    let cpu0 = crate::proc_stats::cpu_seconds(None);
    let start = Instant::now();
    let mut queue: VecDeque<ClientFrame> = VecDeque::with_capacity(100_000);
    for text in &input {
        if let Ok(frame) = decode_client_text(text) {
            if queue.len() == 100_000 {
                queue.pop_front();
            }
            queue.push_back(frame);
        }
    }
    std::hint::black_box(&queue);
    let base_cpu = crate::proc_stats::cpu_seconds(None) - cpu0;
    let base_wall = start.elapsed();

    // CPU time when measurable, else wall time (one thread either way).
    let per_s = |cpu: f64, wall: Duration| {
        let t = if cpu > 0.05 { cpu } else { wall.as_secs_f64() };
        opts.messages as f64 / t.max(1e-9)
    };
    let barrage = per_s(barrage_cpu, barrage_wall);
    let baseline = per_s(base_cpu, base_wall);
    Ok(UplinkReport {
        messages: opts.messages,
        users: opts.users,
        barrage_per_s_per_core: barrage,
        baseline_per_s_per_core: baseline,
        ratio: barrage / baseline,
        outcomes: outcomes
            .into_iter()
            .map(|(k, v)| (k, v as f64 / opts.messages as f64))
            .collect(),
    })
}

/// The report as a Markdown table.
pub fn table(r: &UplinkReport) -> String {
    let mut out = format!(
        "uplink: {} messages, {} users\n\n| path | danmaku/s per core |\n|---|---|\n| barrage (decode + limits + moderation + scheduler) | {:.0} |\n| baseline (decode + queue) | {:.0} |\n\nratio barrage/baseline: {:.2}\n\n| outcome | share |\n|---|---|\n",
        r.messages, r.users, r.barrage_per_s_per_core, r.baseline_per_s_per_core, r.ratio
    );
    for (k, v) in &r.outcomes {
        out.push_str(&format!("| {k} | {:.1}% |\n", v * 100.0));
    }
    out
}
