//! Media: FLV tag bodies from RTMP ingest -> fragmented MP4 (CMAF) init + media segments.
//!
//! One concept per file: [`message`] is the input (what ingest produces), [`codec_support`]
//! says which codecs a publish may use, [`flv`] parses tag bodies, [`timestamp`] unwraps RTMP time, [`sps`] and [`aac`] read codec configs, [`fmp4`]
//! lays out boxes, [`emsg`] carries danmaku inside fragments as ID3 timed metadata, [`segmenter`] cuts segments at keyframes, and [`muxer`] ties them together
//! for one publish ([`mux_event`] is what it hands back); [`fragment_probe`] reads stored
//! segments back (crash recovery). [`flv_file`] replays recorded FLV files for tests and benchmarks.
//! All of it is pure logic (no I/O); `broadcast` stores what it produces.

pub mod aac;
pub mod codec_support;
pub mod emsg;
pub mod flv;
pub mod flv_file;
pub mod fmp4;
pub mod fragment_probe;
pub mod message;
pub mod mux_event;
pub mod muxer;
pub mod part_planner;
pub mod segmenter;
pub mod sps;
pub mod timestamp;

#[cfg(test)]
mod pipeline_tests;

pub use message::{MediaMessage, StreamMetadata};
pub use mux_event::{AudioInfo, DropReason, MediaError, MuxEvent, VideoInfo};
pub use muxer::{StreamMuxer, TimelineStart};
pub use segmenter::Segment;
