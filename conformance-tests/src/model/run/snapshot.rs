//! Snapshots in a run: saves and loads, with the stream's blobs counted after each load.

use bytes::Bytes;
use sekiban_core::snapshot::stream_blob_prefix;
use sekiban_core::{Snapshot, Version};

use crate::model::ops::At;
use crate::model::rules::Fault;

use super::Run;
use super::check::{Step, compare, outcome};

impl Run<'_> {
    /// Saves a snapshot at a version relative to the stream, inline or over the inline limit,
    /// perhaps with an empty state type, and compares the result with the model's.
    pub(super) async fn save_snapshot(
        &mut self,
        s: u8,
        at: &At,
        large: bool,
        tag: u8,
        bad_type: bool,
    ) -> Step {
        let stream = self.stream(s);
        let version = self.version_at(at, &stream);
        let max_inline = self.limits.max_inline_snapshot_bytes;
        let large = large && max_inline < 16 << 20;
        let state = if large {
            Bytes::from(vec![b'a' + tag % 26; max_inline + 1 + usize::from(tag)])
        } else {
            Bytes::from(format!("state {tag} at {version}"))
        };
        let snapshot = Snapshot {
            stream: stream.clone(),
            version: Version(version),
            state_type: if bad_type {
                String::new()
            } else {
                "ModelState".into()
            },
            schema_version: 1 + u32::from(tag % 3),
            state,
        };
        let what = format!(
            "save snapshot of {} at {version} ({} bytes{})",
            Self::name(s),
            snapshot.state.len(),
            if bad_type { ", empty state type" } else { "" }
        );
        let want = self.model.save_snapshot(&snapshot);
        let got = self
            .h
            .store
            .save_snapshot(snapshot)
            .await
            .map_err(|e| Fault::of(e, &[]));
        compare(&what, got.clone(), want)?;
        let size = if large { "large" } else { "inline" };
        self.count(format!("save snapshot ({size}) → {}", outcome(&got)));
        self.trace.push(format!("{what} → {got:?}"));
        Ok(())
    }

    /// Loads a stream's snapshot, compares it with the model's, and counts the stream's blobs.
    pub(super) async fn load_snapshot(&mut self, s: u8) -> Step {
        let stream = self.stream(s);
        let what = format!("load snapshot of {}", Self::name(s));
        let want = self.model.load_snapshot(&stream);
        let got = self
            .h
            .store
            .load_snapshot(&stream)
            .await
            .map_err(|e| Fault::of(e, &[]));
        let shown = format!(
            "{:?}",
            got.as_ref()
                .map(|s| s.as_ref().map(|s| (s.version.0, s.state.len())))
        );
        let result = match &got {
            Ok(None) => "Ok, none",
            other => outcome(other),
        };
        self.count(format!("load snapshot → {result}"));
        if got != want {
            return Err(format!(
                "{what}\n      store returned {}\n      model expects  {}",
                show_snapshot(&got),
                show_snapshot(&want)
            ));
        }
        let blobs = self
            .h
            .blobs
            .list(&stream_blob_prefix(&stream))
            .await
            .map_err(|e| format!("listing the blobs of {stream}: {e:?}"))?;
        let large = want
            .ok()
            .flatten()
            .is_some_and(|s| s.state.len() > self.limits.max_inline_snapshot_bytes);
        compare(
            &format!(
                "snapshot blobs of {} (one for an offloaded latest snapshot, none else)",
                Self::name(s)
            ),
            blobs.len(),
            usize::from(large),
        )?;
        self.trace.push(format!(
            "{what} → (version, bytes) {shown}, {} blobs",
            blobs.len()
        ));
        Ok(())
    }
}

/// A loaded snapshot for a message: a long state is cut to its length and first bytes.
fn show_snapshot(r: &Result<Option<Snapshot>, Fault>) -> String {
    match r {
        Ok(Some(s)) if s.state.len() > 64 => format!(
            "Ok(Some(Snapshot {{ stream: {}, version: {}, state_type: {:?}, schema_version: {}, state: {} bytes starting {:?} }}))",
            s.stream,
            s.version,
            s.state_type,
            s.schema_version,
            s.state.len(),
            s.state.slice(..16)
        ),
        other => format!("{other:?}"),
    }
}
