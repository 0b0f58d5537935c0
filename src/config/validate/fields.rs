//! Validation of a root's static CDF fields against CDF's limits (CDF-API.md §1.1):
//! data set, source, labels, metadata, security categories and asset ids.
//!
//! Metadata keys starting with `cdf-syncd.` are reserved for the daemon's own entries
//! (`cdf-syncd.sha256`, `cdf-syncd.deleted`), and [`RESERVED_METADATA_BYTES`] and
//! [`RESERVED_METADATA_PAIRS`] of CDF's budget are kept free for them.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use super::text;
use crate::config::error::Report;
use crate::config::limits;
use crate::config::raw::{List, Map, RawRoot, Str};
use crate::config::settings::{DataSetRef, FileFields};

/// Metadata bytes kept free for the daemon's own `cdf-syncd.*` entries.
pub const RESERVED_METADATA_BYTES: usize = 256;
/// Metadata pairs kept free for the daemon's own `cdf-syncd.*` entries.
pub const RESERVED_METADATA_PAIRS: usize = 2;

pub(super) fn fields(r: &mut Report, key: &str, raw: &RawRoot, is_dm: bool) -> Option<FileFields> {
    if is_dm {
        not_for_dm(r, key, raw);
    }
    let data_set = data_set(r, key, raw);
    let source = raw
        .source
        .as_ref()
        .map(|s| text(r, s, &format!("{key}.source"), limits::SOURCE_MAX));
    let labels = raw
        .labels
        .as_ref()
        .map_or(Some(Vec::new()), |l| labels(r, &format!("{key}.labels"), l));
    let metadata = raw.metadata.as_ref().map_or(Some(BTreeMap::new()), |m| {
        metadata(r, &format!("{key}.metadata"), m)
    });
    let security_categories = raw
        .security_categories
        .as_ref()
        .map_or(Some(Vec::new()), |l| {
            ids(
                r,
                &format!("{key}.security_categories"),
                l,
                limits::SECURITY_CATEGORIES_MAX,
            )
        });
    let asset_ids = raw.asset_ids.as_ref().map_or(Some(Vec::new()), |l| {
        ids(r, &format!("{key}.asset_ids"), l, limits::ASSET_IDS_MAX)
    });
    Some(FileFields {
        data_set: data_set?,
        source: source.map_or(Some(None), |v| v.map(Some))?,
        labels: labels?,
        metadata: metadata?,
        security_categories: security_categories?,
        asset_ids: asset_ids?,
    })
}

/// CogniteFile nodes have no data set, labels, security categories or numeric asset ids.
fn not_for_dm(r: &mut Report, key: &str, raw: &RawRoot) {
    let msg = "is not supported with target = \"data-modeling\": a CogniteFile node has no such field (access is governed by the space)";
    let spans = [
        ("data_set_id", raw.data_set_id.as_ref().map(Spanned::span)),
        (
            "data_set_external_id",
            raw.data_set_external_id.as_ref().map(Spanned::span),
        ),
        ("labels", raw.labels.as_ref().map(Spanned::span)),
        (
            "security_categories",
            raw.security_categories.as_ref().map(Spanned::span),
        ),
        ("asset_ids", raw.asset_ids.as_ref().map(Spanned::span)),
    ];
    for (name, span) in spans {
        if let Some(span) = span {
            r.at(span, format!("{key}.{name}"), msg);
        }
    }
}

fn data_set(r: &mut Report, key: &str, raw: &RawRoot) -> Option<Option<DataSetRef>> {
    match (&raw.data_set_id, &raw.data_set_external_id) {
        (Some(_), Some(x)) => {
            r.at(
                x.span(),
                format!("{key}.data_set_external_id"),
                "data_set_id and data_set_external_id are both set: give one of them",
            );
            None
        }
        (Some(id), None) => {
            let n = *id.get_ref();
            if (1..=limits::ID_MAX).contains(&n) {
                Some(Some(DataSetRef::Id(n)))
            } else {
                r.at(
                    id.span(),
                    format!("{key}.data_set_id"),
                    format!("{n} is not a data set id: ids are 1..={}", limits::ID_MAX),
                );
                None
            }
        }
        (None, Some(x)) => text(
            r,
            x,
            &format!("{key}.data_set_external_id"),
            limits::EXTERNAL_ID_MAX,
        )
        .map(|x| Some(DataSetRef::ExternalId(x))),
        (None, None) => Some(None),
    }
}

fn labels(r: &mut Report, key: &str, list: &List<String>) -> Option<Vec<String>> {
    let items = list.get_ref();
    if items.len() > limits::LABELS_MAX {
        r.at(
            list.span(),
            key,
            format!(
                "{} labels given; CDF allows at most {}",
                items.len(),
                limits::LABELS_MAX
            ),
        );
        return None;
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for item in items {
        let label = text(r, item, key, limits::EXTERNAL_ID_MAX)?;
        if !seen.insert(label.clone()) {
            r.at(
                item.span(),
                key,
                format!("label `{label}` is listed twice; labels must be unique"),
            );
            return None;
        }
        out.push(label);
    }
    Some(out)
}

fn metadata(r: &mut Report, key: &str, map: &Map) -> Option<BTreeMap<String, String>> {
    let entries = map.get_ref();
    let pairs_max = limits::METADATA_PAIRS_MAX - RESERVED_METADATA_PAIRS;
    let total_max = limits::METADATA_TOTAL_MAX - RESERVED_METADATA_BYTES;
    let mut ok = true;
    if entries.len() > pairs_max {
        r.at(map.span(), key, format!("{} pairs given; at most {pairs_max} (CDF allows {}, {RESERVED_METADATA_PAIRS} are kept for cdf-syncd)", entries.len(), limits::METADATA_PAIRS_MAX));
        ok = false;
    }
    let mut total = 0;
    for (k, v) in entries {
        ok &= metadata_pair(r, key, k, v);
        total += k.get_ref().len() + v.get_ref().len();
    }
    if total > total_max {
        let msg = format!(
            "keys and values add up to {total} bytes; at most {total_max} (CDF allows {} in total, {RESERVED_METADATA_BYTES} are kept for cdf-syncd)",
            limits::METADATA_TOTAL_MAX
        );
        r.at(map.span(), key, msg);
        ok = false;
    }
    ok.then(|| {
        entries
            .iter()
            .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
            .collect()
    })
}

fn metadata_pair(r: &mut Report, key: &str, k: &Str, v: &Str) -> bool {
    let name = k.get_ref();
    let full = format!("{key}.{name}");
    let problem = if name.is_empty() {
        Some("empty metadata key".to_owned())
    } else if name.len() > limits::METADATA_KEY_MAX {
        Some(format!(
            "the key is {} bytes; CDF allows at most {}",
            name.len(),
            limits::METADATA_KEY_MAX
        ))
    } else if name.starts_with("cdf-syncd.") {
        Some("keys starting with `cdf-syncd.` are reserved for the daemon".to_owned())
    } else {
        None
    };
    if let Some(p) = problem {
        r.at(k.span(), full, p);
        return false;
    }
    if v.get_ref().len() > limits::METADATA_VALUE_MAX {
        r.at(
            v.span(),
            full,
            format!(
                "the value is {} bytes; CDF allows at most {}",
                v.get_ref().len(),
                limits::METADATA_VALUE_MAX
            ),
        );
        return false;
    }
    true
}

/// Security categories or asset ids: at most `max`, each 1..=2^53-1, no repeats.
fn ids(r: &mut Report, key: &str, list: &List<i64>, max: usize) -> Option<Vec<i64>> {
    let items = list.get_ref();
    if items.len() > max {
        r.at(
            list.span(),
            key,
            format!("{} ids given; CDF allows at most {max}", items.len()),
        );
        return None;
    }
    let mut seen = BTreeSet::new();
    let mut ok = true;
    for item in items {
        let n = *item.get_ref();
        if !(1..=limits::ID_MAX).contains(&n) {
            r.at(
                item.span(),
                key,
                format!("{n} is not an id: ids are 1..={}", limits::ID_MAX),
            );
            ok = false;
        } else if !seen.insert(n) {
            r.at(item.span(), key, format!("{n} is listed twice"));
            ok = false;
        }
    }
    ok.then(|| items.iter().map(|i| *i.get_ref()).collect())
}
