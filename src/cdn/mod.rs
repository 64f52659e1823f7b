//! Danmaku to the CDN: every period one immutable file per active room in object storage, plus
//! a per-room index, so a CDN that only caches files can serve millions of polling viewers.

pub mod collector;
pub mod export;
pub mod files;
pub mod publisher;
pub mod weights;
pub mod xml;
pub mod xml_export;

pub use files::{BatchFile, CdnEvent, IndexFile};
