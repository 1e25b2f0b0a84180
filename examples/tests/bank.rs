//! The bank domain: given/when/then for each aggregate, and whole demo runs on memory and SQLite.

use std::sync::Arc;

use sekiban_core::aggregate::given;
use sekiban_core::{MemoryStore, Store};
use sekiban_examples::bank::{
    Account, AccountCommand as AC, AccountError, AccountEvent as AE, DemoOptions, Transfer,
    TransferCommand as TC, TransferError, TransferEvent as TE, TransferStatus, run_demo,
};
use sekiban_sqlite::{SqliteConfig, SqliteEventStore};

fn opened() -> AE {
    AE::Opened {
        owner: "ada".into(),
    }
}

#[test]
fn an_account_opens_once_and_takes_deposits() {
    given::<Account>(vec![])
        .when(AC::Open {
            owner: "ada".into(),
        })
        .then_expect(vec![opened()]);
    given::<Account>(vec![opened()])
        .when(AC::Open {
            owner: "bob".into(),
        })
        .then_error(AccountError::AlreadyOpen);
    given::<Account>(vec![])
        .when(AC::Deposit(5))
        .then_error(AccountError::NotOpen);
    given::<Account>(vec![opened()])
        .when(AC::Deposit(5))
        .then_expect(vec![AE::Deposited { amount: 5 }]);
    given::<Account>(vec![opened()])
        .when(AC::Deposit(0))
        .then_error(AccountError::NotPositive(0));
}

#[test]
fn withdrawals_and_debits_need_funds() {
    let funded = vec![opened(), AE::Deposited { amount: 100 }];
    given::<Account>(funded.clone())
        .when(AC::Withdraw(100))
        .then_expect(vec![AE::Withdrawn { amount: 100 }]);
    given::<Account>(funded.clone())
        .when(AC::Withdraw(101))
        .then_error(AccountError::InsufficientFunds {
            balance: 100,
            needed: 101,
        });
    given::<Account>(funded)
        .when(AC::Debit {
            transfer: "t1".into(),
            amount: 150,
        })
        .then_error_matches(|e| matches!(e, AccountError::InsufficientFunds { .. }));
}

#[test]
fn transfer_steps_on_an_account_happen_once() {
    let debited = vec![
        opened(),
        AE::Deposited { amount: 100 },
        AE::TransferDebited {
            transfer: "t1".into(),
            amount: 60,
        },
    ];
    given::<Account>(debited.clone())
        .when(AC::Debit {
            transfer: "t1".into(),
            amount: 60,
        })
        .then_expect(vec![]);
    given::<Account>(debited.clone())
        .when(AC::Refund {
            transfer: "t1".into(),
            amount: 60,
        })
        .then_expect(vec![AE::TransferRefunded {
            transfer: "t1".into(),
            amount: 60,
        }]);
    let mut refunded = debited;
    refunded.push(AE::TransferRefunded {
        transfer: "t1".into(),
        amount: 60,
    });
    given::<Account>(refunded)
        .when(AC::Refund {
            transfer: "t1".into(),
            amount: 60,
        })
        .then_expect(vec![]);
    given::<Account>(vec![opened()])
        .when(AC::Refund {
            transfer: "t9".into(),
            amount: 5,
        })
        .then_expect(vec![]);
    let credited = vec![
        opened(),
        AE::TransferCredited {
            transfer: "t2".into(),
            amount: 7,
        },
    ];
    given::<Account>(credited)
        .when(AC::Credit {
            transfer: "t2".into(),
            amount: 7,
        })
        .then_expect(vec![]);
}

#[test]
fn a_transfer_moves_through_its_states() {
    let request = TC::Request {
        from: "a".into(),
        to: "b".into(),
        amount: 10,
    };
    let requested = TE::Requested {
        from: "a".into(),
        to: "b".into(),
        amount: 10,
    };
    given::<Transfer>(vec![])
        .when(request.clone())
        .then_expect(vec![requested.clone()]);
    given::<Transfer>(vec![requested.clone()])
        .when(request)
        .then_error_matches(|e| matches!(e, TransferError::InvalidRequest(_)));
    given::<Transfer>(vec![])
        .when(TC::Request {
            from: "a".into(),
            to: "a".into(),
            amount: 10,
        })
        .then_error_matches(|e| matches!(e, TransferError::InvalidRequest(_)));
    given::<Transfer>(vec![requested.clone()])
        .when(TC::Complete)
        .then_error(TransferError::WrongStatus(TransferStatus::Requested));
    given::<Transfer>(vec![requested.clone()])
        .when(TC::MarkDebited)
        .then_expect(vec![TE::Debited]);
    given::<Transfer>(vec![requested.clone(), TE::Debited])
        .when(TC::Complete)
        .then_expect(vec![TE::Completed]);
    given::<Transfer>(vec![requested.clone(), TE::Debited, TE::Completed])
        .when(TC::Complete)
        .then_expect(vec![]);
    given::<Transfer>(vec![requested, TE::Debited, TE::Completed])
        .when(TC::Fail("late".into()))
        .then_error(TransferError::WrongStatus(TransferStatus::Completed));
}

fn small() -> DemoOptions {
    DemoOptions {
        tenant: "demo".into(),
        accounts: 6,
        transfers: 60,
        concurrency: 4,
    }
}

async fn demo_on(store: Arc<dyn Store>) {
    let first = run_demo(store.clone(), &small(), &|_, _| {})
        .await
        .expect("the demo runs");
    assert_eq!(first.transfers_finished, 60);
    assert!(first.events > 60 * 3, "{first:?}");
    assert!(first.snapshots > 0, "{first:?}");
    // A second run in the same store and tenant keeps its money apart from the first.
    let second = run_demo(store, &small(), &|_, _| {})
        .await
        .expect("the demo runs again");
    assert_eq!(second.transfers_finished, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_conserves_money_on_memory() {
    demo_on(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_conserves_money_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteEventStore::open(SqliteConfig::file(dir.path().join("bank.db")))
        .await
        .expect("open");
    demo_on(Arc::new(store)).await;
}
