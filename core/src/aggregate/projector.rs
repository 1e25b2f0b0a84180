//! Runs the change feed into a read model, with checkpoints.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;

use crate::error::{BoxError, StoreError};
use crate::feed::{ChangeBatch, Checkpoint, Etag, FeedItem, FeedOptions, FeedStart};
use crate::store::Store;

/// Where a projector's checkpoint lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointMode {
    /// In the store's [`crate::CheckpointStore`], saved after each batch is applied:
    /// at-least-once (after a crash between the two, the batch is applied again).
    Store,
    /// In the read model itself, saved by [`Projection::apply`] in the same transaction as the
    /// changes: exactly-once effect.
    ReadModel,
}

/// A read model fed by the change feed.
#[async_trait]
pub trait Projection: Send {
    /// Applies a batch; `checkpoint` is the position after it (a [`CheckpointMode::ReadModel`]
    /// projection stores it with its changes).
    async fn apply(&mut self, items: &[FeedItem], checkpoint: &Checkpoint) -> Result<(), BoxError>;

    /// The checkpoint the read model stored ([`CheckpointMode::ReadModel`] only).
    async fn stored_checkpoint(&mut self) -> Result<Option<Checkpoint>, BoxError> {
        Ok(None)
    }
}

/// Why a projector stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectorError {
    /// The store failed (a `CheckpointConflict` means another projector runs under the same name).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The projection failed; its checkpoint was not advanced past the batch.
    #[error("projection {name:?} failed: {source}")]
    Projection {
        /// The projector's name.
        name: String,
        /// The projection's error.
        source: BoxError,
    },
}

/// Feeds a [`Projection`] from a store's change feed, resuming from its checkpoint.
///
/// Each event reaches the projection once per checkpointed position: after a restart it sees
/// again exactly the items after its last saved checkpoint. The checkpoint is loaded once, on
/// the first `catch_up` or `run`; later calls go on from where the previous one stopped, and a
/// save fails with `CheckpointConflict` when another projector saved under the same name since.
#[derive(Debug)]
pub struct Projector<P> {
    store: Arc<dyn Store>,
    name: String,
    options: FeedOptions,
    mode: CheckpointMode,
    projection: P,
    etag: Option<Etag>,
    /// Where to go on from; `None` until the saved checkpoint was loaded.
    next: Option<FeedStart>,
}

impl<P: Projection> Projector<P> {
    /// A projector named `name` (its checkpoint's name) reading the feed with `options`.
    pub fn new(
        store: Arc<dyn Store>,
        name: impl Into<String>,
        options: FeedOptions,
        projection: P,
    ) -> Self {
        Projector {
            store,
            name: name.into(),
            options,
            mode: CheckpointMode::Store,
            projection,
            etag: None,
            next: None,
        }
    }

    /// Sets where the checkpoint lives.
    pub fn with_checkpoints(mut self, mode: CheckpointMode) -> Self {
        self.mode = mode;
        self
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The projection, mutably.
    pub fn projection_mut(&mut self) -> &mut P {
        &mut self.projection
    }

    async fn start(&mut self) -> Result<FeedStart, ProjectorError> {
        if let Some(next) = &self.next {
            return Ok(next.clone());
        }
        let saved = match self.mode {
            CheckpointMode::Store => match self.store.load_checkpoint(&self.name).await? {
                Some((c, etag)) => {
                    self.etag = Some(etag);
                    Some(c)
                }
                None => None,
            },
            CheckpointMode::ReadModel => {
                self.projection
                    .stored_checkpoint()
                    .await
                    .map_err(|source| ProjectorError::Projection {
                        name: self.name.clone(),
                        source,
                    })?
            }
        };
        Ok(saved.map_or(FeedStart::Beginning, FeedStart::After))
    }

    async fn handle(&mut self, batch: ChangeBatch) -> Result<usize, ProjectorError> {
        self.projection
            .apply(&batch.items, &batch.checkpoint)
            .await
            .map_err(|source| ProjectorError::Projection {
                name: self.name.clone(),
                source,
            })?;
        if self.mode == CheckpointMode::Store {
            let etag = self
                .store
                .save_checkpoint(&self.name, &batch.checkpoint, self.etag.as_ref())
                .await?;
            self.etag = Some(etag);
        }
        self.next = Some(FeedStart::After(batch.checkpoint));
        Ok(batch.items.len())
    }

    /// Applies everything committed so far, then returns the number of items applied.
    pub async fn catch_up(&mut self) -> Result<usize, ProjectorError> {
        let from = self.start().await?;
        let mut opts = self.options.clone();
        opts.follow = false;
        let store = self.store.clone();
        let mut feed = store.changes(from, opts);
        let mut applied = 0;
        while let Some(batch) = feed.next().await {
            applied += self.handle(batch?).await?;
        }
        Ok(applied)
    }

    /// Follows the feed, applying items as they commit, until `stop` completes; returns the
    /// number of items applied.
    pub async fn run(&mut self, stop: impl Future<Output = ()>) -> Result<usize, ProjectorError> {
        let from = self.start().await?;
        let mut opts = self.options.clone();
        opts.follow = true;
        let store = self.store.clone();
        let mut feed = store.changes(from, opts);
        let mut applied = 0;
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return Ok(applied),
                batch = feed.next() => match batch {
                    Some(batch) => applied += self.handle(batch?).await?,
                    None => return Ok(applied),
                },
            }
        }
    }
}
