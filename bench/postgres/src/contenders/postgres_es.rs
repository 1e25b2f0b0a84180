//! postgres-es 0.5 (cqrs-es): its event repository.

use anyhow::{Context, Result, anyhow, bail};
use async_trait::async_trait;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use postgres_es::PostgresEventRepository;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::{CATEGORY, Contender, EVENT_TYPE, payload, with_params};

/// The smallest aggregate postgres-es accepts: its `TYPE` names the rows' `aggregate_type`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account {
    ticks: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    Ticked,
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        EVENT_TYPE.into()
    }
    fn event_version(&self) -> String {
        "1.0".into()
    }
}

#[derive(Debug)]
pub struct NoError;

impl std::fmt::Display for NoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no error")
    }
}

impl std::error::Error for NoError {}

impl Aggregate for Account {
    const TYPE: &'static str = CATEGORY;
    type Command = ();
    type Event = AccountEvent;
    type Error = NoError;
    type Services = ();

    async fn handle(&mut self, _: (), _: &(), _: &EventSink<Self>) -> Result<(), NoError> {
        Ok(())
    }

    fn apply(&mut self, _: AccountEvent) {
        self.ticks += 1;
    }
}

/// postgres-es 0.5: `PostgresEventRepository::persist` (one transaction: BEGIN, one INSERT per
/// event, COMMIT); a conflict is its optimistic lock error (the primary key), answered by
/// `get_last_events` after the known head and a retry.
pub struct PostgresEs {
    pub repo: PostgresEventRepository,
    pub pool: sqlx::PgPool,
}

impl PostgresEs {
    /// Creates postgres-es's tables (its `db/init.sql`) in `schema`, and a pool of `pool`.
    pub async fn open(url: &str, schema: &str, pool: usize, admin: &Client) -> Result<PostgresEs> {
        admin
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {schema}.events (
                     aggregate_type text NOT NULL,
                     aggregate_id   text NOT NULL,
                     sequence       bigint CHECK (sequence >= 0) NOT NULL,
                     event_type     text NOT NULL,
                     event_version  text NOT NULL,
                     payload        json NOT NULL,
                     metadata       json NOT NULL,
                     PRIMARY KEY (aggregate_type, aggregate_id, sequence));
                 CREATE TABLE IF NOT EXISTS {schema}.snapshots (
                     aggregate_type   text NOT NULL,
                     aggregate_id     text NOT NULL,
                     last_sequence    bigint CHECK (last_sequence >= 0) NOT NULL,
                     current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
                     payload          json NOT NULL,
                     PRIMARY KEY (aggregate_type, aggregate_id, last_sequence));"
            ))
            .await
            .context("create postgres-es's tables")?;
        // `postgres_es::default_postgress_pool` is this builder with 10 connections; the same
        // pool size as the others here. TLS off, as for the others (the server offers it).
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(pool as u32)
            .min_connections(pool as u32)
            .connect(&with_params(url, &[("sslmode", "disable")]))
            .await
            .context("connect postgres-es's pool")?;
        let repo = PostgresEventRepository::new(pool.clone())
            .with_tables(&format!("{schema}.events"), &format!("{schema}.snapshots"));
        Ok(PostgresEs { repo, pool })
    }

    fn events(stream: &str, head: u64, k: usize) -> Result<Vec<SerializedEvent>> {
        (1..=k as u64)
            .map(|i| {
                Ok(SerializedEvent::new(
                    stream.to_string(),
                    (head + i) as usize,
                    Account::TYPE.to_string(),
                    EVENT_TYPE.to_string(),
                    "1.0".to_string(),
                    serde_json::from_str(&payload(head + i))?,
                    serde_json::Value::Object(Default::default()),
                ))
            })
            .collect()
    }

    /// Persists events `head+1..=head+n` (in appends of `batch`), the snapshot row written with
    /// the append that ends at `snapshot_at`.
    pub async fn fill(&self, stream: &str, n: u64, batch: u64, snapshot_at: u64) -> Result<()> {
        let mut head = 0;
        while head < n {
            let events = Self::events(stream, head, batch as usize)?;
            head += batch;
            let snapshot = (head == snapshot_at)
                .then(|| (stream.to_string(), serde_json::json!({"ticks": head}), 1));
            self.repo
                .persist::<Account>(&events, snapshot)
                .await
                .map_err(|e| anyhow!("postgres-es persist: {e}"))?;
        }
        Ok(())
    }

    /// `get_events`: the whole stream.
    pub async fn load(&self, stream: &str) -> Result<usize> {
        let events = self
            .repo
            .get_events::<Account>(stream)
            .await
            .map_err(|e| anyhow!("postgres-es get_events: {e}"))?;
        Ok(events.len())
    }

    /// `get_snapshot` + `get_last_events` after it (what its snapshot store does on a load).
    pub async fn load_with_snapshot(&self, stream: &str) -> Result<usize> {
        let snap = self
            .repo
            .get_snapshot::<Account>(stream)
            .await
            .map_err(|e| anyhow!("postgres-es get_snapshot: {e}"))?
            .ok_or_else(|| anyhow!("no postgres-es snapshot"))?;
        let events = self
            .repo
            .get_last_events::<Account>(stream, snap.current_sequence)
            .await
            .map_err(|e| anyhow!("postgres-es get_last_events: {e}"))?;
        Ok(events.len())
    }
}

#[async_trait]
impl Contender for PostgresEs {
    fn name(&self) -> &'static str {
        "postgres-es"
    }

    async fn append_exact(&self, stream: &str, head: u64, k: usize) -> Result<u64> {
        self.repo
            .persist::<Account>(&Self::events(stream, head, k)?, None)
            .await
            .map_err(|e| anyhow!("postgres-es persist: {e}"))?;
        Ok(head + k as u64)
    }

    async fn append_contended(&self, stream: &str, known: &mut u64, k: usize) -> Result<u32> {
        let mut conflicts = 0;
        loop {
            match self
                .repo
                .persist::<Account>(&Self::events(stream, *known, k)?, None)
                .await
            {
                Ok(()) => {
                    *known += k as u64;
                    return Ok(conflicts);
                }
                Err(PersistenceError::OptimisticLockError) => {
                    conflicts += 1;
                    let newer = self
                        .repo
                        .get_last_events::<Account>(stream, *known as usize)
                        .await
                        .map_err(|e| anyhow!("postgres-es get_last_events: {e}"))?;
                    if let Some(last) = newer.last() {
                        *known = last.sequence as u64;
                    }
                }
                Err(e) => bail!("postgres-es persist: {e}"),
            }
        }
    }
}
