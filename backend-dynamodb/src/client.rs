//! The SDK client: one HTTPS stack (hyper + rustls on ring), the AWS environment's region and
//! credentials, and an interceptor that counts every attempt where it happens (SDK retries
//! included) under the operation the store is running.

use std::future::Future;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_http_client::Builder as HttpClientBuilder;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use sekiban_core::{CostCounter, OpKind};

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
/// bytes when it arrives.
#[derive(Debug)]
struct Counting {
    costs: Arc<CostCounter>,
}

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "sekiban-costs"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let sent = context.request().body().bytes().map_or(0, <[u8]>::len);
        self.costs.record(running(), sent as u64, 0);
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
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

/// A DynamoDB client for `config`, counting into `costs`.
pub(crate) async fn dynamodb(
    config: &DynamoDbConfig,
    costs: Arc<CostCounter>,
) -> aws_sdk_dynamodb::Client {
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
    let shared = loader.load().await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&shared)
        .interceptor(Counting { costs })
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}
