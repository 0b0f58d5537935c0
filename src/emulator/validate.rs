//! Request parsing and the Files API field limits, shared by every API handler.
//!
//! CDF answers a malformed body, an unknown field or a value past a documented limit
//! with a 400 in its own error format; so does the emulator. [`CdfJson`] replaces
//! axum's `Json` (whose rejections are plain text), [`QueryParams`] parses the query
//! string, [`Identifier`] is the `{id}|{externalId}|{instanceId}` reference, and the
//! `check_*` functions enforce the limits of CDF-API.md §1.1 on a create body
//! ([`check_create`]) and on a file after an update ([`check_record`]).

use std::collections::{BTreeMap, HashSet};

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::MAX_PARTS;
use super::error::ApiError;
use super::state::{FileRecord, InstanceId};

/// Largest CDF internal id (and dataSetId, assetId): 2^53 - 1.
pub(crate) const MAX_ID: i64 = 9_007_199_254_740_991;
/// Most items in one `byids`, `update`, `delete`, `models/instances` or `extpipes/runs`.
pub(crate) const MAX_ITEMS: usize = 1000;

/// A JSON body; anything unparsable, including unknown fields, is a CDF-style 400.
pub(crate) struct CdfJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CdfJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("Cannot read the request body: {e}")))?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))
    }
}

/// Decodes `application/x-www-form-urlencoded` text (query strings, token forms).
pub(crate) fn parse_urlencoded(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(pair), String::new()),
        })
        .collect()
}

/// `+` is a space, `%XX` a byte; malformed escapes stay as they are.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = match (b, bytes.get(i + 1..i + 3)) {
            (b'%', Some(&[hi, lo])) => hex(hi).zip(hex(lo)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match (b, escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The query string of a request, decoded; extraction never fails.
pub(crate) struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parse_urlencoded(parts.uri.query().unwrap_or(""))))
    }
}

impl QueryParams {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean query parameter (`true`/`false`, any case); absent is false.
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "Query parameter {key}: expected true or false, got {v:?}"
            ))),
        }
    }

    /// The required `parts` parameter of the multipart endpoints: 1..=250.
    pub fn parts(&self) -> Result<usize, ApiError> {
        let raw = self
            .get("parts")
            .ok_or_else(|| ApiError::bad_request("Query parameter parts is required"))?;
        match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_PARTS).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "Query parameter parts must be between 1 and {MAX_PARTS}, got {raw:?}"
            ))),
        }
    }
}

/// A reference to one file: `{"id"}`, `{"externalId"}` or `{"instanceId"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "RawIdentifier")]
pub(crate) enum Identifier {
    Id(i64),
    ExternalId(String),
    InstanceId(InstanceId),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawIdentifier {
    id: Option<i64>,
    external_id: Option<String>,
    instance_id: Option<InstanceId>,
}

impl TryFrom<RawIdentifier> for Identifier {
    type Error = String;

    fn try_from(raw: RawIdentifier) -> Result<Self, String> {
        Identifier::from_parts(raw.id, raw.external_id, raw.instance_id)
    }
}

impl Identifier {
    /// Exactly one of the three must be given; an id must be 1..=2^53-1.
    pub fn from_parts(
        id: Option<i64>,
        external_id: Option<String>,
        instance_id: Option<InstanceId>,
    ) -> Result<Self, String> {
        match (id, external_id, instance_id) {
            (Some(id), None, None) if (1..=MAX_ID).contains(&id) => Ok(Self::Id(id)),
            (Some(id), None, None) => Err(format!("id {id} is out of range 1..{MAX_ID}")),
            (None, Some(x), None) => Ok(Self::ExternalId(x)),
            (None, None, Some(i)) => Ok(Self::InstanceId(i)),
            _ => Err("exactly one of id, externalId and instanceId must be given".to_owned()),
        }
    }

    /// The identifier as CDF echoes it in `missing`, `duplicated` and link replies.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Id(id) => json!({ "id": id }),
            Self::ExternalId(x) => json!({ "externalId": x }),
            Self::InstanceId(i) => json!({ "instanceId": i }),
        }
    }
}

/// Rejects an item list that is empty or longer than `max`.
pub(crate) fn check_item_count(len: usize, max: usize) -> Result<(), ApiError> {
    if (1..=max).contains(&len) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "items: size must be between 1 and {max}, got {len}"
        )))
    }
}

/// A request naming the same file twice is a 400 with `duplicated`.
pub(crate) fn check_unique(items: &[Identifier]) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    let dups: Vec<Value> = items
        .iter()
        .filter(|i| !seen.insert(*i))
        .map(Identifier::to_json)
        .collect();
    if dups.is_empty() {
        return Ok(());
    }
    Err(ApiError {
        duplicated: dups,
        ..ApiError::bad_request("Duplicate identifiers in the request")
    })
}

/// `{"externalId": "..."}`, a label reference.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LabelRef {
    pub external_id: String,
}

/// The writable file fields (body of `POST files` and `initmultipartupload`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct FileFields {
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub directory: Option<String>,
    pub source: Option<String>,
    pub mime_type: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub asset_ids: Option<Vec<i64>>,
    pub data_set_id: Option<i64>,
    pub source_created_time: Option<i64>,
    pub source_modified_time: Option<i64>,
    pub security_categories: Option<Vec<i64>>,
    pub labels: Option<Vec<LabelRef>>,
    pub geo_location: Option<Value>,
    /// Read-only; CDF accepts it in a body and ignores it.
    #[allow(dead_code)]
    pub uploaded: Option<bool>,
}

impl FileFields {
    pub fn label_ids(&self) -> Option<Vec<String>> {
        self.labels
            .as_ref()
            .map(|l| l.iter().map(|l| l.external_id.clone()).collect())
    }
}

/// Every limit on a create body (CDF-API.md §1.1).
pub(crate) fn check_create(f: &FileFields) -> Result<(), ApiError> {
    let name = f
        .name
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("name: must be given"))?;
    check_len("name", name, 1, 256)?;
    opt(f.external_id.as_deref(), |x| {
        check_len("externalId", x, 1, 255)
    })?;
    opt(f.directory.as_deref(), check_directory)?;
    opt(f.source.as_deref(), |s| check_len("source", s, 0, 128))?;
    opt(f.mime_type.as_deref(), |m| check_len("mimeType", m, 0, 256))?;
    opt(f.metadata.as_ref(), check_metadata)?;
    opt(f.asset_ids.as_deref(), |ids| {
        check_ids("assetIds", ids, 1, 1000)
    })?;
    opt(f.data_set_id, |id| check_id("dataSetId", id))?;
    opt(f.source_created_time, |t| {
        check_time("sourceCreatedTime", t)
    })?;
    opt(f.source_modified_time, |t| {
        check_time("sourceModifiedTime", t)
    })?;
    opt(f.security_categories.as_deref(), |ids| {
        check_ids("securityCategories", ids, 0, 100)
    })?;
    opt(f.label_ids().as_deref(), check_labels)?;
    opt(f.geo_location.as_ref(), check_geo_location)
}

/// Every limit on a file as it would be stored (after `files/update`). Classic files
/// need an absolute `directory`; a CogniteFile's directory is free text.
pub(crate) fn check_record(r: &FileRecord) -> Result<(), ApiError> {
    opt(r.external_id.as_deref(), |x| {
        check_len("externalId", x, 1, 255)
    })?;
    if r.instance_id.is_none() {
        opt(r.directory.as_deref(), check_directory)?;
    }
    opt(r.source.as_deref(), |s| check_len("source", s, 0, 128))?;
    opt(r.mime_type.as_deref(), |m| check_len("mimeType", m, 0, 256))?;
    check_metadata(&r.metadata)?;
    check_ids("assetIds", &r.asset_ids, 0, 1000)?;
    opt(r.data_set_id, |id| check_id("dataSetId", id))?;
    opt(r.source_created_time, |t| {
        check_time("sourceCreatedTime", t)
    })?;
    opt(r.source_modified_time, |t| {
        check_time("sourceModifiedTime", t)
    })?;
    check_ids("securityCategories", &r.security_categories, 0, 100)?;
    check_labels(&r.labels)?;
    opt(r.geo_location.as_ref(), check_geo_location)
}

fn opt<T>(value: Option<T>, check: impl FnOnce(T) -> Result<(), ApiError>) -> Result<(), ApiError> {
    value.map_or(Ok(()), check)
}

/// A length in characters, as CDF counts string limits.
pub(crate) fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if (min..=max).contains(&len) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{field}: size must be between {min} and {max}, got {len}"
        )))
    }
}

fn check_directory(dir: &str) -> Result<(), ApiError> {
    check_len("directory", dir, 1, 512)?;
    if dir.starts_with('/') {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "directory: must be an absolute, unix-style path, got {dir:?}"
        )))
    }
}

/// Key <= 128 bytes, value <= 10240 bytes, <= 256 pairs, keys + values <= 10240 bytes.
pub(crate) fn check_metadata(m: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if m.len() > 256 {
        return Err(ApiError::bad_request(format!(
            "metadata: at most 256 key-value pairs, got {}",
            m.len()
        )));
    }
    let mut total = 0;
    for (k, v) in m {
        if k.len() > 128 {
            return Err(ApiError::bad_request(format!(
                "metadata: key {k:?} is {} bytes, the limit is 128",
                k.len()
            )));
        }
        if v.len() > 10240 {
            return Err(ApiError::bad_request(format!(
                "metadata: the value of {k:?} is {} bytes, the limit is 10240",
                v.len()
            )));
        }
        total += k.len() + v.len();
    }
    if total > 10240 {
        return Err(ApiError::bad_request(format!(
            "metadata: total size is {total} bytes, the limit is 10240"
        )));
    }
    Ok(())
}

pub(crate) fn check_ids(field: &str, ids: &[i64], min: usize, max: usize) -> Result<(), ApiError> {
    if !(min..=max).contains(&ids.len()) {
        return Err(ApiError::bad_request(format!(
            "{field}: size must be between {min} and {max}, got {}",
            ids.len()
        )));
    }
    ids.iter().try_for_each(|&id| check_id(field, id))
}

pub(crate) fn check_id(field: &str, id: i64) -> Result<(), ApiError> {
    if (1..=MAX_ID).contains(&id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{field}: {id} is out of range 1..{MAX_ID}"
        )))
    }
}

fn check_time(field: &str, ms: i64) -> Result<(), ApiError> {
    if ms >= 0 {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{field}: must be >= 0, got {ms}"
        )))
    }
}

/// At most 10 labels, unique, each externalId 1..=255 characters.
pub(crate) fn check_labels(labels: &[String]) -> Result<(), ApiError> {
    if labels.len() > 10 {
        return Err(ApiError::bad_request(format!(
            "labels: at most 10 labels, got {}",
            labels.len()
        )));
    }
    let mut seen = HashSet::new();
    for label in labels {
        check_len("labels.externalId", label, 1, 255)?;
        if !seen.insert(label) {
            return Err(ApiError::bad_request(format!(
                "labels: {label:?} is given more than once; labels must be unique"
            )));
        }
    }
    Ok(())
}

/// A GeoJSON Feature: `{"type":"Feature","geometry":{"type","coordinates"},...}`.
fn check_geo_location(geo: &Value) -> Result<(), ApiError> {
    let ok = geo.get("type").and_then(Value::as_str) == Some("Feature")
        && geo.get("geometry").is_some_and(|g| {
            g.get("type").is_some_and(Value::is_string) && g.get("coordinates").is_some()
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "geoLocation: must be a GeoJSON Feature with a geometry (type, coordinates)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_forms_decode() {
        let pairs = parse_urlencoded("grant_type=client_credentials&scope=a+b%2Fc&x&bad=%zz%4");
        let want = [
            ("grant_type", "client_credentials"),
            ("scope", "a b/c"),
            ("x", ""),
            ("bad", "%zz%4"),
        ];
        let got: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[test]
    fn identifiers_need_exactly_one_key() {
        let parse = |v: Value| serde_json::from_value::<Identifier>(v);
        assert_eq!(parse(json!({ "id": 5 })).ok(), Some(Identifier::Id(5)));
        assert!(parse(json!({ "id": 0 })).is_err());
        assert!(parse(json!({ "id": MAX_ID + 1 })).is_err());
        assert!(parse(json!({ "id": 5, "externalId": "x" })).is_err());
        assert!(parse(json!({})).is_err());
        assert!(parse(json!({ "externalid": "x" })).is_err());
        let instance = parse(json!({ "instanceId": { "space": "s", "externalId": "x" } }));
        assert!(matches!(instance, Ok(Identifier::InstanceId(_))));
    }

    #[test]
    fn record_checks_allow_a_free_text_directory_only_for_cognitefiles() {
        let mut r = FileRecord {
            directory: Some("relative".into()),
            ..FileRecord::default()
        };
        assert!(check_record(&r).is_err());
        r.instance_id = Some(InstanceId {
            space: "s".into(),
            external_id: "x".into(),
        });
        assert!(check_record(&r).is_ok());
    }
}
