//! One checkpoint format for the stores whose feed is one log: `KIND:IDENTITY:POSITION`.
//!
//! The identity names the one store the position means something in (a database file's id, a
//! cluster and schema): a checkpoint of another store, or of another kind, is
//! `InvalidCheckpoint`, never a silent jump to an unrelated position.

use std::fmt::Display;
use std::str::FromStr;

use crate::error::{Result, StoreError};
use crate::feed::Checkpoint;
use crate::store::MAX_CHECKPOINT_NAME_LEN;

/// Checks a consumer's name for `CheckpointStore`: 1..=200 bytes, no NUL.
///
/// ```
/// use sekiban_core::backend::checkpoint::check_name;
/// assert!(check_name("billing-projection").is_ok());
/// assert!(check_name("").is_err());
/// assert!(check_name("a\0b").is_err());
/// ```
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_CHECKPOINT_NAME_LEN || name.contains('\0') {
        return Err(StoreError::invalid(format!(
            "checkpoint name {name:?} must be 1..={MAX_CHECKPOINT_NAME_LEN} bytes without NUL"
        )));
    }
    Ok(())
}

/// The checkpoints of one store.
///
/// ```
/// use sekiban_core::backend::checkpoint::CheckpointCodec;
/// use sekiban_core::StoreError;
///
/// let codec = CheckpointCodec::new("sqlite", "SQLite database", "f00d");
/// let c = codec.encode(42u64);
/// assert_eq!(c.as_str(), "sqlite:f00d:42");
/// assert_eq!(codec.decode::<u64>(&c).unwrap(), 42);
///
/// let other = CheckpointCodec::new("sqlite", "SQLite database", "beef");
/// assert!(matches!(other.decode::<u64>(&c), Err(StoreError::InvalidCheckpoint { .. })));
/// ```
#[derive(Clone, Debug)]
pub struct CheckpointCodec {
    kind: &'static str,
    what: &'static str,
    identity: String,
}

impl CheckpointCodec {
    /// Checkpoints of kind `kind` (the format's first field), of the store `identity` names;
    /// `what` names such a store in errors ("SQLite database").
    pub fn new(kind: &'static str, what: &'static str, identity: impl Into<String>) -> Self {
        CheckpointCodec {
            kind,
            what,
            identity: identity.into(),
        }
    }

    /// The checkpoint after `position` (written with `Display`, read back with `FromStr`).
    pub fn encode(&self, position: impl Display) -> Checkpoint {
        Checkpoint::new(format!("{}:{}:{position}", self.kind, self.identity))
    }

    /// The position of a checkpoint this store handed out.
    pub fn decode<P: FromStr>(&self, c: &Checkpoint) -> Result<P> {
        let bad = |reason: String| StoreError::InvalidCheckpoint { reason };
        let Some(rest) = c
            .as_str()
            .strip_prefix(self.kind)
            .and_then(|r| r.strip_prefix(':'))
        else {
            return Err(bad(format!("{c} is not a {} checkpoint", self.what)));
        };
        match rest
            .strip_prefix(self.identity.as_str())
            .and_then(|r| r.strip_prefix(':'))
        {
            Some(position) => position
                .parse()
                .map_err(|_| bad(format!("{c} has no valid position"))),
            None => Err(bad(format!(
                "{c} was handed out by another {} (this one is {}); start from the beginning",
                self.what, self.identity
            ))),
        }
    }
}
