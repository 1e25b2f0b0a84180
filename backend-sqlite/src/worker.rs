//! Connection threads: one writer that commits concurrent writes together (group commit, a
//! savepoint per write so a failing write fails alone), and reader threads for file databases.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};

use sekiban_core::{OpKind, StoreError};
use tokio::sync::{oneshot, watch};

use crate::sql::Conn;

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Most writes committed by one transaction.
const MAX_GROUP: usize = 256;

type ReadJob = Box<dyn FnOnce(&Conn) + Send>;

/// Every write runs inside `SAVEPOINT job`; a write may roll back to it itself.
pub(crate) const JOB_SAVEPOINT: &str = "job";

/// A write run inside the group's transaction and answered once the COMMIT is known.
trait WriteJob: Send {
    fn kind(&self) -> OpKind;
    /// Runs in a savepoint of its own; `false` when the transaction is unusable afterwards.
    fn apply(&mut self, c: &Conn) -> bool;
    fn finish(self: Box<Self>, commit: Result<(), String>);
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

    fn finish(self: Box<Self>, commit: Result<(), String>) {
        let r = match (self.result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(why)) => Err(StoreError::Unavailable {
                source: format!("the write was not committed: {why}").into(),
            }),
            (None, Ok(())) => Err(StoreError::backend(
                "group commit",
                "a write was never applied",
            )),
        };
        let _ = self.reply.send(r);
    }
}

enum Msg {
    Read(ReadJob),
    Write(Box<dyn WriteJob>),
}

/// Handles to the connection threads.
#[derive(Debug)]
pub(crate) struct Workers {
    writer: Sender<Msg>,
    readers: Option<Sender<ReadJob>>,
}

fn stopped() -> StoreError {
    StoreError::Unavailable {
        source: "the SQLite connection thread stopped (it panicked or the store is closing)".into(),
    }
}

impl Workers {
    /// Starts the writer thread on `writer` and one thread per reader connection. With no
    /// readers (an in-memory database) reads run on the writer's connection.
    pub(crate) fn start(
        writer: Conn,
        readers: Vec<Conn>,
        committed: watch::Sender<u64>,
    ) -> Result<Workers> {
        let (wtx, wrx) = channel::<Msg>();
        std::thread::Builder::new()
            .name("sekiban-sqlite-writer".into())
            .spawn(move || writer_loop(writer, wrx, committed))
            .map_err(|e| StoreError::backend("start the SQLite writer thread", e))?;
        let readers = if readers.is_empty() {
            None
        } else {
            let (rtx, rrx) = channel::<ReadJob>();
            let rrx = Arc::new(Mutex::new(rrx));
            for (n, conn) in readers.into_iter().enumerate() {
                let rrx = rrx.clone();
                std::thread::Builder::new()
                    .name(format!("sekiban-sqlite-reader-{n}"))
                    .spawn(move || reader_loop(conn, rrx))
                    .map_err(|e| StoreError::backend("start a SQLite reader thread", e))?;
            }
            Some(rtx)
        };
        Ok(Workers {
            writer: wtx,
            readers,
        })
    }

    /// Runs `f` on a reader connection.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        let sent = match &self.readers {
            Some(r) => r.send(job).is_ok(),
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
}

fn reader_loop(conn: Conn, jobs: Arc<Mutex<Receiver<ReadJob>>>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&conn),
            Err(_) => return,
        }
    }
}

fn writer_loop(conn: Conn, rx: Receiver<Msg>, committed: watch::Sender<u64>) {
    let mut pending: VecDeque<Msg> = VecDeque::new();
    loop {
        let msg = match pending.pop_front() {
            Some(m) => m,
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => return,
            },
        };
        match msg {
            Msg::Read(job) => job(&conn),
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
                if commit_group(&conn, group) {
                    committed.send_modify(|generation| *generation += 1);
                }
            }
        }
    }
}

/// Runs a group in one transaction; returns whether it committed.
fn commit_group(c: &Conn, mut group: Vec<Box<dyn WriteJob>>) -> bool {
    let kind = group[0].kind();
    let commit = match c.batch(kind, "BEGIN IMMEDIATE") {
        Err(e) => Err(e.to_string()),
        Ok(()) => {
            let usable = group.iter_mut().all(|job| job.apply(c));
            let done = if usable {
                c.batch(kind, "COMMIT").map_err(|e| e.to_string())
            } else {
                Err("a savepoint could not be closed; the transaction was rolled back".to_string())
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
