//! The table, defined in one place: what `init` creates, what `open` checks, and what the
//! infrastructure templates in `infra/` must declare.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TableDescription, TableStatus,
};
use sekiban_core::{OpKind, Result, StoreError};
use serde::Serialize;

use crate::client::counted_as;
use crate::error::{built, from_sdk};

/// A key attribute: its name and DynamoDB type (`S` string, `N` number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct KeyAttribute {
    /// The attribute name.
    pub name: &'static str,
    /// Its scalar type.
    pub kind: &'static str,
}

/// What every sekiban table is, as data: the key schema, on-demand billing, and a stream of new
/// images (the change feed reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TableDefinition {
    /// The partition key: one stream (tenant, category and id, joined by `|`, which none of
    /// them may contain), or one checkpoint.
    pub partition_key: KeyAttribute,
    /// The sort key: orders a stream's items.
    pub sort_key: KeyAttribute,
    /// `PAY_PER_REQUEST` (on-demand).
    pub billing_mode: &'static str,
    /// `NEW_IMAGE`.
    pub stream_view_type: &'static str,
}

/// The definition of every sekiban table.
///
/// ```
/// let d = sekiban_dynamodb::TABLE;
/// assert_eq!((d.partition_key.name, d.partition_key.kind), ("pk", "S"));
/// assert_eq!((d.sort_key.name, d.sort_key.kind), ("sk", "N"));
/// assert_eq!(d.stream_view_type, "NEW_IMAGE");
/// ```
pub const TABLE: TableDefinition = TableDefinition {
    partition_key: KeyAttribute {
        name: "pk",
        kind: "S",
    },
    sort_key: KeyAttribute {
        name: "sk",
        kind: "N",
    },
    billing_mode: "PAY_PER_REQUEST",
    stream_view_type: "NEW_IMAGE",
};

/// How long `init` waits for a new table to become active.
const ACTIVE_WAIT: Duration = Duration::from_secs(120);

impl TableDefinition {
    fn attribute(key: KeyAttribute) -> Result<AttributeDefinition> {
        built(
            "attribute definition",
            AttributeDefinition::builder()
                .attribute_name(key.name)
                .attribute_type(ScalarAttributeType::from(key.kind))
                .build(),
        )
    }

    fn key(key: KeyAttribute, key_type: KeyType) -> Result<KeySchemaElement> {
        built(
            "key schema",
            KeySchemaElement::builder()
                .attribute_name(key.name)
                .key_type(key_type)
                .build(),
        )
    }

    /// How an existing table differs from this definition, one line per difference; empty
    /// when it matches.
    pub fn differences(&self, t: &TableDescription) -> Vec<String> {
        let mut out = self.key_differences(t);
        out.extend(self.stream_difference(t));
        out
    }

    /// How an existing table's keys (key schema and attribute types) differ from this
    /// definition, one line per difference.
    pub fn key_differences(&self, t: &TableDescription) -> Vec<String> {
        let mut out = Vec::new();
        for (key, key_type) in [
            (self.partition_key, KeyType::Hash),
            (self.sort_key, KeyType::Range),
        ] {
            let in_schema = t
                .key_schema()
                .iter()
                .any(|k| k.attribute_name() == key.name && *k.key_type() == key_type);
            let typed = t
                .attribute_definitions()
                .iter()
                .any(|a| a.attribute_name() == key.name && a.attribute_type().as_str() == key.kind);
            if !in_schema || !typed {
                out.push(format!(
                    "its {} key must be {} of type {}",
                    key_type.as_str(),
                    key.name,
                    key.kind
                ));
            }
        }
        if t.key_schema().len() != 2 {
            out.push(format!(
                "its key schema must have exactly 2 attributes, not {}",
                t.key_schema().len()
            ));
        }
        out
    }

    /// How an existing table's stream differs from this definition, if it does.
    pub fn stream_difference(&self, t: &TableDescription) -> Option<String> {
        let stream = t.stream_specification();
        let enabled = stream.is_some_and(|s| s.stream_enabled());
        let view = stream
            .and_then(|s| s.stream_view_type())
            .map(StreamViewType::as_str);
        (!enabled || view != Some(self.stream_view_type)).then(|| {
            format!(
                "its stream must be enabled with view type {} (found {})",
                self.stream_view_type,
                if enabled {
                    view.unwrap_or("no view type")
                } else {
                    "no stream"
                }
            )
        })
    }
}

/// The regions a table is replicated to besides `own` (a multi-region Global Table).
pub fn other_replica_regions(t: &TableDescription, own: Option<&str>) -> Vec<String> {
    let mut regions: Vec<String> = t
        .replicas()
        .iter()
        .filter_map(|r| r.region_name())
        .filter(|r| Some(*r) != own)
        .map(str::to_string)
        .collect();
    regions.sort();
    regions.dedup();
    regions
}

/// What `init` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// The table was created (and is active).
    Created,
    /// A table of that name existed and matches the definition.
    Existed,
}

/// Describes the table; `None` when it does not exist.
pub(crate) async fn describe(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Option<TableDescription>> {
    let r = counted_as(
        OpKind::Other,
        client.describe_table().table_name(table).send(),
    )
    .await;
    match r {
        Ok(out) => Ok(out.table().cloned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(from_sdk(&format!("describe table {table}"), e)),
    }
}

/// Checks an existing table can hold a sekiban store: it matches [`TABLE`] and is not
/// replicated to another region (two regions accepting writes break the expected-version rule).
pub(crate) fn check(t: &TableDescription, table: &str, own_region: Option<&str>) -> Result<()> {
    let differences = TABLE.differences(t);
    if !differences.is_empty() {
        return Err(StoreError::invalid(format!(
            "table {table} is not a sekiban table: {}; create a new one with DynamoDbTable::init or the templates in infra/",
            differences.join("; ")
        )));
    }
    let others = other_replica_regions(t, own_region);
    if !others.is_empty() {
        return Err(StoreError::Unsupported {
            what: format!(
                "table {table} is a Global Table also replicated to {}: concurrent writers in two regions would both win an append at one expected version; use a single-region table",
                others.join(", ")
            ),
        });
    }
    Ok(())
}

/// Creates the table as [`TABLE`] defines it and waits until it is active; an existing table
/// of that name is checked instead.
pub(crate) async fn create(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    own_region: Option<&str>,
) -> Result<Init> {
    let stream = built(
        "stream specification",
        StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::from(TABLE.stream_view_type))
            .build(),
    )?;
    let request = client
        .create_table()
        .table_name(table)
        .attribute_definitions(TableDefinition::attribute(TABLE.partition_key)?)
        .attribute_definitions(TableDefinition::attribute(TABLE.sort_key)?)
        .key_schema(TableDefinition::key(TABLE.partition_key, KeyType::Hash)?)
        .key_schema(TableDefinition::key(TABLE.sort_key, KeyType::Range)?)
        .billing_mode(BillingMode::from(TABLE.billing_mode))
        .stream_specification(stream);
    let outcome = match counted_as(OpKind::Other, request.send()).await {
        Ok(_) => Init::Created,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Init::Existed
        }
        Err(e) => return Err(from_sdk(&format!("create table {table}"), e)),
    };
    let deadline = tokio::time::Instant::now() + ACTIVE_WAIT;
    loop {
        let Some(t) = describe(client, table).await? else {
            return Err(StoreError::backend(
                format!("create table {table}"),
                "the table was created but cannot be described",
            ));
        };
        if t.table_status() == Some(&TableStatus::Active) {
            check(&t, table, own_region)?;
            return Ok(outcome);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable {
                source: format!("table {table} was not active after {ACTIVE_WAIT:?}").into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::ReplicaDescription;

    fn described(view: Option<StreamViewType>, replicas: &[&str]) -> TableDescription {
        let mut t = TableDescription::builder()
            .attribute_definitions(TableDefinition::attribute(TABLE.partition_key).unwrap())
            .attribute_definitions(TableDefinition::attribute(TABLE.sort_key).unwrap())
            .key_schema(TableDefinition::key(TABLE.partition_key, KeyType::Hash).unwrap())
            .key_schema(TableDefinition::key(TABLE.sort_key, KeyType::Range).unwrap());
        if let Some(view) = view {
            t = t.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(view)
                    .build()
                    .unwrap(),
            );
        }
        for r in replicas {
            t = t.replicas(ReplicaDescription::builder().region_name(*r).build());
        }
        t.build()
    }

    #[test]
    fn a_matching_table_passes() {
        let t = described(Some(StreamViewType::NewImage), &[]);
        assert_eq!(TABLE.differences(&t), Vec::<String>::new());
        assert!(check(&t, "events", Some("eu-west-1")).is_ok());
    }

    #[test]
    fn a_table_without_the_stream_or_with_another_key_is_refused() {
        let no_stream = described(None, &[]);
        let e = check(&no_stream, "events", None).unwrap_err();
        assert!(e.to_string().contains("stream must be enabled"), "{e}");
        let keys_only = described(Some(StreamViewType::KeysOnly), &[]);
        assert_eq!(TABLE.differences(&keys_only).len(), 1);
        let other_key = TableDescription::builder()
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .build();
        let d = TABLE.differences(&other_key);
        assert!(d.iter().any(|l| l.contains("HASH key must be pk")), "{d:?}");
        assert!(
            d.iter().any(|l| l.contains("RANGE key must be sk")),
            "{d:?}"
        );
    }

    #[test]
    fn a_global_table_in_two_regions_is_refused() {
        let one = described(Some(StreamViewType::NewImage), &["eu-west-1"]);
        assert!(check(&one, "events", Some("eu-west-1")).is_ok());
        let two = described(Some(StreamViewType::NewImage), &["eu-west-1", "us-east-1"]);
        let e = check(&two, "events", Some("eu-west-1")).unwrap_err();
        assert!(matches!(e, StoreError::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains("us-east-1"), "{e}");
    }
}
