//! The three contenders behind one small interface: sekiban-postgres ([`Sekiban`], in
//! `sekiban.rs`), postgres-es (its event repository, `PersistedEventRepository::persist`:
//! [`PostgresEs`], in `postgres_es.rs`) and the raw floor (one prepared statement on
//! tokio-postgres into a copy of sekiban's schema: [`Floor`], in `floor.rs`); what they share is
//! here.

mod floor;
mod postgres_es;
mod sekiban;

pub use floor::{Checkout, Conn, Conns, Floor, FloorSql, RawEvent, floor_sql, raw_event};
pub use postgres_es::{Account, AccountEvent, NoError, PostgresEs};
pub use sekiban::{Sekiban, stream_id};

use anyhow::{Context, Result};
use async_trait::async_trait;
use tokio_postgres::{Client, NoTls};

/// Tenant and category of every stream (postgres-es: the aggregate type is the category).
pub const TENANT: &str = "bench";
pub const CATEGORY: &str = "account";
pub const EVENT_TYPE: &str = "Ticked";

/// About 100 bytes of JSON, numbered.
pub fn payload(n: u64) -> String {
    let head = format!(r#"{{"tag":"bench","n":{n},"pad":""#);
    let pad = "x".repeat(100 - head.len() - 2);
    format!("{head}{pad}\"}}")
}

/// What an append phase needs of a contender.
#[async_trait]
pub trait Contender: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Appends `k` events to `stream` when its head is `head` (0: a new stream); the new head.
    async fn append_exact(&self, stream: &str, head: u64, k: usize) -> Result<u64>;
    /// Appends `k` events to a stream other tasks append to as well; `known` is this task's
    /// last known head (updated). Returns the conflicts met (each followed by a retry).
    async fn append_contended(&self, stream: &str, known: &mut u64, k: usize) -> Result<u32>;
}

/// A tokio-postgres connection (its driver task spawned).
pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connect to {url}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `url` without the query parameters `keys`.
pub fn without_params(url: &str, keys: &[&str]) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !keys.contains(&p.split_once('=').map_or(*p, |(k, _)| k)))
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// `url` with query parameters added (replacing ones of the same name).
pub fn with_params(url: &str, params: &[(&str, &str)]) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split_once('=').map_or(*p, |(k, _)| k);
            !params.iter().any(|(k, _)| *k == key)
        })
        .map(str::to_string)
        .collect();
    pairs.extend(params.iter().map(|(k, v)| format!("{k}={v}")));
    if pairs.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", pairs.join("&"))
    }
}
