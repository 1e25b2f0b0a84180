//! The operations of a sequence, as generated, and their proptest strategies. They refer to the
//! run's state only relatively (an offset from the head, the n-th earlier batch), so a shrunk
//! sequence still means something.

use proptest::collection::vec;
use proptest::prelude::{Just, Strategy, any, prop_oneof};

use super::MAX_OPS;

/// An expected version, relative to the stream's head when the operation runs.
#[derive(Clone, Debug)]
pub(super) enum Exp {
    Any,
    NoStream,
    StreamExists,
    Head,
    Below(u8),
    Above(u8),
    /// A version inside an earlier multi-event append (falls back to head - 1).
    Inside(u16),
    Zero,
}

/// A version, relative to the stream when the operation runs.
#[derive(Clone, Debug)]
pub(super) enum At {
    Head,
    Below(u8),
    Above(u8),
    Zero,
    /// The last version a soft delete hid (0 when none).
    Hidden,
}

/// A fresh event: its type, schema, data and metadata are drawn; its id is new when it runs.
#[derive(Clone, Debug)]
pub(super) struct Ev {
    pub(super) ty: u8,
    pub(super) schema: u8,
    pub(super) data: Vec<u8>,
    pub(super) meta: u8,
}

/// How a re-sent batch is changed.
#[derive(Clone, Debug)]
pub(super) enum Alter {
    Data(u8),
    Type(u8),
    Schema(u8),
    Metadata(u8),
    DropFirst,
    DropLast,
    AddFresh,
    PrependFresh,
    Swap,
    /// Joined with the next batch sent to the stream.
    WithNext,
}

/// Input the store must refuse before writing.
#[derive(Clone, Debug)]
pub(super) enum Bad {
    Empty,
    EventTooLarge { count: u8, index: u8 },
    TooManyEvents,
    TooManyBytes,
    DuplicateId,
    EmptyType,
}

/// One operation of a generated sequence.
#[derive(Clone, Debug)]
pub(super) enum Op {
    Append {
        s: u8,
        exp: Exp,
        events: Vec<Ev>,
    },
    /// An append of many small events (up to the store's `max_append_events`), so reads and the
    /// feed cross page boundaries.
    Bulk {
        s: u8,
        exp: Exp,
        count: u8,
    },
    Resend {
        s: u8,
        pick: u16,
        exp: Exp,
    },
    ResendAltered {
        s: u8,
        pick: u16,
        alter: Alter,
        exp: Exp,
    },
    BadAppend {
        s: u8,
        bad: Bad,
        exp: Exp,
    },
    Read {
        s: u8,
        backward: bool,
        from: Option<At>,
        max_count: Option<u8>,
    },
    Version {
        s: u8,
    },
    SaveSnapshot {
        s: u8,
        at: At,
        large: bool,
        tag: u8,
        bad_type: bool,
    },
    LoadSnapshot {
        s: u8,
    },
    Delete {
        s: u8,
        hard: bool,
    },
    Feed {
        after: Option<u16>,
        max_batch: Option<u8>,
    },
    Concurrent {
        s: u8,
        writers: Vec<(Exp, u8)>,
    },
}

fn exp() -> impl Strategy<Value = Exp> {
    prop_oneof![
        3 => Just(Exp::Any),
        2 => Just(Exp::NoStream),
        2 => Just(Exp::StreamExists),
        4 => Just(Exp::Head),
        2 => (1..=3u8).prop_map(Exp::Below),
        2 => (1..=3u8).prop_map(Exp::Above),
        2 => any::<u16>().prop_map(Exp::Inside),
        1 => Just(Exp::Zero),
    ]
}

fn at() -> impl Strategy<Value = At> {
    prop_oneof![
        5 => Just(At::Head),
        3 => (1..=3u8).prop_map(At::Below),
        1 => (1..=2u8).prop_map(At::Above),
        1 => Just(At::Zero),
        1 => Just(At::Hidden),
    ]
}

fn ev() -> impl Strategy<Value = Ev> {
    (
        any::<u8>(),
        any::<u8>(),
        vec(any::<u8>(), 0..12),
        any::<u8>(),
    )
        .prop_map(|(ty, schema, data, meta)| Ev {
            ty,
            schema,
            data,
            meta,
        })
}

fn alter() -> impl Strategy<Value = Alter> {
    prop_oneof![
        any::<u8>().prop_map(Alter::Data),
        any::<u8>().prop_map(Alter::Type),
        any::<u8>().prop_map(Alter::Schema),
        any::<u8>().prop_map(Alter::Metadata),
        Just(Alter::DropFirst),
        Just(Alter::DropLast),
        Just(Alter::AddFresh),
        Just(Alter::PrependFresh),
        Just(Alter::Swap),
        Just(Alter::WithNext),
    ]
}

fn bad() -> impl Strategy<Value = Bad> {
    prop_oneof![
        Just(Bad::Empty),
        (1..=3u8, any::<u8>()).prop_map(|(count, index)| Bad::EventTooLarge { count, index }),
        Just(Bad::TooManyEvents),
        Just(Bad::TooManyBytes),
        Just(Bad::DuplicateId),
        Just(Bad::EmptyType),
    ]
}

/// A stream index, busier streams first (so most operations meet earlier ones).
fn stream() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)]
}

fn op() -> impl Strategy<Value = Op> {
    let s = stream;
    let writes = prop_oneof![
        8 => (s(), exp(), vec(ev(), 1..=5))
            .prop_map(|(s, exp, events)| Op::Append { s, exp, events }),
        4 => (s(), any::<u16>(), exp()).prop_map(|(s, pick, exp)| Op::Resend { s, pick, exp }),
        3 => (s(), any::<u16>(), alter(), exp())
            .prop_map(|(s, pick, alter, exp)| Op::ResendAltered { s, pick, alter, exp }),
        1 => (s(), bad(), exp()).prop_map(|(s, bad, exp)| Op::BadAppend { s, bad, exp }),
        1 => (s(), exp(), 20..=100u8).prop_map(|(s, exp, count)| Op::Bulk { s, exp, count }),
        1 => (s(), vec((exp(), 1..=3u8), 2..=8))
            .prop_map(|(s, writers)| Op::Concurrent { s, writers }),
    ];
    let others = prop_oneof![
        3 => (s(), any::<bool>(), proptest::option::of(at()), proptest::option::of(0..8u8))
            .prop_map(|(s, backward, from, max_count)| Op::Read { s, backward, from, max_count }),
        1 => s().prop_map(|s| Op::Version { s }),
        3 => (s(), at(), any::<bool>(), any::<u8>(), proptest::bool::weighted(0.1))
            .prop_map(|(s, at, large, tag, bad_type)| Op::SaveSnapshot { s, at, large, tag, bad_type }),
        1 => s().prop_map(|s| Op::LoadSnapshot { s }),
        1 => (s(), proptest::bool::weighted(0.2)).prop_map(|(s, hard)| Op::Delete { s, hard }),
        2 => (proptest::option::weighted(0.7, any::<u16>()), proptest::option::of(1..=4u8))
            .prop_map(|(after, max_batch)| Op::Feed { after, max_batch }),
    ];
    prop_oneof![18 => writes, 11 => others]
}

pub(super) fn sequences() -> impl Strategy<Value = Vec<Op>> {
    vec(op(), 1..=MAX_OPS)
}
