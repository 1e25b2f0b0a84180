//! Connection threads: one writer that commits concurrent writes together (group commit, a
//! savepoint per write so a failing write fails alone), and reader threads for file databases.
//!
//! The writer also keeps the WAL bounded (a truncating checkpoint after a commit that left the
//! file past its bound, and when writes pause), looks for other processes' commits while feed
//! readers follow, and closes the connections in order: readers first, the writer last, so the
//! last close checkpoints the database and removes its WAL.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sekiban_core::{OpKind, StoreError};
use tokio::sync::{oneshot, watch};

use crate::sql::{Conn, JOB_SAVEPOINT};

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Most writes committed by one transaction.
const MAX_GROUP: usize = 256;

/// How long the writer waits after its last commit before it empties the WAL.
const IDLE_CHECKPOINT: Duration = Duration::from_millis(500);

/// How long the checkpoint of a WAL past its bound waits for other connections' readers and
/// writers (while it waits, it keeps new writers out, so it gets its turn between two commits of
/// other processes); past it, it is tried again after the next commit.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(1);

/// How long opening a file whose WAL is past its bound waits for others to empty it.
pub(crate) const OPEN_CHECKPOINT_WAIT: Duration = Duration::from_millis(500);

/// How long the checkpoint of an idle writer waits for others: it is only tidying up.
const IDLE_CHECKPOINT_WAIT: Duration = Duration::from_millis(20);

type ReadJob = Box<dyn FnOnce(&Conn) + Send>;

/// A write run inside the group's transaction and answered once the COMMIT is known.
trait WriteJob: Send {
    fn kind(&self) -> OpKind;
    /// Runs in a savepoint of its own; `false` when the transaction is unusable afterwards.
    fn apply(&mut self, c: &Conn) -> bool;
    fn finish(self: Box<Self>, commit: Result<(), CommitError>);
}

struct Write<T, F> {
    kind: OpKind,
    f: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> WriteJob for Write<T, F>
where
    T: Send,
    F: FnOnce(&Conn) -> Result<T> + Send,
{
    fn kind(&self) -> OpKind {
        self.kind
    }

    fn apply(&mut self, c: &Conn) -> bool {
        let Some(f) = self.f.take() else {
            return true;
        };
        if let Err(e) = c.batch(self.kind, &format!("SAVEPOINT {JOB_SAVEPOINT}")) {
            self.result = Some(Err(e));
            return false;
        }
        let r = f(c);
        let closed = match &r {
            Ok(_) => c.batch(self.kind, &format!("RELEASE {JOB_SAVEPOINT}")),
            Err(_) => c
                .batch(self.kind, &format!("ROLLBACK TO {JOB_SAVEPOINT}"))
                .and_then(|()| c.batch(self.kind, &format!("RELEASE {JOB_SAVEPOINT}"))),
        };
        self.result = Some(r);
        closed.is_ok()
    }

    fn finish(self: Box<Self>, commit: Result<(), CommitError>) {
        let r = match (self.result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(why)) => Err(StoreError::unavailable("the write was not committed", why)),
            (None, Ok(())) => Err(StoreError::backend(
                "group commit",
                "a write was never applied",
            )),
        };
        let _ = self.reply.send(r);
    }
}

/// The last message to the writer: wait for the reader threads, close the connection, answer.
struct Close {
    readers: Vec<JoinHandle<()>>,
    reply: Option<oneshot::Sender<Result<()>>>,
}

enum Msg {
    Read(ReadJob),
    Write(Box<dyn WriteJob>),
    Close(Close),
    /// Nothing to do: the writer recomputes how long it may wait (feed readers came).
    Wake,
}

enum ReaderMsg {
    Read(ReadJob),
    /// Close this thread's connection and stop (one per reader thread).
    Stop,
}

/// What the writer does besides writing.
#[derive(Debug, Clone)]
pub(crate) struct Upkeep {
    /// The `-wal` file of a file database (`None` in memory: no WAL, no other process).
    pub(crate) wal: Option<PathBuf>,
    /// Its bound in bytes.
    pub(crate) wal_limit: u64,
    /// How often to look for other processes' commits while feed readers follow.
    pub(crate) watch: Option<Duration>,
    /// The connection's busy timeout, restored after a checkpoint's shorter wait.
    pub(crate) busy_timeout: Duration,
}

/// Handles to the connection threads.
#[derive(Debug)]
pub(crate) struct Workers {
    writer: Sender<Msg>,
    readers: Option<Sender<ReaderMsg>>,
    closed: AtomicBool,
    /// The reader threads, handed to the writer's [`Close`].
    threads: Mutex<Option<Vec<JoinHandle<()>>>>,
}

fn stopped() -> StoreError {
    StoreError::Unavailable {
        source: "the SQLite connection thread stopped (it panicked or the store is closing)".into(),
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable {
        source: "the SQLite store is closed; open it again to use it".into(),
    }
}

impl Workers {
    /// Starts the writer thread on `writer` and one thread per reader connection. With no
    /// readers (an in-memory database) reads run on the writer's connection. The writer bumps
    /// `committed` after each commit of its own, and after another process's commit while
    /// `committed` has receivers (feed readers follow).
    pub(crate) fn start(
        writer: Conn,
        readers: Vec<Conn>,
        committed: watch::Sender<u64>,
        upkeep: Upkeep,
    ) -> Result<Workers> {
        let (wtx, wrx) = channel::<Msg>();
        let mut threads = Vec::new();
        let readers = if readers.is_empty() {
            None
        } else {
            let (rtx, rrx) = channel::<ReaderMsg>();
            let rrx = Arc::new(Mutex::new(rrx));
            for (n, conn) in readers.into_iter().enumerate() {
                let rrx = rrx.clone();
                threads.push(
                    std::thread::Builder::new()
                        .name(format!("sekiban-sqlite-reader-{n}"))
                        .spawn(move || reader_loop(conn, rrx))
                        .map_err(|e| StoreError::backend("start a SQLite reader thread", e))?,
                );
            }
            Some(rtx)
        };
        std::thread::Builder::new()
            .name("sekiban-sqlite-writer".into())
            .spawn(move || writer_loop(writer, wrx, committed, upkeep))
            .map_err(|e| StoreError::backend("start the SQLite writer thread", e))?;
        Ok(Workers {
            writer: wtx,
            readers,
            closed: AtomicBool::new(false),
            threads: Mutex::new(Some(threads)),
        })
    }

    /// Whether [`Workers::close`] began.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Runs `f` on a reader connection.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T> + Send + 'static,
    {
        if self.is_closed() {
            return Err(closed());
        }
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        let sent = match &self.readers {
            Some(r) => r.send(ReaderMsg::Read(job)).is_ok(),
            None => self.writer.send(Msg::Read(job)).is_ok(),
        };
        if !sent {
            return Err(stopped());
        }
        rx.await.map_err(|_| stopped())?
    }

    /// Runs `f` in the writer's next group transaction; answers after the COMMIT.
    pub(crate) async fn write<T, F>(&self, kind: OpKind, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T> + Send + 'static,
    {
        if self.is_closed() {
            return Err(closed());
        }
        let (tx, rx) = oneshot::channel();
        let job = Box::new(Write {
            kind,
            f: Some(f),
            result: None,
            reply: tx,
        });
        self.writer.send(Msg::Write(job)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Has the writer recompute how long it may wait for work (feed readers began to follow,
    /// so it should look for other processes' commits).
    pub(crate) fn wake_writer(&self) {
        let _ = self.writer.send(Msg::Wake);
    }

    /// Refuses new work, lets the queued work finish, closes the reader connections, then the
    /// writer's. With `reply`, the writer answers once its connection is closed. Only the first
    /// call does anything (`false` after that).
    fn begin_close(&self, reply: Option<oneshot::Sender<Result<()>>>) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        let readers = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        if let Some(r) = &self.readers {
            for _ in 0..readers.len() {
                let _ = r.send(ReaderMsg::Stop);
            }
        }
        // A writer thread that is gone already closed its connection when it ended.
        let _ = self.writer.send(Msg::Close(Close { readers, reply }));
        true
    }

    /// Closes every connection, queued work first; returns once the writer's connection is
    /// closed (for a file database, the last close checkpoints it and removes the WAL when no
    /// other process has it open). Later calls return at once.
    pub(crate) async fn close(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if !self.begin_close(Some(tx)) {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }
}

impl Drop for Workers {
    /// The store was dropped without [`Workers::close`]: the threads finish queued work and
    /// close their connections in the background (done if the process lives long enough).
    fn drop(&mut self) {
        self.begin_close(None);
    }
}

fn reader_loop(conn: Conn, jobs: Arc<Mutex<Receiver<ReaderMsg>>>) {
    loop {
        let msg = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => break,
        };
        match msg {
            Ok(ReaderMsg::Read(job)) => job(&conn),
            Ok(ReaderMsg::Stop) | Err(_) => break,
        }
    }
    let _ = conn.close();
}

/// The writer's state between messages.
struct Writer {
    conn: Conn,
    committed: watch::Sender<u64>,
    upkeep: Upkeep,
    /// When the last commit happened, while the WAL may hold frames not yet checkpointed.
    dirty_since: Option<Instant>,
    /// The last `data_version` seen, while watching for other processes.
    data_version: Option<i64>,
}

impl Writer {
    /// How long to wait for the next message before there is upkeep to do.
    fn timeout(&self) -> Option<Duration> {
        let idle = self
            .dirty_since
            .filter(|_| self.upkeep.wal.is_some())
            .map(|t| IDLE_CHECKPOINT.saturating_sub(t.elapsed()));
        let watch = self.upkeep.watch.filter(|_| self.watching());
        match (idle, watch) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Feed readers follow (the hub subscribed) in a file database.
    fn watching(&self) -> bool {
        self.upkeep.wal.is_some() && self.committed.receiver_count() > 0
    }

    /// Nothing arrived for a while: look for other processes' commits, empty an idle WAL.
    fn upkeep(&mut self) {
        if self.upkeep.watch.is_some() && self.watching() {
            if let Ok(v) = self.conn.data_version() {
                if self.data_version.is_some_and(|seen| seen != v) {
                    self.committed.send_modify(|generation| *generation += 1);
                }
                self.data_version = Some(v);
            }
        } else {
            self.data_version = None;
        }
        if self
            .dirty_since
            .is_some_and(|t| t.elapsed() >= IDLE_CHECKPOINT)
        {
            // Kept from completing (another process reads or writes): try again after a pause.
            self.dirty_since = (!self.checkpoint(IDLE_CHECKPOINT_WAIT)).then(Instant::now);
        }
    }

    /// After a commit: a WAL past its bound is checkpointed and truncated at once. When others
    /// keep that from completing within [`CHECKPOINT_WAIT`], the next commit tries again.
    fn after_commit(&mut self) {
        self.committed.send_modify(|generation| *generation += 1);
        let Some(wal) = &self.upkeep.wal else { return };
        self.dirty_since = Some(Instant::now());
        if std::fs::metadata(wal).is_ok_and(|m| m.len() > self.upkeep.wal_limit)
            && self.checkpoint(CHECKPOINT_WAIT)
        {
            self.dirty_since = None;
        }
    }

    /// A truncating checkpoint that waits up to `wait` for others; whether it completed.
    fn checkpoint(&self, wait: Duration) -> bool {
        self.conn
            .checkpoint_truncate(wait.min(self.upkeep.busy_timeout), self.upkeep.busy_timeout)
            .unwrap_or(false)
    }
}

fn writer_loop(conn: Conn, rx: Receiver<Msg>, committed: watch::Sender<u64>, upkeep: Upkeep) {
    let mut w = Writer {
        conn,
        committed,
        upkeep,
        dirty_since: None,
        data_version: None,
    };
    let mut pending: VecDeque<Msg> = VecDeque::new();
    let close = loop {
        let msg = match pending.pop_front() {
            Some(m) => m,
            None => {
                let next = match w.timeout() {
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    Some(t) => rx.recv_timeout(t),
                };
                match next {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => {
                        w.upkeep();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break None,
                }
            }
        };
        match msg {
            Msg::Read(job) => job(&w.conn),
            Msg::Wake => {}
            Msg::Close(c) => break Some(c),
            Msg::Write(first) => {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(Msg::Write(job)) => group.push(job),
                        Ok(other) => {
                            pending.push_back(other);
                            break;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                if commit_group(&w.conn, group) {
                    w.after_commit();
                }
            }
        }
    };
    // Readers close first, so that the writer's close is the process's last: it checkpoints
    // the database and removes the WAL (a read-only connection cannot).
    let (readers, reply) = close.map_or((Vec::new(), None), |c| (c.readers, c.reply));
    for r in readers {
        let _ = r.join();
    }
    let closed = w.conn.close();
    if let Some(reply) = reply {
        let _ = reply.send(closed);
    }
}

/// Why a group's transaction did not commit, shared by every write of the group (the store
/// error each write gets keeps it as its source).
type CommitError = Arc<dyn std::error::Error + Send + Sync>;

/// Runs a group in one transaction; returns whether it committed.
fn commit_group(c: &Conn, mut group: Vec<Box<dyn WriteJob>>) -> bool {
    let kind = group[0].kind();
    let commit = match c.batch(kind, "BEGIN IMMEDIATE") {
        Err(e) => Err(Arc::new(e) as CommitError),
        Ok(()) => {
            let usable = group.iter_mut().all(|job| job.apply(c));
            let done = if usable {
                c.batch(kind, "COMMIT")
                    .map_err(|e| Arc::new(e) as CommitError)
            } else {
                Err(CommitError::from(
                    Box::<dyn std::error::Error + Send + Sync>::from(
                        "a savepoint could not be closed; the transaction was rolled back",
                    ),
                ))
            };
            if done.is_err() {
                let _ = c.batch(kind, "ROLLBACK");
            }
            done
        }
    };
    let ok = commit.is_ok();
    for job in group {
        job.finish(commit.clone());
    }
    ok
}
