//! The wire messages as Rust types: the serde (JSON) shapes of DESIGN.md, tagged by `type`,
//! and their conversions to and from the generated protobuf types, so both formats carry
//! exactly the same fields.
//!
//! These are also the engine's own types: a scheduled [`Event`] is what history keeps, what
//! the CDN writer receives, and what both encoders read.

use serde::{Deserialize, Serialize};

pub use super::access_frames::{AuthState, AuthStatus, DeleteRequest, MuteRequest, Reply};
use super::pb;
/// The welcome's CDN bases are the configured ones (`cdn.bases`), as clients get them.
pub use crate::config::CdnBase;

/// Display mode of a danmaku.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Scroll,
    Top,
    Bottom,
}

/// The scheduler queue an event went through, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    System,
    GiftHigh,
    GiftLow,
    Danmaku,
}

impl Priority {
    /// Every queue in delivery order.
    pub const ALL: [Priority; 4] = [
        Priority::System,
        Priority::GiftHigh,
        Priority::GiftLow,
        Priority::Danmaku,
    ];

    /// Position in [`Priority::ALL`] (array index for per-queue state).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name used in JSON, metrics labels and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::System => "system",
            Priority::GiftHigh => "gift_high",
            Priority::GiftLow => "gift_low",
            Priority::Danmaku => "danmaku",
        }
    }
}

/// The name shown with a user's danmaku or gift: the one given without invisible or
/// layout-changing characters, else the user id. Only `staff` (a moderator, host or admin
/// token) may be shown under a name that passes for the service or the room's staff
/// ("System", "Host"): anyone else is shown by user id (see `chat::names`).
pub fn display_name(name: String, user: &str, staff: bool) -> String {
    let name = super::names::visible(&name);
    if name.is_empty() || (!staff && super::names::is_reserved(&name)) {
        super::names::visible(user)
    } else {
        name
    }
}

/// A viewer's comment as delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Danmaku {
    pub user: String,
    pub name: String,
    pub text: String,
    pub color: u32,
    pub mode: Mode,
}

/// A gift reported by the business server (already paid and validated there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gift {
    pub user: String,
    pub name: String,
    pub gift_id: String,
    pub gift_name: String,
    pub count: u32,
    pub value: u64,
}

/// A system broadcast (announcements, notices).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemMessage {
    pub text: String,
}

/// A moderator removed an earlier event; clients hide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moderation {
    pub delete_seq: u64,
}

/// What an event carries; in JSON the key names the kind (`"danmaku":{...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    Danmaku(Danmaku),
    Gift(Gift),
    System(SystemMessage),
    Moderation(Moderation),
}

/// One delivered event with its room sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    /// Server wall time (ms since the epoch) when the event was accepted.
    pub ts_ms: i64,
    /// Stream time (ms since the broadcast's first frame; 0 when not live).
    pub stream_ms: u64,
    pub priority: Priority,
    #[serde(flatten)]
    pub body: Body,
}

/// A client's danmaku submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendDanmaku {
    /// Echoed in the ack so the client can match it.
    pub client_id: u64,
    pub text: String,
    #[serde(default = "white")]
    pub color: u32,
    #[serde(default)]
    pub mode: Mode,
    /// Where the viewer was on the stream timeline when typing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_ms: Option<u64>,
}

/// The default danmaku color.
pub const WHITE: u32 = 0xFF_FF_FF;

fn white() -> u32 {
    WHITE
}

/// Client to server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Hello {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_from: Option<u64>,
    },
    Send(SendDanmaku),
    Heartbeat,
    /// A fresh token for the socket (see `access_frames`).
    Auth {
        token: String,
    },
    /// A moderator deletes a delivered event.
    Delete(DeleteRequest),
    /// A moderator mutes a user.
    Mute(MuteRequest),
}

/// Why a send was accepted or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    Accepted,
    RateLimited,
    Muted,
    Banned,
    Filtered,
    TooLong,
    SlowMode,
    /// Empty text, control characters, or a color above 0xFFFFFF.
    Invalid,
    /// The socket has no token; reading is anonymous, sending is not.
    Unauthenticated,
}

impl AckStatus {
    /// The JSON name, also the `reason` label of refusal metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AckStatus::Accepted => "accepted",
            AckStatus::RateLimited => "rate_limited",
            AckStatus::Muted => "muted",
            AckStatus::Banned => "banned",
            AckStatus::Filtered => "filtered",
            AckStatus::TooLong => "too_long",
            AckStatus::SlowMode => "slow_mode",
            AckStatus::Invalid => "invalid",
            AckStatus::Unauthenticated => "unauthenticated",
        }
    }
}

/// The answer to one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub client_id: u64,
    pub status: AckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The limits that apply to this user in this room, told at join.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub can_send: bool,
    pub user_rate_per_s: f64,
    pub user_burst: u32,
    pub max_text_chars: u32,
    pub slow_mode_s: u32,
    pub max_frame_bytes: u32,
    pub heartbeat_s: u32,
    pub idle_timeout_s: u32,
    pub muted: bool,
    pub banned: bool,
    /// The socket's token lets it delete and mute (`delete` / `mute` frames).
    #[serde(default)]
    pub can_moderate: bool,
}

/// The first server frame of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub room: String,
    /// The user id; empty for an anonymous reader.
    pub user: String,
    /// The room's latest delivered seq at join.
    pub seq: u64,
    pub online: u64,
    #[serde(flatten)]
    pub limits: Limits,
    pub hls_url: String,
    pub cdn_bases: Vec<CdnBase>,
}

/// Server to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome(Welcome),
    Batch {
        events: Vec<Event>,
    },
    Ack(Ack),
    Heartbeat {
        online: u64,
    },
    Gap {
        from_seq: u64,
        to_seq: u64,
    },
    Error {
        code: String,
        message: String,
    },
    /// Where the socket's token stands (expired, renewed, renewal refused).
    Auth(AuthState),
    /// The answer to a `delete` or `mute`.
    Reply(Reply),
}

/// A batch frame over borrowed events, so a tick's events are serialised without a copy.
#[derive(Serialize)]
#[serde(tag = "type", rename = "batch")]
pub(crate) struct BatchRef<'a> {
    pub events: &'a [Event],
}

// ------------------------------------------------------------------ protobuf conversions

/// A protobuf frame whose fields do not fit the typed protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("frame has no message set")]
    Empty,
    #[error("{field}: unknown enum value {value}")]
    UnknownEnum { field: &'static str, value: i32 },
    #[error("event {seq} has no body")]
    NoBody { seq: u64 },
}

/// Both directions between one of our enums and its generated protobuf twin (same variant
/// names); an unknown wire value is an error naming the field.
macro_rules! pb_enum {
    ($ours:ident, $field:literal, $from_pb:ident, [$($variant:ident),+ $(,)?]) => {
        impl From<$ours> for pb::$ours {
            fn from(v: $ours) -> pb::$ours {
                match v {
                    $($ours::$variant => pb::$ours::$variant,)+
                }
            }
        }

        fn $from_pb(value: i32) -> Result<$ours, ConvertError> {
            match pb::$ours::try_from(value) {
                $(Ok(pb::$ours::$variant) => Ok($ours::$variant),)+
                Err(_) => Err(ConvertError::UnknownEnum { field: $field, value }),
            }
        }
    };
}

pb_enum!(Mode, "mode", mode_from_pb, [Scroll, Top, Bottom]);
pb_enum!(
    Priority,
    "priority",
    priority_from_pb,
    [System, GiftHigh, GiftLow, Danmaku]
);
pb_enum!(
    AckStatus,
    "status",
    ack_status_from_pb,
    [
        Accepted,
        RateLimited,
        Muted,
        Banned,
        Filtered,
        TooLong,
        SlowMode,
        Invalid,
        Unauthenticated
    ]
);

impl From<&Event> for pb::Event {
    fn from(e: &Event) -> pb::Event {
        let body = match &e.body {
            Body::Danmaku(d) => pb::event::Body::Danmaku(pb::Danmaku {
                user: d.user.clone(),
                name: d.name.clone(),
                text: d.text.clone(),
                color: d.color,
                mode: pb::Mode::from(d.mode) as i32,
            }),
            Body::Gift(g) => pb::event::Body::Gift(pb::Gift {
                user: g.user.clone(),
                name: g.name.clone(),
                gift_id: g.gift_id.clone(),
                gift_name: g.gift_name.clone(),
                count: g.count,
                value: g.value,
            }),
            Body::System(s) => pb::event::Body::System(pb::System {
                text: s.text.clone(),
            }),
            Body::Moderation(m) => pb::event::Body::Moderation(pb::Moderation {
                delete_seq: m.delete_seq,
            }),
        };
        pb::Event {
            seq: e.seq,
            ts_ms: e.ts_ms,
            stream_ms: e.stream_ms,
            priority: pb::Priority::from(e.priority) as i32,
            body: Some(body),
        }
    }
}

impl TryFrom<pb::Event> for Event {
    type Error = ConvertError;
    fn try_from(e: pb::Event) -> Result<Event, ConvertError> {
        let body = match e.body.ok_or(ConvertError::NoBody { seq: e.seq })? {
            pb::event::Body::Danmaku(d) => Body::Danmaku(Danmaku {
                mode: mode_from_pb(d.mode)?,
                user: d.user,
                name: d.name,
                text: d.text,
                color: d.color,
            }),
            pb::event::Body::Gift(g) => Body::Gift(Gift {
                user: g.user,
                name: g.name,
                gift_id: g.gift_id,
                gift_name: g.gift_name,
                count: g.count,
                value: g.value,
            }),
            pb::event::Body::System(s) => Body::System(SystemMessage { text: s.text }),
            pb::event::Body::Moderation(m) => Body::Moderation(Moderation {
                delete_seq: m.delete_seq,
            }),
        };
        Ok(Event {
            seq: e.seq,
            ts_ms: e.ts_ms,
            stream_ms: e.stream_ms,
            priority: priority_from_pb(e.priority)?,
            body,
        })
    }
}

impl From<&ClientFrame> for pb::ClientFrame {
    fn from(f: &ClientFrame) -> pb::ClientFrame {
        let frame = match f {
            ClientFrame::Hello { resume_from } => pb::client_frame::Frame::Hello(pb::Hello {
                resume_from: *resume_from,
            }),
            ClientFrame::Send(s) => pb::client_frame::Frame::Send(pb::SendDanmaku {
                client_id: s.client_id,
                text: s.text.clone(),
                color: Some(s.color),
                mode: pb::Mode::from(s.mode) as i32,
                stream_ms: s.stream_ms,
            }),
            ClientFrame::Heartbeat => pb::client_frame::Frame::Heartbeat(pb::Heartbeat {}),
            ClientFrame::Auth { token } => pb::client_frame::Frame::Auth(pb::Auth {
                token: token.clone(),
            }),
            ClientFrame::Delete(d) => pb::client_frame::Frame::Delete(d.into()),
            ClientFrame::Mute(m) => pb::client_frame::Frame::Mute(m.into()),
        };
        pb::ClientFrame { frame: Some(frame) }
    }
}

impl TryFrom<pb::ClientFrame> for ClientFrame {
    type Error = ConvertError;
    fn try_from(f: pb::ClientFrame) -> Result<ClientFrame, ConvertError> {
        Ok(match f.frame.ok_or(ConvertError::Empty)? {
            pb::client_frame::Frame::Hello(h) => ClientFrame::Hello {
                resume_from: h.resume_from,
            },
            pb::client_frame::Frame::Send(s) => ClientFrame::Send(SendDanmaku {
                client_id: s.client_id,
                text: s.text,
                color: s.color.unwrap_or(WHITE),
                mode: mode_from_pb(s.mode)?,
                stream_ms: s.stream_ms,
            }),
            pb::client_frame::Frame::Heartbeat(_) => ClientFrame::Heartbeat,
            pb::client_frame::Frame::Auth(a) => ClientFrame::Auth { token: a.token },
            pb::client_frame::Frame::Delete(d) => ClientFrame::Delete(d.into()),
            pb::client_frame::Frame::Mute(m) => ClientFrame::Mute(m.into()),
        })
    }
}

impl From<&Limits> for pb::Limits {
    fn from(l: &Limits) -> pb::Limits {
        pb::Limits {
            can_send: l.can_send,
            user_rate_per_s: l.user_rate_per_s,
            user_burst: l.user_burst,
            max_text_chars: l.max_text_chars,
            slow_mode_s: l.slow_mode_s,
            max_frame_bytes: l.max_frame_bytes,
            heartbeat_s: l.heartbeat_s,
            idle_timeout_s: l.idle_timeout_s,
            muted: l.muted,
            banned: l.banned,
            can_moderate: l.can_moderate,
        }
    }
}

impl From<pb::Limits> for Limits {
    fn from(l: pb::Limits) -> Limits {
        Limits {
            can_send: l.can_send,
            user_rate_per_s: l.user_rate_per_s,
            user_burst: l.user_burst,
            max_text_chars: l.max_text_chars,
            slow_mode_s: l.slow_mode_s,
            max_frame_bytes: l.max_frame_bytes,
            heartbeat_s: l.heartbeat_s,
            idle_timeout_s: l.idle_timeout_s,
            muted: l.muted,
            banned: l.banned,
            can_moderate: l.can_moderate,
        }
    }
}

impl From<&ServerFrame> for pb::ServerFrame {
    fn from(f: &ServerFrame) -> pb::ServerFrame {
        use pb::server_frame::Frame;
        let frame = match f {
            ServerFrame::Welcome(w) => Frame::Welcome(pb::Welcome {
                room: w.room.clone(),
                user: w.user.clone(),
                seq: w.seq,
                online: w.online,
                limits: Some(pb::Limits::from(&w.limits)),
                hls_url: w.hls_url.clone(),
                cdn_bases: w
                    .cdn_bases
                    .iter()
                    .map(|b| pb::CdnBase {
                        url: b.url.clone(),
                        weight: b.weight,
                    })
                    .collect(),
            }),
            ServerFrame::Batch { events } => Frame::Batch(batch_to_pb(events)),
            ServerFrame::Ack(a) => Frame::Ack(pb::Ack {
                client_id: a.client_id,
                status: pb::AckStatus::from(a.status) as i32,
                retry_after_ms: a.retry_after_ms,
            }),
            ServerFrame::Heartbeat { online } => {
                Frame::Heartbeat(pb::HeartbeatReply { online: *online })
            }
            ServerFrame::Gap { from_seq, to_seq } => Frame::Gap(pb::Gap {
                from_seq: *from_seq,
                to_seq: *to_seq,
            }),
            ServerFrame::Error { code, message } => Frame::Error(pb::Error {
                code: code.clone(),
                message: message.clone(),
            }),
            ServerFrame::Auth(a) => Frame::Auth(a.into()),
            ServerFrame::Reply(r) => Frame::Reply(r.into()),
        };
        pb::ServerFrame { frame: Some(frame) }
    }
}

/// The protobuf batch of borrowed events.
pub(crate) fn batch_to_pb(events: &[Event]) -> pb::Batch {
    pb::Batch {
        events: events.iter().map(pb::Event::from).collect(),
    }
}

impl TryFrom<pb::ServerFrame> for ServerFrame {
    type Error = ConvertError;
    fn try_from(f: pb::ServerFrame) -> Result<ServerFrame, ConvertError> {
        use pb::server_frame::Frame;
        Ok(match f.frame.ok_or(ConvertError::Empty)? {
            Frame::Welcome(w) => ServerFrame::Welcome(Welcome {
                room: w.room,
                user: w.user,
                seq: w.seq,
                online: w.online,
                limits: w.limits.unwrap_or_default().into(),
                hls_url: w.hls_url,
                cdn_bases: w
                    .cdn_bases
                    .into_iter()
                    .map(|b| CdnBase {
                        url: b.url,
                        weight: b.weight,
                    })
                    .collect(),
            }),
            Frame::Batch(b) => ServerFrame::Batch {
                events: b
                    .events
                    .into_iter()
                    .map(Event::try_from)
                    .collect::<Result<_, _>>()?,
            },
            Frame::Ack(a) => ServerFrame::Ack(Ack {
                client_id: a.client_id,
                status: ack_status_from_pb(a.status)?,
                retry_after_ms: a.retry_after_ms,
            }),
            Frame::Heartbeat(h) => ServerFrame::Heartbeat { online: h.online },
            Frame::Gap(g) => ServerFrame::Gap {
                from_seq: g.from_seq,
                to_seq: g.to_seq,
            },
            Frame::Error(e) => ServerFrame::Error {
                code: e.code,
                message: e.message,
            },
            Frame::Auth(a) => ServerFrame::Auth(a.try_into()?),
            Frame::Reply(r) => ServerFrame::Reply(r.into()),
        })
    }
}
