//! The API's `MicroTime` (`2026-11-25T10:00:00.000000Z`) for Lease times,
//! without a date crate.
//!
//! Times are Unix microseconds so the election compares plain integers.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::civil::civil_from_days;

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

/// The wall clock as Unix microseconds; a clock before 1970 reads as 0.
pub fn now_micros(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Formats Unix microseconds as a UTC `MicroTime`.
pub fn format(unix_micros: i64) -> String {
    let days = unix_micros.div_euclid(MICROS_PER_DAY);
    let in_day = unix_micros.rem_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let secs = in_day / 1_000_000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        in_day % 1_000_000
    )
}

/// Parses RFC 3339 as the API writes it: any fraction length (or none) and
/// `Z` or a `±hh:mm` offset. `None` for anything else.
pub fn parse(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't') || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut micros = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        let kept = &fraction[..len.min(6)];
        micros = kept.parse::<i64>().ok()? * 10i64.pow(6 - kept.len() as u32);
        rest = &fraction[len..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let offset = rest.get(1..)?;
            let (h, m) = offset.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    let seconds = crate::civil::days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_six_fraction_digits() {
        assert_eq!(format(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format(1_795_600_800_000_000), "2026-11-25T10:00:00.000000Z");
        assert_eq!(format(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
    }

    #[test]
    fn parses_what_it_formats_and_what_the_api_writes() {
        for micros in [0, 1, 951_782_400_000_001, 1_795_600_800_123_456, 4_102_444_799_999_999] {
            assert_eq!(parse(&format(micros)), Some(micros), "{}", format(micros));
        }
        let table: &[(&str, Option<i64>)] = &[
            ("2026-11-25T10:00:00Z", Some(1_795_600_800_000_000)),
            ("2026-11-25T10:00:00.5Z", Some(1_795_600_800_500_000)),
            ("2026-11-25T10:00:00.123456789Z", Some(1_795_600_800_123_456)),
            ("2026-11-25T11:30:00+01:30", Some(1_795_600_800_000_000)),
            ("2026-11-25T08:00:00-02:00", Some(1_795_600_800_000_000)),
            ("2026-11-25 10:00:00Z", None),
            ("2026-13-25T10:00:00Z", None),
            ("2026-11-25T10:00:00", None),
            ("2026-11-25T10:00:00.Z", None),
            ("2026-11-25T10:00:00+0100", None),
            ("", None),
            ("yesterday", None),
            ("2026-1a-25T10:00:00Z", None),
        ];
        for (text, want) in table {
            assert_eq!(parse(text), *want, "{text}");
        }
    }
}
