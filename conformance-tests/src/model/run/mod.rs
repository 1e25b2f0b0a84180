//! Running a sequence against a store and the model: [`Run`] holds what a case has done so far,
//! steps through the operations and compares each result with the model's. Its methods are split
//! by concern over the modules below.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::future::Future;

use proptest::test_runner::TestCaseError;
use sekiban_core::{
    Checkpoint, EventData, ExpectedVersion, Limits, RecordedEvent, StreamId, Version,
};

use crate::Harness;

use super::ops::{At, Exp, Op};
use super::rules::{Model, ModelStream};
use super::{OP_TIMEOUT, STREAMS};

mod append;
mod check;
mod delete;
mod feed;
mod race;
mod read;
mod snapshot;

use check::Step;

/// Runs one sequence on a fresh harness; returns how often each kind of outcome was seen.
pub(super) async fn run_sequence<F, Fut>(
    make: &F,
    ops: &[Op],
) -> Result<BTreeMap<String, u64>, TestCaseError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Harness>,
{
    let h = make().await;
    let mut run = Run::new(&h);
    for (i, op) in ops.iter().enumerate() {
        run.step_checked(&format!("[{i}]"), op).await?;
    }
    for s in 0..STREAMS {
        run.step_checked("[end]", &Op::Version { s }).await?;
        let all = Op::Read {
            s,
            backward: false,
            from: None,
            max_count: None,
        };
        run.step_checked("[end]", &all).await?;
        run.step_checked("[end]", &Op::LoadSnapshot { s }).await?;
    }
    let feed = Op::Feed {
        after: None,
        max_batch: None,
    };
    run.step_checked("[end]", &feed).await?;
    Ok(run.outcomes)
}

/// One case in progress: the harness, the model, and what the case has sent and seen so far.
struct Run<'h> {
    h: &'h Harness,
    limits: Limits,
    streams: Vec<StreamId>,
    model: Model,
    /// Every batch sent to each stream (fresh, re-sent or changed), for re-sends.
    sent: Vec<Vec<Vec<EventData>>>,
    /// Checkpoints the feed handed out, with the model entries delivered up to each.
    checkpoints: Vec<(Checkpoint, BTreeSet<usize>)>,
    trace: Vec<String>,
    /// How often each kind of outcome was seen.
    outcomes: BTreeMap<String, u64>,
    /// Every event a read, the feed or a round's read-back returned, by stream and version, as
    /// first returned: later sightings must equal it in full (recorded time included).
    recorded: BTreeMap<(StreamId, u64), RecordedEvent>,
}

impl<'h> Run<'h> {
    fn count(&mut self, what: impl Into<String>) {
        *self.outcomes.entry(what.into()).or_default() += 1;
    }

    fn new(h: &'h Harness) -> Self {
        Run {
            h,
            limits: h.store.limits().clone(),
            streams: (0..STREAMS)
                .map(|i| h.stream("model", &format!("s{i}")))
                .collect(),
            model: Model::default(),
            sent: vec![Vec::new(); STREAMS as usize],
            checkpoints: Vec::new(),
            trace: Vec::new(),
            outcomes: BTreeMap::new(),
            recorded: BTreeMap::new(),
        }
    }

    async fn step_checked(&mut self, label: &str, op: &Op) -> Result<(), TestCaseError> {
        let result = match tokio::time::timeout(OP_TIMEOUT, self.step(op)).await {
            Ok(r) => r,
            Err(_) => Err(format!("{op:?} did not finish within {OP_TIMEOUT:?}")),
        };
        result.map_err(|failure| {
            let mut msg = format!(
                "step {label}: {failure}\n\nsteps before it (all as the model expected):\n"
            );
            for line in &self.trace {
                let _ = writeln!(msg, "  {line}");
            }
            if self.trace.is_empty() {
                msg.push_str("  (none)\n");
            }
            TestCaseError::fail(msg)
        })?;
        if let Some(line) = self.trace.last_mut() {
            line.insert_str(0, &format!("{label} "));
        }
        Ok(())
    }

    fn stream(&self, s: u8) -> StreamId {
        self.streams[usize::from(s) % self.streams.len()].clone()
    }

    fn name(s: u8) -> String {
        format!("s{}", s % STREAMS)
    }

    fn head(&self, stream: &StreamId) -> u64 {
        self.model.streams.get(stream).map_or(0, ModelStream::head)
    }

    fn expected(&self, exp: &Exp, stream: &StreamId) -> ExpectedVersion {
        let head = self.head(stream);
        match exp {
            Exp::Any => ExpectedVersion::Any,
            Exp::NoStream => ExpectedVersion::NoStream,
            Exp::StreamExists => ExpectedVersion::StreamExists,
            Exp::Head => ExpectedVersion::Exact(Version(head)),
            Exp::Below(k) => ExpectedVersion::Exact(Version(head.saturating_sub(u64::from(*k)))),
            Exp::Above(k) => ExpectedVersion::Exact(Version(head + u64::from(*k))),
            Exp::Zero => ExpectedVersion::Exact(Version(0)),
            Exp::Inside(pick) => {
                let multi: Vec<(u64, usize)> = self
                    .model
                    .streams
                    .get(stream)
                    .map(|s| s.appends.iter().copied().filter(|(_, n)| *n > 1).collect())
                    .unwrap_or_default();
                let v = if multi.is_empty() {
                    head.saturating_sub(1)
                } else {
                    let pick = usize::from(*pick);
                    let (first, n) = multi[pick % multi.len()];
                    first + (pick / multi.len()) as u64 % (n as u64 - 1)
                };
                ExpectedVersion::Exact(Version(v))
            }
        }
    }

    fn version_at(&self, at: &At, stream: &StreamId) -> u64 {
        let head = self.head(stream);
        match at {
            At::Head => head,
            At::Below(k) => head.saturating_sub(u64::from(*k)),
            At::Above(k) => head + u64::from(*k),
            At::Zero => 0,
            At::Hidden => self.model.streams.get(stream).map_or(0, |s| s.hidden_upto),
        }
    }

    /// Whether every stored event of `batch` lies inside the store's idempotency window, where a
    /// re-send is recognised on every backend.
    fn in_window(&self, stream: &StreamId, batch: &[EventData]) -> bool {
        let Some(s) = self.model.streams.get(stream) else {
            return true;
        };
        let oldest = s.head().saturating_sub(self.limits.idempotency_window);
        batch
            .iter()
            .all(|e| s.version_of(e.id).is_none_or(|v| v > oldest))
    }

    fn remember(&mut self, s: u8, batch: &[EventData]) {
        let sent = &mut self.sent[usize::from(s % STREAMS)];
        if !batch.is_empty() && !sent.iter().any(|b| b == batch) {
            sent.push(batch.to_vec());
        }
    }

    /// Runs one operation on the store and the model and compares what they return.
    async fn step(&mut self, op: &Op) -> Step {
        match op {
            Op::Append { s, exp, events } => self.append_fresh(*s, exp, events).await,
            Op::Bulk { s, exp, count } => self.bulk(*s, exp, *count).await,
            Op::Resend { s, pick, exp } => self.resend(*s, *pick, exp).await,
            Op::ResendAltered {
                s,
                pick,
                alter,
                exp,
            } => self.resend_altered(*s, *pick, alter, exp).await,
            Op::BadAppend { s, bad, exp } => self.bad_append(*s, bad, exp).await,
            Op::Read {
                s,
                backward,
                from,
                max_count,
            } => self.read(*s, *backward, from.as_ref(), *max_count).await,
            Op::Version { s } => self.stream_version(*s).await,
            Op::SaveSnapshot {
                s,
                at,
                large,
                tag,
                bad_type,
            } => self.save_snapshot(*s, at, *large, *tag, *bad_type).await,
            Op::LoadSnapshot { s } => self.load_snapshot(*s).await,
            Op::Delete { s, hard } => self.delete(*s, *hard).await,
            Op::Feed { after, max_batch } => self.feed(*after, *max_batch).await,
            Op::Concurrent { s, writers } => self.race(*s, writers).await,
        }
    }
}
