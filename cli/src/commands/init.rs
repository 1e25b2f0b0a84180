//! `sekiban init`: open the store, which creates or migrates its schema.

use std::fmt::Write as _;

use sekiban_core::FeedHistory;

use crate::args::InitArgs;
use crate::commands::{print, with_store};
use crate::open::OpenedStore;

/// Opens the store at `url` and says what that did.
pub async fn run(url: &str, _args: InitArgs) -> anyhow::Result<()> {
    #[cfg(feature = "dynamodb")]
    if crate::open::is_dynamodb(url) {
        return init_dynamodb(url).await;
    }
    #[cfg(feature = "cosmos")]
    if crate::open::is_cosmos(url) {
        return init_cosmos(url).await;
    }
    let existed = sqlite_file(url).map(|p| (p.exists(), p));
    crate::open::prepare_store(url).await?;
    with_store(url, async |opened| describe(opened, existed).await).await
}

/// What each cloud backend of this build expects of its tables or containers, as one JSON
/// object keyed by backend (`sekiban init --print-definition`).
pub fn definitions() -> serde_json::Value {
    #[allow(unused_mut)]
    let mut out = serde_json::Map::new();
    #[cfg(feature = "dynamodb")]
    out.insert(
        "dynamodb".into(),
        serde_json::json!({ "table": sekiban_dynamodb::TABLE }),
    );
    #[cfg(feature = "cosmos")]
    out.insert(
        "cosmos".into(),
        serde_json::json!({ "containers": sekiban_cosmos::DEFINITION }),
    );
    serde_json::Value::Object(out)
}

/// Prints [`definitions`].
pub fn print_definition() -> anyhow::Result<()> {
    print(&format!(
        "{}\n",
        serde_json::to_string_pretty(&definitions())?
    ))?;
    Ok(())
}

/// Says what opening the store did, its limits and capabilities.
async fn describe(
    opened: &OpenedStore,
    existed: Option<(bool, std::path::PathBuf)>,
) -> anyhow::Result<()> {
    let mut out = String::new();
    match (opened.kind, existed) {
        ("sqlite", Some((true, path))) => writeln!(
            out,
            "sqlite: {} already existed; its schema is current (pending migrations, if any, were applied)",
            path.display()
        )?,
        ("sqlite", Some((false, path))) => writeln!(
            out,
            "sqlite: created {} with the current schema",
            path.display()
        )?,
        ("sqlite", None) => writeln!(
            out,
            "sqlite: created an in-memory database with the current schema (gone when this command exits)"
        )?,
        ("postgres", _) => writeln!(
            out,
            "postgres: schema migrated to the current version (created when missing; nothing changed when current)"
        )?,
        (kind, _) => writeln!(
            out,
            "{kind}: nothing to create; a {kind}:// store lives only as long as the command that opened it"
        )?,
    }
    let store = &opened.store;
    let l = store.limits();
    let c = store.capabilities();
    writeln!(
        out,
        "limits: event ≤ {} B; append ≤ {} events and {} B; snapshots inline ≤ {} B; read pages of {} events or {} B; idempotency window {}",
        l.max_event_bytes,
        l.max_append_events,
        l.max_append_bytes,
        l.max_inline_snapshot_bytes,
        l.page_events,
        l.page_bytes,
        if l.idempotency_window == u64::MAX {
            "unbounded".to_string()
        } else {
            format!("{} events", l.idempotency_window)
        }
    )?;
    writeln!(
        out,
        "capabilities: stream catalog {}; feed notification {}; feed partitions {}; feed history {}; cost budgets {}",
        yes_no(c.stream_catalog),
        yes_no(c.feed_notification),
        c.feed_partitions,
        match c.feed_history {
            FeedHistory::Unbounded => "unbounded".to_string(),
            FeedHistory::Retained(d) => format!("{} s", d.as_secs()),
        },
        yes_no(c.cost_budgets)
    )?;
    print(&out)?;
    Ok(())
}

/// Creates the DynamoDB table a `dynamodb://` URL names as the backend defines it, or checks
/// the one that exists.
#[cfg(feature = "dynamodb")]
async fn init_dynamodb(url: &str) -> anyhow::Result<()> {
    use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable, Init, TABLE};
    let table = DynamoDbTable::connect(DynamoDbConfig::from_url(url)?).await;
    let name = &table.config().table;
    let what = match table.init().await? {
        Init::Created => "created",
        Init::Existed => "already existed; it matches",
    };
    print(&format!(
        "dynamodb: table {name} {what}: keys {} ({}) and {} ({}), {} billing, stream {}\n",
        TABLE.partition_key.name,
        TABLE.partition_key.kind,
        TABLE.sort_key.name,
        TABLE.sort_key.kind,
        TABLE.billing_mode,
        TABLE.stream_view_type,
    ))?;
    if let Some(done) = table.init_bucket().await? {
        let bucket = table.config().bucket.as_deref().unwrap_or_default();
        let what = match done {
            Init::Created => "created",
            Init::Existed => "already existed",
        };
        print(&format!(
            "dynamodb: snapshot bucket {bucket} {what} (large snapshots go there)
"
        ))?;
    }
    Ok(())
}

/// Creates the Cosmos DB database and containers a `cosmos://` URL names as the backend defines
/// them, or checks the ones that exist.
#[cfg(feature = "cosmos")]
async fn init_cosmos(url: &str) -> anyhow::Result<()> {
    use sekiban_cosmos::{CosmosStore, CosmosUrl, DEFINITION, Init};
    let parsed = CosmosUrl::parse(url)?;
    let what = match CosmosStore::init_url(url).await? {
        Init::Created => "created",
        Init::Existed => "already existed; they match",
    };
    print(&format!(
        "cosmos: database {}, containers {} (partition key {}) and {} (checkpoints, partition key {}) {what}\n",
        parsed.config.database,
        parsed.config.container,
        DEFINITION.partition_key_paths.join(", "),
        parsed.config.leases,
        DEFINITION.checkpoint_partition_key_path,
    ))?;
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The database file a `sqlite:` URL names, by the backend's own parser.
#[cfg(feature = "sqlite")]
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    match sekiban_sqlite::SqliteConfig::from_url(url).ok()?.path {
        sekiban_sqlite::SqlitePath::File(p) if url.starts_with("sqlite:") => Some(p),
        _ => None,
    }
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_file(_url: &str) -> Option<std::path::PathBuf> {
    None
}
