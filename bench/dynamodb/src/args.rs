//! The command line.

use clap::Parser;

/// sekiban-dynamodb beside dynamo-es 0.5 (cqrs-es), on one DynamoDB Local.
///
/// Prints the report as markdown on stdout, progress on stderr. Writes only into fresh tables
/// bench-<random>-{sekiban,dynamoes-events,dynamoes-snapshots,floor}, deleted at the end (also
/// after an error or Ctrl-C). Needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set (any values).
#[derive(Debug, Parser)]
// A flag given twice: the last one counts (`scripts/bench-dynamodb.sh` passes `--endpoint` and
// `--server` first, so the same flag among the script's extra arguments replaces it).
#[command(name = "sekiban-bench-dynamodb", args_override_self = true)]
struct Cli {
    /// The emulator, http://HOST:PORT on a loopback address
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8000")]
    endpoint: String,
    /// What the emulator is, for the report's first line
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "DynamoDB Local",
        allow_hyphen_values = true
    )]
    server: String,
    /// Appends per timed row at 1 task [default: 300; --quick: 40]
    #[arg(long = "appends-1", value_name = "N", value_parser = positive)]
    appends_1: Option<usize>,
    /// Appends per timed row at 16 tasks [default: 1600; --quick: 160]
    #[arg(long = "appends-16", value_name = "N", value_parser = positive)]
    appends_16: Option<usize>,
    /// Rounds of every timed row, the contenders in a different order each [default: 5; --quick: 1]
    #[arg(long, value_name = "R", value_parser = positive)]
    rounds: Option<usize>,
    /// Timed repetitions of each load, after 3 untimed [default: 30; --quick: 3]
    #[arg(long = "load-reps", value_name = "N", value_parser = positive)]
    load_reps: Option<usize>,
    /// Appends counted on the wire per contender and shape, after 2 uncounted [default: 40; --quick: 5]
    #[arg(long = "wire-appends", value_name = "N", value_parser = positive)]
    wire_appends: Option<usize>,
    /// Events of the long stream, one 800-byte event an append [default: 3000; --quick: 300]
    #[arg(long, value_name = "N", value_parser = positive)]
    long: Option<usize>,
    /// Skip the floors (raw SDK writes of sekiban's append item) timed beside the contenders
    #[arg(long = "no-analysis")]
    no_analysis: bool,
    /// Keep the tables of the run instead of deleting them
    #[arg(long)]
    keep: bool,
    /// A smoke run: fewer appends, 1 round, 3 load repetitions, a 300-event long stream
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
    pub endpoint: String,
    /// What the emulator is, for the report's first line.
    pub server: String,
    /// Appends per row at 1 task.
    pub appends_1: usize,
    /// Appends per row at 16 tasks.
    pub appends_16: usize,
    pub rounds: usize,
    pub load_reps: usize,
    /// Appends counted on the wire per contender and shape.
    pub wire_appends: usize,
    /// Events of the long stream (one 800-byte event an append).
    pub long: usize,
    /// Time the floors (raw SDK writes of sekiban's item) beside the contenders.
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
            appends_1: or(cli.appends_1, 300, 40),
            appends_16: or(cli.appends_16, 1600, 160),
            rounds: or(cli.rounds, 5, 1),
            load_reps: or(cli.load_reps, 30, 3),
            wire_appends: or(cli.wire_appends, 40, 5),
            long: or(cli.long, 3000, 300),
            analysis: !cli.no_analysis,
            keep: cli.keep,
            endpoint: cli.endpoint,
            server: cli.server,
        }
    }
}
