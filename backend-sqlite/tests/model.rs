//! The model-based property test against SQLite, on a file and in memory.

mod common;

use common::{harness, new_file};
use sekiban_conformance::model::run_model_test;
use sekiban_sqlite::SqliteConfig;

#[test]
fn sqlite_file_matches_the_model() {
    run_model_test("sqlite_file_matches_the_model", || {
        harness(SqliteConfig::file(new_file("model")))
    });
}

#[test]
fn sqlite_memory_matches_the_model() {
    run_model_test("sqlite_memory_matches_the_model", || {
        harness(SqliteConfig::memory())
    });
}
