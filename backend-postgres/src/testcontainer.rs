//! A throwaway PostgreSQL server in Docker, for machines with a Docker engine (cargo feature
//! `testcontainers`).

use sekiban_core::StoreError;
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::testcontainers::ContainerAsync;
use testcontainers_modules::testcontainers::runners::AsyncRunner;

/// A running PostgreSQL container; it is stopped and removed when this is dropped.
#[derive(Debug)]
pub struct PostgresContainer {
    /// Keeps the container alive.
    _container: ContainerAsync<Postgres>,
    /// Its URL on the host, e.g. `postgres://postgres:postgres@127.0.0.1:49153/postgres`.
    pub url: String,
}

/// Starts `postgres` (the image's default tag) and waits until it accepts connections.
pub async fn start() -> Result<PostgresContainer, StoreError> {
    let unavailable = |what: &str, e: &dyn std::fmt::Display| StoreError::Unavailable {
        source: format!(
            "{what}: {e}; is a Docker engine running? Without one set SEKIBAN_POSTGRES_URL instead"
        )
        .into(),
    };
    let container = Postgres::default()
        .start()
        .await
        .map_err(|e| unavailable("start a PostgreSQL container", &e))?;
    let port = container
        .get_host_port_ipv4(5432)
        .await
        .map_err(|e| unavailable("find the container's port", &e))?;
    Ok(PostgresContainer {
        _container: container,
        url: format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres"),
    })
}
