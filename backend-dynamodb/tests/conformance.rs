//! The conformance suite on DynamoDB Local: the cases the store passes today (`COVERED`); the
//! others wait for the change feed (`NOT_YET`).

use std::sync::Arc;

use sekiban_conformance::{CASES, Harness, run_selected};
use sekiban_core::{BlobStore, ObjectBlobStore};

mod common;

async fn harness() -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let t = common::table("sekiban-test-conformance", Some(blobs.clone())).await;
    Harness::new(Arc::new(t), blobs)
}

/// The cases the DynamoDB store passes today; every other case is in [`NOT_YET`].
const COVERED: &[&str] = &[
    "append_to_new_stream_starts_at_one",
    "append_is_atomic_and_contiguous",
    "failed_append_writes_nothing",
    "expected_no_stream",
    "expected_stream_exists",
    "expected_any",
    "expected_exact_at_head",
    "expected_exact_below_head_fails",
    "expected_exact_inside_multi_event_append_fails",
    "expected_exact_above_head_fails",
    "concurrent_writers_one_winner_per_version",
    "concurrent_writers_any_no_gaps",
    "resend_under_exact",
    "resend_under_no_stream",
    "resend_under_stream_exists_and_any",
    "resend_after_other_appends",
    "resend_at_window_edge",
    "resend_outside_window",
    "resend_with_other_data_conflicts",
    "resend_with_other_metadata_conflicts",
    "resend_partial_overlap_conflicts",
    "payload_bytes_round_trip",
    "stream_version_tracks_head",
    "read_forward_from_and_max_count",
    "read_backward",
    "read_missing_stream_is_empty",
    "read_pages_lazily_through_10000_events",
    "read_pages_by_bytes_through_large_events",
    "tenant_isolation_in_reads",
    "snapshot_save_and_load_latest",
    "snapshot_older_never_replaces_newer",
    "snapshot_large_offloaded_and_verified",
    "snapshot_corrupt_blob_is_an_error",
    "snapshot_replaced_blob_deleted",
    "snapshot_bad_input_rejected",
    "soft_delete_hides_and_continues_versions",
    "hard_delete_erases_and_tombstones",
    "erased_stream_reads_fail_whatever_the_options",
    "invalid_stream_ids_rejected",
    "bad_events_rejected_nothing_written",
    "limits_enforced_before_write",
    "budget_append_round_trips",
    "budget_load_with_snapshot",
    "budget_read_pages",
    "catalog_lists_streams",
];

/// Cases the DynamoDB store does not pass yet, by what is missing.
const NOT_YET: &[(&str, &[&str])] = &[(
    "the change feed",
    &[
        "metadata_round_trip",
        "tenant_isolation_in_feed",
        "feed_from_beginning_delivers_all",
        "feed_events_match_reads",
        "feed_category_filter",
        "feed_from_now_sees_only_new",
        "feed_resumes_from_every_checkpoint",
        "feed_resumes_from_following_and_stored_checkpoints",
        "feed_complete_under_concurrent_writers",
        "feed_per_stream_order",
        "feed_waiting_reader_wakes",
        "feed_idle_round_trip_budget",
        "feed_carries_deletion_markers",
        "feed_batches_end_at_page_bytes",
        "feed_rejects_foreign_checkpoint",
        "checkpoint_save_is_conditional",
        "checkpoint_delete_forgets_the_name",
        "checkpoint_names_checked",
        "costs_counted_by_kind",
        "costs_count_bytes",
    ],
)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_covered_cases_pass() {
    let report = run_selected(harness, |n| COVERED.contains(&n)).await;
    println!("{report}");
    assert_eq!(report.cases.len(), COVERED.len(), "{report}");
    assert!(report.all_passed(), "{report}");
}

/// Every case of the suite is covered or named as not yet, so a new case is not skipped unseen.
#[test]
fn every_case_is_accounted_for() {
    let not_yet: Vec<&str> = NOT_YET
        .iter()
        .flat_map(|(_, c)| c.iter().copied())
        .collect();
    for (name, _) in CASES {
        let listed = usize::from(COVERED.contains(name)) + usize::from(not_yet.contains(name));
        assert_eq!(
            listed, 1,
            "{name} must be in exactly one of COVERED and NOT_YET"
        );
    }
    assert_eq!(COVERED.len() + not_yet.len(), CASES.len());
}
