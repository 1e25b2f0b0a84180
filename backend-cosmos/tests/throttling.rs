//! 429 (request rate too large): the SDK retries after the `x-ms-retry-after-ms` the service
//! sends, every retry counted as a round trip; when the throttling outlasts the store's budget
//! (10 attempts by default) the store says `Throttled` (transient: the caller may retry) and
//! nothing is written.

use std::sync::Arc;

use azure_core::http::StatusCode;
use azure_data_cosmos_driver::fault_injection::{
    CustomResponseBuilder, FaultInjectionConditionBuilder, FaultInjectionResultBuilder,
    FaultInjectionRule, FaultInjectionRuleBuilder, FaultOperationType,
};
use sekiban_core::{EventData, EventStore, ExpectedVersion, OpKind, StoreError, StreamId, Version};
use sekiban_cosmos::{CosmosConfig, CosmosStore};

mod common;

/// A rule that answers batches 429 with a retry after 5 ms, `hits` times at most (off until
/// enabled).
fn throttle(id: &str, hits: Option<u32>) -> Arc<FaultInjectionRule> {
    let throttled = CustomResponseBuilder::new(StatusCode::TooManyRequests)
        .with_header("x-ms-retry-after-ms", "5")
        .with_sub_status(3200)
        .build();
    let mut rule = FaultInjectionRuleBuilder::new(
        id,
        FaultInjectionResultBuilder::new()
            .with_custom_response(throttled)
            .build(),
    )
    .with_condition(
        FaultInjectionConditionBuilder::new()
            .with_operation_type(FaultOperationType::BatchItem)
            .build(),
    );
    if let Some(n) = hits {
        rule = rule.with_hit_limit(n);
    }
    let rule = Arc::new(rule.build());
    rule.disable();
    rule
}

#[tokio::test]
async fn throttled_appends_are_retried_then_typed() {
    let (a_while, throughout) = (throttle("a-while", Some(3)), throttle("throughout", None));
    let (client, _emulator) =
        common::emulator::account_with_faults(vec![a_while.clone(), throughout.clone()]).await;
    let config = CosmosConfig::new("throttling", "events");
    CosmosStore::init(&client, &config).await.unwrap();
    let store = CosmosStore::connect(client, config).await.unwrap();
    let s = StreamId::new("acme", "order", "1").unwrap();
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![EventData::new("A", "{}")],
        )
        .await
        .unwrap();

    // Throttled three times: the SDK's retries get the append through, each one counted.
    a_while.enable();
    let before = store.costs();
    let r = store
        .append(
            &s,
            ExpectedVersion::Exact(Version(1)),
            vec![EventData::new("B", "{}")],
        )
        .await;
    assert_eq!(r.unwrap().last, Version(2));
    assert_eq!(a_while.hit_count(), 3);
    let spent = store.costs() - before;
    assert_eq!(
        spent.round_trips(OpKind::Append),
        4,
        "the throttled tries are round trips too: {spent}"
    );
    assert_eq!(spent.retries(OpKind::Append), 3, "{spent}");

    // Throttled throughout: typed, transient, after the default budget of 10 attempts, and
    // nothing written.
    throughout.enable();
    let r = store
        .append(
            &s,
            ExpectedVersion::Exact(Version(2)),
            vec![EventData::new("C", "{}")],
        )
        .await;
    throughout.disable();
    assert!(matches!(r, Err(StoreError::Throttled { .. })), "{r:?}");
    assert!(r.unwrap_err().is_transient());
    assert_eq!(throughout.hit_count(), 10, "the default budget's attempts");
    assert_eq!(store.stream_version(&s).await.unwrap(), Version(2));
}
