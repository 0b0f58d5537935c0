//! The CDF side of uploading one file: opening and renewing sessions and sending
//! content (`session`), what follows a confirmed upload (`finish`), and the create
//! body for a mapped file. The order of steps and the checkpoints are the daemon
//! worker's (`daemon::worker`): files that fit in one part (and empty files) go
//! single-part (`POST files` + one PUT), larger ones multipart. With the
//! data-modeling target the file is a CogniteFile node (`node`) and its content goes
//! through the node's `instanceId` (`session::open_node`).

pub mod finish;
pub mod node;
pub mod session;

use crate::cdf::FileCreate;

/// The `POST files` body for a mapped local file. `modified_ms` is the file's mtime,
/// sent as `sourceCreatedTime`/`sourceModifiedTime`. `data_set_id` is the root's data
/// set, resolved once by the caller when it was given by externalId.
pub fn file_create(
    mapped: &crate::mapping::CdfFile<'_>,
    modified_ms: Option<i64>,
    data_set_id: Option<i64>,
) -> FileCreate {
    let fields = mapped.fields;
    FileCreate {
        name: mapped.name.clone(),
        external_id: Some(mapped.external_id.clone()),
        directory: Some(mapped.directory.clone()),
        source: fields.source.clone(),
        mime_type: Some(mapped.mime_type.to_owned()),
        metadata: fields.metadata.clone(),
        asset_ids: fields.asset_ids.clone(),
        data_set_id,
        source_created_time: modified_ms,
        source_modified_time: modified_ms,
        security_categories: fields.security_categories.clone(),
        labels: fields
            .labels
            .iter()
            .map(|l| crate::cdf::LabelRef {
                external_id: l.clone(),
            })
            .collect(),
    }
}
