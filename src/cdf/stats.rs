//! What the client has seen, for metrics: retries and final failures by class,
//! throttling replies, and request latencies. Only counting lives here; `metrics.rs`
//! reads it at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::RetryClass;

/// Counters and histograms shared by every clone of a client.
#[derive(Debug)]
pub struct ClientStats {
    /// Throttling replies (429/503), retried or not.
    pub throttled: AtomicU64,
    pub retries_transient: AtomicU64,
    pub retries_throttled: AtomicU64,
    /// Requests that failed for good after the quick tier, by class.
    pub failed_transient: AtomicU64,
    pub failed_throttled: AtomicU64,
    pub failed_permanent: AtomicU64,
    pub failed_reauth: AtomicU64,
    /// Seconds per API call attempt.
    pub api_seconds: Histogram,
    /// Seconds per content PUT attempt (a part or a single-part file).
    pub put_seconds: Histogram,
}

impl Default for ClientStats {
    fn default() -> Self {
        Self {
            throttled: AtomicU64::new(0),
            retries_transient: AtomicU64::new(0),
            retries_throttled: AtomicU64::new(0),
            failed_transient: AtomicU64::new(0),
            failed_throttled: AtomicU64::new(0),
            failed_permanent: AtomicU64::new(0),
            failed_reauth: AtomicU64::new(0),
            // 5 ms .. ~80 s.
            api_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 15)),
            // 50 ms .. ~27 min (a 4000 MiB part on a slow link).
            put_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 16)),
        }
    }
}

impl ClientStats {
    pub(crate) fn attempt(&self, put: bool, took: Duration) {
        let h = if put {
            &self.put_seconds
        } else {
            &self.api_seconds
        };
        h.observe(took.as_secs_f64());
    }

    pub(crate) fn failed(&self, class: RetryClass, retried: bool) {
        let (retry, fail) = match class {
            RetryClass::Transient => (&self.retries_transient, &self.failed_transient),
            RetryClass::Throttled { .. } => {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                (&self.retries_throttled, &self.failed_throttled)
            }
            RetryClass::Permanent => (&self.failed_permanent, &self.failed_permanent),
            RetryClass::ReAuth => (&self.failed_reauth, &self.failed_reauth),
        };
        let counter = if retried { retry } else { fail };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
