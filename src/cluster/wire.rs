//! What travels through Redis: a delivered batch as a stream entry (the owner's encoded bytes,
//! so other nodes send them to sockets without encoding again), accepted content on its way to
//! the owner, and control changes.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use redis::Value;
use serde::{Deserialize, Serialize};

use crate::chat::fanout::RemoteBatchError;
use crate::chat::moderation::ModerationChange;
use crate::chat::protocol::{Body, Event, Priority};
use crate::chat::scheduler::Pending;
use crate::chat::DeliveredBatch;

/// Why a stream entry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("stream entry {id} has no field `{field}`")]
    Missing { id: String, field: &'static str },
    #[error("stream entry {id}: field `{field}` is not {what}")]
    Bad {
        id: String,
        field: &'static str,
        what: &'static str,
    },
    #[error("stream entry {id}: {source}")]
    Batch {
        id: String,
        source: RemoteBatchError,
    },
    #[error("uplink item is not JSON of an item: {0}")]
    Uplink(#[from] serde_json::Error),
}

/// Content one node accepted, for the owner's scheduler (JSON in the room's uplink list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct UplinkItem {
    pub priority: Priority,
    pub ts_ms: i64,
    pub stream_ms: u64,
    #[serde(flatten)]
    pub body: Body,
}

impl UplinkItem {
    pub(crate) fn new(priority: Priority, p: Pending) -> UplinkItem {
        UplinkItem {
            priority,
            ts_ms: p.ts_ms,
            stream_ms: p.stream_ms,
            body: p.body,
        }
    }

    /// An event that was scheduled on a node that may no longer schedule it: its content goes
    /// back to the queue (it gets a new seq where it is delivered).
    pub(crate) fn from_event(e: &Event) -> UplinkItem {
        UplinkItem {
            priority: e.priority,
            ts_ms: e.ts_ms,
            stream_ms: e.stream_ms,
            body: e.body.clone(),
        }
    }

    pub(crate) fn into_pending(self) -> (Priority, Pending) {
        (
            self.priority,
            Pending {
                body: self.body,
                ts_ms: self.ts_ms,
                stream_ms: self.stream_ms,
            },
        )
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        // Plain structs of strings and numbers: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn from_json(bytes: &[u8]) -> Result<UplinkItem, WireError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// The fields of a batch entry, in XADD order.
pub(crate) fn batch_fields<'a>(
    node: &'a str,
    batch: &'a DeliveredBatch,
) -> [(&'static str, Vec<u8>); 6] {
    [
        ("node", node.as_bytes().to_vec()),
        ("first", batch.first_seq.to_string().into_bytes()),
        ("last", batch.last_seq.to_string().into_bytes()),
        ("tick", batch.tick_ms.to_string().into_bytes()),
        ("json", batch.json.to_vec()),
        ("proto", batch.proto.to_vec()),
    ]
}

fn bytes_field(
    id: &str,
    map: &mut HashMap<String, Value>,
    field: &'static str,
) -> Result<Vec<u8>, WireError> {
    match map.remove(field) {
        Some(Value::BulkString(b)) => Ok(b),
        Some(Value::SimpleString(s)) => Ok(s.into_bytes()),
        Some(_) => Err(WireError::Bad {
            id: id.to_string(),
            field,
            what: "a string",
        }),
        None => Err(WireError::Missing {
            id: id.to_string(),
            field,
        }),
    }
}

fn number_field(
    id: &str,
    map: &mut HashMap<String, Value>,
    field: &'static str,
) -> Result<i64, WireError> {
    let raw = bytes_field(id, map, field)?;
    std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(WireError::Bad {
            id: id.to_string(),
            field,
            what: "a number",
        })
}

/// Reads a batch entry: the publishing node and the batch (its bytes kept as they came).
pub(crate) fn read_batch(
    room: &Arc<str>,
    id: &str,
    mut map: HashMap<String, Value>,
) -> Result<(String, DeliveredBatch), WireError> {
    let node = String::from_utf8_lossy(&bytes_field(id, &mut map, "node")?).into_owned();
    let first = number_field(id, &mut map, "first")?;
    let last = number_field(id, &mut map, "last")?;
    let tick = number_field(id, &mut map, "tick")?;
    let json = Bytes::from(bytes_field(id, &mut map, "json")?);
    let proto = Bytes::from(bytes_field(id, &mut map, "proto")?);
    let batch =
        DeliveredBatch::from_encoded(room.clone(), tick, json, proto).map_err(|source| {
            WireError::Batch {
                id: id.to_string(),
                source,
            }
        })?;
    if batch.first_seq as i64 != first || batch.last_seq as i64 != last {
        return Err(WireError::Bad {
            id: id.to_string(),
            field: "first",
            what: "the seq range its events hold",
        });
    }
    Ok((node, batch))
}

/// A change for every node, in the control stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Control {
    Moderation {
        room: String,
        change: ModerationChange,
    },
    /// A room was made, closed, reopened, re-keyed (stream or host key) or re-set: reload rooms
    /// from the database.
    RoomsChanged,
}

/// Reads a control entry: its origin node and the change.
pub(crate) fn read_control(
    id: &str,
    mut map: HashMap<String, Value>,
) -> Result<(String, Control), WireError> {
    let origin = String::from_utf8_lossy(&bytes_field(id, &mut map, "origin")?).into_owned();
    let body = bytes_field(id, &mut map, "body")?;
    let control = serde_json::from_slice(&body).map_err(|_| WireError::Bad {
        id: id.to_string(),
        field: "body",
        what: "JSON of a control change",
    })?;
    Ok((origin, control))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::{Gift, SystemMessage};

    #[test]
    fn uplink_items_round_trip_as_json() {
        let item = UplinkItem {
            priority: Priority::GiftHigh,
            ts_ms: 5,
            stream_ms: 9,
            body: Body::Gift(Gift {
                user: "u".into(),
                name: "U".into(),
                gift_id: "rocket".into(),
                gift_name: "Rocket".into(),
                count: 1,
                value: 500,
            }),
        };
        assert_eq!(UplinkItem::from_json(&item.to_json()).unwrap(), item);
        assert!(UplinkItem::from_json(b"{\"priority\":1}").is_err());
    }

    #[test]
    fn a_batch_entry_reads_back_with_the_same_bytes() {
        let events = vec![Event {
            seq: 4,
            ts_ms: 1,
            stream_ms: 2,
            priority: Priority::System,
            body: Body::System(SystemMessage { text: "hi".into() }),
        }];
        let batch = DeliveredBatch::new(Arc::from("r"), events, 77);
        let map: HashMap<String, Value> = batch_fields("n1", &batch)
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::BulkString(v)))
            .collect();
        let (node, back) = read_batch(&Arc::from("r"), "1-0", map.clone()).unwrap();
        assert_eq!(node, "n1");
        assert_eq!((back.first_seq, back.last_seq, back.tick_ms), (4, 4, 77));
        assert_eq!(back.json, batch.json);
        let mut wrong = map;
        wrong.insert("last".into(), Value::BulkString(b"9".to_vec()));
        assert!(read_batch(&Arc::from("r"), "1-0", wrong).is_err());
    }
}
