//! Typed configuration: from code, from a URL, or from the environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sekiban_core::{Limits, StoreError};
use serde::{Deserialize, Serialize};

/// Environment variable [`SqliteConfig::from_env`] reads: a `sqlite:` URL or a plain file path.
pub const ENV_URL: &str = "SEKIBAN_SQLITE_URL";

/// Where the database lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlitePath {
    /// A private in-memory database, gone when the store is dropped.
    Memory,
    /// A file, created with its schema when missing; its directory must exist.
    File(PathBuf),
}

/// SQLite's `synchronous` setting for the database file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Synchronous {
    /// Every commit is on disk before the append returns (the default).
    Full,
    /// WAL commits survive a process crash but may be lost on power failure.
    Normal,
}

/// Configuration of a [`crate::SqliteEventStore`].
///
/// ```
/// use sekiban_sqlite::{SqliteConfig, SqlitePath, Synchronous};
/// let c = SqliteConfig::from_url("sqlite:///var/lib/app/events.db?synchronous=normal&busy_timeout_ms=2000").unwrap();
/// assert_eq!(c.path, SqlitePath::File("/var/lib/app/events.db".into()));
/// assert_eq!(c.synchronous, Synchronous::Normal);
/// assert_eq!(SqliteConfig::from_url("sqlite::memory:").unwrap().path, SqlitePath::Memory);
/// let c = SqliteConfig::from_url("sqlite://events.db?wal_limit_kib=1024&watch_ms=off").unwrap();
/// assert_eq!((c.wal_limit, c.watch_interval), (1024 * 1024, None));
/// assert!(SqliteConfig::from_url("sqlite://events.db?wal_limit_kib=8").is_err());
/// let e = SqliteConfig::from_url("sqlite://events.db?colour=blue").unwrap_err().to_string();
/// assert!(e.contains("colour") && e.contains("watch_ms"), "{e}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// The database.
    pub path: SqlitePath,
    /// Durability of commits.
    pub synchronous: Synchronous,
    /// How long a write waits for another process's write lock before failing with
    /// `StoreError::Unavailable`.
    pub busy_timeout: Duration,
    /// Reader connections (file databases; an in-memory database has one connection).
    pub readers: usize,
    /// Directory for offloaded snapshots; default: `<database file>.blobs/`, or memory for
    /// an in-memory database.
    pub blob_dir: Option<PathBuf>,
    /// The bound of the `-wal` file, in bytes (default [`DEFAULT_WAL_LIMIT`]): SQLite's own
    /// checkpoints start at half of it, a commit that leaves the file larger is followed by a
    /// checkpoint that waits for readers and truncates it, and a WAL reset truncates it to this
    /// size (`journal_size_limit`). It can exceed the bound by the commit that crosses it until
    /// that checkpoint is done.
    pub wal_limit: u64,
    /// How often a store with following feed readers checks whether another process committed
    /// (`PRAGMA data_version`, a read of shared memory); `None`: never, so commits of other
    /// processes are seen at the feed poll interval.
    pub watch_interval: Option<Duration>,
    /// The store's limits.
    pub limits: Limits,
}

/// The default bound of the `-wal` file: 4 MiB.
pub const DEFAULT_WAL_LIMIT: u64 = 4 * 1024 * 1024;

/// How often a store with following feed readers checks for other processes' commits: 20 ms.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// The limits of a SQLite store: the SQL stores' ([`sekiban_core::backend::sql::limits`]),
/// 500 events a page.
pub fn default_limits() -> Limits {
    sekiban_core::backend::sql::limits(500)
}

fn bad(url: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::invalid(format!(
        "SQLite URL {url:?}: {why}; use sqlite::memory:, sqlite:///absolute/path.db or sqlite://relative/path.db"
    ))
}

impl SqliteConfig {
    /// A file database with default settings.
    pub fn file(path: impl AsRef<Path>) -> Self {
        Self::with_path(SqlitePath::File(path.as_ref().to_path_buf()))
    }

    /// A private in-memory database with default settings.
    pub fn memory() -> Self {
        Self::with_path(SqlitePath::Memory)
    }

    fn with_path(path: SqlitePath) -> Self {
        SqliteConfig {
            path,
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(30),
            readers: 2,
            blob_dir: None,
            wal_limit: DEFAULT_WAL_LIMIT,
            watch_interval: Some(DEFAULT_WATCH_INTERVAL),
            limits: default_limits(),
        }
    }

    /// Parses `sqlite::memory:`, `sqlite://:memory:`, `sqlite:///abs/path.db`,
    /// `sqlite://rel/path.db` or a plain path, with optional query parameters `synchronous`
    /// (`full`|`normal`), `busy_timeout_ms`, `readers`, `blobs` (a directory or `file://` URL),
    /// `wal_limit_kib` (the WAL bound in KiB, at least 64) and `watch_ms` (how often followers
    /// look for other processes' commits, 1 to 1000, or `off`).
    ///
    /// The path and the values are percent-decoded (`sqlite:///tmp/my%20events.db`).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let path = match base {
            "sqlite::memory:" | "sqlite://:memory:" | ":memory:" => SqlitePath::Memory,
            _ => {
                let p = base
                    .strip_prefix("sqlite://")
                    .or_else(|| base.strip_prefix("sqlite:"))
                    .unwrap_or(base);
                let p = percent_encoding::percent_decode_str(p)
                    .decode_utf8()
                    .map_err(|e| bad(url, format!("the path is not UTF-8 once decoded ({e})")))?;
                if p.is_empty() {
                    return Err(bad(url, "no file path"));
                }
                SqlitePath::File(PathBuf::from(&*p))
            }
        };
        let mut config = Self::with_path(path);
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = &*value;
            match &*key {
                "synchronous" => {
                    config.synchronous = match value.to_ascii_lowercase().as_str() {
                        "full" => Synchronous::Full,
                        "normal" => Synchronous::Normal,
                        other => {
                            return Err(bad(
                                url,
                                format!("synchronous={other} is not full or normal"),
                            ));
                        }
                    }
                }
                "busy_timeout_ms" => {
                    let ms: u64 = value.parse().map_err(|_| {
                        bad(url, format!("busy_timeout_ms={value} is not a number"))
                    })?;
                    config.busy_timeout = Duration::from_millis(ms);
                }
                "readers" => {
                    config.readers =
                        value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                            bad(url, format!("readers={value} is not a number ≥ 1"))
                        })?;
                }
                "wal_limit_kib" => {
                    let kib: u64 = value.parse().ok().filter(|n| *n >= 64).ok_or_else(|| {
                        bad(url, format!("wal_limit_kib={value} is not a number ≥ 64"))
                    })?;
                    config.wal_limit = kib.saturating_mul(1024);
                }
                "watch_ms" => {
                    config.watch_interval = match value {
                        "off" => None,
                        ms => Some(Duration::from_millis(
                            ms.parse()
                                .ok()
                                .filter(|n| (1..=1000).contains(n))
                                .ok_or_else(|| {
                                    bad(url, format!("watch_ms={ms} is not 1 to 1000 or off"))
                                })?,
                        )),
                    }
                }
                "blobs" => {
                    let dir = value.strip_prefix("file://").unwrap_or(value);
                    config.blob_dir = Some(PathBuf::from(dir));
                }
                other => {
                    return Err(bad(
                        url,
                        format!(
                            "unknown parameter {other:?}; the parameters are synchronous, \
                             busy_timeout_ms, readers, wal_limit_kib, watch_ms and blobs"
                        ),
                    ));
                }
            }
        }
        Ok(config)
    }

    /// Reads [`ENV_URL`] (`SEKIBAN_SQLITE_URL`).
    pub fn from_env() -> Result<Self, StoreError> {
        match std::env::var(ENV_URL) {
            Ok(url) if !url.is_empty() => Self::from_url(&url),
            _ => Err(StoreError::invalid(format!(
                "{ENV_URL} is not set; set it to a sqlite: URL such as sqlite:///tmp/events.db"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        for memory in ["sqlite::memory:", "sqlite://:memory:", ":memory:"] {
            assert_eq!(
                SqliteConfig::from_url(memory).unwrap().path,
                SqlitePath::Memory
            );
        }
        for (url, path) in [
            ("sqlite:///tmp/events.db", "/tmp/events.db"),
            ("sqlite://data/events.db", "data/events.db"),
            ("sqlite:events.db", "events.db"),
            ("/tmp/plain.db", "/tmp/plain.db"),
            ("sqlite:///tmp/my%20events%3F.db", "/tmp/my events?.db"),
        ] {
            let c = SqliteConfig::from_url(url).unwrap();
            assert_eq!(c.path, SqlitePath::File(PathBuf::from(path)), "{url}");
        }
        let c = SqliteConfig::from_url(
            "sqlite:///tmp/e.db?synchronous=normal&readers=3&watch_ms=off&blobs=/tmp/snap%20shots",
        )
        .unwrap();
        assert_eq!(c.synchronous, Synchronous::Normal);
        assert_eq!(c.readers, 3);
        assert_eq!(c.watch_interval, None);
        assert_eq!(c.blob_dir, Some(PathBuf::from("/tmp/snap shots")));
    }

    #[test]
    fn bad_urls_are_refused_with_the_known_parameters() {
        let e = SqliteConfig::from_url("sqlite:///tmp/e.db?colour=blue").unwrap_err();
        assert!(
            e.to_string().contains(
                "synchronous, busy_timeout_ms, readers, wal_limit_kib, watch_ms and blobs"
            ),
            "{e}"
        );
        for bad in [
            "sqlite://",
            "sqlite:///tmp/e.db?readers=0",
            "sqlite:///tmp/e.db?synchronous=sometimes",
            "sqlite:///tmp/e.db?wal_limit_kib=1",
            "sqlite:///tmp/e.db?watch_ms=5000",
            "sqlite:///tmp/%ff.db",
        ] {
            assert!(
                matches!(
                    SqliteConfig::from_url(bad),
                    Err(StoreError::InvalidInput { .. })
                ),
                "{bad}"
            );
        }
    }
}
