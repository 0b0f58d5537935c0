//! CDF's field and upload limits (CDF-API.md §1.1, §0 item 6), in one place for
//! validation, mapping and the uploader.
//!
//! Text limits are applied to UTF-8 *bytes*, which is never more permissive than a
//! count of characters.

/// `externalId`.
pub const EXTERNAL_ID_MAX: usize = 255;
/// `name`.
pub const NAME_MAX: usize = 256;
/// `directory` (classic: must also be an absolute unix path).
pub const DIRECTORY_MAX: usize = 512;
/// `source`.
pub const SOURCE_MAX: usize = 128;
/// `mimeType`.
pub const MIME_TYPE_MAX: usize = 256;
/// One metadata key.
pub const METADATA_KEY_MAX: usize = 128;
/// One metadata value.
pub const METADATA_VALUE_MAX: usize = 10_240;
/// Metadata pairs per file.
pub const METADATA_PAIRS_MAX: usize = 256;
/// All metadata keys and values together.
pub const METADATA_TOTAL_MAX: usize = 10_240;
/// Labels per file.
pub const LABELS_MAX: usize = 10;
/// Security categories per file.
pub const SECURITY_CATEGORIES_MAX: usize = 100;
/// Asset ids per file.
pub const ASSET_IDS_MAX: usize = 1000;
/// Largest internal id (2^53 - 1).
pub const ID_MAX: i64 = 9_007_199_254_740_991;

const MIB: u64 = 1024 * 1024;
/// Every multipart part but the last is at least this large.
pub const PART_SIZE_MIN: u64 = 5 * MIB;
/// No part is larger than this.
pub const PART_SIZE_MAX: u64 = 4000 * MIB;
/// Parts per multipart upload.
pub const PARTS_MAX: u64 = 250;
/// The largest file CDF accepts: 250 parts of 4000 MiB (976.6 GiB).
pub const FILE_SIZE_MAX: u64 = PARTS_MAX * PART_SIZE_MAX;
/// The largest single-part upload (5,000,000,000 bytes).
pub const SINGLE_PART_MAX: u64 = 5_000_000_000;
