//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod emulator;
pub mod cli;
