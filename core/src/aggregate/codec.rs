//! Typed events ↔ stored events: the event type name is the enum variant, the schema version
//! comes from the type, older versions are upcast on read.

use bytes::Bytes;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Serialize, forward_to_deserialize_any};
use serde_json::Value;

use crate::event::{EventData, RecordedEvent};

/// A domain event: an externally tagged serde enum (serde's default), e.g.
/// `enum AccountEvent { Opened { owner: String }, Deposited { amount: i64 } }`.
///
/// The stored event type is the variant's (serde) name, the data the variant's fields as JSON.
pub trait DomainEvent: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The schema version new events are written with.
    const SCHEMA_VERSION: u32 = 1;

    /// Turns the JSON data of an event stored with an older `schema_version` into the shape of
    /// [`Self::SCHEMA_VERSION`]. The default knows no older versions.
    fn upcast(event_type: &str, schema_version: u32, data: Value) -> Result<Value, String> {
        let _ = data;
        Err(format!(
            "{event_type} has schema version {schema_version} and no upcaster to version {}",
            Self::SCHEMA_VERSION
        ))
    }
}

/// Why an event could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The stored event type is not a variant of the event enum (renamed or removed in code).
    #[error(
        "event {stream} v{version} has type {event_type:?}, which this code does not know (known: {known:?}); add the variant back or an upcaster that maps it"
    )]
    UnknownEventType {
        /// Stream and version of the event.
        stream: String,
        /// Its version.
        version: u64,
        /// The stored type.
        event_type: String,
        /// The variants the code knows.
        known: Vec<&'static str>,
    },
    /// The event was written by newer code.
    #[error(
        "event {stream} v{version} has schema version {found}, newer than this code's {current}; upgrade the code"
    )]
    NewerSchema {
        /// Stream of the event.
        stream: String,
        /// Its version.
        version: u64,
        /// Its schema version.
        found: u32,
        /// The code's schema version.
        current: u32,
    },
    /// The data does not decode (or an upcaster failed).
    #[error("event {stream} v{version} ({event_type}) does not decode: {reason}")]
    Decode {
        /// Stream of the event.
        stream: String,
        /// Its version.
        version: u64,
        /// The stored type.
        event_type: String,
        /// What failed.
        reason: String,
    },
    /// A value could not be encoded, or the event type is not an externally tagged enum.
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// The variant names of an enum, read from its `Deserialize` impl.
pub fn variant_names<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let mut found = None;
    let _ = T::deserialize(Introspect(&mut found));
    found
}

struct Introspect<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for Introspect<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not an enum"))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(variants);
        Err(de::Error::custom("variants read"))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// Encodes a domain event as [`EventData`] with a fresh id.
pub fn encode<E: DomainEvent>(event: &E) -> Result<EventData, CodecError> {
    let value = serde_json::to_value(event).map_err(|e| CodecError::Encode(e.to_string()))?;
    let (event_type, data) = match value {
        Value::String(unit) => (unit, Value::Null),
        Value::Object(map) if map.len() == 1 => match map.into_iter().next() {
            Some((k, v)) => (k, v),
            None => return Err(CodecError::Encode("an empty object".into())),
        },
        other => {
            return Err(CodecError::Encode(format!(
                "{} serialized to {other}; a domain event must be an externally tagged enum",
                std::any::type_name::<E>()
            )));
        }
    };
    let bytes = serde_json::to_vec(&data).map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(EventData::new(event_type, Bytes::from(bytes)).with_schema_version(E::SCHEMA_VERSION))
}

/// Decodes a stored event, upcasting older schema versions.
pub fn decode<E: DomainEvent>(recorded: &RecordedEvent) -> Result<E, CodecError> {
    let stream = recorded.stream.to_string();
    let version = recorded.version.0;
    let event_type = recorded.event_type.as_str();
    if let Some(known) = variant_names::<E>()
        && !known.contains(&event_type)
    {
        return Err(CodecError::UnknownEventType {
            stream,
            version,
            event_type: event_type.to_string(),
            known: known.to_vec(),
        });
    }
    let fail = |reason: String| CodecError::Decode {
        stream: stream.clone(),
        version,
        event_type: event_type.to_string(),
        reason,
    };
    let mut data: Value =
        serde_json::from_slice(&recorded.data).map_err(|e| fail(e.to_string()))?;
    match recorded.schema_version.cmp(&E::SCHEMA_VERSION) {
        std::cmp::Ordering::Less => {
            data = E::upcast(event_type, recorded.schema_version, data).map_err(&fail)?;
        }
        std::cmp::Ordering::Greater => {
            return Err(CodecError::NewerSchema {
                stream,
                version,
                found: recorded.schema_version,
                current: E::SCHEMA_VERSION,
            });
        }
        std::cmp::Ordering::Equal => {}
    }
    let tagged = match data {
        Value::Null => Value::String(event_type.to_string()),
        data => Value::Object([(event_type.to_string(), data)].into_iter().collect()),
    };
    serde_json::from_value(tagged).map_err(|e| fail(e.to_string()))
}
