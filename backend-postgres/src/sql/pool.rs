//! The connection pool: [`Conn`] (a connection that prepares each statement the first time it
//! runs it), the [`Connector`] that opens them on demand, and the reaper that closes idle ones.

use std::sync::{Arc, OnceLock};

use deadpool::Runtime;
use deadpool::managed::{self, Metrics, QueueMode, RecycleError, RecycleResult, Timeouts};
use sekiban_core::backend::CostCounter;
use sekiban_core::{OpKind, StoreError};

use super::Result;
use super::statements::{Sql, Statements};
use crate::config::PostgresConfig;

/// What every pooled connection sets once, when it opens: no bitmap scans. The store's reads
/// (pages, feed polls, listings) walk an index in its order from where they start and stop at
/// their LIMIT; the rest touch a few rows by key. A bitmap scan never helps them, but when the
/// planner expects about as many rows as the LIMIT — a range bound it cannot estimate, or
/// correlated columns (a tenant whose commits are all recent) — it prefers a bitmap scan and a
/// sort, which read every row of the range: a feed poll far behind, or a page far from the
/// head, would read the rest of the log or stream each time. Without bitmap scans an ordered
/// index scan stopped by the LIMIT is the cheapest plan whatever the estimate.
pub(crate) const SESSION: &str = "SET enable_bitmapscan = off";

pub(super) type Pool = managed::Pool<Connector>;
pub(super) type Object = managed::Object<Connector>;

/// A pooled connection, each of the store's statements prepared on it the first time it runs
/// there (a one-shot command prepares the one it sends; a long-running service soon has them
/// all).
pub(crate) struct Conn {
    pub(super) client: tokio_postgres::Client,
    /// The statements prepared so far, in [`Sql::ALL`] order.
    prepared: Vec<OnceLock<tokio_postgres::Statement>>,
    sql: Arc<Statements>,
    costs: Arc<CostCounter>,
    /// The task driving the connection; it ends once the client is dropped and the server has
    /// been told goodbye.
    driver: tokio::task::JoinHandle<()>,
}

impl Conn {
    /// Closes the connection and waits (up to `timeout`) until the server has been told.
    pub(super) async fn close(self, timeout: std::time::Duration) {
        let Conn {
            client,
            prepared,
            driver,
            ..
        } = self;
        // The client first: its statements then have nobody to send their own close through.
        drop(client);
        drop(prepared);
        let _ = tokio::time::timeout(timeout, driver).await;
    }

    /// One of the store's statements on this connection: prepared the first time (one round
    /// trip, counted as `Connect`: the connection pays it once), then kept.
    pub(super) async fn statement(
        &self,
        which: Sql,
    ) -> std::result::Result<tokio_postgres::Statement, tokio_postgres::Error> {
        let slot = self.prepared.get(which as usize);
        if let Some(s) = slot.and_then(OnceLock::get) {
            return Ok(s.clone());
        }
        self.costs.record(OpKind::Connect, 0, 0);
        let s = self.client.prepare(self.sql.text(which)).await?;
        if let Some(slot) = slot {
            // One task uses a connection at a time: the slot is still empty.
            let _ = slot.set(s.clone());
        }
        Ok(s)
    }
}

/// Opens the pool's connections: connects and sets [`SESSION`] (one round trip, counted as
/// `Connect`); statements are prepared on first use ([`Conn::statement`]); checkouts are not
/// pinged.
pub(crate) struct Connector {
    server: tokio_postgres::Config,
    sql: Arc<Statements>,
    costs: Arc<CostCounter>,
}

impl managed::Manager for Connector {
    type Type = Conn;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> std::result::Result<Conn, tokio_postgres::Error> {
        let (client, driver) = connect(&self.server).await?;
        self.costs.record(OpKind::Connect, 0, 0);
        client.batch_execute(SESSION).await?;
        Ok(Conn {
            client,
            prepared: Sql::ALL.iter().map(|_| OnceLock::new()).collect(),
            sql: self.sql.clone(),
            costs: self.costs.clone(),
            driver,
        })
    }

    async fn recycle(&self, conn: &mut Conn, _: &Metrics) -> RecycleResult<tokio_postgres::Error> {
        if conn.client.is_closed() {
            Err(RecycleError::message("the connection is closed"))
        } else {
            Ok(())
        }
    }
}

/// A pool of `config.pool_size` connections to `server` whose connections prepare `sql` when
/// they are created ([`Connector`]); nothing is opened yet.
pub(super) fn pool(
    config: &PostgresConfig,
    server: tokio_postgres::Config,
    sql: Arc<Statements>,
    costs: Arc<CostCounter>,
) -> Result<Pool> {
    let timeouts = Timeouts {
        wait: Some(config.connect_timeout),
        create: Some(config.connect_timeout),
        recycle: Some(config.connect_timeout),
    };
    let connector = Connector { server, sql, costs };
    Pool::builder(connector)
        .max_size(config.pool_size)
        // The connection used last goes out first: a lightly loaded process keeps talking
        // to the same few server processes instead of waking a different one each time.
        .queue_mode(QueueMode::Lifo)
        .timeouts(timeouts)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::invalid(format!("PostgreSQL pool: {e}")))
}

/// A connection with its driver task running.
pub(super) async fn connect(
    server: &tokio_postgres::Config,
) -> std::result::Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>
{
    let (client, connection) = server.connect(tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(async move {
        // Ends when the client is dropped (after a Terminate to the server) or the connection
        // breaks; the client then reports it.
        let _ = connection.await;
    });
    Ok((client, driver))
}
