//! Fuzz harnesses: one plain function per parser that faces the network, taking the raw bytes
//! a hostile peer controls. The `fuzz/` targets are one-liners calling these (libFuzzer through
//! cargo-fuzz), and `tests/fuzz_replay.rs` replays every committed seed and regression input
//! through the very same functions in a normal `cargo test`, so CI checks the corpus without a
//! fuzzer build. A harness returns normally for any input the service survives; it panics (a
//! finding) only when the service would crash, hang or break one of the invariants it checks.
//! See docs/RELIABILITY.md.

mod chat;
mod media;
mod memory_peer;
mod rtmp;

pub use chat::{api_body, chat_frame, API_BODY_ROUTES};
pub use media::{encode_media_record, media_tags, MediaRecordKind};
pub use rtmp::{
    amf0_message, plain_handshake, rtmp_session, run_session, split_messages, SessionReport,
    REFUSED_KEY,
};

/// A fuzz target: its name (the `fuzz/fuzz_targets/<name>.rs` file and the corpus folder) and
/// its harness.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order scripts/fuzz.sh runs them.
pub const TARGETS: &[Target] = &[
    ("rtmp_session", rtmp_session),
    ("amf0_message", amf0_message),
    ("media_tags", media_tags),
    ("chat_frame", chat_frame),
    ("api_body", api_body),
];

/// The harness of the target called `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// For fuzz targets: a panic hook that stays quiet for panics the ingest code contains by
/// design (the `rtmp` crate's parsers run under `catch_unwind`, and such a panic ends one
/// connection only), and prints every other panic. It never aborts by itself: an uncaught
/// panic still reaches libFuzzer's own `catch_unwind`, which aborts and records the input.
/// (libfuzzer-sys's default hook aborts on *any* panic, caught or not, which would report the
/// containment we rely on as a crash.)
pub fn install_panic_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !crate::ingest::in_contained_crate_step() {
            default_hook(info);
        }
    }));
}
