//! sekiban-dynamodb as a user gets it.

use anyhow::{Result, anyhow};
use async_trait::async_trait;
use futures::StreamExt;
use sekiban_core::{
    EventStore, ExpectedVersion, ReadOptions, Snapshot, SnapshotStore, Store, StreamId, Version,
};
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};

use super::{CATEGORY, Contender, REGION, Shape, TENANT, event_data};

pub fn stream_id(stream: &str) -> Result<StreamId> {
    Ok(StreamId::new(TENANT, CATEGORY, stream)?)
}

/// sekiban-dynamodb as a user gets it: `DynamoDbTable::connect` + `init`, then
/// `EventStore::append` with `Exact(head)` (`NoStream` for a new stream).
#[derive(Debug)]
pub struct Sekiban {
    pub table: DynamoDbTable,
}

impl Sekiban {
    /// The table `name` reached through `endpoint` (not created).
    pub async fn connect(endpoint: &str, name: &str) -> Result<Sekiban> {
        let config = DynamoDbConfig::from_url(&format!(
            "dynamodb://{name}?endpoint={endpoint}&region={REGION}"
        ))?;
        Ok(Sekiban {
            table: DynamoDbTable::connect(config).await,
        })
    }

    pub async fn save_snapshot(&self, stream: &str, version: u64, state: String) -> Result<()> {
        self.table
            .save_snapshot(Snapshot {
                stream: stream_id(stream)?,
                version: Version(version),
                state_type: "Account".into(),
                schema_version: 1,
                state: state.into(),
            })
            .await?;
        Ok(())
    }

    pub fn costs(&self) -> sekiban_core::CostSnapshot {
        Store::costs(&self.table)
    }

    async fn count(&self, stream: &StreamId, opts: ReadOptions) -> Result<usize> {
        let mut events = self.table.read(stream, opts);
        let mut n = 0;
        while let Some(e) = events.next().await {
            let _ = e?;
            n += 1;
        }
        Ok(n)
    }
}

#[async_trait]
impl Contender for Sekiban {
    fn name(&self) -> &'static str {
        "sekiban"
    }

    async fn append(&self, stream: &str, head: u64, shape: Shape) -> Result<u64> {
        let expected = if head == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(Version(head))
        };
        let batch = event_data(shape, head);
        let r = self
            .table
            .append(&stream_id(stream)?, expected, batch)
            .await?;
        Ok(r.last.0)
    }

    async fn load(&self, stream: &str) -> Result<usize> {
        self.count(&stream_id(stream)?, ReadOptions::forward())
            .await
    }

    async fn load_with_snapshot(&self, stream: &str) -> Result<usize> {
        let id = stream_id(stream)?;
        let snap = self
            .table
            .load_snapshot(&id)
            .await?
            .ok_or_else(|| anyhow!("no snapshot of {stream}"))?;
        self.count(
            &id,
            ReadOptions::forward().from(Version(snap.version.0 + 1)),
        )
        .await
    }

    fn requests(&self) -> u64 {
        self.costs().operation_round_trips()
    }
}
