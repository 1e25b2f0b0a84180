//! A counting TCP proxy on 127.0.0.1 in front of the server: it reads the frontend messages of
//! the PostgreSQL wire protocol and counts the ones a client waits on — `Query` (simple protocol)
//! and `Sync` (extended protocol: Parse/Bind/Execute… then Sync), plus `Flush` — so every client
//! library is measured the same way, without trusting its own counters. Used only in a short,
//! untimed phase; the timed phases connect to the server directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

/// Requests counted so far.
#[derive(Debug, Default)]
pub struct Counts {
    query: AtomicU64,
    sync: AtomicU64,
    flush: AtomicU64,
}

/// A snapshot of [`Counts`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Counted {
    pub query: u64,
    pub sync: u64,
    pub flush: u64,
}

impl Counted {
    /// Requests a client waited on: simple queries, syncs and flushes.
    pub fn round_trips(&self) -> u64 {
        self.query + self.sync + self.flush
    }
}

impl std::ops::Sub for Counted {
    type Output = Counted;
    fn sub(self, o: Counted) -> Counted {
        Counted {
            query: self.query - o.query,
            sync: self.sync - o.sync,
            flush: self.flush - o.flush,
        }
    }
}

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = pipe(client, server, c).await;
                    }
                });
            }
        });
        Ok(Proxy { port, counts, task })
    }

    pub fn counted(&self) -> Counted {
        Counted {
            query: self.counts.query.load(Ordering::Relaxed),
            sync: self.counts.sync.load(Ordering::Relaxed),
            flush: self.counts.flush.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(client: TcpStream, server: TcpStream, counts: Arc<Counts>) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    });
    let forward = async {
        // Untyped start-up messages: SSL/GSS requests (answered 'N' without TLS), then the
        // start-up message itself.
        loop {
            let len = cr.read_u32().await?;
            let mut body = vec![0u8; (len as usize).saturating_sub(4)];
            cr.read_exact(&mut body).await?;
            let mut msg = len.to_be_bytes().to_vec();
            msg.extend_from_slice(&body);
            sw.write_all(&msg).await?;
            let code = body
                .get(..4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            if code != SSL_REQUEST && code != GSSENC_REQUEST {
                break;
            }
        }
        // Typed messages.
        loop {
            let kind = cr.read_u8().await?;
            let len = cr.read_u32().await?;
            let mut msg = Vec::with_capacity(len as usize + 1);
            msg.push(kind);
            msg.extend_from_slice(&len.to_be_bytes());
            msg.resize(len as usize + 1, 0);
            cr.read_exact(&mut msg[5..]).await?;
            match kind {
                b'Q' => counts.query.fetch_add(1, Ordering::Relaxed),
                b'S' => counts.sync.fetch_add(1, Ordering::Relaxed),
                b'H' => counts.flush.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
            sw.write_all(&msg).await?;
            if kind == b'X' {
                return Ok::<_, std::io::Error>(());
            }
        }
    };
    let r = forward.await;
    let _ = sw.shutdown().await;
    back.abort();
    r
}
