//! The conformance suite against SQLite, on a file and in memory.

mod common;

use common::{harness, new_file};
use sekiban_sqlite::SqliteConfig;

mod file {
    use super::*;
    sekiban_conformance::conformance_tests!(
        harness(SqliteConfig::file(new_file("conformance"))).await
    );
}

mod memory {
    use super::*;
    sekiban_conformance::conformance_tests!(harness(SqliteConfig::memory()).await);
}
