//! Appends in a run: fresh batches, bulk appends, re-sends as they were or changed, and refused
//! input, each compared with the model.

use bytes::Bytes;
use sekiban_core::EventData;

use crate::model::STREAMS;
use crate::model::events::{altered, fresh};
use crate::model::ops::{Alter, Bad, Ev, Exp};
use crate::model::rules::{Fault, Model};

use super::Run;
use super::check::{Step, compare, outcome};

impl Run<'_> {
    /// Appends fresh events built from their generated descriptions.
    pub(super) async fn append_fresh(&mut self, s: u8, exp: &Exp, events: &[Ev]) -> Step {
        let batch: Vec<EventData> = events.iter().map(fresh).collect();
        self.append(s, exp, batch, "append", "append").await
    }

    /// Appends many small events (up to the store's `max_append_events`).
    pub(super) async fn bulk(&mut self, s: u8, exp: &Exp, count: u8) -> Step {
        let count = usize::from(count).min(self.limits.max_append_events);
        let batch = (0..count)
            .map(|i| EventData::new("Bulk", Bytes::from(format!("{{\"i\":{i}}}"))))
            .collect();
        self.append(s, exp, batch, "bulk append", "bulk append")
            .await
    }

    /// Re-sends an earlier batch of the stream as it was.
    pub(super) async fn resend(&mut self, s: u8, pick: u16, exp: &Exp) -> Step {
        let Some(batch) = self.pick_sent(s, pick) else {
            return self.first_append(s, exp).await;
        };
        self.append(s, exp, batch, "re-send", "re-send").await
    }

    /// Re-sends an earlier batch of the stream changed as `alter` says.
    pub(super) async fn resend_altered(
        &mut self,
        s: u8,
        pick: u16,
        alter: &Alter,
        exp: &Exp,
    ) -> Step {
        let Some(batch) = self.pick_sent(s, pick) else {
            return self.first_append(s, exp).await;
        };
        let next = self.next_sent(s, pick);
        let changed = altered(&batch, next.as_deref(), alter);
        self.append(
            s,
            exp,
            changed,
            "changed re-send",
            &format!("re-send with {alter:?}"),
        )
        .await
    }

    /// Sends input the store must refuse before writing (skipped when too large to build).
    pub(super) async fn bad_append(&mut self, s: u8, bad: &Bad, exp: &Exp) -> Step {
        let Some(batch) = self.bad_batch(bad) else {
            self.count("refused input skipped: too large to build");
            self.trace.push(format!(
                "{bad:?}: too large for this store's limits to build, skipped"
            ));
            return Ok(());
        };
        self.append(s, exp, batch, "refused input", &format!("{bad:?}"))
            .await
    }

    /// What a re-send does on a stream nothing was sent to yet: append one fresh event.
    async fn first_append(&mut self, s: u8, exp: &Exp) -> Step {
        let batch = vec![EventData::new("First", Bytes::from_static(b"{}"))];
        let kind = "append (a re-send with nothing sent yet)";
        self.append(s, exp, batch, "append", kind).await
    }

    fn pick_sent(&self, s: u8, pick: u16) -> Option<Vec<EventData>> {
        let stream = self.stream(s);
        let usable: Vec<&Vec<EventData>> = self.sent[usize::from(s % STREAMS)]
            .iter()
            .filter(|b| self.in_window(&stream, b))
            .collect();
        if usable.is_empty() {
            return None;
        }
        Some(usable[usize::from(pick) % usable.len()].clone())
    }

    fn next_sent(&self, s: u8, pick: u16) -> Option<Vec<EventData>> {
        let stream = self.stream(s);
        let usable: Vec<&Vec<EventData>> = self.sent[usize::from(s % STREAMS)]
            .iter()
            .filter(|b| self.in_window(&stream, b))
            .collect();
        (usable.len() > 1).then(|| usable[(usize::from(pick) + 1) % usable.len()].clone())
    }

    fn bad_batch(&self, bad: &Bad) -> Option<Vec<EventData>> {
        const CAP: usize = 64 << 20;
        let l = &self.limits;
        let small = |i: usize| EventData::new("Small", Bytes::from(format!("{{\"i\":{i}}}")));
        let sized = |size: usize| EventData::new("Big", Bytes::from(vec![b'x'; size - 3]));
        let too_many = || {
            (l.max_append_events < 100_000).then(|| (0..=l.max_append_events).map(small).collect())
        };
        match bad {
            Bad::Empty => Some(Vec::new()),
            Bad::EventTooLarge { count, index } => {
                if l.max_event_bytes >= CAP {
                    return None;
                }
                let count = usize::from(*count).max(1);
                let index = usize::from(*index) % count;
                Some(
                    (0..count)
                        .map(|i| {
                            if i == index {
                                sized(l.max_event_bytes + 1)
                            } else {
                                small(i)
                            }
                        })
                        .collect(),
                )
            }
            Bad::TooManyEvents => too_many(),
            Bad::TooManyBytes => {
                let per = l.max_event_bytes.min(l.max_append_bytes).max(4);
                let n = l.max_append_bytes / per + 1;
                if n > l.max_append_events || n.saturating_mul(per) > CAP {
                    return too_many();
                }
                Some((0..n).map(|_| sized(per)).collect())
            }
            Bad::DuplicateId => {
                let first = small(0);
                let twin = small(1).with_id(first.id);
                Some(vec![first, small(2), twin])
            }
            Bad::EmptyType => Some(vec![small(0), EventData::new("", "{}")]),
        }
    }

    async fn append(
        &mut self,
        s: u8,
        exp: &Exp,
        batch: Vec<EventData>,
        label: &str,
        kind: &str,
    ) -> Step {
        let stream = self.stream(s);
        let expected = self.expected(exp, &stream);
        let what = format!(
            "{kind} on {} under {expected:?}: {} events {}",
            Self::name(s),
            batch.len(),
            if batch.len() <= 8 {
                ids(&batch)
            } else {
                String::new()
            }
        );
        let want = self.model.append(&self.limits, &stream, expected, &batch);
        if Model::check_input(&self.limits, &stream, &batch).is_ok() {
            self.remember(s, &batch);
        }
        let got = self
            .h
            .store
            .append(&stream, expected, batch.clone())
            .await
            .map_err(|e| Fault::of(e, &batch));
        compare(&what, got.clone(), want)?;
        let result = match &got {
            Ok(r) if r.deduplicated => "Ok, deduplicated",
            other => outcome(other),
        };
        self.count(format!("{label} → {result}"));
        self.trace.push(format!("{what} → {got:?}"));
        Ok(())
    }
}

/// The first 8 hex digits of each event id of a batch, for messages.
fn ids(batch: &[EventData]) -> String {
    let short: Vec<String> = batch
        .iter()
        .map(|e| e.id.0.simple().to_string()[..8].to_string())
        .collect();
    format!("[{}]", short.join(" "))
}
