//! The side-by-side PostgreSQL benchmark's parts: the contenders and the counting proxy, used
//! by the benchmark binary (`src/main.rs` and its modules `args`, `rows`, `wire`, `loads`,
//! `report`) and the `client_cpu` example.

pub mod contenders;
pub mod proxy;
