//! Appends: in one statement on a pooled connection or in a savepoint of the caller's
//! transaction; a refused append costs one more statement to say why (or to recognise a
//! re-send).

use std::collections::HashMap;

use sekiban_core::backend::sql::{to_i64 as i, to_u64 as u};
use sekiban_core::idempotency::{PriorEvent, match_resend};
use sekiban_core::{
    AppendResult, EventData, EventId, ExpectedVersion, OpKind, RecordedEvent, StoreError, StreamId,
    Version,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::pool::Conn;
use sekiban_core::backend::sql::metadata_text;

use super::rows::{event_at, get};
use super::statements::Sql;
use super::{Db, Param, Result};
use crate::error::{Context, classify, is_unique_violation};

/// Where a statement runs: a pooled connection (each statement prepared the first time it runs
/// there) or a caller's transaction (prepared on the spot, counted).
#[derive(Clone, Copy)]
enum On<'a> {
    Pool(&'a Conn),
    Tx(&'a tokio_postgres::Transaction<'a>),
}

impl On<'_> {
    /// The statement `which`: on a pooled connection, prepared on its first use there; in a
    /// transaction, prepared now; either way the prepare is counted.
    async fn statement(
        &self,
        db: &Db,
        kind: OpKind,
        which: Sql,
    ) -> Result<tokio_postgres::Statement> {
        match self {
            On::Pool(conn) => conn.statement(which).await.ctx("prepare a statement"),
            On::Tx(tx) => {
                db.costs.record(kind, 0, 0);
                tx.prepare(db.sql.text(which))
                    .await
                    .ctx("prepare a statement")
            }
        }
    }

    /// Runs `stmt` where it was prepared.
    async fn query(
        &self,
        stmt: &tokio_postgres::Statement,
        params: &[Param<'_>],
    ) -> std::result::Result<Vec<Row>, tokio_postgres::Error> {
        match self {
            On::Pool(conn) => conn.client.query(stmt, params).await,
            On::Tx(tx) => tx.query(stmt, params).await,
        }
    }
}

impl Db {
    /// Appends in one statement; a refused append costs one more to say why (or to recognise a
    /// re-send).
    pub(crate) async fn append(
        &self,
        s: &StreamId,
        expected: ExpectedVersion,
        events: &[EventData],
    ) -> Result<AppendResult> {
        let conn = self.client().await?;
        let r = self.append_on(On::Pool(&conn), s, expected, events).await;
        // A connection that failed leaves the pool (it may not know it is closed yet): a retry
        // gets another one, never this broken one back.
        if matches!(r, Err(StoreError::Unavailable { .. })) || conn.client.is_closed() {
            drop(super::Object::take(conn));
        }
        r
    }

    /// Appends inside the caller's transaction, in a savepoint (so a refusal leaves the caller's
    /// transaction usable); the events commit with it.
    pub(crate) async fn append_in(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        s: &StreamId,
        expected: ExpectedVersion,
        events: &[EventData],
    ) -> Result<AppendResult> {
        self.costs.record(OpKind::Append, 0, 0);
        tx.batch_execute("SAVEPOINT sekiban_append")
            .await
            .ctx("append")?;
        let r = self.append_on(On::Tx(tx), s, expected, events).await;
        let close = match r {
            Ok(_) => "RELEASE SAVEPOINT sekiban_append",
            Err(_) => "ROLLBACK TO SAVEPOINT sekiban_append; RELEASE SAVEPOINT sekiban_append",
        };
        self.costs.record(OpKind::Append, 0, 0);
        tx.batch_execute(close).await.ctx("append")?;
        r
    }

    /// Appends where `on` says: the append's statement, then on a refusal the one that says
    /// why (retried while a concurrent writer may have moved the head).
    async fn append_on(
        &self,
        on: On<'_>,
        s: &StreamId,
        expected: ExpectedVersion,
        events: &[EventData],
    ) -> Result<AppendResult> {
        let n = events.len() as i64;
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id.0).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let schemas: Vec<i32> = events
            .iter()
            .map(|e| i32::try_from(e.schema_version).unwrap_or(i32::MAX))
            .collect();
        let data: Vec<&[u8]> = events.iter().map(|e| e.data.as_ref()).collect();
        let meta: Vec<Option<String>> = events
            .iter()
            .map(|e| metadata_text(&e.metadata))
            .collect::<Result<_>>()?;
        let sent: usize = events.iter().map(EventData::size).sum();
        let (t, c, id) = (s.tenant(), s.category(), s.id());
        // One statement either way: a new-or-any head is upserted, an existing one updated.
        let (sql, guard): (Sql, Box<dyn ToSql + Sync + Send>) = match expected {
            ExpectedVersion::Any => (Sql::AppendNew, Box::new(true)),
            ExpectedVersion::NoStream | ExpectedVersion::Exact(Version(0)) => {
                (Sql::AppendNew, Box::new(false))
            }
            ExpectedVersion::StreamExists => (Sql::AppendExisting, Box::new(-1i64)),
            ExpectedVersion::Exact(v) => (Sql::AppendExisting, Box::new(i(v.0))),
        };
        let params: [Param<'_>; 10] = [
            &t, &c, &id, &n, &*guard, &ids, &types, &schemas, &data, &meta,
        ];
        let mut attempt = 0;
        loop {
            let stmt = on.statement(self, OpKind::Append, sql).await?;
            self.costs.record(OpKind::Append, sent as u64, 0);
            let duplicate = match on.query(&stmt, &params).await {
                Ok(rows) => {
                    if let Some(row) = rows.first() {
                        let last = Version(u(get(row, 0)?));
                        return Ok(AppendResult {
                            first: Version(last.0 + 1 - events.len() as u64),
                            last,
                            deduplicated: false,
                        });
                    }
                    false
                }
                Err(e) if is_unique_violation(&e) => true,
                Err(e) => return Err(classify("append", e)),
            };
            if let On::Tx(tx) = on
                && duplicate
            {
                self.costs.record(OpKind::Append, 0, 0);
                tx.batch_execute("ROLLBACK TO SAVEPOINT sekiban_append")
                    .await
                    .ctx("append")?;
            }
            // Refused by the head guard, or an event id already stored: find out which.
            let refused = on
                .statement(self, OpKind::Append, Sql::AppendRefused)
                .await?;
            self.costs.record(OpKind::Append, 0, 0);
            let rows = on
                .query(&refused, &[&t, &c, &id, &ids])
                .await
                .ctx("append")?;
            let head = rows
                .first()
                .map(|r| get::<Option<i64>>(r, 0))
                .transpose()?
                .flatten();
            let erased = rows
                .first()
                .map(|r| get::<Option<bool>>(r, 1))
                .transpose()?
                .flatten();
            if erased == Some(true) {
                return Err(StoreError::StreamDeleted {
                    stream: s.clone(),
                    version: Version(head.map_or(0, u)),
                });
            }
            let mut found = Vec::new();
            for row in &rows {
                if get::<Option<i64>>(row, 2)?.is_some() {
                    let e = event_at(s.clone(), row, 2)?;
                    found.push((e, Version(u(get(row, 9)?)), Version(u(get(row, 10)?))));
                }
            }
            let by_id: HashMap<EventId, &(RecordedEvent, Version, Version)> =
                found.iter().map(|f| (f.0.id, f)).collect();
            let resend = match_resend(s, events, |id| {
                by_id.get(&id).map(|(event, first, last)| PriorEvent {
                    event,
                    append_first: *first,
                    append_last: *last,
                })
            })?;
            match resend {
                Some(r) => return Ok(r),
                None if duplicate => {
                    return Err(StoreError::backend(
                        "append",
                        "a unique index refused a row no stored event explains",
                    ));
                }
                // The head is read by a second statement, after the guard refused: another
                // writer may have moved it in between to a version this expectation accepts (a
                // `StreamExists` refused before a concurrent first append committed, an
                // `Exact(v)` refused below `v`). A refusal must name a head its expectation
                // refuses, so the append is tried again; the head only grows, so one more try
                // settles it (a few at most).
                None if expected.accepts(Version(head.map_or(0, u))) && attempt < 4 => {
                    attempt += 1;
                }
                None => {
                    return Err(StoreError::WrongExpectedVersion {
                        stream: s.clone(),
                        expected,
                        actual: Version(head.map_or(0, u)),
                    });
                }
            }
        }
    }
}
