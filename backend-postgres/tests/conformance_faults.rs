//! The conformance suite's fault profile on PostgreSQL: the whole suite through a fault proxy
//! that drops replies after the server committed, refuses requests with serialization
//! failures, cuts replies and closes connections, each at a fixed rate from a printed seed
//! (`SEKIBAN_FAULT_SEED` replays one). Every case holds, bar the round-trip budgets.

mod common;

sekiban_conformance::conformance_tests!(common::faulty_harness().await);
