//! Load (snapshot + tail), decide, append with the exact expected version, retry conflicts,
//! snapshot by policy.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use super::Aggregate;
use super::codec::{CodecError, decode, encode};
use crate::error::StoreError;
use crate::event::{ExpectedVersion, Metadata, ReadOptions, RecordedEvent};
use crate::id::{StreamId, Version};
use crate::snapshot::Snapshot;
use crate::store::{SnapshotAndTail, Store};

/// When the repository writes a snapshot after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// After this many events since the last snapshot (`None`: never by count).
    pub every_events: Option<u64>,
    /// When the events since the last snapshot hold more bytes than this (`None`: never by size).
    pub tail_bytes: Option<u64>,
}

impl SnapshotPolicy {
    /// Never snapshot.
    pub const NEVER: SnapshotPolicy = SnapshotPolicy {
        every_events: None,
        tail_bytes: None,
    };

    /// Snapshot every `n` events.
    pub fn every(n: u64) -> Self {
        SnapshotPolicy {
            every_events: Some(n.max(1)),
            tail_bytes: None,
        }
    }

    fn due(&self, events_since: u64, bytes_since: u64) -> bool {
        self.every_events.is_some_and(|n| events_since >= n)
            || self.tail_bytes.is_some_and(|b| bytes_since >= b)
    }
}

impl Default for SnapshotPolicy {
    /// Every 100 events, or when the tail passes 256 KiB.
    fn default() -> Self {
        SnapshotPolicy {
            every_events: Some(100),
            tail_bytes: Some(256 * 1024),
        }
    }
}

/// How often and how patiently the repository re-runs a command after a conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first included).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled each time, with full jitter.
    pub base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts, 2 ms doubling to at most 200 ms, with full jitter.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let jitter = u128::from(uuid::Uuid::new_v4().as_u128() as u64);
        let nanos = cap.as_nanos().max(1);
        Duration::from_nanos(u64::try_from(jitter % nanos).unwrap_or(0))
    }
}

/// An aggregate's state at a version.
#[derive(Debug)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The version of the last event folded in (0: no events).
    pub version: Version,
    /// The snapshot the load started from, if any.
    pub snapshot_version: Option<Version>,
    events_since_snapshot: u64,
    bytes_since_snapshot: u64,
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// The stream's version after the command (unchanged when it caused no events).
    pub version: Version,
    /// Events appended.
    pub events: usize,
    /// Conflicts retried before it succeeded.
    pub retries: u32,
    /// Whether a snapshot was written afterwards.
    pub snapshot_written: bool,
}

/// Why a command did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError<E: std::error::Error + 'static> {
    /// The aggregate refused the command.
    #[error("command refused: {0}")]
    Rejected(#[source] E),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event or the state did not encode or decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Other writers kept winning; the command was not applied.
    #[error("stream {stream}: {attempts} attempts all lost to concurrent writers; try again later")]
    TooManyConflicts {
        /// The stream.
        stream: StreamId,
        /// Attempts made.
        attempts: u32,
    },
}

/// Loads and changes aggregates of type `A` in one tenant of a store.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # use serde::{Deserialize, Serialize};
/// # use sekiban_core::aggregate::{Aggregate, DomainEvent};
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # enum CounterEvent { Incremented { by: u32 } }
/// # impl DomainEvent for CounterEvent {}
/// # #[derive(Debug, Default, Serialize, Deserialize)]
/// # struct Counter { value: u32 }
/// # impl Aggregate for Counter {
/// #     const CATEGORY: &'static str = "counter";
/// #     type Event = CounterEvent;
/// #     type Command = u32;
/// #     type Error = std::convert::Infallible;
/// #     fn apply(&mut self, e: &CounterEvent) { let CounterEvent::Incremented { by } = e; self.value += by; }
/// #     fn handle(&self, by: &u32) -> Result<Vec<CounterEvent>, Self::Error> { Ok(vec![CounterEvent::Incremented { by: *by }]) }
/// # }
/// use std::sync::Arc;
/// use sekiban_core::{MemoryStore, aggregate::{Repository, SnapshotPolicy}};
///
/// let repo = Repository::<Counter>::new(Arc::new(MemoryStore::new()), "acme")
///     .with_snapshots(SnapshotPolicy::every(2));
/// repo.execute("c1", &5).await.unwrap();
/// let done = repo.execute("c1", &2).await.unwrap();
/// assert!(done.snapshot_written);
/// assert_eq!(repo.load("c1").await.unwrap().state.value, 7);
/// # });
/// ```
pub struct Repository<A> {
    store: Arc<dyn Store>,
    tenant: String,
    snapshots: SnapshotPolicy,
    retry: RetryPolicy,
    metadata: Metadata,
    aggregate: PhantomData<fn() -> A>,
}

impl<A> std::fmt::Debug for Repository<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("tenant", &self.tenant)
            .field("snapshots", &self.snapshots)
            .field("retry", &self.retry)
            .finish()
    }
}

impl<A> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Repository {
            store: self.store.clone(),
            tenant: self.tenant.clone(),
            snapshots: self.snapshots,
            retry: self.retry,
            metadata: self.metadata.clone(),
            aggregate: PhantomData,
        }
    }
}

type Result<T, E> = std::result::Result<T, ExecuteError<E>>;

impl<A: Aggregate> Repository<A> {
    /// A repository of `A` in `tenant`, with the default snapshot and retry policies.
    pub fn new(store: Arc<dyn Store>, tenant: impl Into<String>) -> Self {
        Repository {
            store,
            tenant: tenant.into(),
            snapshots: SnapshotPolicy::default(),
            retry: RetryPolicy::default(),
            metadata: Metadata::default(),
            aggregate: PhantomData,
        }
    }

    /// Sets the snapshot policy.
    pub fn with_snapshots(mut self, policy: SnapshotPolicy) -> Self {
        self.snapshots = policy;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Metadata written with every event (correlation, actor, …).
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// The stream of the aggregate `id`.
    pub fn stream(&self, id: &str) -> std::result::Result<StreamId, StoreError> {
        StreamId::new(&self.tenant, A::CATEGORY, id)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The current state: the latest snapshot plus the events after it.
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, A::Error> {
        self.load_until(&self.stream(id)?, None, None).await
    }

    /// The state as of `version` (a fold up to it, from a snapshot at or below it when one exists).
    pub async fn load_at_version(&self, id: &str, version: Version) -> Result<Loaded<A>, A::Error> {
        self.load_until(&self.stream(id)?, Some(version), None)
            .await
    }

    /// The state as of the time `at`: every event recorded at or before it.
    pub async fn load_at_time(&self, id: &str, at: SystemTime) -> Result<Loaded<A>, A::Error> {
        self.load_until(&self.stream(id)?, None, Some(at)).await
    }

    /// Whether a stored snapshot is this aggregate's, usable for a load up to `until`, and its
    /// state when it decodes (a snapshot is a cache: one that no longer decodes is ignored).
    fn usable(s: Snapshot, until: Option<Version>) -> Option<(A, Version)> {
        if s.state_type != A::CATEGORY
            || s.schema_version != A::STATE_VERSION
            || until.is_some_and(|v| s.version > v)
        {
            return None;
        }
        serde_json::from_slice::<A>(&s.state)
            .ok()
            .map(|state| (state, s.version))
    }

    /// The snapshot a load up to `until` or the time `at` starts from.
    async fn usable_snapshot(
        &self,
        stream: &StreamId,
        until: Option<Version>,
        at: Option<SystemTime>,
    ) -> Result<Option<(A, Version)>, A::Error> {
        let Some(s) = self.store.load_snapshot(stream).await? else {
            return Ok(None);
        };
        let Some(usable) = Self::usable(s, until) else {
            return Ok(None);
        };
        if let Some(at) = at {
            let opts = ReadOptions::forward().from(usable.1).max_count(1);
            let mut at_snapshot = self.store.read(stream, opts);
            match at_snapshot.next().await.transpose()? {
                Some(e) if e.recorded_at <= at => {}
                _ => return Ok(None),
            }
        }
        Ok(Some(usable))
    }

    async fn load_until(
        &self,
        stream: &StreamId,
        until: Option<Version>,
        at: Option<SystemTime>,
    ) -> Result<Loaded<A>, A::Error> {
        // The latest state: the snapshot and its tail in one load (one request on a store that
        // keeps them together); the tail from the start when the snapshot is not usable.
        if until.is_none() && at.is_none() {
            let SnapshotAndTail { snapshot, tail } =
                self.store.load_snapshot_and_tail(stream).await?;
            if let Some((state, version)) = snapshot.and_then(|s| Self::usable(s, None)) {
                return Self::fold(tail, state, version, Some(version), None).await;
            }
            drop(tail);
            let all = self.store.read(stream, ReadOptions::forward());
            return Self::fold(all, A::default(), Version::NONE, None, None).await;
        }
        let snapshot = self.usable_snapshot(stream, until, at).await?;
        let snapshot_version = snapshot.as_ref().map(|s| s.1);
        let (state, version) = snapshot.unwrap_or_else(|| (A::default(), Version::NONE));
        if until.is_some_and(|v| v <= version) {
            return Self::fold(
                futures::stream::empty().boxed(),
                state,
                version,
                snapshot_version,
                at,
            )
            .await;
        }
        let mut opts = ReadOptions::forward().from(version.plus(1));
        if let Some(v) = until {
            opts = opts.max_count(v.0.saturating_sub(version.0));
        }
        let tail = self.store.read(stream, opts);
        Self::fold(tail, state, version, snapshot_version, at).await
    }

    /// Applies the events of `tail` (up to the time `at`) to a state at `version`.
    async fn fold(
        mut tail: BoxStream<'_, crate::error::Result<RecordedEvent>>,
        mut state: A,
        mut version: Version,
        snapshot_version: Option<Version>,
        at: Option<SystemTime>,
    ) -> Result<Loaded<A>, A::Error> {
        let (mut events_since, mut bytes_since) = (0, 0);
        while let Some(recorded) = tail.next().await {
            let recorded = recorded?;
            if at.is_some_and(|t| recorded.recorded_at > t) {
                break;
            }
            state.apply(&decode::<A::Event>(&recorded)?);
            version = recorded.version;
            events_since += 1;
            bytes_since += recorded.data.len() as u64;
        }
        Ok(Loaded {
            state,
            version,
            snapshot_version,
            events_since_snapshot: events_since,
            bytes_since_snapshot: bytes_since,
        })
    }

    /// Loads the aggregate, runs `command`, appends its events with the exact expected version,
    /// and on a conflict reloads and re-runs it (bounded, jittered backoff). Writes a snapshot
    /// when the policy says so.
    pub async fn execute(&self, id: &str, command: &A::Command) -> Result<Executed, A::Error> {
        let stream = self.stream(id)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut loaded = self.load_until(&stream, None, None).await?;
            let events = loaded
                .state
                .handle(command)
                .map_err(ExecuteError::Rejected)?;
            if events.is_empty() {
                return Ok(Executed {
                    version: loaded.version,
                    events: 0,
                    retries: attempt - 1,
                    snapshot_written: false,
                });
            }
            let data = events
                .iter()
                .map(|e| encode(e).map(|d| d.with_metadata(self.metadata.clone())))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let bytes: u64 = data.iter().map(|d| d.data.len() as u64).sum();
            match self
                .store
                .append(&stream, ExpectedVersion::Exact(loaded.version), data)
                .await
            {
                Ok(r) => {
                    for e in &events {
                        loaded.state.apply(e);
                    }
                    let since = loaded.events_since_snapshot + events.len() as u64;
                    let due = self
                        .snapshots
                        .due(since, loaded.bytes_since_snapshot + bytes);
                    if due {
                        self.save_snapshot(&stream, &loaded.state, r.last).await?;
                    }
                    return Ok(Executed {
                        version: r.last,
                        events: events.len(),
                        retries: attempt - 1,
                        snapshot_written: due,
                    });
                }
                Err(StoreError::WrongExpectedVersion { .. })
                    if attempt < self.retry.max_attempts =>
                {
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                }
                Err(StoreError::WrongExpectedVersion { .. }) => {
                    return Err(ExecuteError::TooManyConflicts {
                        stream,
                        attempts: attempt,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn save_snapshot(
        &self,
        stream: &StreamId,
        state: &A,
        version: Version,
    ) -> Result<(), A::Error> {
        let bytes = serde_json::to_vec(state).map_err(|e| CodecError::Encode(e.to_string()))?;
        self.store
            .save_snapshot(Snapshot {
                stream: stream.clone(),
                version,
                state_type: A::CATEGORY.to_string(),
                schema_version: A::STATE_VERSION,
                state: Bytes::from(bytes),
            })
            .await?;
        Ok(())
    }
}
