#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sekiban_core::{BlobStore, Store, StoreError};

pub mod cases;
mod cleanup;
pub mod faults;
pub mod model;
pub mod partitioned;
mod util;

pub use cleanup::Cleanup;
pub use partitioned::{PartitionedFeed, Placement};
pub use util::*;

/// What a case works with: a store, the blob store its snapshots are offloaded to, and a tenant
/// no other case uses. Cases touch only streams, checkpoints and feed items of their tenant, so
/// they can run in parallel on one store; the harness remembers what they write, and
/// [`Harness::clean_up`] removes it.
#[derive(Clone)]
pub struct Harness {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// The blob store the store offloads large snapshots to (the suite reads and corrupts blobs).
    pub blobs: Arc<dyn BlobStore>,
    /// A tenant fresh for this case.
    pub tenant: String,
    /// Faults are injected between the store and its service (a fault profile of the suite):
    /// the cases check what they always check, except the round-trip budgets, since retries
    /// spend round trips no budget can know of ([`Harness::with_faults`]).
    pub under_faults: bool,
    written: cleanup::WrittenLog,
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("store", &self.store)
            .field("tenant", &self.tenant)
            .field("under_faults", &self.under_faults)
            .finish()
    }
}

impl Harness {
    /// A harness over `store` and its `blobs`, with a fresh random tenant.
    pub fn new(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) -> Self {
        let tenant = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        Harness {
            store,
            blobs,
            written: cleanup::new_log(&tenant),
            tenant,
            under_faults: false,
        }
    }

    /// The same harness, saying that faults are injected under the store: the round-trip
    /// budgets are not applied (every other check is).
    pub fn with_faults(mut self) -> Self {
        self.under_faults = true;
        self
    }

    /// Whether the cases hold the store to the round-trip budgets: it declares
    /// `cost_budgets`, and no faults are injected under it.
    pub fn budgets_apply(&self) -> bool {
        self.store.capabilities().cost_budgets && !self.under_faults
    }
}

/// Why a case failed.
#[derive(Debug)]
pub struct CaseFailure {
    /// What was checked and what was found.
    pub message: String,
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CaseFailure {}

impl From<StoreError> for CaseFailure {
    fn from(e: StoreError) -> Self {
        CaseFailure {
            message: format!("unexpected store error: {e} ({e:?})"),
        }
    }
}

/// What a case returns.
pub type CaseResult = Result<(), CaseFailure>;

/// A case as a function pointer.
pub type CaseFn = for<'a> fn(&'a Harness) -> BoxFuture<'a, CaseResult>;

/// Fails the case with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::CaseFailure { message: format!($($msg)+) });
        }
    };
}

/// Fails the case unless `left == right`, showing both.
#[macro_export]
macro_rules! check_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err($crate::CaseFailure {
                message: format!("{}: expected {:?}, got {:?}", format!($($msg)+), r, l),
            });
        }
    }};
}

/// Calls `$callback!` with the name of every case, in one list: the only place cases are listed.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ($callback:ident $(, $arg:expr)?) => {
        $crate::$callback! {
            [$($arg)?]
            append_to_new_stream_starts_at_one,
            append_is_atomic_and_contiguous,
            failed_append_writes_nothing,
            expected_no_stream,
            expected_stream_exists,
            expected_any,
            expected_exact_at_head,
            expected_exact_below_head_fails,
            expected_exact_inside_multi_event_append_fails,
            expected_exact_above_head_fails,
            concurrent_writers_one_winner_per_version,
            concurrent_writers_any_no_gaps,
            resend_under_exact,
            resend_under_no_stream,
            resend_under_stream_exists_and_any,
            resend_after_other_appends,
            resend_at_window_edge,
            resend_outside_window,
            resend_with_other_data_conflicts,
            resend_with_other_metadata_conflicts,
            resend_partial_overlap_conflicts,
            payload_bytes_round_trip,
            metadata_round_trip,
            stream_version_tracks_head,
            read_forward_from_and_max_count,
            read_backward,
            read_missing_stream_is_empty,
            read_pages_lazily_through_10000_events,
            read_pages_by_bytes_through_large_events,
            tenant_isolation_in_reads,
            tenant_isolation_in_feed,
            snapshot_save_and_load_latest,
            snapshot_older_never_replaces_newer,
            snapshot_large_offloaded_and_verified,
            snapshot_corrupt_blob_is_an_error,
            snapshot_replaced_blob_deleted,
            snapshot_bad_input_rejected,
            snapshot_and_tail_load_together,
            feed_from_beginning_delivers_all,
            feed_events_match_reads,
            feed_category_filter,
            feed_from_now_sees_only_new,
            feed_resumes_from_every_checkpoint,
            feed_resumes_from_following_and_stored_checkpoints,
            feed_complete_under_concurrent_writers,
            feed_per_stream_order,
            feed_waiting_reader_wakes,
            feed_idle_round_trip_budget,
            feed_carries_deletion_markers,
            feed_batches_end_at_page_bytes,
            feed_rejects_foreign_checkpoint,
            feed_split_between_workers,
            checkpoint_save_is_conditional,
            checkpoint_delete_forgets_the_name,
            checkpoint_names_checked,
            soft_delete_hides_and_continues_versions,
            soft_delete_repeated_marks_once,
            hard_delete_erases_and_tombstones,
            erased_stream_reads_fail_whatever_the_options,
            invalid_stream_ids_rejected,
            bad_events_rejected_nothing_written,
            limits_enforced_before_write,
            budget_append_round_trips,
            costs_counted_by_kind,
            costs_count_bytes,
            budget_load_with_snapshot,
            budget_read_pages,
            catalog_lists_streams,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __case_table {
    ([] $($name:ident),* $(,)?) => {
        &[$((stringify!($name), {
            fn run(h: &$crate::Harness) -> ::futures::future::BoxFuture<'_, $crate::CaseResult> {
                ::std::boxed::Box::pin($crate::cases::$name(h))
            }
            run as $crate::CaseFn
        })),*]
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __case_tests {
    ([$make:expr] $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let harness: $crate::Harness = $make;
                if let Err(failure) = $crate::run_case(&harness, stringify!($name)).await {
                    panic!("{}", failure);
                }
            }
        )*
    };
}

/// Expands into one `#[tokio::test]` per conformance case, each building its harness with
/// `$make` (an expression that may `.await` and evaluates to a [`Harness`]):
///
/// ```no_run
/// use std::sync::Arc;
/// use sekiban_conformance::Harness;
/// use sekiban_core::{BlobStore, MemoryStore, ObjectBlobStore, memory::default_memory_limits};
///
/// async fn my_harness() -> Harness {
///     let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
///     let store = MemoryStore::with_config(default_memory_limits(), blobs.clone());
///     Harness::new(Arc::new(store), blobs)
/// }
///
/// sekiban_conformance::conformance_tests!(my_harness().await);
/// # fn main() {}
/// ```
///
/// The calling crate needs `tokio` (with `macros` and `rt-multi-thread`) and `futures` as
/// dev-dependencies.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::__with_cases!(__case_tests, $make);
    };
}

/// Every case, by name, in suite order.
pub const CASES: &[(&str, CaseFn)] = __with_cases!(__case_table);

/// How long one case may take before it is failed (a hung store must not hang the suite).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs one case by name with a timeout, turning a panic inside it into a failure.
pub async fn run_case(h: &Harness, name: &str) -> CaseResult {
    let Some((_, case)) = CASES.iter().find(|(n, _)| *n == name) else {
        return Err(CaseFailure {
            message: format!("no conformance case is named {name:?}"),
        });
    };
    let (h, case) = (h.clone(), *case);
    let task = tokio::spawn(async move { tokio::time::timeout(CASE_TIMEOUT, case(&h)).await });
    match task.await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(CaseFailure {
            message: format!("timed out after {CASE_TIMEOUT:?}"),
        }),
        Err(join) => {
            let message = match join.try_into_panic() {
                Ok(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into()),
                Err(e) => format!("cancelled: {e}"),
            };
            Err(CaseFailure {
                message: format!("panicked: {message}"),
            })
        }
    }
}

/// The outcome of one case.
#[derive(Debug)]
pub struct CaseReport {
    /// Case name.
    pub name: &'static str,
    /// `None` when it passed.
    pub failure: Option<String>,
    /// How long it ran.
    pub duration: Duration,
}

/// The outcome of a suite run.
#[derive(Debug, Default)]
pub struct Report {
    /// One entry per case run, in suite order.
    pub cases: Vec<CaseReport>,
}

impl Report {
    /// Cases that failed, by name.
    pub fn failed(&self) -> Vec<&'static str> {
        self.cases
            .iter()
            .filter(|c| c.failure.is_some())
            .map(|c| c.name)
            .collect()
    }
    /// Whether every case passed.
    pub fn all_passed(&self) -> bool {
        self.cases.iter().all(|c| c.failure.is_none())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.cases {
            let status = if c.failure.is_some() { "FAIL" } else { "pass" };
            writeln!(
                f,
                "{status}  {:>8.3}s  {}",
                c.duration.as_secs_f64(),
                c.name
            )?;
            if let Some(m) = &c.failure {
                writeln!(f, "      {m}")?;
            }
        }
        let failed = self.failed().len();
        write!(f, "{} passed, {failed} failed", self.cases.len() - failed)
    }
}

/// Runs the cases whose names `select` accepts, one after another, each on a fresh harness from
/// `make` (so cost counters are not shared between cases), and reports every outcome.
pub async fn run_selected<F, Fut>(make: F, select: impl Fn(&str) -> bool) -> Report
where
    F: Fn() -> Fut,
    Fut: Future<Output = Harness>,
{
    let mut report = Report::default();
    for (name, _) in CASES.iter().filter(|(n, _)| select(n)) {
        let h = make().await;
        let start = Instant::now();
        let result = run_case(&h, name).await;
        report.cases.push(CaseReport {
            name,
            failure: result.err().map(|f| f.message),
            duration: start.elapsed(),
        });
    }
    report
}

/// Runs the whole suite; see [`run_selected`].
pub async fn run_all<F, Fut>(make: F) -> Report
where
    F: Fn() -> Fut,
    Fut: Future<Output = Harness>,
{
    run_selected(make, |_| true).await
}
