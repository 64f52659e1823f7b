//! Chat harnesses: WebSocket client frames (JSON text and protobuf binary) through the codec and
//! the checks a danmaku meets, and the JSON bodies of every HTTP API route through their
//! deserialisation and validation.

use std::sync::OnceLock;

use crate::auth::{Role, TokenSigner};
use crate::chat::codec::{
    decode_client_binary, decode_client_text, encode_client, Encoded, Format,
};
use crate::chat::history::{History, Resume};
use crate::chat::moderation::{normalize_words, Author, Content, ModerationChange, RoomModeration};
use crate::chat::protocol::{Body, ClientFrame, Event, Priority, SystemMessage};
use crate::config::{ChatConfig, Config};
use crate::http::api_chat::BodyCheck;
use crate::http::room_acts::{Act, MAX_MUTE_S};

/// Events the fuzz room's history holds (seqs `HISTORY_FIRST..=HISTORY_LAST`), so a resume can
/// land before, inside and after it.
const HISTORY_FIRST: u64 = 101;
const HISTORY_LAST: u64 = 110;

/// One WebSocket message from a client: the low bit of the first byte picks the frame kind
/// (0: text, read as JSON like a `format=json` socket does; 1: binary, read as protobuf), the
/// rest is the frame. Frames that decode must survive a round trip through both formats
/// unchanged; a `hello` resumes from the room history; a `send` goes through moderation (room
/// words, slow mode, the config's length limit) twice, and what is accepted must keep the
/// promises the checks make (length, colour, no control characters).
pub fn chat_frame(data: &[u8]) {
    let Some((&kind, frame)) = data.split_first() else {
        return;
    };
    let decoded = if kind & 1 == 0 {
        // Text frames are UTF-8 by the time they are decoded (the WebSocket layer closes with
        // 1007 otherwise).
        match std::str::from_utf8(frame) {
            Ok(text) => decode_client_text(text),
            Err(_) => return,
        }
    } else {
        decode_client_binary(frame)
    };
    let Ok(frame) = decoded else {
        return;
    };
    for format in [Format::Json, Format::Proto] {
        let again = match encode_client(&frame, format) {
            Encoded::Text(t) => decode_client_text(&t),
            Encoded::Binary(b) => decode_client_binary(&b),
        };
        match again {
            Ok(again) => assert_eq!(again, frame, "{format:?} round trip"),
            Err(e) => panic!("a decoded frame does not survive {format:?}: {e}"),
        }
    }
    match frame {
        ClientFrame::Hello { resume_from } => check_resume(resume_from.unwrap_or(0)),
        ClientFrame::Send(send) => {
            let config = chat_config();
            let mut room = RoomModeration::default();
            room.apply(&ModerationChange::SetBlockedWords {
                words: vec!["Blocked".into(), "  spam ".into()],
            });
            room.apply(&ModerationChange::SetSlowMode { seconds: 5 });
            let global = normalize_words(&["global-word".to_string()]);
            let author = Author {
                user: "fuzz-user",
                role: Role::Viewer,
            };
            let content = Content {
                text: &send.text,
                color: send.color,
            };
            let first = room.check(author, content, config.max_text_chars, &global, 1_000);
            if first.is_ok() {
                assert!(send.text.chars().count() <= config.max_text_chars);
                assert!(!send.text.trim().is_empty() && send.color <= 0xFF_FF_FF);
                assert!(!send.text.chars().any(char::is_control));
                let lower = send.text.to_lowercase();
                assert!(!lower.contains("blocked") && !lower.contains("spam"));
                // The same user again within the slow-mode interval is refused.
                let again = room.check(author, content, config.max_text_chars, &global, 2_000);
                assert!(again.is_err(), "slow mode let a second danmaku through");
            }
        }
        ClientFrame::Heartbeat | ClientFrame::Delete(_) => {}
        // A token from the socket is checked like one at connect: refused, never a panic.
        ClientFrame::Auth { token } => {
            static SIGNER: OnceLock<TokenSigner> = OnceLock::new();
            let signer = SIGNER.get_or_init(|| TokenSigner::new("fuzz-secret"));
            let _ = signer.verify(&token, Some("fuzz-room"));
        }
        // A moderator's mute is bounded like the API's.
        ClientFrame::Mute(mute) => {
            let (user, seconds) = (mute.user.clone(), mute.seconds);
            if Act::mute(mute.user, mute.seconds).is_ok() {
                assert!(!user.is_empty() && user.chars().count() <= 128);
                assert!(!user.chars().any(char::is_control));
                assert!(seconds.is_none_or(|s| (1..=MAX_MUTE_S).contains(&s)));
            }
        }
    }
}

/// An API request body: the first byte picks the route (modulo the number of routes with a
/// body, in the order of [`API_BODY_ROUTES`]), the rest is the body.
pub fn api_body(data: &[u8]) {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    let checks = api_body_checks();
    let (_, check) = checks[usize::from(route) % checks.len()];
    let _ = check(body);
}

/// The routes [`api_body`] reaches, by the name its seeds use.
pub const API_BODY_ROUTES: &[&str] = &[
    "create_room",
    "gift",
    "system",
    "mute",
    "blocked_words",
    "slow_mode",
    "guest_token",
    "room_settings",
];

/// Checks for every route with a body: `POST /api/rooms`, the chat API's, then
/// `PUT /api/rooms/{room}/settings` (last, so the seeds' route numbers stay).
fn api_body_checks() -> &'static [(&'static str, BodyCheck)] {
    static CHECKS: OnceLock<Vec<(&'static str, BodyCheck)>> = OnceLock::new();
    CHECKS.get_or_init(|| {
        let mut checks: Vec<(&'static str, BodyCheck)> =
            vec![("create_room", crate::http::api_rooms::check_create_room)];
        checks.extend_from_slice(crate::http::api_chat::BODY_CHECKS);
        checks.push((
            "room_settings",
            crate::http::api_room_control::check_settings,
        ));
        checks
    })
}

/// A resume from any seq: only events after it, contiguous, and a gap that ends right before
/// the first kept event.
fn check_resume(seq: u64) {
    static HISTORY: OnceLock<History> = OnceLock::new();
    let history = HISTORY.get_or_init(|| {
        let mut history = History::new(4, HISTORY_FIRST - 1);
        let events: Vec<Event> = (HISTORY_FIRST..=HISTORY_LAST)
            .map(|seq| Event {
                seq,
                ts_ms: seq as i64,
                stream_ms: seq,
                priority: Priority::System,
                body: Body::System(SystemMessage {
                    text: format!("event {seq}"),
                }),
            })
            .collect();
        history.push(&events);
        history
    });
    match history.after(seq) {
        Resume::UpToDate => assert!(seq >= HISTORY_LAST),
        Resume::Missed { gap, events } => {
            assert!(seq < HISTORY_LAST);
            let mut next = match gap {
                Some((from, to)) => {
                    assert_eq!(from, seq + 1);
                    to + 1
                }
                None => seq + 1,
            };
            for e in &events {
                assert_eq!(e.seq, next, "resume events are contiguous");
                next += 1;
            }
            assert_eq!(next, HISTORY_LAST + 1, "resume reaches the newest event");
        }
    }
}

/// The `[chat]` defaults (config/default.toml), so the checks use the shipped limits.
fn chat_config() -> &'static ChatConfig {
    static CONFIG: OnceLock<ChatConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Config::from_toml_str("")
            .expect("the embedded config/default.toml loads (config tests check it)")
            .chat
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_in_both_formats() {
        for text in [
            r#"{"type":"hello","resume_from":1200}"#,
            r#"{"type":"hello","resume_from":103}"#,
            r#"{"type":"send","client_id":7,"text":"666","color":16777215,"mode":"scroll"}"#,
            r#"{"type":"heartbeat"}"#,
            r#"{"type":"send","client_id":7,"text":"spam!"}"#,
            r#"{"type":"auth","token":"a.b.c"}"#,
            r#"{"type":"delete","request_id":1,"seq":5}"#,
            r#"{"type":"mute","request_id":2,"user":"u1","seconds":600}"#,
            r#"{"type":"mute","request_id":3,"user":"","seconds":0}"#,
            "not json",
        ] {
            let mut data = vec![0u8];
            data.extend_from_slice(text.as_bytes());
            chat_frame(&data);
        }
        chat_frame(&[1, 0x12, 0x03, 0x12, 0x01, b'x']);
        chat_frame(&[1, 0xff, 0xff]);
        for resume in [0, 1, 100, 101, 105, 110, 111, u64::MAX] {
            check_resume(resume);
        }
    }

    #[test]
    fn every_api_body_route() {
        assert_eq!(api_body_checks().len(), API_BODY_ROUTES.len());
        for (i, (name, _)) in api_body_checks().iter().enumerate() {
            assert_eq!(*name, API_BODY_ROUTES[i]);
            for body in ["", "{}", "null", r#"{"text":"hi","words":["a"]}"#, "\u{0}"] {
                let mut data = vec![i as u8];
                data.extend_from_slice(body.as_bytes());
                api_body(&data);
            }
        }
    }
}
