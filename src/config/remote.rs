//! The extraction pipeline's remote config (`[cdf] remote_config = true`).
//!
//! CDF stores a pipeline's config as a free string; extractor-utils writes YAML there,
//! cdf-syncd writes TOML: the same `[[roots]]`, `[sync]` and `[upload]` tables as the
//! local file, checked by the same validation, with errors located as
//! `remote config (revision N):line: key: message`. A table the remote config has
//! replaces the local file's; a table it leaves out keeps the local one. `[cdf]`,
//! `[state]`, `[admin]` and `[log]` always come from the local file (the remote config
//! cannot hold them: the credentials that read it, and what the process is built on).
//! There is no `${VAR}` substitution in a remote config: whoever can write the
//! pipeline's config must not be able to read the gateway's environment.

use super::error::Report;
use super::raw::RawRemote;
use super::{ConfigErrors, Settings, single, validate};

/// One revision of the pipeline's config, as CDF returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    pub revision: i64,
    pub text: String,
}

impl RemoteConfig {
    /// How errors name this config: `remote config (revision N)`.
    pub fn origin(&self) -> String {
        format!("remote config (revision {})", self.revision)
    }
}

/// `local` with the tables of `remote` in place of its own, validated; every problem
/// of the remote text is reported with its line.
pub fn merge_remote(local: &Settings, remote: &RemoteConfig) -> Result<Settings, ConfigErrors> {
    let origin = remote.origin();
    let mut report = Report::new(&origin, &remote.text);
    let raw: RawRemote = match toml::from_str(&remote.text) {
        Ok(raw) => raw,
        Err(e) => {
            report.toml(&e);
            report.finish()?;
            return Err(single(&origin, "invalid TOML"));
        }
    };
    let merged = validate::remote(&raw, &mut report, local);
    report.finish()?;
    merged.ok_or_else(|| single(&origin, "invalid remote configuration"))
}
