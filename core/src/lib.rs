#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod aggregate;
pub mod backend;
pub mod blob;
pub mod cost;
pub mod doctor;
pub mod error;
pub mod event;
pub mod feed;
pub mod id;
pub mod idempotency;
pub mod memory;
pub mod paging;
pub mod snapshot;
pub mod store;

pub use blob::{BlobStore, ObjectBlobStore};
pub use cost::{CostSnapshot, OpCosts, OpKind};
pub use error::{BoxError, Result, StoreError};
pub use event::{
    AppendResult, DeleteMode, Direction, EventData, ExpectedVersion, Metadata, ReadOptions,
    RecordedEvent,
};
pub use feed::{ChangeBatch, Checkpoint, Etag, FeedItem, FeedOptions, FeedSplit, FeedStart};
pub use id::{EventId, StreamId, Version};
pub use memory::MemoryStore;
pub use snapshot::Snapshot;
pub use store::{
    Capabilities, ChangeFeed, CheckpointStore, EventStore, FeedHistory, Limits, SnapshotAndTail,
    SnapshotStore, Store, StreamCatalog, StreamInfo,
};
