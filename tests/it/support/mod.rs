//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod cli;
pub mod daemon;
pub mod emulator;

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
