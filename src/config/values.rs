//! Typed scalar values of the TOML file: sizes (`"16 MiB"`), rates (`"1 MiB/s"`),
//! durations (`"5s"`) and `part_size = "auto" | size`.
//!
//! Each type deserialises straight from the TOML value with an error message that says
//! what form is allowed, so a bad value is reported by `toml` with its key and line.

use std::fmt;
use std::time::Duration;

use bytesize::ByteSize;
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A number of bytes: `"16 MiB"`, `"500 KB"`, `"1.5 GiB"` or an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size(pub(crate) u64);

/// Bytes per second: a size with an optional `/s`: `"1 MiB/s"`, `"800 KB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate(pub(crate) u64);

/// A duration written as text: `"500ms"`, `"5s"`, `"10m"`, `"1h 30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dur(pub(crate) Duration);

/// `part_size`: `"auto"` or a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartSizeValue {
    Auto,
    Fixed(u64),
}

const SIZE_FORM: &str = "a size such as \"16 MiB\", \"500 KB\" (KB/MB/GB = 1000^n, KiB/MiB/GiB = 1024^n) or a number of bytes";

/// Parses a size in the forms of [`SIZE_FORM`].
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let starts_with_digit = trimmed.chars().next().is_some_and(|c| c.is_ascii_digit());
    match trimmed.parse::<ByteSize>() {
        Ok(size) if starts_with_digit => Ok(size.as_u64()),
        _ => Err(format!("invalid size `{text}`: expected {SIZE_FORM}")),
    }
}

/// Parses a rate: a size with an optional `/s` suffix.
pub(crate) fn parse_rate(text: &str) -> Result<u64, String> {
    let bare = text.trim();
    let bare = bare.strip_suffix("/s").unwrap_or(bare);
    parse_size(bare).map_err(|_| {
        format!(
            "invalid rate `{text}`: expected bytes per second such as \"1 MiB/s\" or \"500 KB/s\""
        )
    })
}

struct ScalarVisitor<T> {
    expecting: &'static str,
    from_str: fn(&str) -> Result<T, String>,
    from_int: Option<fn(u64) -> T>,
}

impl<T> Visitor<'_> for ScalarVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.from_str)(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        match (self.from_int, u64::try_from(v)) {
            (Some(f), Ok(v)) => Ok(f(v)),
            _ => Err(E::invalid_type(de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        match self.from_int {
            Some(f) => Ok(f(v)),
            None => Err(E::invalid_type(de::Unexpected::Unsigned(v), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor {
            expecting: SIZE_FORM,
            from_str: |s| parse_size(s).map(Size),
            from_int: Some(Size),
        })
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor {
            expecting: "bytes per second such as \"1 MiB/s\" or an integer",
            from_str: |s| parse_rate(s).map(Rate),
            from_int: Some(Rate),
        })
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor {
            expecting: "a duration string such as \"500ms\", \"5s\", \"10m\" or \"1h 30m\"",
            from_str: |s| {
                humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
                    format!("invalid duration `{s}` ({e}): expected e.g. \"500ms\", \"5s\", \"10m\", \"1h 30m\"")
                })
            },
            from_int: None,
        })
    }
}

impl<'de> Deserialize<'de> for PartSizeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor {
            expecting: "\"auto\" or a size such as \"16 MiB\"",
            from_str: |s| {
                if s.trim().eq_ignore_ascii_case("auto") {
                    Ok(PartSizeValue::Auto)
                } else {
                    parse_size(s)
                        .map(PartSizeValue::Fixed)
                        .map_err(|e| format!("{e}, or \"auto\""))
                }
            },
            from_int: Some(PartSizeValue::Fixed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct T {
        size: Option<Size>,
        rate: Option<Rate>,
        dur: Option<Dur>,
        part: Option<PartSizeValue>,
    }

    fn parse(text: &str) -> Result<T, String> {
        toml::from_str::<T>(text).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn sizes() {
        assert_eq!(
            parse("size = \"16 MiB\"").unwrap().size,
            Some(Size(16 << 20))
        );
        assert_eq!(parse("size = \"5MB\"").unwrap().size, Some(Size(5_000_000)));
        assert_eq!(parse("size = 1024").unwrap().size, Some(Size(1024)));
        assert!(
            parse("size = \"lots\"")
                .unwrap_err()
                .contains("invalid size `lots`")
        );
        assert!(parse("size = \"-5 MiB\"").is_err());
        assert!(parse("size = -5").is_err());
    }

    #[test]
    fn rates_durations_part_sizes() {
        assert_eq!(
            parse("rate = \"1 MiB/s\"").unwrap().rate,
            Some(Rate(1 << 20))
        );
        assert_eq!(parse("rate = \"2 KB\"").unwrap().rate, Some(Rate(2000)));
        assert!(
            parse("rate = \"fast\"")
                .unwrap_err()
                .contains("bytes per second")
        );
        assert_eq!(
            parse("dur = \"1h 30m\"").unwrap().dur,
            Some(Dur(Duration::from_secs(5400)))
        );
        assert!(
            parse("dur = \"5 parsecs\"")
                .unwrap_err()
                .contains("invalid duration")
        );
        assert!(parse("dur = 5").unwrap_err().contains("duration string"));
        assert_eq!(
            parse("part = \"AUTO\"").unwrap().part,
            Some(PartSizeValue::Auto)
        );
        assert_eq!(
            parse("part = \"8 MiB\"").unwrap().part,
            Some(PartSizeValue::Fixed(8 << 20))
        );
        assert!(parse("part = \"big\"").unwrap_err().contains("\"auto\""));
    }
}
