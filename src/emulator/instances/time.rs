//! Data-modeling timestamps: ISO-8601 strings (`2025-01-01T00:00:00.000+00:00`), not
//! the Files API's milliseconds. Parsing accepts an optional fraction (up to 9 digits,
//! kept to the millisecond) and an optional `Z` or `±HH:MM` / `±HHMM` offset (none
//! means UTC); formatting is what DMS answers: milliseconds and `+00:00`.

/// Milliseconds since the epoch, or `None` when `text` is no ISO-8601 timestamp.
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = text.get(from..to)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !seps
        .iter()
        .all(|&(i, c)| text.as_bytes().get(i) == Some(&c))
    {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, s) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let day = days_from_civil(y, mo, d);
    if civil_from_days(day) != (y, mo, d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let (millis, rest) = fraction(text.get(19..)?)?;
    let offset_min = offset(rest)?;
    Some(((day * 24 + h) * 60 + mi - offset_min) * 60_000 + s * 1000 + millis)
}

/// `.ddd...` (1..=9 digits) as milliseconds, and what follows it.
fn fraction(text: &str) -> Option<(i64, &str)> {
    let Some(frac) = text.strip_prefix('.') else {
        return Some((0, text));
    };
    let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=9).contains(&digits) {
        return None;
    }
    let ms: String = frac
        .get(..digits)?
        .chars()
        .chain("00".chars())
        .take(3)
        .collect();
    Some((ms.parse().ok()?, frac.get(digits..)?))
}

/// `""` / `Z` / `±HH:MM` / `±HHMM` in minutes east of UTC.
fn offset(text: &str) -> Option<i64> {
    if text.is_empty() || text == "Z" {
        return Some(0);
    }
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hhmm: String = text.get(1..)?.chars().filter(|&c| c != ':').collect();
    let valid = hhmm.len() == 4 && hhmm.bytes().all(|c| c.is_ascii_digit());
    let (h, m): (i64, i64) = (hhmm.get(..2)?.parse().ok()?, hhmm.get(2..)?.parse().ok()?);
    (valid && h < 24 && m < 60).then_some(sign * (h * 60 + m))
}

/// `2025-01-01T00:00:00.000+00:00` (the daemon's own formatting: one algorithm).
pub(crate) use crate::upload::node::iso8601 as format_timestamp;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

use crate::upload::node::civil_from_days;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_the_sdk_sends() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("1970-01-01T00:00:00.000+00:00"), Some(0));
        assert_eq!(
            parse_timestamp("2025-01-01T00:00:00.000+00:00"),
            Some(1_735_689_600_000)
        );
        assert_eq!(
            parse_timestamp("2025-01-01T01:00:00.5+01:00"),
            Some(1_735_689_600_500)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T12:00:00"),
            Some(1_709_208_000_000)
        );
        assert_eq!(
            parse_timestamp("2025-01-01T00:00:00.123456789-0130"),
            Some(1_735_695_000_123)
        );
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for bad in [
            "",
            "1735689600000",
            "2025-02-29T00:00:00Z",
            "2025-01-01 00:00:00",
            "2025-01-01T24:00:00Z",
            "2025-01-01T00:00:00.Z",
            "2025-01-01T00:00:00+1",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_like_dms() {
        assert_eq!(
            format_timestamp(1_735_689_600_500),
            "2025-01-01T00:00:00.500+00:00"
        );
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000+00:00");
        let t = 1_709_208_000_123;
        assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t));
    }
}
