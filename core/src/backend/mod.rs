//! What backend authors need and store users do not: the pieces every store shares, so a new
//! store implements a few small traits instead of copying another store's loops.
//!
//! - [`feed`]: one `changes()` driver over a store's feed partitions ([`feed::PartitionedSource`],
//!   [`feed::drive_partitions`]), or over its one log ([`feed::FeedSource`], [`feed::drive`]);
//! - [`checkpoint`]: one checkpoint format for such a log, naming the store it belongs to;
//! - [`snapshots`]: a store writes its snapshot pointers ([`snapshots::SnapshotPointers`]) and
//!   is a `SnapshotStore`, the blob offload done for it.
//!
//! - [`retry`]: the one retry loop ([`RetryBudget::run`]) for stores whose client retries
//!   nothing, and the rule every store keeps about retries;
//! - [`sql`]: what the SQL stores share (log row kinds, snapshot pointer columns, listing rows,
//!   default limits).
//!
//! It also re-exports what only a store's implementation uses: the cost counter it feeds
//! ([`CostCounter`], and [`CountingBlobStore`] for its blob requests), the offload
//! ([`SnapshotOffload`]) and a feed poll's result ([`FeedPoll`]). Users of a store need none of
//! them: the crate root has what they need.

pub mod checkpoint;
pub mod feed;
pub mod retry;
pub mod snapshots;
pub mod sql;

pub use crate::blob::CountingBlobStore;
pub use crate::cost::CostCounter;
pub use crate::feed::FeedPoll;
pub use crate::snapshot::SnapshotOffload;
pub use crate::store::load_snapshot_then_read;
pub use retry::RetryBudget;
