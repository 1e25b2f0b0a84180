//! The change feed in a run: catch-up reads from the beginning or after a checkpoint an earlier
//! read handed out, checked against the model's log.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use sekiban_core::{ChangeBatch, FeedItem, FeedOptions, FeedStart, StreamId};

use crate::catch_up;
use crate::model::rules::{Entry, Seen};

use super::Run;
use super::check::{Step, compare};

/// Why a catch-up read does not match the model.
enum FeedCheck {
    /// It delivered what the model expects, in order, but not all of it: commits a store may not
    /// make visible yet.
    EndedEarly(String),
    /// Anything else.
    Differs(String),
}

impl Run<'_> {
    /// Reads the tenant's feed from the beginning or after an earlier checkpoint, in batches of
    /// at most `max_batch` items, and checks it against the model.
    pub(super) async fn feed(&mut self, after: Option<u16>, max_batch: Option<u8>) -> Step {
        let resume = after
            .filter(|_| !self.checkpoints.is_empty())
            .map(|k| usize::from(k) % self.checkpoints.len());
        let (start, delivered, what) = match resume {
            Some(k) => {
                let (cp, d) = &self.checkpoints[k];
                (
                    FeedStart::After(cp.clone()),
                    d.clone(),
                    format!("feed after checkpoint {cp}"),
                )
            }
            None => (
                FeedStart::Beginning,
                BTreeSet::new(),
                "feed from the beginning".to_string(),
            ),
        };
        let what = format!("{what}, max_batch {max_batch:?}");
        let mut opts = FeedOptions::catch_up().tenant(&self.h.tenant);
        if let Some(m) = max_batch {
            opts = opts.max_batch(usize::from(m));
        }
        // A store may deliver a commit only once every older transaction has finished
        // (PostgreSQL's feed reads below the cluster's xmin, which other clients hold back): a
        // read that ends early is read again, as `catch_up_settled` does, for a few poll
        // intervals; anything else that differs fails at once.
        let deadline = tokio::time::Instant::now()
            + self.limits.feed_poll_interval * 3
            + Duration::from_secs(5);
        let mut retries = 0u64;
        let (batches, count) = loop {
            let batches = catch_up(&*self.h.store, start.clone(), opts.clone())
                .await
                .map_err(|e| format!("{what}: the store failed with {e:?}"))?;
            match self.check_feed(&what, &batches, delivered.clone(), max_batch) {
                Ok((upto, count)) => {
                    for (batch, upto) in batches.iter().zip(upto) {
                        self.checkpoints.push((batch.checkpoint.clone(), upto));
                    }
                    break (batches, count);
                }
                Err(FeedCheck::EndedEarly(_)) if tokio::time::Instant::now() < deadline => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(FeedCheck::EndedEarly(e) | FeedCheck::Differs(e)) => return Err(e),
            }
        };
        let excess = self.checkpoints.len().saturating_sub(16);
        self.checkpoints.drain(..excess);
        self.count(if resume.is_some() {
            "feed after a checkpoint"
        } else {
            "feed from the beginning"
        });
        if retries > 0 {
            self.count("feed read again until it delivered everything (commits not yet visible)");
        }
        *self
            .outcomes
            .entry("feed items delivered".into())
            .or_default() += count as u64;
        self.trace.push(format!(
            "{what} → {count} items in {} batches{}",
            batches.len(),
            if retries > 0 {
                format!(" ({retries} earlier reads ended early)")
            } else {
                String::new()
            }
        ));
        Ok(())
    }

    /// Checks one catch-up read against the model: items in the model's order (per stream with
    /// several partitions), each equal to what the model holds and, in full, recorded time
    /// included, to every earlier read of the same event; batches within `max_batch`; and nothing
    /// missing at the end. Returns the model entries delivered up to each batch's checkpoint (one
    /// set per batch), and the number of items.
    fn check_feed(
        &mut self,
        what: &str,
        batches: &[ChangeBatch],
        mut delivered: BTreeSet<usize>,
        max_batch: Option<u8>,
    ) -> Result<(Vec<BTreeSet<usize>>, usize), FeedCheck> {
        if batches.is_empty() {
            return Err(FeedCheck::Differs(format!(
                "{what}: a catch-up read yielded no batch; it must end with one carrying the checkpoint"
            )));
        }
        // One queue of undelivered visible entries, or one per stream when the feed has several
        // partitions (then only each stream's order is promised).
        let per_stream = self.h.store.capabilities().feed_partitions > 1;
        let mut queues: BTreeMap<Option<StreamId>, VecDeque<usize>> = BTreeMap::new();
        for (i, entry) in self.model.log.iter().enumerate() {
            if !delivered.contains(&i) && self.model.visible(entry) {
                let key = per_stream.then(|| match entry {
                    Entry::Event(s, _) | Entry::Deleted(s, _, _) => s.clone(),
                });
                queues.entry(key).or_default().push_back(i);
            }
        }
        let mut upto = Vec::new();
        let mut count = 0;
        for (b, batch) in batches.iter().enumerate() {
            if let Some(m) = max_batch
                && batch.items.len() > usize::from(m)
            {
                return Err(FeedCheck::Differs(format!(
                    "{what}: batch {b} carries {} items, over max_batch {m}",
                    batch.items.len()
                )));
            }
            for item in &batch.items {
                let seen = Seen::of(item);
                let key = per_stream.then(|| item.stream().clone());
                let Some(i) = queues.get_mut(&key).and_then(VecDeque::pop_front) else {
                    return Err(FeedCheck::Differs(format!(
                        "{what}: item {count} is {seen:?}; the model expects nothing more{}",
                        if per_stream { " of that stream" } else { "" }
                    )));
                };
                let at = format!("{what}: item {count} (batch {b})");
                compare(&at, seen, self.model.seen(&self.model.log[i]))
                    .map_err(FeedCheck::Differs)?;
                if let FeedItem::Event(e) = item {
                    self.same_event(&at, e).map_err(FeedCheck::Differs)?;
                }
                delivered.insert(i);
                count += 1;
            }
            upto.push(delivered.clone());
        }
        let missing: Vec<Seen> = queues
            .values()
            .flatten()
            .map(|i| self.model.seen(&self.model.log[*i]))
            .collect();
        if !missing.is_empty() {
            return Err(FeedCheck::EndedEarly(format!(
                "{what}: delivered {count} items, then ended without {missing:?}"
            )));
        }
        Ok((upto, count))
    }
}
