//! Where the store lives: database, events container and checkpoint container.

use sekiban_core::{Result, StoreError};

/// The database and containers a store uses.
///
/// ```
/// let mut c = sekiban_cosmos::CosmosConfig::new("sekiban", "events");
/// assert_eq!(c.leases, "events-checkpoints");
/// assert_eq!(c.partition_key_paths, ["/t", "/s"]);
/// c.partition_key_paths = ["/tenant".into(), "/stream".into()];
/// assert!(c.validate().is_ok());
/// c.partition_key_paths = ["/tenant".into(), "/v".into()]; // the store's own version field
/// assert!(c.validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosmosConfig {
    /// The database.
    pub database: String,
    /// The container of events, heads, snapshot pointers and deletion markers.
    pub container: String,
    /// The container of checkpoints (by default the events container's name + `-checkpoints`).
    pub leases: String,
    /// The events container's hierarchical partition key: the tenant's path, then the stream's
    /// (by default `/t` and `/s`, [`crate::DEFINITION`]). Each is one top-level property.
    pub partition_key_paths: [String; 2],
    /// Attempts the SDK makes at a request, the first included, for each kind of fault it
    /// retries (throttling; 5xx, 408 and lost connections, each of which the SDK also sends once
    /// more on another connection): URL `retries=N`. `None`: 10 attempts for throttling within
    /// 30 s of waits, 4 for failures (the SDK's documented defaults, set on every request).
    pub retry_attempts: Option<u32>,
}

/// Properties of the store's documents, which a partition key path may not name.
const RESERVED: &[&str] = &[
    "id", "k", "o", "r", "v", "h", "x", "d", "w", "ts", "f", "l", "e", "z", "y", "n", "b", "br",
    "m",
];

impl CosmosConfig {
    /// Events in `container` of `database`, checkpoints beside it in `<container>-checkpoints`.
    pub fn new(database: impl Into<String>, container: impl Into<String>) -> Self {
        let container = container.into();
        CosmosConfig {
            database: database.into(),
            leases: format!("{container}-checkpoints"),
            container,
            partition_key_paths: crate::DEFINITION.partition_key_paths.map(str::to_owned),
            retry_attempts: None,
        }
    }

    /// Checks the names as Cosmos DB takes them: 1 to 255 characters, none of `/ \ ? #`.
    pub fn validate(&self) -> Result<()> {
        for (what, name) in [
            ("database", &self.database),
            ("container", &self.container),
            ("checkpoint container", &self.leases),
        ] {
            if name.is_empty()
                || name.len() > 255
                || name.contains(['/', '\\', '?', '#'])
                || name.ends_with(' ')
            {
                return Err(StoreError::invalid(format!(
                    "{what} name {name:?}: Cosmos DB takes 1 to 255 characters without / \\ ? # or a trailing space"
                )));
            }
        }
        for path in &self.partition_key_paths {
            let name = path.strip_prefix('/').unwrap_or_default();
            let plain = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with('_');
            if !plain || RESERVED.contains(&name) {
                return Err(StoreError::invalid(format!(
                    "partition key path {path:?}: give one top-level property (/name: letters, digits, _; not one of the store's own: {})",
                    RESERVED.join(", ")
                )));
            }
        }
        if self.partition_key_paths[0] == self.partition_key_paths[1] {
            return Err(StoreError::invalid(format!(
                "partition key paths {:?}: the tenant and the stream need a property each",
                self.partition_key_paths
            )));
        }
        if self.leases == self.container {
            return Err(StoreError::invalid(format!(
                "checkpoints in the events container {:?}: their writes would come back on the change feed; name another container",
                self.container
            )));
        }
        Ok(())
    }
}
