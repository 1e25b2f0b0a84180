//! Reads cost the same at any depth: the statements that start at a version or a position seek
//! their index to it, in the custom plans PostgreSQL makes for the first runs of a prepared
//! statement and in the generic plan it may switch to later (the store prepares every statement
//! once per connection). Each case runs the store's own statement text
//! (`sekiban_postgres::statement_texts`) under `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` and
//! checks the scan of the big table: its index condition holds the bound, it returns the page's
//! rows and no more (no bitmap scan and sort of everything after the bound), no row is read and
//! thrown away by a filter, and it touches about one page's worth of blocks — far fewer than a
//! scan from the start does. The plans are taken on a connection set up as the store sets up
//! its own (`sekiban_postgres::session_settings`); pages also with the server's defaults.

mod common;

use std::sync::Arc;

use sekiban_conformance::events;
use sekiban_core::{EventStore, ExpectedVersion, ObjectBlobStore, Store, StreamId};
use sekiban_postgres::tokio_postgres::{Client, SimpleQueryMessage};
use serde_json::Value;

/// Events in the deep stream.
const DEPTH: i64 = 20_000;
/// Rows per page in the plans checked (the store's own pages are larger; the point is the
/// scan's start, not its length).
const PAGE: i64 = 100;
/// Blocks one page of `PAGE` small rows may touch (index and heap, with room to spare); a scan
/// from the stream's start touches hundreds.
const PAGE_BLOCKS: i64 = 40;

/// A connection of its own; `as_store`: set up as the store sets up its connections
/// (`sekiban_postgres::session_settings`), else with the server's defaults.
async fn raw(as_store: bool) -> Client {
    let client = common::raw().await;
    if as_store {
        client
            .batch_execute(sekiban_postgres::session_settings())
            .await
            .unwrap_or_else(|e| panic!("session settings: {e}"));
    }
    client
}

fn tenant() -> String {
    format!("plans{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn sql(name: &str) -> String {
    sekiban_postgres::statement_texts(&common::schema())
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no statement named {name}"))
        .1
}

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Which plan PostgreSQL uses for a prepared statement.
#[derive(Clone, Copy, Debug)]
enum Plan {
    Custom,
    Generic,
}

const PLANS: [Plan; 2] = [Plan::Custom, Plan::Generic];

/// The JSON plan of the store's statement `name` run with `args` (SQL literals), as a
/// prepared statement under `plan`.
async fn explain(client: &Client, name: &str, args: &[String], plan: Plan) -> Value {
    let mode = match plan {
        Plan::Custom => "force_custom_plan",
        Plan::Generic => "force_generic_plan",
    };
    client
        .batch_execute(&format!(
            "DEALLOCATE ALL; SET plan_cache_mode = {mode}; PREPARE probe AS {}",
            sql(name)
        ))
        .await
        .unwrap_or_else(|e| panic!("prepare {name}: {e}"));
    let messages = client
        .simple_query(&format!(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE probe({})",
            args.join(", ")
        ))
        .await
        .unwrap_or_else(|e| panic!("explain {name}: {e}"));
    let text = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_else(|| panic!("explain {name}: no plan"));
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("plan JSON: {e}"));
    json[0]["Plan"].clone()
}

/// Every node of a plan, depth first.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut all = vec![plan];
    if let Some(children) = plan["Plans"].as_array() {
        for c in children {
            all.extend(nodes(c));
        }
    }
    all
}

/// A scan and the nodes under it that feed it rows (its bitmap index scans), without the
/// subqueries of its filter.
fn own(scan: &Value) -> Vec<&Value> {
    let mut all = vec![scan];
    if let Some(children) = scan["Plans"].as_array() {
        for c in children {
            if c["Parent Relationship"] != "SubPlan" && c["Parent Relationship"] != "InitPlan" {
                all.extend(own(c));
            }
        }
    }
    all
}

/// What the scan of `relation` did (rows of a parallel scan are its workers' average times
/// their number, so they may be off by one or two).
#[derive(Debug)]
struct Scan {
    node: String,
    index: String,
    /// The index conditions of the scan (or of its bitmap index scans).
    cond: String,
    /// Rows the scan returned.
    rows: i64,
    /// Rows it read and dropped (its filter).
    filtered: i64,
    /// Blocks it touched itself (without its filter's subqueries).
    blocks: i64,
}

impl std::fmt::Display for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {}: {} rows, {} removed by filter, {} blocks; index cond {}",
            self.node, self.index, self.rows, self.filtered, self.blocks, self.cond
        )
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn scan(plan: &Value, relation: &str) -> Scan {
    let node = nodes(plan)
        .into_iter()
        .find(|n| n["Relation Name"] == relation)
        .unwrap_or_else(|| panic!("no scan of {relation} in {plan:#}"));
    let conds: Vec<String> = own(node)
        .into_iter()
        .filter_map(|n| n["Index Cond"].as_str().map(str::to_string))
        .collect();
    let index: Vec<String> = own(node)
        .into_iter()
        .filter_map(|n| n["Index Name"].as_str().map(str::to_string))
        .collect();
    let blocks = |n: &Value| int(&n["Shared Hit Blocks"]) + int(&n["Shared Read Blocks"]);
    // A filter's subquery (the feed's look-up of each row's stream) counts in the scan's
    // blocks; the scan's own are what is left.
    let lookups: i64 = node["Plans"]
        .as_array()
        .map(|children| {
            children
                .iter()
                .filter(|c| c["Parent Relationship"] == "SubPlan")
                .map(blocks)
                .sum()
        })
        .unwrap_or(0);
    Scan {
        node: node["Node Type"].as_str().unwrap_or("?").to_string(),
        index: index.join(", "),
        cond: conds.join(" / "),
        rows: int(&node["Actual Rows"]) * int(&node["Actual Loops"]).max(1),
        filtered: int(&node["Rows Removed by Filter"]),
        blocks: blocks(node) - lookups,
    }
}

/// The scan reads one page from its bound: the bound is in the index condition, it returns the
/// page's `rows` and no more, it drops at most `others` rows (rows of other streams or tenants a
/// feed may walk past, never rows before the bound), and it touches about a page's worth of
/// blocks, far below `from_start`.
fn assert_seeks(what: &str, s: &Scan, bound: &str, rows: i64, others: i64, from_start: i64) {
    println!("{what}: {s} (from the start: {from_start} blocks)");
    assert!(
        s.cond.contains(bound),
        "{what}: the scan's index condition lacks {bound:?}, so it starts before the page: {s}"
    );
    assert_eq!(
        s.rows, rows,
        "{what}: the scan returned other than the page's rows (a scan of everything after the \
         bound, sorted afterwards?): {s}"
    );
    assert!(
        s.filtered <= others,
        "{what}: {} rows read and thrown away by a filter: the scan starts before the page: {s}",
        s.filtered
    );
    assert!(
        s.blocks <= (rows + s.filtered) / 8 + PAGE_BLOCKS && s.blocks * 10 <= from_start,
        "{what}: {} blocks for a page of {rows} (a scan from the start touches {from_start}): {s}",
        s.blocks
    );
}

/// Other tenants' events, as a shared store holds them: `tenants` tenants with a stream of 10
/// events named like `like` (every tenant has its `order/1`), written straight into the
/// tables in one transaction, so the deep stream below is one of many, not the whole table.
async fn neighbours(client: &Client, like: &StreamId, tenants: i64) {
    let schema = common::schema();
    let (c, id) = (lit(like.category()), lit(like.id()));
    client
        .batch_execute(&format!(
            "BEGIN; \
             INSERT INTO \"{schema}\".streams (tenant, category, stream_id, version, last_tx) \
               SELECT '{t}' || g, {c}, {id}, 10, pg_current_xact_id()::text::bigint \
               FROM generate_series(1, {tenants}) g; \
             INSERT INTO \"{schema}\".log (tx, kind, tenant, category, stream_id, version, event_id, \
               event_type, schema_version, data, append_first, append_last) \
               SELECT pg_current_xact_id()::text::bigint, 0, '{t}' || g, {c}, {id}, v, gen_random_uuid(), \
                 'Other', 1, convert_to(repeat('x', 100), 'UTF8'), 1, 10 \
               FROM generate_series(1, {tenants}) g, generate_series(1, 10) v; \
             COMMIT",
            t = tenant()
        ))
        .await
        .unwrap_or_else(|e| panic!("neighbours: {e:?}"));
}

/// One stream of `DEPTH` events (1 000 per append) among as many other tenants' events,
/// statistics fresh.
async fn deep_stream(client: &Client) -> StreamId {
    let store = common::store_with(Arc::new(ObjectBlobStore::memory())).await;
    let s = StreamId::new(tenant(), "deep", "1").expect("stream id");
    neighbours(client, &s, DEPTH / 10).await;
    let per = store.limits().max_append_events.min(1000);
    let mut written = 0;
    while written < DEPTH as usize {
        store
            .append(&s, ExpectedVersion::Any, events("deep", per))
            .await
            .unwrap_or_else(|e| panic!("append: {e}"));
        written += per;
    }
    store.close().await.expect("close");
    let schema = common::schema();
    client
        .batch_execute(&format!(
            "ANALYZE \"{schema}\".log; ANALYZE \"{schema}\".streams"
        ))
        .await
        .unwrap_or_else(|e| panic!("analyze: {e}"));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_feed_polls_seek_to_their_start() {
    let client = raw(true).await;
    let plain = raw(false).await;
    let s = deep_stream(&client).await;
    let key = [lit(s.tenant()), lit(s.category()), lit(s.id())];
    let args = |rest: &[i64]| -> Vec<String> {
        key.iter()
            .cloned()
            .chain(rest.iter().map(i64::to_string))
            .collect()
    };

    // Pages are checked as the store's connections run them, and on a connection with the
    // server's defaults (the statements keep the planner's estimate honest on their own: no
    // range whose one end it cannot see when it plans).
    for (session, on) in [("store session", &client), ("server defaults", &plain)] {
        for plan in PLANS {
            // What a scan from the stream's first version touches: the whole stream.
            let all = explain(on, "read_forward", &args(&[1, i64::MAX, DEPTH]), plan).await;
            let all = scan(&all, "log");
            assert!(all.rows >= DEPTH - 2, "{plan:?}: the whole stream: {all}");

            // The store's own first page from either end, pages in the middle, and pages near
            // the far end: each exactly its limit of rows.
            let store_page = common::config().limits.page_events as i64;
            for (name, from, end, limit) in [
                ("read_forward", 1, i64::MAX, store_page),
                ("read_forward", DEPTH / 2 + 1, i64::MAX, PAGE),
                ("read_forward", DEPTH - PAGE + 1, i64::MAX, PAGE),
                ("read_backward", i64::MAX, 1, store_page),
                ("read_backward", DEPTH / 2, 1, PAGE),
                ("read_backward", PAGE, 1, PAGE),
            ] {
                let p = explain(on, name, &args(&[from, end, limit]), plan).await;
                let bound = if name == "read_forward" {
                    "version >="
                } else {
                    "version <="
                };
                assert_seeks(
                    &format!("{name} from {from}, {limit} events ({plan:?} plan, {session})"),
                    &scan(&p, "log"),
                    bound,
                    limit,
                    0,
                    all.blocks,
                );
            }
        }
    }

    // A soft-deleted stream that went on: a forward read from version 1 seeks past the hidden
    // events instead of reading and dropping them.
    let store = common::store_with(Arc::new(ObjectBlobStore::memory())).await;
    let soft = StreamId::new(tenant(), "soft", "1").expect("stream id");
    for _ in 0..3 {
        store
            .append(&soft, ExpectedVersion::Any, events("hidden", 1000))
            .await
            .unwrap_or_else(|e| panic!("append: {e}"));
    }
    store
        .delete_stream(&soft, sekiban_core::DeleteMode::Soft)
        .await
        .unwrap_or_else(|e| panic!("soft delete: {e}"));
    store
        .append(
            &soft,
            ExpectedVersion::Any,
            events("visible", PAGE as usize),
        )
        .await
        .unwrap_or_else(|e| panic!("append: {e}"));
    store.close().await.expect("close");
    let soft_key = [lit(soft.tenant()), lit(soft.category()), lit(soft.id())];
    for plan in PLANS {
        let args: Vec<String> = soft_key
            .iter()
            .cloned()
            .chain([1, i64::MAX, PAGE].map(|v| v.to_string()))
            .collect();
        let p = explain(&client, "read_forward", &args, plan).await;
        assert_seeks(
            &format!("read_forward from 1 past 3000 soft-deleted events ({plan:?} plan)"),
            &scan(&p, "log"),
            "version >=",
            PAGE,
            0,
            3000,
        );
    }

    // Feed polls of this tenant: after a late position (the event PAGE before the head: a
    // follower), and after an early one (the event at version PAGE: a reader far behind,
    // catching up in the store's batches).
    let position_of = |version: i64| {
        let client = &client;
        let s = &s;
        async move {
            let row = client
                .query_one(
                    &format!(
                        "SELECT tx, global_position FROM \"{}\".log \
                         WHERE tenant = $1 AND category = $2 AND stream_id = $3 AND kind = 0 AND version = $4",
                        common::schema()
                    ),
                    &[&s.tenant(), &s.category(), &s.id(), &version],
                )
                .await
                .unwrap_or_else(|e| panic!("position: {e}"));
            (row.get::<_, i64>(0), row.get::<_, i64>(1))
        }
    };
    let store_page = common::config().limits.page_events as i64;
    let late = position_of(DEPTH - PAGE).await;
    let behind = position_of(DEPTH - 2 * store_page).await;
    let early = position_of(PAGE).await;
    for plan in PLANS {
        for (name, filter) in [
            ("feed_tenant", vec![lit(s.tenant())]),
            (
                "feed_tenant_category",
                vec![lit(s.tenant()), lit(s.category())],
            ),
        ] {
            let with = |(tx, position): (i64, i64), limit: i64| -> Vec<String> {
                [tx, position, limit]
                    .iter()
                    .map(i64::to_string)
                    .chain(filter.iter().cloned())
                    .collect()
            };
            let all = scan(
                &explain(&client, name, &with((0, 0), DEPTH), plan).await,
                "log",
            );
            assert!(
                all.rows >= DEPTH - 2,
                "{name} ({plan:?}) from the start: {all}"
            );
            for (after, limit) in [(late, PAGE), (behind, store_page), (early, store_page)] {
                // Another transaction still running may hold the snapshot's xmin below the
                // stream's last append for a moment; its rows are then not deliverable yet.
                let mut tries = 0;
                let polled = loop {
                    let polled = scan(
                        &explain(&client, name, &with(after, limit), plan).await,
                        "log",
                    );
                    tries += 1;
                    if polled.rows == limit || tries == 50 {
                        break polled;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                };
                assert_seeks(
                    &format!("{name} after {after:?}, {limit} items ({plan:?} plan)"),
                    &polled,
                    "ROW(tx, global_position) >",
                    limit,
                    // Other tenants' rows, when the planner walks the (tx, position) index of
                    // every tenant (this tenant holds most of the log) and filters.
                    limit,
                    all.blocks,
                );
            }
        }
        // Without a filter the feed reads every tenant in (tx, position) order; after the late
        // position come this stream's last rows first, then whatever other tests wrote.
        let polled = scan(
            &explain(
                &client,
                "feed",
                &[late.0, late.1, PAGE].map(|v| v.to_string()),
                plan,
            )
            .await,
            "log",
        );
        println!("feed after {late:?} ({plan:?} plan): {polled}");
        assert!(
            polled.cond.contains("ROW(tx, global_position) >") && polled.filtered <= 1,
            "feed after {late:?} ({plan:?} plan) does not seek: {polled}"
        );
        assert!(
            polled.blocks <= PAGE / 8 + PAGE_BLOCKS,
            "feed after {late:?} ({plan:?} plan): {} blocks for a page: {polled}",
            polled.blocks
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_listings_seek_to_their_start() {
    let client = raw(true).await;
    let store = common::store_with(Arc::new(ObjectBlobStore::memory())).await;
    let t = tenant();
    // A small category before a large one: 3 streams in `b`, 5 000 in `d`.
    for i in 0..3 {
        let s = StreamId::new(&t, "b", format!("s{i}")).expect("stream id");
        store
            .append(&s, ExpectedVersion::NoStream, events("b", 1))
            .await
            .unwrap_or_else(|e| panic!("append: {e}"));
    }
    let schema = common::schema();
    // The large category's head rows straight in (the listing reads only these).
    client
        .execute(
            &format!(
                "INSERT INTO \"{schema}\".streams (tenant, category, stream_id, version, last_tx) \
                 SELECT $1, 'd', 'x' || lpad(g::text, 5, '0'), 1, 0 FROM generate_series(1, 5000) g"
            ),
            &[&t],
        )
        .await
        .unwrap_or_else(|e| panic!("insert streams: {e}"));
    client
        .batch_execute(&format!("ANALYZE \"{schema}\".streams"))
        .await
        .unwrap_or_else(|e| panic!("analyze: {e}"));
    let catalog = store.catalog().expect("a catalog");
    let b = catalog
        .list_streams(&t, Some("b"), None, 100)
        .await
        .expect("list b");
    assert_eq!(b.len(), 3, "{b:?}");
    let after = StreamId::new(&t, "d", "x04990").expect("stream id");
    let d = catalog
        .list_streams(&t, Some("d"), Some(&after), 100)
        .await
        .expect("list d");
    assert_eq!(d.len(), 10, "{d:?}");
    let past = catalog
        .list_streams(&t, Some("b"), Some(&after), 100)
        .await
        .expect("list b after d");
    assert!(
        past.is_empty(),
        "nothing in b comes after d/x04990: {past:?}"
    );

    let (tl, b_, d_, none) = (lit(&t), lit("b"), lit("d"), lit(""));
    for plan in PLANS {
        let all = scan(
            &explain(
                &client,
                "list_streams",
                &[tl.clone(), none.clone(), none.clone(), "10000".into()],
                plan,
            )
            .await,
            "streams",
        );
        assert!(all.rows >= 5001, "{plan:?}: the whole tenant: {all}");
        // The first page of the small category: it ends where the category does.
        let first = scan(
            &explain(
                &client,
                "list_category",
                &[
                    tl.clone(),
                    b_.clone(),
                    none.clone(),
                    none.clone(),
                    "100".into(),
                ],
                plan,
            )
            .await,
            "streams",
        );
        assert_seeks(
            &format!("list_category b ({plan:?} plan)"),
            &first,
            "category =",
            3,
            0,
            all.blocks,
        );
        // A late page of the large category.
        let late = scan(
            &explain(
                &client,
                "list_category",
                &[
                    tl.clone(),
                    d_.clone(),
                    d_.clone(),
                    lit("x04900"),
                    "100".into(),
                ],
                plan,
            )
            .await,
            "streams",
        );
        assert_seeks(
            &format!("list_category d after x04900 ({plan:?} plan)"),
            &late,
            "stream_id >",
            100,
            0,
            all.blocks,
        );
        // A late page of the whole tenant.
        let late = scan(
            &explain(
                &client,
                "list_streams",
                &[tl.clone(), d_.clone(), lit("x04900"), "100".into()],
                plan,
            )
            .await,
            "streams",
        );
        assert_seeks(
            &format!("list_streams after d/x04900 ({plan:?} plan)"),
            &late,
            "ROW(category, stream_id) >",
            100,
            0,
            all.blocks,
        );
    }
    store.close().await.expect("close");
}
