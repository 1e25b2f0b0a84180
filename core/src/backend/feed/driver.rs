//! The driver: one reader's partitions, polled in turn (see the module's documentation).

use futures::StreamExt;
use futures::stream::{self, BoxStream};

use super::{Held, Partition, PartitionPoll, PartitionedSource, Wait};
use crate::error::{Result, StoreError};
use crate::feed::{ChangeBatch, Checkpoint, FeedOptions, FeedPoll, FeedSplit, FeedStart};

struct Reader<S: PartitionedSource> {
    source: S,
    /// Where to start, until the first poll resolved it.
    from: Option<FeedStart>,
    slots: Vec<Held<S::Key, S::Position>>,
    state: S::Reader,
    /// The slot polled next.
    cursor: usize,
    /// The checkpoint of the last batch handed out.
    last: Option<Checkpoint>,
    /// Items were handed out since the last wait.
    since_wait: bool,
    /// Wait before the next poll (a follower from `Now`, one whose partitions are all at rest,
    /// or one whose last batch a wait brought).
    wait_next: bool,
    done: bool,
}

impl<S: PartitionedSource> Reader<S> {
    /// Whether this reader reads a partition with these parents and key: where its first
    /// parent the reader holds went, else where the source's owner says.
    fn mine(&self, split: Option<FeedSplit>, key: &S::Key, parents: &[S::Key]) -> bool {
        let Some(split) = split else {
            return true;
        };
        if let Some(parent) = parents
            .iter()
            .find_map(|p| self.slots.iter().find(|s| &s.part.key == p))
        {
            return parent.mine;
        }
        self.source.owner(key) % u64::from(split.workers) == u64::from(split.worker)
    }

    /// Adds partitions the reader does not hold yet.
    fn add(&mut self, split: Option<FeedSplit>, parts: Vec<Partition<S::Key, S::Position>>) {
        for part in parts {
            if self.slots.iter().any(|s| s.part.key == part.key) {
                continue;
            }
            let mine = self.mine(split, &part.key, &part.parents);
            self.slots.push(Held {
                part,
                mine,
                ended: false,
                rest: false,
            });
        }
    }

    /// Whether slot `i` is to be polled in this round: this reader's, open, not at rest, and
    /// every parent it holds read to its end.
    fn readable(&self, i: usize) -> bool {
        let s = &self.slots[i];
        s.mine
            && !s.ended
            && !s.rest
            && s.part.parents.iter().all(|p| {
                self.slots
                    .iter()
                    .find(|o| &o.part.key == p)
                    .is_none_or(|o| o.ended)
            })
    }

    /// A batch of `items`, with the checkpoint after them.
    fn batch(&mut self, items: Vec<crate::feed::FeedItem>) -> ChangeBatch {
        let checkpoint = self.source.checkpoint(&self.state, &self.slots);
        self.last = Some(checkpoint.clone());
        ChangeBatch { items, checkpoint }
    }

    /// Takes one poll of slot `i` in: its position, its end, its successors. `rests`: a poll
    /// that reached the end puts the partition at rest even when it brought items.
    fn took(
        &mut self,
        split: Option<FeedSplit>,
        i: usize,
        poll: &PartitionPoll<S::Key, S::Position>,
        rests: bool,
    ) {
        let FeedPoll {
            items,
            reached,
            at_end,
        } = &poll.poll;
        let slot = &mut self.slots[i];
        slot.part.position = reached.clone();
        slot.rest = *at_end && (rests || items.is_empty());
        self.cursor = i + 1;
        let Some(successors) = &poll.ended else {
            return;
        };
        slot.ended = true;
        slot.rest = true;
        self.add(split, successors.clone());
        // An ended partition leaves once another names it as a parent: its successors carry on.
        let mut k = 0;
        while k < self.slots.len() {
            let s = &self.slots[k];
            let followed = s.ended
                && self
                    .slots
                    .iter()
                    .any(|o| o.part.parents.contains(&s.part.key));
            if followed {
                self.slots.remove(k);
                if k < self.cursor {
                    self.cursor -= 1;
                }
            } else {
                k += 1;
            }
        }
    }
}

/// The change feed of `source` from `from`: batches of at most `max_batch` items (default
/// `page_events`), each with the checkpoint after it.
pub fn drive_partitions<'a, S: PartitionedSource + 'a>(
    source: S,
    from: FeedStart,
    opts: FeedOptions,
    page_events: usize,
) -> BoxStream<'a, Result<ChangeBatch>> {
    let max = opts.max_batch.unwrap_or(page_events).max(1);
    let state = source.reader(&opts);
    let reader = Reader {
        wait_next: opts.follow && from == FeedStart::Now && source.waits_after_now(),
        source,
        from: Some(from),
        slots: Vec::new(),
        state,
        cursor: 0,
        last: None,
        since_wait: false,
        done: false,
    };
    stream::unfold((reader, opts), move |(mut r, opts)| async move {
        if r.done {
            return None;
        }
        macro_rules! fail {
            ($e:expr) => {{
                r.done = true;
                return Some((Err($e), (r, opts)));
            }};
        }
        let split = opts.split;
        if let Some(from) = r.from.take() {
            if let Some(s) = split
                && (s.workers == 0 || s.worker >= s.workers)
            {
                fail!(StoreError::invalid(format!(
                    "feed split {}/{}: the worker must be below the number of workers",
                    s.worker, s.workers
                )));
            }
            match r.source.start(&mut r.state, from).await {
                Ok(parts) => r.add(split, parts),
                Err(e) => fail!(e),
            }
        }
        loop {
            if std::mem::take(&mut r.wait_next) {
                let delivered = std::mem::take(&mut r.since_wait);
                match r
                    .source
                    .wait(&mut r.state, &r.slots, &opts, max, delivered)
                    .await
                {
                    Ok(Wait::Poll) => {}
                    Ok(Wait::Items(items, (key, reached))) => {
                        // What the wait brought; the next call waits again.
                        if let Some(s) = r.slots.iter_mut().find(|s| s.part.key == key) {
                            s.part.position = reached;
                        }
                        r.wait_next = true;
                        if items.is_empty() {
                            continue;
                        }
                        r.since_wait = true;
                        let batch = r.batch(items);
                        return Some((Ok(batch), (r, opts)));
                    }
                    Err(e) => fail!(e),
                }
            }
            let n = r.slots.len();
            let Some(i) = (0..n).map(|d| (r.cursor + d) % n).find(|&i| r.readable(i)) else {
                // Every partition is at rest. A catch-up read ends with the checkpoint after
                // everything it read: an empty batch, unless the last batch carries it already.
                if !opts.follow {
                    r.done = true;
                    let now = r.source.checkpoint(&r.state, &r.slots);
                    if r.last.as_ref() == Some(&now) {
                        return None;
                    }
                    let batch = r.batch(Vec::new());
                    return Some((Ok(batch), (r, opts)));
                }
                for s in &mut r.slots {
                    s.rest = false;
                }
                r.wait_next = true;
                continue;
            };
            let after = r.slots[i].part.position.clone();
            let key = r.slots[i].part.key.clone();
            let poll = match r.source.poll(&mut r.state, &key, after, &opts, max).await {
                Ok(p) => p,
                Err(e) => fail!(e),
            };
            let rests = !opts.follow || r.source.rests_at_end();
            r.took(split, i, &poll, rests);
            if !poll.poll.items.is_empty() {
                r.since_wait = true;
                let items = poll.poll.items.into_iter().map(|(_, item)| item).collect();
                let batch = r.batch(items);
                return Some((Ok(batch), (r, opts)));
            }
        }
    })
    .boxed()
}
