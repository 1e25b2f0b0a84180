//! A counting HTTP/1 proxy on 127.0.0.1 in front of DynamoDB Local: every request the SDK sends
//! is forwarded on a connection of its own to the emulator and counted by its `X-Amz-Target`
//! operation, with the bytes of its body and of the response's, and the capacity units the
//! response reports (`ConsumedCapacity`). So both contenders are measured the same way, without
//! trusting either's own counters. While capturing, it also keeps each request and response body
//! for [`crate::units::Accountant`]. Used only in the counted phases; the timed phases talk to
//! the emulator directly.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// One request and its response, as sent.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The operation: `X-Amz-Target` after its service prefix (`Query`, `TransactWriteItems` …).
    pub target: String,
    pub status: u16,
    pub request: Bytes,
    pub response: Bytes,
}

/// What the requests of one operation cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tally {
    pub requests: u64,
    /// Body bytes sent and received.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Capacity units the responses reported.
    pub reported_units: f64,
}

impl std::ops::Add for Tally {
    type Output = Tally;
    fn add(self, o: Tally) -> Tally {
        Tally {
            requests: self.requests + o.requests,
            bytes_sent: self.bytes_sent + o.bytes_sent,
            bytes_received: self.bytes_received + o.bytes_received,
            reported_units: self.reported_units + o.reported_units,
        }
    }
}

/// Counts by operation at one moment; subtract two for what happened between them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counted(pub BTreeMap<String, Tally>);

impl Counted {
    /// Summed over operations.
    pub fn total(&self) -> Tally {
        self.0.values().fold(Tally::default(), |a, t| a + *t)
    }

    /// `Query 2, TransactWriteItems 1` per `per` operations of the benchmark.
    pub fn by_target(&self, per: f64) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .filter(|(_, t)| t.requests > 0)
            .map(|(k, t)| format!("{k} {}", fmt_count(t.requests as f64 / per)))
            .collect();
        if parts.is_empty() {
            "–".into()
        } else {
            parts.join(", ")
        }
    }
}

/// A count per operation: whole numbers without decimals.
pub fn fmt_count(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

impl std::ops::Sub for &Counted {
    type Output = Counted;
    fn sub(self, o: &Counted) -> Counted {
        let mut out = BTreeMap::new();
        for (k, t) in &self.0 {
            let b = o.0.get(k).copied().unwrap_or_default();
            out.insert(
                k.clone(),
                Tally {
                    requests: t.requests - b.requests,
                    bytes_sent: t.bytes_sent - b.bytes_sent,
                    bytes_received: t.bytes_received - b.bytes_received,
                    reported_units: t.reported_units - b.reported_units,
                },
            );
        }
        Counted(out)
    }
}

#[derive(Debug)]
struct State {
    upstream: SocketAddr,
    counts: Mutex<BTreeMap<String, Tally>>,
    captured: Mutex<Option<Vec<Exchange>>>,
}

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(State {
            upstream,
            counts: Mutex::new(BTreeMap::new()),
            captured: Mutex::new(None),
        });
        let s = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = serve(client, s).await;
                });
            }
        });
        Ok(Proxy { port, state, task })
    }

    /// The endpoint to give a client.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn counted(&self) -> Counted {
        Counted(
            self.state
                .counts
                .lock()
                .map(|c| c.clone())
                .unwrap_or_default(),
        )
    }

    /// Starts keeping the bodies of what passes (dropping what was kept).
    pub fn capture(&self, on: bool) {
        if let Ok(mut c) = self.state.captured.lock() {
            *c = on.then(Vec::new);
        }
    }

    /// The exchanges kept since the last call, in the order they ended.
    pub fn take(&self) -> Vec<Exchange> {
        self.state
            .captured
            .lock()
            .ok()
            .and_then(|mut c| c.as_mut().map(std::mem::take))
            .unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Upstream = Arc<tokio::sync::Mutex<SendRequest<Full<Bytes>>>>;

/// One client connection: its requests go, in turn, over one connection to the emulator.
async fn serve(client: TcpStream, state: Arc<State>) -> anyhow::Result<()> {
    client.set_nodelay(true)?;
    let server = TcpStream::connect(state.upstream).await?;
    server.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(server)).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let upstream: Upstream = Arc::new(tokio::sync::Mutex::new(sender));
    let service = service_fn(move |req| forward(req, upstream.clone(), state.clone()));
    let r = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await;
    driver.abort();
    Ok(r?)
}

async fn forward(
    req: Request<Incoming>,
    upstream: Upstream,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let failed = |why: String| {
        let mut r = Response::new(Full::new(Bytes::from(why)));
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        Ok(r)
    };
    let (mut parts, body) = req.into_parts();
    let request = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return failed(format!("proxy: reading the request: {e}")),
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
        .unwrap_or_else(|| "(no target)".into());
    parts.headers.remove(hyper::header::EXPECT);
    let out = Request::from_parts(parts, Full::new(request.clone()));
    let sent = upstream.lock().await.send_request(out).await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => return failed(format!("proxy: forwarding: {e}")),
    };
    let (parts, body) = resp.into_parts();
    let response = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return failed(format!("proxy: reading the response: {e}")),
    };
    let units = reported_units(&response);
    if let Ok(mut counts) = state.counts.lock() {
        let t = counts.entry(target.clone()).or_default();
        t.requests += 1;
        t.bytes_sent += request.len() as u64;
        t.bytes_received += response.len() as u64;
        t.reported_units += units;
    }
    if let Ok(mut captured) = state.captured.lock()
        && let Some(c) = captured.as_mut()
    {
        c.push(Exchange {
            target,
            status: parts.status.as_u16(),
            request,
            response: response.clone(),
        });
    }
    Ok(Response::from_parts(parts, Full::new(response)))
}

/// The capacity units a response body reports: its `ConsumedCapacity`, one object or a list.
pub fn reported_units(body: &[u8]) -> f64 {
    if !body
        .windows(b"ConsumedCapacity".len())
        .any(|w| w == b"ConsumedCapacity")
    {
        return 0.0;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return 0.0;
    };
    let one = |c: &serde_json::Value| c["CapacityUnits"].as_f64().unwrap_or(0.0);
    match &v["ConsumedCapacity"] {
        serde_json::Value::Array(list) => list.iter().map(one).sum(),
        c @ serde_json::Value::Object(_) => one(c),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_reported() {
        assert_eq!(reported_units(b"{}"), 0.0);
        assert_eq!(
            reported_units(br#"{"ConsumedCapacity":{"TableName":"t","CapacityUnits":1.5}}"#),
            1.5
        );
        assert_eq!(
            reported_units(
                br#"{"ConsumedCapacity":[{"TableName":"t","CapacityUnits":2.0},{"CapacityUnits":1}]}"#
            ),
            3.0
        );
    }
}
