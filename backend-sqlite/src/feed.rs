//! The change feed's in-process notifier: one hub task polls the log once per commit (and once
//! per poll interval, for writers in other processes) and hands the rows to every waiting
//! reader, so N waiting readers cost one query, not N.

use std::sync::{Arc, Mutex, Weak};

use sekiban_core::{FeedItem, Limits};
use tokio::sync::watch;

use crate::sql;
use crate::worker::Workers;

/// What the hub needs of the store that runs it (the store's shared state).
pub(crate) trait Host: Send + Sync + 'static {
    /// The hub.
    fn hub(&self) -> &Hub;
    /// The connections the hub reads through.
    fn workers(&self) -> &Workers;
    /// The store's limits (page size, poll interval).
    fn limits(&self) -> &Limits;
    /// A receiver of commit notifications.
    fn committed(&self) -> watch::Receiver<u64>;
}

/// Rows of the log after `from` up to `to` (inclusive), unfiltered.
#[derive(Debug, Default)]
pub(crate) struct TailPage {
    pub(crate) from: u64,
    pub(crate) to: u64,
    pub(crate) items: Vec<(u64, FeedItem)>,
}

/// The hub's channel to waiting readers, and whether its task runs.
#[derive(Debug)]
pub(crate) struct Hub {
    tail: watch::Sender<Arc<TailPage>>,
    running: Mutex<bool>,
}

impl Hub {
    pub(crate) fn new() -> Self {
        Hub {
            tail: watch::channel(Arc::new(TailPage::default())).0,
            running: Mutex::new(false),
        }
    }

    /// A receiver of tail pages; starts the hub task when it is not running.
    pub(crate) fn subscribe<H: Host>(shared: &Arc<H>) -> watch::Receiver<Arc<TailPage>> {
        let rx = shared.hub().tail.subscribe();
        let mut running = shared
            .hub()
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !*running {
            *running = true;
            // Subscribed before the writer is woken: it looks for other processes' commits
            // while the hub holds this receiver.
            let committed = shared.committed();
            tokio::spawn(run(Arc::downgrade(shared), committed));
            shared.workers().wake_writer();
        }
        rx
    }
}

/// The hub task: polls after each commit notification or poll interval while readers wait;
/// ends when no reader is subscribed or the store is dropped.
async fn run<H: Host>(shared: Weak<H>, mut committed: watch::Receiver<u64>) {
    let Some(s) = shared.upgrade() else { return };
    let poll = s.limits().feed_poll_interval;
    let (page, page_bytes) = (s.limits().page_events, s.limits().page_bytes);
    let mut position = match s.workers().read(sql::last_position).await {
        Ok(p) => p,
        Err(_) => {
            stop(&*s);
            return;
        }
    };
    drop(s);
    loop {
        let Some(s) = shared.upgrade() else { return };
        {
            let mut running = s.hub().running.lock().unwrap_or_else(|p| p.into_inner());
            if s.hub().tail.receiver_count() == 0 || s.workers().is_closed() {
                *running = false;
                return;
            }
        }
        committed.borrow_and_update();
        let after = position;
        let polled = s
            .workers()
            .read(move |c| sql::poll_feed(c, after, None, None, page, page_bytes))
            .await;
        let full = match polled {
            Ok(p) => {
                position = p.reached;
                s.hub().tail.send_replace(Arc::new(TailPage {
                    from: after,
                    to: p.reached,
                    items: p.items,
                }));
                !p.at_end
            }
            // Readers fall back to their own polls when the hub has nothing for them.
            Err(_) => false,
        };
        drop(s);
        if !full {
            let _ = tokio::time::timeout(poll, committed.changed()).await;
        }
    }
}

fn stop<H: Host>(s: &H) {
    *s.hub().running.lock().unwrap_or_else(|p| p.into_inner()) = false;
}
