//! Cost counters: round trips, bytes and capacity units per kind of operation.
//!
//! A store owns one [`CostCounter`] and feeds it where its requests happen (an SDK interceptor, one
//! wrapper around the SQL executor, the memory store's single request function), never by hand beside
//! each call. [`crate::Store::costs`] hands out a [`CostSnapshot`]; the difference of two snapshots is
//! what the work between them cost.

use std::fmt;
use std::ops::{Add, Sub};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// How many kinds of operation there are.
const KINDS: usize = 11;

/// The kinds of operation costs are counted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpKind {
    /// Appends (including head reads an `Any` append makes).
    Append,
    /// Stream reads and version lookups.
    Read,
    /// Snapshot pointer reads and writes.
    Snapshot,
    /// Change-feed polls (one per partition read: a shard's records, a feed range's page).
    Feed,
    /// Listings of a change feed's partitions (DynamoDB Streams `DescribeStream`, Cosmos DB
    /// feed ranges): a reader lists when it starts and when a partition it read has ended.
    Partitions,
    /// Checkpoint loads and saves.
    Checkpoint,
    /// Stream deletions.
    Delete,
    /// Blob store requests (snapshot offload).
    Blob,
    /// Anything else (schema set-up, catalog listings).
    Other,
    /// What a connection costs once, whatever it then serves: connecting, its session
    /// settings, and a statement prepared the first time the connection runs it. Counted, but
    /// not part of an operation's round trips (a pool pays it once per connection).
    Connect,
    /// Change notifications a store sends after commits, outside any operation (e.g. one
    /// coalesced PostgreSQL NOTIFY): counted, but not part of an operation's round trips.
    Notify,
}

impl OpKind {
    /// Every kind, in a fixed order.
    pub const ALL: [OpKind; KINDS] = [
        OpKind::Append,
        OpKind::Read,
        OpKind::Snapshot,
        OpKind::Feed,
        OpKind::Partitions,
        OpKind::Checkpoint,
        OpKind::Delete,
        OpKind::Blob,
        OpKind::Other,
        OpKind::Connect,
        OpKind::Notify,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// What one kind of operation cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpCosts {
    /// Requests sent and answered (one HTTP call, one SQL statement).
    pub round_trips: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Capacity units or request units the service reported.
    pub capacity_units: f64,
    /// Attempts after the first: requests sent again because an earlier one met a transient
    /// fault (by the kit's retry loop, or by an SDK's retry policy). Each is also a round trip.
    #[serde(default)]
    pub retries: u64,
}

impl Add for OpCosts {
    type Output = OpCosts;
    fn add(self, o: OpCosts) -> OpCosts {
        OpCosts {
            round_trips: self.round_trips + o.round_trips,
            bytes_sent: self.bytes_sent + o.bytes_sent,
            bytes_received: self.bytes_received + o.bytes_received,
            capacity_units: self.capacity_units + o.capacity_units,
            retries: self.retries + o.retries,
        }
    }
}

impl Sub for OpCosts {
    type Output = OpCosts;
    fn sub(self, o: OpCosts) -> OpCosts {
        OpCosts {
            round_trips: self.round_trips.saturating_sub(o.round_trips),
            bytes_sent: self.bytes_sent.saturating_sub(o.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(o.bytes_received),
            capacity_units: (self.capacity_units - o.capacity_units).max(0.0),
            retries: self.retries.saturating_sub(o.retries),
        }
    }
}

/// Costs by kind at one moment; subtract two to get the cost of what happened between them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostSnapshot {
    kinds: [OpCosts; KINDS],
    #[serde(default)]
    partitions_opened: u64,
}

impl CostSnapshot {
    /// Feed partitions (shards, feed ranges) feed readers began to read: every partition a
    /// reader starts with and every one that appears while it reads. A store with one
    /// partition need not count it. The suite's idle feed budget is per partition open.
    pub fn partitions_opened(&self) -> u64 {
        self.partitions_opened
    }

    /// Costs of one kind.
    pub fn get(&self, kind: OpKind) -> OpCosts {
        self.kinds[kind.index()]
    }

    /// Round trips of one kind.
    pub fn round_trips(&self, kind: OpKind) -> u64 {
        self.get(kind).round_trips
    }

    /// Retries of one kind: attempts after the first ([`OpCosts::retries`]).
    pub fn retries(&self, kind: OpKind) -> u64 {
        self.get(kind).retries
    }

    /// Round trips of operations: all kinds but [`OpKind::Notify`] (background notifications
    /// a store sends after commits are not part of any operation's cost) and
    /// [`OpKind::Connect`] (a connection's set-up, paid once per connection).
    pub fn operation_round_trips(&self) -> u64 {
        self.total().round_trips
            - self.round_trips(OpKind::Notify)
            - self.round_trips(OpKind::Connect)
    }

    /// Costs summed over all kinds.
    pub fn total(&self) -> OpCosts {
        self.kinds.iter().fold(OpCosts::default(), |a, c| a + *c)
    }
}

impl Sub for CostSnapshot {
    type Output = CostSnapshot;
    fn sub(self, o: CostSnapshot) -> CostSnapshot {
        let mut kinds = self.kinds;
        for (k, before) in kinds.iter_mut().zip(o.kinds) {
            *k = *k - before;
        }
        CostSnapshot {
            kinds,
            partitions_opened: self.partitions_opened.saturating_sub(o.partitions_opened),
        }
    }
}

/// The costs of two sources together (a store and a wrapper's own requests).
impl Add for CostSnapshot {
    type Output = CostSnapshot;
    fn add(self, o: CostSnapshot) -> CostSnapshot {
        let mut kinds = self.kinds;
        for (k, more) in kinds.iter_mut().zip(o.kinds) {
            *k = *k + more;
        }
        CostSnapshot {
            kinds,
            partitions_opened: self.partitions_opened + o.partitions_opened,
        }
    }
}

impl fmt::Display for CostSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for kind in OpKind::ALL {
            let c = self.get(kind);
            if c.round_trips == 0 && c.capacity_units == 0.0 && c.retries == 0 {
                continue;
            }
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(
                f,
                "{kind:?}: {} round trips, {} B out, {} B in, {} units",
                c.round_trips, c.bytes_sent, c.bytes_received, c.capacity_units
            )?;
            if c.retries > 0 {
                write!(f, " ({} retries)", c.retries)?;
            }
        }
        if first {
            f.write_str("nothing")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct AtomicCosts {
    round_trips: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    /// Capacity units in millionths, so they add up atomically.
    micro_units: AtomicU64,
    retries: AtomicU64,
}

/// Lock-free counters a store feeds where its requests happen.
#[derive(Debug, Default)]
pub struct CostCounter {
    kinds: [AtomicCosts; KINDS],
    partitions_opened: AtomicU64,
}

impl CostCounter {
    /// New counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one round trip of `kind` with the bytes it moved.
    pub fn record(&self, kind: OpKind, bytes_sent: u64, bytes_received: u64) {
        let c = &self.kinds[kind.index()];
        c.round_trips.fetch_add(1, Ordering::Relaxed);
        c.bytes_sent.fetch_add(bytes_sent, Ordering::Relaxed);
        c.bytes_received
            .fetch_add(bytes_received, Ordering::Relaxed);
    }

    /// Adds bytes moved by requests already counted (e.g. rows streamed after a statement).
    pub fn record_bytes(&self, kind: OpKind, bytes_sent: u64, bytes_received: u64) {
        let c = &self.kinds[kind.index()];
        c.bytes_sent.fetch_add(bytes_sent, Ordering::Relaxed);
        c.bytes_received
            .fetch_add(bytes_received, Ordering::Relaxed);
    }

    /// Adds capacity units (or RU) the service reported for a request of `kind`.
    pub fn record_units(&self, kind: OpKind, units: f64) {
        let micro = (units.max(0.0) * 1_000_000.0).round() as u64;
        self.kinds[kind.index()]
            .micro_units
            .fetch_add(micro, Ordering::Relaxed);
    }

    /// Counts one retry of a request of `kind` (the retried request itself is recorded as a
    /// round trip where it is sent, like any other).
    pub fn record_retry(&self, kind: OpKind) {
        self.kinds[kind.index()]
            .retries
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` feed partitions a reader began to read ([`CostSnapshot::partitions_opened`]).
    pub fn record_partitions_opened(&self, n: u64) {
        self.partitions_opened.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> CostSnapshot {
        let mut out = CostSnapshot {
            partitions_opened: self.partitions_opened.load(Ordering::Relaxed),
            ..CostSnapshot::default()
        };
        for (o, c) in out.kinds.iter_mut().zip(&self.kinds) {
            *o = OpCosts {
                round_trips: c.round_trips.load(Ordering::Relaxed),
                bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
                bytes_received: c.bytes_received.load(Ordering::Relaxed),
                capacity_units: c.micro_units.load(Ordering::Relaxed) as f64 / 1_000_000.0,
                retries: c.retries.load(Ordering::Relaxed),
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_of_snapshots() {
        let c = CostCounter::new();
        c.record(OpKind::Append, 100, 10);
        let before = c.snapshot();
        c.record(OpKind::Append, 50, 5);
        c.record(OpKind::Read, 0, 300);
        c.record_units(OpKind::Append, 2.5);
        c.record_retry(OpKind::Append);
        let d = c.snapshot() - before;
        assert_eq!(d.retries(OpKind::Append), 1);
        assert_eq!(d.retries(OpKind::Read), 0);
        assert!(d.to_string().contains("(1 retries)"), "{d}");
        assert_eq!(d.round_trips(OpKind::Append), 1);
        assert_eq!(d.get(OpKind::Append).bytes_sent, 50);
        assert_eq!(d.get(OpKind::Append).capacity_units, 2.5);
        assert_eq!(d.total().round_trips, 2);
        assert_eq!(d.total().bytes_received, 305);
    }

    #[test]
    fn partitions_opened_and_sums() {
        let (a, b) = (CostCounter::new(), CostCounter::new());
        a.record_partitions_opened(4);
        let before = a.snapshot();
        a.record_partitions_opened(2);
        a.record(OpKind::Partitions, 10, 20);
        b.record(OpKind::Partitions, 1, 2);
        b.record_units(OpKind::Feed, 0.5);
        let d = a.snapshot() - before;
        assert_eq!(d.partitions_opened(), 2);
        let sum = a.snapshot() + b.snapshot();
        assert_eq!(sum.partitions_opened(), 6);
        assert_eq!(sum.round_trips(OpKind::Partitions), 2);
        assert_eq!(sum.get(OpKind::Partitions).bytes_received, 22);
        assert_eq!(sum.get(OpKind::Feed).capacity_units, 0.5);
    }
}
