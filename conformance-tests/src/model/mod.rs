//! A model-based property test: random sequences of operations run against a store and against a
//! plain model (a few `Vec`s and maps per stream, not the memory store), and every result is
//! compared.
//!
//! A backend runs it with one plain `#[test]` (not `#[tokio::test]`: the runner builds its own
//! runtime) and a function that builds a fresh [`Harness`] for each generated case:
//!
//! ```no_run
//! use std::sync::Arc;
//! use sekiban_conformance::{Harness, model::run_model_test};
//! use sekiban_core::{BlobStore, MemoryStore, ObjectBlobStore, memory::default_memory_limits};
//!
//! #[test]
//! fn model_matches_store() {
//!     run_model_test("model_matches_store", || async {
//!         let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
//!         let store = MemoryStore::with_config(default_memory_limits(), blobs.clone());
//!         Harness::new(Arc::new(store), blobs)
//!     });
//! }
//! # fn main() {}
//! ```
//!
//! # What a case does
//!
//! A case is a sequence of up to [`MAX_OPS`] operations on [`STREAMS`] streams of the harness's
//! tenant (`model/s0` … `model/s3`):
//!
//! * appends of 1–5 fresh events under every [`ExpectedVersion`]: `Any`, `NoStream`,
//!   `StreamExists`, and `Exact(v)` with `v` at the head, below it, above it, at 0, or inside an
//!   earlier multi-event append;
//! * re-sends of an earlier batch of the same stream (the same [`EventData`], ids included) under a
//!   random expected version, and re-sends with one field changed (data, type, schema, metadata),
//!   with events dropped, added, swapped, or two batches joined;
//! * refused input: an empty batch, an event over `Limits::max_event_bytes`, a batch over
//!   `max_append_events` or `max_append_bytes`, an id twice, an empty event type;
//! * reads forward and backward with `from` and `max_count`, and `stream_version`;
//! * snapshot saves (inline and over `max_inline_snapshot_bytes`, at valid and invalid versions,
//!   with an empty state type) and loads, with the stream's blobs counted after each load;
//! * soft and hard deletes;
//! * catch-up reads of the tenant's change feed from the beginning or after a checkpoint an
//!   earlier read handed out, in batches of a random size;
//! * rounds of 2–8 concurrent appenders on one stream (see below).
//!
//! After the last operation every stream is read whole and the feed from the beginning.
//!
//! # The model
//!
//! Per stream: its events (version = index + 1), the appends they came from, the version up to
//! which a soft delete hid them, an erased flag and the latest snapshot; for the tenant: the log of
//! committed events and deletion markers. The rules it keeps are those of the store traits and
//! `DESIGN.md`:
//!
//! * input is checked first (empty batch, empty type, an id twice → `InvalidInput`; event size →
//!   `EventTooLarge`; count or bytes → `BatchTooLarge`), before the stream is looked at;
//! * an erased stream refuses appends (re-sends included), reads, `stream_version`, snapshot
//!   saves and loads with `StreamDeleted { version: last version }`;
//! * when any id of a batch is stored in the stream: a batch equal to one earlier append (same ids
//!   and content, in order, the whole append) returns that append's versions with
//!   `deduplicated: true` whatever the expected version — also when a soft delete hid it; anything
//!   else is an `IdempotencyConflict` naming an id of the batch. This comes before the
//!   expected-version check, which gives `WrongExpectedVersion { expected, actual: head }`;
//! * a soft delete hides the events from reads and the feed, keeps the version (a later append
//!   continues it), drops the snapshot and puts a marker on the feed; a hard delete erases and puts
//!   a marker; deleting a missing or erased stream does nothing;
//! * a snapshot save at version 0, with an empty state type, on a missing stream, above the head
//!   or at or below the soft-deleted version is `InvalidInput`; an older snapshot never replaces
//!   a newer one (the save is silently `Ok`); one at the same version replaces it; a stream has one
//!   blob when its snapshot is over the inline limit and none otherwise;
//! * the feed, filtered to the tenant, carries the visible events and every deletion marker in
//!   commit order (per stream when the store declares more than one feed partition), and a read
//!   after a checkpoint carries exactly what that checkpoint had not yet covered.
//!
//! Error variants and their data are compared (`stream`, `expected`, `actual`, `version`, sizes
//! and limits), never messages. Re-sends are only generated for batches whose stored events lie
//! inside the store's idempotency window, where the rules above hold on every backend.
//!
//! # Concurrent rounds
//!
//! A round starts 2–8 appenders at once on one stream, each with 1–3 fresh events and a random
//! expected version around the head. The round is linearizable when the winners' version ranges
//! tile `head + 1 ..= new head` without gap or overlap, each winner's expected version accepts the
//! head just below its range, each loser's `WrongExpectedVersion` names a head that existed during
//! the round (the initial one or a winner's last version) and that its expectation refuses, and
//! the stream read back holds exactly the winners' events in that order.
//!
//! # Running it
//!
//! By default ([`ModelTestPlan::standard`]): the shrunk sequences of earlier failures; then
//! [`DEFAULT_CASES`] cases from [`DEFAULT_SEED`] and each of [`REGRESSION_SEEDS`]; then a random
//! exploration of at most [`EXPLORE_CASES`] cases within [`EXPLORE_TIME`] from a fresh seed, printed
//! before it starts. `SEKIBAN_PROPTEST_EXPLORE` (cases, 0 skips it) and `SEKIBAN_PROPTEST_SECONDS`
//! change the exploration. `SEKIBAN_PROPTEST_SEED` (decimal, `0x…` hex, or `random`) or
//! `SEKIBAN_PROPTEST_CASES` run only the cases they ask for (within `SEKIBAN_PROPTEST_SECONDS` when
//! set), e.g. `SEKIBAN_PROPTEST_CASES=5000 SEKIBAN_PROPTEST_SEED=random cargo nextest run -p …
//! --test …`. A failure is shrunk to a minimal sequence, printed with the store's and the model's
//! results for every step, the number of the failing case and the command that runs the cases up
//! to it again. No failure files are written. The sequence replays exactly from the seed; the
//! interleaving of a concurrent round does not.
//!
//! Every event a read, the feed or a round's read-back returns is compared with the model (all but
//! the recorded time) and, in full, with every earlier sighting of it (recorded time included). A
//! catch-up read of the feed that ends early is read again for a few poll intervals, as a store
//! may make a commit visible only once older transactions have finished.
//!
//! [`Harness`]: crate::Harness
//! [`ExpectedVersion`]: sekiban_core::ExpectedVersion
//! [`EventData`]: sekiban_core::EventData

use std::time::Duration;

mod config;
mod events;
mod ops;
mod regressions;
mod rules;
mod run;
mod runner;

pub use config::{ModelTestConfig, ModelTestPlan};
pub use runner::{run_model_plan, run_model_test, run_model_test_with};

/// Cases of the fixed run, and of a run `SEKIBAN_PROPTEST_SEED` asks for without
/// `SEKIBAN_PROPTEST_CASES`.
pub const DEFAULT_CASES: u32 = 64;
/// The seed of the fixed run, and of a run `SEKIBAN_PROPTEST_CASES` asks for without a seed.
pub const DEFAULT_SEED: u64 = 0x5e6b_1ba2_0000_0001;
/// Seeds that once generated a failing case, each with the number of cases that reaches it; the
/// default plan runs them after the fixed run. A seed stands for what the generator made of it
/// when it was added (a change to the generator makes other sequences of it), so the shrunk
/// failing sequence is kept too, as an explicit regression that needs no generator.
pub const REGRESSION_SEEDS: &[(u64, u32)] = &[
    // Issue 10: an erased stream read with `max_count` 0 or backward from version 0 returned no
    // events instead of `StreamDeleted` (its 10th case).
    (0x9c30_1f68_e144_3737, 10),
];
/// Most cases of the default plan's random exploration.
pub const EXPLORE_CASES: u32 = 3000;
/// Wall-clock budget of the default plan's random exploration: no case starts after it.
pub const EXPLORE_TIME: Duration = Duration::from_secs(20);
/// The variable that sets the number of cases (with or without a seed: then only that run).
pub const CASES_ENV: &str = "SEKIBAN_PROPTEST_CASES";
/// The variable that sets the seed: decimal, `0x`-prefixed hex, or `random` (then only that run).
pub const SEED_ENV: &str = "SEKIBAN_PROPTEST_SEED";
/// The variable that sets the most cases of the default plan's random exploration; 0 skips it.
pub const EXPLORE_ENV: &str = "SEKIBAN_PROPTEST_EXPLORE";
/// The variable that sets a wall-clock budget in seconds: of the exploration in the default plan,
/// of the one run `SEKIBAN_PROPTEST_SEED` or `SEKIBAN_PROPTEST_CASES` ask for.
pub const SECONDS_ENV: &str = "SEKIBAN_PROPTEST_SECONDS";
/// Most operations in one generated sequence.
pub const MAX_OPS: usize = 40;
/// Streams a case works on.
pub const STREAMS: u8 = 4;
/// How long one operation may take before the case fails.
pub const OP_TIMEOUT: Duration = Duration::from_secs(120);
