//! `close()`: a closing writer sends its pending NOTIFY before it returns (a follower elsewhere
//! is woken at once, not at its next poll), every connection closes, and later operations fail
//! with `Unavailable`; a store dropped without `close` still announces what it owes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sekiban_conformance::events;
use sekiban_core::{
    ChangeBatch, ChangeFeed, Checkpoint, CheckpointStore, EventStore, ExpectedVersion, FeedItem,
    FeedOptions, FeedStart, ObjectBlobStore, ReadOptions, Store, StoreError, StreamId,
};
use sekiban_postgres::tokio_postgres::{self, Client, NoTls};
use sekiban_postgres::{PostgresConfig, PostgresEventStore};
use tokio::sync::mpsc;

fn tenant() -> String {
    format!("close{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// This run's configuration with the connections named `app` (`application_name`), so the test
/// can count them on the server.
fn named(app: &str, pool: usize) -> PostgresConfig {
    let mut c = common::config();
    let sep = if c.url.contains('?') { '&' } else { '?' };
    c.url = format!("{}{sep}application_name={app}", c.url);
    c.pool_size = pool;
    c
}

async fn open(config: PostgresConfig) -> PostgresEventStore {
    common::open(config, Arc::new(ObjectBlobStore::memory())).await
}

/// The schema's notifications as a LISTEN connection of the test's own receives them: the
/// tenant each names, with the instant it arrived. Unlike a follower's delivery, which waits for
/// every older transaction of the cluster to end (other tests' included), their arrival says
/// only when the writer sent them.
struct Notifications {
    _client: Client,
    rx: mpsc::UnboundedReceiver<(Instant, String)>,
}

impl Notifications {
    async fn listen() -> Notifications {
        let (client, mut connection) = tokio_postgres::connect(&common::url(), NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(m)) = messages.next().await {
                if let tokio_postgres::AsyncMessage::Notification(n) = m
                    && tx.send((Instant::now(), n.payload().to_string())).is_err()
                {
                    return;
                }
            }
        });
        // The store's channel: `<schema>.feed`.
        let channel = format!("{}.feed", common::schema()).replace('"', "\"\"");
        client
            .batch_execute(&format!("LISTEN \"{channel}\""))
            .await
            .unwrap_or_else(|e| panic!("listen: {e}"));
        Notifications {
            _client: client,
            rx,
        }
    }

    /// When the next notification naming `tenant` arrived; fails after `within`.
    async fn next(&mut self, tenant: &str, within: Duration, what: &str) -> Instant {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((at, t))) if t == tenant => return at,
                Ok(Some(_)) => {}
                Ok(None) => panic!("{what}: the test's LISTEN connection ended"),
                Err(_) => panic!("{what}: no NOTIFY for tenant {tenant} within {within:?}"),
            }
        }
    }
}

/// Server connections named `app`; `listening`: only those whose last statement was a LISTEN.
async fn connections(client: &Client, app: &str, listening: bool) -> i64 {
    let pattern = if listening { "LISTEN %" } else { "%" };
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND coalesce(query, '') LIKE $2",
            &[&app, &pattern],
        )
        .await
        .unwrap_or_else(|e| panic!("pg_stat_activity: {e}"))
        .get(0)
}

/// Waits until the server counts `want` connections named `app` (a closed connection's server
/// process leaves shortly after the client said goodbye); fails after `deadline`.
async fn await_connections(client: &Client, app: &str, listening: bool, want: i64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = connections(client, app, listening).await;
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the server still counts {n} connections named {app}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A follower on its own task: every event of `tenant` with the instant it arrived.
fn follow(
    store: PostgresEventStore,
    tenant: String,
) -> mpsc::UnboundedReceiver<(Instant, StreamId)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut feed = store.changes(FeedStart::Now, FeedOptions::follow().tenant(tenant));
        while let Some(batch) = feed.next().await {
            let Ok(ChangeBatch { items, .. }) = batch else {
                return;
            };
            let now = Instant::now();
            for item in items {
                if let FeedItem::Event(e) = item
                    && tx.send((now, e.stream)).is_err()
                {
                    return;
                }
            }
        }
    });
    rx
}

async fn next_event(
    rx: &mut mpsc::UnboundedReceiver<(Instant, StreamId)>,
    what: &str,
) -> (Instant, StreamId) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: no event within 10 s"))
        .unwrap_or_else(|| panic!("{what}: the follower ended"))
}

/// A short-lived writer, as a process that appends once and exits: on a thread and a runtime of
/// its own, it opens a store, appends one event to `stream`, closes the store and drops its
/// runtime (which ends whatever background task is left). Returns when the append returned.
async fn short_lived_writer(stream: StreamId) -> Instant {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let appended = rt.block_on(async {
            let mut config = common::config();
            config.pool_size = 1;
            let store =
                PostgresEventStore::connect_with_blobs(config, Arc::new(ObjectBlobStore::memory()))
                    .await
                    .unwrap_or_else(|e| panic!("connect: {e}"));
            store
                .append(&stream, ExpectedVersion::NoStream, events("w", 1))
                .await
                .unwrap_or_else(|e| panic!("append: {e}"));
            let appended = Instant::now();
            store.close().await.unwrap_or_else(|e| panic!("close: {e}"));
            appended
        });
        drop(rt);
        let _ = tx.send(appended);
    });
    rx.await.expect("the writer thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_sends_the_pending_notify_before_it_returns() {
    let t = tenant();
    let app = format!(
        "follow_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let follower = open(named(&app, 2)).await;
    let poll = follower.limits().feed_poll_interval;
    let client = common::raw().await;
    let mut notifications = Notifications::listen().await;
    let mut arrivals = follow(follower.clone(), t.clone());
    // Following: its LISTEN is on the server.
    await_connections(&client, &app, true, 1, "the follower's LISTEN").await;
    // A warm-up delivery puts the follower's next poll a whole interval away.
    let warm = StreamId::new(&t, "warm", "0").expect("stream id");
    short_lived_writer(warm.clone()).await;
    let (_, got) = next_event(&mut arrivals, "the warm-up").await;
    assert_eq!(got, warm);
    let rounds = 5;
    let mut waits = Vec::new();
    for round in 1..=rounds {
        let s = StreamId::new(&t, "short", format!("{round}")).expect("stream id");
        let appended = short_lived_writer(s.clone()).await;
        // The writer announced its commit before its runtime ended...
        let notified = notifications
            .next(&t, Duration::from_millis(500), "a closed writer's commit")
            .await;
        assert!(
            notified.saturating_duration_since(appended) < Duration::from_millis(500),
            "round {round}: the NOTIFY came {:?} after the append",
            notified.saturating_duration_since(appended)
        );
        // ...and the follower, woken by it, delivered the event.
        let (arrived, got) = next_event(&mut arrivals, "a short-lived writer's event").await;
        assert_eq!(got, s);
        waits.push(arrived.saturating_duration_since(appended));
    }
    // Most deliveries come at once; one may wait for another test's transaction to end (a
    // commit is delivered only once every older transaction of the cluster has ended).
    let mut sorted = waits.clone();
    sorted.sort();
    assert!(
        sorted[rounds / 2] < Duration::from_millis(500),
        "the follower saw closed writers' events after {waits:?} (the poll interval is {poll:?}): \
         it was not woken by their notifications"
    );
    follower.close().await.expect("close the follower");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_closes_every_connection_and_later_operations_are_unavailable() {
    let t = tenant();
    let app = format!(
        "closing_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let store = open(named(&app, 3)).await;
    let client = common::raw().await;
    let s = StreamId::new(&t, "order", "1").expect("stream id");
    store
        .append(&s, ExpectedVersion::NoStream, events("a", 2))
        .await
        .expect("append before close");
    // A follower waiting for commits (its LISTEN connection open) when the store closes.
    let mut feed = store.changes(FeedStart::Now, FeedOptions::follow().tenant(&t));
    let waiting = tokio::time::timeout(Duration::from_millis(200), feed.next()).await;
    assert!(waiting.is_err(), "nothing to deliver yet: {waiting:?}");
    await_connections(&client, &app, true, 1, "the LISTEN before close").await;
    // The pool opened what the work needed (at most its three), the follower its LISTEN.
    let pooled = store.open_connections();
    assert!((1..=3).contains(&pooled), "{pooled} pooled connections");
    await_connections(
        &client,
        &app,
        false,
        pooled as i64 + 1,
        "the pooled ones and one LISTEN",
    )
    .await;

    let other = store.clone();
    let closing = tokio::spawn(async move { other.close().await });
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), feed.next())
        .await
        .expect("a waiting follower wakes when the store closes");
    assert!(
        matches!(ended, Some(Err(StoreError::Unavailable { .. }))),
        "a following feed ends with Unavailable on close: {ended:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the follower waited {:?} for its poll instead of waking on close",
        started.elapsed()
    );
    assert!(feed.next().await.is_none(), "the feed ends after its error");
    drop(feed);
    closing
        .await
        .expect("the closing task")
        .expect("close succeeds");
    await_connections(&client, &app, false, 0, "after close").await;

    // Idempotent, from any clone.
    store.close().await.expect("a second close does nothing");
    store.clone().close().await.expect("a third, from a clone");

    let unavailable = |what: &str, r: Result<(), StoreError>| match r {
        Err(StoreError::Unavailable { source }) => assert!(
            source.to_string().contains("the store is closed"),
            "{what}: {source}"
        ),
        other => panic!("{what} after close must be Unavailable, got {other:?}"),
    };
    unavailable(
        "append",
        store
            .append(&s, ExpectedVersion::Any, events("late", 1))
            .await
            .map(drop),
    );
    unavailable("stream_version", store.stream_version(&s).await.map(drop));
    let read: Vec<_> = store.read(&s, ReadOptions::default()).collect().await;
    unavailable(
        "read",
        match read.into_iter().next() {
            Some(r) => r.map(drop),
            None => Ok(()),
        },
    );
    let polled = store
        .changes(FeedStart::Beginning, FeedOptions::catch_up().tenant(&t))
        .next()
        .await;
    unavailable(
        "changes",
        match polled {
            Some(r) => r.map(drop),
            None => Ok(()),
        },
    );
    unavailable(
        "save_checkpoint",
        store
            .save_checkpoint("c", &Checkpoint::new("x"), None)
            .await
            .map(drop),
    );
    unavailable(
        "delete_stream",
        store
            .delete_stream(&s, sekiban_core::DeleteMode::Soft)
            .await,
    );
    // Nothing was written after the close.
    let check = open(common::config()).await;
    assert_eq!(
        check.stream_version(&s).await.expect("version"),
        sekiban_core::Version(2),
        "an append refused after close wrote nothing"
    );
    check.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_clone_still_announces_pending_commits() {
    let t = tenant();
    let fapp = format!(
        "follow_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let follower = open(named(&fapp, 2)).await;
    let client = common::raw().await;
    let app = format!(
        "dropped_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut config = named(&app, 2);
    // A long throttle: the second commit is still pending when the store is dropped.
    config.notify_interval = Some(Duration::from_millis(300));
    let writer = open(config).await;
    let mut notifications = Notifications::listen().await;
    let mut arrivals = follow(follower.clone(), t.clone());
    await_connections(&client, &fapp, true, 1, "the follower's LISTEN").await;
    let first = StreamId::new(&t, "drop", "1").expect("stream id");
    writer
        .append(&first, ExpectedVersion::NoStream, events("d", 1))
        .await
        .expect("append");
    notifications
        .next(&t, Duration::from_secs(5), "the first commit")
        .await;
    let (_, got) = next_event(&mut arrivals, "the first commit").await;
    assert_eq!(got, first);
    // Announced at once after a quiet spell; the next one waits for the throttle...
    let second = StreamId::new(&t, "drop", "2").expect("stream id");
    writer
        .append(&second, ExpectedVersion::NoStream, events("d", 1))
        .await
        .expect("append");
    let appended = Instant::now();
    // ...but the store goes away first, without close.
    drop(writer);
    let notified = notifications
        .next(&t, Duration::from_secs(2), "the commit pending at drop")
        .await;
    let waited = notified.saturating_duration_since(appended);
    assert!(
        waited < Duration::from_millis(250),
        "a commit pending when the last clone was dropped was announced {waited:?} after its \
         append: not at once (the throttle is 300 ms)"
    );
    let (_, got) = next_event(&mut arrivals, "the commit pending at drop").await;
    assert_eq!(got, second);
    // The dropped store's connections close in the background.
    await_connections(&client, &app, false, 0, "after the drop").await;
    follower.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_open_on_demand_and_idle_ones_close() {
    let t = tenant();
    let app = format!(
        "demand_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut config = named(&app, 4);
    config.idle_timeout = Some(Duration::from_millis(300));
    let store = open(config).await;
    let client = common::raw().await;
    // Opening checks the schema on one connection, which stays for the work that follows.
    assert_eq!(store.open_connections(), 1, "after open");
    await_connections(&client, &app, false, 1, "after open").await;

    // Sixteen appends at once: connections opened as they are needed, never past the pool.
    let appends = (0..16).map(|i| {
        let store = store.clone();
        let s = StreamId::new(&t, "order", i.to_string()).expect("stream id");
        async move {
            store
                .append(&s, ExpectedVersion::NoStream, events("a", 1))
                .await
                .expect("append")
        }
    });
    futures::future::join_all(appends).await;
    let busy = store.open_connections();
    assert!((1..=4).contains(&busy), "{busy} connections for 16 appends");
    await_connections(&client, &app, false, busy as i64, "after the appends").await;

    // Idle past the timeout: every connection closed, on the server too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.open_connections() > 0 {
        assert!(Instant::now() < deadline, "idle connections still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    await_connections(&client, &app, false, 0, "after the idle timeout").await;

    // And opened again when work comes.
    let s = StreamId::new(&t, "order", "again").expect("stream id");
    store
        .append(&s, ExpectedVersion::NoStream, events("b", 1))
        .await
        .expect("an append after the idle connections closed");
    assert_eq!(store.open_connections(), 1);
    store.close().await.expect("close");
}
