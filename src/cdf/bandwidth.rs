//! `[upload] max_rate` and `max_rate_schedule`: one token bucket shared by the bodies of
//! every content PUT, so the limit holds across all files and parts in flight.
//!
//! The bucket holds at most a quarter second of bytes (at least one 64 KiB chunk, the
//! size the PUT body is read in). A chunk takes its bytes at once and may drive the
//! bucket into debt; the sender then sleeps until the debt is paid. Waiters are served
//! in the order they arrived and the long-run rate is exact: over a minute the only
//! error is the one initial burst. The rate in force is the schedule window's inside a
//! window and `max_rate` outside (unlimited when unset); schedule times are **UTC**
//! (gateways run UTC; the standard library has no time zone database). The limits can
//! be replaced at run time ([`Bandwidth::set_rate`], for a SIGHUP reload); a new rate
//! applies from the next chunk on.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::schedule::RateSchedule;

/// The smallest burst: one chunk of a PUT body.
pub const MIN_BURST: u64 = 64 * 1024;

/// `max_rate` plus the schedule: what limits apply when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RatePolicy {
    /// Bytes per second outside scheduled windows; `None` is unlimited.
    pub max_rate: Option<u64>,
    pub schedule: RateSchedule,
}

impl RatePolicy {
    /// The limit at `minute` after midnight UTC; `None` is unlimited.
    pub fn rate_at(&self, minute: u16) -> Option<u64> {
        self.schedule
            .rate_at(minute, self.max_rate)
            .filter(|r| *r > 0)
    }
}

/// The shared limiter; one per [`super::CdfClient`].
#[derive(Debug, Default)]
pub struct Bandwidth {
    state: Mutex<State>,
    /// PUT bodies currently streaming.
    active: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    policy: RatePolicy,
    /// Present while a limit is in force.
    bucket: Option<Bucket>,
}

impl Bandwidth {
    pub fn new(policy: RatePolicy) -> Self {
        Self {
            state: Mutex::new(State {
                policy,
                bucket: None,
            }),
            active: AtomicU64::new(0),
        }
    }

    /// Replaces `max_rate` and the schedule (SIGHUP). Bytes already granted stay
    /// granted; the next chunk is measured against the new limit.
    pub fn set_rate(&self, max_rate: Option<u64>, schedule: RateSchedule) {
        self.lock().policy = RatePolicy { max_rate, schedule };
    }

    /// The limit in force now, bytes per second (`None`: unlimited), for metrics.
    pub fn current_rate(&self) -> Option<u64> {
        self.lock()
            .policy
            .rate_at(minute_of_day_utc(SystemTime::now()))
    }

    /// PUT bodies streaming now.
    pub fn active_transfers(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Waits until `bytes` more may be sent.
    pub async fn acquire(&self, bytes: u64) {
        let minute = minute_of_day_utc(SystemTime::now());
        let wait = self.lock().take(bytes, Instant::now(), minute);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Counts one PUT body as streaming until the guard drops.
    pub(crate) fn transfer(&self) -> TransferGuard<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        TransferGuard(self)
    }

    /// How long the limiter alone may stretch a transfer of `len` bytes started now,
    /// with the bandwidth shared among the transfers in flight: added to the PUT
    /// deadline so that a low limit does not turn into timeouts.
    pub(crate) fn expected_delay(&self, len: u64) -> Duration {
        let Some(rate) = self.current_rate() else {
            return Duration::ZERO;
        };
        let sharers = self.active_transfers().max(1);
        Duration::from_secs_f64(len as f64 * sharers as f64 / rate as f64)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// See [`Bandwidth::transfer`].
pub(crate) struct TransferGuard<'a>(&'a Bandwidth);

impl Drop for TransferGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl State {
    /// Grants `bytes` at `now` (`minute` after midnight UTC); returns the wait.
    fn take(&mut self, bytes: u64, now: Instant, minute: u16) -> Duration {
        let Some(rate) = self.policy.rate_at(minute) else {
            self.bucket = None;
            return Duration::ZERO;
        };
        let bucket = self.bucket.get_or_insert_with(|| Bucket::full(rate, now));
        if bucket.rate != rate {
            bucket.set_rate(rate, now);
        }
        bucket.take(bytes, now)
    }
}

/// A token bucket in bytes that may go into debt; pure, time injected.
#[derive(Debug, Clone, PartialEq)]
struct Bucket {
    rate: u64,
    /// Negative: bytes granted but not yet paid for.
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: u64, now: Instant) -> Self {
        Self {
            rate,
            tokens: burst(rate) as f64,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate as f64).min(burst(self.rate) as f64);
        self.last = now.max(self.last);
    }

    fn set_rate(&mut self, rate: u64, now: Instant) {
        self.refill(now);
        self.rate = rate;
        self.tokens = self.tokens.min(burst(rate) as f64);
    }

    fn take(&mut self, bytes: u64, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate as f64)
        }
    }
}

/// A quarter second of bytes, at least one chunk.
pub fn burst(rate: u64) -> u64 {
    (rate / 4).max(MIN_BURST)
}

/// Minutes after midnight UTC.
fn minute_of_day_utc(t: SystemTime) -> u16 {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // < 1440, so the cast cannot truncate.
    ((secs / 60) % (24 * 60)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schedule::parse_window;

    const MIB: u64 = 1024 * 1024;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_full_bucket_lets_the_burst_through_then_charges_debt() {
        let t0 = Instant::now();
        let mut b = Bucket::full(MIB, t0);
        assert_eq!(burst(MIB), MIB / 4);
        assert_eq!(b.take(MIB / 4, t0), Duration::ZERO);
        // The next 256 KiB must wait a quarter second.
        assert_eq!(b.take(MIB / 4, t0), ms(250));
        // A later caller queues behind it.
        assert_eq!(b.take(MIB / 4, t0), ms(500));
        // Time pays the debt back.
        assert_eq!(b.take(0, t0 + ms(500)), Duration::ZERO);
    }

    #[test]
    fn the_long_run_rate_is_exact() {
        // 60 s of 64 KiB chunks at 1 MiB/s, each sent when granted.
        let t0 = Instant::now();
        let mut b = Bucket::full(MIB, t0);
        let mut now = t0;
        let mut sent = 0;
        while now < t0 + Duration::from_secs(60) {
            now += b.take(64 * 1024, now);
            sent += 64 * 1024;
        }
        let rate = sent as f64 / (now - t0).as_secs_f64();
        let error = (rate - MIB as f64).abs() / MIB as f64;
        assert!(error < 0.01, "rate {rate}, error {error}");
    }

    #[test]
    fn the_burst_is_at_least_one_chunk_and_never_accumulates_past_it() {
        assert_eq!(burst(1000), MIN_BURST);
        let t0 = Instant::now();
        let mut b = Bucket::full(1000, t0);
        b.take(MIN_BURST, t0);
        // An hour idle refills only up to the burst.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(b.take(MIN_BURST, later), Duration::ZERO);
        assert_eq!(b.take(1000, later), Duration::from_secs(1));
    }

    #[test]
    fn a_new_rate_prices_the_debt_at_the_new_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(MIB, t0);
        b.take(MIB / 4 + MIB, t0); // 1 MiB of debt
        b.set_rate(2 * MIB, t0);
        assert_eq!(b.take(0, t0), ms(500));
        b.set_rate(MIB / 2, t0);
        assert_eq!(b.take(0, t0), Duration::from_secs(2));
    }

    fn schedule(windows: &[&str]) -> RateSchedule {
        RateSchedule::new(windows.iter().map(|w| parse_window(w).unwrap()).collect()).unwrap()
    }

    #[test]
    fn the_schedule_window_applies_inside_and_max_rate_outside() {
        let mut s = State {
            policy: RatePolicy {
                max_rate: None,
                schedule: schedule(&["08:00-18:00 = 1 MiB/s"]),
            },
            bucket: None,
        };
        let t0 = Instant::now();
        let nine = 9 * 60;
        let night = 20 * 60;
        // Outside the window and no max_rate: unlimited, whatever the amount.
        assert_eq!(s.take(100 * MIB, t0, night), Duration::ZERO);
        assert!(s.bucket.is_none());
        // Inside: 1 MiB/s with a 256 KiB burst.
        assert_eq!(s.take(MIB / 4, t0, nine), Duration::ZERO);
        assert_eq!(s.take(MIB, t0, nine), Duration::from_secs(1));
        // max_rate outside the window.
        s.policy.max_rate = Some(2 * MIB);
        s.bucket = None;
        assert_eq!(s.take(MIB / 2, t0, night), Duration::ZERO);
        assert_eq!(s.take(MIB, t0, night), ms(500));
    }

    #[test]
    fn set_rate_and_current_rate() {
        let bw = Bandwidth::new(RatePolicy::default());
        assert_eq!(bw.current_rate(), None);
        bw.set_rate(Some(5 * MIB), RateSchedule::default());
        assert_eq!(bw.current_rate(), Some(5 * MIB));
        // Windows covering the whole day win over max_rate.
        let day = ["00:00-12:00 = 1 MiB/s", "12:00-24:00 = 1 MiB/s"];
        bw.set_rate(Some(5 * MIB), schedule(&day));
        assert_eq!(bw.current_rate(), Some(MIB));
        let day = ["00:00-12:00 = unlimited", "12:00-24:00 = unlimited"];
        bw.set_rate(Some(5 * MIB), schedule(&day));
        assert_eq!(bw.current_rate(), None);
    }

    #[test]
    fn the_transfer_guard_counts_and_widens_the_deadline() {
        let bw = Bandwidth::new(RatePolicy {
            max_rate: Some(MIB),
            schedule: RateSchedule::default(),
        });
        let a = bw.transfer();
        let b = bw.transfer();
        assert_eq!(bw.active_transfers(), 2);
        assert_eq!(bw.expected_delay(MIB), Duration::from_secs(2));
        drop((a, b));
        assert_eq!(bw.active_transfers(), 0);
        assert_eq!(bw.expected_delay(MIB), Duration::from_secs(1));
    }

    #[test]
    fn minutes_are_counted_from_midnight_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 8 * 3600 + 30 * 60 + 59);
        assert_eq!(minute_of_day_utc(t), 8 * 60 + 30);
    }
}
