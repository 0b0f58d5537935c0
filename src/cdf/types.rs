//! The Files API's request and reply bodies, as serde types (camelCase on the wire).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A data-modeling instance id (`{space, externalId}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceId {
    pub space: String,
    pub external_id: String,
}

/// How to name an existing file in `byids`, `uploadlink`, `multiuploadlink`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Identity {
    Id(i64),
    ExternalId(String),
    InstanceId(InstanceId),
}

/// A label reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelRef {
    pub external_id: String,
}

/// The body of `POST files` and `POST files/initmultipartupload`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileCreate {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub asset_ids: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_set_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_created_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_modified_time: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_categories: Vec<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<LabelRef>,
}

/// A file as CDF returns it (the fields cdf-syncd reads; others are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileObject {
    pub id: i64,
    #[serde(default)]
    pub external_id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub directory: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub uploaded: bool,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub instance_id: Option<InstanceId>,
}

/// A file plus its single-part upload URL (`POST files`, `uploadlink`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SingleUpload {
    #[serde(flatten)]
    pub file: FileObject,
    pub upload_url: String,
}

/// A file plus a multipart session (`initmultipartupload`, `multiuploadlink`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultipartUpload {
    #[serde(flatten)]
    pub file: FileObject,
    pub upload_id: String,
    pub upload_urls: Vec<String>,
}
