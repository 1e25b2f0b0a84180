//! Faults on purpose, through a PostgreSQL wire proxy (`sekiban-faults`) in front of the test
//! server: replies lost after the server committed, refusals the server calls transient,
//! connections cut in the middle of a reply, and faults that outlast the retry budget. After
//! each, what the store answered and what it stored are checked: nothing lost, nothing twice,
//! versions contiguous, the feed complete from every saved checkpoint.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use sekiban_conformance::faults::{self, LoseReplies, Write};
use sekiban_conformance::{Harness, catch_up_settled, events, feed_events, read_all};
use sekiban_core::backend::RetryBudget;
use sekiban_core::{
    BlobStore, ChangeFeed, Checkpoint, CheckpointStore, CostSnapshot, DeleteMode, EventStore,
    ExpectedVersion, FeedOptions, FeedStart, ObjectBlobStore, OpKind, ReadOptions, Snapshot,
    SnapshotStore, Store, StoreError, StreamId, Version,
};
use sekiban_faults::{Fault, Faults, PgProxy, Rule};
use sekiban_postgres::PostgresEventStore;

/// A store whose every connection goes through a fault proxy, and the statements it sends.
struct Proxied {
    proxy: PgProxy,
    store: PostgresEventStore,
    blobs: Arc<dyn BlobStore>,
    tenant: String,
}

impl Proxied {
    async fn open(attempts: u32) -> Proxied {
        let url = common::url();
        let parsed = url::Url::parse(&url).expect("SEKIBAN_POSTGRES_URL is a URL");
        let upstream = format!(
            "{}:{}",
            parsed.host_str().unwrap_or("127.0.0.1"),
            parsed.port().unwrap_or(5432)
        );
        let proxy = PgProxy::start(&upstream, Faults::new(Faults::seed_from_env()))
            .await
            .expect("start the proxy");
        let mut config = common::config();
        config.url = proxy.url(&config.url);
        config.retry = RetryBudget {
            attempts,
            ..RetryBudget::default()
        };
        let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
        let store = common::open(config, blobs.clone()).await;
        Proxied {
            proxy,
            store,
            blobs,
            tenant: format!("f{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
        }
    }

    fn stream(&self, category: &str) -> StreamId {
        let id = uuid::Uuid::new_v4().simple().to_string();
        StreamId::new(&self.tenant, category, &id).expect("a valid stream id")
    }

    /// The text of one of the store's statements, by name.
    fn sql(&self, name: &str) -> String {
        sekiban_postgres::statement_texts(&common::schema())
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no statement is named {name}"))
            .1
    }

    fn rules(&self, rules: Vec<Rule>) {
        self.proxy.faults().set(rules);
    }

    /// Statements of `name` the proxy saw executed.
    fn seen(&self, name: &str) -> usize {
        self.proxy.faults().seen_exactly(&self.sql(name))
    }

    fn costs(&self) -> CostSnapshot {
        self.store.costs()
    }

    fn feed(&self) -> FeedOptions {
        FeedOptions::catch_up().tenant(&self.tenant)
    }

    /// A conformance harness on the proxied store (its own tenant).
    fn harness(&self) -> Harness {
        Harness::new(Arc::new(self.store.clone()), self.blobs.clone())
    }
}

impl LoseReplies for Proxied {
    fn lose_next(&self, write: Write) {
        let statement = match write {
            Write::AppendNew => "append_new",
            Write::AppendExisting => "append_existing",
            Write::CheckpointNew => "insert_checkpoint",
            Write::CheckpointOver => "update_checkpoint",
            Write::SoftDelete => "soft_delete",
            Write::HardDelete => "hard_delete",
            Write::SnapshotPointer => "save_pointer",
            other => panic!("no statement for {other:?}"),
        };
        self.rules(vec![drop_reply(self.sql(statement))]);
    }

    fn injected(&self) -> usize {
        self.proxy.faults().log().len()
    }

    fn clear(&self) {
        self.proxy.faults().clear();
    }
}

fn snapshot(stream: StreamId, version: Version, state: Bytes) -> Snapshot {
    Snapshot {
        stream,
        version,
        state_type: "State".into(),
        schema_version: 1,
        state,
    }
}

fn drop_reply(on: String) -> Rule {
    Rule::exactly(on, Fault::DropReply).times(1)
}

fn refuse(on: String) -> Rule {
    Rule::exactly(
        on,
        Fault::Refuse {
            code: "40001".into(),
        },
    )
    .times(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_append_reply_is_answered_with_its_versions_under_every_expectation() {
    let p = Proxied::open(4).await;
    let h = p.harness();
    faults::lost_append_replies(&h, &p)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    // Nothing on the feed twice either: per size, n events under each of the four
    // expectations, and one first event under two of them.
    let max = p.store.limits().max_append_events;
    let want = [1, 16, 17, max].iter().map(|n| 4 * n + 2).sum();
    let fed = catch_up_settled(&p.store, FeedStart::Beginning, h.feed_opts(false), want)
        .await
        .expect("the feed");
    let fed = feed_events(&fed);
    assert_eq!(fed.len(), want, "events on the feed");
    let mut ids: Vec<_> = fed.iter().map(|e| e.id).collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "an event came twice on the feed");
}

/// Every event of the test's tenant on the feed from the beginning, once `want` have arrived.
async fn catch_up_settled_all(p: &Proxied, want: usize) -> Vec<sekiban_core::ChangeBatch> {
    catch_up_settled(&p.store, FeedStart::Beginning, p.feed(), want)
        .await
        .expect("the feed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_checkpoint_save_reply_is_answered_with_its_etag() {
    let p = Proxied::open(4).await;
    faults::lost_checkpoint_replies(&p.harness(), &p)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(
        p.seen("insert_checkpoint"),
        3,
        "the first save tried twice, and one later save as new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_delete_reply_has_one_effect_and_one_marker() {
    let p = Proxied::open(4).await;
    faults::lost_delete_replies(&p.harness(), &p)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    for statement in ["soft_delete", "hard_delete"] {
        assert_eq!(p.seen(statement), 2, "{statement}: tried twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_snapshot_save_reply_keeps_one_pointer_and_its_blob() {
    let p = Proxied::open(4).await;
    faults::lost_snapshot_pointer_replies(&p.harness(), &p)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(
        p.seen("save_pointer"),
        3,
        "the earlier snapshot's pointer, and the lost one tried twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_of_every_kind_of_request_is_retried_and_counted() {
    let p = Proxied::open(4).await;
    let names = [
        "append_new",
        "append_existing",
        "version",
        "read_forward",
        "read_backward",
        "save_pointer",
        "load_pointer",
        "insert_checkpoint",
        "update_checkpoint",
        "load_checkpoint",
        "delete_checkpoint",
        "list_streams",
        "xmin",
        "feed_tenant",
        "soft_delete",
        "hard_delete",
    ];
    p.rules(names.iter().map(|n| refuse(p.sql(n))).collect());
    let s = p.stream("refused");
    let sent = events("r", 3);
    p.store
        .append(&s, ExpectedVersion::NoStream, sent[..2].to_vec())
        .await
        .expect("append_new");
    p.store
        .append(&s, ExpectedVersion::Exact(Version(2)), sent[2..].to_vec())
        .await
        .expect("append_existing");
    assert_eq!(
        p.store.stream_version(&s).await.expect("version"),
        Version(3)
    );
    sekiban_conformance::check_events(
        &read_all(&p.store, &s).await.expect("read"),
        &sent,
        Version(1),
        "forward",
    )
    .unwrap_or_else(|f| panic!("{f}"));
    let back: Vec<_> = p
        .store
        .read(&s, ReadOptions::backward())
        .map(|e| e.expect("read backward").version.0)
        .collect()
        .await;
    assert_eq!(back, [3, 2, 1]);
    let snap = snapshot(s.clone(), Version(3), Bytes::from_static(b"{}"));
    p.store.save_snapshot(snap).await.expect("save_pointer");
    assert!(
        p.store
            .load_snapshot(&s)
            .await
            .expect("load_pointer")
            .is_some()
    );
    let name = format!("{}-c", p.tenant);
    let etag = p
        .store
        .save_checkpoint(&name, &Checkpoint::new("a"), None)
        .await
        .expect("insert_checkpoint");
    p.store
        .save_checkpoint(&name, &Checkpoint::new("b"), Some(&etag))
        .await
        .expect("update_checkpoint");
    assert!(
        p.store
            .load_checkpoint(&name)
            .await
            .expect("load")
            .is_some()
    );
    p.store
        .delete_checkpoint(&name)
        .await
        .expect("delete_checkpoint");
    let listed = p
        .store
        .catalog()
        .expect("a catalog")
        .list_streams(&p.tenant, None, None, 10)
        .await
        .expect("list_streams");
    assert_eq!(listed.len(), 1);
    let now = p
        .store
        .changes(FeedStart::Now, p.feed())
        .next()
        .await
        .expect("a batch from Now")
        .expect("xmin");
    assert!(now.items.is_empty());
    let fed = feed_events(&catch_up_settled_all(&p, 3).await);
    assert_eq!(fed.len(), 3);
    p.store
        .delete_stream(&s, DeleteMode::Soft)
        .await
        .expect("soft_delete");
    p.store
        .delete_stream(&s, DeleteMode::Hard)
        .await
        .expect("hard_delete");

    let log = p.proxy.faults().log();
    let faulted: std::collections::BTreeSet<usize> = log.iter().map(|i| i.rule).collect();
    let missed: Vec<_> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| !faulted.contains(i))
        .map(|(_, n)| *n)
        .collect();
    assert!(missed.is_empty(), "never refused: {missed:?}");
    let c = p.costs();
    for kind in [
        OpKind::Append,
        OpKind::Read,
        OpKind::Snapshot,
        OpKind::Checkpoint,
        OpKind::Other,
        OpKind::Feed,
        OpKind::Delete,
    ] {
        assert!(c.retries(kind) >= 1, "{kind:?} retries not counted: {c}");
    }
    assert_eq!(
        c.total().retries,
        names.len() as u64,
        "one retry per refusal: {c}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_beyond_the_budget_is_unavailable_after_exactly_the_budget() {
    let p = Proxied::open(3).await;
    let s = p.stream("budget");
    let faults = [
        Fault::Refuse {
            code: "40001".into(),
        },
        Fault::Close,
        Fault::DropReply,
    ];
    for (round, fault) in faults.into_iter().enumerate() {
        let before = p.costs();
        let seen = p.seen("append_new");
        p.rules(vec![Rule::exactly(p.sql("append_new"), fault.clone())]);
        let e = p
            .store
            .append(&s, ExpectedVersion::Any, events(&format!("b{round}"), 2))
            .await
            .expect_err("every attempt faulted");
        assert!(
            matches!(e, StoreError::Unavailable { .. }) && e.is_transient(),
            "{fault}: {e:?}"
        );
        assert_eq!(
            p.seen("append_new") - seen,
            3,
            "{fault}: attempts the proxy saw"
        );
        let spent = p.costs() - before;
        assert_eq!(spent.retries(OpKind::Append), 2, "{fault}: {spent}");
        p.proxy.faults().clear();
    }
    // Every lost reply was a committed append; the re-sends of the last one found it each
    // time, so the stream holds each batch once.
    let stored = read_all(&p.store, &s).await.expect("read");
    let tags: Vec<_> = stored.iter().map(|e| e.data.clone()).collect();
    assert_eq!(
        stored.len(),
        2,
        "only the dropped replies' append is stored: {tags:?}"
    );

    // A read that never gets an answer fails the same way.
    p.rules(vec![Rule::exactly(p.sql("read_forward"), Fault::Close)]);
    let e = read_all(&p.store, &s).await.expect_err("every read cut");
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
    assert_eq!(p.seen("read_forward"), 3 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_in_a_paged_read_or_a_feed_read_loses_and_repeats_nothing() {
    let p = Proxied::open(4).await;
    let s = p.stream("cut");
    let mut sent = Vec::new();
    for i in 0..3 {
        let batch = events(&format!("c{i}"), 900);
        p.store
            .append(&s, ExpectedVersion::Any, batch.clone())
            .await
            .expect("append");
        sent.extend(batch);
    }
    // The second page (of 1 000 events) is cut after 100 rows.
    p.rules(vec![
        Rule::exactly(p.sql("read_forward"), Fault::CutReply { after: 100 })
            .skip(1)
            .times(1),
    ]);
    sekiban_conformance::check_events(
        &read_all(&p.store, &s).await.expect("read"),
        &sent,
        Version(1),
        "a cut page",
    )
    .unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(p.proxy.faults().log().len(), 1);
    assert_eq!(p.costs().retries(OpKind::Read), 1);

    // The feed: a poll cut in the middle, then a resume from a checkpoint taken after it.
    p.rules(vec![
        Rule::exactly(p.sql("feed_tenant"), Fault::CutReply { after: 50 })
            .skip(1)
            .times(1),
    ]);
    let batches = catch_up_settled_all(&p, sent.len()).await;
    let fed = feed_events(&batches);
    let mut versions: Vec<u64> = fed.iter().map(|e| e.version.0).collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "one stream's events in order, none twice"
    );
    versions.dedup();
    assert_eq!(versions.len(), sent.len(), "every event delivered");
    assert!(p.proxy.faults().log().len() >= 2, "the feed poll was cut");
    p.proxy.faults().clear();
    faults::resumes_from_a_checkpoint(&p.store, &s, &batches, batches.len() / 2, p.feed(), || {})
        .await
        .unwrap_or_else(|f| panic!("{f}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_terminates_are_replaced_and_work_goes_on() {
    let app = format!(
        "sekiban-kill-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut config = common::config();
    config.url = format!(
        "{}{}application_name={app}",
        config.url,
        if config.url.contains('?') { '&' } else { '?' }
    );
    let store = common::open(config, Arc::new(ObjectBlobStore::memory())).await;
    let admin = common::raw().await;
    let s = StreamId::new("kills", "order", uuid::Uuid::new_v4().simple().to_string())
        .expect("a stream id");
    let mut sent = Vec::new();
    for round in 0..5 {
        // Every connection of the store ends, as a failover or an administrator would end them.
        let killed = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .await
            .expect("terminate the store's connections");
        assert!(
            !killed.is_empty(),
            "round {round}: the store had connections"
        );
        let batch = events(&format!("k{round}"), 10);
        store
            .append(&s, ExpectedVersion::Any, batch.clone())
            .await
            .unwrap_or_else(|e| panic!("round {round}: an append after the kill: {e}"));
        sent.extend(batch);
        sekiban_conformance::check_events(
            &read_all(&store, &s).await.expect("read"),
            &sent,
            Version(1),
            "after kills",
        )
        .unwrap_or_else(|f| panic!("{f}"));
    }
}
