//! Reads of a run: a stream's events, forward or backward, and its `stream_version`.

use sekiban_core::{ReadOptions, Version};

use crate::model::ops::At;
use crate::model::rules::Fault;
use crate::read_with;

use super::Run;
use super::check::{Step, compare, compare_events, outcome};

impl Run<'_> {
    /// Reads a stream forward or backward, from a version relative to the stream and up to a
    /// number of events, and compares the events with the model's.
    pub(super) async fn read(
        &mut self,
        s: u8,
        backward: bool,
        from: Option<&At>,
        max_count: Option<u8>,
    ) -> Step {
        let stream = self.stream(s);
        let from = from.map(|a| self.version_at(a, &stream));
        let max_count = max_count.map(u64::from);
        let mut opts = if backward {
            ReadOptions::backward()
        } else {
            ReadOptions::forward()
        };
        if let Some(f) = from {
            opts = opts.from(Version(f));
        }
        if let Some(m) = max_count {
            opts = opts.max_count(m);
        }
        let what = format!(
            "read {} {} from {from:?} max {max_count:?}",
            Self::name(s),
            if backward { "backward" } else { "forward" }
        );
        let want = self.model.read(&stream, backward, from, max_count);
        let (got, read) = match read_with(&*self.h.store, &stream, opts).await {
            Ok(events) => (
                Ok(events
                    .iter()
                    .map(|e| (e.stream.clone(), e.version.0, e.to_event_data()))
                    .collect::<Vec<_>>()),
                events,
            ),
            Err(e) => (Err(Fault::of(e, &[])), Vec::new()),
        };
        let versions = format!(
            "{:?}",
            got.as_ref()
                .map(|v| v.iter().map(|e| e.1).collect::<Vec<_>>())
        );
        let result = match &got {
            Ok(v) if v.is_empty() => "Ok, empty",
            other => outcome(other),
        };
        self.count(format!("read → {result}"));
        match (&got, &want) {
            (Ok(g), Ok(w)) => compare_events(&what, g, w, |e| e.1)?,
            _ => compare(&what, got, want)?,
        }
        for e in &read {
            self.same_event(&what, e)?;
        }
        self.trace.push(format!("{what} → versions {versions}"));
        Ok(())
    }

    /// Compares a stream's `stream_version` with the model's head.
    pub(super) async fn stream_version(&mut self, s: u8) -> Step {
        let stream = self.stream(s);
        let what = format!("stream_version {}", Self::name(s));
        let want = self.model.version(&stream);
        let got = self
            .h
            .store
            .stream_version(&stream)
            .await
            .map(|v| v.0)
            .map_err(|e| Fault::of(e, &[]));
        compare(&what, got.clone(), want)?;
        self.count(format!("stream_version → {}", outcome(&got)));
        self.trace.push(format!("{what} → {got:?}"));
        Ok(())
    }
}
