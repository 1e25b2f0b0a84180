//! The conformance suite's fault profile on Cosmos DB: the whole suite on the SDK's in-process
//! emulator with its fault injection on every data operation (point reads, queries, the change
//! feed, creates, replaces, deletes, batches): 2 % of requests each lose their reply after the
//! service carried them out, lose it with the outcome unknown (a response timeout: a cut read),
//! are throttled (429) or answered 503, within a budget of 6 attempts. The SDK's retries and the
//! store's recognition of its own earlier attempts keep every case true, bar the round-trip
//! budgets. The containers are made and the store opened before the faults start.

use std::sync::Arc;

use azure_data_cosmos_driver::fault_injection::{
    FaultInjectionErrorType, FaultInjectionRule, FaultOperationType,
};
use sekiban_conformance::Harness;

mod common;

/// The share of requests each fault hits.
const RATE: f32 = 0.02;

/// Attempts the SDK makes at a request for each kind of fault (`CosmosConfig::retry_attempts`).
const ATTEMPTS: u32 = 6;

fn rules() -> Vec<Arc<FaultInjectionRule>> {
    let ops = [
        FaultOperationType::ReadItem,
        FaultOperationType::QueryItem,
        FaultOperationType::ChangeFeedItem,
        FaultOperationType::CreateItem,
        FaultOperationType::ReplaceItem,
        FaultOperationType::UpsertItem,
        FaultOperationType::DeleteItem,
        FaultOperationType::BatchItem,
    ];
    let errors = [
        FaultInjectionErrorType::ResponseTimeoutAfterService,
        FaultInjectionErrorType::ResponseTimeout,
        FaultInjectionErrorType::TooManyRequests,
        FaultInjectionErrorType::ServiceUnavailable,
    ];
    let mut out = Vec::new();
    for op in ops {
        for error in errors {
            let id = format!("{op:?}-{error:?}");
            out.push(common::emulator::fault_rule(&id, op, error, RATE, None));
        }
    }
    out
}

async fn harness() -> Harness {
    let rules = rules();
    let (store, blobs) = common::faulted_store(rules.clone(), Some(ATTEMPTS)).await;
    for r in &rules {
        r.enable();
    }
    Harness::new(Arc::new(store), blobs).with_faults()
}

sekiban_conformance::conformance_tests!(harness().await);
