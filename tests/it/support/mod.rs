//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod cli;
pub mod daemon;
pub mod emulator;
pub mod tls;
pub mod unshare;

/// Polls `cond` every 20 ms until it holds; panics after `secs` seconds naming `what`.
/// The one wait-with-deadline helper of the integration tests.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    const POLL: std::time::Duration = std::time::Duration::from_millis(20);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `cond` every `every` until it holds (true) or `within` has passed (false):
/// for conditions whose absence is not a failure (e.g. "kill right after the next
/// completion, or after a while anyway").
pub async fn poll_until<F, Fut>(
    within: std::time::Duration,
    every: std::time::Duration,
    mut cond: F,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}
