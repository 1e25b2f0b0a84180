//! One SQLite connection (`Conn`): every statement goes through it and is counted as one round trip of its kind; time and column helpers.

use super::*;

/// Every write runs inside `SAVEPOINT job` (the writer thread's group transaction); a write may
/// roll back to it itself.
pub(crate) const JOB_SAVEPOINT: &str = "job";

/// One SQLite connection and the counter its statements are counted in.
pub(crate) struct Conn {
    conn: Connection,
    costs: Arc<CostCounter>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

/// What a connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Writer,
    Reader,
}

pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(super) fn from_micros(m: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u(m))
}

impl Conn {
    /// Opens a connection with the store's settings (WAL, `synchronous`, busy timeout).
    pub(crate) fn open(config: &SqliteConfig, role: Role, costs: Arc<CostCounter>) -> Result<Conn> {
        let flags = match role {
            Role::Writer => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            Role::Reader => OpenFlags::SQLITE_OPEN_READ_ONLY,
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match &config.path {
            SqlitePath::Memory => Connection::open_in_memory().ctx("open an in-memory database")?,
            SqlitePath::File(p) => {
                let dir = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => std::path::PathBuf::from("."),
                };
                if !dir.is_dir() {
                    return Err(StoreError::invalid(format!(
                        "cannot create {}: the directory {} does not exist; create it first",
                        p.display(),
                        dir.display()
                    )));
                }
                Connection::open_with_flags(p, flags).ctx(&format!("open {}", p.display()))?
            }
        };
        conn.busy_timeout(config.busy_timeout)
            .ctx("set the busy timeout")?;
        conn.set_prepared_statement_cache_capacity(64);
        let c = Conn { conn, costs };
        let what = match &config.path {
            SqlitePath::Memory => "the in-memory database".to_string(),
            SqlitePath::File(p) => p.display().to_string(),
        };
        if let SqlitePath::File(_) = config.path {
            if role == Role::Writer {
                let mode: String = c
                    .conn
                    .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                    .map_err(|e| classify(&format!("open {what}"), e))?;
                if !mode.eq_ignore_ascii_case("wal") {
                    return Err(StoreError::invalid(format!(
                        "{what}: could not switch to WAL journal mode (got {mode}); is it on a network filesystem?"
                    )));
                }
            }
            if role == Role::Writer {
                // SQLite's own (passive) checkpoints start at half the WAL bound; a WAL reset
                // truncates the file to the bound.
                let page: i64 = c
                    .conn
                    .query_row("PRAGMA page_size", [], |r| r.get(0))
                    .ctx("read the page size")?;
                let pages =
                    (config.wal_limit / 2 / u64::try_from(page.max(512)).unwrap_or(4096)).max(16);
                c.conn
                    .execute_batch(&format!(
                        "PRAGMA journal_size_limit = {}; PRAGMA wal_autocheckpoint = {pages}",
                        i(config.wal_limit)
                    ))
                    .ctx("set the WAL bound")?;
            }
            let sync = match config.synchronous {
                Synchronous::Full => "FULL",
                Synchronous::Normal => "NORMAL",
            };
            c.conn
                .execute_batch(&format!("PRAGMA synchronous={sync}"))
                .ctx("set synchronous")?;
        }
        Ok(c)
    }

    pub(super) fn prepare(&self, sql: &str) -> Result<rusqlite::CachedStatement<'_>> {
        self.conn.prepare_cached(sql).ctx("prepare a statement")
    }

    /// Runs one statement; counts one round trip of `kind` with `sent` bytes.
    pub(crate) fn exec(
        &self,
        kind: OpKind,
        sent: usize,
        sql: &str,
        p: impl Params,
    ) -> Result<usize> {
        self.costs.record(kind, sent as u64, 0);
        self.prepare(sql)?.execute(p).ctx(sql_context(sql))
    }

    /// Runs an INSERT; `Ok(false)` when a unique index refused the row.
    pub(crate) fn insert(
        &self,
        kind: OpKind,
        sent: usize,
        sql: &str,
        p: impl Params,
    ) -> Result<bool> {
        self.costs.record(kind, sent as u64, 0);
        match self.prepare(sql)?.execute(p) {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(classify(sql_context(sql), e)),
        }
    }

    /// Runs a statement without parameters (BEGIN, COMMIT, SAVEPOINT …); counted too.
    pub(crate) fn batch(&self, kind: OpKind, sql: &str) -> Result<()> {
        self.costs.record(kind, 0, 0);
        self.conn.execute_batch(sql).ctx(sql_context(sql))
    }

    /// Runs a query returning at most one row.
    pub(super) fn one<T>(
        &self,
        kind: OpKind,
        sql: &str,
        p: impl Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        self.costs.record(kind, 0, 0);
        self.prepare(sql)?
            .query_row(p, f)
            .optional()
            .ctx(sql_context(sql))
    }

    /// Runs a query and maps rows until `f` says stop; returns the mapped rows.
    pub(super) fn rows<T>(
        &self,
        kind: OpKind,
        sql: &str,
        p: impl Params,
        mut f: impl FnMut(&Row<'_>) -> Result<Option<T>>,
    ) -> Result<Vec<T>> {
        self.costs.record(kind, 0, 0);
        let mut stmt = self.prepare(sql)?;
        let mut rows = stmt.query(p).ctx(sql_context(sql))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().ctx(sql_context(sql))? {
            match f(row)? {
                Some(t) => out.push(t),
                None => break,
            }
        }
        Ok(out)
    }

    pub(crate) fn costs(&self) -> &CostCounter {
        &self.costs
    }

    /// `PRAGMA data_version`: changes when another connection (another process, for the
    /// writer's connection) committed since the previous call on this connection.
    pub(crate) fn data_version(&self) -> Result<i64> {
        self.costs.record(OpKind::Feed, 0, 0);
        self.prepare("PRAGMA data_version")?
            .query_row([], |r| r.get(0))
            .ctx("PRAGMA data_version")
    }

    /// A checkpoint that waits up to `wait` for readers and writers of other connections, copies
    /// the whole WAL into the database and truncates the WAL file to zero bytes. `Ok(false)`
    /// when others kept it from completing (the WAL is then left as it was, or partly copied).
    /// A checkpoint another connection runs at the same moment (SQLite's own passive one after
    /// a commit) makes it fail at once; it is then tried again until `wait` has passed.
    pub(crate) fn checkpoint_truncate(&self, wait: Duration, busy: Duration) -> Result<bool> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            self.costs.record(OpKind::Other, 0, 0);
            self.conn.busy_timeout(left).ctx("set the busy timeout")?;
            let r = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    r.get::<_, i64>(0)
                });
            self.conn.busy_timeout(busy).ctx("set the busy timeout")?;
            let done = match r {
                Ok(blocked) => blocked == 0,
                Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => false,
                Err(e) => return Err(classify("PRAGMA wal_checkpoint(TRUNCATE)", e)),
            };
            if done || left.is_zero() {
                return Ok(done);
            }
            std::thread::sleep(left.min(Duration::from_millis(2)));
        }
    }

    /// Closes the connection; the last connection to a WAL database checkpoints it and removes
    /// the `-wal` and `-shm` files.
    pub(crate) fn close(self) -> Result<()> {
        self.conn
            .close()
            .map_err(|(_, e)| classify("close the database connection", e))
    }
}

pub(super) fn sql_context(sql: &str) -> &str {
    sql.split_whitespace().next().unwrap_or("statement")
}

pub(super) fn decode(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: format!("{what}: {e}"),
    }
}

pub(super) fn col<T: rusqlite::types::FromSql>(row: &Row<'_>, idx: usize) -> Result<T> {
    row.get(idx).map_err(|e| decode("a row read back", e))
}
