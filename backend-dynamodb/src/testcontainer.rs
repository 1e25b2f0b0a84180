//! A throwaway DynamoDB Local in Docker, for machines with a Docker engine (cargo feature
//! `testcontainers`).

use sekiban_core::StoreError;
use testcontainers_modules::dynamodb_local::DynamoDb;
use testcontainers_modules::testcontainers::ContainerAsync;
use testcontainers_modules::testcontainers::runners::AsyncRunner;

/// A running DynamoDB Local container; it is stopped and removed when this is dropped.
#[derive(Debug)]
pub struct DynamoDbContainer {
    /// Keeps the container alive.
    _container: ContainerAsync<DynamoDb>,
    /// Its endpoint on the host, e.g. `http://127.0.0.1:49153`.
    pub endpoint: String,
}

/// Starts `amazon/dynamodb-local` and waits until it is ready. Requests to it still need
/// credentials and a region from the environment (any values do).
pub async fn start() -> Result<DynamoDbContainer, StoreError> {
    let unavailable = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Unavailable {
        source: format!(
            "{what}: {e}; is a Docker engine running? Without one set SEKIBAN_DYNAMODB_ENDPOINT instead"
        )
        .into(),
    }
    };
    let container = DynamoDb::default()
        .start()
        .await
        .map_err(|e| unavailable("start a DynamoDB Local container", &e))?;
    let port = container
        .get_host_port_ipv4(8000)
        .await
        .map_err(|e| unavailable("find the container's port", &e))?;
    Ok(DynamoDbContainer {
        _container: container,
        endpoint: format!("http://127.0.0.1:{port}"),
    })
}
