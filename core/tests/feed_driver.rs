//! The shared feed driver over a source whose partitions split: children after their parent,
//! a split of workers by lineage, and one poll per partition per wait when idle.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use sekiban_core::backend::FeedPoll;
use sekiban_core::backend::feed::{
    Held, Partition, PartitionPoll, PartitionedSource, Wait, drive_partitions,
};
use sekiban_core::{
    ChangeBatch, Checkpoint, DeleteMode, FeedItem, FeedOptions, FeedStart, Result, StreamId,
    Version,
};

/// A partition's items, and the partitions that follow it once it is read to its end.
struct Log {
    items: Vec<FeedItem>,
    successors: Option<Vec<&'static str>>,
}

/// Partitions by name; a partition's owner is the number in its name's last character.
struct Source {
    logs: HashMap<&'static str, Log>,
    start: Vec<Partition<String, usize>>,
    polled: Mutex<Vec<String>>,
    waits: AtomicUsize,
}

fn item(partition: &str, n: u64) -> FeedItem {
    FeedItem::Deleted {
        stream: StreamId::new("t", "c", partition).expect("a valid stream id"),
        version: Version(n),
        mode: DeleteMode::Soft,
    }
}

impl Source {
    fn new(start: &[(&'static str, &[&'static str])]) -> Self {
        Source {
            logs: HashMap::new(),
            start: start
                .iter()
                .map(|(k, parents)| Partition {
                    key: (*k).to_string(),
                    parents: parents.iter().map(|p| (*p).to_string()).collect(),
                    position: 0,
                })
                .collect(),
            polled: Mutex::new(Vec::new()),
            waits: AtomicUsize::new(0),
        }
    }

    fn log(mut self, key: &'static str, n: u64, successors: Option<Vec<&'static str>>) -> Self {
        let items = (1..=n).map(|i| item(key, i)).collect();
        self.logs.insert(key, Log { items, successors });
        self
    }

    fn polls(&self) -> usize {
        self.polled.lock().map(|p| p.len()).unwrap_or(0)
    }
}

#[async_trait]
impl PartitionedSource for &Source {
    type Key = String;
    type Position = usize;
    type Reader = ();

    async fn start(&self, _r: &mut (), _from: FeedStart) -> Result<Vec<Partition<String, usize>>> {
        Ok(self.start.clone())
    }

    async fn poll(
        &self,
        _w: &mut (),
        key: &String,
        after: usize,
        _opts: &FeedOptions,
        max: usize,
    ) -> Result<PartitionPoll<String, usize>> {
        if let Ok(mut p) = self.polled.lock() {
            p.push(key.clone());
        }
        let log = &self.logs[key.as_str()];
        let end = (after + max).min(log.items.len());
        let items: Vec<_> = (after..end)
            .map(|i| (i + 1, log.items[i].clone()))
            .collect();
        let poll = FeedPoll::new(items, max, false, after, log.items.len());
        let ended = (poll.at_end)
            .then(|| log.successors.clone())
            .flatten()
            .map(|s| {
                s.into_iter()
                    .map(|k| Partition {
                        key: k.to_string(),
                        parents: vec![key.clone()],
                        position: 0,
                    })
                    .collect()
            });
        Ok(PartitionPoll { poll, ended })
    }

    fn checkpoint(&self, _r: &(), parts: &[Held<String, usize>]) -> Checkpoint {
        let mine: Vec<String> = parts
            .iter()
            .filter(|h| h.mine)
            .map(|h| format!("{}={}", h.part.key, h.part.position))
            .collect();
        Checkpoint::new(mine.join(","))
    }

    fn owner(&self, key: &String) -> u64 {
        key.bytes()
            .last()
            .map_or(0, |b| u64::from(b.saturating_sub(b'0')))
    }

    fn reader(&self, _opts: &FeedOptions) {}

    async fn wait(
        &self,
        _w: &mut (),
        _parts: &[Held<String, usize>],
        _opts: &FeedOptions,
        _max: usize,
        _delivered: bool,
    ) -> Result<Wait<(String, usize)>> {
        self.waits.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(Wait::Poll)
    }
}

async fn catch_up(source: &Source, opts: FeedOptions) -> Vec<ChangeBatch> {
    drive_partitions(source, FeedStart::Beginning, opts.max_batch(2), 100)
        .map(|b| b.expect("a batch"))
        .collect()
        .await
}

fn items(batches: &[ChangeBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| &b.items)
        .map(|i| format!("{}{}", i.stream().id(), i.as_event().map_or(0, |_| 1)))
        .collect()
}

/// `a0` splits into `b1`, `c0` and `d0`; `d0`, listed from the start as `a0`'s child, waits for
/// it. `b1` is a child of worker 0's partition, though its own number says worker 1.
fn splitting() -> Source {
    Source::new(&[("a0", &[]), ("d0", &["a0"]), ("e1", &[])])
        .log("a0", 3, Some(vec!["b1", "c0", "d0"]))
        .log("b1", 2, None)
        .log("c0", 2, None)
        .log("d0", 2, None)
        .log("e1", 1, None)
}

#[tokio::test]
async fn children_are_read_after_their_parent_ended() {
    let source = splitting();
    let batches = catch_up(&source, FeedOptions::catch_up()).await;
    let got = items(&batches);
    assert_eq!(got.len(), 3 + 2 + 2 + 2 + 1, "{got:?}");
    let last_a = got.iter().rposition(|i| i.starts_with("a0"));
    let first_child = got
        .iter()
        .position(|i| ["b1", "c0", "d0"].iter().any(|c| i.starts_with(c)));
    assert!(
        last_a < first_child,
        "a child before its parent ended: {got:?}"
    );
    // The parent left once its children carried on; every child is read to its end.
    let last = &batches.last().expect("a batch").checkpoint;
    assert_eq!(last.as_str(), "d0=2,e1=1,b1=2,c0=2");
    // Each polled until a poll reached its end (a full poll of 2 is not the end), none after.
    assert_eq!(source.polls(), 2 + 2 + 2 + 2 + 1);
}

#[tokio::test]
async fn a_split_gives_each_lineage_to_one_worker() {
    let source = splitting();
    let first = catch_up(&source, FeedOptions::catch_up().split(0, 2)).await;
    let second = catch_up(&source, FeedOptions::catch_up().split(1, 2)).await;
    let (first, second) = (items(&first), items(&second));
    assert_eq!(first.len(), 3 + 2 + 2 + 2, "{first:?}");
    assert!(first.iter().all(|i| !i.starts_with("e1")), "{first:?}");
    assert_eq!(second, vec!["e10".to_string()]);
}

#[tokio::test]
async fn an_idle_follower_polls_each_partition_once_a_wait() {
    let source = Source::new(&[("a0", &[]), ("b1", &[]), ("c2", &[])])
        .log("a0", 0, None)
        .log("b1", 0, None)
        .log("c2", 0, None);
    let mut feed = drive_partitions(&source, FeedStart::Beginning, FeedOptions::follow(), 100);
    let r = tokio::time::timeout(Duration::from_millis(300), feed.next()).await;
    assert!(r.is_err(), "an idle feed delivered {r:?}");
    drop(feed);
    let waits = source.waits.load(Ordering::SeqCst);
    assert!(waits >= 5, "{waits} waits in 300 ms of 20 ms waits");
    assert!(
        source.polls() <= (waits + 1) * 3,
        "{} polls for {waits} waits of 3 partitions",
        source.polls()
    );
}
