//! All integration tests, in one binary so that linking stays cheap.
//! Each area has its own module; `support` holds shared helpers.

// Test code may panic on unexpected states: that is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cdf_client;
mod chaos;
mod churn;
mod config;
mod crash;
mod deletions;
mod demo;
mod dm;
mod emulator_api;
mod emulator_faults;
mod emulator_storage;
mod extpipe;
mod gcs;
mod hash;
mod jobs_cli;
mod metrics;
mod network;
mod reload;
mod resilience;
mod state_heal;
mod status;
mod store;
mod support;
mod sync;
mod systemd;
mod watch;
