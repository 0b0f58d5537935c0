//! The quick retry tier inside one request, and the optional request-rate limit.
//!
//! Every API call and content PUT goes through [`RetryPolicy::delay`]: transient
//! failures and throttling are retried a few times with full-jitter exponential
//! backoff (or as long as `Retry-After` asks), bounded by a count and a time budget.
//! What is still failing after that goes back to the job, which backs off in the
//! store (the second tier) or pauses the pipeline (outages, throttling).

use std::time::{Duration, Instant};

use crate::config::RetrySettings;

use super::RetryClass;

/// The time one request may spend retrying before the job gets the error.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(120);

/// The quick tier's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// No retry starts that would end later than this after the first attempt.
    pub budget: Duration,
}

impl From<RetrySettings> for RetryPolicy {
    fn from(r: RetrySettings) -> Self {
        Self {
            max_retries: r.max_request_retries,
            initial_backoff: r.initial_backoff,
            max_backoff: r.max_backoff,
            budget: REQUEST_BUDGET,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 10,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            budget: REQUEST_BUDGET,
        }
    }
}

impl RetryPolicy {
    /// How long to wait before retry number `retry` (1-based) of a request that first
    /// ran at `started` and failed with `class`; `None` when it should not be retried.
    pub fn delay(&self, retry: u32, class: RetryClass, started: Instant) -> Option<Duration> {
        if retry > self.max_retries {
            return None;
        }
        let delay = match class {
            RetryClass::Transient => self.backoff(retry),
            RetryClass::Throttled { retry_after: None } => self.backoff(retry),
            RetryClass::Throttled {
                retry_after: Some(d),
            } => d,
            RetryClass::ReAuth | RetryClass::Permanent => return None,
        };
        (started.elapsed() + delay <= self.budget).then_some(delay)
    }

    /// Full jitter: uniform in `[0, min(max, initial * 2^(retry-1))]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self
            .initial_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_backoff);
        cap.mul_f64(fastrand::f64())
    }
}

/// Spaces requests at least `1 / rate` seconds apart across the whole client.
#[derive(Debug)]
pub struct RateLimit {
    interval: Duration,
    next: tokio::sync::Mutex<Instant>,
}

impl RateLimit {
    pub fn per_second(rate: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / rate.max(1),
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    /// Waits for this request's slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_retries: u32, budget: Duration) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            budget,
        }
    }

    #[test]
    fn only_transient_and_throttled_failures_are_retried_and_only_so_often() {
        let p = policy(3, Duration::from_secs(60));
        let now = Instant::now();
        assert!(p.delay(1, RetryClass::Transient, now).is_some());
        assert!(p.delay(3, RetryClass::Transient, now).is_some());
        assert!(p.delay(4, RetryClass::Transient, now).is_none());
        assert!(p.delay(1, RetryClass::Permanent, now).is_none());
        assert!(p.delay(1, RetryClass::ReAuth, now).is_none());
        let throttled = RetryClass::Throttled {
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(p.delay(1, throttled, now), Some(Duration::from_secs(7)));
    }

    #[test]
    fn the_time_budget_bounds_retries() {
        let p = policy(10, Duration::from_secs(5));
        let throttled = RetryClass::Throttled {
            retry_after: Some(Duration::from_secs(6)),
        };
        assert_eq!(p.delay(1, throttled, Instant::now()), None);
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_cap() {
        let p = policy(10, Duration::from_secs(60));
        for retry in 1..30 {
            let cap = Duration::from_millis(100 << (retry - 1).min(4)).min(Duration::from_secs(1));
            assert!(p.backoff(retry) <= cap, "retry {retry}");
        }
    }

    #[tokio::test]
    async fn the_rate_limit_spaces_requests() {
        let limit = RateLimit::per_second(20);
        let start = Instant::now();
        for _ in 0..5 {
            limit.acquire().await;
        }
        // Five slots at 50 ms spacing: the fifth starts 200 ms after the first.
        assert!(start.elapsed() >= Duration::from_millis(200));
    }
}
