//! RTMP and AMF0 bytes for tests that speak to the ingest as a hand-built peer.
#![allow(dead_code)]

/// One message as chunks: a format 0 header, then format 3 headers every `chunk_size` bytes.
pub fn chunked(
    csid: u8,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
    chunk_size: usize,
) -> Vec<u8> {
    let mut out = vec![csid];
    out.extend([0, 0, 0]); // timestamp
    out.extend(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend(stream_id.to_le_bytes());
    for (i, piece) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.push(0xC0 | csid);
        }
        out.extend(piece);
    }
    out
}

pub fn amf_string(s: &str) -> Vec<u8> {
    let mut v = vec![0x02];
    v.extend((s.len() as u16).to_be_bytes());
    v.extend(s.as_bytes());
    v
}

pub fn amf_number(n: f64) -> Vec<u8> {
    let mut v = vec![0x00];
    v.extend(n.to_be_bytes());
    v
}
