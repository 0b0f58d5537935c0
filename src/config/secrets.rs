//! Where a secret comes from: an environment variable, a file, or a systemd credential.
//!
//! The configuration only ever holds the reference; the value is read when needed
//! (by the auth layer) and comes back as a [`Secret`] that never prints itself.
//! [`SecretSource::availability`] checks that a secret can be found without reading
//! it, for `check-config`.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::secret::Secret;

/// The environment variable systemd sets for `LoadCredential=`.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// A reference to a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `client_secret_env`: the name of an environment variable.
    Env(String),
    /// `client_secret_file`: an absolute path; surrounding whitespace is trimmed.
    File(PathBuf),
    /// `client_secret_credential`: a systemd credential name, read from
    /// `$CREDENTIALS_DIRECTORY/<name>`.
    Credential(String),
}

/// Why a secret could not be read. Never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set")]
    EnvNotSet(String),
    #[error(
        "systemd credential `{0}` requested but $CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit)"
    )]
    NoCredentialsDirectory(String),
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secret from {0} is empty")]
    Empty(String),
}

impl SecretSource {
    /// Reads the secret now.
    pub fn read(&self) -> Result<Secret, SecretError> {
        self.read_with(&|name| std::env::var(name).ok())
    }

    /// Reads the secret with an injectable environment (tests).
    pub fn read_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, SecretError> {
        let value = match self {
            Self::Env(name) => env(name).ok_or_else(|| SecretError::EnvNotSet(name.clone()))?,
            Self::File(path) => read_file(path)?,
            Self::Credential(name) => read_file(&credential_path(name, env)?)?,
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(SecretError::Empty(self.to_string()));
        }
        Ok(Secret::new(value))
    }

    /// Whether the secret can be found, checked without reading its value.
    pub fn availability(&self) -> Result<(), SecretError> {
        let env = |name: &str| std::env::var(name).ok();
        match self {
            Self::Env(name) => match env(name) {
                Some(v) if !v.trim().is_empty() => Ok(()),
                Some(_) => Err(SecretError::Empty(self.to_string())),
                None => Err(SecretError::EnvNotSet(name.clone())),
            },
            Self::File(path) => check_file(path),
            Self::Credential(name) => check_file(&credential_path(name, &env)?),
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Credential(name) => write!(f, "systemd credential {name}"),
        }
    }
}

/// Reads a secret file (a client secret or a static token), trimmed, as a [`Secret`].
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretError> {
    SecretSource::File(path.to_owned()).read()
}

fn credential_path(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, SecretError> {
    let dir = env(CREDENTIALS_DIRECTORY)
        .ok_or_else(|| SecretError::NoCredentialsDirectory(name.to_owned()))?;
    Ok(Path::new(&dir).join(name))
}

fn read_file(path: &Path) -> Result<String, SecretError> {
    std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        path: path.to_owned(),
        source,
    })
}

fn check_file(path: &Path) -> Result<(), SecretError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|source| SecretError::Read {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_env_file_and_credential_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
        let d = dir.path().to_string_lossy().into_owned();
        let env = move |n: &str| match n {
            "X" => Some("from-env".to_owned()),
            CREDENTIALS_DIRECTORY => Some(d.clone()),
            _ => None,
        };
        let read = |s: SecretSource| s.read_with(&env).map(|s| s.expose().to_owned());
        assert_eq!(read(SecretSource::Env("X".into())).unwrap(), "from-env");
        assert_eq!(
            read(SecretSource::File(dir.path().join("secret"))).unwrap(),
            "s3cret"
        );
        assert_eq!(
            read(SecretSource::Credential("secret".into())).unwrap(),
            "s3cret"
        );
        assert!(matches!(
            read(SecretSource::Env("Y".into())),
            Err(SecretError::EnvNotSet(_))
        ));
        assert!(read(SecretSource::File(dir.path().join("none"))).is_err());
    }

    #[test]
    fn errors_and_display_never_hold_the_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blank"), "  \n").unwrap();
        let err = SecretSource::File(dir.path().join("blank"))
            .read()
            .unwrap_err();
        assert!(matches!(err, SecretError::Empty(_)));
        assert_eq!(
            SecretSource::Env("A".into()).to_string(),
            "environment variable A"
        );
    }
}
