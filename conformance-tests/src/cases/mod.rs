//! The conformance cases: plain async functions over a [`crate::Harness`].
//!
//! Each case works only inside its harness's tenant. Differences between stores come from the
//! [`sekiban_core::Limits`] and [`sekiban_core::Capabilities`] a store reports, never from its name.

mod append;
mod budget;
mod checkpoint;
mod delete;
mod feed;
mod feed_resume;
mod idempotency;
mod input;
mod payload;
mod read;
mod snapshot;
mod split;
mod tenant;

pub use append::*;
pub use budget::*;
pub use checkpoint::*;
pub use delete::*;
pub use feed::*;
pub use feed_resume::*;
pub use idempotency::*;
pub use input::*;
pub use payload::*;
pub use read::*;
pub use snapshot::*;
pub use split::*;
pub use tenant::*;
