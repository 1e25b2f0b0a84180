//! Where the store lives: database, events container and checkpoint container.

use sekiban_core::{Result, StoreError};

/// The database and containers a store uses.
///
/// ```
/// let c = sekiban_cosmos::CosmosConfig::new("sekiban", "events");
/// assert_eq!(c.leases, "events-checkpoints");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosmosConfig {
    /// The database.
    pub database: String,
    /// The container of events, heads, snapshot pointers and deletion markers.
    pub container: String,
    /// The container of checkpoints (by default the events container's name + `-checkpoints`).
    pub leases: String,
}

impl CosmosConfig {
    /// Events in `container` of `database`, checkpoints beside it in `<container>-checkpoints`.
    pub fn new(database: impl Into<String>, container: impl Into<String>) -> Self {
        let container = container.into();
        CosmosConfig {
            database: database.into(),
            leases: format!("{container}-checkpoints"),
            container,
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
        if self.leases == self.container {
            return Err(StoreError::invalid(format!(
                "checkpoints in the events container {:?}: their writes would come back on the change feed; name another container",
                self.container
            )));
        }
        Ok(())
    }
}
