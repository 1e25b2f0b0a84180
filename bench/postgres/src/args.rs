//! The command line.

use clap::Parser;

use sekiban_bench_postgres::contenders;

/// sekiban-postgres beside postgres-es 0.5 and a raw tokio-postgres floor, on one local PostgreSQL.
#[derive(Debug, Parser)]
// A flag given twice: the last one counts (`scripts/bench-postgres.sh` passes `--url` first, so
// a `--url` among the script's extra arguments replaces it).
#[command(
    name = "sekiban-bench-postgres",
    args_override_self = true,
    after_help = "Prints the report as markdown on stdout, progress on stderr. Writes only into \
                  fresh schemas bench_<random>_{sekiban,floor,pges}, dropped at the end."
)]
struct Cli {
    /// The server (a loopback address); sekiban's URL parameters in it are dropped
    #[arg(
        long,
        value_name = "URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    url: String,
    /// Appends per row at 1 task [default: 400; --quick: 100]
    #[arg(long = "appends-1", value_name = "N", value_parser = positive)]
    appends_1: Option<usize>,
    /// Appends per distinct-stream row at 16 tasks [default: 1600; --quick: 320]
    #[arg(long = "appends-16", value_name = "N", value_parser = positive)]
    appends_16: Option<usize>,
    /// Appends per contended row at 16 tasks [default: 480; --quick: 160]
    #[arg(long = "contended-16", value_name = "N", value_parser = positive)]
    contended_16: Option<usize>,
    /// Rounds of every row, the contenders in a different order each [default: 7; --quick: 1]
    #[arg(long, value_name = "R", value_parser = positive)]
    rounds: Option<usize>,
    /// Timed repetitions of each load, after 5 untimed [default: 60; --quick: 10]
    #[arg(long = "load-reps", value_name = "N", value_parser = positive)]
    load_reps: Option<usize>,
    /// Connections in each contender's pool (raised to at least 16)
    #[arg(long, value_name = "N", default_value = "16", value_parser = positive)]
    pool: usize,
    /// Skip counting round trips on the wire (through the counting proxy)
    #[arg(long)]
    no_wire: bool,
    /// Skip the analysis of where sekiban's append time goes
    #[arg(long)]
    no_analysis: bool,
    /// Keep the schemas of the run instead of dropping them
    #[arg(long)]
    keep: bool,
    /// A short smoke run: fewer appends, 1 round, 10 load repetitions
    #[arg(long)]
    quick: bool,
}

/// A number > 0.
fn positive(s: &str) -> Result<usize, String> {
    match s.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("needs a number > 0".into()),
    }
}

#[derive(Clone, Debug)]
pub struct Args {
    pub url: String,
    /// Appends per row at 1 task.
    pub appends_1: usize,
    /// Appends per distinct-stream row at 16 tasks.
    pub appends_16: usize,
    /// Appends per contended row at 16 tasks.
    pub contended_16: usize,
    pub rounds: usize,
    pub load_reps: usize,
    pub pool: usize,
    pub wire: bool,
    pub analysis: bool,
    pub keep: bool,
}

impl Args {
    /// The arguments of this process; prints the help or an error and exits on `--help` or a
    /// bad argument.
    pub fn parse() -> Args {
        let cli = Cli::parse();
        // `--quick` sets smaller defaults; a number given beside it still wins.
        let or = |given: Option<usize>, normal: usize, quick: usize| {
            given.unwrap_or(if cli.quick { quick } else { normal })
        };
        Args {
            // sekiban's own URL parameters are set per contender here.
            url: contenders::without_params(
                &cli.url,
                &["schema", "pool", "blobs", "connect_timeout_ms"],
            ),
            appends_1: or(cli.appends_1, 400, 100),
            appends_16: or(cli.appends_16, 1600, 320),
            contended_16: or(cli.contended_16, 480, 160),
            rounds: or(cli.rounds, 7, 1),
            load_reps: or(cli.load_reps, 60, 10),
            pool: cli.pool.max(16),
            wire: !cli.no_wire,
            analysis: !cli.no_analysis,
            keep: cli.keep,
        }
    }
}
