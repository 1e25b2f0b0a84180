//! What the cases write, and removing it afterwards, so a run against a real account leaves the
//! account as it was found.
//!
//! Every stream a case writes is named through its [`Harness`] ([`Harness::stream`],
//! [`Harness::new_stream`], [`Harness::other_tenant_stream`]) and every checkpoint through
//! [`Harness::checkpoint_name`]; the harness keeps those names. [`Harness::clean_up`] hard-deletes
//! the streams (which deletes their snapshots and snapshot blobs), deletes the checkpoints and
//! any blob left under the case's tenants, then checks that nothing readable is left.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use sekiban_core::snapshot::tenant_blob_prefix;
use sekiban_core::{DeleteMode, Store, StoreError, StreamId};

use crate::Harness;

/// The names a case wrote under.
#[derive(Debug, Default)]
pub(crate) struct Written {
    tenants: BTreeSet<String>,
    streams: BTreeSet<StreamId>,
    checkpoints: BTreeSet<String>,
}

/// Shared between a harness and its clones.
pub(crate) type WrittenLog = Arc<Mutex<Written>>;

pub(crate) fn new_log(tenant: &str) -> WrittenLog {
    let mut w = Written::default();
    w.tenants.insert(tenant.to_string());
    Arc::new(Mutex::new(w))
}

/// What [`Harness::clean_up`] removed and what it could not.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleanup {
    /// Streams hard-deleted.
    pub streams: usize,
    /// Checkpoints deleted.
    pub checkpoints: usize,
    /// Blobs deleted that no hard delete had removed (a case wrote or corrupted them directly).
    pub blobs: usize,
    /// What is still there, one line each; empty when everything went.
    pub left: Vec<String>,
}

impl Cleanup {
    /// Adds another clean-up's figures to these.
    pub fn add(&mut self, other: Cleanup) {
        self.streams += other.streams;
        self.checkpoints += other.checkpoints;
        self.blobs += other.blobs;
        self.left.extend(other.left);
    }
}

impl fmt::Display for Cleanup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} streams hard-deleted, {} checkpoints and {} stray blobs deleted",
            self.streams, self.checkpoints, self.blobs
        )?;
        if !self.left.is_empty() {
            write!(f, "; {} left", self.left.len())?;
        }
        Ok(())
    }
}

fn lock(log: &WrittenLog) -> std::sync::MutexGuard<'_, Written> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

impl Harness {
    pub(crate) fn record_stream(&self, stream: &StreamId) {
        let mut w = lock(&self.written);
        w.tenants.insert(stream.tenant().to_string());
        w.streams.insert(stream.clone());
    }

    /// A stream with `stream`'s category and id under a second tenant of this case
    /// (`<tenant>-b`), for the tenant isolation cases.
    pub fn other_tenant_stream(&self, stream: &StreamId) -> Result<StreamId, StoreError> {
        let s = StreamId::new(format!("{}-b", self.tenant), stream.category(), stream.id())?;
        self.record_stream(&s);
        Ok(s)
    }

    /// The name of a checkpoint of this case (`<tenant>-<suffix>`), remembered for the clean-up.
    pub fn checkpoint_name(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.tenant);
        lock(&self.written).checkpoints.insert(name.clone());
        name
    }

    /// Removes what the case wrote: hard-deletes its streams (their snapshots and blobs go
    /// with them), deletes its checkpoints and any blob still under its tenants, then checks
    /// that no stream reads an event, no checkpoint loads and no blob is listed. What could not
    /// be removed is in [`Cleanup::left`]. Hard-deleted streams keep the tombstone and the feed
    /// keeps the deletion markers every store keeps by design (they hold no event data).
    pub async fn clean_up(&self) -> Cleanup {
        let (tenants, streams, checkpoints) = {
            let w = lock(&self.written);
            (w.tenants.clone(), w.streams.clone(), w.checkpoints.clone())
        };
        let store: &dyn Store = &*self.store;
        let mut out = Cleanup::default();
        for s in &streams {
            match store.delete_stream(s, DeleteMode::Hard).await {
                Ok(()) => out.streams += 1,
                Err(e) => out
                    .left
                    .push(format!("stream {s}: the hard delete failed: {e}")),
            }
        }
        for name in &checkpoints {
            match store.delete_checkpoint(name).await {
                Ok(()) => out.checkpoints += 1,
                Err(e) => out
                    .left
                    .push(format!("checkpoint {name:?}: the delete failed: {e}")),
            }
        }
        for tenant in &tenants {
            let prefix = tenant_blob_prefix(tenant);
            match self.blobs.list(&prefix).await {
                Ok(keys) => {
                    for key in keys {
                        match self.blobs.delete(&key).await {
                            Ok(()) => out.blobs += 1,
                            Err(e) => out.left.push(format!("blob {key}: the delete failed: {e}")),
                        }
                    }
                }
                Err(e) => out
                    .left
                    .push(format!("blobs under {prefix}: the listing failed: {e}")),
            }
        }
        self.check_removed(&tenants, &streams, &checkpoints, &mut out)
            .await;
        out
    }

    async fn check_removed(
        &self,
        tenants: &BTreeSet<String>,
        streams: &BTreeSet<StreamId>,
        checkpoints: &BTreeSet<String>,
        out: &mut Cleanup,
    ) {
        let store: &dyn Store = &*self.store;
        for s in streams {
            match crate::read_all(store, s).await {
                Ok(events) if !events.is_empty() => out
                    .left
                    .push(format!("stream {s}: {} events still read", events.len())),
                Ok(_) | Err(StoreError::StreamDeleted { .. }) => {}
                Err(e) => out
                    .left
                    .push(format!("stream {s}: reading it back failed: {e}")),
            }
            match store.load_snapshot(s).await {
                Ok(None) | Err(StoreError::StreamDeleted { .. }) => {}
                Ok(Some(snap)) => out.left.push(format!(
                    "stream {s}: a snapshot at version {} still loads",
                    snap.version
                )),
                Err(e) => out
                    .left
                    .push(format!("stream {s}: loading its snapshot failed: {e}")),
            }
        }
        for name in checkpoints {
            match store.load_checkpoint(name).await {
                Ok(None) => {}
                Ok(Some(_)) => out.left.push(format!("checkpoint {name:?} still loads")),
                Err(e) => out
                    .left
                    .push(format!("checkpoint {name:?}: loading it failed: {e}")),
            }
        }
        for tenant in tenants {
            let prefix = tenant_blob_prefix(tenant);
            if let Ok(keys) = self.blobs.list(&prefix).await {
                out.left
                    .extend(keys.into_iter().map(|k| format!("blob {k} is still there")));
            }
            if let Some(catalog) = store.catalog() {
                match catalog.list_streams(tenant, None, None, 1000).await {
                    Ok(listed) => out.left.extend(
                        listed
                            .into_iter()
                            .filter(|i| !i.deleted)
                            .map(|i| format!("stream {} is listed and not deleted", i.stream)),
                    ),
                    Err(e) => out
                        .left
                        .push(format!("listing tenant {tenant}'s streams failed: {e}")),
                }
            }
        }
    }
}
