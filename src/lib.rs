//! cdf-syncd: keeps local directories on an edge gateway synchronised into Cognite Data
//! Fusion (CDF) Files.
//!
//! The pipeline (see `docs/ARCHITECTURE.md`) runs watch -> stability gate -> job store ->
//! workers -> CDF client. This crate holds the library; `src/main.rs` is a thin CLI over it.

pub mod admin;
pub mod auth;
pub mod cdf;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod fingerprint;
pub mod hash;
pub mod mapping;
pub mod metrics;
pub mod secret;
pub mod store;
pub mod transport_error;
pub mod upload;
pub mod watch;
