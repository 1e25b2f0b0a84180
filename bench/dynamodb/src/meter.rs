//! Counted operations, through the counting proxy: what appends and loads cost on the wire and
//! in capacity units (as the emulator reports them and by AWS's published rules).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;

use sekiban_bench_dynamodb::contenders::{self, Contender, DynamoEs, Sekiban, Shape};
use sekiban_bench_dynamodb::proxy::{Counted, Proxy};
use sekiban_bench_dynamodb::units::{Accountant, Units};

use crate::Names;
use crate::args::Args;
use crate::loads::{LOAD_STREAM, LOADS};

/// What each append counted on the wire carries.
pub const WIRE_SHAPES: [Shape; 3] = [Shape::One800, Shape::Ten100, Shape::Ten100Random];

/// The proxy and what applies AWS's rules to what it saw. Every exchange the proxy captures is
/// charged, counted or not, so the accountant knows each item's size before it is updated.
struct Meter {
    proxy: Proxy,
    accountant: Accountant,
}

/// What some operations cost, counted through the proxy.
#[derive(Clone, Debug, Default)]
pub struct Cost {
    /// Operations counted.
    pub ops: usize,
    pub wire: Counted,
    pub units: Units,
    /// The most write units one operation cost (AWS's rules).
    pub max_write: f64,
    /// sekiban's own counter (requests, capacity units), when the contender is sekiban.
    pub own: Option<(u64, f64)>,
    /// Events read (loads).
    pub events: usize,
    /// Time of the operations (through the proxy; the accountant's work left out).
    pub elapsed: Duration,
}

impl Cost {
    pub fn per(&self, x: f64) -> f64 {
        x / self.ops.max(1) as f64
    }
    pub fn requests(&self) -> f64 {
        self.per(self.wire.total().requests as f64)
    }
}

impl Meter {
    /// Charges what passed since the last call.
    async fn settle(&mut self) -> Result<Units> {
        let x = self.proxy.take();
        self.accountant.charge(&x).await
    }

    /// Appends `n` times `shape` to `stream` (from `head`) one by one, counting each; the new
    /// head and the cost.
    async fn appends(
        &mut self,
        c: &dyn Contender,
        sekiban: Option<&Sekiban>,
        stream: &str,
        mut head: u64,
        shape: Shape,
        n: usize,
    ) -> Result<(u64, Cost)> {
        self.settle().await?;
        let before = self.proxy.counted();
        let own = sekiban.map(own_costs);
        let mut cost = Cost::default();
        for _ in 0..n {
            let t0 = Instant::now();
            head = c.append(stream, head, shape).await?;
            cost.elapsed += t0.elapsed();
            let u = self.settle().await?;
            cost.max_write = cost.max_write.max(u.write);
            cost.units = cost.units + u;
            cost.ops += 1;
        }
        cost.wire = &self.proxy.counted() - &before;
        cost.own = sekiban.zip(own).map(|(s, b)| {
            let a = own_costs(s);
            (a.0 - b.0, a.1 - b.1)
        });
        Ok((head, cost))
    }

    /// One counted run of `f` (a load); the events it read.
    async fn load<F>(&mut self, sekiban: Option<&Sekiban>, f: F) -> Result<Cost>
    where
        F: std::future::Future<Output = Result<usize>>,
    {
        self.settle().await?;
        let before = self.proxy.counted();
        let own = sekiban.map(own_costs);
        let t0 = Instant::now();
        let events = f.await?;
        let elapsed = t0.elapsed();
        let units = self.settle().await?;
        Ok(Cost {
            ops: 1,
            wire: &self.proxy.counted() - &before,
            units,
            max_write: units.write,
            own: sekiban.zip(own).map(|(s, b)| {
                let a = own_costs(s);
                (a.0 - b.0, a.1 - b.1)
            }),
            events,
            elapsed,
        })
    }
}

/// sekiban's own counter: requests of operations, capacity units reported.
fn own_costs(s: &Sekiban) -> (u64, f64) {
    let c = s.costs();
    (c.operation_round_trips(), c.total().capacity_units)
}

/// What the counted phase measured.
pub struct Wire {
    /// (shape, contender) → cost of `wire_appends` appends.
    pub appends: Vec<(Shape, &'static str, Cost)>,
    /// (load, cost of one) in `LOADS` order.
    pub loads: Vec<(&'static str, Cost)>,
    /// The long stream: (what, contender, cost).
    pub long: Vec<(&'static str, &'static str, Cost)>,
}

/// The counted phase, through a proxy in front of the emulator at `addr`: `wire_appends`
/// appends of each shape per contender, each load of the 1 000-event stream (after one
/// untimed), and the long stream written one 800-byte event an append and read back.
pub async fn count_phase(
    args: &Args,
    names: &Names,
    addr: SocketAddr,
    admin: &aws_sdk_dynamodb::Client,
) -> Result<Wire> {
    eprintln!("bench: counting on the wire");
    let proxy = Proxy::start(addr).await?;
    proxy.capture(true);
    let via = proxy.endpoint();
    let sekiban_p = Sekiban::connect(&via, &names.sekiban).await?;
    let dynamoes_p = DynamoEs::new(
        contenders::client(&via, true).await,
        &names.events,
        &names.snapshots,
    );
    let mut meter = Meter {
        proxy,
        accountant: Accountant::new(admin.clone()),
    };
    let mut appends = Vec::new();
    for shape in WIRE_SHAPES {
        for (c, s) in [
            (&sekiban_p as &dyn Contender, Some(&sekiban_p)),
            (&dynamoes_p as &dyn Contender, None),
        ] {
            let stream = format!("wire-{}", shape.tag());
            // Warm-up, charged but not reported: the stream is created and appended to once.
            let (head, _) = meter.appends(c, s, &stream, 0, shape, 2).await?;
            let (_, cost) = meter
                .appends(c, s, &stream, head, shape, args.wire_appends)
                .await?;
            eprintln!(
                "bench: {:>9} {:<24} {:.2} requests, {:.2} WCU (AWS rules) per append",
                c.name(),
                shape.label(),
                cost.requests(),
                cost.per(cost.units.write)
            );
            appends.push((shape, c.name(), cost));
        }
    }
    let mut loads = Vec::new();
    for counted in [false, true] {
        let costs = [
            meter
                .load(Some(&sekiban_p), sekiban_p.load(LOAD_STREAM))
                .await?,
            meter
                .load(Some(&sekiban_p), sekiban_p.load_with_snapshot(LOAD_STREAM))
                .await?,
            meter.load(None, dynamoes_p.load(LOAD_STREAM)).await?,
            meter
                .load(None, dynamoes_p.load_with_snapshot(LOAD_STREAM))
                .await?,
        ];
        if counted {
            loads = LOADS.iter().copied().zip(costs).collect();
        }
    }

    // The long stream, through the proxy: written one 800-byte event an append, read back.
    eprintln!("bench: the {}-event stream", args.long);
    let mut long = Vec::new();
    let stream = format!("long-{}", args.long);
    for (c, s) in [
        (&sekiban_p as &dyn Contender, Some(&sekiban_p)),
        (&dynamoes_p as &dyn Contender, None),
    ] {
        let (_, cost) = meter
            .appends(c, s, &stream, 0, Shape::One800, args.long)
            .await?;
        long.push(("write", c.name(), cost));
    }
    long.push((
        "read (all pages)",
        "sekiban",
        meter
            .load(Some(&sekiban_p), sekiban_p.load(&stream))
            .await?,
    ));
    long.push((
        "get_events",
        "dynamo-es",
        meter.load(None, dynamoes_p.load(&stream)).await?,
    ));
    long.push((
        "stream_events (its paginated replay)",
        "dynamo-es",
        meter.load(None, dynamoes_p.replay(&stream)).await?,
    ));
    drop(meter);
    Ok(Wire {
        appends,
        loads,
        long,
    })
}
