//! The raw floor, and its variants for the analysis of a gap.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use async_trait::async_trait;
use tokio::sync::{Semaphore, mpsc};
use tokio_postgres::{Client, Statement};

use super::{CATEGORY, Contender, EVENT_TYPE, TENANT, connect, payload};

/// The raw floor: sekiban's rows into a copy of sekiban's schema with one statement — one
/// multi-row `INSERT … unnest` behind the head guard (the upsert of the stream's row with the
/// expected version in its `WHERE`) — on a plain set of connections with prepared statements.
///
/// For the analysis of a gap, the same connections can also send sekiban's own append
/// statement ([`FloorSql::Sekiban`]) and a throttled background NOTIFY after each commit as
/// sekiban does ([`Floor::variant`]): floor → + sekiban's SQL → + NOTIFY → sekiban leaves the
/// client library (pool, statement cache, notifier task) as the rest.
pub struct Floor {
    conns: Arc<Conns>,
    sql: FloorSql,
    notify: Option<mpsc::UnboundedSender<()>>,
    name: &'static str,
}

/// Which append statement the floor sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloorSql {
    /// The floor's own: head guard + multi-row insert, nothing else.
    Floor,
    /// sekiban-postgres's own append statements (`sekiban_postgres::statement_texts`): the
    /// head upsert for a new stream, the head `UPDATE` for `Exact(v > 0)`.
    Sekiban,
}

pub struct Conns {
    conns: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

pub struct Conn {
    pub client: Client,
    append: Statement,
    sekiban_append_new: Statement,
    sekiban_append_existing: Statement,
    notify: Statement,
    head: Statement,
    pub select: Statement,
    sekiban_read: Statement,
}

/// Statement texts of the floor for `schema` (appends) and `read_schema` (the raw load).
pub fn floor_sql(schema: &str, read_schema: &str) -> (String, String, String) {
    let append = format!(
        "WITH head AS ( \
           INSERT INTO {schema}.streams AS st (tenant, category, stream_id, version) \
           VALUES ($1, $2, $3, $4::bigint + $5::bigint) \
           ON CONFLICT (tenant, category, stream_id) DO UPDATE SET version = st.version + $5::bigint \
           WHERE st.version = $4::bigint \
           RETURNING st.version) \
         INSERT INTO {schema}.log (tx, kind, tenant, category, stream_id, version, event_id, event_type, \
           schema_version, data, metadata, append_first, append_last) \
         SELECT pg_current_xact_id()::text::bigint, 0, $1, $2, $3, $4::bigint + e.n, e.id, e.typ, e.sv, e.data, \
           e.meta::jsonb, $4::bigint + 1, head.version \
         FROM head, unnest($6::uuid[], $7::text[], $8::int[], $9::bytea[], $10::text[]) \
           WITH ORDINALITY AS e(id, typ, sv, data, meta, n)"
    );
    let head = format!(
        "SELECT version FROM {schema}.streams WHERE tenant = $1 AND category = $2 AND stream_id = $3"
    );
    let select = format!(
        "SELECT version, event_id, event_type, schema_version, data, metadata::text, recorded_at \
         FROM {read_schema}.log WHERE tenant = $1 AND category = $2 AND stream_id = $3 AND kind = 0 \
         ORDER BY version"
    );
    (append, head, select)
}

/// One of sekiban-postgres's own statements for `schema` ([`sekiban_postgres::statement_texts`]),
/// for the analysis: the same text sekiban sends, with its parameters.
fn sekiban_sql(schema: &str, name: &str) -> Result<String> {
    let bare = schema.trim_matches('"');
    sekiban_postgres::statement_texts(bare)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| text)
        .ok_or_else(|| anyhow!("sekiban-postgres has no statement {name}"))
}

/// sekiban's notifier interval (`DEFAULT_NOTIFY_INTERVAL` in `backend-postgres/src/config.rs`).
const NOTIFY_INTERVAL: std::time::Duration = sekiban_postgres::DEFAULT_NOTIFY_INTERVAL;

/// One event as the raw load decodes it (the values sekiban returns).
pub type RawEvent = (
    i64,
    uuid::Uuid,
    String,
    i32,
    Vec<u8>,
    Option<String>,
    SystemTime,
);

/// The event in `row` from column `at` on (version, id, type, schema version, data, metadata,
/// recorded at), decoded as the raw load does.
pub fn raw_event(row: &tokio_postgres::Row, at: usize) -> Result<RawEvent, tokio_postgres::Error> {
    Ok((
        row.try_get(at)?,
        row.try_get(at + 1)?,
        row.try_get(at + 2)?,
        row.try_get(at + 3)?,
        row.try_get(at + 4)?,
        row.try_get(at + 5)?,
        row.try_get(at + 6)?,
    ))
}

/// A connection taken from the floor's set, put back when dropped.
pub struct Checkout<'a> {
    conns: &'a Conns,
    conn: Option<Conn>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl std::ops::Deref for Checkout<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("held until dropped")
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut conns)) = (self.conn.take(), self.conns.conns.lock()) {
            conns.push(conn);
        }
    }
}

impl Conns {
    async fn checkout(&self) -> Result<Checkout<'_>> {
        let permit = self.permits.acquire().await?;
        let conn = self
            .conns
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .pop()
            .ok_or_else(|| anyhow!("no connection"))?;
        Ok(Checkout {
            conns: self,
            conn: Some(conn),
            _permit: permit,
        })
    }
}

impl Floor {
    /// `n` connections to `url`, with the statements prepared on each.
    pub async fn open(url: &str, schema: &str, read_schema: &str, n: usize) -> Result<Floor> {
        let (append, head, select) = floor_sql(schema, read_schema);
        let sekiban_new = sekiban_sql(schema, "append_new")?;
        let sekiban_existing = sekiban_sql(schema, "append_existing")?;
        let sekiban_read = sekiban_sql(read_schema, "read_forward")?;
        let notify = sekiban_sql(schema, "notify")?;
        let mut conns = Vec::new();
        for _ in 0..n {
            let client = connect(url).await?;
            let append = client
                .prepare(&append)
                .await
                .context("prepare the floor's append")?;
            let sekiban_append_new = client.prepare(&sekiban_new).await?;
            let sekiban_append_existing = client.prepare(&sekiban_existing).await?;
            let notify = client.prepare(&notify).await?;
            let head = client.prepare(&head).await?;
            let select = client.prepare(&select).await?;
            let sekiban_read = client.prepare(&sekiban_read).await?;
            conns.push(Conn {
                sekiban_read,
                client,
                append,
                sekiban_append_new,
                sekiban_append_existing,
                notify,
                head,
                select,
            });
        }
        Ok(Floor {
            conns: Arc::new(Conns {
                conns: Mutex::new(conns),
                permits: Semaphore::new(n),
            }),
            sql: FloorSql::Floor,
            notify: None,
            name: "floor",
        })
    }

    /// The same connections with another statement, and a background NOTIFY after each append
    /// (throttled like sekiban's: at once after a quiet spell, else when the interval since the
    /// previous one has passed, one statement for all commits announced meanwhile).
    pub fn variant(
        &self,
        name: &'static str,
        sql: FloorSql,
        notify_channel: Option<String>,
    ) -> Floor {
        let notify = notify_channel.map(|channel| {
            let (tx, mut rx) = mpsc::unbounded_channel::<()>();
            let conns = self.conns.clone();
            tokio::spawn(async move {
                let mut last: Option<tokio::time::Instant> = None;
                while rx.recv().await.is_some() {
                    if let Some(last) = last {
                        tokio::time::sleep_until(last + NOTIFY_INTERVAL).await;
                    }
                    while rx.try_recv().is_ok() {}
                    last = Some(tokio::time::Instant::now());
                    let Ok(c) = conns.checkout().await else {
                        return;
                    };
                    let tenants = vec![TENANT.to_string()];
                    let _ = c.client.query(&c.notify, &[&channel, &tenants]).await;
                }
            });
            tx
        });
        Floor {
            conns: self.conns.clone(),
            sql,
            notify,
            name,
        }
    }

    async fn try_append(&self, conn: &Conn, stream: &str, head: u64, k: usize) -> Result<bool> {
        let ids: Vec<uuid::Uuid> = (0..k).map(|_| uuid::Uuid::new_v4()).collect();
        let types: Vec<&str> = vec![EVENT_TYPE; k];
        let schemas: Vec<i32> = vec![1; k];
        let bodies: Vec<String> = (1..=k as u64).map(|i| payload(head + i)).collect();
        let data: Vec<&[u8]> = bodies.iter().map(String::as_bytes).collect();
        let meta: Vec<Option<String>> = vec![None; k];
        let (h, n) = (head as i64, k as i64);
        let ok = match self.sql {
            FloorSql::Floor => {
                let written = conn
                    .client
                    .execute(
                        &conn.append,
                        &[
                            &TENANT, &CATEGORY, &stream, &h, &n, &ids, &types, &schemas, &data,
                            &meta,
                        ],
                    )
                    .await
                    .context("floor append")?;
                written == k as u64
            }
            FloorSql::Sekiban => {
                let rows = if head == 0 {
                    let any = false;
                    conn.client
                        .query(
                            &conn.sekiban_append_new,
                            &[
                                &TENANT, &CATEGORY, &stream, &n, &any, &ids, &types, &schemas,
                                &data, &meta,
                            ],
                        )
                        .await
                } else {
                    conn.client
                        .query(
                            &conn.sekiban_append_existing,
                            &[
                                &TENANT, &CATEGORY, &stream, &n, &h, &ids, &types, &schemas, &data,
                                &meta,
                            ],
                        )
                        .await
                }
                .context("floor append with sekiban's statement")?;
                !rows.is_empty()
            }
        };
        if let (true, Some(tx)) = (ok, &self.notify) {
            let _ = tx.send(());
        }
        Ok(ok)
    }

    /// The raw load: one prepared `SELECT` of a stream's rows, decoded.
    pub async fn load(&self, stream: &str) -> Result<usize> {
        let c = self.conns.checkout().await?;
        let rows = c
            .client
            .query(&c.select, &[&TENANT, &CATEGORY, &stream])
            .await?;
        let events: Vec<RawEvent> = rows
            .iter()
            .map(|r| raw_event(r, 0))
            .collect::<Result<_, tokio_postgres::Error>>()?;
        Ok(events.len())
    }
}

impl Floor {
    /// sekiban's read, statement for statement, on a raw connection: pages of `page` events
    /// with its own statement, another page while the last event read is below the head
    /// the stream's row gives; the same decoding as [`Floor::load`].
    pub async fn load_paged(&self, stream: &str, page: i64) -> Result<usize> {
        let c = self.conns.checkout().await?;
        let mut next = 1i64;
        let mut n = 0;
        loop {
            let rows = c
                .client
                .query(
                    &c.sekiban_read,
                    &[&TENANT, &CATEGORY, &stream, &next, &i64::MAX, &page],
                )
                .await?;
            let mut head = 0;
            for r in &rows {
                if r.try_get::<_, Option<i64>>(7)?.is_some() {
                    head = r.try_get(0)?;
                    continue;
                }
                let e = raw_event(r, 0)?;
                next = e.0 + 1;
                n += 1;
            }
            if next > head {
                return Ok(n);
            }
        }
    }
}

#[async_trait]
impl Contender for Floor {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn append_exact(&self, stream: &str, head: u64, k: usize) -> Result<u64> {
        let c = self.conns.checkout().await?;
        if self.try_append(&c, stream, head, k).await? {
            Ok(head + k as u64)
        } else {
            bail!("floor: stream {stream} is not at {head}")
        }
    }

    async fn append_contended(&self, stream: &str, known: &mut u64, k: usize) -> Result<u32> {
        let c = self.conns.checkout().await?;
        let mut conflicts = 0;
        while !self.try_append(&c, stream, *known, k).await? {
            conflicts += 1;
            let row = c
                .client
                .query_one(&c.head, &[&TENANT, &CATEGORY, &stream])
                .await?;
            *known = row.try_get::<_, i64>(0)? as u64;
        }
        *known += k as u64;
        Ok(conflicts)
    }
}
