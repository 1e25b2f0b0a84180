//! The conformance suite against memory stores that recognise re-sends only within a finite
//! idempotency window: the whole suite with a window of 10 events; the window cases with a
//! window of none (every re-send is then an ordinary append, so the cases that re-send a recent
//! append do not apply).

use std::sync::Arc;

use sekiban_conformance::{Harness, run_selected};
use sekiban_core::{
    BlobStore, Limits, MemoryStore, ObjectBlobStore, memory::default_memory_limits,
};

fn windowed(window: u64) -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let limits = Limits {
        idempotency_window: window,
        ..default_memory_limits()
    };
    let store = MemoryStore::with_config(limits, blobs.clone());
    Harness::new(Arc::new(store), blobs)
}

mod window_of_ten {
    sekiban_conformance::conformance_tests!(super::windowed(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_of_none() {
    let report = run_selected(
        || async { windowed(0) },
        |name| matches!(name, "resend_at_window_edge" | "resend_outside_window"),
    )
    .await;
    println!("{report}");
    assert_eq!(report.cases.len(), 2, "{report}");
    assert!(report.all_passed(), "{report}");
}
