//! The views a file node can be written through: `cdf_cdm:CogniteFile/v1`, the
//! extractor extension `cdf_extraction_extensions:CogniteExtractorFile/v1` (adds
//! `extractedData`, a map of strings) and any view the emulator was told implements
//! CogniteFile (`--file-view`, with CogniteFile's properties). Every other view is
//! unknown to the emulator: a write or read through it is a 400 naming the view, as
//! CDF answers for a view that does not exist.

use std::fmt;
use std::str::FromStr;

/// `space:externalId/version`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewId {
    pub space: String,
    pub external_id: String,
    pub version: String,
}

impl ViewId {
    pub fn new(space: &str, external_id: &str, version: &str) -> Self {
        Self {
            space: space.to_owned(),
            external_id: external_id.to_owned(),
            version: version.to_owned(),
        }
    }

    /// `cdf_cdm:CogniteFile/v1`.
    pub fn cognite_file() -> Self {
        Self::new("cdf_cdm", "CogniteFile", "v1")
    }

    /// `cdf_extraction_extensions:CogniteExtractorFile/v1`.
    pub fn cognite_extractor_file() -> Self {
        Self::new("cdf_extraction_extensions", "CogniteExtractorFile", "v1")
    }
}

impl fmt::Display for ViewId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.space, self.external_id, self.version)
    }
}

impl FromStr for ViewId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parsed = s.split_once(':').and_then(|(space, rest)| {
            let (xid, version) = rest.split_once('/')?;
            let ok = [space, xid, version]
                .iter()
                .all(|p| !p.is_empty() && !p.contains([':', '/']));
            ok.then(|| Self::new(space, xid, version))
        });
        parsed.ok_or_else(|| format!("{s:?} is not a view: expected SPACE:EXTERNAL_ID/VERSION"))
    }
}

/// What a known view adds to CogniteFile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileView {
    CogniteFile,
    /// CogniteExtractorFile: plus `extractedData`.
    ExtractorFile,
    /// Declared with `--file-view`: CogniteFile's properties.
    Declared,
}

/// CogniteFile's properties, writable and read-only.
const COGNITE_FILE_PROPERTIES: [&str; 17] = [
    "name",
    "description",
    "tags",
    "aliases",
    "sourceId",
    "sourceContext",
    "source",
    "sourceCreatedTime",
    "sourceUpdatedTime",
    "sourceCreatedUser",
    "sourceUpdatedUser",
    "assets",
    "mimeType",
    "directory",
    "category",
    "isUploaded",
    "uploadedTime",
];

impl FileView {
    /// The kind of `view`, or `None` when the emulator does not know it as a file view.
    pub(crate) fn of(view: &ViewId, declared: &[ViewId]) -> Option<Self> {
        if *view == ViewId::cognite_file() {
            Some(Self::CogniteFile)
        } else if *view == ViewId::cognite_extractor_file() {
            Some(Self::ExtractorFile)
        } else if declared.contains(view) {
            Some(Self::Declared)
        } else {
            None
        }
    }

    /// Whether the view has this property.
    pub(crate) fn has_property(self, key: &str) -> bool {
        COGNITE_FILE_PROPERTIES.contains(&key)
            || (self == Self::ExtractorFile && key == "extractedData")
    }
}
