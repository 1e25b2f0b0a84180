//! The aggregate layer on top of the store traits: typed events and state, a [`Repository`] that
//! loads, decides, appends with the exact expected version and retries conflicts, a
//! [`Projector`] that runs the change feed into a read model, and given/when/then tests.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use sekiban_core::aggregate::{Aggregate, DomainEvent, given};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! enum CounterEvent { Incremented { by: u32 } }
//! impl DomainEvent for CounterEvent {}
//!
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! struct Counter { value: u32 }
//!
//! #[derive(Debug, PartialEq, thiserror::Error)]
//! #[error("the counter would pass 10")]
//! struct TooHigh;
//!
//! impl Aggregate for Counter {
//!     const CATEGORY: &'static str = "counter";
//!     type Event = CounterEvent;
//!     type Command = u32;
//!     type Error = TooHigh;
//!     fn apply(&mut self, e: &CounterEvent) {
//!         let CounterEvent::Incremented { by } = e;
//!         self.value += by;
//!     }
//!     fn handle(&self, by: &u32) -> Result<Vec<CounterEvent>, TooHigh> {
//!         if self.value + by > 10 { return Err(TooHigh) }
//!         Ok(vec![CounterEvent::Incremented { by: *by }])
//!     }
//! }
//!
//! given::<Counter>(vec![CounterEvent::Incremented { by: 4 }])
//!     .when(3)
//!     .then_expect(vec![CounterEvent::Incremented { by: 3 }]);
//! given::<Counter>(vec![CounterEvent::Incremented { by: 9 }]).when(2).then_error(TooHigh);
//! ```

mod codec;
mod projector;
mod repository;
mod testing;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use codec::{CodecError, DomainEvent, decode, encode, variant_names};
pub use projector::{CheckpointMode, Projection, Projector, ProjectorError};
pub use repository::{ExecuteError, Executed, Loaded, Repository, RetryPolicy, SnapshotPolicy};
pub use testing::{Given, When, given};

/// An event-sourced aggregate: state folded from its events, and commands decided against it.
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stream category of this aggregate's streams.
    const CATEGORY: &'static str;
    /// Schema version of the serialized state in snapshots; a snapshot of another version is
    /// ignored and the state folded from the events.
    const STATE_VERSION: u32 = 1;
    /// Its events.
    type Event: DomainEvent;
    /// Its commands.
    type Command: Send + Sync;
    /// Why a command is refused.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Folds one event into the state. Must not fail: events are facts.
    fn apply(&mut self, event: &Self::Event);

    /// Decides which events a command causes in the current state, or refuses it.
    fn handle(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
}
