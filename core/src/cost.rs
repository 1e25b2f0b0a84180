//! Cost counters: round trips, bytes and capacity units per kind of operation.
//!
//! A store owns one [`CostCounter`] and feeds it where its requests happen (an SDK interceptor, one
//! wrapper around the SQL executor, the memory store's single request function), never by hand beside
//! each call. [`crate::Store::costs`] hands out a [`CostSnapshot`]; the difference of two snapshots is
//! what the work between them cost.

use std::fmt;
use std::ops::Sub;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The kinds of operation costs are counted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpKind {
    /// Appends (including head reads an `Any` append makes).
    Append,
    /// Stream reads and version lookups.
    Read,
    /// Snapshot pointer reads and writes.
    Snapshot,
    /// Change-feed polls.
    Feed,
    /// Checkpoint loads and saves.
    Checkpoint,
    /// Stream deletions.
    Delete,
    /// Blob store requests (snapshot offload).
    Blob,
    /// Anything else (schema set-up, catalog listings, statements a connection prepares).
    Other,
    /// Change notifications a store sends after commits, outside any operation (e.g. one
    /// coalesced PostgreSQL NOTIFY): counted, but not part of an operation's round trips.
    Notify,
}

impl OpKind {
    /// Every kind, in a fixed order.
    pub const ALL: [OpKind; 9] = [
        OpKind::Append,
        OpKind::Read,
        OpKind::Snapshot,
        OpKind::Feed,
        OpKind::Checkpoint,
        OpKind::Delete,
        OpKind::Blob,
        OpKind::Other,
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
}

impl Sub for OpCosts {
    type Output = OpCosts;
    fn sub(self, o: OpCosts) -> OpCosts {
        OpCosts {
            round_trips: self.round_trips.saturating_sub(o.round_trips),
            bytes_sent: self.bytes_sent.saturating_sub(o.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(o.bytes_received),
            capacity_units: (self.capacity_units - o.capacity_units).max(0.0),
        }
    }
}

/// Costs by kind at one moment; subtract two to get the cost of what happened between them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostSnapshot {
    kinds: [OpCosts; 9],
}

impl CostSnapshot {
    /// Costs of one kind.
    pub fn get(&self, kind: OpKind) -> OpCosts {
        self.kinds[kind.index()]
    }

    /// Round trips of one kind.
    pub fn round_trips(&self, kind: OpKind) -> u64 {
        self.get(kind).round_trips
    }

    /// Round trips of operations: all kinds but [`OpKind::Notify`] (background notifications
    /// a store sends after commits are not part of any operation's cost).
    pub fn operation_round_trips(&self) -> u64 {
        self.total().round_trips - self.round_trips(OpKind::Notify)
    }

    /// Costs summed over all kinds.
    pub fn total(&self) -> OpCosts {
        self.kinds.iter().fold(OpCosts::default(), |a, c| OpCosts {
            round_trips: a.round_trips + c.round_trips,
            bytes_sent: a.bytes_sent + c.bytes_sent,
            bytes_received: a.bytes_received + c.bytes_received,
            capacity_units: a.capacity_units + c.capacity_units,
        })
    }
}

impl Sub for CostSnapshot {
    type Output = CostSnapshot;
    fn sub(self, o: CostSnapshot) -> CostSnapshot {
        let mut kinds = self.kinds;
        for (k, before) in kinds.iter_mut().zip(o.kinds) {
            *k = *k - before;
        }
        CostSnapshot { kinds }
    }
}

impl fmt::Display for CostSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for kind in OpKind::ALL {
            let c = self.get(kind);
            if c.round_trips == 0 && c.capacity_units == 0.0 {
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
}

/// Lock-free counters a store feeds where its requests happen.
#[derive(Debug, Default)]
pub struct CostCounter {
    kinds: [AtomicCosts; 9],
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

    /// The counters now.
    pub fn snapshot(&self) -> CostSnapshot {
        let mut out = CostSnapshot::default();
        for (o, c) in out.kinds.iter_mut().zip(&self.kinds) {
            *o = OpCosts {
                round_trips: c.round_trips.load(Ordering::Relaxed),
                bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
                bytes_received: c.bytes_received.load(Ordering::Relaxed),
                capacity_units: c.micro_units.load(Ordering::Relaxed) as f64 / 1_000_000.0,
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
        let d = c.snapshot() - before;
        assert_eq!(d.round_trips(OpKind::Append), 1);
        assert_eq!(d.get(OpKind::Append).bytes_sent, 50);
        assert_eq!(d.get(OpKind::Append).capacity_units, 2.5);
        assert_eq!(d.total().round_trips, 2);
        assert_eq!(d.total().bytes_received, 305);
    }
}
