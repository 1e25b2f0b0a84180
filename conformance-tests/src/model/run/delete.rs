//! Deletes in a run: soft and hard.

use sekiban_core::DeleteMode;

use crate::model::rules::Fault;

use super::Run;
use super::check::{Step, compare};

impl Run<'_> {
    /// Deletes a stream, soft or hard, in the model and in the store.
    pub(super) async fn delete(&mut self, s: u8, hard: bool) -> Step {
        let stream = self.stream(s);
        let mode = if hard {
            DeleteMode::Hard
        } else {
            DeleteMode::Soft
        };
        let what = format!("delete {} {mode:?}", Self::name(s));
        self.model.delete(&stream, mode);
        let got = self
            .h
            .store
            .delete_stream(&stream, mode)
            .await
            .map_err(|e| Fault::of(e, &[]));
        compare(&what, got, Ok(()))?;
        self.count(format!("delete {mode:?}"));
        self.trace.push(format!("{what} → Ok"));
        Ok(())
    }
}
