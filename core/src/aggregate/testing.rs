//! given/when/then tests of an aggregate, with no store.

use std::fmt::Debug;

use super::Aggregate;
use super::codec::{decode, encode};
use crate::event::RecordedEvent;
use crate::id::{StreamId, Version};

/// Starts a test from past events (which go through the event codec, so a type that does not
/// round-trip fails here, not in production).
pub fn given<A: Aggregate>(events: Vec<A::Event>) -> Given<A> {
    Given { events }
}

/// The past of a given/when/then test.
#[derive(Debug)]
pub struct Given<A: Aggregate> {
    events: Vec<A::Event>,
}

/// A command run against the given past.
#[derive(Debug)]
pub struct When<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
}

fn round_trip<A: Aggregate>(event: &A::Event, version: u64) -> A::Event {
    let data =
        encode(event).unwrap_or_else(|e| panic!("given event {version} does not encode: {e}"));
    let recorded = RecordedEvent {
        stream: StreamId::new("test", A::CATEGORY, "given")
            .unwrap_or_else(|e| panic!("the aggregate's category is not a valid one: {e}")),
        version: Version(version),
        id: data.id,
        event_type: data.event_type,
        schema_version: data.schema_version,
        data: data.data,
        metadata: data.metadata,
        recorded_at: std::time::SystemTime::now(),
    };
    decode(&recorded).unwrap_or_else(|e| panic!("given event {version} does not decode: {e}"))
}

impl<A: Aggregate> Given<A> {
    /// Runs `command` against the state folded from the given events.
    pub fn when(self, command: A::Command) -> When<A> {
        let mut state = A::default();
        for (i, e) in self.events.iter().enumerate() {
            state.apply(&round_trip::<A>(e, i as u64 + 1));
        }
        When {
            result: state.handle(&command),
        }
    }
}

impl<A: Aggregate> When<A> {
    /// Asserts the command caused exactly `expected`.
    pub fn then_expect(self, expected: Vec<A::Event>)
    where
        A::Event: PartialEq + Debug,
        A::Error: Debug,
    {
        match self.result {
            Ok(events) => assert_eq!(events, expected, "events caused by the command"),
            Err(e) => panic!("the command was refused with {e:?}; expected events {expected:?}"),
        }
    }

    /// Asserts the command was refused with `expected`.
    pub fn then_error(self, expected: A::Error)
    where
        A::Event: Debug,
        A::Error: PartialEq + Debug,
    {
        match self.result {
            Ok(events) => panic!("the command caused {events:?}; expected the error {expected:?}"),
            Err(e) => assert_eq!(e, expected, "error of the command"),
        }
    }

    /// Asserts the command was refused with an error `matches` accepts.
    pub fn then_error_matches(self, matches: impl FnOnce(&A::Error) -> bool)
    where
        A::Event: Debug,
        A::Error: Debug,
    {
        match self.result {
            Ok(events) => panic!("the command caused {events:?}; expected an error"),
            Err(e) => assert!(matches(&e), "unexpected error {e:?}"),
        }
    }

    /// The raw outcome, for assertions of your own.
    pub fn result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}
