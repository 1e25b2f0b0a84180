//! Typed configuration: from a URL or the environment. `Debug` hides the password.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use sekiban_core::backend::RetryBudget;
use sekiban_core::{Limits, StoreError};

/// Environment variable [`PostgresConfig::from_env`] reads.
pub const ENV_URL: &str = "SEKIBAN_POSTGRES_URL";

/// Longest schema name (bytes): the notification channel `<schema>.feed` must fit in 63.
const MAX_SCHEMA_LEN: usize = 50;

/// Default [`PostgresConfig::notify_interval`]: under a steady stream of commits, waiting readers
/// wake at most this much later, and one `NOTIFY` serves all commits of the interval.
pub const DEFAULT_NOTIFY_INTERVAL: Duration = Duration::from_millis(5);

/// Default [`PostgresConfig::idle_timeout`]: a connection unused this long is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Configuration of a [`crate::PostgresEventStore`].
///
/// ```
/// use sekiban_postgres::PostgresConfig;
/// let c = PostgresConfig::from_url("postgres://app:secret@db:5432/events?schema=billing&pool=8").unwrap();
/// assert_eq!(c.schema, "billing");
/// assert_eq!(c.pool_size, 8);
/// assert!(!format!("{c:?}").contains("secret"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// The server: a `postgres://` URL without sekiban's own parameters.
    pub url: String,
    /// Schema holding the store's tables (several apps or tenants may share one database).
    pub schema: String,
    /// Connections in the pool at most. They are opened when work needs them (a one-shot
    /// command opens one), and each prepares a statement the first time it runs it.
    pub pool_size: usize,
    /// How long a pooled connection may sit unused before it is closed (URL `idle_ms=N`,
    /// default 60 s; `off`: never). `None` keeps every connection opened until the store closes.
    pub idle_timeout: Option<Duration>,
    /// How long to wait for a connection (connect or pool) before `Unavailable`.
    pub connect_timeout: Duration,
    /// How often, at most, the store announces its commits to waiting feed readers with a
    /// `NOTIFY` (the first commit after a quiet spell is announced at once; commits within the
    /// interval after it share the next announcement). `None`: never — readers then see commits
    /// at their next poll (`limits.feed_poll_interval`); for processes that only write.
    pub notify_interval: Option<Duration>,
    /// Directory for offloaded snapshots (default: in memory, which a multi-process deployment
    /// must replace with a shared blob store: `PostgresEventStore::connect_with_blobs`).
    pub blob_dir: Option<PathBuf>,
    /// How often an operation is tried when the connection fails or the server answers a
    /// transient error (a serialization failure, a deadlock, a restart): every attempt counted,
    /// the first included (URL `retries=N`, default 4; 1 never retries). Every write the store
    /// retries recognises its own earlier attempt, so a retried append, checkpoint save or
    /// delete answers its true result.
    pub retry: RetryBudget,
    /// The store's limits.
    pub limits: Limits,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("idle_timeout", &self.idle_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("notify_interval", &self.notify_interval)
            .field("retry", &self.retry)
            .field("blob_dir", &self.blob_dir)
            .finish()
    }
}

/// The URL with its password replaced by `***`. A password may hold `@`, `:` or `/` (raw or
/// percent-encoded): the user information ends at the authority's last `@`, and a URL that does
/// not parse is hidden from its first `:` after the user up to its last `@`.
pub(crate) fn redact(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        if parsed.password().is_some() && parsed.set_password(Some("***")).is_ok() {
            return parsed.to_string();
        }
        if parsed.password().is_none() {
            return url.to_string();
        }
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((user_pass, host)) => match user_pass.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// sekiban's own parameters of a PostgreSQL URL.
pub const SEKIBAN_PARAMETERS: &[&str] = &[
    "schema",
    "pool",
    "idle_ms",
    "connect_timeout_ms",
    "notify_ms",
    "retries",
    "blobs",
];

/// The driver's parameters (`tokio-postgres`), passed on to it.
pub const DRIVER_PARAMETERS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslmode",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// The limits of a PostgreSQL store: the SQL stores' ([`sekiban_core::backend::sql::limits`]),
/// 1 000 events a page.
pub fn default_limits() -> Limits {
    sekiban_core::backend::sql::limits(1000)
}

fn bad(url: &str, why: impl fmt::Display) -> StoreError {
    StoreError::invalid(format!(
        "PostgreSQL URL {}: {why}; use postgres://user[:password]@host[:port]/database[?schema=NAME&pool=N&idle_ms=N|off&notify_ms=N|off&retries=N&blobs=DIR]",
        redact(url)
    ))
}

/// Checks a schema name: 1..=63 of lowercase letters, digits and `_`, not starting with a digit.
pub fn check_schema(schema: &str) -> Result<(), StoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= MAX_SCHEMA_LEN
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(format!(
            "schema name {schema:?}: use 1..={MAX_SCHEMA_LEN} of a-z, 0-9 and _, not starting with a digit"
        )))
    }
}

impl PostgresConfig {
    /// Parses a `postgres://` (or `postgresql://`) URL; sekiban's parameters `schema`, `pool`,
    /// `idle_ms` and `notify_ms` (a number of milliseconds, or `off`), `connect_timeout_ms`,
    /// `retries` and `blobs` are taken out, the rest is passed to the driver.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let parsed = url::Url::parse(url).map_err(|e| bad(url, e))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(bad(url, "not a postgres:// URL"));
        }
        let mut config = PostgresConfig {
            url: String::new(),
            schema: "sekiban".into(),
            pool_size: 16,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            connect_timeout: Duration::from_secs(10),
            notify_interval: Some(DEFAULT_NOTIFY_INTERVAL),
            blob_dir: None,
            retry: RetryBudget::default(),
            limits: default_limits(),
        };
        // The driver's parameters go on as written (it decodes them itself).
        let mut passed = Vec::new();
        for raw in parsed
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let Some((key, value)) = url::form_urlencoded::parse(raw.as_bytes()).next() else {
                continue;
            };
            let value = value.as_ref();
            match key.as_ref() {
                "schema" => {
                    check_schema(value)?;
                    config.schema = value.to_string();
                }
                "pool" => {
                    config.pool_size = value
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad(url, format!("pool={value} is not a number ≥ 1")))?;
                }
                "idle_ms" => {
                    config.idle_timeout = match value {
                        "off" => None,
                        ms => Some(Duration::from_millis(
                            ms.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                                bad(url, format!("idle_ms={value} is not a number ≥ 1 or `off`"))
                            })?,
                        )),
                    };
                }
                "connect_timeout_ms" => {
                    let ms: u64 = value.parse().map_err(|_| {
                        bad(url, format!("connect_timeout_ms={value} is not a number"))
                    })?;
                    config.connect_timeout = Duration::from_millis(ms);
                }
                "notify_ms" => {
                    config.notify_interval = match value {
                        "off" => None,
                        ms => Some(Duration::from_millis(ms.parse().map_err(|_| {
                            bad(url, format!("notify_ms={value} is not a number or `off`"))
                        })?)),
                    };
                }
                "retries" => {
                    let n: u32 = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| {
                            bad(
                                url,
                                format!("retries={value} is not a number of attempts in 1..=100"),
                            )
                        })?;
                    config.retry = RetryBudget::attempts(n);
                }
                "blobs" => {
                    config.blob_dir = Some(PathBuf::from(
                        value.strip_prefix("file://").unwrap_or(value),
                    ))
                }
                key if DRIVER_PARAMETERS.contains(&key) => passed.push(raw),
                key => {
                    return Err(bad(
                        url,
                        format!(
                            "unknown parameter {key:?}; sekiban's are {}, the driver's {}",
                            SEKIBAN_PARAMETERS.join(", "),
                            DRIVER_PARAMETERS.join(", ")
                        ),
                    ));
                }
            }
        }
        let mut base = parsed.clone();
        base.set_query((!passed.is_empty()).then(|| passed.join("&")).as_deref());
        base.set_fragment(None);
        config.url = base.to_string();
        config
            .url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| bad(url, e))?;
        Ok(config)
    }

    /// Reads [`ENV_URL`] (`SEKIBAN_POSTGRES_URL`).
    pub fn from_env() -> Result<Self, StoreError> {
        match std::env::var(ENV_URL) {
            Ok(url) if !url.is_empty() => Self::from_url(&url),
            _ => Err(StoreError::invalid(format!(
                "{ENV_URL} is not set; `bash scripts/test.sh` sets it (it starts or finds a server), \
                 or set it to a URL such as postgres://postgres@127.0.0.1:5432/test"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, secret) in [
            ("postgres://u:p@ssw0rd@h/db", "ssw0rd"),
            ("postgres://u:p%40ss%3Aw0rd@h:5432/db", "w0rd"),
            ("postgresql://u:s3cret@[::1]:5432/db", "s3cret"),
            ("postgres://u:pa/ss@h/db", "ss@"),
            ("postgres://u:pa:ss@h/db?schema=x", "ss@"),
        ] {
            let shown = redact(url);
            assert!(!shown.contains(secret), "{url} shown as {shown}");
            assert!(shown.contains("***"), "{url} shown as {shown}");
            let e = PostgresConfig::from_url(&format!("{url}?colour=blue"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!e.contains(secret), "{e}");
        }
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn urls_parse_with_encoded_passwords_and_ipv6_hosts() {
        let c = PostgresConfig::from_url(
            "postgres://app:p%40ss%3Aw%2Fd@[::1]:6543/events?schema=billing&sslmode=disable&application_name=a%20b&pool=4",
        )
        .unwrap();
        assert_eq!(c.schema, "billing");
        assert_eq!(c.pool_size, 4);
        assert_eq!(c.retry.attempts, 4);
        let c2 = PostgresConfig::from_url("postgres://u@h/db?retries=1").unwrap();
        assert_eq!(c2.retry.attempts, 1);
        let driver: tokio_postgres::Config = c.url.parse().unwrap();
        assert_eq!(driver.get_password(), Some(&b"p@ss:w/d"[..]));
        assert_eq!(driver.get_ports(), &[6543]);
        assert_eq!(driver.get_application_name(), Some("a b"));
        assert!(format!("{:?}", driver.get_hosts()).contains("::1"));
        // A raw `@` in the password is the password's.
        let c = PostgresConfig::from_url("postgres://app:p@ss@db/events").unwrap();
        let driver: tokio_postgres::Config = c.url.parse().unwrap();
        assert_eq!(driver.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(driver.get_dbname(), Some("events"));
        // A Unix socket directory as the host.
        let c = PostgresConfig::from_url("postgres:///events?host=/var/run/postgresql").unwrap();
        let driver: tokio_postgres::Config = c.url.parse().unwrap();
        assert_eq!(driver.get_dbname(), Some("events"));
        assert!(format!("{:?}", driver.get_hosts()).contains("/var/run/postgresql"));
    }

    #[test]
    fn idle_connections_close_after_a_minute_unless_told_otherwise() {
        let c = PostgresConfig::from_url("postgres://u@h/db").unwrap();
        assert_eq!(c.idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
        let c = PostgresConfig::from_url("postgres://u@h/db?idle_ms=250").unwrap();
        assert_eq!(c.idle_timeout, Some(Duration::from_millis(250)));
        let c = PostgresConfig::from_url("postgres://u@h/db?idle_ms=off").unwrap();
        assert_eq!(c.idle_timeout, None);
    }

    #[test]
    fn unknown_parameters_are_refused_with_the_known_ones() {
        let e = PostgresConfig::from_url("postgres://u@h/db?colour=blue")
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
        for known in SEKIBAN_PARAMETERS.iter().chain(DRIVER_PARAMETERS) {
            assert!(e.contains(known), "{e} lacks {known}");
        }
        for bad in [
            "mysql://u@h/db",
            "postgres://u@h/db?pool=0",
            "postgres://u@h/db?retries=0",
            "postgres://u@h/db?idle_ms=0",
            "postgres://u@h/db?idle_ms=soon",
            "postgres://u@h/db?schema=Bad-Name",
            "postgres://u@h:notaport/db",
        ] {
            assert!(
                matches!(
                    PostgresConfig::from_url(bad),
                    Err(StoreError::InvalidInput { .. })
                ),
                "{bad}"
            );
        }
    }
}
