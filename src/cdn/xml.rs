//! Export of a session's danmaku as Bilibili-style XML, the format common danmaku players load:
//! `<d p="time,mode,size,color,timestamp,pool,user,id">text</d>`.
//!
//! Danmaku keep their mode (scroll 1, bottom 4, top 5); system messages and gifts are shown as
//! top comments in the special pool (2) so a replay still carries them; a moderation delete
//! removes the comment it names, as it did live.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

/// Escapes text for XML content or attributes, dropping characters XML 1.0 forbids.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A short stable hash of a user id (Bilibili files carry a hash, not the id).
fn user_hash(user: &str) -> String {
    // FNV-1a 32: stable across runs and platforms, no dependency.
    let mut h: u32 = 0x811c_9dc5;
    for b in user.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

struct Entry {
    time_s: f64,
    mode: u8,
    color: u64,
    timestamp_s: i64,
    pool: u8,
    user: String,
    text: String,
}

/// Builds the XML for a session from its events (each in the JSON wire form), in seq order.
pub fn session_xml(session: &str, events: &[Value]) -> String {
    let mut entries: BTreeMap<u64, Entry> = BTreeMap::new();
    for event in events {
        let Some(seq) = event.get("seq").and_then(Value::as_u64) else {
            continue;
        };
        let time_s = event.get("stream_ms").and_then(Value::as_u64).unwrap_or(0) as f64 / 1000.0;
        let timestamp_s = event.get("ts_ms").and_then(Value::as_i64).unwrap_or(0) / 1000;
        if let Some(d) = event.get("danmaku") {
            let mode = match d.get("mode").and_then(Value::as_str) {
                Some("top") => 5,
                Some("bottom") => 4,
                _ => 1,
            };
            entries.insert(
                seq,
                Entry {
                    time_s,
                    mode,
                    color: d.get("color").and_then(Value::as_u64).unwrap_or(0xFFFFFF),
                    timestamp_s,
                    pool: 0,
                    user: d.get("user").and_then(Value::as_str).unwrap_or("").into(),
                    text: d.get("text").and_then(Value::as_str).unwrap_or("").into(),
                },
            );
        } else if let Some(s) = event.get("system") {
            entries.insert(
                seq,
                Entry {
                    time_s,
                    mode: 5,
                    color: 0xFFD700,
                    timestamp_s,
                    pool: 2,
                    user: "system".into(),
                    text: s.get("text").and_then(Value::as_str).unwrap_or("").into(),
                },
            );
        } else if let Some(g) = event.get("gift") {
            let name = g.get("name").and_then(Value::as_str).unwrap_or("");
            let gift = g
                .get("gift_name")
                .and_then(Value::as_str)
                .or_else(|| g.get("gift_id").and_then(Value::as_str))
                .unwrap_or("gift");
            let count = g.get("count").and_then(Value::as_u64).unwrap_or(1);
            entries.insert(
                seq,
                Entry {
                    time_s,
                    mode: 5,
                    color: 0xFF69B4,
                    timestamp_s,
                    pool: 2,
                    user: g.get("user").and_then(Value::as_str).unwrap_or("").into(),
                    text: format!("{name} sent {gift} x{count}"),
                },
            );
        } else if let Some(m) = event.get("moderation") {
            if let Some(target) = m.get("delete_seq").and_then(Value::as_u64) {
                entries.remove(&target);
            }
        }
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<i>\n");
    let _ = writeln!(out, "  <chatserver>barrage</chatserver>");
    let _ = writeln!(out, "  <chatid>{}</chatid>", escape(session));
    let _ = writeln!(out, "  <maxlimit>{}</maxlimit>", entries.len());
    for (seq, e) in &entries {
        let _ = writeln!(
            out,
            "  <d p=\"{:.3},{},25,{},{},{},{},{}\">{}</d>",
            e.time_s,
            e.mode,
            e.color,
            e.timestamp_s,
            e.pool,
            user_hash(&e.user),
            seq,
            escape(&e.text)
        );
    }
    out.push_str("</i>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn danmaku_system_gift_and_delete() {
        let events = vec![
            json!({"seq":1,"ts_ms":1_764_000_000_000i64,"stream_ms":1500,"priority":"danmaku",
                   "danmaku":{"user":"u1","name":"Ann","text":"<b>hi</b> & \u{1}bye","color":255,"mode":"top"}}),
            json!({"seq":2,"ts_ms":1_764_000_000_100i64,"stream_ms":1600,"priority":"system","system":{"text":"Welcome"}}),
            json!({"seq":3,"ts_ms":0,"stream_ms":0,"priority":"gift_high",
                   "gift":{"user":"u2","name":"Bo","gift_id":"rocket","gift_name":"Rocket","count":2,"value":500}}),
            json!({"seq":4,"ts_ms":0,"stream_ms":2000,"priority":"danmaku","danmaku":{"user":"u3","text":"gone","mode":"scroll"}}),
            json!({"seq":5,"ts_ms":0,"stream_ms":2100,"priority":"system","moderation":{"delete_seq":4}}),
        ];
        let xml = session_xml("s1", &events);
        assert!(xml.contains("<d p=\"1.500,5,25,255,1764000000,0,"), "{xml}");
        assert!(
            xml.contains(">&lt;b&gt;hi&lt;/b&gt; &amp; bye</d>"),
            "{xml}"
        );
        assert!(xml.contains(">Welcome</d>"));
        assert!(xml.contains(">Bo sent Rocket x2</d>"));
        assert!(!xml.contains("gone"));
        assert!(xml.contains("<maxlimit>3</maxlimit>"));
    }
}
