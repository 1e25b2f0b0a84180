//! The conformance suite's fault profile on DynamoDB Local with S3 on moto: the whole suite
//! through two HTTP fault proxies (`sekiban-faults`, one per service and test process) that drop
//! replies after the service did the work, answer throttling and 500s, cut replies and close
//! connections, each on 2 % of requests from a printed seed (`SEKIBAN_FAULT_SEED` replays one).
//! The table and the bucket are made and the store opened before the faults start; every case
//! holds, bar the round-trip budgets.

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};
use sekiban_faults::{Fault, Faults, HttpProxy, Rule};

mod common;

/// The share of requests each of the five faults hits.
const RATE: f64 = 0.02;

/// Attempts the SDK makes at a request: one faulted at 10 % is answered `Unavailable` once in
/// 0.1⁶ = 10⁻⁶ requests.
const ATTEMPTS: u32 = 6;

/// Five faults, each on `RATE` of the requests: a reply dropped after the service did the
/// work, throttling and a 500 (with the service's codes for them), a reply cut, a connection
/// closed.
fn rules(throttled: &str, failed: &str) -> Vec<Rule> {
    [
        Fault::DropReply,
        Fault::Refuse {
            code: throttled.into(),
        },
        Fault::Refuse {
            code: failed.into(),
        },
        Fault::CutReply { after: 50 },
        Fault::Close,
    ]
    .into_iter()
    .map(|f| Rule::every(f).rate(RATE))
    .collect()
}

async fn harness() -> Harness {
    // One proxy in front of DynamoDB Local, one in front of the S3 emulator, and one bucket,
    // for the test process.
    static PROXIES: tokio::sync::OnceCell<(HttpProxy, HttpProxy, String)> =
        tokio::sync::OnceCell::const_new();
    let (proxy, s3, bucket) = PROXIES
        .get_or_init(|| async {
            let start = |upstream: String| async move {
                HttpProxy::start(&upstream, Faults::new(Faults::seed_from_env()))
                    .await
                    .expect("start a fault proxy")
            };
            (
                start(common::endpoint()).await,
                start(common::s3_endpoint()).await,
                common::fresh_bucket(),
            )
        })
        .await;
    proxy.faults().clear();
    s3.faults().clear();
    let name = "sekiban-test-conformance-faults";
    common::table(name, None).await;
    let url = format!(
        "dynamodb://{name}?endpoint={}&retries={ATTEMPTS}&bucket={bucket}&s3_endpoint={}",
        proxy.endpoint(),
        s3.endpoint()
    );
    let table = DynamoDbTable::connect(DynamoDbConfig::from_url(&url).expect("a URL")).await;
    table.init_bucket().await.expect("the bucket");
    let blobs = table.blobs();
    proxy
        .faults()
        .set(rules("ThrottlingException", "InternalServerError"));
    s3.faults().set(rules("SlowDown", "InternalError"));
    Harness::new(Arc::new(table), blobs).with_faults()
}

sekiban_conformance::conformance_tests!(harness().await);
