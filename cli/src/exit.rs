//! Exit codes, and how an error becomes one.

use std::fmt;

use sekiban_core::StoreError;

/// The process exit codes of `sekiban`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Done: written, read, passed, or an idempotent re-send of an append.
    Ok = 0,
    /// Anything else went wrong (the store failed, a conformance case failed, the store lacks a
    /// capability the command needs, the demo failed).
    Failure = 1,
    /// Bad input: flags, a store URL (or one naming a store not set up), a stream id, a file that
    /// cannot be read, an invalid JSON line, an input over the store's limits, an event id
    /// already stored with other content.
    BadInput = 2,
    /// `append`: the stream is not at the expected version (the actual version is printed).
    WrongExpectedVersion = 3,
}

impl Exit {
    /// The code as the process returns it.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

/// Input the tool refuses before or without asking the store (exit code 2).
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// A [`BadInput`] error as an `anyhow::Error`.
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(message.into()))
}

/// A failure whose message was already printed (exit code 1, nothing more to say).
#[derive(Debug)]
pub struct Reported(pub Exit);

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed (exit code {})", self.0.code())
    }
}

impl std::error::Error for Reported {}

/// The exit code a store error means.
pub fn store_error_exit(e: &StoreError) -> Exit {
    match e {
        StoreError::WrongExpectedVersion { .. } => Exit::WrongExpectedVersion,
        StoreError::InvalidStreamId { .. }
        | StoreError::InvalidInput { .. }
        | StoreError::EventTooLarge { .. }
        | StoreError::BatchTooLarge { .. }
        | StoreError::InvalidCheckpoint { .. }
        | StoreError::NotInitialized { .. }
        | StoreError::IdempotencyConflict { .. } => Exit::BadInput,
        _ => Exit::Failure,
    }
}

/// The exit code of an error: the first [`Reported`], [`BadInput`] or [`StoreError`] in its chain
/// decides; anything else is [`Exit::Failure`].
pub fn exit_for(e: &anyhow::Error) -> Exit {
    for cause in e.chain() {
        if let Some(r) = cause.downcast_ref::<Reported>() {
            return r.0;
        }
        if cause.downcast_ref::<BadInput>().is_some() {
            return Exit::BadInput;
        }
        if let Some(s) = cause.downcast_ref::<StoreError>() {
            return store_error_exit(s);
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            return Exit::Ok;
        }
    }
    Exit::Failure
}

/// The error as one line for stderr: each cause in the chain once, skipping causes the message
/// before them already contains (store errors quote their source).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// What to run about an error, when the tool knows: the one place the CLI adds its command hints
/// to the stores' errors (which say what is wrong, not which command fixes it).
pub fn hint(e: &anyhow::Error) -> Option<&'static str> {
    e.chain()
        .filter_map(|c| c.downcast_ref::<StoreError>())
        .find_map(|s| match s {
            StoreError::NotInitialized { .. } => Some(
                "run `sekiban --store URL init` to create or migrate the store (or deploy the templates in infra/)",
            ),
            StoreError::InvalidCheckpoint { .. } => Some(
                "a checkpoint only works on the store (and table) that handed it out; start again with --from beginning or now",
            ),
            _ => None,
        })
}

/// Whether the error is only a closed stdout (`sekiban events … | head`), which is not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekiban_core::{ExpectedVersion, StreamId, Version};

    #[test]
    fn hints_come_from_the_error_kind() {
        let missing = StoreError::NotInitialized {
            what: "table events does not exist".into(),
        };
        let e = anyhow::Error::new(missing).context("open the store");
        assert!(hint(&e).is_some_and(|h| h.contains("init")));
        assert_eq!(exit_for(&e), Exit::BadInput);
        let other = anyhow::Error::new(StoreError::invalid("bad"));
        assert_eq!(hint(&other), None);
    }

    #[test]
    fn codes() {
        let s = StreamId::new("t", "c", "i").unwrap();
        let wrong = StoreError::WrongExpectedVersion {
            stream: s,
            expected: ExpectedVersion::NoStream,
            actual: Version(3),
        };
        let e = anyhow::Error::new(wrong).context("append");
        assert_eq!(exit_for(&e), Exit::WrongExpectedVersion);
        assert_eq!(exit_for(&bad_input("x")), Exit::BadInput);
        assert_eq!(
            exit_for(&anyhow::Error::new(StoreError::invalid("x"))),
            Exit::BadInput
        );
        assert_eq!(exit_for(&anyhow::anyhow!("other")), Exit::Failure);
        assert_eq!(
            exit_for(&anyhow::Error::new(Reported(Exit::Failure))),
            Exit::Failure
        );
    }

    #[test]
    fn text_skips_repeated_causes() {
        let e = anyhow::Error::new(StoreError::backend("open", std::io::Error::other("disk")));
        assert_eq!(error_text(&e), "backend error: open: disk");
        let e = bad_input("inner").context("outer");
        assert_eq!(error_text(&e), "outer: inner");
    }
}
