//! One module per subcommand; [`execute`] runs the one the command line names.

use std::io::Write;

use crate::args::{Cli, Command};
use crate::exit::bad_input;
use crate::open::{OpenedStore, open_store, supported_urls};

pub mod append;
pub mod bench;
pub mod conformance;
pub mod demo;
pub mod events;
pub mod init;
pub mod streams;
pub mod tail;

/// Runs the command the command line names.
pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    let store = cli.store;
    match cli.command {
        Command::Init(a) => init::run(&required(store)?, a).await,
        Command::Demo(a) => demo::run(store, a).await,
        Command::Streams(a) => streams::run(&open(&required(store)?).await?, a).await,
        Command::Events(a) => events::run(&open(&required(store)?).await?, a).await,
        Command::Append(a) => append::run(&open(&required(store)?).await?, a).await,
        Command::Tail(a) => tail::run(&open(&required(store)?).await?, a).await,
        Command::Conformance(a) => conformance::run(&required(store)?, a).await,
        Command::Bench(a) => bench::run(store, a).await,
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
