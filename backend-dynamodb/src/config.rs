//! Where the store lives: `dynamodb://TABLE?region=…&endpoint=…&bucket=…&s3_endpoint=…&blobs=…`.

use sekiban_core::{Result, StoreError};

/// How to reach the table (and, for large snapshots, the bucket).
///
/// ```
/// use sekiban_dynamodb::DynamoDbConfig;
/// let c = DynamoDbConfig::from_url("dynamodb://events?region=eu-west-1&endpoint=http://127.0.0.1:8000").unwrap();
/// assert_eq!(c.table, "events");
/// assert_eq!(c.region.as_deref(), Some("eu-west-1"));
/// assert!(DynamoDbConfig::from_url("dynamodb://a?colour=blue").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DynamoDbConfig {
    /// The table: 3 to 255 characters of `a-z A-Z 0-9 _ - .`.
    pub table: String,
    /// The region; `None`: the AWS environment's (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// Another endpoint than AWS's (DynamoDB Local: `http://127.0.0.1:8000`).
    pub endpoint: Option<String>,
    /// The S3 bucket large snapshots go to; `None`: no offload (snapshots above the inline
    /// limit are refused).
    pub bucket: Option<String>,
    /// Another S3 endpoint than AWS's (an emulator).
    pub s3_endpoint: Option<String>,
    /// A local directory for snapshot blobs instead of a bucket (development and tests).
    pub blobs: Option<String>,
    /// How long the table's stream keeps records: 24 hours on AWS. The feed treats records of
    /// writes older than this as trimmed, and a `Beginning` replay whose table scan outlasts it
    /// scans again for what changed meanwhile. Shorter only to test expiry.
    pub stream_retention: std::time::Duration,
    /// How long before a `Beginning` replay's start its table scan stops and Streams takes
    /// over, by the time each write records: it covers requests still in flight when the scan
    /// starts and writers' clocks out of step. Two minutes; zero in tests, to make the scan carry
    /// what was just written.
    pub replay_margin: std::time::Duration,
    /// The records of each shard the store's shared shard poller keeps for its feeds, in bytes
    /// (8 MiB): a feed further behind reads the shard alone until it catches up.
    pub feed_buffer_bytes: usize,
    /// Attempts the SDK makes at one request, the first included: its standard retry policy
    /// (exponential backoff with jitter from 25 ms up to 2 s) on throttling, transaction
    /// conflicts, 5xx answers, timeouts and broken connections. 4 by default; URL `retries=N`
    /// (1 to 100; 1 never retries). Every attempt is a round trip, every retry counted in
    /// `costs()`.
    pub retry_attempts: u32,
}

impl DynamoDbConfig {
    /// A table reached through the AWS environment (region, credentials, endpoint).
    pub fn new(table: impl Into<String>) -> Result<Self> {
        let table = table.into();
        check_table_name(&table)?;
        Ok(DynamoDbConfig {
            table,
            region: None,
            endpoint: None,
            bucket: None,
            s3_endpoint: None,
            blobs: None,
            stream_retention: std::time::Duration::from_secs(24 * 3600),
            replay_margin: std::time::Duration::from_secs(120),
            feed_buffer_bytes: 8 << 20,
            retry_attempts: 4,
        })
    }

    /// Parses `dynamodb://TABLE?region=R&endpoint=URL&bucket=B&s3_endpoint=URL&blobs=DIR&retries=N`
    /// (every parameter optional; values percent-decoded, so a `&` or `=` in one is `%26`,
    /// `%3D`). The table is the URL's host: no path, port or user.
    pub fn from_url(url: &str) -> Result<Self> {
        const KNOWN: &str = "region, endpoint, bucket, s3_endpoint, blobs and retries";
        let bad = |why: String| {
            StoreError::invalid(format!(
                "{url:?}: {why}; the URL is dynamodb://TABLE?{KNOWN}"
            ))
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(format!("not a URL ({e})")))?;
        if parsed.scheme() != "dynamodb" {
            return Err(StoreError::invalid(format!(
                "{url:?} is not a dynamodb:// URL"
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() || parsed.port().is_some() {
            return Err(bad("a table takes no user, password or port".into()));
        }
        if !parsed.path().is_empty() {
            return Err(bad(format!(
                "the table name {:?} has a path after it",
                parsed.path()
            )));
        }
        let table = parsed.host_str().unwrap_or_default();
        let mut c = DynamoDbConfig::new(table).map_err(|e| bad(e.to_string()))?;
        for (key, value) in parsed.query_pairs() {
            if value.is_empty() {
                return Err(bad(format!("parameter {key:?} has no value")));
            }
            if key == "retries" {
                c.retry_attempts = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "retries={value} is not a number of attempts in 1..=100"
                        ))
                    })?;
                continue;
            }
            let slot = match &*key {
                "region" => &mut c.region,
                "endpoint" => &mut c.endpoint,
                "bucket" => &mut c.bucket,
                "s3_endpoint" => &mut c.s3_endpoint,
                "blobs" => &mut c.blobs,
                _ => {
                    return Err(bad(format!(
                        "unknown parameter {key:?}; the parameters are {KNOWN}"
                    )));
                }
            };
            *slot = Some(value.into_owned());
        }
        Ok(c)
    }
}

/// DynamoDB's rule for table names.
fn check_table_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if !(3..=255).contains(&name.len()) || !name.chars().all(ok_char) {
        return Err(StoreError::invalid(format!(
            "table name {name:?} must be 3 to 255 characters of a-z, A-Z, 0-9, _, - and ."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = DynamoDbConfig::from_url(
            "dynamodb://my.table-1?endpoint=http://127.0.0.1:8000&bucket=snaps&s3_endpoint=http://127.0.0.1:9000",
        )
        .unwrap();
        assert_eq!(c.table, "my.table-1");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(c.bucket.as_deref(), Some("snaps"));
        assert_eq!(c.s3_endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.region, None);
        for bad in [
            "sqlite://x",
            "dynamodb://",
            "dynamodb://ab",
            "dynamodb://a/b",
            "dynamodb://table?region",
            "dynamodb://table?region=",
            "dynamodb://table?colour=blue",
        ] {
            assert!(
                matches!(
                    DynamoDbConfig::from_url(bad),
                    Err(StoreError::InvalidInput { .. })
                ),
                "{bad}"
            );
        }
        // Values are percent-decoded; an IPv6 endpoint and upper-case table names pass.
        let c = DynamoDbConfig::from_url(
            "dynamodb://Orders_2024?endpoint=http://[::1]:8000&blobs=/tmp/snap%20shots%26more",
        )
        .unwrap();
        assert_eq!(c.table, "Orders_2024");
        assert_eq!(c.endpoint.as_deref(), Some("http://[::1]:8000"));
        assert_eq!(c.blobs.as_deref(), Some("/tmp/snap shots&more"));
        let unknown = DynamoDbConfig::from_url("dynamodb://table?colour=blue").unwrap_err();
        assert!(
            unknown
                .to_string()
                .contains("region, endpoint, bucket, s3_endpoint, blobs and retries"),
            "{unknown}"
        );
        for bad in [
            "dynamodb://u:p@table",
            "dynamodb://table:8000",
            "dynamodb://table/",
        ] {
            assert!(DynamoDbConfig::from_url(bad).is_err(), "{bad}");
        }
        assert!(DynamoDbConfig::new("x".repeat(255)).is_ok());
        assert!(DynamoDbConfig::new("x".repeat(256)).is_err());
    }
}
