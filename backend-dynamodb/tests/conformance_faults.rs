//! The conformance suite's fault profile on DynamoDB Local: the whole suite through an HTTP
//! fault proxy (`sekiban-faults`, one per test process) that drops replies after the table
//! committed, answers throttling and 500s, cuts replies and closes connections, each on 2 % of
//! requests from a printed seed (`SEKIBAN_FAULT_SEED` replays one). The table is made and the
//! store opened before the faults start; every case holds, bar the round-trip budgets.

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_core::{BlobStore, ObjectBlobStore};
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};
use sekiban_faults::{Fault, Faults, HttpProxy, Rule};

mod common;

/// The share of requests each of the five faults hits.
const RATE: f64 = 0.02;

/// Attempts the SDK makes at a request: one faulted at 10 % is answered `Unavailable` once in
/// 0.1⁶ = 10⁻⁶ requests.
const ATTEMPTS: u32 = 6;

async fn harness() -> Harness {
    static PROXY: tokio::sync::OnceCell<HttpProxy> = tokio::sync::OnceCell::const_new();
    let proxy = PROXY
        .get_or_init(|| async {
            HttpProxy::start(&common::endpoint(), Faults::new(Faults::seed_from_env()))
                .await
                .expect("start the fault proxy")
        })
        .await;
    proxy.faults().clear();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let name = "sekiban-test-conformance-faults";
    common::table(name, None).await;
    let url = format!(
        "dynamodb://{name}?endpoint={}&retries={ATTEMPTS}",
        proxy.endpoint()
    );
    let table = DynamoDbTable::connect_with_blobs(
        DynamoDbConfig::from_url(&url).expect("a URL"),
        blobs.clone(),
    )
    .await;
    proxy.faults().set(
        [
            Fault::DropReply,
            Fault::Refuse {
                code: "ThrottlingException".into(),
            },
            Fault::Refuse {
                code: "InternalServerError".into(),
            },
            Fault::CutReply { after: 50 },
            Fault::Close,
        ]
        .into_iter()
        .map(|f| Rule::every(f).rate(RATE))
        .collect(),
    );
    Harness::new(Arc::new(table), blobs).with_faults()
}

sekiban_conformance::conformance_tests!(harness().await);
