//! The model-based property test against a real PostgreSQL server, in this run's schema
//! (`SEKIBAN_POSTGRES_SCHEMA`, which `scripts/test.sh` makes per run and drops afterwards): each
//! case works under a fresh tenant, on a store object of its own.

mod common;

use sekiban_conformance::model::run_model_test;

#[test]
fn postgres_matches_the_model() {
    run_model_test("postgres_matches_the_model", common::harness);
}
