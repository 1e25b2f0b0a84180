//! A store's life on a file: closing, dropping, being killed, and a WAL that stays bounded while
//! feed readers follow steady appends.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::new_file;
use futures::StreamExt;
use sekiban_conformance::read_all;
use sekiban_core::{
    ChangeFeed, EventData, EventId, EventStore, ExpectedVersion, FeedOptions, FeedStart, Store,
    StoreError, StreamId, Version,
};
use sekiban_sqlite::{SqliteConfig, SqliteEventStore};

fn side_file(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}

fn file_size(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

async fn open(config: SqliteConfig) -> SqliteEventStore {
    SqliteEventStore::open(config)
        .await
        .unwrap_or_else(|e| panic!("open the store: {e}"))
}

fn stream(id: &str) -> StreamId {
    StreamId::new("life", "account", id).expect("valid stream id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_removes_the_wal_and_later_operations_are_unavailable() {
    let path = new_file("close");
    let store = open(SqliteConfig::file(&path)).await;
    let s = stream("a");
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![EventData::new("Opened", "{}")],
        )
        .await
        .expect("append");
    // A follower keeps the notifier (and the writer's change check) running until the close.
    let mut feed = store.changes(FeedStart::Beginning, FeedOptions::follow());
    assert!(feed.next().await.is_some(), "the follower sees the append");
    assert!(
        side_file(&path, "-wal").exists(),
        "an open store in WAL mode has a -wal file"
    );
    let clone = store.clone();
    store.close().await.expect("close");
    for suffix in ["-wal", "-shm"] {
        assert!(
            !side_file(&path, suffix).exists(),
            "{suffix} is left after close"
        );
    }
    store.close().await.expect("a second close does nothing");
    let after = clone
        .append(&s, ExpectedVersion::Any, vec![EventData::new("Late", "{}")])
        .await;
    assert!(
        matches!(after, Err(StoreError::Unavailable { .. })),
        "an append on a clone after close: {after:?}"
    );
    assert!(matches!(
        clone.stream_version(&s).await,
        Err(StoreError::Unavailable { .. })
    ));
    drop(feed);
    let reopened = open(SqliteConfig::file(&path)).await;
    assert_eq!(
        reopened.stream_version(&s).await.expect("version"),
        Version(1),
        "nothing was written after the close"
    );
    reopened.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_clone_closes_in_the_background() {
    let path = new_file("drop");
    let store = open(SqliteConfig::file(&path)).await;
    store
        .append(
            &stream("a"),
            ExpectedVersion::NoStream,
            vec![EventData::new("Opened", "{}")],
        )
        .await
        .expect("append");
    assert!(side_file(&path, "-wal").exists());
    drop(store);
    let wal = side_file(&path, "-wal");
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!wal.exists(), "the WAL is still there 10 s after the drop");
}

const KILL_ENV: &str = "SEKIBAN_SQLITE_KILL_DB";
const KILL_BATCH: usize = 10;

/// The events of the child's append `n` (0-based): ids and bytes the parent can recompute.
fn batch(n: usize) -> Vec<EventData> {
    (0..KILL_BATCH)
        .map(|k| {
            let id = uuid::Uuid::from_u128(((n as u128) << 32) | k as u128 | 1 << 100);
            EventData::new(
                "Ticked",
                format!(
                    r#"{{"append":{n},"event":{k},"pad":"{}"}}"#,
                    "x".repeat(200)
                ),
            )
            .with_id(EventId(id))
        })
        .collect()
}

/// In the child: appends batches forever, printing the number of each committed one.
async fn kill_child(path: &Path) {
    let store = open(SqliteConfig::file(path)).await;
    let s = stream("killed");
    for n in 0.. {
        store
            .append(
                &s,
                ExpectedVersion::Exact(Version((n * KILL_BATCH) as u64)),
                batch(n),
            )
            .await
            .unwrap_or_else(|e| panic!("append {n}: {e}"));
        println!("committed {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_leaves_every_committed_append_and_nothing_else() {
    if let Ok(path) = std::env::var(KILL_ENV) {
        kill_child(Path::new(&path)).await;
        return;
    }
    let path = new_file("killed");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(&exe)
        .args([
            "a_killed_process_leaves_every_committed_append_and_nothing_else",
            "--exact",
            "--nocapture",
        ])
        .env(KILL_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let out = child.stdout.take().expect("child stdout");
    // Kill it in the middle of its appends, after 40 of them were acknowledged.
    let acknowledged = tokio::task::spawn_blocking(move || {
        let mut last = None;
        for line in BufReader::new(out).lines() {
            let line = line.expect("child output");
            if let Some(n) = line.strip_prefix("committed ") {
                let n: usize = n.parse().expect("a number");
                last = Some(n);
                if n + 1 == 40 {
                    child.kill().expect("SIGKILL the child");
                    break;
                }
            }
        }
        let _ = child.wait();
        last.map_or(0, |n| n + 1)
    })
    .await
    .expect("watch the child");
    assert_eq!(acknowledged, 40, "the child died before 40 appends");
    assert!(
        side_file(&path, "-wal").exists(),
        "a killed process leaves its WAL behind (the case recovery is for)"
    );

    let store = open(SqliteConfig::file(&path)).await;
    let got = read_all(&store, &stream("killed")).await.expect("read");
    // Appends after the 40th may have committed before the kill landed; each is whole or absent.
    assert_eq!(got.len() % KILL_BATCH, 0, "a partial append survived");
    let appends = got.len() / KILL_BATCH;
    assert!(
        (acknowledged..=acknowledged + 2).contains(&appends),
        "{appends} appends survive, {acknowledged} were acknowledged"
    );
    for (i, e) in got.iter().enumerate() {
        let want = &batch(i / KILL_BATCH)[i % KILL_BATCH];
        assert_eq!(e.version, Version(i as u64 + 1));
        assert_eq!((e.id, &e.data), (want.id, &want.data), "event {}", i + 1);
    }
    store
        .append(
            &stream("killed"),
            ExpectedVersion::Exact(Version(got.len() as u64)),
            vec![EventData::new("AfterRecovery", "{}")],
        )
        .await
        .expect("the recovered file takes appends");
    store.close().await.expect("close");
    assert!(!side_file(&path, "-wal").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_reader_under_steady_appends_keeps_the_wal_under_its_bound() {
    const LIMIT: u64 = 256 * 1024;
    const APPENDS: usize = 1500;
    const PER_APPEND: usize = 5;
    // The bound holds after the checkpoint that follows a commit; an append returns just
    // before it, so a sample may also hold that last commit's pages.
    const ONE_COMMIT: u64 = 128 * 1024;
    let path = new_file("bounded");
    let mut config = SqliteConfig::file(&path);
    config.wal_limit = LIMIT;
    let store = Arc::new(open(config).await);
    let s = stream("steady");
    let total = APPENDS * PER_APPEND;
    let follower = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut feed =
                store.changes(FeedStart::Beginning, FeedOptions::follow().tenant("life"));
            let mut seen = 0;
            while seen < total {
                let b = tokio::time::timeout(Duration::from_secs(60), feed.next())
                    .await
                    .expect("the follower got nothing for 60 s")
                    .expect("the feed ended")
                    .expect("a feed batch");
                seen += b.items.len();
            }
            seen
        })
    };
    // A second reader reads the stream over and over while the appends go on.
    let reader = {
        let (store, s) = (store.clone(), s.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while store.stream_version(&s).await.expect("version") < Version(total as u64) {
                read_all(&*store, &s).await.expect("read");
                reads += 1;
            }
            reads
        })
    };
    let wal = side_file(&path, "-wal");
    let mut largest = 0;
    let mut written = 0;
    for n in 0..APPENDS {
        let events: Vec<_> = (0..PER_APPEND)
            .map(|k| {
                EventData::new(
                    "Ticked",
                    format!(r#"{{"n":{n},"k":{k},"pad":"{}"}}"#, "y".repeat(400)),
                )
            })
            .collect();
        written += events.iter().map(EventData::size).sum::<usize>();
        store
            .append(
                &s,
                ExpectedVersion::Exact(Version((n * PER_APPEND) as u64)),
                events,
            )
            .await
            .expect("append");
        largest = largest.max(file_size(&wal).unwrap_or(0));
    }
    assert!(
        written as u64 > 8 * LIMIT,
        "the workload writes well past the bound"
    );
    assert!(
        largest <= LIMIT + ONE_COMMIT,
        "the WAL reached {largest} bytes; its bound is {LIMIT}"
    );
    assert_eq!(follower.await.expect("follower"), total);
    assert!(reader.await.expect("reader") > 0);
}
