//! Bank accounts with transfers between them, run by a process manager that follows the change
//! feed. Written only against sekiban's public API.
//!
//! * [`Account`]: open, deposit, withdraw, and the three steps a transfer takes on an account
//!   (debit, credit, refund), each idempotent by transfer id, so a step delivered twice by the
//!   at-least-once feed changes nothing.
//! * [`Transfer`]: requested → debited → completed, or failed with a reason.
//! * [`TransferProcess`]: a [`Projection`] over transfer events that drives each requested
//!   transfer through its steps.
//! * [`Balances`]: a multi-stream read model of every account's balance.
//! * [`run_demo`]: opens accounts, makes deposits and transfers concurrently, lets the process
//!   manager and the read model catch up, and checks that no money was created or lost.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sekiban_core::aggregate::{
    Aggregate, CheckpointMode, DomainEvent, ExecuteError, Executed, Projection, Projector,
    Repository, SnapshotPolicy, decode,
};
use sekiban_core::{BoxError, Checkpoint, FeedItem, FeedOptions, Store};
use serde::{Deserialize, Serialize};

/// Money in cents.
pub type Cents = i64;

/// What happens to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountEvent {
    /// The account was opened.
    Opened {
        /// Its owner.
        owner: String,
    },
    /// Money paid in.
    Deposited {
        /// Amount.
        amount: Cents,
    },
    /// Money paid out.
    Withdrawn {
        /// Amount.
        amount: Cents,
    },
    /// Money taken for a transfer.
    TransferDebited {
        /// The transfer.
        transfer: String,
        /// Amount.
        amount: Cents,
    },
    /// Money received from a transfer.
    TransferCredited {
        /// The transfer.
        transfer: String,
        /// Amount.
        amount: Cents,
    },
    /// A debited transfer that could not complete was paid back.
    TransferRefunded {
        /// The transfer.
        transfer: String,
        /// Amount.
        amount: Cents,
    },
}

impl DomainEvent for AccountEvent {}

/// An account's state.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Whether it was opened.
    pub open: bool,
    /// Its balance.
    pub balance: Cents,
    /// Transfers debited, credited and refunded here (the steps are idempotent by these).
    pub debited: BTreeSet<String>,
    /// Transfers credited here.
    pub credited: BTreeSet<String>,
    /// Transfers refunded here.
    pub refunded: BTreeSet<String>,
}

/// What an account is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    /// Open it.
    Open {
        /// Owner.
        owner: String,
    },
    /// Pay in.
    Deposit(Cents),
    /// Pay out.
    Withdraw(Cents),
    /// Take money for a transfer (once per transfer).
    Debit {
        /// Transfer id.
        transfer: String,
        /// Amount.
        amount: Cents,
    },
    /// Receive money of a transfer (once per transfer).
    Credit {
        /// Transfer id.
        transfer: String,
        /// Amount.
        amount: Cents,
    },
    /// Pay back a debited transfer (once per transfer).
    Refund {
        /// Transfer id.
        transfer: String,
        /// Amount.
        amount: Cents,
    },
}

/// Why an account refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The account is not open.
    #[error("the account is not open")]
    NotOpen,
    /// The account is open already.
    #[error("the account is already open")]
    AlreadyOpen,
    /// Amounts are positive.
    #[error("amounts must be positive, got {0}")]
    NotPositive(Cents),
    /// Not enough money.
    #[error("insufficient funds: balance {balance}, needed {needed}")]
    InsufficientFunds {
        /// The balance.
        balance: Cents,
        /// The amount asked for.
        needed: Cents,
    },
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "account";
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = AccountError;

    fn apply(&mut self, e: &AccountEvent) {
        match e {
            AccountEvent::Opened { .. } => self.open = true,
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
            AccountEvent::TransferDebited { transfer, amount } => {
                self.balance -= amount;
                self.debited.insert(transfer.clone());
            }
            AccountEvent::TransferCredited { transfer, amount } => {
                self.balance += amount;
                self.credited.insert(transfer.clone());
            }
            AccountEvent::TransferRefunded { transfer, amount } => {
                self.balance += amount;
                self.refunded.insert(transfer.clone());
            }
        }
    }

    fn handle(&self, c: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        use AccountCommand as C;
        use AccountEvent as E;
        if let C::Open { owner } = c {
            return match self.open {
                true => Err(AccountError::AlreadyOpen),
                false => Ok(vec![E::Opened {
                    owner: owner.clone(),
                }]),
            };
        }
        if !self.open {
            return Err(AccountError::NotOpen);
        }
        let positive = |amount: Cents| match amount > 0 {
            true => Ok(amount),
            false => Err(AccountError::NotPositive(amount)),
        };
        let covered = |amount: Cents| match self.balance >= amount {
            true => Ok(amount),
            false => Err(AccountError::InsufficientFunds {
                balance: self.balance,
                needed: amount,
            }),
        };
        Ok(match c {
            C::Open { .. } => vec![],
            C::Deposit(a) => vec![E::Deposited {
                amount: positive(*a)?,
            }],
            C::Withdraw(a) => vec![E::Withdrawn {
                amount: covered(positive(*a)?)?,
            }],
            C::Debit { transfer, .. } if self.debited.contains(transfer) => vec![],
            C::Debit { transfer, amount } => vec![E::TransferDebited {
                transfer: transfer.clone(),
                amount: covered(positive(*amount)?)?,
            }],
            C::Credit { transfer, .. } if self.credited.contains(transfer) => vec![],
            C::Credit { transfer, amount } => vec![E::TransferCredited {
                transfer: transfer.clone(),
                amount: positive(*amount)?,
            }],
            C::Refund { transfer, .. }
                if self.refunded.contains(transfer) || !self.debited.contains(transfer) =>
            {
                vec![]
            }
            C::Refund { transfer, amount } => vec![E::TransferRefunded {
                transfer: transfer.clone(),
                amount: positive(*amount)?,
            }],
        })
    }
}

/// What happens to a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferEvent {
    /// Someone asked to move money.
    Requested {
        /// Source account id.
        from: String,
        /// Target account id.
        to: String,
        /// Amount.
        amount: Cents,
    },
    /// The money left the source account.
    Debited,
    /// The money reached the target account.
    Completed,
    /// The transfer did not happen (money refunded if it was debited).
    Failed {
        /// Why.
        reason: String,
    },
}

impl DomainEvent for TransferEvent {}

/// Where a transfer stands.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferStatus {
    /// Not requested.
    #[default]
    None,
    /// Requested, not debited yet.
    Requested,
    /// Debited, not credited yet.
    Debited,
    /// Done.
    Completed,
    /// Did not happen.
    Failed,
}

/// A transfer's state.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// Status.
    pub status: TransferStatus,
    /// Source account.
    pub from: String,
    /// Target account.
    pub to: String,
    /// Amount.
    pub amount: Cents,
}

/// What a transfer is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferCommand {
    /// Ask to move money.
    Request {
        /// Source account id.
        from: String,
        /// Target account id.
        to: String,
        /// Amount.
        amount: Cents,
    },
    /// Record the debit.
    MarkDebited,
    /// Record completion.
    Complete,
    /// Record failure.
    Fail(String),
}

/// Why a transfer refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// Requests are made once, between two different accounts, for a positive amount.
    #[error("invalid transfer request: {0}")]
    InvalidRequest(String),
    /// The step does not fit the transfer's status.
    #[error("a transfer that is {0:?} cannot do that")]
    WrongStatus(TransferStatus),
}

impl Aggregate for Transfer {
    const CATEGORY: &'static str = "transfer";
    type Event = TransferEvent;
    type Command = TransferCommand;
    type Error = TransferError;

    fn apply(&mut self, e: &TransferEvent) {
        match e {
            TransferEvent::Requested { from, to, amount } => {
                *self = Transfer {
                    status: TransferStatus::Requested,
                    from: from.clone(),
                    to: to.clone(),
                    amount: *amount,
                }
            }
            TransferEvent::Debited => self.status = TransferStatus::Debited,
            TransferEvent::Completed => self.status = TransferStatus::Completed,
            TransferEvent::Failed { .. } => self.status = TransferStatus::Failed,
        }
    }

    fn handle(&self, c: &TransferCommand) -> Result<Vec<TransferEvent>, TransferError> {
        use TransferStatus as S;
        match (c, &self.status) {
            (TransferCommand::Request { from, to, amount }, S::None) => {
                if from == to || *amount <= 0 {
                    return Err(TransferError::InvalidRequest(format!(
                        "{amount} from {from} to {to}"
                    )));
                }
                Ok(vec![TransferEvent::Requested {
                    from: from.clone(),
                    to: to.clone(),
                    amount: *amount,
                }])
            }
            (TransferCommand::Request { .. }, s) => {
                Err(TransferError::InvalidRequest(format!("already {s:?}")))
            }
            (TransferCommand::MarkDebited, S::Requested) => Ok(vec![TransferEvent::Debited]),
            (TransferCommand::Complete, S::Debited) => Ok(vec![TransferEvent::Completed]),
            (TransferCommand::Fail(reason), S::Requested | S::Debited) => {
                Ok(vec![TransferEvent::Failed {
                    reason: reason.clone(),
                }])
            }
            // Steps delivered again after they happened change nothing.
            (TransferCommand::MarkDebited, S::Debited | S::Completed | S::Failed)
            | (TransferCommand::Complete, S::Completed)
            | (TransferCommand::Fail(_), S::Failed) => Ok(vec![]),
            (_, s) => Err(TransferError::WrongStatus(s.clone())),
        }
    }
}

/// Counters the demo reports.
#[derive(Debug, Default)]
pub struct Stats {
    commands: AtomicU64,
    events: AtomicU64,
    snapshots: AtomicU64,
    retries: AtomicU64,
}

impl Stats {
    fn count(&self, done: &Executed) {
        self.commands.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(done.events as u64, Ordering::Relaxed);
        self.snapshots
            .fetch_add(u64::from(done.snapshot_written), Ordering::Relaxed);
        self.retries
            .fetch_add(u64::from(done.retries), Ordering::Relaxed);
    }
}

type Boxed = Box<dyn std::error::Error + Send + Sync>;

async fn run<A: Aggregate>(
    repo: &Repository<A>,
    stats: &Stats,
    id: &str,
    command: &A::Command,
) -> Result<Result<Executed, A::Error>, Boxed> {
    match repo.execute(id, command).await {
        Ok(done) => {
            stats.count(&done);
            Ok(Ok(done))
        }
        Err(ExecuteError::Rejected(e)) => {
            stats.commands.fetch_add(1, Ordering::Relaxed);
            Ok(Err(e))
        }
        Err(e) => Err(Box::new(e)),
    }
}

/// The process manager: drives each requested transfer through debit, credit (or refund) and
/// completion. Every step is idempotent, so at-least-once delivery is safe.
#[derive(Debug)]
pub struct TransferProcess {
    accounts: Repository<Account>,
    transfers: Repository<Transfer>,
    stats: Arc<Stats>,
}

impl TransferProcess {
    /// A process manager working in `store`'s `tenant`.
    pub fn new(store: Arc<dyn Store>, tenant: &str, stats: Arc<Stats>) -> Self {
        TransferProcess {
            accounts: Repository::new(store.clone(), tenant)
                .with_snapshots(SnapshotPolicy::every(20)),
            transfers: Repository::new(store, tenant).with_snapshots(SnapshotPolicy::NEVER),
            stats,
        }
    }

    async fn drive(&mut self, id: &str, from: &str, to: &str, amount: Cents) -> Result<(), Boxed> {
        let (a, t, s) = (&self.accounts, &self.transfers, &*self.stats);
        match t.load(id).await?.state.status {
            // Delivered again after it finished: nothing to do.
            TransferStatus::Completed | TransferStatus::Failed | TransferStatus::None => {
                return Ok(());
            }
            TransferStatus::Debited => {}
            TransferStatus::Requested => {
                let debit = AccountCommand::Debit {
                    transfer: id.into(),
                    amount,
                };
                if let Err(e) = run(a, s, from, &debit).await? {
                    run(t, s, id, &TransferCommand::Fail(e.to_string())).await??;
                    return Ok(());
                }
                run(t, s, id, &TransferCommand::MarkDebited).await??;
            }
        }
        let credit = AccountCommand::Credit {
            transfer: id.into(),
            amount,
        };
        match run(a, s, to, &credit).await? {
            Ok(_) => {
                run(t, s, id, &TransferCommand::Complete).await??;
            }
            Err(e) => {
                let refund = AccountCommand::Refund {
                    transfer: id.into(),
                    amount,
                };
                run(a, s, from, &refund).await??;
                run(t, s, id, &TransferCommand::Fail(e.to_string())).await??;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Projection for TransferProcess {
    async fn apply(&mut self, items: &[FeedItem], _: &Checkpoint) -> Result<(), BoxError> {
        for item in items {
            let FeedItem::Event(e) = item else { continue };
            if e.stream.category() != Transfer::CATEGORY {
                continue;
            }
            match decode::<TransferEvent>(e)? {
                TransferEvent::Requested { from, to, amount } => {
                    self.drive(e.stream.id(), &from, &to, amount).await?
                }
                TransferEvent::Debited
                | TransferEvent::Completed
                | TransferEvent::Failed { .. } => {}
            }
        }
        Ok(())
    }
}

/// Every account's balance, from all account streams of a tenant whose id starts with `prefix`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Balances {
    /// Only accounts whose id starts with this.
    pub prefix: String,
    /// Balance by account id.
    pub by_account: BTreeMap<String, Cents>,
    /// Events applied.
    pub events: u64,
}

impl Balances {
    /// Sum of all balances.
    pub fn total(&self) -> Cents {
        self.by_account.values().sum()
    }
}

#[async_trait]
impl Projection for Balances {
    async fn apply(&mut self, items: &[FeedItem], _: &Checkpoint) -> Result<(), BoxError> {
        for item in items {
            let FeedItem::Event(e) = item else { continue };
            if e.stream.category() != Account::CATEGORY || !e.stream.id().starts_with(&self.prefix)
            {
                continue;
            }
            let delta = match decode::<AccountEvent>(e)? {
                AccountEvent::Opened { .. } => 0,
                AccountEvent::Deposited { amount }
                | AccountEvent::TransferCredited { amount, .. }
                | AccountEvent::TransferRefunded { amount, .. } => amount,
                AccountEvent::Withdrawn { amount }
                | AccountEvent::TransferDebited { amount, .. } => -amount,
            };
            *self
                .by_account
                .entry(e.stream.id().to_string())
                .or_default() += delta;
            self.events += 1;
        }
        Ok(())
    }
}

/// What the demo does.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Tenant the demo writes under.
    pub tenant: String,
    /// Accounts opened.
    pub accounts: usize,
    /// Transfers between random accounts.
    pub transfers: usize,
    /// Transfers run at once.
    pub concurrency: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            tenant: "demo".into(),
            accounts: 20,
            transfers: 200,
            concurrency: 8,
        }
    }
}

/// What the demo did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DemoReport {
    /// Commands handled.
    pub commands: u64,
    /// Events appended.
    pub events: u64,
    /// Snapshots written.
    pub snapshots: u64,
    /// Conflicts retried by the repository.
    pub conflicts_retried: u64,
    /// Events the balances projection processed to catch up.
    pub projected: u64,
    /// Transfers completed or failed.
    pub transfers_finished: u64,
    /// Sum of all balances (money is neither created nor lost by transfers).
    pub total_balance: i64,
}

/// A small deterministic generator, so a demo run is reproducible.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Runs the demo on `store`, calling `progress(done, total)` as commands complete.
///
/// Opens `accounts` accounts with 1 000.00 each, then `concurrency` tasks request `transfers`
/// transfers between random accounts and make a deposit beside each (so the process manager and
/// the tasks contend on accounts, and the repository retries conflicts). A process manager
/// follows the feed and completes the transfers; a balances projection then catches up, and the
/// demo checks that its total equals the money paid in.
pub async fn run_demo(
    store: Arc<dyn Store>,
    opts: &DemoOptions,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<DemoReport, Boxed> {
    let stats = Arc::new(Stats::default());
    let tenant = opts.tenant.as_str();
    let run_id = &run_id();
    let accounts =
        Repository::<Account>::new(store.clone(), tenant).with_snapshots(SnapshotPolicy::every(20));
    let transfers =
        Repository::<Transfer>::new(store.clone(), tenant).with_snapshots(SnapshotPolicy::NEVER);
    let ids: Vec<String> = (0..opts.accounts.max(2))
        .map(|i| format!("{run_id}-acc{i}"))
        .collect();
    let total = (ids.len() + opts.transfers * 2) as u64;
    let done = Arc::new(AtomicU64::new(0));
    let tick = |done: &AtomicU64| progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
    let mut paid_in: Cents = 0;
    for id in &ids {
        run(
            &accounts,
            &stats,
            id,
            &AccountCommand::Open { owner: id.clone() },
        )
        .await??;
        run(&accounts, &stats, id, &AccountCommand::Deposit(100_000)).await??;
        paid_in += 100_000;
        tick(&done);
    }

    let name = format!("{run_id}-transfers");
    let feed = FeedOptions::follow()
        .tenant(tenant)
        .category(Transfer::CATEGORY);
    let process = TransferProcess::new(store.clone(), tenant, stats.clone());
    let mut manager = Projector::new(store.clone(), name, feed, process);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let manager_task = tokio::spawn(async move {
        let r = manager
            .run(async {
                let _ = stop_rx.await;
            })
            .await;
        (manager, r)
    });

    let workers = opts.concurrency.max(1);
    let mut tasks = Vec::new();
    let deposits = Arc::new(AtomicU64::new(0));
    for w in 0..workers {
        let (accounts, transfers, stats, ids, done, deposits) = (
            accounts.clone(),
            transfers.clone(),
            stats.clone(),
            ids.clone(),
            done.clone(),
            deposits.clone(),
        );
        let mine: Vec<usize> = (w..opts.transfers).step_by(workers).collect();
        tasks.push(async move {
            let mut rng = Lcg(w as u64 + 1);
            for t in mine {
                let n = ids.len() as u64;
                let from = rng.below(n) as usize;
                let to = (from + 1 + rng.below(n - 1) as usize) % ids.len();
                let amount = 1 + rng.below(30_000) as Cents;
                let request = TransferCommand::Request {
                    from: ids[from].clone(),
                    to: ids[to].clone(),
                    amount,
                };
                run(&transfers, &stats, &format!("{run_id}-t{t}"), &request).await??;
                tick(&done);
                let target = &ids[rng.below(n) as usize];
                let cents = 1 + rng.below(5_000) as Cents;
                run(&accounts, &stats, target, &AccountCommand::Deposit(cents)).await??;
                deposits.fetch_add(cents as u64, Ordering::Relaxed);
                tick(&done);
            }
            Ok::<_, Boxed>(())
        });
    }
    for r in futures::future::join_all(tasks).await {
        r?;
    }
    paid_in += deposits.load(Ordering::Relaxed) as Cents;

    // Wait for the process manager to finish every transfer (it follows the feed). The count
    // keeps its position in memory (no checkpoint saved), so each check reads only what is new.
    let wanted = opts.transfers as u64;
    let mut check = Projector::new(
        store.clone(),
        format!("{run_id}-check"),
        FeedOptions::catch_up()
            .tenant(tenant)
            .category(Transfer::CATEGORY),
        TransferCount {
            prefix: format!("{run_id}-"),
            finished: 0,
        },
    )
    .with_checkpoints(CheckpointMode::ReadModel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while check.projection().finished < wanted {
        if tokio::time::Instant::now() > deadline {
            return Err("the process manager did not finish the transfers within 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        check.catch_up().await?;
    }
    let _ = stop_tx.send(());
    let (_manager, result) = manager_task.await?;
    result?;

    let mut balances = Projector::new(
        store.clone(),
        format!("{run_id}-balances"),
        FeedOptions::catch_up()
            .tenant(tenant)
            .category(Account::CATEGORY),
        Balances {
            prefix: format!("{run_id}-"),
            ..Balances::default()
        },
    )
    .with_checkpoints(CheckpointMode::ReadModel);
    let projected = balances.catch_up().await? as u64;
    let total_balance = balances.projection().total();
    if total_balance != paid_in {
        return Err(format!(
            "money was created or lost: balances add up to {total_balance}, {paid_in} was paid in"
        )
        .into());
    }
    Ok(DemoReport {
        commands: stats.commands.load(Ordering::Relaxed),
        events: stats.events.load(Ordering::Relaxed),
        snapshots: stats.snapshots.load(Ordering::Relaxed),
        conflicts_retried: stats.retries.load(Ordering::Relaxed),
        projected,
        transfers_finished: check.projection().finished,
        total_balance,
    })
}

/// Counts finished transfers whose id starts with `prefix`.
#[derive(Debug)]
struct TransferCount {
    prefix: String,
    finished: u64,
}

#[async_trait]
impl Projection for TransferCount {
    async fn apply(&mut self, items: &[FeedItem], _: &Checkpoint) -> Result<(), BoxError> {
        for item in items {
            if let FeedItem::Event(e) = item
                && e.stream.id().starts_with(&self.prefix)
                && matches!(e.event_type.as_str(), "Completed" | "Failed")
            {
                self.finished += 1;
            }
        }
        Ok(())
    }
}

/// A short id unique to this run, so runs in one store never share streams.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("r{nanos:x}")
}
