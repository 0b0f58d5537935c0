//! A minimal data-modeling surface for files: CogniteFile nodes.
//!
//! `POST models/instances` writes nodes through the view `cdf_cdm:CogniteFile/v1` or a
//! view that implements it (`views`: CogniteExtractorFile, and views declared with
//! `--file-view`; any other is a 400) and keeps one file per file node,
//! with that `instanceId`, for `uploadlink`/`multiuploadlink`/`downloadlink`. A new
//! file node stays invisible to the Files API for `--dm-propagation-lag`, as in CDF.
//! `models/instances/byids` (immediately consistent, as in CDF) and
//! `models/instances/delete` complete the surface the SDKs use.
//!
//! Properties are checked against the view: unknown or read-only ones (`isUploaded`,
//! `uploadedTime`) are a 400, times must be ISO-8601 strings. The file takes `name`
//! (empty when the node has none; inferred), `directory` (free text), `mimeType`,
//! `sourceCreatedTime` and `sourceUpdatedTime` (as `sourceModifiedTime`). Spaces are
//! not modelled: any valid, non-system space id is accepted (CDF wants it created).
//!
//! `apply` writes nodes and their files; `time` converts DMS timestamps; `views` knows
//! the file views and their properties.

mod apply;
mod time;
mod views;

use views::FileView;
pub use views::ViewId;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State as AxState;
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::files::remove_files;
use super::state::{InstanceId, State, lock, now_ms};
use super::validate::{CdfJson, MAX_ITEMS, check_item_count};
use time::format_timestamp;

/// A node as stored: its version and the CogniteFile properties written to it.
#[derive(Debug, Clone)]
pub(crate) struct NodeRecord {
    pub version: i64,
    pub created_time: i64,
    pub last_updated_time: i64,
    /// `None`: the node has no CogniteFile data, so it is not a file.
    pub file_props: Option<Map<String, Value>>,
}

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/models/instances", post(apply::apply))
        .route("/models/instances/byids", post(by_ids))
        .route("/models/instances/delete", post(delete))
}

/// `{"type":"view","space","externalId","version"}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ViewRef {
    #[serde(rename = "type")]
    kind: String,
    space: String,
    external_id: String,
    version: Option<String>,
}

impl ViewRef {
    /// The view as an id, and what kind of file view it is; a view the emulator does
    /// not know as CogniteFile or an implementation of it is a 400 naming it.
    pub(super) fn check(&self, declared: &[ViewId]) -> Result<(ViewId, FileView), ApiError> {
        let id = ViewId::new(
            &self.space,
            &self.external_id,
            self.version.as_deref().unwrap_or_default(),
        );
        if self.kind == "view"
            && let Some(kind) = FileView::of(&id, declared)
        {
            return Ok((id, kind));
        }
        Err(ApiError::bad_request(format!(
            "Source {} {id} is not supported: it is not cdf_cdm:CogniteFile/v1 or a view that implements it (the emulator knows CogniteFile, {} and the views declared with --file-view)",
            self.kind,
            ViewId::cognite_extractor_file()
        )))
    }
}

/// `{"instanceType":"node","space","externalId"}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeRef {
    instance_type: String,
    space: String,
    external_id: String,
}

impl NodeRef {
    fn id(&self) -> Result<InstanceId, ApiError> {
        if self.instance_type != "node" {
            return Err(ApiError::bad_request(format!(
                "instanceType {:?} is not supported: the emulator stores nodes only",
                self.instance_type
            )));
        }
        Ok(InstanceId {
            space: self.space.clone(),
            external_id: self.external_id.clone(),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSelector {
    source: ViewRef,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ByIdsBody {
    items: Vec<NodeRef>,
    sources: Option<Vec<SourceSelector>>,
    #[serde(rename = "includeTyping")]
    _include_typing: Option<bool>,
}

/// `POST models/instances/byids`: the nodes that exist (unknown ones are left out).
/// With the CogniteFile view as source, only file nodes, with their properties.
async fn by_ids(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<ByIdsBody>,
) -> Result<Json<Value>, ApiError> {
    check_item_count(body.items.len(), MAX_ITEMS)?;
    let sources = body
        .sources
        .unwrap_or_default()
        .iter()
        .map(|s| s.source.check(&state.config.file_views))
        .collect::<Result<Vec<_>, _>>()?;
    let ids = body
        .items
        .iter()
        .map(NodeRef::id)
        .collect::<Result<Vec<_>, _>>()?;
    let found: Vec<(InstanceId, NodeRecord)> = {
        let nodes = lock(&state.nodes);
        ids.into_iter()
            .filter_map(|id| nodes.get(&id).cloned().map(|n| (id, n)))
            .filter(|(_, n)| sources.is_empty() || n.file_props.is_some())
            .collect()
    };
    let items: Vec<Value> = found
        .into_iter()
        .map(|(id, node)| node_json(&state, &id, &node, &sources))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// A node as `byids` returns it, with its properties under each requested view
/// (only the properties that view has).
fn node_json(
    state: &State,
    id: &InstanceId,
    node: &NodeRecord,
    sources: &[(ViewId, FileView)],
) -> Value {
    let mut properties = Map::new();
    if let (false, Some(props)) = (sources.is_empty(), &node.file_props) {
        let mut props = props.clone();
        let now = now_ms();
        let file = {
            let files = lock(&state.files);
            let fid = files.by_instance_id.get(id).copied();
            fid.and_then(|fid| files.by_id.get(&fid).cloned())
        };
        let uploaded = file.as_ref().is_some_and(|f| f.uploaded(now));
        let uploaded_time = file.and_then(|f| f.uploaded_at.filter(|_| uploaded));
        props.insert("isUploaded".into(), uploaded.into());
        props.insert(
            "uploadedTime".into(),
            uploaded_time.map(format_timestamp).into(),
        );
        for (view, kind) in sources {
            let own: Map<String, Value> = props
                .iter()
                .filter(|(k, _)| kind.has_property(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let in_space = properties
                .entry(view.space.clone())
                .or_insert_with(|| json!({}));
            if let Some(in_space) = in_space.as_object_mut() {
                in_space.insert(
                    format!("{}/{}", view.external_id, view.version),
                    Value::Object(own),
                );
            }
        }
    }
    json!({
        "instanceType": "node",
        "space": id.space,
        "externalId": id.external_id,
        "version": node.version,
        "createdTime": node.created_time,
        "lastUpdatedTime": node.last_updated_time,
        "properties": properties,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    items: Vec<NodeRef>,
}

/// `POST models/instances/delete`: removes the nodes and their files (content too);
/// unknown nodes are fine, as in DMS.
async fn delete(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<DeleteBody>,
) -> Result<Json<Value>, ApiError> {
    check_item_count(body.items.len(), MAX_ITEMS)?;
    let ids = body
        .items
        .iter()
        .map(NodeRef::id)
        .collect::<Result<Vec<_>, _>>()?;
    {
        let mut nodes = lock(&state.nodes);
        ids.iter().for_each(|id| {
            nodes.remove(id);
        });
    }
    let file_ids: Vec<i64> = {
        let files = lock(&state.files);
        ids.iter()
            .filter_map(|id| files.by_instance_id.get(id).copied())
            .collect()
    };
    remove_files(&state, &file_ids);
    {
        let mut visible = lock(&state.instance_visible_at);
        ids.iter().for_each(|id| {
            visible.remove(id);
        });
    }
    let items: Vec<Value> = ids
        .iter()
        .map(
            |id| json!({ "instanceType": "node", "space": id.space, "externalId": id.external_id }),
        )
        .collect();
    Ok(Json(json!({ "items": items })))
}
