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

    /// Client connections the proxy accepted so far (each went on to the server).
    pub fn connections(&self) -> u64 {
        self.listening.accepted()
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
    let dynamodb = req.headers().contains_key("x-amz-target");
    let fault = faults.decide(id, &op);
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    match fault {
        Some(Fault::Close) => return Err(io::Error::other("fault: the connection is closed")),
        Some(Fault::Refuse { code }) => return Ok(refusal(&code, dynamodb)),
        Some(Fault::Unprocessed) => {
            if let Some(r) = unprocessed(&op, &body) {
                return Ok(r);
            }
        }
        Some(Fault::Cancel { ref reason }) => {
            if let Some(r) = cancelled(&op, &body, reason) {
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
            // The head goes out with the status line before the connection breaks: the error
            // comes a moment later, so the server has flushed what came before it.
            let cut = async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Err::<Frame<Bytes>, BoxError>("fault: the reply is cut".into())
            };
            let frames = futures::StreamExt::chain(
                futures::stream::iter([Ok::<_, BoxError>(Frame::data(head))]),
                futures::stream::once(cut),
            );
            let mut r = Response::new(StreamBody::new(frames).boxed());
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

/// An error answer in the service's own form: for a DynamoDB request (one with an
/// `X-Amz-Target`) a JSON error of that type, for S3 and Azure Blob an XML `<Error>` with the
/// code (also in Azure's `x-ms-error-code` header). A number is that HTTP status, with the
/// service's name for it; a name gets the status the services give it: 500 for
/// `InternalServerError`, `InternalError` and `OperationTimedOut`, 503 for
/// `ServiceUnavailable`, `SlowDown` and `ServerBusy`, 400 for the rest (DynamoDB's throttling
/// errors among them).
fn refusal(code: &str, dynamodb: bool) -> Response<Body> {
    let (status, kind) = match code.parse::<u16>() {
        Ok(n) => (
            StatusCode::from_u16(n).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            match (n, dynamodb) {
                (503, _) => "ServiceUnavailable",
                (_, true) => "InternalServerError",
                (_, false) => "InternalError",
            },
        ),
        Err(_) => (
            match code {
                "InternalServerError" | "InternalError" | "OperationTimedOut" => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                "ServiceUnavailable" | "SlowDown" | "ServerBusy" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            },
            code,
        ),
    };
    let message = "fault injected by the test proxy";
    let (body, content_type) = if dynamodb {
        (
            format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"{message}"}}"#
            ),
            "application/x-amz-json-1.0",
        )
    } else {
        (
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>{kind}</Code><Message>{message}</Message></Error>"#
            ),
            "application/xml",
        )
    };
    let mut r = Response::new(full(Bytes::from(body)));
    *r.status_mut() = status;
    let headers = r.headers_mut();
    headers.insert(
        "content-type",
        hyper::header::HeaderValue::from_static(content_type),
    );
    if !dynamodb && let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        headers.insert("x-ms-error-code", v);
    }
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

/// A DynamoDB transaction answered `TransactionCanceledException`: one cancellation reason per
/// item, `reason` for the first, `None` for the others. `None` for other operations.
fn cancelled(op: &str, body: &[u8], reason: &str) -> Option<Response<Body>> {
    if op != "TransactWriteItems" {
        return None;
    }
    let request: serde_json::Value = serde_json::from_slice(body).ok()?;
    let items = request.get("TransactItems")?.as_array()?.len().max(1);
    let reasons: Vec<serde_json::Value> = (0..items)
        .map(|i| match i {
            0 => {
                serde_json::json!({ "Code": reason, "Message": "fault injected by the test proxy" })
            }
            _ => serde_json::json!({ "Code": "None" }),
        })
        .collect();
    let codes: Vec<&str> = (0..items)
        .map(|i| if i == 0 { reason } else { "None" })
        .collect();
    let answer = serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        "CancellationReasons": reasons,
    });
    let mut r = Response::new(full(Bytes::from(answer.to_string())));
    *r.status_mut() = StatusCode::BAD_REQUEST;
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
    }

    #[tokio::test]
    async fn a_cancelled_transaction_gives_a_reason_per_item() {
        let body = br#"{"TransactItems":[{"Put":{}},{"Update":{}}]}"#;
        let r = cancelled("TransactWriteItems", body, "TransactionConflict").unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let b = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert!(
            v["__type"]
                .as_str()
                .unwrap()
                .ends_with("#TransactionCanceledException")
        );
        let codes: Vec<&str> = v["CancellationReasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["TransactionConflict", "None"]);
        assert!(cancelled("PutItem", body, "TransactionConflict").is_none());
    }

    #[tokio::test]
    async fn refusals_take_each_service_s_form_and_status() {
        let r = refusal("ThrottlingException", true);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let b = r.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&b).contains("#ThrottlingException"),
            "{b:?}"
        );
        assert_eq!(
            refusal("503", true).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        for (code, status) in [
            ("SlowDown", 503),
            ("ServerBusy", 503),
            ("InternalError", 500),
            ("OperationTimedOut", 500),
            ("503", 503),
        ] {
            let r = refusal(code, false);
            assert_eq!(r.status().as_u16(), status, "{code}");
            let named = r.headers()["x-ms-error-code"].to_str().unwrap().to_string();
            let b = r.into_body().collect().await.unwrap().to_bytes();
            let b = String::from_utf8_lossy(&b);
            assert!(b.contains(&format!("<Code>{named}</Code>")), "{code}: {b}");
        }
    }
}
