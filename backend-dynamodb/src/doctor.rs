//! `DynamoDbTable::diagnose`: a deployed table (and bucket) checked against what the backend
//! needs, writing nothing to the table.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, ConditionCheck, ContinuousBackupsStatus, TableStatus,
    TimeToLiveStatus, TransactWriteItem,
};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use sekiban_core::doctor::Diagnosis;

use crate::error::from_sdk;
use crate::{DynamoDbTable, TABLE, table};

/// The key the permission probes name: no stream id has this form (they hold two `|`), and
/// nothing is ever written under it.
const PROBE: &str = "sekiban-doctor";

/// What an SDK error says, with its code when the service gave one.
fn said<E>(what: &str, e: SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{what} refused: {code}: {message}"),
        (Some(code), None) => format!("{what} refused: {code}"),
        _ => from_sdk(what, e).to_string(),
    }
}

impl DynamoDbTable {
    /// Checks the deployed table (and the bucket `bucket=` names) against what the backend
    /// needs: the table exists, its keys and stream are [`TABLE`]'s, its billing mode, a
    /// single region, no TTL, point-in-time recovery and deletion protection; then that the
    /// credentials may read, write (a conditional write whose condition never holds: nothing
    /// is written), run transactions and read the stream; and that the bucket is reachable and
    /// writable (a probe object is written and deleted). `sekiban doctor` prints the result.
    ///
    /// ```no_run
    /// # async fn run() -> sekiban_core::Result<()> {
    /// use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};
    /// let table = DynamoDbTable::connect(DynamoDbConfig::from_url("dynamodb://events")?).await;
    /// let d = table.diagnose().await;
    /// println!("{d}");
    /// assert!(!d.failed());
    /// # Ok(()) }
    /// ```
    pub async fn diagnose(&self) -> Diagnosis {
        let mut d = Diagnosis::default();
        let name = &self.config.table;
        let t = match table::describe(&self.client, name).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                d.fail(
                    "table",
                    format!(
                        "{name} does not exist in {}: deploy infra/aws (CloudFormation or Terraform) or run `sekiban init`",
                        self.region().unwrap_or("the configured region")
                    ),
                );
                return d;
            }
            Err(e) => {
                d.fail(
                    "table",
                    format!("{e} (the credentials need dynamodb:DescribeTable on it)"),
                );
                return d;
            }
        };
        match t.table_status() {
            Some(TableStatus::Active) => d.ok("table", format!("{name} exists and is active")),
            s => d.warn(
                "table",
                format!("{name} exists but is {s:?}, not active: try again shortly"),
            ),
        }
        let keys = TABLE.key_differences(&t);
        if keys.is_empty() {
            d.ok(
                "keys",
                format!(
                    "{} ({}, HASH) and {} ({}, RANGE), as the backend defines them",
                    TABLE.partition_key.name,
                    TABLE.partition_key.kind,
                    TABLE.sort_key.name,
                    TABLE.sort_key.kind
                ),
            );
        } else {
            d.fail(
                "keys",
                format!(
                    "{}: this table cannot hold a sekiban store; deploy a new one from infra/",
                    keys.join("; ")
                ),
            );
        }
        match TABLE.stream_difference(&t) {
            None => d.ok(
                "stream",
                format!(
                    "enabled, {} (the change feed reads it)",
                    TABLE.stream_view_type
                ),
            ),
            Some(why) => d.fail(
                "stream",
                format!(
                    "{why}: the change feed reads it; enable it with StreamViewType {}",
                    TABLE.stream_view_type
                ),
            ),
        }
        self.billing(&mut d, &t);
        let others = table::other_replica_regions(&t, self.region());
        if others.is_empty() {
            d.ok("region", "a single-region table");
        } else {
            d.fail(
                "region",
                format!(
                    "a Global Table also replicated to {}: writers in two regions would both win an append at one expected version",
                    others.join(", ")
                ),
            );
        }
        match t.deletion_protection_enabled() {
            Some(true) => d.ok("deletion protection", "on"),
            _ => d.warn(
                "deletion protection",
                "off: one DeleteTable call erases every stream; the templates in infra/aws turn it on",
            ),
        }
        self.ttl_and_backups(&mut d).await;
        self.permissions(&mut d, t.latest_stream_arn()).await;
        self.bucket(&mut d).await;
        d
    }

    fn billing(&self, d: &mut Diagnosis, t: &aws_sdk_dynamodb::types::TableDescription) {
        let mode = t.billing_mode_summary().and_then(|b| b.billing_mode());
        let provisioned = t.provisioned_throughput();
        let capacity = (
            provisioned
                .and_then(|p| p.read_capacity_units())
                .unwrap_or(0),
            provisioned
                .and_then(|p| p.write_capacity_units())
                .unwrap_or(0),
        );
        match mode {
            Some(BillingMode::PayPerRequest) => {
                d.ok("billing", "on-demand (PAY_PER_REQUEST): nothing billed for requests while idle")
            }
            // Tables made before on-demand existed report no summary: provisioned, when they
            // have capacity.
            Some(BillingMode::Provisioned) | None if mode.is_some() || capacity != (0, 0) => d
                .warn(
                    "billing",
                    format!(
                        "provisioned, {} RCU / {} WCU: appends past that are throttled (the backend's default is {})",
                        capacity.0, capacity.1, TABLE.billing_mode
                    ),
                ),
            other => d.warn("billing", format!("mode not reported ({other:?})")),
        }
    }

    async fn ttl_and_backups(&self, d: &mut Diagnosis) {
        let name = &self.config.table;
        match self
            .client
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
        {
            Ok(out) => match out
                .time_to_live_description()
                .and_then(|t| t.time_to_live_status())
            {
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling) => d.fail(
                    "ttl",
                    format!(
                        "time to live is on (attribute {}): expiring items would remove events and leave gaps in streams; turn it off",
                        out.time_to_live_description()
                            .and_then(|t| t.attribute_name())
                            .unwrap_or("?")
                    ),
                ),
                _ => d.ok("ttl", "off: no event expires"),
            },
            Err(e) => d.warn(
                "ttl",
                format!(
                    "could not be checked: {} (needs dynamodb:DescribeTimeToLive)",
                    said("describe time to live", e)
                ),
            ),
        }
        match self
            .client
            .describe_continuous_backups()
            .table_name(name)
            .send()
            .await
        {
            Ok(out) => {
                let pitr = out
                    .continuous_backups_description()
                    .and_then(|c| c.point_in_time_recovery_description())
                    .and_then(|p| p.point_in_time_recovery_status());
                match pitr {
                    Some(s) if s.as_str() == "ENABLED" => d.ok("point-in-time recovery", "on"),
                    _ => {
                        let backups = out
                            .continuous_backups_description()
                            .map(|c| c.continuous_backups_status());
                        d.warn(
                            "point-in-time recovery",
                            format!(
                                "off{}: a table damaged by mistake cannot be restored; the templates in infra/aws turn it on",
                                if backups == Some(&ContinuousBackupsStatus::Enabled) {
                                    " (continuous backups are on)"
                                } else {
                                    ""
                                }
                            ),
                        )
                    }
                }
            }
            Err(e) => d.warn(
                "point-in-time recovery",
                format!(
                    "could not be checked: {} (needs dynamodb:DescribeContinuousBackups)",
                    said("describe continuous backups", e)
                ),
            ),
        }
    }

    async fn permissions(&self, d: &mut Diagnosis, stream_arn: Option<&str>) {
        let name = &self.config.table;
        let key = |sk: &str| {
            [
                (
                    TABLE.partition_key.name.to_string(),
                    AttributeValue::S(PROBE.into()),
                ),
                (
                    TABLE.sort_key.name.to_string(),
                    AttributeValue::N(sk.into()),
                ),
            ]
        };
        let read = self
            .client
            .get_item()
            .table_name(name)
            .set_key(Some(key("0").into_iter().collect()))
            .consistent_read(true)
            .send()
            .await;
        match read {
            Ok(_) => d.ok("permission: read", "GetItem answered"),
            Err(e) => d.fail("permission: read", said("GetItem", e)),
        }
        // A condition that never holds: the write is authorised, then refused, and nothing is
        // written.
        let never = "attribute_exists(#k) AND attribute_not_exists(#k)";
        let write = self
            .client
            .put_item()
            .table_name(name)
            .set_item(Some(key("0").into_iter().collect()))
            .condition_expression(never)
            .expression_attribute_names("#k", TABLE.partition_key.name)
            .send()
            .await;
        match write {
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => d.ok(
                "permission: write",
                "a conditional PutItem was allowed (and refused by its condition: nothing written)",
            ),
            Ok(_) => d.fail(
                "permission: write",
                format!("a PutItem whose condition never holds succeeded: remove item {PROBE}/0 and report this"),
            ),
            Err(e) => d.fail("permission: write", said("PutItem", e)),
        }
        let check = ConditionCheck::builder()
            .table_name(name)
            .set_key(Some(key("0").into_iter().collect()))
            .condition_expression("attribute_exists(#k)")
            .expression_attribute_names("#k", TABLE.partition_key.name)
            .build();
        let transact = match check {
            Ok(c) => {
                self.client
                    .transact_write_items()
                    .transact_items(TransactWriteItem::builder().condition_check(c).build())
                    .send()
                    .await
            }
            Err(e) => {
                d.fail(
                    "permission: transactions",
                    format!("cannot build the probe: {e}"),
                );
                return;
            }
        };
        match transact {
            Err(e) if e.code() == Some("TransactionCanceledException") => d.ok(
                "permission: transactions",
                "TransactWriteItems was allowed (its condition check refused it: nothing written)",
            ),
            Ok(_) => d.fail(
                "permission: transactions",
                format!("a condition check on the absent item {PROBE}/0 passed"),
            ),
            Err(e) => d.fail("permission: transactions", said("TransactWriteItems", e)),
        }
        match stream_arn {
            None => d.fail("permission: stream", "the table has no stream to read"),
            Some(arn) => match self
                .streams
                .describe_stream()
                .stream_arn(arn)
                .limit(1)
                .send()
                .await
            {
                Ok(_) => d.ok("permission: stream", "DescribeStream answered"),
                Err(e) => d.fail("permission: stream", said("DescribeStream", e)),
            },
        }
    }

    async fn bucket(&self, d: &mut Diagnosis) {
        let Some(s3) = &self.s3 else {
            match &self.config.blobs {
                Some(dir) => d.ok(
                    "snapshot blobs",
                    format!("a local directory, {dir} (for development)"),
                ),
                None => d.warn(
                    "snapshot blobs",
                    format!(
                        "no bucket: snapshots over {} B are refused; add bucket=NAME to the URL",
                        self.limits.max_inline_snapshot_bytes
                    ),
                ),
            }
            return;
        };
        let bucket = s3.bucket();
        if let Err(e) = s3.check().await {
            d.fail("snapshot bucket", e.to_string());
            return;
        }
        let probe = format!("{PROBE}/{}", uuid::Uuid::new_v4().simple());
        let put = s3
            .client
            .put_object()
            .bucket(bucket)
            .key(&probe)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b""))
            .send()
            .await;
        if let Err(e) = put {
            d.fail(
                "snapshot bucket",
                format!("{bucket} is reachable, but {}", said("PutObject", e)),
            );
            return;
        }
        let read = s3
            .client
            .get_object()
            .bucket(bucket)
            .key(&probe)
            .send()
            .await;
        let delete = s3
            .client
            .delete_object()
            .bucket(bucket)
            .key(&probe)
            .send()
            .await;
        match (read, delete) {
            (Ok(_), Ok(_)) => d.ok(
                "snapshot bucket",
                format!("{bucket}: an empty probe object was written, read and deleted"),
            ),
            (Err(e), _) => d.fail(
                "snapshot bucket",
                format!(
                    "{bucket}: {} (the probe {probe} is left)",
                    said("GetObject", e)
                ),
            ),
            (_, Err(e)) => d.fail(
                "snapshot bucket",
                format!(
                    "{bucket}: {} (the probe {probe} is left)",
                    said("DeleteObject", e)
                ),
            ),
        }
    }
}
