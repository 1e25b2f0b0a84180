//! The Blob endpoint of the tests: `SEKIBAN_AZURE_BLOB_ENDPOINT` (Azurite, which
//! `scripts/test.sh` starts, or a real account), and the container the tests use on it. Neither
//! Azurite nor `object_store` creates containers, so this does, with one Shared Key signed
//! `PUT` (deployments get theirs from `infra/`).

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sekiban_core::BlobStore;
use sekiban_cosmos::{AzureBlobConfig, azure_blobs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Azurite's one account and its well-known key (public, in Azurite's documentation).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The endpoint, or a failure naming the command that provides one.
pub fn endpoint() -> String {
    match std::env::var("SEKIBAN_AZURE_BLOB_ENDPOINT") {
        Ok(e) if !e.is_empty() => e.trim_end_matches('/').to_owned(),
        _ => panic!(
            "SEKIBAN_AZURE_BLOB_ENDPOINT is not set: run `bash scripts/test.sh`, which starts Azurite, \
             or start it yourself (`azurite-blob --blobHost 127.0.0.1 --blobPort PORT --inMemoryPersistence`, \
             installed by scripts/setup.sh) and set SEKIBAN_AZURE_BLOB_ENDPOINT=http://127.0.0.1:PORT/devstoreaccount1"
        ),
    }
}

/// A blob store on a new container of the test endpoint.
pub async fn blobs() -> Arc<dyn BlobStore> {
    blobs_through(&endpoint()).await.0
}

/// A blob store on a new container of the test endpoint, sending its requests to `endpoint`
/// (a proxy in front of it), and the container's name.
pub async fn blobs_through(endpoint: &str) -> (Arc<dyn BlobStore>, String) {
    let container = format!("sekiban-{}", uuid::Uuid::new_v4().simple());
    create_container(&self::endpoint(), &container).await;
    let mut config = AzureBlobConfig::new(ACCOUNT, container.clone());
    config.endpoint = Some(endpoint.to_owned());
    config.key = Some(KEY.to_owned());
    (
        Arc::new(azure_blobs(&config).expect("a blob store")),
        container,
    )
}

/// Creates `container` at an `http://HOST:PORT/ACCOUNT` endpoint (Azurite's path-style URLs).
async fn create_container(endpoint: &str, container: &str) {
    let url: url::Url = endpoint.parse().expect("the Blob endpoint is a URL");
    assert_eq!(
        url.scheme(),
        "http",
        "the tests create their container on Azurite (http); on a real account, create it first"
    );
    let host = format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port_or_known_default().expect("a port")
    );
    let path = format!("{}/{container}", url.path().trim_end_matches('/'));
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}{path}\nrestype:container"
    );
    let key = base64_decode(KEY);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("an HMAC key");
    mac.update(to_sign.as_bytes());
    let signature = base64_encode(&mac.finalize().into_bytes());
    let request = format!(
        "PUT {path}?restype=container HTTP/1.1\r\nHost: {host}\r\nx-ms-date: {date}\r\nx-ms-version: {version}\r\n\
         Authorization: SharedKey {ACCOUNT}:{signature}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut conn = tokio::net::TcpStream::connect(&host)
        .await
        .unwrap_or_else(|e| panic!("Azurite at {host}: {e}; run `bash scripts/test.sh`"));
    conn.write_all(request.as_bytes()).await.expect("a request");
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).await.expect("a reply");
    let reply = String::from_utf8_lossy(&reply);
    let status = reply.split_whitespace().nth(1).unwrap_or_default();
    assert!(
        status == "201" || status == "409",
        "creating container {container} at {endpoint}: {reply}"
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
