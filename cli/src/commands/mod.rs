//! One module per subcommand; [`execute`] runs the one the command line names.

use std::io::Write;

use crate::args::{Cli, Command};
use crate::exit::bad_input;
use crate::open::{OpenedStore, open_store, supported_urls};

pub mod append;
pub mod bench;
pub mod conformance;
pub mod demo;
pub mod doctor;
pub mod events;
pub mod init;
pub mod streams;
pub mod tail;
pub mod torture;

/// Runs the command the command line names.
pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    let store = cli.store;
    match cli.command {
        Command::Init(a) if a.print_definition => init::print_definition(),
        Command::Init(a) => init::run(&required(store)?, a).await,
        Command::Demo(a) => demo::run(store, a).await,
        Command::Streams(a) => {
            with_store(&required(store)?, async |o| streams::run(o, a).await).await
        }
        Command::Events(a) => {
            with_store(&required(store)?, async |o| events::run(o, a).await).await
        }
        Command::Append(a) => {
            with_store(&required(store)?, async |o| append::run(o, a).await).await
        }
        Command::Tail(a) => with_store(&required(store)?, async |o| tail::run(o, a).await).await,
        Command::Conformance(a) => conformance::run(&required(store)?, a).await,
        Command::Doctor(a) => doctor::run(&required(store)?, a).await,
        Command::Bench(a) => bench::run(store, a).await,
        Command::Torture(a) => torture::run(&required(store)?, a).await,
    }
}

/// The store URL, which this command cannot do without.
fn required(store: Option<String>) -> anyhow::Result<String> {
    store.ok_or_else(|| {
        bad_input(format!(
            "no store given: pass --store URL or set SEKIBAN_STORE; URL forms: {}",
            supported_urls()
        ))
    })
}

/// Opens the store at `url`, runs `f` on it, then closes the store whatever `f` returned (its
/// error first, then a failed close), so queued work is finished, pending notifications are
/// sent and a SQLite file is checkpointed before the command exits.
pub async fn with_store<T>(
    url: &str,
    f: impl AsyncFnOnce(&OpenedStore) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let opened = open(url).await?;
    let result = f(&opened).await;
    let closed = opened.store.close().await;
    let value = result?;
    closed.map_err(|e| anyhow::Error::from(e).context("close the store"))?;
    Ok(value)
}

/// Opens the store (see [`open_store`]), its error as an `anyhow::Error`.
pub async fn open(url: &str) -> anyhow::Result<OpenedStore> {
    Ok(open_store(url).await?)
}

/// A directory under the system's temporary directory that did not exist before.
pub fn fresh_temp_dir(prefix: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    std::fs::create_dir_all(&dir).map_err(|e| {
        anyhow::anyhow!("cannot create a temporary directory {}: {e}", dir.display())
    })?;
    Ok(dir)
}

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}
