//! The conformance suite against a real PostgreSQL server.

mod common;

sekiban_conformance::conformance_tests!(common::harness().await);
