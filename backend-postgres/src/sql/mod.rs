//! The SQL: one statement per operation, every statement counted where it is sent ([`Db`]).
//!
//! The statements are listed in `statements`, the pool that prepares them in `pool`, and the
//! operations grouped by what they touch: `append`, `read`, `feed`, `snapshots`, `streams`,
//! `checkpoints`; `migrate` creates and checks the schema, `rows` decodes what comes back.

mod append;
mod checkpoints;
mod feed;
mod migrate;
mod pool;
mod read;
mod rows;
mod snapshots;
mod statements;
mod streams;

use std::sync::Arc;

use sekiban_core::backend::CostCounter;
use sekiban_core::{OpKind, StoreError};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

pub(crate) use checkpoints::new_etag;
pub(crate) use feed::FeedPosition;
pub(crate) use migrate::{MIGRATIONS, schema_script};
pub(crate) use pool::SESSION;
pub(crate) use statements::quote as quote_schema;
pub(crate) use statements::statement_texts;

use crate::config::{PostgresConfig, redact};
use crate::error::pool_error;
use pool::{Object, Pool};
use statements::{Sql, Statements, quote};

type Result<T, E = StoreError> = std::result::Result<T, E>;
type Param<'a> = &'a (dyn ToSql + Sync);

/// Classifies a statement's error; a connection that failed is taken out of the pool (a retry
/// then gets another one, never the broken one back, which may not know yet that it is
/// closed).
pub(super) fn broken(conn: Object, context: &str, e: tokio_postgres::Error) -> StoreError {
    if e.code().is_none() || conn.client.is_closed() {
        drop(Object::take(conn));
    }
    crate::error::classify(context, e)
}

/// The pool, the counter, and the statements with the schema filled in. Clones share the pool.
#[derive(Clone)]
pub(crate) struct Db {
    pool: Pool,
    /// Where the pool's connections go; also used for the one-off connections of `migrate` and
    /// of the checks at start-up, which run before the schema's statements can be prepared.
    server: tokio_postgres::Config,
    costs: Arc<CostCounter>,
    schema: String,
    sql: Arc<Statements>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("schema", &self.schema).finish()
    }
}

impl Db {
    /// A pool on `config`'s server whose connections prepare every statement of the store when
    /// they are created ([`pool::Connector`]); nothing is opened yet.
    pub(crate) fn connect(config: &PostgresConfig, costs: Arc<CostCounter>) -> Result<Self> {
        let quoted = quote(&config.schema);
        let sql = Arc::new(Statements::new(&quoted));
        let mut server: tokio_postgres::Config = config.url.parse().map_err(|e| {
            StoreError::invalid(format!("PostgreSQL URL {}: {e}", redact(&config.url)))
        })?;
        server.connect_timeout(config.connect_timeout);
        let pool = pool::pool(config, server.clone(), sql.clone(), costs.clone())?;
        Ok(Db {
            pool,
            server,
            costs,
            sql,
            schema: quoted,
        })
    }

    /// The counters every statement is counted in.
    pub(crate) fn costs(&self) -> &CostCounter {
        &self.costs
    }

    /// A pooled connection, its statements prepared.
    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Closes the pool: later checkouts fail with `Unavailable` ("the store is closed"); the
    /// idle connections close now (each waited for until the server has been told, up to the
    /// connect timeout), a connection in use closes when it comes back.
    pub(crate) async fn close(&self) {
        let idle = self.pool.retain(|_, _| false).removed;
        self.pool.close();
        let timeout = self.close_timeout();
        futures::future::join_all(idle.into_iter().map(|c| c.close(timeout))).await;
    }

    /// Closes, every half `idle` and until `closed` says so (or its sender is gone), the pooled
    /// connections unused for `idle` or longer; each is waited for until the server has been
    /// told, up to the connect timeout.
    pub(crate) fn reap_idle(
        &self,
        idle: std::time::Duration,
        mut closed: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let pool = self.pool.clone();
        let timeout = self.close_timeout();
        let period = (idle / 2).max(std::time::Duration::from_millis(5));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(period) => {}
                    changed = closed.changed() => {
                        if changed.is_err() || *closed.borrow() {
                            return;
                        }
                    }
                }
                if pool.is_closed() {
                    return;
                }
                let idle = pool.retain(|_, m| m.last_used() < idle).removed;
                futures::future::join_all(idle.into_iter().map(|c| c.close(timeout))).await;
            }
        })
    }

    /// How long closing a connection waits for the server to be told: the connect timeout.
    fn close_timeout(&self) -> std::time::Duration {
        self.server
            .get_connect_timeout()
            .copied()
            .unwrap_or(std::time::Duration::from_secs(5))
    }

    /// The connections open in the pool now (idle or in use).
    pub(crate) fn open_connections(&self) -> usize {
        self.pool.status().size
    }

    /// Sends one of the store's statements on a pooled connection: one round trip.
    async fn query(
        &self,
        kind: OpKind,
        sent: usize,
        which: Sql,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>> {
        let conn = self.client().await?;
        let stmt = match conn.statement(which).await {
            Ok(stmt) => stmt,
            Err(e) => return Err(broken(conn, which.name(), e)),
        };
        self.costs.record(kind, sent as u64, 0);
        let rows = conn.client.query(&stmt, params).await;
        rows.map_err(|e| broken(conn, which.name(), e))
    }

    /// Sends one of the store's statements on a pooled connection and hands back its rows as
    /// they arrive, with the connection, which stays out of the pool until both are dropped.
    /// Dropping the rows early leaves the rest of the answer unread (the driver discards it).
    async fn query_rows(
        &self,
        kind: OpKind,
        which: Sql,
        params: &[Param<'_>],
    ) -> Result<(Object, tokio_postgres::RowStream)> {
        let conn = self.client().await?;
        let stmt = match conn.statement(which).await {
            Ok(stmt) => stmt,
            Err(e) => return Err(broken(conn, which.name(), e)),
        };
        self.costs.record(kind, 0, 0);
        let rows = conn.client.query_raw(&stmt, params.iter().copied()).await;
        match rows {
            Ok(rows) => Ok((conn, rows)),
            Err(e) => Err(broken(conn, which.name(), e)),
        }
    }
}
