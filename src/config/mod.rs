//! Configuration: the TOML file, read in two layers.
//!
//! [`load`] reads a file, substitutes `${VAR}` from the environment (`env`), parses the
//! text into a serde mirror that rejects unknown keys (`raw`), then validates it into
//! typed [`Settings`] (`validate` -> `settings`): URLs parsed, globs compiled, sizes and
//! durations typed, modes as enums, secrets only as references. Every problem found is
//! reported, each as `file:line: key: message`, in one [`ConfigErrors`].
//!
//! `config/cdf-syncd.example.toml` documents every key with its default; the
//! defaults in code are the `DEFAULT_*` constants of [`settings`].

pub mod describe;
mod env;
mod error;
pub mod filter;
pub mod limits;
pub mod mime;
mod raw;
mod remote;
pub mod schedule;
pub mod secrets;
pub mod settings;
mod validate;
mod values;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
pub use filter::PathFilter;
pub use remote::{RemoteConfig, merge_remote};
pub use secrets::{SecretError, SecretSource, read_secret_file};
pub use settings::*;

use error::Report;

/// Reads and validates the configuration file at `path` with the process environment.
pub fn load(path: &Path) -> Result<Settings, ConfigErrors> {
    let origin = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => parse(&text, &origin),
            Err(_) => Err(single(
                &origin,
                "the file is not valid UTF-8 (TOML must be UTF-8)",
            )),
        },
        Err(e) => Err(single(
            &origin,
            &format!("cannot read the configuration file: {e}"),
        )),
    }
}

/// Validates configuration `text` with the process environment; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Settings, ConfigErrors> {
    parse_with_env(text, origin, &|name| std::env::var(name).ok())
}

/// Validates configuration `text`, reading `${VAR}`s and systemd directories through `env`.
pub fn parse_with_env(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigErrors> {
    let mut report = Report::new(origin, text);
    let expanded = match env::expand(text, env) {
        Ok(e) => e,
        Err(errors) => {
            for e in errors {
                report.at_original(e.offset, e.message);
            }
            report.finish()?;
            return Err(single(origin, "substitution failed"));
        }
    };
    let mut report = report.with_expansion(&expanded);
    let raw: raw::RawConfig = match toml::from_str(&expanded.text) {
        Ok(raw) => raw,
        Err(e) => {
            report.toml(&e);
            report.finish()?;
            return Err(single(origin, "invalid TOML"));
        }
    };
    let settings = validate::settings(&raw, &mut report, env);
    report.finish()?;
    settings.ok_or_else(|| single(origin, "invalid configuration"))
}

fn single(origin: &str, message: &str) -> ConfigErrors {
    ConfigErrors::new(vec![ConfigError {
        origin: origin.to_owned(),
        line: None,
        key: String::new(),
        message: message.to_owned(),
    }])
}

#[cfg(test)]
mod tests;
