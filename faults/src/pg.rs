//! A PostgreSQL wire proxy on a free loopback port: every client connection gets a connection
//! of its own to the server, and every request (the messages up to a `Sync`, or a simple
//! `Query`) is one operation the rules see by its statement's text.
//!
//! The proxy reads the protocol's framing and nothing more: it remembers which statement text
//! each prepared statement name stands for (from `Parse`), so a `Bind` + `Execute` is matched by
//! its SQL, and a request that only prepares is never faulted. Answers are relayed message by
//! message, in order, and asynchronous messages (notifications, notices, parameter changes)
//! pass at any time.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use crate::listen::Listening;
use crate::rules::{Fault, Faults};

/// The proxy: listening on 127.0.0.1 until dropped.
#[derive(Debug)]
pub struct PgProxy {
    listening: Listening,
    faults: Arc<Faults>,
}

impl PgProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream` (`host:port`), applying
    /// `faults`' rules.
    pub async fn start(upstream: &str, faults: Arc<Faults>) -> io::Result<PgProxy> {
        let (upstream, shared) = (upstream.to_string(), faults.clone());
        let listening =
            Listening::start(move |client, id| serve(client, upstream.clone(), shared.clone(), id))
                .await?;
        Ok(PgProxy { listening, faults })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.listening.addr
    }

    /// Client connections the proxy accepted so far (each went on to the server).
    pub fn connections(&self) -> u64 {
        self.listening.accepted()
    }

    /// The rules, and what was done.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// `url` (a `postgres://` URL) with its host and port replaced by the proxy's.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use sekiban_faults::{Faults, PgProxy};
    /// let proxy = PgProxy::start("127.0.0.1:1", Faults::new(1)).await.unwrap();
    /// let url = proxy.url("postgres://app:pw@db.internal:5432/events?sslmode=disable");
    /// assert_eq!(url, format!("postgres://app:pw@127.0.0.1:{}/events?sslmode=disable", proxy.addr().port()));
    /// # });
    /// ```
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let user = authority
            .rsplit_once('@')
            .map_or(String::new(), |(u, _)| format!("{u}@"));
        format!("{scheme}://{user}{}{tail}", self.addr())
    }
}

/// What to do with the answer to one forwarded request (or the answer to send instead).
#[derive(Debug)]
enum Expect {
    Relay,
    Drop,
    Cut(usize),
    Inject(Vec<u8>),
}

async fn serve(
    client: TcpStream,
    upstream: String,
    faults: Arc<Faults>,
    id: u64,
) -> io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let cw = Arc::new(tokio::sync::Mutex::new(cw));
    // Whichever direction ends first ends the connection: both sockets close.
    tokio::select! {
        r = upward(BufReader::new(cr), sw, cw.clone(), tx, faults, id) => r,
        r = downward(sr, cw, rx) => r,
    }
}

/// Client to server: the startup, then requests, each decided on by the rules.
async fn upward(
    mut cr: BufReader<OwnedReadHalf>,
    mut sw: OwnedWriteHalf,
    cw: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    tx: mpsc::UnboundedSender<Expect>,
    faults: Arc<Faults>,
    id: u64,
) -> io::Result<()> {
    // The startup message has no type byte; a TLS or GSS request is declined (the client then
    // goes on in plain text or gives up).
    loop {
        let len = cr.read_i32().await?;
        let mut body = vec![0; usize::try_from(len - 4).map_err(bad)?];
        cr.read_exact(&mut body).await?;
        let code = body
            .get(..4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        if len == 8 && matches!(code, Some(80_877_103 | 80_877_104)) {
            cw.lock().await.write_all(b"N").await?;
            continue;
        }
        sw.write_all(&len.to_be_bytes()).await?;
        sw.write_all(&body).await?;
        break;
    }
    let mut statements: HashMap<Vec<u8>, Arc<str>> = HashMap::new();
    let mut group = Vec::new();
    let mut bound: Option<Arc<str>> = None;
    let mut executes = false;
    loop {
        let kind = cr.read_u8().await?;
        let len = cr.read_i32().await?;
        let mut body = vec![0; usize::try_from(len - 4).map_err(bad)?];
        cr.read_exact(&mut body).await?;
        group.push(kind);
        group.extend_from_slice(&len.to_be_bytes());
        group.extend_from_slice(&body);
        let operation = match kind {
            // Authentication answers and the goodbye go through at once.
            b'p' | b'X' => {
                sw.write_all(&group).await?;
                group.clear();
                if kind == b'X' {
                    return Ok(());
                }
                continue;
            }
            b'P' => {
                let (name, rest) = cstr(&body);
                let (query, _) = cstr(rest);
                statements.insert(name.to_vec(), Arc::from(String::from_utf8_lossy(query)));
                continue;
            }
            b'B' => {
                let (_portal, rest) = cstr(&body);
                let (name, _) = cstr(rest);
                bound = statements.get(name).cloned();
                continue;
            }
            b'E' => {
                executes = true;
                continue;
            }
            b'S' => executes.then(|| bound.clone()).flatten(),
            b'Q' => Some(Arc::from(String::from_utf8_lossy(cstr(&body).0))),
            _ => continue,
        };
        executes = false;
        let fault = operation.and_then(|op| faults.decide(id, &op));
        let expect = match fault {
            None | Some(Fault::Unprocessed | Fault::Cancel { .. }) => Expect::Relay,
            Some(Fault::Delay { ms }) => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Expect::Relay
            }
            Some(Fault::DropReply) => Expect::Drop,
            Some(Fault::CutReply { after }) => Expect::Cut(after),
            Some(Fault::Refuse { code }) => Expect::Inject(error_response(&code)),
            Some(Fault::Close) => return Ok(()),
        };
        let forward = !matches!(expect, Expect::Inject(_));
        // Told before the server can answer.
        if tx.send(expect).is_err() {
            return Ok(());
        }
        if forward {
            sw.write_all(&group).await?;
        }
        group.clear();
    }
}

/// Server to client: answers relayed in order, each as its request's expectation says.
async fn downward(
    mut sr: OwnedReadHalf,
    cw: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    mut rx: mpsc::UnboundedReceiver<Expect>,
) -> io::Result<()> {
    let mut queue: VecDeque<Expect> = VecDeque::new();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut out = Vec::new();
        while let Some(Expect::Inject(_)) = queue.front() {
            if let Some(Expect::Inject(bytes)) = queue.pop_front() {
                out.extend_from_slice(&bytes);
            }
        }
        if !out.is_empty() {
            cw.lock().await.write_all(&out).await?;
            out.clear();
        }
        tokio::select! {
            biased;
            e = rx.recv() => match e {
                Some(e) => queue.push_back(e),
                None => return Ok(()),
            },
            n = sr.read(&mut chunk) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
                // Expectations sent before this answer are in the channel already.
                while let Ok(e) = rx.try_recv() {
                    queue.push_back(e);
                }
                let mut at = 0;
                let mut end = false;
                while let Some(size) = message_size(&buf[at..]) {
                    while let Some(Expect::Inject(_)) = queue.front() {
                        if let Some(Expect::Inject(bytes)) = queue.pop_front() {
                            out.extend_from_slice(&bytes);
                        }
                    }
                    let msg = &buf[at..at + size];
                    at += size;
                    let kind = msg[0];
                    let ready = kind == b'Z';
                    let asynchronous = matches!(kind, b'A' | b'N' | b'S');
                    match queue.front_mut() {
                        // (An injection is never at the front here: drained just above.)
                        None | Some(Expect::Relay | Expect::Inject(_)) => {
                            out.extend_from_slice(msg);
                            if ready {
                                queue.pop_front();
                            }
                        }
                        Some(Expect::Drop) if ready => {
                            end = true;
                            break;
                        }
                        Some(Expect::Drop) => {
                            if asynchronous {
                                out.extend_from_slice(msg);
                            }
                        }
                        Some(Expect::Cut(left)) => {
                            if ready || *left == 0 {
                                end = true;
                                break;
                            }
                            *left -= 1;
                            out.extend_from_slice(msg);
                        }
                    }
                }
                buf.drain(..at);
                if !out.is_empty() {
                    cw.lock().await.write_all(&out).await?;
                }
                if end {
                    return Ok(());
                }
            }
        }
    }
}

/// The size of the whole message at the start of `buf`, once it is all there.
fn message_size(buf: &[u8]) -> Option<usize> {
    let len = buf.get(1..5)?;
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    let size = usize::try_from(len).ok()? + 1;
    (buf.len() >= size).then_some(size)
}

/// A NUL-terminated string and what follows it.
fn cstr(b: &[u8]) -> (&[u8], &[u8]) {
    match b.iter().position(|&c| c == 0) {
        Some(at) => (&b[..at], &b[at + 1..]),
        None => (b, &[]),
    }
}

/// An `ErrorResponse` with `code`, and the `ReadyForQuery` (idle) that ends the request.
fn error_response(code: &str) -> Vec<u8> {
    let message = format!("fault injected by the test proxy: SQLSTATE {code}");
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', code),
        (b'M', message.as_str()),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
    out
}

fn bad(_: std::num::TryFromIntError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "a message length below 4")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        let e = error_response("40001");
        let size = message_size(&e).unwrap();
        assert_eq!(e[0], b'E');
        assert_eq!(&e[size..], &[b'Z', 0, 0, 0, 5, b'I']);
        assert_eq!(message_size(&e[..size - 1]), None);
        assert_eq!(cstr(b"s1\0SELECT 1\0"), (&b"s1"[..], &b"SELECT 1\0"[..]));
    }
}
