//! The SDK client: one HTTPS stack (hyper + rustls on ring), the AWS environment's region and
//! credentials, and an interceptor that counts every attempt where it happens (SDK retries
//! included) under the operation the store is running.

use std::future::Future;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    InterceptorContext,
};
use aws_sdk_dynamodb::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_smithy_http_client::Builder as HttpClientBuilder;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use sekiban_core::OpKind;
use sekiban_core::backend::{CostCounter, RetryBudget};

use crate::DynamoDbConfig;

tokio::task_local! {
    /// The kind of the store operation running on this task.
    static RUNNING: OpKind;
}

/// Runs `f` as an operation of `kind`: the requests it sends are counted under `kind`.
pub(crate) async fn counted_as<F: Future>(kind: OpKind, f: F) -> F::Output {
    RUNNING.scope(kind, f).await
}

fn running() -> OpKind {
    RUNNING.try_with(|k| *k).unwrap_or(OpKind::Other)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Counts each attempt: one round trip and the request's bytes when it is sent, the response's
/// bytes when it arrives, under the operation the store is running; each attempt after the
/// first also as a retry.
#[derive(Debug)]
struct Counting {
    costs: Arc<CostCounter>,
    /// S3's client: the snapshot offload counts each blob request once (one `Blob` round
    /// trip), so only the SDK's retries are counted here, as `Blob` round trips and retries.
    retries_only: Option<OpKind>,
}

impl Counting {
    fn every_attempt(costs: Arc<CostCounter>) -> Self {
        Counting {
            costs,
            retries_only: None,
        }
    }
}

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "sekiban-costs"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The orchestrator numbers the attempts of one request from 1.
        let retry = cfg
            .load::<RequestAttempts>()
            .is_some_and(|a| a.attempts() > 1);
        let kind = match self.retries_only {
            Some(kind) if retry => kind,
            Some(_) => return Ok(()),
            None => running(),
        };
        let sent = context.request().body().bytes().map_or(0, <[u8]>::len);
        self.costs.record(kind, sent as u64, 0);
        if retry {
            self.costs.record_retry(kind);
        }
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.retries_only.is_some() {
            return Ok(());
        }
        // The body is still a stream here: its length comes from the header.
        let response = context.response();
        let received = response.body().bytes().map(<[u8]>::len).or_else(|| {
            response
                .headers()
                .get("content-length")
                .and_then(|v| v.parse().ok())
        });
        self.costs
            .record_bytes(running(), 0, received.unwrap_or(0) as u64);
        Ok(())
    }
}

/// Whether a transaction was cancelled because another one touched its items meanwhile.
pub(crate) fn is_transaction_conflict(e: &TransactWriteItemsError) -> bool {
    matches!(
        e,
        TransactWriteItemsError::TransactionCanceledException(c)
            if c.cancellation_reasons().iter().any(|r| r.code() == Some("TransactionConflict"))
    )
}

/// Makes the SDK retry a transaction cancelled by a conflict with another one, as it retries
/// throttling: with its jittered backoff, each attempt counted by [`Counting`]. What is left
/// after the retries surfaces as `Throttled`.
#[derive(Debug)]
pub(crate) struct TransactionConflicts;

impl ClassifyRetry for TransactionConflicts {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let conflict = ctx
            .output_or_error()
            .and_then(|r| r.err())
            .and_then(|e| e.as_operation_error())
            .and_then(|e| e.downcast_ref::<TransactWriteItemsError>())
            .is_some_and(is_transaction_conflict);
        if conflict {
            RetryAction::transient_error()
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "sekiban-transaction-conflicts"
    }
}

/// The AWS settings of `config`: its region and endpoint over the environment's, and the one
/// HTTPS client.
pub(crate) async fn shared(config: &DynamoDbConfig) -> aws_config::SdkConfig {
    let http = HttpClientBuilder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &config.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// The store's one retry budget: `attempts` in all, and the kit's waits (from 25 ms, DynamoDB's
/// own advice, not the SDK's 1 s: transaction conflicts on a busy head clear in milliseconds;
/// up to 2 s). The SDK's policy and the loop for partial answers both keep it.
pub(crate) fn budget(attempts: u32) -> RetryBudget {
    RetryBudget::attempts(attempts)
}

/// The SDK's retry policy on the store's one budget (the same for DynamoDB, Streams and S3).
fn retry_config(attempts: u32) -> aws_sdk_dynamodb::config::retry::RetryConfig {
    let budget = budget(attempts);
    aws_sdk_dynamodb::config::retry::RetryConfig::standard()
        .with_max_attempts(budget.attempts)
        .with_initial_backoff(budget.first_delay)
        .with_max_backoff(budget.max_delay)
}

/// The S3 client for snapshot blobs on `shared` (region, credentials, HTTPS client), at
/// `endpoint` when given (an emulator: path-style requests; never the table's endpoint, which
/// `shared` carries), each request tried at most `attempts` times by the SDK, its retries
/// counted into `costs`.
pub(crate) fn s3(
    shared: &aws_config::SdkConfig,
    endpoint: Option<&str>,
    costs: Arc<CostCounter>,
    attempts: u32,
) -> aws_sdk_s3::Client {
    let mut conf = aws_sdk_s3::config::Builder::from(shared)
        .retry_config(retry_config(attempts))
        .interceptor(Counting {
            costs,
            retries_only: Some(OpKind::Blob),
        });
    conf.set_endpoint_url(endpoint.map(str::to_string));
    if endpoint.is_some() {
        conf.set_force_path_style(Some(true));
    }
    aws_sdk_s3::Client::from_conf(conf.build())
}

/// The DynamoDB and Streams clients on `shared`, counting into `costs`, each request tried at
/// most `attempts` times by the SDK (the store's one retry policy).
pub(crate) fn dynamodb(
    shared: &aws_config::SdkConfig,
    costs: Arc<CostCounter>,
    attempts: u32,
) -> (aws_sdk_dynamodb::Client, aws_sdk_dynamodbstreams::Client) {
    let retry = retry_config(attempts);
    let conf = aws_sdk_dynamodb::config::Builder::from(shared)
        .retry_config(retry.clone())
        .interceptor(Counting::every_attempt(costs.clone()))
        .retry_classifier(TransactionConflicts)
        .build();
    let streams = aws_sdk_dynamodbstreams::config::Builder::from(shared)
        .retry_config(retry)
        .interceptor(Counting::every_attempt(costs))
        .build();
    (
        aws_sdk_dynamodb::Client::from_conf(conf),
        aws_sdk_dynamodbstreams::Client::from_conf(streams),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_smithy_runtime_api::client::interceptors::context::{Error, Input};
    use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;

    fn cancelled(code: &str) -> InterceptorContext {
        let e = TransactWriteItemsError::TransactionCanceledException(
            TransactionCanceledException::builder()
                .cancellation_reasons(CancellationReason::builder().code("None").build())
                .cancellation_reasons(CancellationReason::builder().code(code).build())
                .build(),
        );
        let mut ctx = InterceptorContext::new(Input::erase(()));
        ctx.set_output_or_error(Err(OrchestratorError::operation(Error::erase(e))));
        ctx
    }

    #[test]
    fn conflicts_are_retried_refusals_are_not() {
        let c = TransactionConflicts;
        assert_eq!(
            c.classify_retry(&cancelled("TransactionConflict")),
            RetryAction::transient_error()
        );
        assert_eq!(
            c.classify_retry(&cancelled("ConditionalCheckFailed")),
            RetryAction::NoActionIndicated
        );
        let ctx = InterceptorContext::new(Input::erase(()));
        assert_eq!(c.classify_retry(&ctx), RetryAction::NoActionIndicated);
    }
}
