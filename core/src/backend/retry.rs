//! The one retry loop, for stores whose client retries nothing (PostgreSQL, SQLite's busy file).
//!
//! The rule every store keeps (DESIGN.md): a transient fault is retried in exactly one place.
//! A store on a cloud SDK configures the SDK's own retry policy once, with a stated budget; a
//! store whose driver retries nothing wraps each operation in [`RetryBudget::run`], and nothing
//! else retries it (never both stacked). The budget counts every attempt, the first included;
//! each retry is counted in the store's [`CostCounter`] under the operation's kind
//! ([`crate::CostSnapshot::retries`]). After the budget the last transient error is answered
//! ([`StoreError::Throttled`] or [`StoreError::Unavailable`]), never a hang.
//!
//! A retried write may have committed on an earlier attempt whose reply was lost, so every write
//! a store retries must recognise its own earlier attempt and answer its true result: an append
//! by its event ids (rule 3), a checkpoint save by the etag it chose, a delete by finding nothing
//! left to do. `WrongExpectedVersion` and every other error that is not transient are answered
//! at once. A closed store ([`StoreError::is_closed`]) is not retried either.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use sekiban_core::backend::{CostCounter, RetryBudget};
//! use sekiban_core::{OpKind, StoreError};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let costs = CostCounter::new();
//! let budget = RetryBudget { attempts: 3, first_delay: Duration::from_millis(1), max_delay: Duration::from_millis(4) };
//! let tries = AtomicU32::new(0);
//! let r: Result<u32, StoreError> = budget
//!     .run(&costs, OpKind::Append, || async {
//!         match tries.fetch_add(1, Ordering::Relaxed) {
//!             0 => Err(StoreError::unavailable("append", "connection reset")),
//!             n => Ok(n),
//!         }
//!     })
//!     .await;
//! assert_eq!(r.unwrap(), 1);
//! assert_eq!(costs.snapshot().retries(OpKind::Append), 1);
//! # });
//! ```

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cost::{CostCounter, OpKind};
use crate::error::{Result, StoreError};

/// How many attempts one operation gets, and how long to wait between them: exponential
/// backoff from `first_delay`, doubling up to `max_delay`, each wait drawn uniformly from its
/// upper half (jitter, so clients that failed together do not retry together).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryBudget {
    /// Attempts in all, the first included (1: never retry).
    pub attempts: u32,
    /// The wait before the first retry (its upper bound; the jittered wait is at least half).
    pub first_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryBudget {
    /// 4 attempts, waits of about 25, 50 and 100 ms: a dropped connection or a server restart
    /// of well under a second is ridden out; longer outages are answered `Unavailable` in
    /// about 200 ms.
    fn default() -> Self {
        RetryBudget {
            attempts: 4,
            first_delay: Duration::from_millis(25),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryBudget {
    /// One attempt: nothing is retried.
    pub const NEVER: RetryBudget = RetryBudget {
        attempts: 1,
        first_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// The budget with `attempts` attempts in all (at least 1) and the default waits.
    pub fn attempts(attempts: u32) -> Self {
        RetryBudget {
            attempts: attempts.max(1),
            ..RetryBudget::default()
        }
    }

    /// The longest wait before retry number `retry` (1 = the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(20);
        self.first_delay
            .saturating_mul(1 << shift)
            .min(self.max_delay)
    }

    /// The wait before retry number `retry`: uniform in the upper half of [`Self::ceiling`].
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        let draw = if spread == 0 {
            0
        } else {
            uuid::Uuid::new_v4().as_u64_pair().0 % (spread + 1)
        };
        half + Duration::from_nanos(draw)
    }

    /// Whether the loop retries `e`: transient, and not because the store was closed.
    pub fn retries(e: &StoreError) -> bool {
        e.is_transient() && !e.is_closed()
    }

    /// Runs `attempt` until it answers something other than a transient error, at most
    /// [`Self::attempts`] times, waiting [`Self::delay`] between attempts; each retry is
    /// counted under `kind`. The answer is the last attempt's.
    pub async fn run<T, F, Fut>(
        &self,
        costs: &CostCounter,
        kind: OpKind,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut made = 1;
        loop {
            match attempt().await {
                Err(e) if made < self.attempts && Self::retries(&e) => {
                    costs.record_retry(kind);
                    tokio::time::sleep(self.delay(made)).await;
                    made += 1;
                }
                answer => return answer,
            }
        }
    }
}

impl RetryBudget {
    /// Sends `first`, then what the service left undone of it (DynamoDB's `UnprocessedItems`
    /// and `UnprocessedKeys`, a batch answered in part), like the next page of a read, until
    /// nothing is left: at most [`Self::attempts`] requests in all, waiting [`Self::delay`]
    /// before each re-send, each re-send counted as a retry of `kind`. `send` returns what it
    /// left (`None`: nothing). After the budget, [`StoreError::Throttled`] saying `what`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sekiban_core::backend::{CostCounter, RetryBudget};
    /// use sekiban_core::OpKind;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let costs = CostCounter::new();
    /// let budget = RetryBudget { attempts: 4, first_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2) };
    /// // The service takes two items a request.
    /// let mut done = Vec::new();
    /// budget
    ///     .rest(&costs, OpKind::Delete, "delete items", vec![1, 2, 3, 4, 5], |mut batch: Vec<i32>| {
    ///         let rest = batch.split_off(batch.len().min(2));
    ///         done.extend(batch);
    ///         async move { Ok((!rest.is_empty()).then_some(rest)) }
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(done, [1, 2, 3, 4, 5]);
    /// assert_eq!(costs.snapshot().retries(OpKind::Delete), 2);
    /// # });
    /// ```
    pub async fn rest<P, F, Fut>(
        &self,
        costs: &CostCounter,
        kind: OpKind,
        what: &str,
        first: P,
        mut send: F,
    ) -> Result<()>
    where
        F: FnMut(P) -> Fut,
        Fut: Future<Output = Result<Option<P>>>,
    {
        let mut pending = first;
        let mut made = 1;
        loop {
            match send(pending).await? {
                None => return Ok(()),
                Some(left) if made < self.attempts => {
                    costs.record_retry(kind);
                    tokio::time::sleep(self.delay(made)).await;
                    made += 1;
                    pending = left;
                }
                Some(_) => {
                    return Err(StoreError::throttled(
                        what.to_string(),
                        format!("the service left part of the request undone {made} times"),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick(attempts: u32) -> RetryBudget {
        RetryBudget {
            attempts,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn a_fault_that_outlasts_the_budget_is_answered_after_exactly_the_budget() {
        let costs = CostCounter::new();
        let tries = AtomicU32::new(0);
        let r: Result<()> = quick(3)
            .run(&costs, OpKind::Read, || async {
                tries.fetch_add(1, Ordering::Relaxed);
                Err(StoreError::throttled("read", "slow down"))
            })
            .await;
        assert!(matches!(r, Err(StoreError::Throttled { .. })), "{r:?}");
        assert_eq!(tries.load(Ordering::Relaxed), 3);
        assert_eq!(costs.snapshot().retries(OpKind::Read), 2);
        assert_eq!(costs.snapshot().retries(OpKind::Append), 0);
    }

    #[tokio::test]
    async fn what_is_not_transient_or_a_closed_store_is_answered_at_once() {
        let costs = CostCounter::new();
        for e in [
            StoreError::invalid("bad"),
            StoreError::closed("the store is closed"),
        ] {
            let tries = AtomicU32::new(0);
            let mut e = Some(e);
            let r: Result<()> = quick(5)
                .run(&costs, OpKind::Append, || {
                    tries.fetch_add(1, Ordering::Relaxed);
                    let e = e.take().unwrap_or_else(|| StoreError::invalid("again"));
                    async move { Err(e) }
                })
                .await;
            assert!(r.is_err());
            assert_eq!(tries.load(Ordering::Relaxed), 1);
        }
        assert_eq!(costs.snapshot().retries(OpKind::Append), 0);
    }

    #[tokio::test]
    async fn a_rest_left_past_the_budget_is_throttled_after_exactly_the_budget() {
        let costs = CostCounter::new();
        let sends = AtomicU32::new(0);
        let r = quick(3)
            .rest(&costs, OpKind::Delete, "delete", vec![1], |p| {
                sends.fetch_add(1, Ordering::Relaxed);
                async move { Ok(Some(p)) }
            })
            .await;
        assert!(matches!(r, Err(StoreError::Throttled { .. })), "{r:?}");
        assert_eq!(sends.load(Ordering::Relaxed), 3);
        assert_eq!(costs.snapshot().retries(OpKind::Delete), 2);
    }

    #[test]
    fn waits_double_up_to_the_ceiling_with_jitter_in_the_upper_half() {
        let b = RetryBudget {
            attempts: 10,
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(35),
        };
        assert_eq!(b.ceiling(1), Duration::from_millis(10));
        assert_eq!(b.ceiling(2), Duration::from_millis(20));
        assert_eq!(b.ceiling(3), Duration::from_millis(35));
        assert_eq!(b.ceiling(40), Duration::from_millis(35));
        for retry in 1..6 {
            let d = b.delay(retry);
            assert!(d >= b.ceiling(retry) / 2 && d <= b.ceiling(retry), "{d:?}");
        }
        assert_eq!(RetryBudget::NEVER.delay(1), Duration::ZERO);
        assert_eq!(RetryBudget::attempts(0).attempts, 1);
    }
}
