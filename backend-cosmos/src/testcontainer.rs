//! The official Cosmos DB Linux emulator in Docker, for machines with a Docker engine (cargo
//! feature `testcontainers`). The tests use it instead of the SDK's in-process emulator when the
//! feature is on; it serves plain HTTP (`--protocol http`) with the emulator's well-known key.
//! It is not run where these tests were written (no Docker engine there).

use sekiban_core::StoreError;
use testcontainers_modules::testcontainers::core::IntoContainerPort;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// The emulator image.
pub const IMAGE: &str = "mcr.microsoft.com/cosmosdb/linux/azure-cosmos-emulator";
/// Its tag.
pub const TAG: &str = "vnext-preview";
/// The emulator's well-known account key (public, in its documentation).
pub const KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

/// A running emulator container; it is stopped and removed when this is dropped.
#[derive(Debug)]
pub struct CosmosContainer {
    /// Keeps the container alive.
    _container: ContainerAsync<GenericImage>,
    /// Its endpoint on the host, e.g. `http://127.0.0.1:49153/`.
    pub endpoint: String,
}

/// Starts the emulator and waits until it says it is ready.
pub async fn start() -> Result<CosmosContainer, StoreError> {
    let unavailable = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::unavailable(
            what.to_owned(),
            format!(
                "{e}; is a Docker engine running? Without one the tests use the SDK's in-process emulator (build without the testcontainers feature)"
            ),
        )
    };
    let container = GenericImage::new(IMAGE, TAG)
        .with_exposed_port(8081.tcp())
        .with_cmd(["--protocol", "http"])
        .start()
        .await
        .map_err(|e| unavailable("start a Cosmos DB emulator container", &e))?;
    let port = container
        .get_host_port_ipv4(8081)
        .await
        .map_err(|e| unavailable("find the container's port", &e))?;
    let endpoint = format!("http://127.0.0.1:{port}/");
    // Ready once its gateway answers at all (an unsigned request is refused): up to 3 minutes.
    crate::install_tls();
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while http.get(&endpoint).send().await.is_err() {
        if std::time::Instant::now() > deadline {
            return Err(unavailable(
                "wait for the Cosmos DB emulator container",
                &format!("{endpoint} did not answer within 180 s"),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Ok(CosmosContainer {
        _container: container,
        endpoint,
    })
}
