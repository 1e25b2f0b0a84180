//! Concurrent rounds in a run: 2–8 appenders at once on one stream, checked for
//! linearizability.

use std::sync::Arc;

use bytes::Bytes;
use sekiban_core::{EventData, ExpectedVersion, ReadOptions, StoreError, Version};
use tokio::sync::Barrier;

use crate::model::ops::Exp;
use crate::model::rules::{Fault, accepts};
use crate::read_with;

use super::Run;
use super::check::{Step, compare, compare_events};

impl Run<'_> {
    /// A round of concurrent appenders on one stream, checked for linearizability.
    pub(super) async fn race(&mut self, s: u8, writers: &[(Exp, u8)]) -> Step {
        let stream = self.stream(s);
        let start = self.head(&stream);
        let plans: Vec<(ExpectedVersion, Vec<EventData>)> = writers
            .iter()
            .enumerate()
            .map(|(w, (exp, n))| {
                let batch = (0..*n)
                    .map(|i| {
                        EventData::new("Raced", Bytes::from(format!("{{\"w\":{w},\"i\":{i}}}")))
                    })
                    .collect();
                (self.expected(exp, &stream), batch)
            })
            .collect();
        for (_, batch) in &plans {
            self.remember(s, batch);
        }
        let what = format!(
            "race of {} appenders on {} at head {start}",
            plans.len(),
            Self::name(s)
        );
        let barrier = Arc::new(Barrier::new(plans.len()));
        let mut tasks = Vec::new();
        for (expected, batch) in &plans {
            let (store, stream, barrier) = (self.h.store.clone(), stream.clone(), barrier.clone());
            let (expected, batch) = (*expected, batch.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.append(&stream, expected, batch).await
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(
                t.await
                    .map_err(|e| format!("{what}: an appender task failed: {e}"))?,
            );
        }
        let outcome: Vec<String> = plans
            .iter()
            .zip(&results)
            .map(|((exp, batch), r)| match r {
                Ok(r) => format!("{exp:?}+{} → {}..={}", batch.len(), r.first, r.last),
                Err(e) => format!("{exp:?}+{} → {:?}", batch.len(), brief(e)),
            })
            .collect();
        let what = format!("{what}: {}", outcome.join(", "));

        if let Err(deleted) = self.model.live(&stream) {
            for (w, r) in results.into_iter().enumerate() {
                let got = r.map_err(|e| Fault::of(e, &plans[w].1));
                compare(&format!("{what}: appender {w}"), got, Err(deleted.clone()))?;
            }
            self.count("race on an erased stream");
            self.trace.push(what);
            return Ok(());
        }

        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for (w, r) in results.into_iter().enumerate() {
            let (expected, batch) = &plans[w];
            match r {
                Ok(r) => {
                    if r.deduplicated
                        || r.last < r.first
                        || r.last.0 - r.first.0 + 1 != batch.len() as u64
                    {
                        return Err(format!(
                            "{what}: appender {w} of {} fresh events got {r:?}",
                            batch.len()
                        ));
                    }
                    winners.push((r.first.0, r.last.0, w));
                }
                Err(StoreError::WrongExpectedVersion {
                    stream: s2,
                    expected: e2,
                    actual,
                }) if s2 == stream && e2 == *expected => losers.push((w, actual.0)),
                Err(e) => {
                    return Err(format!(
                        "{what}: appender {w} failed with {e:?}; only WrongExpectedVersion naming its stream and expectation may refuse it"
                    ));
                }
            }
        }
        winners.sort_unstable();
        let mut head = start;
        let mut heads = vec![start];
        for &(first, last, w) in &winners {
            if first != head + 1 {
                return Err(format!(
                    "{what}: the winners' versions do not tile {}..: appender {w} got {first}..={last} after head {head}",
                    start + 1
                ));
            }
            if !accepts(plans[w].0, head) {
                return Err(format!(
                    "{what}: appender {w} won at head {head}, which its {:?} refuses",
                    plans[w].0
                ));
            }
            head = last;
            heads.push(last);
        }
        for &(w, actual) in &losers {
            if !heads.contains(&actual) {
                return Err(format!(
                    "{what}: appender {w} was refused at version {actual}, which the stream never had during the round (heads {heads:?})"
                ));
            }
            if accepts(plans[w].0, actual) {
                return Err(format!(
                    "{what}: appender {w} was refused at version {actual}, which its {:?} accepts",
                    plans[w].0
                ));
            }
        }
        let version = self
            .h
            .store
            .stream_version(&stream)
            .await
            .map_err(|e| format!("{what}: stream_version afterwards failed: {e:?}"))?;
        compare(
            &format!("{what}: stream_version afterwards"),
            version.0,
            head,
        )?;
        let stored = read_with(
            &*self.h.store,
            &stream,
            ReadOptions::forward().from(Version(start + 1)),
        )
        .await
        .map_err(|e| format!("{what}: reading the stream back failed: {e:?}"))?;
        let got: Vec<(u64, EventData)> = stored
            .iter()
            .map(|e| (e.version.0, e.to_event_data()))
            .collect();
        let want: Vec<(u64, EventData)> = winners
            .iter()
            .flat_map(|&(first, _, w)| {
                plans[w]
                    .1
                    .iter()
                    .enumerate()
                    .map(move |(i, e)| (first + i as u64, e.clone()))
            })
            .collect();
        compare_events(&format!("{what}: the stream read back"), &got, &want, |e| {
            e.0
        })?;
        for e in &stored {
            self.same_event(&format!("{what}: the stream read back"), e)?;
        }
        for &(first, last, w) in &winners {
            let (_, batch) = &plans[w];
            let applied = self
                .model
                .append(&self.limits, &stream, ExpectedVersion::Any, batch);
            compare(
                &format!("{what}: the model taking appender {w}"),
                applied.map(|r| (r.first.0, r.last.0)),
                Ok((first, last)),
            )?;
        }
        self.count("race");
        *self.outcomes.entry("race winners".into()).or_default() += winners.len() as u64;
        *self.outcomes.entry("race losers".into()).or_default() += losers.len() as u64;
        self.trace.push(what);
        Ok(())
    }
}

/// A store error in a few words, for the trace of a concurrent round.
fn brief(e: &StoreError) -> String {
    {
        match e {
            StoreError::WrongExpectedVersion { actual, .. } => {
                format!("WrongExpectedVersion(actual {actual})")
            }
            other => format!("{other:?}"),
        }
    }
}
