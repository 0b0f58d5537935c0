//! The data-modeling target: a mapped file as a CogniteFile node (CDF-API.md §6).
//!
//! The node lives in the configured instance space under the file's mapped externalId
//! and is written through the configured view (CogniteFile or a view that implements
//! it): `name`, `directory`, `mimeType`, `sourceId` (the local path; non-UTF-8 bytes
//! replaced),
//! `sourceCreatedTime`/`sourceUpdatedTime` (the file's mtime as ISO-8601), the root's
//! `source` as `sourceContext`, and the root's `metadata` as `extractedData` (a
//! CogniteExtractorFile property: plain CogniteFile has nowhere to keep it). Optional
//! properties the daemon manages are sent as null when unset, so a changed
//! configuration clears them. Content then goes through the node's `instanceId`
//! (`session::open_node`).

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cdf::{CdfError, InstanceId, NodeWrite, ViewSource};
use crate::config::ViewRef;
use crate::mapping::CdfFile;

/// How many times a link request that CDF answers "not found" is tried again while
/// the file service catches up with a new node (the Python SDK's `max_retries`).
pub const PROPAGATION_RETRIES: u32 = 10;

/// Why a node could not be written or linked.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Cdf(#[from] CdfError),
    /// Retrying cannot help: the configuration or the view is wrong for this node.
    #[error("node {space}:{external_id}: {reason}")]
    Refused {
        space: String,
        external_id: String,
        reason: String,
    },
    /// The file service still does not know the node: try the job again later.
    #[error(
        "node {space}:{external_id}: CDF's file service did not see the node after {tries} tries (propagation delay); the upload is retried later"
    )]
    NotPropagated {
        space: String,
        external_id: String,
        tries: u32,
    },
}

impl NodeError {
    pub(crate) fn refused(id: &InstanceId, reason: String) -> Self {
        Self::Refused {
            space: id.space.clone(),
            external_id: id.external_id.clone(),
            reason,
        }
    }
}

/// The node write for a mapped local file at `local` with mtime `modified_ms`.
pub fn node_write(
    mapped: &CdfFile<'_>,
    local: &Path,
    space: &str,
    view: &ViewRef,
    modified_ms: i64,
) -> Result<NodeWrite, NodeError> {
    let id = InstanceId {
        space: space.to_owned(),
        external_id: mapped.external_id.clone(),
    };
    let view = ViewSource::new(&view.space, &view.external_id, &view.version);
    let time = Value::String(iso8601(modified_ms));
    let mut properties = Map::new();
    let mut set = |k: &str, v: Value| properties.insert(k.to_owned(), v);
    set("name", mapped.name.clone().into());
    set("directory", mapped.directory.clone().into());
    set("mimeType", mapped.mime_type.into());
    set("sourceId", local.to_string_lossy().into_owned().into());
    set("sourceCreatedTime", time.clone());
    set("sourceUpdatedTime", time);
    set("sourceContext", mapped.fields.source.clone().into());
    let metadata = &mapped.fields.metadata;
    if view == ViewSource::cognite_file() {
        if !metadata.is_empty() {
            return Err(NodeError::refused(
                &id,
                format!(
                    "the root's metadata has nowhere to go in view {view}: use a view with `extractedData`, such as cdf_extraction_extensions:CogniteExtractorFile/v1"
                ),
            ));
        }
    } else if !metadata.is_empty() || view == extractor_file() {
        let data: Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        set(
            "extractedData",
            if data.is_empty() {
                Value::Null
            } else {
                data.into()
            },
        );
    }
    Ok(NodeWrite {
        id,
        view,
        properties,
    })
}

fn extractor_file() -> ViewSource {
    ViewSource::new("cdf_extraction_extensions", "CogniteExtractorFile", "v1")
}

/// The wait before link try `retry` (1-based) after a not-found: 250 ms doubling up
/// to 8 s, with "equal jitter" (`random` in `[0, 1)`): at least half of each step, so
/// the ten tries span at least ~24 s of propagation delay.
pub fn propagation_delay(retry: u32, random: f64) -> Duration {
    let cap = Duration::from_millis(250)
        .saturating_mul(1 << retry.saturating_sub(1).min(10))
        .min(Duration::from_secs(8));
    cap.mul_f64(0.5 + random.clamp(0.0, 1.0) / 2.0)
}

/// `2025-01-01T00:00:00.000+00:00`, as data modeling writes timestamps (clamped to
/// DMS's years 0001..=9999).
pub fn iso8601(ms: i64) -> String {
    let ms = ms.clamp(-62_135_596_800_000, 253_402_300_799_999);
    let (day, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, mo, d) = civil_from_days(day);
    let (h, mi) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (s, milli) = (in_day / 1000 % 60, in_day % 1000);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}+00:00")
}

/// The proleptic Gregorian date of a day number since 1970-01-01 (H. Hinnant).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::config::FileFields;

    fn mapped(fields: &FileFields) -> CdfFile<'_> {
        CdfFile {
            external_id: "gw:it:/a/r.csv".into(),
            name: "r.csv".into(),
            directory: "/site/a".into(),
            mime_type: "text/csv",
            fields,
            shortened: false,
            escaped: false,
        }
    }

    fn view(space: &str, xid: &str) -> ViewRef {
        ViewRef {
            space: space.into(),
            external_id: xid.into(),
            version: "v1".into(),
        }
    }

    #[test]
    fn a_file_becomes_a_cognitefile_node() {
        let fields = FileFields {
            source: Some("gw01".into()),
            ..FileFields::default()
        };
        let local = Path::new("/data/a/r.csv");
        let n = node_write(
            &mapped(&fields),
            local,
            "edge",
            &ViewRef::default(),
            1_735_689_600_500,
        )
        .expect("node");
        assert_eq!(
            (n.id.space.as_str(), n.id.external_id.as_str()),
            ("edge", "gw:it:/a/r.csv")
        );
        assert_eq!(n.view, ViewSource::cognite_file());
        assert_eq!(
            Value::Object(n.properties),
            json!({
                "name": "r.csv", "directory": "/site/a", "mimeType": "text/csv",
                "sourceId": "/data/a/r.csv", "sourceContext": "gw01",
                "sourceCreatedTime": "2025-01-01T00:00:00.500+00:00",
                "sourceUpdatedTime": "2025-01-01T00:00:00.500+00:00",
            })
        );
    }

    #[test]
    fn metadata_goes_to_extracted_data_and_needs_a_view_that_has_it() {
        let fields = FileFields {
            metadata: BTreeMap::from([("line".to_owned(), "1".to_owned())]),
            ..FileFields::default()
        };
        let local = Path::new("/d/r.csv");
        let err = node_write(&mapped(&fields), local, "edge", &ViewRef::default(), 0)
            .expect_err("no extractedData in CogniteFile");
        assert!(err.to_string().contains("cdf_cdm:CogniteFile/v1"), "{err}");
        let extractor = view("cdf_extraction_extensions", "CogniteExtractorFile");
        let n = node_write(&mapped(&fields), local, "edge", &extractor, 0).expect("node");
        assert_eq!(n.properties["extractedData"], json!({ "line": "1" }));
        assert_eq!(n.properties["sourceContext"], Value::Null);
        let none = FileFields::default();
        let n = node_write(&mapped(&none), local, "edge", &extractor, 0).expect("node");
        assert_eq!(n.properties["extractedData"], Value::Null, "cleared");
        let custom =
            node_write(&mapped(&none), local, "edge", &view("edge", "MyFile"), 0).expect("node");
        assert!(!custom.properties.contains_key("extractedData"));
    }

    #[test]
    fn timestamps_are_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(iso8601(1_709_208_000_123), "2024-02-29T12:00:00.123+00:00");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999+00:00");
        assert_eq!(iso8601(i64::MAX), "9999-12-31T23:59:59.999+00:00");
        assert_eq!(iso8601(i64::MIN), "0001-01-01T00:00:00.000+00:00");
    }

    #[test]
    fn propagation_backoff_is_bounded_and_spans_the_lag() {
        assert_eq!(propagation_delay(1, 0.0), Duration::from_millis(125));
        assert_eq!(propagation_delay(1, 1.0), Duration::from_millis(250));
        assert_eq!(propagation_delay(30, 1.0), Duration::from_secs(8));
        let least: Duration = (1..=PROPAGATION_RETRIES)
            .map(|r| propagation_delay(r, 0.0))
            .sum();
        assert!(least > Duration::from_secs(20), "{least:?}");
        let most: Duration = (1..=PROPAGATION_RETRIES)
            .map(|r| propagation_delay(r, 1.0))
            .sum();
        assert!(most < Duration::from_secs(60), "{most:?}");
    }
}
