//! Stream identifiers, versions and event ids, validated by one rule for every backend.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Longest tenant, in bytes.
pub const MAX_TENANT_LEN: usize = 64;
/// Longest category, in bytes.
pub const MAX_CATEGORY_LEN: usize = 64;
/// Longest stream id, in bytes.
pub const MAX_ID_LEN: usize = 200;
/// The tenant a stream belongs to when none is named.
pub const DEFAULT_TENANT: &str = "default";

/// Which stream: `tenant/category/id`.
///
/// The tenant is the root partition key, the category the aggregate type, the id the instance.
/// All three are checked on construction by one rule, so an id valid here is valid on every backend:
///
/// * tenant and category: 1..=64 ASCII letters, digits, `-` or `_`;
/// * id: 1..=200 ASCII letters, digits or `-`, `_`, `.`, `@`, `=`, `+`, and not `.` or `..`.
///
/// None of these characters is a key separator on any backend (`/`, `|`, `#` are not allowed), so a
/// backend can join the parts without escaping and never ambiguously.
///
/// ```
/// use sekiban_core::StreamId;
/// let s = StreamId::new("acme", "order", "42").unwrap();
/// assert_eq!(s.to_string(), "acme/order/42");
/// assert_eq!("acme/order/42".parse::<StreamId>().unwrap(), s);
/// assert!(StreamId::new("acme", "order", "a/b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawStreamId", into = "RawStreamId")]
pub struct StreamId {
    // Shared: every event read carries its stream, so a clone is a reference count.
    parts: Arc<Parts>,
}

#[derive(PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Parts {
    tenant: String,
    category: String,
    id: String,
}

#[derive(Serialize, Deserialize)]
struct RawStreamId {
    tenant: String,
    category: String,
    id: String,
}

impl TryFrom<RawStreamId> for StreamId {
    type Error = StoreError;
    fn try_from(raw: RawStreamId) -> Result<Self, StoreError> {
        StreamId::new(raw.tenant, raw.category, raw.id)
    }
}

impl From<StreamId> for RawStreamId {
    fn from(s: StreamId) -> Self {
        RawStreamId {
            tenant: s.parts.tenant.clone(),
            category: s.parts.category.clone(),
            id: s.parts.id.clone(),
        }
    }
}

fn check_part(what: &str, value: &str, max: usize, extra: &[u8]) -> Result<(), StoreError> {
    let invalid = |reason: String| {
        Err(StoreError::InvalidStreamId {
            reason: format!("{what} {value:?} {reason}"),
        })
    };
    if value.is_empty() {
        return invalid("is empty; give it at least one character".into());
    }
    if value.len() > max {
        return invalid(format!(
            "is {} bytes long; the maximum is {max}",
            value.len()
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || (c.is_ascii() && extra.contains(&(*c as u8)))))
    {
        let allowed: String = extra.iter().map(|b| *b as char).collect();
        return invalid(format!(
            "contains {c:?}; use ASCII letters, digits and {allowed:?} only"
        ));
    }
    if value == "." || value == ".." {
        return invalid("is a path name; choose another".into());
    }
    Ok(())
}

impl StreamId {
    /// Builds a stream id, checking each part.
    pub fn new(
        tenant: impl Into<String>,
        category: impl Into<String>,
        id: impl Into<String>,
    ) -> Result<Self, StoreError> {
        let (tenant, category, id) = (tenant.into(), category.into(), id.into());
        check_part("tenant", &tenant, MAX_TENANT_LEN, b"-_")?;
        check_part("category", &category, MAX_CATEGORY_LEN, b"-_")?;
        check_part("stream id", &id, MAX_ID_LEN, b"-_.@=+")?;
        Ok(StreamId {
            parts: Arc::new(Parts {
                tenant,
                category,
                id,
            }),
        })
    }

    /// A stream under the [`DEFAULT_TENANT`].
    pub fn in_default_tenant(
        category: impl Into<String>,
        id: impl Into<String>,
    ) -> Result<Self, StoreError> {
        Self::new(DEFAULT_TENANT, category, id)
    }

    /// Checks a tenant name by the same rule as [`StreamId::new`].
    pub fn check_tenant(tenant: &str) -> Result<(), StoreError> {
        check_part("tenant", tenant, MAX_TENANT_LEN, b"-_")
    }

    /// The tenant (root partition key).
    pub fn tenant(&self) -> &str {
        &self.parts.tenant
    }
    /// The category (aggregate type).
    pub fn category(&self) -> &str {
        &self.parts.category
    }
    /// The id inside the category.
    pub fn id(&self) -> &str {
        &self.parts.id
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.tenant(), self.category(), self.id())
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({self})")
    }
}

impl std::str::FromStr for StreamId {
    type Err = StoreError;
    /// Parses `tenant/category/id`.
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let mut parts = s.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(t), Some(c), Some(i)) => StreamId::new(t, c, i),
            _ => Err(StoreError::InvalidStreamId {
                reason: format!("{s:?} is not of the form tenant/category/id"),
            }),
        }
    }
}

/// Position of an event inside its stream: the first event is 1; 0 means "no stream".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Version(pub u64);

impl Version {
    /// The version of a stream that has no events.
    pub const NONE: Version = Version(0);

    /// The version `n` after this one.
    pub fn plus(self, n: u64) -> Version {
        Version(self.0 + n)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The id a caller gives an event; appends are idempotent by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub uuid::Uuid);

impl EventId {
    /// A fresh id: a UUID v7 (the time in milliseconds, then random bits), so the ids of one
    /// stream arrive in order and a store's id index takes an append's ids at its end (a few
    /// pages written per append, not one page per event as random ids would cost).
    pub fn new() -> Self {
        EventId(uuid::Uuid::now_v7())
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_naming_rule() {
        assert!(StreamId::new("a", "b", "c").is_ok());
        assert!(StreamId::new("A-9_z", "Order_Line-2", "x.y@z=1+2").is_ok());
        assert!(StreamId::new("t".repeat(64), "c".repeat(64), "i".repeat(200)).is_ok());
        for (t, c, i) in [
            ("", "c", "i"),
            ("t", "", "i"),
            ("t", "c", ""),
            ("t".repeat(65).leak() as &str, "c", "i"),
            ("t", "c", "i".repeat(201).leak() as &str),
            ("t", "c.d", "i"),
            ("t|u", "c", "i"),
            ("t", "c", "a/b"),
            ("t", "c", "."),
            ("t", "c", ".."),
            ("t", "c", "é"),
        ] {
            assert!(
                matches!(
                    StreamId::new(t, c, i),
                    Err(StoreError::InvalidStreamId { .. })
                ),
                "{t:?}/{c:?}/{i:?} must be refused"
            );
        }
    }

    #[test]
    fn parse_display_and_serde_use_the_same_rule() {
        let s: StreamId = "acme/order/42".parse().unwrap();
        assert_eq!((s.tenant(), s.category(), s.id()), ("acme", "order", "42"));
        assert!("acme/order".parse::<StreamId>().is_err());
        assert!(
            "acme/order/4/2".parse::<StreamId>().is_err(),
            "'/' is not allowed in an id"
        );
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<StreamId>(&json).unwrap(), s);
        let bad = r#"{"tenant":"a","category":"b","id":"x/y"}"#;
        assert!(
            serde_json::from_str::<StreamId>(bad).is_err(),
            "deserializing validates"
        );
    }
}
