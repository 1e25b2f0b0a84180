//! Concurrent appenders on one file: 16 tasks in one process, and two processes.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::new_file;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sekiban_conformance::{catch_up, events, feed_events, read_all, versions};
use sekiban_core::{
    ChangeFeed, CheckpointStore, EventStore, ExpectedVersion, FeedOptions, FeedStart, OpKind,
    RecordedEvent, Store, StoreError, StreamId, Version,
};
use sekiban_sqlite::{SqliteConfig, SqliteEventStore};

async fn open(path: &Path, busy: Duration) -> SqliteEventStore {
    let mut config = SqliteConfig::file(path);
    config.busy_timeout = busy;
    SqliteEventStore::open(config)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn stream(tenant: &str, id: &str) -> StreamId {
    StreamId::new(tenant, "account", id).expect("valid stream id")
}

/// Every stream's events come in version order, each version once.
fn check_feed_order(got: &[RecordedEvent]) -> BTreeMap<StreamId, u64> {
    let mut next = BTreeMap::new();
    for e in got {
        let n = next.entry(e.stream.clone()).or_insert(1u64);
        assert_eq!(e.version.0, *n, "feed order of {}", e.stream);
        *n += 1;
    }
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_tasks_append_to_one_file() {
    const TASKS: usize = 16;
    const APPENDS: usize = 40;
    let path = new_file("sixteen");
    let store = Arc::new(open(&path, Duration::from_secs(30)).await);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let own = stream("t16", &format!("own{t}"));
            let shared = stream("t16", "shared");
            for a in 0..APPENDS {
                let r = store
                    .append(
                        &own,
                        ExpectedVersion::Exact(Version(2 * a as u64)),
                        events("own", 2),
                    )
                    .await?;
                assert_eq!(r.last, Version(2 * a as u64 + 2));
                // Contended: reload and retry on a conflict, as a repository does.
                loop {
                    let v = store.stream_version(&shared).await?;
                    match store
                        .append(&shared, ExpectedVersion::Exact(v), events("shared", 1))
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::WrongExpectedVersion { actual, .. }) => assert!(actual > v),
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("appends");
    }
    for t in 0..TASKS {
        let own = read_all(&*store, &stream("t16", &format!("own{t}")))
            .await
            .expect("read");
        assert_eq!(versions(&own), (1..=2 * APPENDS as u64).collect::<Vec<_>>());
    }
    let shared = read_all(&*store, &stream("t16", "shared"))
        .await
        .expect("read");
    assert_eq!(
        versions(&shared),
        (1..=(TASKS * APPENDS) as u64).collect::<Vec<_>>()
    );
    let feed = feed_events(
        &catch_up(
            &*store,
            FeedStart::Beginning,
            FeedOptions::catch_up().tenant("t16"),
        )
        .await
        .expect("feed"),
    );
    assert_eq!(feed.len(), TASKS * APPENDS * 3, "events on the feed");
    check_feed_order(&feed);
    let commits = store.costs().round_trips(OpKind::Append);
    println!(
        "{} appends in {commits} append statements",
        TASKS * APPENDS * 2
    );
}

const CHILD_ENV: &str = "SEKIBAN_SQLITE_CHILD_DB";
const CHILD_APPENDS: usize = 150;

/// In a child process: appends to its own stream and to one shared by both processes.
async fn child(path: &Path) {
    let me = std::env::var("SEKIBAN_SQLITE_CHILD_NAME").expect("child name");
    // SQLite's busy handler is not fair: give the other process plenty of time.
    let store = open(path, Duration::from_secs(120)).await;
    let own = stream("procs", &me);
    let shared = stream("procs", "shared");
    for a in 0..CHILD_APPENDS {
        store
            .append(
                &own,
                ExpectedVersion::Exact(Version(a as u64)),
                events(&me, 1),
            )
            .await
            .unwrap_or_else(|e| panic!("{me}: append {a} to its own stream: {e}"));
        store
            .append(&shared, ExpectedVersion::Any, events(&me, 2))
            .await
            .unwrap_or_else(|e| panic!("{me}: append {a} to the shared stream: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_append_to_one_file() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(Path::new(&path)).await;
        return;
    }
    let path = new_file("two-procs");
    let store = open(&path, Duration::from_secs(120)).await;
    let total = 2 * CHILD_APPENDS * 3;
    // This process follows the feed while the children write: their commits reach it through
    // the notifier's fallback poll, as nothing in this process wakes it.
    let follower = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut feed =
                store.changes(FeedStart::Beginning, FeedOptions::follow().tenant("procs"));
            let mut got = Vec::new();
            while got.len() < total {
                let b = tokio::time::timeout(Duration::from_secs(120), feed.next())
                    .await
                    .expect("the follower saw no commit of the other processes within 120 s")
                    .expect("the feed ended")
                    .expect("feed batch");
                got.extend(b.items.into_iter().filter_map(|i| i.as_event().cloned()));
            }
            got
        })
    };
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = ["alpha", "beta"]
        .iter()
        .map(|name| {
            std::process::Command::new(&exe)
                .args(["two_processes_append_to_one_file", "--exact", "--nocapture"])
                .env(CHILD_ENV, &path)
                .env("SEKIBAN_SQLITE_CHILD_NAME", name)
                .spawn()
                .expect("spawn a child process")
        })
        .collect();
    for mut c in children {
        let status = tokio::task::spawn_blocking(move || c.wait())
            .await
            .expect("wait")
            .expect("child status");
        assert!(status.success(), "a child process failed: {status}");
    }
    for name in ["alpha", "beta"] {
        let own = read_all(&store, &stream("procs", name))
            .await
            .expect("read");
        assert_eq!(
            versions(&own),
            (1..=CHILD_APPENDS as u64).collect::<Vec<_>>(),
            "{name}"
        );
    }
    let shared = read_all(&store, &stream("procs", "shared"))
        .await
        .expect("read");
    assert_eq!(
        versions(&shared),
        (1..=(4 * CHILD_APPENDS) as u64).collect::<Vec<_>>()
    );
    let followed = follower.await.expect("follower");
    assert_eq!(followed.len(), total);
    let ends = check_feed_order(&followed);
    assert_eq!(ends.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_past_the_busy_timeout_is_unavailable_and_writes_nothing() {
    let path = new_file("busy");
    let store = open(&path, Duration::from_millis(300)).await;
    let s = stream("busy", "x");
    store
        .append(&s, ExpectedVersion::NoStream, events("a", 1))
        .await
        .expect("append");
    let blocker = rusqlite::Connection::open(&path).expect("open a raw connection");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let r = store
        .append(&s, ExpectedVersion::Exact(Version(1)), events("b", 1))
        .await;
    match r {
        Err(e @ StoreError::Unavailable { .. }) => assert!(e.is_transient()),
        other => {
            panic!("expected Unavailable while another connection holds the lock, got {other:?}")
        }
    }
    blocker.execute_batch("ROLLBACK").expect("release");
    assert_eq!(store.stream_version(&s).await.expect("version"), Version(1));
    let r = store
        .append(&s, ExpectedVersion::Exact(Version(1)), events("c", 1))
        .await;
    assert_eq!(
        r.expect("append after the lock is released").last,
        Version(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiting_readers_are_woken_by_one_query() {
    const READERS: usize = 20;
    let store = open(&new_file("herd"), Duration::from_secs(30)).await;
    let mut feeds = Vec::new();
    for _ in 0..READERS {
        let mut f = store.changes(FeedStart::Now, FeedOptions::follow().tenant("herd"));
        // Poll once so the reader has caught up and waits on the notifier.
        let idle = tokio::time::timeout(Duration::from_millis(100), f.next()).await;
        assert!(idle.is_err(), "nothing was appended yet");
        feeds.push(f);
    }
    let before = store.costs();
    store
        .append(
            &stream("herd", "x"),
            ExpectedVersion::NoStream,
            events("wake", 1),
        )
        .await
        .expect("append");
    for f in &mut feeds {
        let b = tokio::time::timeout(Duration::from_secs(5), f.next())
            .await
            .expect("woken within 5 s")
            .expect("batch")
            .expect("ok");
        assert_eq!(b.items.len(), 1);
    }
    let queries = (store.costs() - before).round_trips(OpKind::Feed);
    assert!(
        queries <= 4,
        "{READERS} waiting readers cost {queries} feed queries for one commit; the notifier must serve them with one poll"
    );
}

#[tokio::test]
async fn opening_refuses_what_is_not_a_sekiban_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-dir").join("x.db");
    let e = SqliteEventStore::open(SqliteConfig::file(&missing))
        .await
        .expect_err("missing dir");
    assert!(matches!(e, StoreError::InvalidInput { .. }), "{e:?}");
    assert!(e.to_string().contains("does not exist"), "{e}");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![b'x'; 8192]).expect("write");
    let e = SqliteEventStore::open(SqliteConfig::file(&garbage))
        .await
        .expect_err("garbage file");
    assert!(matches!(e, StoreError::InvalidInput { .. }), "{e:?}");

    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .and_then(|c| c.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
        .expect("make a foreign database");
    let e = SqliteEventStore::open(SqliteConfig::file(&foreign))
        .await
        .expect_err("foreign db");
    assert!(e.to_string().contains("not a sekiban store"), "{e}");
}

#[tokio::test]
async fn reopening_keeps_events_snapshots_and_checkpoints() {
    let path = new_file("reopen");
    let s = stream("reopen", "x");
    let checkpoint = {
        let store = open(&path, Duration::from_secs(5)).await;
        store
            .append(&s, ExpectedVersion::NoStream, events("a", 3))
            .await
            .expect("append");
        let batches = catch_up(
            &store,
            FeedStart::Beginning,
            FeedOptions::catch_up().tenant("reopen"),
        )
        .await
        .expect("feed");
        let cp = batches.last().expect("a batch").checkpoint.clone();
        store
            .save_checkpoint("reader", &cp, None)
            .await
            .expect("save");
        cp
    };
    let store = open(&path, Duration::from_secs(5)).await;
    assert_eq!(store.stream_version(&s).await.expect("version"), Version(3));
    let (loaded, _) = store
        .load_checkpoint("reader")
        .await
        .expect("load")
        .expect("saved");
    assert_eq!(loaded, checkpoint);
    store
        .append(&s, ExpectedVersion::Exact(Version(3)), events("b", 1))
        .await
        .expect("append");
    let after = catch_up(
        &store,
        FeedStart::After(checkpoint),
        FeedOptions::catch_up().tenant("reopen"),
    )
    .await
    .expect("a checkpoint of the same file resumes after reopening");
    assert_eq!(versions(&feed_events(&after)), vec![4]);
    let other = open(&new_file("other"), Duration::from_secs(5)).await;
    let mut foreign = other.changes(FeedStart::After(loaded), FeedOptions::catch_up());
    let r = foreign.next().await.expect("an item");
    assert!(
        matches!(r, Err(StoreError::InvalidCheckpoint { .. })),
        "{r:?}"
    );
}
