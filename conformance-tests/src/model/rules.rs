//! The model: the store's rules written plainly, over a few `Vec`s and maps per stream. It never
//! calls into a store to decide what is right.

use std::collections::BTreeMap;

use sekiban_core::{
    AppendResult, DeleteMode, EventData, ExpectedVersion, FeedItem, Limits, Snapshot, StoreError,
    StreamId, Version,
};

/// An error as the model predicts it: the variant and its data, never the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    WrongExpectedVersion {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: Version,
    },
    EventTooLarge {
        stream: StreamId,
        index: usize,
        size: usize,
        limit: usize,
    },
    BatchTooLarge {
        stream: StreamId,
        count: usize,
        bytes: usize,
        max_count: usize,
        max_bytes: usize,
    },
    InvalidInput,
    StreamDeleted {
        stream: StreamId,
        version: Version,
    },
    /// `id_in_batch`: the error names an id of the refused batch.
    IdempotencyConflict {
        stream: StreamId,
        id_in_batch: bool,
    },
    /// Any error the model never predicts.
    Unexpected(String),
}

impl Fault {
    pub(super) fn of(e: StoreError, batch: &[EventData]) -> Fault {
        match e {
            StoreError::WrongExpectedVersion {
                stream,
                expected,
                actual,
            } => Fault::WrongExpectedVersion {
                stream,
                expected,
                actual,
            },
            StoreError::EventTooLarge {
                stream,
                index,
                size,
                limit,
            } => Fault::EventTooLarge {
                stream,
                index,
                size,
                limit,
            },
            StoreError::BatchTooLarge {
                stream,
                count,
                bytes,
                max_count,
                max_bytes,
            } => Fault::BatchTooLarge {
                stream,
                count,
                bytes,
                max_count,
                max_bytes,
            },
            StoreError::InvalidInput { .. } => Fault::InvalidInput,
            StoreError::StreamDeleted { stream, version } => {
                Fault::StreamDeleted { stream, version }
            }
            StoreError::IdempotencyConflict { stream, event_id } => Fault::IdempotencyConflict {
                stream,
                id_in_batch: batch.iter().any(|e| e.id == event_id),
            },
            other => Fault::Unexpected(format!("{other:?}")),
        }
    }
}

/// One stream of the model.
#[derive(Debug, Default)]
pub(super) struct ModelStream {
    /// Every event ever appended; version = index + 1 (kept after erasure: the flag rules).
    events: Vec<EventData>,
    /// (first version, number of events) of each append.
    pub(super) appends: Vec<(u64, usize)>,
    /// Versions up to here are hidden by a soft delete.
    pub(super) hidden_upto: u64,
    erased: bool,
    snapshot: Option<Snapshot>,
}

impl ModelStream {
    pub(super) fn head(&self) -> u64 {
        self.events.len() as u64
    }
    pub(super) fn version_of(&self, id: sekiban_core::EventId) -> Option<u64> {
        self.events
            .iter()
            .position(|e| e.id == id)
            .map(|i| i as u64 + 1)
    }
}

/// An entry of the tenant's feed, in commit order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Entry {
    Event(StreamId, u64),
    Deleted(StreamId, u64, DeleteMode),
}

/// What a feed item shows, without the store's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Seen {
    Event {
        stream: StreamId,
        version: u64,
        event: EventData,
    },
    Deleted {
        stream: StreamId,
        version: u64,
        mode: DeleteMode,
    },
}

impl Seen {
    pub(super) fn of(item: &FeedItem) -> Seen {
        match item {
            FeedItem::Event(e) => Seen::Event {
                stream: e.stream.clone(),
                version: e.version.0,
                event: e.to_event_data(),
            },
            FeedItem::Deleted {
                stream,
                version,
                mode,
            } => Seen::Deleted {
                stream: stream.clone(),
                version: version.0,
                mode: *mode,
            },
        }
    }
}

/// Whether `expected` lets an append go ahead on a stream whose head is `head`.
pub(super) fn accepts(expected: ExpectedVersion, head: u64) -> bool {
    match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => head == 0,
        ExpectedVersion::StreamExists => head > 0,
        ExpectedVersion::Exact(v) => v.0 == head,
    }
}

/// The model of the tenant: its streams and the log of its feed, in commit order.
#[derive(Debug, Default)]
pub(super) struct Model {
    pub(super) streams: BTreeMap<StreamId, ModelStream>,
    pub(super) log: Vec<Entry>,
}

impl Model {
    pub(super) fn live(&self, stream: &StreamId) -> Result<Option<&ModelStream>, Fault> {
        match self.streams.get(stream) {
            Some(s) if s.erased => Err(Fault::StreamDeleted {
                stream: stream.clone(),
                version: Version(s.head()),
            }),
            other => Ok(other),
        }
    }

    pub(super) fn check_input(
        limits: &Limits,
        stream: &StreamId,
        batch: &[EventData],
    ) -> Result<(), Fault> {
        if batch.is_empty() {
            return Err(Fault::InvalidInput);
        }
        let mut bytes = 0;
        for (index, e) in batch.iter().enumerate() {
            if e.event_type.is_empty() {
                return Err(Fault::InvalidInput);
            }
            let size = e.size();
            if size > limits.max_event_bytes {
                return Err(Fault::EventTooLarge {
                    stream: stream.clone(),
                    index,
                    size,
                    limit: limits.max_event_bytes,
                });
            }
            if batch[..index].iter().any(|p| p.id == e.id) {
                return Err(Fault::InvalidInput);
            }
            bytes += size;
        }
        if batch.len() > limits.max_append_events || bytes > limits.max_append_bytes {
            return Err(Fault::BatchTooLarge {
                stream: stream.clone(),
                count: batch.len(),
                bytes,
                max_count: limits.max_append_events,
                max_bytes: limits.max_append_bytes,
            });
        }
        Ok(())
    }

    pub(super) fn append(
        &mut self,
        limits: &Limits,
        stream: &StreamId,
        expected: ExpectedVersion,
        batch: &[EventData],
    ) -> Result<AppendResult, Fault> {
        Self::check_input(limits, stream, batch)?;
        let current = self.live(stream)?;
        let head = current.map_or(0, ModelStream::head);
        if let Some(s) = current
            && batch.iter().any(|e| s.version_of(e.id).is_some())
        {
            let same = s
                .appends
                .iter()
                .find(|(first, n)| s.events[*first as usize - 1..][..*n] == *batch);
            return match same {
                Some(&(first, n)) => Ok(AppendResult {
                    first: Version(first),
                    last: Version(first + n as u64 - 1),
                    deduplicated: true,
                }),
                None => Err(Fault::IdempotencyConflict {
                    stream: stream.clone(),
                    id_in_batch: true,
                }),
            };
        }
        if !accepts(expected, head) {
            return Err(Fault::WrongExpectedVersion {
                stream: stream.clone(),
                expected,
                actual: Version(head),
            });
        }
        let s = self.streams.entry(stream.clone()).or_default();
        s.appends.push((head + 1, batch.len()));
        for e in batch {
            s.events.push(e.clone());
            self.log.push(Entry::Event(stream.clone(), s.head()));
        }
        Ok(AppendResult {
            first: Version(head + 1),
            last: Version(s.head()),
            deduplicated: false,
        })
    }

    pub(super) fn read(
        &self,
        stream: &StreamId,
        backward: bool,
        from: Option<u64>,
        max_count: Option<u64>,
    ) -> Result<Vec<(StreamId, u64, EventData)>, Fault> {
        let Some(s) = self.live(stream)? else {
            return Ok(Vec::new());
        };
        let visible = (s.hidden_upto + 1..=s.head()).map(|v| (v, &s.events[v as usize - 1]));
        let max = max_count.map_or(usize::MAX, |m| m as usize);
        let picked: Vec<_> = if backward {
            visible
                .rev()
                .filter(|(v, _)| from.is_none_or(|f| *v <= f))
                .take(max)
                .collect()
        } else {
            visible
                .filter(|(v, _)| from.is_none_or(|f| *v >= f))
                .take(max)
                .collect()
        };
        Ok(picked
            .into_iter()
            .map(|(v, e)| (stream.clone(), v, e.clone()))
            .collect())
    }

    pub(super) fn version(&self, stream: &StreamId) -> Result<u64, Fault> {
        Ok(self.live(stream)?.map_or(0, ModelStream::head))
    }

    pub(super) fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Fault> {
        let v = snapshot.version.0;
        if v == 0 || snapshot.state_type.is_empty() {
            return Err(Fault::InvalidInput);
        }
        let Some(s) = self.live(&snapshot.stream)? else {
            return Err(Fault::InvalidInput);
        };
        if v > s.head() || v <= s.hidden_upto {
            return Err(Fault::InvalidInput);
        }
        if let Some(s) = self.streams.get_mut(&snapshot.stream)
            && s.snapshot
                .as_ref()
                .is_none_or(|c| c.version <= snapshot.version)
        {
            s.snapshot = Some(snapshot.clone());
        }
        Ok(())
    }

    pub(super) fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, Fault> {
        Ok(self.live(stream)?.and_then(|s| s.snapshot.clone()))
    }

    pub(super) fn delete(&mut self, stream: &StreamId, mode: DeleteMode) {
        let Some(s) = self.streams.get_mut(stream).filter(|s| !s.erased) else {
            return;
        };
        // Nothing new to hide: nothing happens, and no marker.
        if mode == DeleteMode::Soft && s.hidden_upto >= s.head() {
            return;
        }
        s.snapshot = None;
        match mode {
            DeleteMode::Soft => s.hidden_upto = s.head(),
            DeleteMode::Hard => s.erased = true,
        }
        self.log
            .push(Entry::Deleted(stream.clone(), s.head(), mode));
    }

    pub(super) fn visible(&self, entry: &Entry) -> bool {
        match entry {
            Entry::Event(stream, v) => self
                .streams
                .get(stream)
                .is_some_and(|s| !s.erased && *v > s.hidden_upto),
            Entry::Deleted(..) => true,
        }
    }

    pub(super) fn seen(&self, entry: &Entry) -> Seen {
        match entry {
            Entry::Event(stream, v) => Seen::Event {
                stream: stream.clone(),
                version: *v,
                event: self
                    .streams
                    .get(stream)
                    .and_then(|s| s.events.get(*v as usize - 1))
                    .cloned()
                    .unwrap_or_else(|| EventData::new("missing-from-model", "")),
            },
            Entry::Deleted(stream, v, mode) => Seen::Deleted {
                stream: stream.clone(),
                version: *v,
                mode: *mode,
            },
        }
    }
}
