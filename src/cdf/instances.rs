//! Data-modeling calls for the data-modeling target (CDF-API.md §6): upserting file
//! nodes through CogniteFile (or a view that implements it), and asking whether a node
//! is a file node.
//!
//! `POST models/instances` is an idempotent upsert, so it runs under the quick retry
//! tier like every other call: a lost reply is harmless.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{CdfClient, CdfError, InstanceId};

/// A view reference (`{"type":"view","space","externalId","version"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewSource {
    #[serde(rename = "type")]
    kind: &'static str,
    pub space: String,
    pub external_id: String,
    pub version: String,
}

impl ViewSource {
    pub fn new(space: &str, external_id: &str, version: &str) -> Self {
        Self {
            kind: "view",
            space: space.to_owned(),
            external_id: external_id.to_owned(),
            version: version.to_owned(),
        }
    }

    /// `cdf_cdm:CogniteFile/v1`: the view every file node must implement.
    pub fn cognite_file() -> Self {
        Self::new("cdf_cdm", "CogniteFile", "v1")
    }
}

impl std::fmt::Display for ViewSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.space, self.external_id, self.version)
    }
}

/// One node write: properties through one view.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeWrite {
    pub id: InstanceId,
    pub view: ViewSource,
    pub properties: Map<String, Value>,
}

impl NodeWrite {
    fn to_json(&self) -> Value {
        json!({
            "instanceType": "node",
            "space": self.id.space,
            "externalId": self.id.external_id,
            "sources": [{ "source": self.view, "properties": self.properties }],
        })
    }
}

impl CdfClient {
    /// `POST models/instances`: upserts the nodes (properties not sent are kept).
    pub async fn apply_nodes(&self, nodes: &[NodeWrite]) -> Result<(), CdfError> {
        let body = json!({
            "items": nodes.iter().map(NodeWrite::to_json).collect::<Vec<_>>(),
            "autoCreateDirectRelations": true,
            "skipOnVersionConflict": false,
            "replace": false,
        });
        self.call_items::<Value>("models/instances", &body)
            .await
            .map(drop)
    }

    /// `POST models/instances/delete` of nodes (their files go with them); deleting a
    /// node that does not exist is not an error.
    pub async fn delete_nodes(&self, ids: &[InstanceId]) -> Result<(), CdfError> {
        let items: Vec<Value> = ids
            .iter()
            .map(|id| json!({ "instanceType": "node", "space": id.space, "externalId": id.external_id }))
            .collect();
        self.call_items::<Value>("models/instances/delete", &json!({ "items": items }))
            .await
            .map(drop)
    }

    /// Whether the node exists as a file node, i.e. with data in CogniteFile
    /// (`models/instances/byids` is immediately consistent, unlike the file service).
    pub async fn is_file_node(&self, id: &InstanceId) -> Result<bool, CdfError> {
        let body = json!({
            "items": [{ "instanceType": "node", "space": id.space, "externalId": id.external_id }],
            "sources": [{ "source": ViewSource::cognite_file() }],
        });
        let found: Vec<Value> = self.call_items("models/instances/byids", &body).await?;
        Ok(found.iter().any(|n| {
            n.get("externalId").and_then(Value::as_str) == Some(id.external_id.as_str())
                && n.pointer("/properties/cdf_cdm/CogniteFile~1v1").is_some()
        }))
    }
}

impl CdfError {
    /// CDF's "not found" for an identifier: a 404, or a 400/422 with `missing`.
    pub fn is_not_found(&self) -> bool {
        self.api().is_some_and(|e| {
            e.status == 404 || (matches!(e.status, 400 | 422) && !e.missing.is_empty())
        })
    }
}
