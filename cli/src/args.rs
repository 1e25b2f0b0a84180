//! The command line, as clap types.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use sekiban_core::{Checkpoint, ExpectedVersion, FeedStart, StoreError, StreamId, Version};
use sekiban_examples::bank::DemoOptions;

/// Exit codes, as `--help` shows them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  done (append: written, or an idempotent re-send of an earlier append)
  1  anything else failed: the store, a conformance case, a capability the store lacks, the demo
  2  bad input: flags, store URL, stream id, unreadable file, invalid JSON line, over the store's
     limits, an event id already stored with other content
  3  append: the stream is not at the expected version (the actual version is printed)";

/// `sekiban`: look into, write to and test a sekiban event store.
#[derive(Debug, Parser)]
#[command(
    name = "sekiban",
    version,
    about = "Look into, write to, test and measure a sekiban event store",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// The store URL (see `--help` for the forms).
    #[arg(
        long,
        global = true,
        env = "SEKIBAN_STORE",
        hide_env_values = true,
        value_name = "URL",
        long_help = crate::open::STORE_HELP
    )]
    pub store: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the store, creating or migrating its schema (nothing to do for memory://); idempotent.
    Init(InitArgs),
    /// Run the bank demo (accounts and concurrent transfers) and print what it did.
    Demo(DemoArgs),
    /// List streams of a tenant (stores with a stream catalog).
    Streams(StreamsArgs),
    /// Print the events of one stream.
    Events(EventsArgs),
    /// Append one event, or a batch of events as one atomic append, to a stream.
    #[command(after_help = EXIT_CODES)]
    Append(AppendArgs),
    /// Follow the change feed, printing events and deletion markers as they commit.
    Tail(TailArgs),
    /// Run the conformance suite against the store.
    Conformance(ConformanceArgs),
    /// Check a deployed DynamoDB table, Cosmos DB account or PostgreSQL schema against what the
    /// backend expects (keys, stream, billing, TTL, schema version, blob bucket or container,
    /// permissions); exit code 1 on a mismatch. Writes nothing to the store.
    Doctor(DoctorArgs),
    /// Measure a fixed workload: appends, loads with and without snapshot, feed catch-up.
    #[command(after_help = BENCH_HELP)]
    Bench(BenchArgs),
    /// Race concurrent writers on a few streams while replies are lost on purpose (PostgreSQL:
    /// through a fault proxy), follow the feed, then read everything back: print duplicates,
    /// losses, phantoms, gaps and feed misses; exit code 1 on any.
    Torture(TortureArgs),
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Print, as JSON, what each cloud backend of this build expects its tables or containers
    /// to be (key names and types, stream settings, partition key paths), and open no store:
    /// what infrastructure templates are checked against.
    #[arg(long)]
    pub print_definition: bool,
}

/// `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the findings as one JSON object instead of a report.
    #[arg(long)]
    pub json: bool,
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Accounts to open.
    #[arg(long, value_name = "N", default_value_t = DemoOptions::default().accounts, value_parser = positive)]
    pub accounts: usize,
    /// Transfers between random accounts.
    #[arg(long, value_name = "N", default_value_t = DemoOptions::default().transfers)]
    pub transfers: usize,
    /// Transfers run at once.
    #[arg(long, value_name = "N", default_value_t = DemoOptions::default().concurrency, value_parser = positive)]
    pub concurrency: usize,
    /// Tenant the demo writes under.
    #[arg(long, value_name = "T", default_value_t = DemoOptions::default().tenant, value_parser = tenant)]
    pub tenant: String,
    /// Print the report as one JSON object (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// `streams`.
#[derive(Debug, Args)]
pub struct StreamsArgs {
    /// Tenant to list (default: the tenant of --after, else "default").
    #[arg(long, value_name = "T", value_parser = tenant)]
    pub tenant: Option<String>,
    /// Only this category.
    #[arg(long, value_name = "C")]
    pub category: Option<String>,
    /// Start after this stream (tenant/category/id), to page through a long list.
    #[arg(long, value_name = "STREAM", value_parser = stream_id)]
    pub after: Option<StreamId>,
    /// Most streams to list.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = positive)]
    pub limit: usize,
    /// One JSON object per line: stream, tenant, category, id, version, deleted.
    #[arg(long)]
    pub json: bool,
}

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The stream, written tenant/category/id.
    #[arg(value_name = "STREAM", value_parser = stream_id)]
    pub stream: StreamId,
    /// First version to print (inclusive).
    #[arg(long, value_name = "V")]
    pub from: Option<u64>,
    /// Newest first.
    #[arg(long)]
    pub backward: bool,
    /// Most events to print.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// One JSON object per line: stream, version, id, type, schema_version, metadata,
    /// recorded_at (RFC 3339, UTC), data_b64 (the exact bytes) and data (the bytes as JSON, on one
    /// line, when they are valid JSON).
    #[arg(long)]
    pub json: bool,
}

/// `append`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("payload").required(true).args(["data", "data_file", "batch"])))]
pub struct AppendArgs {
    /// The stream, written tenant/category/id.
    #[arg(value_name = "STREAM", value_parser = stream_id)]
    pub stream: StreamId,
    /// What the stream's version must be: any, no-stream, exists, or a version number N (the
    /// stream's head; 0 is the same as no-stream).
    #[arg(long, value_name = "any|no-stream|exists|N", value_parser = expected_version)]
    pub expected: ExpectedVersion,
    /// Event type (one event; with --batch each line names its own).
    #[arg(
        long = "type",
        value_name = "TYPE",
        required_unless_present = "batch",
        conflicts_with = "batch"
    )]
    pub event_type: Option<String>,
    /// Event id (default: a fresh one). Re-sending an append with the same id and content is an
    /// idempotent re-send: exit 0, nothing written.
    #[arg(long, value_name = "UUID", conflicts_with = "batch")]
    pub id: Option<uuid::Uuid>,
    /// The payload: these exact bytes (UTF-8 of TEXT).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub data: Option<String>,
    /// The payload: the exact bytes of a file (`-`: standard input).
    #[arg(long, value_name = "PATH")]
    pub data_file: Option<PathBuf>,
    /// Append the events of a JSON-lines file (`-`: standard input) as one atomic append. Each line:
    /// {"id"?: UUID, "type": T, "data": JSON} (stored compact, keys in their order) or
    /// {"id"?: UUID, "type": T, "data_b64": BASE64} (exact bytes); optional "schema_version" and
    /// "metadata" ({"correlation_id", "causation_id", "actor", "extra": {..}}). Empty lines are
    /// skipped. Give ids to make a re-send of the file idempotent.
    #[arg(long, value_name = "FILE")]
    pub batch: Option<PathBuf>,
    /// Schema version of the payload (with --batch: of lines that do not name one).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub schema_version: u32,
    /// Print the outcome as one JSON object: stream, first, last, deduplicated, ids (on a wrong
    /// expected version: error, expected, actual).
    #[arg(long)]
    pub json: bool,
}

/// `tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Where to start: beginning, now (events committed after the command starts), or a
    /// checkpoint printed by an earlier run.
    #[arg(long, value_name = "beginning|now|CHECKPOINT", default_value = "now", value_parser = feed_start)]
    pub from: FeedStart,
    /// Only this tenant's streams.
    #[arg(long, value_name = "T", value_parser = tenant)]
    pub tenant: Option<String>,
    /// Only this category's streams.
    #[arg(long, value_name = "C")]
    pub category: Option<String>,
    /// Stop after N events (deletion markers are printed but not counted).
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
    /// Stop when nothing arrived for SECS seconds (fractions allowed).
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub idle_exit: Option<Duration>,
    /// One JSON object per line: kind ("event" or "deleted"), the event's fields as `events --json`
    /// prints them, and "checkpoint" on the LAST item of each batch the feed delivered — resume
    /// with --from CHECKPOINT after the last line that carries one (items after it come again).
    #[arg(long)]
    pub json: bool,
}

/// `conformance`.
#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// Also write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run only cases whose name contains SUBSTRING (repeat for several; a case runs when any
    /// matches).
    #[arg(long, value_name = "SUBSTRING")]
    pub filter: Vec<String>,
    /// List the case names (after --filter) and run nothing.
    #[arg(long)]
    pub list: bool,
    /// Keep what the cases wrote (by default every stream is hard-deleted and every checkpoint
    /// and stray blob deleted when the run ends).
    #[arg(long)]
    pub keep: bool,
}

/// How `bench` measures, as `bench --help` shows it.
pub const BENCH_HELP: &str = "\
The workload (every event carries a 100-byte JSON payload; streams live under a fresh tenant):
  a  append_1_new        append 1 event to a new stream (expected: no-stream)        --ops times
  b  append_10_new       append 10 events to a new stream (expected: no-stream)      --ops times
  c  append_1_existing   append 1 event to a stream of (a) (expected: its version)  --ops times
  d  load_100            read a 100-event stream without snapshot                     --ops times
  e  load_100_snapshot   load its snapshot at version 100, then read the tail after it --ops times
  f  feed_catch_up       read the change feed of the tenant from the beginning to its end, once;
                         an op is one event delivered, latency is per batch
Each operation runs on --concurrency tasks. Round trips (and capacity units, where the store reports
them) per op are the store's own counters (store.costs()) over the operation's phase, divided by its
ops. Figures of a debug build are not representative: run
  cargo run --release -p sekiban-cli -- bench [--store URL]
Without --store, bench uses a SQLite file in a fresh temporary directory and removes it afterwards.";

/// `torture`.
#[derive(Debug, Args)]
pub struct TortureArgs {
    /// Writers appending at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = positive)]
    pub writers: usize,
    /// Appends in all (each of 1 to 3 events).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = positive)]
    pub ops: usize,
    /// Streams the writers race on.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = positive)]
    pub streams: usize,
    /// Share of requests whose reply is lost after the server carried them out (and half as
    /// many refused with a serialization failure); PostgreSQL only.
    #[arg(long, value_name = "RATE", default_value_t = 0.05, value_parser = rate)]
    pub lost: f64,
    /// Seed of the writers' choices and of the faults (printed; default: a random one).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Print the report as one JSON object (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=0.5).contains(&r) => Ok(r),
        _ => Err(format!("{s:?} is not a rate from 0 to 0.5")),
    }
}

/// `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Tasks running operations at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = positive)]
    pub concurrency: usize,
    /// Operations per kind (appends, loads).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = positive)]
    pub ops: usize,
    /// One JSON object per operation, one per line.
    #[arg(long)]
    pub json: bool,
}

fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number above 0")),
    }
}

fn tenant(s: &str) -> Result<String, StoreError> {
    StreamId::check_tenant(s)?;
    Ok(s.to_string())
}

fn stream_id(s: &str) -> Result<StreamId, StoreError> {
    s.parse()
}

/// Parses `any`, `no-stream`, `exists` or a version number.
pub fn expected_version(s: &str) -> Result<ExpectedVersion, String> {
    match s {
        "any" => Ok(ExpectedVersion::Any),
        "no-stream" => Ok(ExpectedVersion::NoStream),
        "exists" | "stream-exists" => Ok(ExpectedVersion::StreamExists),
        n => n
            .parse::<u64>()
            .map(|v| ExpectedVersion::Exact(Version(v)))
            .map_err(|_| format!("{s:?} is not any, no-stream, exists or a version number")),
    }
}

fn feed_start(s: &str) -> Result<FeedStart, String> {
    match s {
        "beginning" => Ok(FeedStart::Beginning),
        "now" => Ok(FeedStart::Now),
        "" => Err("give beginning, now or a checkpoint".into()),
        c => Ok(FeedStart::After(Checkpoint::new(c))),
    }
}

fn seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|f| Duration::try_from_secs_f64(f).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds ≥ 0"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn expected_versions() {
        assert_eq!(expected_version("any"), Ok(ExpectedVersion::Any));
        assert_eq!(expected_version("no-stream"), Ok(ExpectedVersion::NoStream));
        assert_eq!(
            expected_version("exists"),
            Ok(ExpectedVersion::StreamExists)
        );
        assert_eq!(
            expected_version("7"),
            Ok(ExpectedVersion::Exact(Version(7)))
        );
        assert!(expected_version("-1").is_err());
        assert!(expected_version("sometimes").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(seconds("-1").is_err());
        assert!(seconds("soon").is_err());
    }
}
