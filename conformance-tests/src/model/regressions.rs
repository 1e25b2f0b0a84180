//! Shrunk failing sequences of earlier runs, kept as explicit regressions.

use super::ops::{At, Exp, Op};

/// Shrunk failing sequences found earlier, replayed as they are by the default plan (they do not
/// depend on the generator, unlike [`REGRESSION_SEEDS`]).
///
/// [`REGRESSION_SEEDS`]: super::REGRESSION_SEEDS
pub(super) fn regressions() -> Vec<(&'static str, Vec<Op>)> {
    let read = |backward, from, max_count| Op::Read {
        s: 0,
        backward,
        from,
        max_count,
    };
    let erased = |read: Op| {
        vec![
            Op::Bulk {
                s: 0,
                exp: Exp::Head,
                count: 20,
            },
            Op::Delete { s: 0, hard: true },
            read,
        ]
    };
    vec![
        (
            "issue 10: an erased stream read backward from version 0",
            erased(read(true, Some(At::Zero), None)),
        ),
        (
            "issue 10: an erased stream read with max_count 0",
            erased(read(false, None, Some(0))),
        ),
        (
            "issue 10: an erased stream read backward with max_count 0",
            erased(read(true, Some(At::Above(1)), Some(0))),
        ),
    ]
}
