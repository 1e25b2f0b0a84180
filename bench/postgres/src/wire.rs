//! Round trips on the wire: every contender's appends and loads through a counting proxy.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use sekiban_core::{OpKind, Store as _};

use sekiban_bench_postgres::contenders::{
    Contender, Floor, PostgresEs, Sekiban, connect, stream_id,
};
use sekiban_bench_postgres::proxy::{self, Proxy};

use crate::Names;
use crate::args::Args;
use crate::loads::{LOAD_STREAM, LOADS};

#[derive(Debug, Default, Clone)]
pub struct Wire {
    /// (contender, events per append) → requests per append.
    pub appends: Vec<(&'static str, usize, f64)>,
    /// sekiban's background NOTIFY statements per append (included in its wire count).
    pub sekiban_notify: Vec<(usize, f64)>,
    /// sekiban's own counter per append (operations, NOTIFY excluded).
    pub sekiban_counted: Vec<(usize, f64)>,
    /// (load, requests).
    pub loads: Vec<(&'static str, u64)>,
    /// What the counts are made of, per contender: (contender, "Q/S/H" per append at 1 event).
    pub detail: Vec<(&'static str, String)>,
}

pub const WIRE_APPENDS: u64 = 50;

pub async fn wire_phase(args: &Args, names: &Names, addr: std::net::SocketAddr) -> Result<Wire> {
    let proxy = Proxy::start(addr).await?;
    let url = via_port(&args.url, proxy.port)?;
    let admin = connect(&url).await?;
    let sekiban = Arc::new(Sekiban::open(&url, &names.sekiban, 2).await?);
    // One connection: sqlx prepares per connection, so every counted call finds its statement.
    let pges = Arc::new(PostgresEs::open(&url, &names.pges, 1, &admin).await?);
    let floor = Arc::new(Floor::open(&url, &names.floor, &names.sekiban, 1).await?);
    let all: [Arc<dyn Contender>; 3] = [sekiban.clone(), pges.clone(), floor.clone()];
    let mut w = Wire::default();
    for c in &all {
        for k in [1usize, 10] {
            let stream = format!("wire-k{k}");
            let mut head = 0;
            for _ in 0..3 {
                head = c.append_exact(&stream, head, k).await?;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (before, costs) = (proxy.counted(), sekiban.costs());
            // (Each append is followed by a pause, so background work — sekiban's NOTIFY,
            // sqlx's test of a returned connection — is counted with the append it follows.)
            for _ in 0..WIRE_APPENDS {
                head = c.append_exact(&stream, head, k).await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Lets sekiban's background notifier send what it owes for these appends.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let d = proxy.counted() - before;
            w.appends
                .push((c.name(), k, d.round_trips() as f64 / WIRE_APPENDS as f64));
            if k == 1 {
                let per = |n: u64| n as f64 / WIRE_APPENDS as f64;
                w.detail.push((
                    c.name(),
                    format!(
                        "{:.2} Query + {:.2} Sync + {:.2} Flush",
                        per(d.query),
                        per(d.sync),
                        per(d.flush)
                    ),
                ));
            }
            if c.name() == "sekiban" {
                let dc = sekiban.costs() - costs;
                w.sekiban_notify.push((
                    k,
                    dc.round_trips(OpKind::Notify) as f64 / WIRE_APPENDS as f64,
                ));
                w.sekiban_counted
                    .push((k, dc.operation_round_trips() as f64 / WIRE_APPENDS as f64));
            }
        }
    }
    let load = stream_id(LOAD_STREAM)?;
    // One untimed load each first (statements prepared, pools warm), then one counted.
    for counted in [false, true] {
        // sqlx tests a connection when it goes back to its pool, in a spawned task: wait for it.
        let settle = || tokio::time::sleep(Duration::from_millis(100));
        let mut record = |name: &'static str, before: proxy::Counted| {
            if counted {
                w.loads
                    .push((name, (proxy.counted() - before).round_trips()));
            }
        };
        let b = proxy.counted();
        sekiban.load(&load).await?;
        settle().await;
        record(LOADS[0], b);
        let b = proxy.counted();
        sekiban.load_with_snapshot(&load).await?;
        settle().await;
        record(LOADS[1], b);
        let b = proxy.counted();
        pges.load(LOAD_STREAM).await?;
        settle().await;
        record(LOADS[2], b);
        let b = proxy.counted();
        pges.load_with_snapshot(LOAD_STREAM).await?;
        settle().await;
        record(LOADS[3], b);
        let b = proxy.counted();
        floor.load(LOAD_STREAM).await?;
        settle().await;
        record(LOADS[4], b);
        let b = proxy.counted();
        floor.load_paged(LOAD_STREAM, 1000).await?;
        settle().await;
        record(LOADS[5], b);
    }
    pges.pool.close().await;
    sekiban.store.close().await?;
    Ok(w)
}

/// `url` pointed at 127.0.0.1:`port`.
fn via_port(url: &str, port: u16) -> Result<String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| anyhow!("not a URL"))?;
    let (auth, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let user = auth
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    Ok(format!("{scheme}://{user}127.0.0.1:{port}{path}"))
}
