//! The loopback ceiling for fan-out: a minimal tokio + tungstenite server that writes the same
//! frames at the same rate to the same number of sockets as barrage, with no room logic. The
//! fan-out benchmark runs it in the same process and reports barrage's figures as ratios to it.

use std::net::SocketAddr;
use std::time::Duration;

use futures::SinkExt;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

/// A running baseline broadcaster.
pub struct Baseline {
    pub addr: SocketAddr,
    frames: broadcast::Sender<Utf8Bytes>,
    stop: CancellationToken,
}

impl Baseline {
    /// Listens on 127.0.0.1 (a free port) and serves every connection with the shared frames.
    pub async fn start() -> std::io::Result<Baseline> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (frames, _) = broadcast::channel::<Utf8Bytes>(64);
        let stop = CancellationToken::new();
        let tx = frames.clone();
        let accept_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = accept_stop.cancelled() => return,
                    a = listener.accept() => match a {
                        Ok(a) => a,
                        Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue; }
                    },
                };
                let mut rx = tx.subscribe();
                let stop = accept_stop.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(
                        stream,
                        Some(super::viewers::small_ws_config()),
                    )
                    .await
                    else {
                        return;
                    };
                    loop {
                        let frame = tokio::select! {
                            _ = stop.cancelled() => return,
                            f = rx.recv() => f,
                        };
                        match frame {
                            Ok(text) => {
                                if ws.send(Message::Text(text)).await.is_err() {
                                    return;
                                }
                            }
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    }
                });
            }
        });
        Ok(Baseline { addr, frames, stop })
    }

    /// Every `tick` until `stop`, sends a batch of `events` danmaku stamped with the send time.
    pub fn pace(
        &self,
        tick: Duration,
        events: usize,
        text_pad: usize,
    ) -> tokio::task::JoinHandle<()> {
        let frames = self.frames.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(tick);
            let mut seq = 0u64;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let now = super::viewers::now_us();
                let mut body = String::from("{\"type\":\"batch\",\"events\":[");
                for i in 0..events {
                    seq += 1;
                    if i > 0 {
                        body.push(',');
                    }
                    body.push_str(&format!(
                        "{{\"seq\":{seq},\"ts_ms\":{},\"stream_ms\":0,\"priority\":\"danmaku\",\"danmaku\":{{\"user\":\"bench\",\"name\":\"bench\",\"text\":\"b:{now}\",\"color\":16777215,\"mode\":\"scroll\",\"pad\":\"{}\"}}}}",
                        now / 1000,
                        "x".repeat(text_pad)
                    ));
                }
                body.push_str("]}");
                let _ = frames.send(Utf8Bytes::from(body));
            }
        })
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}
