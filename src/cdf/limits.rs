//! CDF's upload limits and the choice of part size.
//!
//! Multipart: 1..=250 parts, every part but the last at least 5 MiB, every part at most
//! 4000 MiB, so at most 250 x 4000 MiB = 1,048,576,000,000 bytes (the figure the Python
//! SDK enforces, below the "1 TiB" the docs round to).

/// Smallest allowed non-last part.
pub const MIN_PART: u64 = 5 * 1024 * 1024;
/// Largest allowed part.
pub const MAX_PART: u64 = 4000 * 1024 * 1024;
/// Most parts in one upload session.
pub const MAX_PARTS: u64 = 250;
/// Largest file a multipart upload can carry.
pub const MAX_FILE: u64 = MAX_PARTS * MAX_PART;

/// How a file's bytes are split into parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    pub part_size: u64,
    pub parts: u64,
}

impl PartPlan {
    /// Byte range `(offset, len)` of part `index`.
    pub fn range(&self, index: u64, file_size: u64) -> (u64, u64) {
        let offset = index * self.part_size;
        (offset, self.part_size.min(file_size.saturating_sub(offset)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{size} bytes is more than CDF accepts in one file ({MAX_FILE} bytes: 250 parts of 4000 MiB)"
)]
pub struct TooLarge {
    pub size: u64,
}

/// The part plan for a file of `size` bytes. `preferred` is the configured part size
/// (`None` = auto: 16 MiB, grown so that the file fits in 250 parts); it is clamped
/// into CDF's limits. `min_part` is CDF's minimum (lowered only for tests). A file of
/// 0 bytes is one (empty) part; callers send empty files single-part instead.
pub fn plan(size: u64, preferred: Option<u64>, min_part: u64) -> Result<PartPlan, TooLarge> {
    if size > MAX_FILE {
        return Err(TooLarge { size });
    }
    let wanted = preferred
        .unwrap_or(16 * 1024 * 1024)
        .clamp(min_part, MAX_PART);
    let fit = size.div_ceil(MAX_PARTS);
    let part_size = wanted.max(fit).min(MAX_PART);
    let parts = size.div_ceil(part_size).max(1);
    Ok(PartPlan { part_size, parts })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn plans_stay_inside_cdf_limits() {
        for size in [
            0,
            1,
            MIN_PART,
            16 * MIB + 1,
            10 * 1024 * MIB,
            4000 * MIB * 100,
            MAX_FILE,
        ] {
            for preferred in [None, Some(1), Some(64 * MIB), Some(u64::MAX)] {
                let p = plan(size, preferred, MIN_PART).expect("fits");
                assert!(
                    (1..=MAX_PARTS).contains(&p.parts),
                    "{size} {preferred:?} {p:?}"
                );
                assert!(p.part_size >= MIN_PART && p.part_size <= MAX_PART);
                assert!(p.part_size * p.parts >= size);
                assert!(p.part_size * (p.parts - 1) < size.max(1));
            }
        }
    }

    #[test]
    fn too_large_is_refused() {
        assert_eq!(
            plan(MAX_FILE + 1, None, MIN_PART),
            Err(TooLarge { size: MAX_FILE + 1 })
        );
    }

    #[test]
    fn ranges_cover_the_file() {
        let p = plan(40 * MIB + 3, None, MIN_PART).expect("fits");
        assert_eq!(
            p,
            PartPlan {
                part_size: 16 * MIB,
                parts: 3
            }
        );
        assert_eq!(p.range(2, 40 * MIB + 3), (32 * MIB, 8 * MIB + 3));
    }
}
