//! Faults on purpose: a proxy between a store and its server that drops replies after the
//! server carried a request out, refuses requests with an error, cuts connections in the middle
//! of a reply or delays requests, by rules a test sets and changes while it runs.
//!
//! Emulators and local servers answer like the service when all goes well; they never fail like
//! it. Tests use this crate to make the failures happen and then check what the store answered
//! and what it stored: nothing lost, nothing twice, versions contiguous.
//!
//! - [`Faults`]: the rules ([`Rule`], [`Fault`]), the seed every decision comes from, and the log
//!   of every fault injected (printed with the seed, so a failing run replays with
//!   `SEKIBAN_FAULT_SEED`);
//! - [`PgProxy`]: PostgreSQL's wire protocol, requests matched by their statement's text.
//!
//! The `sekiban-faults` program runs a proxy by hand: `sekiban-faults pg --upstream
//! 127.0.0.1:5432 --rules rules.json` (see `docs/faults.md`).
//!
//! ```no_run
//! use sekiban_faults::{Fault, Faults, PgProxy, Rule};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let proxy = PgProxy::start("127.0.0.1:5432", Faults::new(Faults::seed_from_env())).await?;
//! // The next checkpoint save is carried out, and its reply lost.
//! proxy.faults().set(vec![Rule::on("checkpoints", Fault::DropReply).times(1)]);
//! let url = proxy.url("postgres://postgres@127.0.0.1:5432/test");
//! // ... open the store on `url`, save a checkpoint, check the answer ...
//! assert_eq!(proxy.faults().log().len(), 1);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod pg;
mod rules;

pub use pg::PgProxy;
pub use rules::{Fault, Faults, Injected, Rule};
