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

/// An AMF0 command: name, transaction id, a null command object, then string arguments.
pub fn command(name: &str, transaction_id: f64, args: &[&str]) -> Vec<u8> {
    let mut body = amf_string(name);
    body.extend(amf_number(transaction_id));
    body.push(0x05);
    for a in args {
        body.extend(amf_string(a));
    }
    body
}

/// A `connect` command body for the application `app`.
pub fn connect_body(app: &str) -> Vec<u8> {
    let mut body = amf_string("connect");
    body.extend(amf_number(1.0));
    body.push(0x03);
    body.extend(3u16.to_be_bytes());
    body.extend(b"app");
    body.extend(amf_string(app));
    body.extend([0, 0, 9]);
    body
}

/// What a publisher sends after the handshake to publish `key` to the app `live`: connect,
/// createStream, publish (128-byte chunks, the protocol's default).
pub fn publish_commands(key: &str) -> Vec<u8> {
    let mut out = chunked(3, 20, 0, &connect_body("live"), 128);
    out.extend(chunked(3, 20, 0, &command("createStream", 2.0, &[]), 128));
    out.extend(chunked(
        8,
        20,
        1,
        &command("publish", 3.0, &[key, "live"]),
        128,
    ));
    out
}

/// An `@setDataFrame onMetaData` data message body with number properties.
pub fn metadata_body(properties: &[(&str, f64)]) -> Vec<u8> {
    let mut body = amf_string("@setDataFrame");
    body.extend(amf_string("onMetaData"));
    body.push(0x08); // ECMA array
    body.extend((properties.len() as u32).to_be_bytes());
    for (name, value) in properties {
        body.extend((name.len() as u16).to_be_bytes());
        body.extend(name.as_bytes());
        body.extend(amf_number(*value));
    }
    body.extend([0, 0, 9]);
    body
}

/// The handshake size of C1/S1/C2/S2.
pub const HANDSHAKE_SIZE: usize = 1536;

/// Completes a plain RTMP handshake as a client (C0+C1, read S0+S1+S2, send C2).
pub async fn client_handshake(stream: &mut tokio::net::TcpStream) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c0c1 = vec![3u8];
    c0c1.extend(std::iter::repeat_n(0u8, HANDSHAKE_SIZE));
    stream.write_all(&c0c1).await?;
    let mut s0s1s2 = vec![0u8; 1 + 2 * HANDSHAKE_SIZE];
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_exact(&mut s0s1s2),
    )
    .await
    .map_err(|_| std::io::Error::other("no S0S1S2"))??;
    if s0s1s2[0] != 3 {
        return Err(std::io::Error::other("S0 is not version 3"));
    }
    stream.write_all(&s0s1s2[1..1 + HANDSHAKE_SIZE]).await // C2 echoes S1
}

/// Sends [`publish_commands`] for `key` on a handshaken connection; whether the server answered
/// `NetStream.Publish.Start` (false: refused, closed, or silent for 5 s).
pub async fn publish_started(stream: &mut tokio::net::TcpStream, key: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.write_all(&publish_commands(key)).await.is_err() {
        return false;
    }
    let needle = b"NetStream.Publish.Start";
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        if seen
            .windows(b"NetStream.Publish.BadName".len())
            .any(|w| w == b"NetStream.Publish.BadName")
        {
            return false;
        }
        match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    true
}
