//! HTTP-FLV: a room's live broadcast as one FLV stream over chunked HTTP (`GET
//! /live/{room}.flv`), for players that connect to an edge directly (mpegts.js, flv.js, VLC,
//! ffplay) and want about a second of delay instead of HLS's segments.
//!
//! The tags are the ingest's own: every FLV audio/video tag body the publisher sent is framed
//! as an FLV tag at its RTMP timestamp, with no remux ([`tag`]). Each room keeps its codec
//! configuration and the tags since the latest keyframe ([`gop`]), so a viewer who joins starts
//! with a picture at once; live tags go to viewers through one shared ring ([`hub`]), so a slow
//! viewer costs no memory of its own: it falls behind the ring, skips to the next keyframe and
//! is counted.

pub mod gop;
pub mod hub;
pub mod tag;

pub use hub::{FlvHub, FlvRoomFeed, FlvViewer};
