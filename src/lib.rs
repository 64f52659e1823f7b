//! barrage: a live room in one service. RTMP in from OBS, HLS out through object storage, and a
//! danmaku/chat engine delivering over WebSocket and as CDN files. See README.md and docs/.

pub mod app;
pub mod auth;
pub mod broadcast;
pub mod chat;
pub mod config;
pub mod http;
pub mod ingest;
pub mod live;
pub mod rooms;
pub mod secrets;
pub mod storage;
