//! `sekiban-faults`: a fault proxy run by hand, in front of a PostgreSQL server.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sekiban_faults::{Faults, PgProxy, Rule};

/// Runs a fault proxy on a free port of 127.0.0.1 until interrupted; prints its address, then
/// every fault it injects with the seed.
#[derive(Debug, Parser)]
#[command(name = "sekiban-faults", version)]
struct Args {
    #[command(subcommand)]
    proxy: Proxy,
}

#[derive(Debug, Subcommand)]
enum Proxy {
    /// A PostgreSQL wire proxy; requests are matched by their statement's text.
    Pg {
        /// The server, as host:port.
        #[arg(long)]
        upstream: String,
        /// A JSON file with a list of rules, e.g.
        /// [{"on": "checkpoints", "fault": "drop_reply", "times": 1}, {"fault": "refuse", "code": "40001", "rate": 0.05}].
        #[arg(long)]
        rules: Option<PathBuf>,
        /// The seed of the rules' draws (default: SEKIBAN_FAULT_SEED, else the clock).
        #[arg(long)]
        seed: Option<u64>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Proxy::Pg {
        upstream,
        rules,
        seed,
    } = Args::parse().proxy;
    let rules: Vec<Rule> = match rules {
        Some(path) => {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let faults = Faults::new(seed.unwrap_or_else(Faults::seed_from_env));
    faults.set(rules);
    let proxy = PgProxy::start(&upstream, faults).await?;
    println!(
        "listening on {} (seed {})",
        proxy.addr(),
        proxy.faults().seed()
    );
    tokio::signal::ctrl_c().await?;
    println!("{} faults injected", proxy.faults().log().len());
    Ok(())
}
