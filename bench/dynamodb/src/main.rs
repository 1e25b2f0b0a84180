//! sekiban-dynamodb beside dynamo-es 0.5 (cqrs-es), in one run on one DynamoDB Local: appends
//! per second at 1 and 16 tasks (distinct streams) with one 800-byte event and ten 100-byte
//! events per append; p50/p99 latency; per operation, the requests on the wire (a counting HTTP
//! proxy between the SDK and the emulator), the capacity units the emulator reports and the ones
//! AWS's published rules charge for the items written and read; the load of a 1 000-event stream,
//! with and without a snapshot; a 3 000-event stream written and read back. Prints markdown
//! tables on stdout, progress on stderr.
//!
//! `cargo run --release --manifest-path bench/dynamodb/Cargo.toml -- --endpoint http://127.0.0.1:8000`
//! (`scripts/bench-dynamodb.sh` starts an emulator of its own and runs it). Everything is written
//! into fresh tables `bench-<random>-{sekiban,dynamoes-events,dynamoes-snapshots,floor}`, deleted
//! at the end, also after an error or Ctrl-C (`--keep` keeps them; `-- --help` lists the
//! options).
//!
//! The parts: `args` (the command line), `meter` (what operations cost, counted through the
//! proxy), `rows` (timed rows of appends and their statistics), `loads` (the 1 000-event stream's
//! loads), `report` (the markdown); `run` here puts them in order. The contenders, the proxy and
//! the capacity-unit rules are the library's (`src/lib.rs`).

mod args;
mod loads;
mod meter;
mod report;
mod rows;

use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};

use sekiban_bench_dynamodb::contenders::{
    self, Contender, DynamoEs, Floor, FloorKind, Sekiban, Shape, create_dynamo_es_tables,
    create_floor_table, delete_table,
};

use crate::args::Args;
use crate::loads::{time_loads, write_load_streams};
use crate::meter::{Cost, Wire, count_phase};
use crate::report::report;
use crate::rows::{Rows, time_rows};

/// The emulator's address, which must be on this machine: the benchmark is a load generator.
async fn upstream(endpoint: &str) -> Result<std::net::SocketAddr> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("the endpoint must be http://HOST:PORT"))?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addr = tokio::net::lookup_host(hostport)
        .await
        .with_context(|| format!("resolve {hostport}"))?
        .next()
        .ok_or_else(|| anyhow!("{hostport} does not resolve"))?;
    if !addr.ip().is_loopback() {
        bail!(
            "{hostport} is not a loopback address: this benchmark only sends load to this machine"
        );
    }
    Ok(addr)
}

#[derive(Debug, Clone)]
struct Names {
    sekiban: String,
    events: String,
    snapshots: String,
    floor: String,
}

impl Names {
    fn all(&self) -> [&String; 4] {
        [&self.sekiban, &self.events, &self.snapshots, &self.floor]
    }
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// What a run measured, for the report.
struct Results {
    /// The timed contenders: sekiban, dynamo-es, then the floors (with the analysis).
    names: Vec<&'static str>,
    /// (tasks, shape) → samples of each timed contender.
    rows: Rows,
    /// (shape, contender) → cost of `wire_appends` appends.
    appends: Vec<(Shape, &'static str, Cost)>,
    /// (load, cost of one) in `LOADS` order.
    loads: Vec<(&'static str, Cost)>,
    /// Load times straight to the emulator, ms, in `LOADS` order.
    load_times: Vec<Vec<f64>>,
    /// The long stream: (what, contender, cost).
    long: Vec<(&'static str, &'static str, Cost)>,
    load_avg: (String, String),
}

async fn run(args: &Args, names: &Names, admin: &aws_sdk_dynamodb::Client) -> Result<Results> {
    let load_start = load_avg();
    let addr = upstream(&args.endpoint).await?;

    // Tables: sekiban's through its own `init`, dynamo-es's as its create_tables.sh makes them.
    let sekiban = Arc::new(Sekiban::connect(&args.endpoint, &names.sekiban).await?);
    sekiban.table.init().await.context("sekiban init")?;
    create_dynamo_es_tables(admin, &names.events, &names.snapshots).await?;
    let direct = contenders::client(&args.endpoint, false).await;
    let dynamoes = Arc::new(DynamoEs::new(direct, &names.events, &names.snapshots));
    let mut timed: Vec<Arc<dyn Contender>> = vec![sekiban.clone(), dynamoes.clone()];
    if args.analysis {
        create_floor_table(admin, &names.floor).await?;
        for kind in [
            FloorKind::PutItem,
            FloorKind::Transact1,
            FloorKind::Transact2,
        ] {
            let client = contenders::client(&args.endpoint, false).await;
            timed.push(Arc::new(Floor::new(client, &names.floor, kind)));
        }
    }

    write_load_streams(&sekiban, &dynamoes).await?;

    // Counted phase, through the proxy.
    let Wire {
        appends,
        loads,
        long,
    } = count_phase(args, names, addr, admin).await?;

    // Timed appends, straight to the emulator.
    let rows = time_rows(args, &timed).await?;

    // Timed loads, straight to the emulator, in rotating order.
    let load_times = time_loads(args.load_reps, &sekiban, &dynamoes).await?;
    Ok(Results {
        names: timed.iter().map(|c| c.name()).collect(),
        rows,
        appends,
        loads,
        load_times,
        long,
        load_avg: (load_start, load_avg()),
    })
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let args = Args::parse();
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
        || std::env::var_os("AWS_SECRET_ACCESS_KEY").is_none()
    {
        eprintln!(
            "bench: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any values for DynamoDB Local, e.g. test and test); scripts/bench-dynamodb.sh does"
        );
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = rt.block_on(async {
        if let Err(e) = upstream(&args.endpoint).await {
            eprintln!("bench: {e:#}");
            return 2;
        }
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let base = format!("bench-{}", &run_id[..8]);
        let names = Names {
            sekiban: format!("{base}-sekiban"),
            events: format!("{base}-dynamoes-events"),
            snapshots: format!("{base}-dynamoes-snapshots"),
            floor: format!("{base}-floor"),
        };
        let admin = contenders::client(&args.endpoint, false).await.client;
        if let Err(e) = admin.list_tables().limit(1).send().await {
            eprintln!(
                "bench: DynamoDB Local does not answer at {}: {e:?}",
                args.endpoint
            );
            return 1;
        }
        let tables = names.all().map(String::as_str).join(", ");
        eprintln!("bench: tables {tables}");
        let result = tokio::select! {
            r = run(&args, &names, &admin) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        };
        if args.keep {
            eprintln!("bench: kept tables {tables}");
        } else {
            for t in names.all() {
                if let Err(e) = delete_table(&admin, t).await {
                    eprintln!("bench: could not delete table {t}: {e:#}");
                }
            }
        }
        match result {
            Ok(r) => {
                print!("{}", report(&args, &r));
                0
            }
            Err(e) => {
                eprintln!("bench: {e:#}");
                1
            }
        }
    });
    std::process::exit(code);
}
