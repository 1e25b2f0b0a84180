//! What both proxies share: a free port of 127.0.0.1, and the task that accepts connections
//! on it until the proxy is dropped.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A listening proxy: its address, and its accepting task (stopped when dropped).
#[derive(Debug)]
pub(crate) struct Listening {
    pub(crate) addr: SocketAddr,
    accept: JoinHandle<()>,
    accepted: Arc<AtomicU64>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Listening {
    /// Binds a free port of 127.0.0.1 and hands each client connection, numbered from 1, to
    /// `serve` on a task of its own. A connection that fails ends; its client sees it closed.
    pub(crate) async fn start<F, Fut>(serve: F) -> io::Result<Listening>
    where
        F: Fn(TcpStream, u64) -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicU64::new(0));
        let counted = accepted.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let next = counted.fetch_add(1, Ordering::SeqCst) + 1;
                let connection = serve(client, next);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        });
        Ok(Listening {
            addr,
            accept,
            accepted,
        })
    }

    /// Client connections accepted so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}
