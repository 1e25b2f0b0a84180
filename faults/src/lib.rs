#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod http;
mod listen;
mod pg;
mod rules;

pub use http::HttpProxy;
pub use pg::PgProxy;
pub use rules::{Fault, Faults, Injected, Rule};
