//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod cli;
pub mod daemon;
pub mod emulator;
