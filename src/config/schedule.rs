//! `[upload] max_rate_schedule`: bandwidth limits by time of day.
//!
//! Each entry is `"HH:MM-HH:MM = <rate>"` in UTC (the daemon does not read the time
//! zone; gateways run UTC), where the rate is bytes per second (`"1 MiB/s"`) or
//! `"unlimited"`; a window may cross midnight (`"22:00-06:00 = 10 MiB/s"`). Windows
//! must not overlap. Outside every window `max_rate` applies (unlimited when unset).

use super::values::parse_rate;

const MINUTES_PER_DAY: u16 = 24 * 60;

/// A validated schedule; empty means "always `max_rate`".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateSchedule {
    windows: Vec<RateWindow>,
}

/// `start..end` in minutes after midnight UTC (`end < start` crosses midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    pub start: u16,
    pub end: u16,
    /// Bytes per second; `None` is unlimited.
    pub rate: Option<u64>,
}

impl RateWindow {
    fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

impl RateSchedule {
    /// Builds a schedule; on overlap returns the indexes of the two windows.
    pub fn new(windows: Vec<RateWindow>) -> Result<Self, (usize, usize)> {
        for (i, a) in windows.iter().enumerate() {
            for (j, b) in windows.iter().enumerate().skip(i + 1) {
                if (0..MINUTES_PER_DAY).any(|m| a.contains(m) && b.contains(m)) {
                    return Err((i, j));
                }
            }
        }
        Ok(Self { windows })
    }

    pub fn windows(&self) -> &[RateWindow] {
        &self.windows
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The limit at `minute` after midnight UTC; `default` is `max_rate`.
    pub fn rate_at(&self, minute: u16, default: Option<u64>) -> Option<u64> {
        self.windows
            .iter()
            .find(|w| w.contains(minute))
            .map_or(default, |w| w.rate)
    }
}

/// Parses `"HH:MM-HH:MM = <rate>"`.
pub fn parse_window(text: &str) -> Result<RateWindow, String> {
    let form = "expected \"HH:MM-HH:MM = <rate>\", e.g. \"08:00-18:00 = 1 MiB/s\" or \"18:00-08:00 = unlimited\"";
    let (times, rate) = text
        .split_once('=')
        .ok_or_else(|| format!("invalid window `{text}`: {form}"))?;
    let (start, end) = times
        .split_once('-')
        .ok_or_else(|| format!("invalid window `{text}`: {form}"))?;
    let start =
        parse_time(start).ok_or_else(|| format!("invalid start time in `{text}`: {form}"))?;
    let end = parse_time(end).ok_or_else(|| format!("invalid end time in `{text}`: {form}"))?;
    if start == end {
        return Err(format!("window `{text}` is empty: start and end are equal"));
    }
    let rate = rate.trim();
    let rate = if rate.eq_ignore_ascii_case("unlimited") {
        None
    } else {
        match parse_rate(rate)? {
            0 => {
                return Err(format!(
                    "window `{text}` has a zero rate; use a positive rate or \"unlimited\""
                ));
            }
            r => Some(r),
        }
    };
    Ok(RateWindow { start, end, rate })
}

/// `"08:30"` -> 510; `"24:00"` is midnight at the end of the day (0).
fn parse_time(text: &str) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return None;
    }
    let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
    match (h, m) {
        (24, 0) => Some(0),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_windows() {
        let w = parse_window("08:00-18:00 = 1 MiB/s").unwrap();
        assert_eq!(
            w,
            RateWindow {
                start: 480,
                end: 1080,
                rate: Some(1 << 20)
            }
        );
        let w = parse_window(" 22:00 - 06:00=unlimited").unwrap();
        assert_eq!(
            w,
            RateWindow {
                start: 1320,
                end: 360,
                rate: None
            }
        );
        assert_eq!(parse_window("18:00-24:00 = 2 MB").unwrap().end, 0);
        for bad in [
            "8-18 = 1 MiB",
            "08:00-18:00",
            "25:00-01:00 = 1 MiB",
            "08:00-08:00 = 1 MiB",
            "08:00-09:00 = 0",
            "08:00-09:00 = fast",
        ] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_at_and_overlap() {
        let day = parse_window("08:00-18:00 = 1 MiB/s").unwrap();
        let night = parse_window("22:00-06:00 = unlimited").unwrap();
        let s = RateSchedule::new(vec![day, night]).unwrap();
        assert_eq!(s.rate_at(9 * 60, Some(5)), Some(1 << 20));
        assert_eq!(s.rate_at(23 * 60, Some(5)), None);
        assert_eq!(s.rate_at(3 * 60, Some(5)), None);
        assert_eq!(s.rate_at(20 * 60, Some(5)), Some(5));
        let late = parse_window("05:00-07:00 = 1 MiB").unwrap();
        assert_eq!(
            RateSchedule::new(vec![day, night, late]).unwrap_err(),
            (1, 2)
        );
    }
}
