//! All integration tests, in one binary so that linking stays cheap.
//! Each area has its own module; `support` holds shared helpers.

mod support;
mod cdf_client;
mod emulator_storage;
mod emulator_faults;
mod config;
mod emulator_api;
