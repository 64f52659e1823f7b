//! The `barrage` command: `serve` runs the service, `token` mints a viewer token, `bench` runs
//! the benchmarks (the load generators need the `bench` feature).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use barrage::auth::{parse_ttl, Role, TokenSigner};
use barrage::config::Config;
use barrage::secrets::Secrets;

#[derive(Parser)]
#[command(
    name = "barrage",
    version,
    about = "Live-streaming danmaku and chatroom broadcaster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (RTMP ingest, HLS, chat, API, pages).
    Serve {
        /// Config file (TOML); keys not given keep their defaults. Default: config/default.toml
        /// when present, else the built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Benchmarks (each reports against a baseline measured in the same run).
    Bench {
        #[command(subcommand)]
        bench: BenchCommand,
    },
    /// Print a signed token (JWT HS256) for a user, for testing or a business server to copy.
    /// Say which room it is for (--room), or --all-rooms for one without a room claim.
    #[command(group(clap::ArgGroup::new("scope").required(true).args(["room", "all_rooms"])))]
    Token {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "")]
        name: String,
        /// The room the token is for: a moderator or host token moderates only there.
        #[arg(long)]
        room: Option<String>,
        /// No room claim: a viewer sends in every room (a moderator or host token without a
        /// room moderates none; an admin token moderates every room).
        #[arg(long)]
        all_rooms: bool,
        /// viewer, moderator (mute, ban, delete, blocked words, slow mode in its room), host
        /// (a moderator who also posts system messages and reads the audit log), admin.
        #[arg(long, default_value = "viewer")]
        role: Role,
        /// Lifetime: 90s, 15m, 1h, 2d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: std::time::Duration,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

// Without the `bench` feature only `ingest` and `latency` (scripts) run; the others' options go unread.
#[derive(Subcommand)]
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
enum BenchCommand {
    /// WebSocket fan-out: viewers in one room, danmaku uplink, latency; vs a raw tokio baseline.
    Fanout {
        #[arg(long, default_value_t = 1000)]
        viewers: usize,
        /// Danmaku per second sent into the room.
        #[arg(long, default_value_t = 1000)]
        uplink: u32,
        #[arg(long, default_value_t = 10)]
        senders: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Viewers per child process (each process holds its own sockets).
        #[arg(long, default_value_t = 5000)]
        per_process: usize,
        /// chat.budget for the run (events per viewer per second; default config: 60).
        #[arg(long)]
        budget: Option<u32>,
        /// chat.tick_ms for both sides (one frame per viewer per tick; default config: 100).
        #[arg(long)]
        tick_ms: Option<u64>,
        /// goim's published load shape: one frame a second per viewer carrying ~36 events
        /// (tick 1000 ms and budget 36 unless given; pair it with e.g. `--uplink 40`).
        #[arg(long)]
        goim: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// (internal) run one side in this process: barrage or baseline.
        #[arg(long, hide = true)]
        side: Option<String>,
        /// (internal) events per frame the baseline side sends.
        #[arg(long, hide = true, default_value_t = 1)]
        frame_events: usize,
        /// (internal) bytes per frame the baseline side sends.
        #[arg(long, hide = true, default_value_t = 0.0)]
        frame_bytes: f64,
    },
    /// Uplink path cost: decode, limits, moderation, scheduler; vs decode + queue.
    Uplink {
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        #[arg(long, default_value_t = 10_000)]
        users: u64,
        /// Per-user rate (messages/s) in force for the run.
        #[arg(long, default_value_t = 1.0)]
        user_rate: f64,
        #[arg(long)]
        json: bool,
    },
    /// Danmaku files: rooms x period on the local store and an S3 server; vs plain puts.
    Cdn {
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value_t = 1000)]
        period_ms: u64,
        #[arg(long, default_value_t = 20)]
        events_per_s: u64,
        #[arg(long)]
        json: bool,
    },
    /// RTMP ingest vs nginx-rtmp (runs scripts/bench_ingest.py from the repository).
    Ingest {
        #[arg(long, default_value = "1,8")]
        streams: String,
        #[arg(long, default_value_t = 40)]
        seconds: u64,
        /// barrage's hls.part_ms for the run (0: no LL-HLS parts, like nginx-rtmp).
        #[arg(long, default_value_t = 0)]
        part_ms: u64,
        /// Runs of each pair (barrage, then nginx-rtmp).
        #[arg(long, default_value_t = 1)]
        rounds: u32,
        /// A new ext4 file system for each server run (root only; see the script).
        #[arg(long)]
        fresh_fs: bool,
        #[arg(long)]
        json: bool,
    },
    /// Ingest-to-screen latency of plain HLS, LL-HLS and HTTP-FLV in headless Chromium (runs
    /// scripts/bench_latency.mjs from the repository with this binary).
    Latency {
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Paths to measure: hls, llhls, flv.
        #[arg(long, default_value = "hls,llhls,flv")]
        modes: String,
        /// `hls.part_ms` of the LL-HLS run.
        #[arg(long, default_value_t = 200)]
        part_ms: u64,
        /// Plain HTTP-FLV readers for the per-viewer CPU figure (0: skip it).
        #[arg(long, default_value_t = 100)]
        flv_viewers: u64,
        #[arg(long)]
        json: bool,
    },
    /// (internal) a viewer process of the fan-out benchmark.
    #[command(hide = true)]
    Viewers {
        #[arg(long)]
        url: String,
        #[arg(long)]
        server: std::net::SocketAddr,
        #[arg(long)]
        bind: std::net::IpAddr,
        #[arg(long)]
        count: usize,
    },
}

/// Runs a benchmark that is a script in the repository, with this binary as `BENCH_BARRAGE_BIN`.
fn run_script(name: &str, program: &str, script: &str, args: &[String]) -> ExitCode {
    let mut cmd = std::process::Command::new(program);
    cmd.arg(script).args(args);
    if let Ok(me) = std::env::current_exe() {
        cmd.env("BENCH_BARRAGE_BIN", me);
    }
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("barrage bench {name}: cannot run {program} {script} (run from the repository): {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_bench(bench: BenchCommand) -> ExitCode {
    match bench {
        #[cfg(feature = "bench")]
        BenchCommand::Viewers {
            url,
            server,
            bind,
            count,
        } => match barrage::bench::viewers::run(url, server, bind, count) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("barrage bench viewers: {e}");
                ExitCode::FAILURE
            }
        },
        #[cfg(feature = "bench")]
        BenchCommand::Fanout {
            viewers,
            uplink,
            senders,
            seconds,
            per_process,
            budget,
            tick_ms,
            goim,
            json,
            side,
            frame_events,
            frame_bytes,
        } => {
            use barrage::bench::fanout::{self, FanoutOptions, Side};
            let opts = FanoutOptions {
                viewers,
                uplink_per_s: uplink,
                senders: senders.max(1),
                seconds: seconds.max(1),
                per_process: per_process.max(1),
                budget,
                tick_ms,
            };
            let opts = if goim { fanout::goim_shape(opts) } else { opts };
            let side = match side.as_deref() {
                None => return report(fanout::run(opts), json, fanout::table),
                Some("barrage") => Side::Barrage,
                Some("baseline") => Side::Baseline {
                    events_per_frame: frame_events,
                    bytes_per_frame: frame_bytes,
                },
                Some(other) => {
                    eprintln!("barrage bench fanout: --side is barrage or baseline, not {other}");
                    return ExitCode::FAILURE;
                }
            };
            report(fanout::run_side(opts, side), true, |_| String::new())
        }
        #[cfg(feature = "bench")]
        BenchCommand::Uplink {
            messages,
            users,
            user_rate,
            json,
        } => {
            let opts = barrage::bench::uplink::UplinkOptions {
                messages: messages.max(1),
                users: users.max(1),
                user_rate: user_rate.max(0.001),
            };
            report(barrage::bench::uplink::run(opts), json, |r| {
                barrage::bench::uplink::table(r)
            })
        }
        #[cfg(feature = "bench")]
        BenchCommand::Cdn {
            rooms,
            seconds,
            period_ms,
            events_per_s,
            json,
        } => {
            let opts = barrage::bench::cdn::CdnOptions {
                rooms: rooms.max(1),
                seconds: seconds.max(1),
                period_ms: period_ms.max(100),
                events_per_s,
            };
            let shown = opts.clone();
            report(barrage::bench::cdn::run(opts), json, move |r| {
                barrage::bench::cdn::table(&shown, r)
            })
        }
        BenchCommand::Ingest {
            streams,
            seconds,
            part_ms,
            rounds,
            fresh_fs,
            json,
        } => {
            let mut args = vec![
                "--streams".to_string(),
                streams,
                "--seconds".to_string(),
                seconds.to_string(),
                "--part-ms".to_string(),
                part_ms.to_string(),
                "--rounds".to_string(),
                rounds.to_string(),
            ];
            if fresh_fs {
                args.push("--fresh-fs".into());
            }
            if json {
                args.push("--json".into());
            }
            run_script("ingest", "python3", "scripts/bench_ingest.py", &args)
        }
        BenchCommand::Latency {
            seconds,
            modes,
            part_ms,
            flv_viewers,
            json,
        } => {
            let mut args = vec![
                "--seconds".to_string(),
                seconds.to_string(),
                "--modes".into(),
                modes,
                "--part-ms".into(),
                part_ms.to_string(),
                "--flv-viewers".into(),
                flv_viewers.to_string(),
            ];
            if json {
                args.push("--json".into());
            }
            run_script("latency", "node", "scripts/bench_latency.mjs", &args)
        }
        #[cfg(not(feature = "bench"))]
        _ => {
            eprintln!(
                "barrage bench: this binary was built without the load generators; \
                 build it with `cargo build --release --features bench`"
            );
            ExitCode::from(2)
        }
    }
}

/// Runs a benchmark future on a fresh runtime and prints its report as a table or JSON.
#[cfg(feature = "bench")]
fn report<T: serde::Serialize>(
    run: impl std::future::Future<Output = Result<T, String>>,
    json: bool,
    table: impl FnOnce(&T) -> String,
) -> ExitCode {
    init_logging("warn");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("barrage: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(r) if json => {
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!("{}", table(&r));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("barrage bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<PathBuf>) -> Result<Config, barrage::config::ConfigError> {
    let default = PathBuf::from("config/default.toml");
    let path = path.or_else(|| default.exists().then_some(default));
    Config::load(path.as_deref())
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let config = match load_config(config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("barrage: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logging(&config.log);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("barrage: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(barrage::app::run_until_signal(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("barrage: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench { bench } => run_bench(bench),
        Command::Token {
            user,
            name,
            room,
            all_rooms: _,
            role,
            ttl,
            config,
        } => {
            let result = load_config(config)
                .map_err(|e| e.to_string())
                .and_then(|c| Secrets::load_or_generate(&c).map_err(|e| e.to_string()));
            match result {
                Ok(secrets) => {
                    let signer = TokenSigner::new(&secrets.token_secret);
                    println!("{}", signer.mint(&user, &name, role, room.as_deref(), ttl));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("barrage: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
