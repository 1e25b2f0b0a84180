//! SQLite errors → the store's error, classified by code.

use rusqlite::ErrorCode;
use sekiban_core::StoreError;

/// Whether `e` is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error(),
        Some(f) if f.code == ErrorCode::ConstraintViolation
            && f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// Classifies a SQLite error: busy/locked → `Unavailable` (transient), a file that is not a
/// database → `InvalidInput`, anything else → `Backend` with `context`.
pub(crate) fn classify(context: &str, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::unavailable(
            format!(
                "{context}: the database stayed locked by another writer past the busy timeout"
            ),
            e,
        ),
        Some(ErrorCode::NotADatabase) => StoreError::invalid(format!(
            "{context}: the file is not a SQLite database; point the store at another file"
        )),
        Some(ErrorCode::CannotOpen) => StoreError::invalid(format!(
            "{context}: cannot open the database file ({e}); check the directory exists and is writable"
        )),
        Some(ErrorCode::ReadOnly) => StoreError::invalid(format!(
            "{context}: the database is read-only ({e}); check file permissions"
        )),
        Some(ErrorCode::DiskFull) => {
            StoreError::unavailable(format!("{context}: the disk is full"), e)
        }
        _ => StoreError::backend(context, e),
    }
}

/// `?`-friendly conversion with a context.
pub(crate) trait Context<T> {
    fn ctx(self, context: &str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, rusqlite::Error> {
    fn ctx(self, context: &str) -> Result<T, StoreError> {
        self.map_err(|e| classify(context, e))
    }
}
