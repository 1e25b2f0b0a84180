//! sekiban-postgres.

use anyhow::{Result, anyhow};
use async_trait::async_trait;
use futures::StreamExt;
use sekiban_core::{
    EventData, EventStore, ExpectedVersion, ReadOptions, Snapshot, SnapshotStore, Store, StreamId,
    Version,
};
use sekiban_postgres::{PostgresConfig, PostgresEventStore};

use super::{CATEGORY, Contender, EVENT_TYPE, TENANT, payload, with_params};

/// sekiban-postgres: `append` with `Exact` on own streams, `Any` on the shared one.
#[derive(Debug)]
pub struct Sekiban {
    pub store: PostgresEventStore,
}

pub fn stream_id(stream: &str) -> Result<StreamId> {
    Ok(StreamId::new(TENANT, CATEGORY, stream)?)
}

fn sekiban_events(head: u64, k: usize) -> Vec<EventData> {
    (1..=k as u64)
        .map(|i| EventData::new(EVENT_TYPE, payload(head + i)))
        .collect()
}

impl Sekiban {
    /// Migrates `schema` and connects with a pool of `pool` connections.
    pub async fn open(url: &str, schema: &str, pool: usize) -> Result<Sekiban> {
        let config = PostgresConfig::from_url(&with_params(
            url,
            &[("schema", schema), ("pool", &pool.to_string())],
        ))?;
        PostgresEventStore::migrate(&config).await?;
        let store = PostgresEventStore::connect(config).await?;
        Ok(Sekiban { store })
    }

    /// Reads a whole stream forward, all pages; the events read.
    pub async fn load(&self, stream: &StreamId) -> Result<usize> {
        let mut events = self.store.read(stream, ReadOptions::forward());
        let mut n = 0;
        while let Some(e) = events.next().await {
            let _ = e?;
            n += 1;
        }
        Ok(n)
    }

    /// The snapshot plus the events after it; the events read.
    pub async fn load_with_snapshot(&self, stream: &StreamId) -> Result<usize> {
        let snap = self
            .store
            .load_snapshot(stream)
            .await?
            .ok_or_else(|| anyhow!("no snapshot"))?;
        let mut events = self.store.read(
            stream,
            ReadOptions::forward().from(Version(snap.version.0 + 1)),
        );
        let mut n = 0;
        while let Some(e) = events.next().await {
            let _ = e?;
            n += 1;
        }
        Ok(n)
    }

    pub async fn save_snapshot(
        &self,
        stream: &StreamId,
        version: u64,
        state: String,
    ) -> Result<()> {
        self.store
            .save_snapshot(Snapshot {
                stream: stream.clone(),
                version: Version(version),
                state_type: "Account".into(),
                schema_version: 1,
                state: state.into(),
            })
            .await?;
        Ok(())
    }

    pub fn costs(&self) -> sekiban_core::CostSnapshot {
        self.store.costs()
    }
}

#[async_trait]
impl Contender for Sekiban {
    fn name(&self) -> &'static str {
        "sekiban"
    }

    async fn append_exact(&self, stream: &str, head: u64, k: usize) -> Result<u64> {
        let expected = if head == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(Version(head))
        };
        let r = self
            .store
            .append(&stream_id(stream)?, expected, sekiban_events(head, k))
            .await?;
        Ok(r.last.0)
    }

    async fn append_contended(&self, stream: &str, known: &mut u64, k: usize) -> Result<u32> {
        let r = self
            .store
            .append(
                &stream_id(stream)?,
                ExpectedVersion::Any,
                sekiban_events(*known, k),
            )
            .await?;
        *known = r.last.0;
        Ok(0)
    }
}
