//! The SQL: schema migrations, and one function per operation, one file per concern. Every
//! statement goes through [`Conn`], which counts it as one round trip of its kind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Params, Row, ToSql, params};
use sekiban_core::backend::sql::{
    LogKind, POINTER_COLUMNS, PointerColumns, listed_stream, listing_cursor, to_i64 as i,
    to_u64 as u,
};
use sekiban_core::backend::{CostCounter, FeedPoll};
use sekiban_core::idempotency::{PriorEvent, match_resend};
use sekiban_core::paging::{Page, PageRequest};
use sekiban_core::snapshot::{PointerWrite, Snapshot, StoredSnapshot, check_snapshot_version};
use sekiban_core::{
    AppendResult, Checkpoint, DeleteMode, Direction, Etag, EventData, EventId, ExpectedVersion,
    FeedItem, OpKind, RecordedEvent, StoreError, StreamId, StreamInfo, Version,
};

use crate::config::{SqliteConfig, SqlitePath, Synchronous};
use crate::error::{Context, classify, is_unique_violation};

type Result<T, E = StoreError> = std::result::Result<T, E>;

mod append;
mod catalog;
mod checkpoints;
mod conn;
mod feed;
mod migrate;
mod read;
mod rows;
mod snapshots;
mod streams;

pub(crate) use append::append;
pub(crate) use catalog::list_streams;
pub(crate) use checkpoints::{delete_checkpoint, load_checkpoint, save_checkpoint};
pub(crate) use conn::{Conn, JOB_SAVEPOINT, Role, now_micros};
use conn::{col, decode, from_micros};
pub(crate) use feed::{last_position, poll_feed};
pub(crate) use migrate::migrate;
pub(crate) use read::{read_page, stream_version};
use rows::{EVENT_COLUMNS, event_at, head, live};
use sekiban_core::backend::sql::{metadata_from_text, metadata_text};
pub(crate) use snapshots::{load_pointer, save_pointer};
pub(crate) use streams::delete;
