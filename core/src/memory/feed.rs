//! The memory store's change feed: its log read as one partition, or as n partitions by a
//! stable hash of the stream id, through the shared feed driver.

use super::*;

/// The feed partition of a stream, the same in every process and release.
fn partition_of(stream: &StreamId, partitions: u32) -> u32 {
    let h = stable_hash(&[stream.tenant(), stream.category(), stream.id()]);
    u32::try_from(h % u64::from(partitions.max(1))).unwrap_or(0)
}

impl MemoryStore {
    /// One feed poll of partition `part`: items after `after`, the position reached, and
    /// whether it reached the end. At most `max` items, ending with the event that reaches
    /// `page_bytes`.
    fn poll_feed(&self, part: u32, after: u64, opts: &FeedOptions, max: usize) -> FeedPoll<u64> {
        let partitions = self.shared.partitions;
        let page_bytes = self.shared.limits.page_bytes;
        self.request(
            OpKind::Feed,
            0,
            |st| {
                let mut items: Vec<(u64, FeedItem)> = Vec::new();
                let mut reached = after;
                let mut bytes = 0;
                for (pos, entry) in st.log.range(after + 1..) {
                    if items.len() == max || bytes >= page_bytes {
                        return FeedPoll {
                            items,
                            reached,
                            at_end: false,
                        };
                    }
                    reached = *pos;
                    if partitions > 1 && partition_of(entry.stream(), partitions) != part {
                        continue;
                    }
                    match entry {
                        LogEntry::Event(stream, v) if opts.matches(stream) => {
                            if let Some(s) = st.streams.get(stream).filter(|s| *v > s.hidden_upto)
                                && let Some(e) = s.get(*v)
                            {
                                bytes += e.event.size();
                                items.push((*pos, FeedItem::Event(e.event.clone())));
                            }
                        }
                        LogEntry::Deleted(stream, version, mode) if opts.matches(stream) => {
                            items.push((
                                *pos,
                                FeedItem::Deleted {
                                    stream: stream.clone(),
                                    version: *version,
                                    mode: *mode,
                                },
                            ));
                        }
                        _ => {}
                    }
                }
                FeedPoll {
                    items,
                    reached: st.last_position.max(after),
                    at_end: true,
                }
            },
            |p| p.items.iter().map(|(_, i)| i.size()).sum(),
        )
    }
}

impl ChangeFeed for MemoryStore {
    fn changes(&self, from: FeedStart, opts: FeedOptions) -> BoxStream<'_, Result<ChangeBatch>> {
        drive_partitions(Parts(self), from, opts, self.shared.limits.page_events)
    }
}

/// The store's feed partitions, as the feed driver reads them. A position is the log position
/// read up to; `None`, in a resumed split, a partition another worker's checkpoint holds.
struct Parts<'a>(&'a MemoryStore);

/// The positions of a checkpoint of a partitioned feed: one per partition, `-` for one another
/// worker of a split reads.
struct Positions(Vec<Option<u64>>);

impl std::fmt::Display for Positions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match p {
                Some(p) => write!(f, "{p}")?,
                None => f.write_str("-")?,
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Positions {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        s.split(',')
            .map(|p| {
                if p == "-" {
                    Ok(None)
                } else {
                    p.parse().map(Some)
                }
            })
            .collect::<std::result::Result<_, _>>()
            .map(Positions)
    }
}

#[async_trait]
impl PartitionedSource for Parts<'_> {
    type Key = u32;
    type Position = Option<u64>;
    type Reader = watch::Receiver<u64>;

    async fn start(
        &self,
        _appended: &mut watch::Receiver<u64>,
        from: FeedStart,
    ) -> Result<Vec<Partition<u32, Option<u64>>>> {
        let n = self.0.shared.partitions;
        let positions = match from {
            FeedStart::Beginning => vec![Some(0); n as usize],
            FeedStart::Now => {
                let end = self
                    .0
                    .request(OpKind::Feed, 0, |st| st.last_position, |_| 8);
                vec![Some(end); n as usize]
            }
            FeedStart::After(c) if n == 1 => vec![Some(self.0.codec().decode::<u64>(&c)?)],
            FeedStart::After(c) => {
                let Positions(p) = self.0.codec().decode(&c)?;
                if p.len() != n as usize {
                    return Err(StoreError::InvalidCheckpoint {
                        reason: format!(
                            "{c} holds {} partitions; this store's feed has {n}",
                            p.len()
                        ),
                    });
                }
                p
            }
        };
        Ok((0..n)
            .zip(positions)
            .map(|(k, p)| Partition::new(k, p))
            .collect())
    }

    async fn poll(
        &self,
        appended: &mut watch::Receiver<u64>,
        key: &u32,
        after: Option<u64>,
        opts: &FeedOptions,
        max: usize,
    ) -> Result<PartitionPoll<u32, Option<u64>>> {
        let Some(after) = after else {
            return Err(StoreError::InvalidCheckpoint {
                reason: format!(
                    "the checkpoint holds no position of partition {key}: another worker of a \
                     split read it; resume each worker from its own checkpoint"
                ),
            });
        };
        appended.borrow_and_update();
        let FeedPoll {
            items,
            reached,
            at_end,
        } = self.0.poll_feed(*key, after, opts, max);
        Ok(PartitionPoll::open(FeedPoll {
            items: items.into_iter().map(|(p, i)| (Some(p), i)).collect(),
            reached: Some(reached),
            at_end,
        }))
    }

    /// One log position for a feed of one partition (`mem:ID:POS`); else one per partition,
    /// `-` for those another worker reads (`mem:ID:P0,-,P2`).
    fn checkpoint(
        &self,
        _appended: &watch::Receiver<u64>,
        parts: &[Held<u32, Option<u64>>],
    ) -> Checkpoint {
        let codec = self.0.codec();
        if let [one] = parts {
            return codec.encode(one.part.position.unwrap_or(0));
        }
        codec.encode(Positions(
            parts
                .iter()
                .map(|h| h.part.position.filter(|_| h.mine))
                .collect(),
        ))
    }

    fn owner(&self, key: &u32) -> u64 {
        u64::from(*key)
    }

    fn reader(&self, _opts: &FeedOptions) -> watch::Receiver<u64> {
        self.0.shared.appended.subscribe()
    }

    async fn wait(
        &self,
        appended: &mut watch::Receiver<u64>,
        _parts: &[Held<u32, Option<u64>>],
        _opts: &FeedOptions,
        _max: usize,
        _delivered: bool,
    ) -> Result<Wait<(u32, Option<u64>)>> {
        let poll = self.0.shared.limits.feed_poll_interval;
        let _ = tokio::time::timeout(poll, appended.changed()).await;
        Ok(Wait::Poll)
    }
}
