//! `barrage bench cdn`: R rooms each writing one danmaku file per period (plus its index), on
//! the local store and on a real S3-protocol server (s3s-fs). Reports files written per
//! second and the delay from a period's cut to its file being stored (p50/p99/max, from the
//! stored object's time), against a baseline in the same run: plain puts of objects of the same
//! size at the same rate, timed directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cdn::publisher::{CdnPublisher, PublisherSettings};
use crate::cdn::weights::WeightedBases;
use crate::cdn::CdnEvent;
use crate::db::Database;
use crate::rooms::live::LiveRegistry;
use crate::storage::Storage;

/// What to run.
#[derive(Debug, Clone)]
pub struct CdnOptions {
    pub rooms: usize,
    pub seconds: u64,
    pub period_ms: u64,
    /// Danmaku per room per second.
    pub events_per_s: u64,
}

/// One store's figures.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    pub store: String,
    pub files: u64,
    pub files_per_s: f64,
    pub mean_file_bytes: f64,
    pub delay_p50_ms: f64,
    pub delay_p99_ms: f64,
    pub delay_max_ms: f64,
    pub baseline_puts_per_s: f64,
    pub baseline_p50_ms: f64,
    pub baseline_p99_ms: f64,
    pub baseline_max_ms: f64,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

async fn run_store(name: &str, storage: Storage, opts: &CdnOptions) -> Result<StoreReport, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = Database::open(&format!("sqlite://{}/bench.db", dir.path().display()))
        .await
        .map_err(|e| e.to_string())?;
    let live = Arc::new(LiveRegistry::new());
    let (written_tx, mut written_rx) = tokio::sync::mpsc::unbounded_channel();
    let publisher = CdnPublisher::start(
        storage.clone(),
        db,
        live,
        PublisherSettings {
            period: Duration::from_millis(opts.period_ms),
            max_pending: 3600,
            bases: Arc::new(WeightedBases::new(vec![])),
            hls_base: None,
            written: Some(written_tx),
        },
        Arc::new(|_: &str| 1),
    );
    let rooms: Vec<String> = (0..opts.rooms).map(|i| format!("bench{i}")).collect();
    let mut seqs = vec![0u64; opts.rooms];
    let step = Duration::from_millis(50);
    let per_step = opts.events_per_s as f64 * step.as_secs_f64();
    let mut credit = 0.0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(opts.seconds) {
        credit += per_step;
        let n = credit.floor() as u64;
        credit -= n as f64;
        for (i, room) in rooms.iter().enumerate() {
            let events = (0..n)
                .map(|_| {
                    seqs[i] += 1;
                    let seq = seqs[i];
                    CdnEvent {
                        seq,
                        ts_ms: crate::clock::now_ms(),
                        stream_ms: seq * 50,
                        json: serde_json::value::to_raw_value(&serde_json::json!({"seq": seq, "priority": "danmaku",
                            "danmaku": {"user": "u", "name": "bench", "text": "bench 666 comment", "color": 16777215, "mode": "scroll"}}))
                        .expect("JSON values serialise"),
                    }
                })
                .collect();
            publisher.deliver(room, events);
        }
        let before = start.elapsed().as_secs();
        tokio::time::sleep(step).await;
        if start.elapsed().as_secs() != before {
            eprint!(
                "\r  {name}: {:>3}/{} s",
                start.elapsed().as_secs(),
                opts.seconds
            );
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    publisher.shutdown(Duration::from_secs(60)).await;
    eprintln!();

    // Cut-to-stored delay of every file, as the uploader saw it.
    drop(publisher);
    let mut delays = hist();
    let mut files = 0u64;
    let mut bytes = 0u64;
    while let Ok(w) = written_rx.try_recv() {
        let _ = delays.record(w.delay.as_micros().max(1) as u64);
        files += 1;
        bytes += w.bytes as u64;
    }
    let mean = if files > 0 {
        bytes as f64 / files as f64
    } else {
        0.0
    };

    // Baseline: the same number of same-sized puts, paced per period, timed directly.
    let body = Bytes::from(vec![b'x'; mean.max(1.0) as usize]);
    let mut base = hist();
    let periods = (opts.seconds * 1000 / opts.period_ms).max(1);
    let base_start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(opts.period_ms));
    for p in 0..periods {
        ticker.tick().await;
        let puts = rooms.iter().map(|room| {
            let storage = storage.clone();
            let body = body.clone();
            let key = format!("danmaku/baseline/{room}/{p}.json");
            async move {
                let t = Instant::now();
                let ok = storage.put(&key, body).await.is_ok();
                (ok, t.elapsed())
            }
        });
        for (ok, took) in futures::future::join_all(puts).await {
            if ok {
                let _ = base.record(took.as_micros().max(1) as u64);
            }
        }
    }
    let base_elapsed = base_start.elapsed().as_secs_f64();
    Ok(StoreReport {
        store: name.to_string(),
        files,
        files_per_s: files as f64 / elapsed,
        mean_file_bytes: mean,
        delay_p50_ms: ms(&delays, 0.5),
        delay_p99_ms: ms(&delays, 0.99),
        delay_max_ms: if delays.is_empty() {
            0.0
        } else {
            delays.max() as f64 / 1000.0
        },
        baseline_puts_per_s: base.len() as f64 / base_elapsed,
        baseline_p50_ms: ms(&base, 0.5),
        baseline_p99_ms: ms(&base, 0.99),
        baseline_max_ms: if base.is_empty() {
            0.0
        } else {
            base.max() as f64 / 1000.0
        },
    })
}

/// Runs the local store, then an s3s-fs server.
pub async fn run(opts: CdnOptions) -> Result<Vec<StoreReport>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let local = Storage::local(&dir.path().join("local")).map_err(|e| e.to_string())?;
    eprintln!(
        "cdn: {} rooms, period {} ms, {} danmaku/s per room, {} s per store",
        opts.rooms, opts.period_ms, opts.events_per_s, opts.seconds
    );
    let mut out = vec![run_store("local", local, &opts).await?];
    let s3 = crate::testutil::S3Server::start(&dir.path().join("s3"));
    let mut config = crate::testutil::test_config(dir.path());
    s3.configure(&mut config, "bench");
    let storage = Storage::from_config(&config).map_err(|e| e.to_string())?;
    out.push(run_store("s3 (s3s-fs)", storage, &opts).await?);
    Ok(out)
}

/// The reports as a Markdown table.
pub fn table(opts: &CdnOptions, reports: &[StoreReport]) -> String {
    let mut out = format!(
        "cdn: {} rooms x period {} ms, {} danmaku/s per room\n\n| store | files/s | B/file | cut->stored p50 / p99 / max ms | baseline puts/s | baseline put p50 / p99 / max ms |\n|---|---|---|---|---|---|\n",
        opts.rooms, opts.period_ms, opts.events_per_s
    );
    for r in reports {
        out.push_str(&format!(
            "| {} | {:.1} | {:.0} | {:.1} / {:.1} / {:.1} | {:.1} | {:.1} / {:.1} / {:.1} |\n",
            r.store,
            r.files_per_s,
            r.mean_file_bytes,
            r.delay_p50_ms,
            r.delay_p99_ms,
            r.delay_max_ms,
            r.baseline_puts_per_s,
            r.baseline_p50_ms,
            r.baseline_p99_ms,
            r.baseline_max_ms
        ));
    }
    out
}
