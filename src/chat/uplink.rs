//! A client's danmaku from its send to its ack, through the layers coarse to fine: the
//! connection (every frame; the socket decides and passes its verdict in), the shared per-user
//! and per-room rates when other nodes share the room, identity, this node's per-user /
//! per-room / per-node rates, moderation (length, blocked words, mutes, bans, slow mode), and
//! the room's danmaku queue. [`submit`] is the one place a send is answered: every refusal is
//! an ack that says why, and is counted in the room's stats and metrics.

use super::engine::ChatEngine;
use super::limits::LimitRefusal;
use super::moderation::{Author, Content};
use super::protocol::{Ack, AckStatus, Body, Danmaku, Limits, Priority, SendDanmaku};
use super::room::Room;
use super::scheduler::Pending;
use crate::auth::Role;
use crate::clock::now_ms;
use crate::rights::{check, Action, Credential, RoomPolicy};
use crate::sync::lock;

/// The heartbeat interval clients are asked to keep (seconds).
pub const HEARTBEAT_S: u32 = 30;

/// Who is on a socket (None for an anonymous reader): the verified token's user, name and role,
/// its room claim, and until when it may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub name: String,
    pub role: Role,
    /// The token's `room` claim (None: any room).
    pub room_claim: Option<String>,
    /// Until when (ms since the epoch) the token is good; None: no end.
    pub valid_until_ms: Option<i64>,
}

impl Identity {
    /// Whether the token has run out at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.valid_until_ms.is_some_and(|until| now_ms >= until)
    }

    /// The token as a credential for the rights table.
    pub fn credential(&self) -> Credential {
        Credential::Token {
            user: self.user.clone(),
            role: self.role,
            room: self.room_claim.clone(),
        }
    }

    /// Whether the token lets this user delete and mute in `room` (the same rights as
    /// moderating through the API).
    pub fn can_moderate(&self, room: &str) -> bool {
        check(
            &self.credential(),
            Action::DeleteMessage,
            Some(room),
            RoomPolicy::default(),
        )
        .is_ok()
    }
}

/// Answers one send by `who` in `room`; `connection` is the connection layer's verdict on the
/// frame that carried it. Accepted danmaku are queued (or relayed to the node that schedules
/// the room).
pub async fn submit(
    engine: &ChatEngine,
    room: &Room,
    who: Option<&Identity>,
    send: &SendDanmaku,
    connection: Result<(), LimitRefusal>,
) -> Ack {
    // The layers before this node's own: the connection, then (one round trip to their store)
    // the shared ones of the nodes that share the room.
    let outer = match (connection, engine.relay(), who) {
        (Err(refusal), _, _) => Err(refusal),
        (Ok(()), Some(relay), Some(who)) => relay.check_send(&room.id, &who.user).await,
        (Ok(()), _, _) => Ok(()),
    };
    room.accounting.received();
    let ack = |status, retry_after_ms| Ack {
        client_id: send.client_id,
        status,
        retry_after_ms,
    };
    let rate_limited = |refusal: LimitRefusal| {
        room.accounting.refused(refusal.layer.as_str());
        ack(
            AckStatus::RateLimited,
            Some(refusal.retry_after.as_millis().max(1) as u64),
        )
    };
    if let Err(refusal) = outer {
        return rate_limited(refusal);
    }
    let now = now_ms();
    // No token, or one that ran out on a live socket (until it hands over a fresh one).
    let Some(who) = who.filter(|w| !w.expired(now)) else {
        room.accounting.refused(AckStatus::Unauthenticated.as_str());
        return ack(AckStatus::Unauthenticated, None);
    };
    if let Err(refusal) = engine.node_limits().check_send(&who.user, &room.limiter) {
        return rate_limited(refusal);
    }
    let verdict = lock(&room.moderation).check(
        Author {
            user: &who.user,
            role: who.role,
        },
        Content {
            text: &send.text,
            color: send.color,
        },
        room.config.max_text_chars,
        engine.global_words(),
        now,
    );
    if let Err(refusal) = verdict {
        room.accounting.refused(refusal.status.as_str());
        return ack(refusal.status, refusal.retry_after_ms);
    }
    let pending = Pending {
        body: Body::Danmaku(Danmaku {
            user: who.user.clone(),
            name: who.name.clone(),
            text: send.text.clone(),
            color: send.color,
            mode: send.mode,
        }),
        ts_ms: now,
        stream_ms: room.stream_position(send.stream_ms),
    };
    room.enqueue(Priority::Danmaku, pending);
    room.accounting.accepted();
    ack(AckStatus::Accepted, None)
}

/// The limits `who` sees in the welcome (what [`submit`] will hold them to).
pub fn limits_for(room: &Room, who: Option<&Identity>) -> Limits {
    let c = &room.config;
    let (muted, banned, slow) = match who {
        Some(id) => {
            let m = lock(&room.moderation);
            let slow = if m.slow_mode_applies(id.role) {
                m.slow_mode_s()
            } else {
                0
            };
            (m.is_muted(&id.user, now_ms()), m.is_banned(&id.user), slow)
        }
        None => (false, false, lock(&room.moderation).slow_mode_s()),
    };
    Limits {
        can_send: who.is_some(),
        can_moderate: who.is_some_and(|w| w.can_moderate(&room.id)),
        user_rate_per_s: c.user_rate_per_s,
        user_burst: c.user_burst,
        max_text_chars: u32::try_from(c.max_text_chars).unwrap_or(u32::MAX),
        slow_mode_s: slow,
        max_frame_bytes: u32::try_from(c.max_frame_bytes).unwrap_or(u32::MAX),
        heartbeat_s: HEARTBEAT_S,
        idle_timeout_s: u32::try_from(c.idle_timeout_s).unwrap_or(u32::MAX),
        muted,
        banned,
    }
}
