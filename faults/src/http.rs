//! An HTTP/1 proxy on a free loopback port, in front of an emulator's HTTP API (DynamoDB Local,
//! moto's S3, Azurite): every client connection gets a connection of its own to the emulator,
//! and every request is one operation the rules see by its name: a DynamoDB request by its
//! `X-Amz-Target` operation (`TransactWriteItems`, `Query`, ...), any other by its method and
//! path (`PUT /bucket/snapshots/...`).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::listen::Listening;
use crate::rules::{Fault, Faults};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// The proxy: listening on 127.0.0.1 until dropped.
#[derive(Debug)]
pub struct HttpProxy {
    listening: Listening,
    faults: Arc<Faults>,
}

impl HttpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream` (`http://host:port`, or
    /// `host:port`), applying `faults`' rules.
    pub async fn start(upstream: &str, faults: Arc<Faults>) -> io::Result<HttpProxy> {
        let authority = upstream
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let shared = faults.clone();
        let listening = Listening::start(move |client, id| {
            serve(client, authority.clone(), shared.clone(), id)
        })
        .await?;
        Ok(HttpProxy { listening, faults })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.listening.addr
    }

    /// The endpoint to give a client: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The rules, and what was done.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }
}

/// One client connection; its requests go, in turn, over one connection to the upstream
/// (opened again after a fault closed it).
async fn serve(
    client: TcpStream,
    upstream: String,
    faults: Arc<Faults>,
    id: u64,
) -> io::Result<()> {
    client.set_nodelay(true)?;
    let sender: Arc<tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>> =
        Arc::new(tokio::sync::Mutex::new(None));
    let service = service_fn(move |req: Request<Incoming>| {
        let (upstream, faults, sender) = (upstream.clone(), faults.clone(), sender.clone());
        async move { handle(req, &upstream, &faults, &sender, id).await }
    });
    hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(client), service)
        .await
        .map_err(io::Error::other)
}

/// The operation a request is: DynamoDB's `X-Amz-Target` operation, else method and path.
fn operation<B>(req: &Request<B>) -> String {
    match req
        .headers()
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
    {
        Some(target) => target.rsplit('.').next().unwrap_or(target).to_string(),
        None => format!("{} {}", req.method(), req.uri().path()),
    }
}

async fn handle(
    req: Request<Incoming>,
    upstream: &str,
    faults: &Faults,
    sender: &tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
    id: u64,
) -> io::Result<Response<Body>> {
    let op: Arc<str> = Arc::from(operation(&req));
    let fault = faults.decide(id, &op);
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    match fault {
        Some(Fault::Close) => return Err(io::Error::other("fault: the connection is closed")),
        Some(Fault::Refuse { code }) => return Ok(refusal(&code)),
        Some(Fault::Unprocessed) => {
            if let Some(r) = unprocessed(&op, &body) {
                return Ok(r);
            }
        }
        Some(Fault::Delay { ms }) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        _ => {}
    }
    let forwarded = Request::from_parts(parts, Full::new(body));
    let (status, headers, answer) = forward(forwarded, upstream, sender).await?;
    match fault {
        Some(Fault::DropReply) => Err(io::Error::other("fault: the reply is dropped")),
        Some(Fault::CutReply { after }) => {
            let head = answer.slice(..after.min(answer.len().saturating_sub(1)));
            let frames: Vec<Result<Frame<Bytes>, BoxError>> =
                vec![Ok(Frame::data(head)), Err("fault: the reply is cut".into())];
            let mut r = Response::new(StreamBody::new(futures::stream::iter(frames)).boxed());
            *r.status_mut() = status;
            *r.headers_mut() = headers;
            Ok(r)
        }
        _ => {
            let mut r = Response::new(full(answer));
            *r.status_mut() = status;
            *r.headers_mut() = headers;
            Ok(r)
        }
    }
}

fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|e: Infallible| match e {}).boxed()
}

/// Sends `req` upstream on the connection's upstream connection (opened when there is none)
/// and reads the whole answer.
async fn forward(
    req: Request<Full<Bytes>>,
    upstream: &str,
    sender: &tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
) -> io::Result<(StatusCode, hyper::HeaderMap, Bytes)> {
    let mut guard = sender.lock().await;
    if guard.as_ref().is_none_or(|s| s.is_closed()) {
        let stream = TcpStream::connect(upstream).await?;
        stream.set_nodelay(true)?;
        let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        *guard = Some(s);
    }
    let s = guard
        .as_mut()
        .ok_or_else(|| io::Error::other("no upstream connection"))?;
    s.ready().await.map_err(io::Error::other)?;
    let resp = s.send_request(req).await.map_err(io::Error::other)?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(io::Error::other)?.to_bytes();
    Ok((parts.status, parts.headers, bytes))
}

/// An error answer: a number is that HTTP status (`500`, `503`), anything else a DynamoDB
/// error of that type, with the status the service gives it (500 `InternalServerError`, 503
/// `ServiceUnavailable`, 400 for `ThrottlingException`,
/// `ProvisionedThroughputExceededException`, `RequestLimitExceeded`, ...).
fn refusal(code: &str) -> Response<Body> {
    // The service's own statuses: 500 and 503 for its internal errors, 400 for the rest.
    let (status, kind) = match code.parse::<u16>() {
        Ok(n) => (
            StatusCode::from_u16(n).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            if n == 503 {
                "ServiceUnavailable"
            } else {
                "InternalServerError"
            },
        ),
        Err(_) if code == "InternalServerError" => (StatusCode::INTERNAL_SERVER_ERROR, code),
        Err(_) if code == "ServiceUnavailable" => (StatusCode::SERVICE_UNAVAILABLE, code),
        Err(_) => (StatusCode::BAD_REQUEST, code),
    };
    let body = format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"fault injected by the test proxy"}}"#
    );
    let mut r = Response::new(full(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    r
}

/// A DynamoDB batch answered with nothing processed: every item of a `BatchWriteItem` back in
/// `UnprocessedItems`, every key of a `BatchGetItem` in `UnprocessedKeys` (what the service
/// does under load). `None` for other operations.
fn unprocessed(op: &str, body: &[u8]) -> Option<Response<Body>> {
    let request: serde_json::Value = serde_json::from_slice(body).ok()?;
    let items = request.get("RequestItems")?.clone();
    let answer = match op {
        "BatchWriteItem" => serde_json::json!({ "UnprocessedItems": items }),
        "BatchGetItem" => serde_json::json!({ "Responses": {}, "UnprocessedKeys": items }),
        _ => return None,
    };
    let mut r = Response::new(full(Bytes::from(answer.to_string())));
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_by_target_or_path() {
        let r = Request::builder()
            .method("POST")
            .uri("/")
            .header("x-amz-target", "DynamoDB_20120810.TransactWriteItems")
            .body(())
            .unwrap();
        assert_eq!(operation(&r), "TransactWriteItems");
        let r = Request::builder()
            .method("PUT")
            .uri("/bucket/snapshots/a?x=1")
            .body(())
            .unwrap();
        assert_eq!(operation(&r), "PUT /bucket/snapshots/a");
    }

    #[tokio::test]
    async fn a_batch_answered_unprocessed_returns_every_item() {
        let body = br#"{"RequestItems":{"t":[{"DeleteRequest":{"Key":{"pk":{"S":"a"}}}}]}}"#;
        let r = unprocessed("BatchWriteItem", body).unwrap();
        let b = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v["UnprocessedItems"]["t"][0]["DeleteRequest"]["Key"]["pk"]["S"],
            "a"
        );
        assert!(unprocessed("Query", body).is_none());
        let r = refusal("ThrottlingException");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(refusal("503").status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
