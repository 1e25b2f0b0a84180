//! PostgreSQL errors → the store's error, classified by SQLSTATE, never by message.

use sekiban_core::StoreError;
use tokio_postgres::error::SqlState;

/// Whether `e` is a unique violation.
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Classifies a driver error; `context` says what the store was doing.
pub(crate) fn classify(context: &str, e: tokio_postgres::Error) -> StoreError {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection failed or closed.
        return StoreError::unavailable(
            format!(
                "{context}: the connection failed or closed; check the server is running and reachable"
            ),
            e,
        );
    };
    let transient = [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::QUERY_CANCELED,
        SqlState::CONNECTION_EXCEPTION,
        SqlState::CONNECTION_FAILURE,
        SqlState::DISK_FULL,
        SqlState::OUT_OF_MEMORY,
    ];
    if transient.contains(code) {
        return StoreError::unavailable(context, e);
    }
    let advice = match *code {
        SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            Some("authentication failed; check the user and password in the URL")
        }
        SqlState::INVALID_CATALOG_NAME => {
            Some("the database does not exist; create it or fix the URL")
        }
        SqlState::INVALID_SCHEMA_NAME | SqlState::UNDEFINED_TABLE => {
            return StoreError::NotInitialized {
                what: format!(
                    "{context}: the store's schema or tables are missing; create them with PostgresEventStore::migrate ({})",
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_string())
                ),
            };
        }
        SqlState::INSUFFICIENT_PRIVILEGE => Some("the user lacks a privilege the store needs"),
        _ => None,
    };
    let detail = e.as_db_error().map_or_else(
        || e.to_string(),
        |d| format!("{}: {}", d.code().code(), d.message()),
    );
    match advice {
        Some(advice) => StoreError::invalid(format!("{context}: {advice} ({detail})")),
        None => StoreError::backend(context.to_string(), e),
    }
}

/// `?`-friendly conversion with a context.
pub(crate) trait Context<T> {
    fn ctx(self, context: &str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, tokio_postgres::Error> {
    fn ctx(self, context: &str) -> Result<T, StoreError> {
        self.map_err(|e| classify(context, e))
    }
}

/// What every operation on a closed store returns.
pub(crate) fn closed() -> StoreError {
    StoreError::closed("the store is closed (close() was called); open a new store to go on")
}

/// A pool error: connection failures are `Unavailable`, server answers are classified.
pub(crate) fn pool_error(e: deadpool::managed::PoolError<tokio_postgres::Error>) -> StoreError {
    match e {
        deadpool::managed::PoolError::Backend(e) => classify("open a connection", e),
        deadpool::managed::PoolError::Closed => closed(),
        other => StoreError::Unavailable {
            source: format!("no database connection: {other}").into(),
        },
    }
}
