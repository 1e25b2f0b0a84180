//! Snapshot blobs in S3: a table opened from a `dynamodb://…&bucket=…&s3_endpoint=…` URL, against
//! the S3 emulator `scripts/test.sh` starts (moto; or the account `SEKIBAN_S3_ENDPOINT` points
//! at): `init_bucket` creates the bucket, `open` refuses a missing one, and the suite's snapshot
//! and clean-up cases pass with their blobs in the bucket, read back from S3 itself.

use std::sync::Arc;

use sekiban_conformance::{Harness, run_case};
use sekiban_core::{BlobStore, Store};
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable, Init};

mod common;

fn url(bucket: &str) -> String {
    format!(
        "dynamodb://sekiban-test-s3?endpoint={}&bucket={bucket}&s3_endpoint={}",
        common::endpoint(),
        common::s3_endpoint()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_offload_to_the_bucket() {
    let bucket = common::fresh_bucket();
    let table =
        DynamoDbTable::connect(DynamoDbConfig::from_url(&url(&bucket)).expect("a URL")).await;
    table.init().await.expect("init the table");
    let err = DynamoDbTable::open(&url(&bucket))
        .await
        .expect_err("a missing bucket is refused");
    assert!(err.to_string().contains(&bucket), "{err}");
    assert!(matches!(table.init_bucket().await, Ok(Some(Init::Created))));
    assert!(matches!(table.init_bucket().await, Ok(Some(Init::Existed))));
    let table = DynamoDbTable::open(&url(&bucket)).await.expect("open");
    let blobs: Arc<dyn BlobStore> = table.blobs();
    assert!(format!("{blobs:?}").contains("S3Blobs"), "{blobs:?}");
    let store: Arc<dyn Store> = Arc::new(table);
    for case in [
        "snapshot_large_offloaded_and_verified",
        "snapshot_replaced_blob_deleted",
        "snapshot_corrupt_blob_is_an_error",
        "snapshot_older_never_replaces_newer",
    ] {
        let h = Harness::new(store.clone(), blobs.clone());
        run_case(&h, case)
            .await
            .unwrap_or_else(|f| panic!("{case}: {}", f.message));
        let done = h.clean_up().await;
        assert!(done.left.is_empty(), "{case}: left behind {:?}", done.left);
    }
}
