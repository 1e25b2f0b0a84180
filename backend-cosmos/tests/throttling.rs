//! 429 (request rate too large): the SDK retries after the `x-ms-retry-after-ms` the service
//! sends, every retry counted as a round trip; when the throttling outlasts the SDK's retries the
//! store says `Throttled` (transient: the caller may retry) and nothing is written.

use std::sync::Arc;
use std::time::Duration;

use azure_core::http::StatusCode;
use azure_data_cosmos_driver::fault_injection::{
    CustomResponseBuilder, FaultInjectionConditionBuilder, FaultInjectionResultBuilder,
    FaultInjectionRuleBuilder, FaultOperationType,
};
use sekiban_core::{EventData, EventStore, ExpectedVersion, OpKind, StoreError, StreamId, Version};
use sekiban_cosmos::{CosmosConfig, CosmosStore};

mod common;

#[tokio::test]
async fn throttled_appends_are_retried_then_typed() {
    let throttled = CustomResponseBuilder::new(StatusCode::TooManyRequests)
        .with_header("x-ms-retry-after-ms", "5")
        .with_sub_status(3200)
        .build();
    let rule = Arc::new(
        FaultInjectionRuleBuilder::new(
            "throttle-batches",
            FaultInjectionResultBuilder::new()
                .with_custom_response(throttled)
                .build(),
        )
        .with_condition(
            FaultInjectionConditionBuilder::new()
                .with_operation_type(FaultOperationType::BatchItem)
                .build(),
        )
        .build(),
    );
    rule.disable();
    let (client, _emulator) = common::emulator::account_with_faults(vec![rule.clone()]).await;
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

    // Throttled for a while: the SDK's retries get the append through, each one counted.
    rule.enable();
    let before = store.costs();
    let retried = {
        let store = &store;
        let s = &s;
        async move {
            store
                .append(
                    s,
                    ExpectedVersion::Exact(Version(1)),
                    vec![EventData::new("B", "{}")],
                )
                .await
        }
    };
    let disable_later = async {
        tokio::time::sleep(Duration::from_millis(60)).await;
        rule.disable();
    };
    let (r, ()) = tokio::join!(retried, disable_later);
    assert_eq!(r.unwrap().last, Version(2));
    let spent = store.costs() - before;
    assert!(
        spent.round_trips(OpKind::Append) >= 2,
        "the throttled tries are round trips too: {spent}"
    );

    // Throttled throughout: typed, transient, and nothing written.
    rule.enable();
    let r = store
        .append(
            &s,
            ExpectedVersion::Exact(Version(2)),
            vec![EventData::new("C", "{}")],
        )
        .await;
    rule.disable();
    assert!(matches!(r, Err(StoreError::Throttled { .. })), "{r:?}");
    assert!(r.unwrap_err().is_transient());
    assert_eq!(store.stream_version(&s).await.unwrap(), Version(2));
}
