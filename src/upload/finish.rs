//! What happens after CDF confirmed an upload: fixing the fields an overwrite does
//! not touch, waiting for `uploaded = true`, and deleting or moving the source.
//!
//! `overwrite=true` leaves `directory` and `source` as they were, so a re-uploaded
//! file gets them set with `files/update`. The source file is deleted or moved only
//! after CDF reports `uploaded = true` (the flag is eventually consistent), and only
//! while it is still the file that was uploaded (same fingerprint).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cdf::{CdfClient, CdfError, Identity};
use crate::config::AfterUpload;
use crate::fingerprint::Fingerprint;

/// How long to wait for `uploaded = true` before giving up for now (the job retries).
const UPLOADED_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error(transparent)]
    Cdf(#[from] CdfError),
    #[error("CDF did not report file {file_id} uploaded within {UPLOADED_WAIT:?}")]
    NotYetUploaded { file_id: i64 },
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
}

/// Sets `directory` and `source` on an overwritten file (overwrite does not).
pub async fn set_directory_and_source(
    client: &CdfClient,
    file_id: i64,
    directory: &str,
    source: Option<&str>,
) -> Result<(), CdfError> {
    let source = match source {
        Some(s) => json!({ "set": s }),
        None => json!({ "setNull": true }),
    };
    let item: Value = json!({
        "id": file_id,
        "update": { "directory": { "set": directory }, "source": source },
    });
    client.update_files(vec![item]).await.map(drop)
}

/// Adds and removes metadata keys of a file (`files/update`; the other keys stay).
pub async fn update_metadata(
    client: &CdfClient,
    file_id: i64,
    add: &[(&str, String)],
    remove: &[&str],
) -> Result<(), CdfError> {
    let add: serde_json::Map<String, Value> = add
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(v.as_str())))
        .collect();
    let item = json!({
        "id": file_id,
        "update": { "metadata": { "add": add, "remove": remove } },
    });
    client.update_files(vec![item]).await.map(drop)
}

/// Polls `files/byids` until CDF reports the file uploaded.
pub async fn wait_uploaded(client: &CdfClient, file_id: i64) -> Result<(), FinishError> {
    let deadline = Instant::now() + UPLOADED_WAIT;
    let mut delay = Duration::from_millis(100);
    loop {
        let files = client.files_by_ids(&[Identity::Id(file_id)]).await?;
        if files.iter().any(|f| f.id == file_id && f.uploaded) {
            return Ok(());
        }
        if Instant::now() + delay > deadline {
            return Err(FinishError::NotYetUploaded { file_id });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Applies `after_upload` to the source at `root/rel` if it is still `uploaded`.
/// Returns whether anything was done (a changed file is kept: it will sync again).
pub async fn apply_after_upload(
    action: &AfterUpload,
    root: &Path,
    rel: &Path,
    uploaded: Fingerprint,
) -> Result<bool, FinishError> {
    let path = root.join(rel);
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| FinishError::Io {
            path,
            action,
            source,
        }
    };
    let target = match action {
        AfterUpload::Keep => return Ok(false),
        AfterUpload::Delete => None,
        AfterUpload::MoveTo(dir) => Some(dir.join(rel)),
    };
    let meta = match tokio::fs::symlink_metadata(&path).await {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io("stat", &path)(e)),
    };
    if Fingerprint::of(&meta) != uploaded {
        tracing::info!(path = %path.display(), "source changed after upload; keeping it");
        return Ok(false);
    }
    match target {
        None => tokio::fs::remove_file(&path)
            .await
            .map_err(io("delete", &path))?,
        Some(to) => {
            if let Some(parent) = to.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(io("create directory", parent))?;
            }
            tokio::fs::rename(&path, &to)
                .await
                .map_err(io("move", &path))?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delete_and_move_only_touch_the_uploaded_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a")).expect("mkdir");
        let rel = Path::new("a/f.txt");
        std::fs::write(root.join(rel), b"one").expect("write");
        let fp = Fingerprint::of(&std::fs::metadata(root.join(rel)).expect("meta"));

        assert!(
            !apply_after_upload(&AfterUpload::Keep, &root, rel, fp)
                .await
                .expect("keep")
        );
        assert!(root.join(rel).exists());

        let moved = dir.path().join("done");
        let action = AfterUpload::MoveTo(moved.clone());
        assert!(
            apply_after_upload(&action, &root, rel, fp)
                .await
                .expect("move")
        );
        assert_eq!(std::fs::read(moved.join(rel)).expect("moved"), b"one");
        assert!(!root.join(rel).exists());

        std::fs::write(root.join(rel), b"two").expect("write");
        let fp2 = Fingerprint::of(&std::fs::metadata(root.join(rel)).expect("meta"));
        std::fs::write(root.join(rel), b"three!").expect("rewrite");
        assert!(
            !apply_after_upload(&AfterUpload::Delete, &root, rel, fp2)
                .await
                .expect("changed")
        );
        assert!(root.join(rel).exists(), "a changed file is kept");
        let fp3 = Fingerprint::of(&std::fs::metadata(root.join(rel)).expect("meta"));
        assert!(
            apply_after_upload(&AfterUpload::Delete, &root, rel, fp3)
                .await
                .expect("delete")
        );
        assert!(!root.join(rel).exists());
        assert!(
            !apply_after_upload(&AfterUpload::Delete, &root, rel, fp3)
                .await
                .expect("gone")
        );
    }
}
