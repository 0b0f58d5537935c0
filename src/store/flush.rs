//! Group commit: many callers awaiting a flush at once share one engine flush.
//!
//! A caller needs a flush that *starts after* its writes. If none is running, it
//! starts one; if one is running, it registers for the next round, which the running
//! round starts when it ends. Every caller waiting during one round is served by the
//! next, so N concurrent callers cost about two engine flushes rather than N. Rounds run on
//! tokio's blocking pool, never on a worker thread, and finish even if every caller
//! has gone away (dropping a `flush()` future is safe).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::types::FlushStats;

type FlushFn<E> = Box<dyn Fn() -> Result<(), E> + Send + Sync>;

/// A group-commit front for one flush operation; the error is shared by every caller
/// the failed round served.
pub(crate) struct GroupCommit<E> {
    shared: Arc<Shared<E>>,
}

struct Shared<E> {
    op: FlushFn<E>,
    state: Mutex<State<E>>,
    /// The generation of the last round that ended.
    ended: watch::Sender<u64>,
}

struct State<E> {
    /// Rounds started so far (a round's generation is its number).
    started: u64,
    /// The highest generation some caller waits for.
    wanted: u64,
    running: bool,
    /// The outcome of the last round that ended.
    last: Result<(), E>,
    stats: FlushStats,
}

impl<E: Clone + Send + 'static> GroupCommit<E> {
    pub(crate) fn new(op: impl Fn() -> Result<(), E> + Send + Sync + 'static) -> Self {
        let (ended, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                op: Box::new(op),
                state: Mutex::new(State {
                    started: 0,
                    wanted: 0,
                    running: false,
                    last: Ok(()),
                    stats: FlushStats::default(),
                }),
                ended,
            }),
        }
    }

    /// Returns once a flush that started after this call has ended; its outcome (or a
    /// later round's, which covers the same writes).
    pub(crate) async fn flush(&self) -> Result<(), E> {
        let mut ended = self.shared.ended.subscribe();
        let need = {
            let mut s = self.shared.lock();
            s.stats.requests += 1;
            let need = s.started + 1;
            s.wanted = s.wanted.max(need);
            if !s.running {
                s.running = true;
                s.started = need;
                let shared = self.shared.clone();
                tokio::task::spawn_blocking(move || shared.run_rounds(need));
            }
            need
        };
        // The sender lives in `self.shared`, so `wait_for` cannot see it closed.
        let _ = ended.wait_for(|&generation| generation >= need).await;
        self.shared.lock().last.clone()
    }

    /// A flush on the calling thread, outside the rounds (shutdown, sync contexts).
    pub(crate) fn flush_blocking(&self) -> Result<(), E> {
        self.shared.lock().stats.requests += 1;
        let result = (self.shared.op)();
        self.shared.lock().stats.flushes += 1;
        result
    }

    pub(crate) fn stats(&self) -> FlushStats {
        self.shared.lock().stats
    }
}

impl<E> Shared<E> {
    fn lock(&self) -> MutexGuard<'_, State<E>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs rounds until nobody waits for a later one.
    fn run_rounds(&self, mut generation: u64) {
        loop {
            let result = (self.op)();
            let mut s = self.lock();
            s.stats.flushes += 1;
            s.last = result;
            self.ended.send_replace(generation);
            if s.wanted > generation {
                s.started += 1;
                generation = s.started;
            } else {
                s.running = false;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;

    fn slow(count: Arc<AtomicU64>, fail: bool) -> GroupCommit<String> {
        GroupCommit::new(move || {
            std::thread::sleep(Duration::from_millis(20));
            count.fetch_add(1, Ordering::SeqCst);
            if fail {
                Err("disk full".into())
            } else {
                Ok(())
            }
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_flushes() {
        let count = Arc::new(AtomicU64::new(0));
        let gc = Arc::new(slow(count.clone(), false));
        let callers: Vec<_> = (0..64)
            .map(|_| {
                let gc = gc.clone();
                tokio::spawn(async move { gc.flush().await })
            })
            .collect();
        for c in callers {
            c.await.unwrap().unwrap();
        }
        let flushes = count.load(Ordering::SeqCst);
        assert!(
            (1..=3).contains(&flushes),
            "{flushes} flushes for 64 callers"
        );
        assert_eq!(gc.stats().requests, 64);
        assert_eq!(gc.stats().flushes, flushes);
    }

    #[tokio::test]
    async fn a_caller_is_served_by_a_round_that_started_after_it() {
        let count = Arc::new(AtomicU64::new(0));
        let gc = slow(count.clone(), false);
        gc.flush().await.unwrap();
        gc.flush().await.unwrap();
        assert_eq!(
            count.load(Ordering::SeqCst),
            2,
            "sequential callers never share"
        );
    }

    #[tokio::test]
    async fn a_failed_round_fails_its_callers_and_the_next_can_succeed() {
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let f = fail.clone();
        let gc = GroupCommit::new(move || {
            if f.load(Ordering::SeqCst) {
                Err("io")
            } else {
                Ok(())
            }
        });
        assert_eq!(gc.flush().await, Err("io"));
        fail.store(false, Ordering::SeqCst);
        assert_eq!(gc.flush().await, Ok(()));
    }

    #[tokio::test]
    async fn dropping_a_caller_does_not_stall_the_rounds() {
        let count = Arc::new(AtomicU64::new(0));
        let gc = slow(count.clone(), false);
        let abandoned = tokio::time::timeout(Duration::from_millis(1), gc.flush()).await;
        assert!(abandoned.is_err(), "the first round takes 20 ms");
        tokio::time::timeout(Duration::from_secs(5), gc.flush())
            .await
            .expect("a later caller still gets a flush")
            .unwrap();
        assert!(count.load(Ordering::SeqCst) >= 2);
    }

    #[test]
    fn flush_blocking_runs_on_the_caller() {
        let count = Arc::new(AtomicU64::new(0));
        let gc = slow(count.clone(), true);
        assert_eq!(gc.flush_blocking(), Err("disk full".to_owned()));
        assert_eq!(
            gc.stats(),
            FlushStats {
                requests: 1,
                flushes: 1
            }
        );
    }
}
