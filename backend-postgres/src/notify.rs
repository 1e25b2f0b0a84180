//! The notifications that wake waiting feed readers: the notifier task (one coalesced `NOTIFY`
//! per tenant after commits), the LISTEN connection's task that broadcasts them to the readers
//! of this process, and [`wait`], where a reader sleeps until one comes.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::stream;
use sekiban_core::backend::{CostCounter, RetryBudget};
use sekiban_core::{OpKind, StreamId};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::PostgresEventStore;
use crate::config::PostgresConfig;
use crate::sql::Db;

/// What the notifier task is told.
#[derive(Debug)]
pub(crate) enum Note {
    /// A commit of this tenant.
    Commit(String),
    /// The store is closing: announce what is pending now and end.
    Close,
}

/// The state of the LISTEN connection's task.
#[derive(Debug)]
pub(crate) enum Listen {
    /// Not running: the next following reader starts it.
    Idle,
    /// Running.
    Running(JoinHandle<()>),
    /// The store is closed: it never starts again.
    Closed,
}

/// The channel the schema's notifications go on.
fn channel(schema: &str) -> String {
    format!("{schema}.feed")
}

/// Starts the notifier task when `config.notify_interval` is set: the sender commits are handed
/// to, and the task (`close` awaits it). The notifier owns what it needs to send (a handle on
/// the pool), so the commits it still owes go out even when the last clone of the store is
/// dropped without `close`.
pub(crate) fn start_notifier(
    db: &Db,
    config: &PostgresConfig,
    closed: &watch::Sender<bool>,
) -> (Option<mpsc::UnboundedSender<Note>>, Option<JoinHandle<()>>) {
    match config.notify_interval {
        Some(interval) => {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(notifier(
                db.clone(),
                channel(&config.schema),
                rx,
                (interval, config.retry),
                closed.subscribe(),
            ));
            (Some(tx), Some(task))
        }
        None => (None, None),
    }
}

impl PostgresEventStore {
    /// Hands a commit of `stream`'s tenant to the notifier (when notifications are on).
    pub(crate) fn announce(&self, stream: &StreamId) {
        if let Some(n) = &self.shared.notify {
            let _ = n.send(Note::Commit(stream.tenant().to_string()));
        }
    }

    /// Starts the LISTEN connection once; readers fall back to polling when it fails.
    pub(crate) fn listen(&self) {
        let state = &self.shared.listener;
        let mut listen = lock(state);
        if matches!(*listen, Listen::Idle) {
            *listen = Listen::Running(tokio::spawn(listener(
                self.shared.config.url.clone(),
                channel(&self.shared.config.schema),
                self.shared.wake.clone(),
                self.shared.costs.clone(),
                self.shared.closed.subscribe(),
                state.clone(),
            )));
        }
    }

    /// The part of `close` after the writes in flight are done: the notifier sends the pending
    /// `NOTIFY` at once and ends, then the LISTEN connection closes and never starts again.
    /// `Some`: which task failed, and its panic (kept as the error's source).
    pub(crate) async fn stop_notifications(
        &self,
    ) -> Option<(&'static str, tokio::task::JoinError)> {
        let s = &self.shared;
        let notifier = lock(&s.notifier).take();
        let mut failed = None;
        if let Some(task) = notifier {
            if let Some(n) = &s.notify {
                let _ = n.send(Note::Close);
            }
            if let Err(e) = task.await
                && e.is_panic()
            {
                failed = Some(("the notifier task", e));
            }
        }
        let listener = std::mem::replace(&mut *lock(&s.listener), Listen::Closed);
        if let Listen::Running(task) = listener
            && let Err(e) = task.await
            && e.is_panic()
        {
            failed = Some(("the listener task", e));
        }
        failed
    }
}

/// Locks a std mutex, whether or not a holder panicked (the states it guards stay valid).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends one coalesced NOTIFY per tenant after commits, outside the append's statement: a NOTIFY
/// inside an append would take a cluster-wide lock until commit and serialise every writer.
/// The first commit after a quiet spell is announced at once; later ones wait until `interval`
/// has passed since the previous announcement, and share it.
///
/// It owns a handle on the pool, so it can always send what it owes. When the store closes
/// (`closed` turns `true`, or its sender goes with the last clone of the store) it stops
/// throttling; it ends after announcing everything received before [`Note::Close`] or before
/// the channel closed (the last clone dropped), and with it goes its handle on the pool.
async fn notifier(
    db: Db,
    channel: String,
    mut rx: mpsc::UnboundedReceiver<Note>,
    (interval, retry): (std::time::Duration, RetryBudget),
    mut closed: watch::Receiver<bool>,
) {
    let mut last: Option<tokio::time::Instant> = None;
    let mut tenants: Vec<String> = Vec::new();
    let add = |tenants: &mut Vec<String>, t: String| {
        if !tenants.contains(&t) {
            tenants.push(t);
        }
    };
    loop {
        match rx.recv().await {
            Some(Note::Commit(t)) => tenants.push(t),
            Some(Note::Close) | None => return,
        }
        if let Some(last) = last {
            tokio::select! {
                () = tokio::time::sleep_until(last + interval) => {}
                // Closing, or the store dropped: what is pending goes out at once.
                _ = closed.wait_for(|c| *c) => {}
            }
        }
        let mut end = false;
        loop {
            match rx.try_recv() {
                Ok(Note::Commit(t)) => add(&mut tenants, t),
                Ok(Note::Close) | Err(mpsc::error::TryRecvError::Disconnected) => {
                    end = true;
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        last = Some(tokio::time::Instant::now());
        // Tried again on a transient fault like any statement (a second NOTIFY is harmless);
        // one lost after that only delays readers until their next poll.
        let _ = retry
            .run(db.costs(), OpKind::Notify, || db.notify(&channel, &tenants))
            .await;
        tenants.clear();
        if end {
            return;
        }
    }
}

/// Holds a connection that LISTENs on the schema's channel and wakes waiting readers, until the
/// connection breaks or the store closes or is dropped (`closed`); then it closes the connection
/// (the server is told, not left to notice) and marks itself idle unless the store is closed.
async fn listener(
    url: String,
    chan: String,
    wake: broadcast::Sender<Arc<str>>,
    costs: Arc<CostCounter>,
    mut closed: watch::Receiver<bool>,
    state: Arc<Mutex<Listen>>,
) {
    if let Ok((client, mut connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
    {
        let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
        let sql = format!("LISTEN \"{}\"", chan.replace('"', "\"\""));
        costs.record(OpKind::Feed, 0, 0);
        let mut listen = Box::pin(client.batch_execute(&sql));
        let mut listening = false;
        let mut broken = false;
        loop {
            tokio::select! {
                r = &mut listen, if !listening => {
                    listening = true;
                    if r.is_err() {
                        break;
                    }
                }
                m = messages.next() => match m {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                        let _ = wake.send(Arc::from(n.payload()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        broken = true;
                        break;
                    }
                },
                // Closing, or the store dropped (the sender is gone).
                _ = closed.wait_for(|c| *c) => break,
            }
        }
        if !broken {
            // Without its client the connection says goodbye to the server (Terminate), then
            // ends; a server that does not answer is not waited for long.
            drop(listen);
            drop(client);
            let drain = async { while messages.next().await.is_some() {} };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
        }
    }
    let mut listen = lock(&state);
    if matches!(*listen, Listen::Running(_)) {
        *listen = Listen::Idle;
    }
}

/// Sleeps until a commit of `tenant` (any, when `None`) is announced (`true`), or one poll
/// interval passes (`false`: commits of other processes without notifications, or lost ones),
/// or the store closes (`true`: the reader looks at once, and ends).
pub(crate) async fn wait(
    wake: Option<&mut broadcast::Receiver<Arc<str>>>,
    tenant: Option<&str>,
    poll: std::time::Duration,
    closed: &mut watch::Receiver<bool>,
) -> bool {
    let closing = async {
        if closed.wait_for(|c| *c).await.is_err() {
            // The store is gone; a reader borrows it, so this does not happen.
            std::future::pending::<()>().await;
        }
    };
    let Some(w) = wake else {
        return tokio::select! {
            () = tokio::time::sleep(poll) => false,
            () = closing => true,
        };
    };
    let wanted = async {
        loop {
            match w.recv().await {
                Ok(t) if tenant.is_none_or(|mine| *t == *mine) => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    tokio::select! {
        r = tokio::time::timeout(poll, wanted) => r.is_ok(),
        () = closing => true,
    }
}
