//! Extraction pipelines (CDF-API.md §7): run reports and the remote config.
//!
//! `POST extpipes/runs` is not idempotent (a retried run that CDF did record shows up
//! twice in the pipeline's history), so a run is retried only when CDF cannot have
//! recorded it: a 429, a connection that was never made, or a token that could not be
//! fetched yet. `GET extpipes/config` is a read and goes through the quick retry tier
//! like every other call.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{CdfClient, CdfError, bad_reply};

/// The most characters CDF keeps of a run's message (extractor-utils truncates to it).
pub const MAX_RUN_MESSAGE: usize = 1000;

/// A run's status, as CDF spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Success,
    Failure,
    /// A heartbeat.
    Seen,
}

/// One revision of a pipeline's config (`GET extpipes/config`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineConfig {
    pub external_id: String,
    /// The config text (free text in CDF; TOML for cdf-syncd).
    #[serde(default)]
    pub config: Option<String>,
    pub revision: i64,
    #[serde(default)]
    pub created_time: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
}

impl CdfClient {
    /// `POST extpipes/runs` with one run; `message` is cut to [`MAX_RUN_MESSAGE`]
    /// characters. Retried only when CDF cannot have recorded it (see the module docs).
    pub async fn post_run(
        &self,
        pipeline: &str,
        status: RunStatus,
        message: &str,
        created_ms: i64,
    ) -> Result<(), CdfError> {
        const ENDPOINT: &str = "extpipes/runs";
        let body = json!({ "items": [{
            "externalId": pipeline,
            "status": status,
            "message": truncate_chars(message, MAX_RUN_MESSAGE),
            "createdTime": created_ms,
        }]});
        let post = || self.call_once::<Value>(&Method::POST, ENDPOINT, &[], Some(&body));
        self.with_retries_if(ENDPOINT, post, never_recorded)
            .await
            .map(drop)
    }

    /// `GET extpipes/config?externalId=`: the latest revision of the pipeline's config,
    /// `None` when the pipeline has none (CDF answers 404).
    pub async fn pipeline_config(
        &self,
        pipeline: &str,
    ) -> Result<Option<PipelineConfig>, CdfError> {
        const ENDPOINT: &str = "extpipes/config";
        let query = [("externalId", pipeline.to_owned())];
        let reply: Value = match self.call(Method::GET, ENDPOINT, &query, None).await {
            Ok(reply) => reply,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        serde_json::from_value(reply)
            .map(Some)
            .map_err(|e| bad_reply(ENDPOINT, e.to_string()))
    }
}

/// Whether CDF cannot have recorded the request that failed with `e`.
fn never_recorded(e: &CdfError) -> bool {
    match e {
        CdfError::Api { error, .. } => error.status == 429,
        CdfError::Transport { source, .. } => source.is_connect(),
        CdfError::Auth(auth) => auth.is_transient(),
        _ => false,
    }
}

/// At most `max` characters of `s` (cut on a character boundary), with `…` as the
/// last one when something was cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_at_most_max_characters_on_a_boundary() {
        assert_eq!(truncate_chars("short", 10), "short");
        let long = "é".repeat(1500);
        let cut = truncate_chars(&long, MAX_RUN_MESSAGE);
        assert_eq!(cut.chars().count(), MAX_RUN_MESSAGE);
        assert!(cut.ends_with('…'));
        assert_eq!(truncate_chars("abcdef", 3), "ab…");
    }

    #[test]
    fn statuses_are_spelled_as_cdf_does() {
        assert_eq!(json!(RunStatus::Seen), json!("seen"));
        assert_eq!(json!(RunStatus::Failure), json!("failure"));
    }
}
