//! The side-by-side DynamoDB benchmark's parts: the contenders, the counting proxy and the
//! capacity-unit rules, used by the benchmark binary (`src/main.rs` and its modules `args`,
//! `meter`, `rows`, `loads`, `report`).

pub mod contenders;
pub mod proxy;
pub mod units;
