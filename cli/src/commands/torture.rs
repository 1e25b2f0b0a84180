//! `sekiban torture`: concurrent writers racing on a few streams while replies are lost on
//! purpose, a follower of the feed, and an audit that reads everything back. Every append
//! carries event ids the writer remembers, so the audit can tell each outcome apart:
//!
//! - a **duplicate**: an id stored twice;
//! - a **loss**: an id the store acknowledged, not stored;
//! - a **phantom**: an id the store refused (`WrongExpectedVersion`, `IdempotencyConflict`), yet
//!   stored — a retried write that did not recognise its own earlier attempt;
//! - a **gap**: a stream whose versions are not 1, 2, 3, …;
//! - a **feed miss** or **feed disorder**: a stored event the follower never saw, or saw out of
//!   its stream's order.
//!
//! On `postgres://` stores the writers go through a fault proxy (`sekiban-faults`) that loses the
//! reply of a share of requests after the server carried them out and refuses another share
//! with a serialization failure; the audit reads around it. Other stores run without faults.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, anyhow};
use futures::StreamExt;
use serde::Serialize;
use tokio::task::JoinSet;

use sekiban_core::{
    EventData, EventId, ExpectedVersion, FeedItem, FeedOptions, FeedStart, ReadOptions, Store,
    StoreError, StreamId,
};

use crate::args::TortureArgs;
use crate::commands::{open, print};
use crate::progress;

/// What every append's answer was, by event id.
#[derive(Default)]
struct Outcomes {
    acknowledged: HashSet<EventId>,
    refused: HashSet<EventId>,
    /// Transient past the retries: stored or not, both are right.
    unknown: HashSet<EventId>,
    errors: Vec<String>,
}

/// The report.
#[derive(Debug, Default, Serialize)]
struct Report {
    store: String,
    seed: u64,
    appends: usize,
    acknowledged: usize,
    refused: usize,
    unknown: usize,
    faults_injected: usize,
    retries: u64,
    events_stored: usize,
    duplicates: usize,
    losses: usize,
    phantoms: usize,
    gaps: usize,
    feed_misses: usize,
    feed_disorder: usize,
    errors: usize,
}

impl Report {
    fn anomalies(&self) -> usize {
        self.duplicates
            + self.losses
            + self.phantoms
            + self.gaps
            + self.feed_misses
            + self.feed_disorder
            + self.errors
    }
}

/// A small seeded generator (xorshift64*): the run's choices repeat with its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Runs the torture on `url`.
pub async fn run(url: &str, args: TortureArgs) -> anyhow::Result<()> {
    let seed = args
        .seed
        .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let faults = sekiban_faults::Faults::new_quiet(seed);
    // The writers' store: through a fault proxy where the store speaks a protocol it knows.
    let (proxy, writers_url) = if url.starts_with("postgres://") || url.starts_with("postgresql://")
    {
        let parsed = url::Url::parse(url).context("parse the store URL")?;
        let upstream = format!(
            "{}:{}",
            parsed.host_str().unwrap_or("127.0.0.1"),
            parsed.port().unwrap_or(5432)
        );
        let proxy = sekiban_faults::PgProxy::start(&upstream, faults.clone())
            .await
            .context("start the fault proxy")?;
        let through = proxy.url(url);
        (Some(proxy), through)
    } else {
        (None, url.to_string())
    };
    let opened = open(&writers_url).await?;
    let store = opened.store.clone();
    let tenant = format!(
        "torture{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let streams: Vec<StreamId> = (0..args.streams)
        .map(|i| StreamId::new(&tenant, "t", i.to_string()))
        .collect::<Result<_, _>>()?;
    if proxy.is_some() {
        faults.set(vec![
            sekiban_faults::Rule::every(sekiban_faults::Fault::DropReply).rate(args.lost),
            sekiban_faults::Rule::every(sekiban_faults::Fault::Refuse {
                code: "40001".into(),
            })
            .rate(args.lost / 2.0),
        ]);
    }
    let before = store.costs();
    let bar = progress::bar(args.ops as u64, "torture", args.json);
    let left = Arc::new(AtomicUsize::new(args.ops));
    let mut tasks = JoinSet::new();
    for w in 0..args.writers {
        let (store, streams, left, bar) =
            (store.clone(), streams.clone(), left.clone(), bar.clone());
        let mut rng = Rng::new(seed ^ ((w as u64 + 1) << 32));
        tasks.spawn(async move {
            let mut out = Outcomes::default();
            while left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let s = &streams[rng.below(streams.len() as u64) as usize];
                let events: Vec<EventData> = (0..1 + rng.below(3))
                    .map(|_| EventData::new("Tortured", format!("{{\"w\":{w}}}")))
                    .collect();
                let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
                // Half the appends expect the version just read (they race), half take any.
                let expected = if rng.below(2) == 0 {
                    match store.stream_version(s).await {
                        Ok(v) if v.0 == 0 => ExpectedVersion::NoStream,
                        Ok(v) => ExpectedVersion::Exact(v),
                        Err(_) => ExpectedVersion::Any,
                    }
                } else {
                    ExpectedVersion::Any
                };
                match store.append(s, expected, events).await {
                    Ok(_) => out.acknowledged.extend(ids),
                    Err(
                        StoreError::WrongExpectedVersion { .. }
                        | StoreError::IdempotencyConflict { .. },
                    ) => out.refused.extend(ids),
                    Err(e) if e.is_transient() => out.unknown.extend(ids),
                    Err(e) => out.errors.push(format!("append to {s}: {e}")),
                }
                bar.inc(1);
            }
            out
        });
    }
    let mut outcomes = Outcomes::default();
    while let Some(done) = tasks.join_next().await {
        let o = done.context("a writer")?;
        outcomes.acknowledged.extend(o.acknowledged);
        outcomes.refused.extend(o.refused);
        outcomes.unknown.extend(o.unknown);
        outcomes.errors.extend(o.errors);
    }
    bar.finish_and_clear();
    faults.clear();
    let spent = store.costs() - before;
    // The audit, without faults: on a store of its own behind the proxy's back, else (a store
    // in this process's memory has no other way in) on the writers' store.
    let mut report = if proxy.is_some() {
        let closed = opened.store.close().await;
        drop(proxy);
        closed.context("close the writers' store")?;
        let audit = open(url).await?;
        let result = audit_run(&*audit.store, &streams, &tenant, &outcomes).await;
        let closed = audit.store.close().await;
        let report = result?;
        closed.context("close the audit's store")?;
        report
    } else {
        let result = audit_run(&*store, &streams, &tenant, &outcomes).await;
        let closed = opened.store.close().await;
        let report = result?;
        closed.context("close the store")?;
        report
    };
    report.store = opened.kind.to_string();
    report.seed = seed;
    report.appends = args.ops;
    report.acknowledged = outcomes.acknowledged.len();
    report.refused = outcomes.refused.len();
    report.unknown = outcomes.unknown.len();
    report.faults_injected = faults.log().len();
    report.retries = spent.total().retries;
    report.errors = outcomes.errors.len();
    for e in outcomes.errors.iter().take(5) {
        eprintln!("torture: {e}");
    }
    if args.json {
        print(&format!("{}\n", serde_json::to_string(&report)?))?;
    } else {
        print(&format!(
            "store: {} (seed {seed})\nappends: {} (events: {} acknowledged, {} refused, {} unknown)\n\
             faults injected: {}\nretries: {}\nevents stored: {}\n\
             duplicates: {}\nlosses: {}\nphantoms: {}\ngaps: {}\nfeed misses: {}\n\
             feed disorder: {}\nerrors: {}\n",
            report.store,
            report.appends,
            report.acknowledged,
            report.refused,
            report.unknown,
            report.faults_injected,
            report.retries,
            report.events_stored,
            report.duplicates,
            report.losses,
            report.phantoms,
            report.gaps,
            report.feed_misses,
            report.feed_disorder,
            report.errors
        ))?;
    }
    match report.anomalies() {
        0 => Ok(()),
        n => Err(anyhow!(
            "torture found {n} anomalies (seed {seed}: --seed {seed} repeats the run's choices)"
        )),
    }
}

/// Reads every stream and the tenant's feed back and counts what is wrong.
async fn audit_run(
    store: &dyn Store,
    streams: &[StreamId],
    tenant: &str,
    outcomes: &Outcomes,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut stored: HashMap<EventId, usize> = HashMap::new();
    let mut order: HashMap<EventId, (StreamId, u64)> = HashMap::new();
    for s in streams {
        let events: Vec<_> = store
            .read(s, ReadOptions::forward())
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        for (i, e) in events.iter().enumerate() {
            if e.version.0 != i as u64 + 1 {
                report.gaps += 1;
            }
            *stored.entry(e.id).or_default() += 1;
            order.insert(e.id, (s.clone(), e.version.0));
        }
        report.events_stored += events.len();
    }
    report.duplicates = stored.values().filter(|n| **n > 1).count();
    report.losses = outcomes
        .acknowledged
        .iter()
        .filter(|id| !stored.contains_key(id))
        .count();
    report.phantoms = outcomes
        .refused
        .iter()
        .filter(|id| stored.contains_key(id))
        .count();
    // The feed from the beginning: every stored event at least once, each stream in order.
    let mut seen = HashSet::new();
    let mut last: HashMap<StreamId, u64> = HashMap::new();
    let mut feed = store.changes(FeedStart::Beginning, FeedOptions::catch_up().tenant(tenant));
    while let Some(batch) = feed.next().await {
        for item in batch?.items {
            if let FeedItem::Event(e) = item {
                let at = last.entry(e.stream.clone()).or_default();
                if e.version.0 < *at {
                    report.feed_disorder += 1;
                }
                *at = (*at).max(e.version.0);
                seen.insert(e.id);
            }
        }
    }
    report.feed_misses = order.keys().filter(|id| !seen.contains(id)).count();
    Ok(report)
}
