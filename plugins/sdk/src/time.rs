//! Small calendar helpers (proleptic Gregorian, no time-zone database): enough to turn
//! provider timestamps into unix milliseconds without pulling a date crate into the guest.

/// Milliseconds in a second, minute, hour and day.
const MS_PER_SEC: i64 = 1_000;
const MS_PER_DAY: i64 = 86_400_000;

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a valid civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both fit in u32 by construction (1..=31 and 1..=12).
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix milliseconds of a civil date and time given in UTC; `None` if any part is out of
/// range (month 1–12, a day that exists, hour < 24, minute < 60, second ≤ 60, ms < 1000).
#[must_use]
pub fn unix_ms(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
) -> Option<i64> {
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
        || millis > 999
        || !(0..=9999).contains(&year)
    {
        return None;
    }
    let secs = i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    Some(days_from_civil(year, month, day) * MS_PER_DAY + secs * MS_PER_SEC + i64::from(millis))
}

/// A fixed-width unsigned decimal field.
fn num(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// Parses `YYYY-MM-DD?HH:MM:SS` (the separator at index 10 is checked by the caller) and
/// returns the fields.
fn date_time(b: &[u8]) -> Option<(i64, u32, u32, u32, u32, u32)> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    Some((
        i64::from(num(&b[0..4])?),
        num(&b[5..7])?,
        num(&b[8..10])?,
        num(&b[11..13])?,
        num(&b[14..16])?,
        num(&b[17..19])?,
    ))
}

/// Parses an RFC 3339 timestamp (`2026-09-15T10:21:07.512345Z`, `…+07:00`; `T` or a space;
/// any number of fraction digits, truncated to milliseconds) into unix milliseconds.
#[must_use]
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day, hour, minute, second) = date_time(b)?;
    let mut rest = &b[19..];
    let mut millis = 0u32;
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (i, d) in frac[..digits].iter().take(3).enumerate() {
            millis += u32::from(d - b'0') * [100, 10, 1][i];
        }
        rest = &frac[digits..];
    }
    let offset_min: i64 = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = i64::from(num(&[*h1, *h2])?);
            let m = i64::from(num(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            if *sign == b'-' { -total } else { total }
        }
        _ => return None,
    };
    let local = unix_ms(year, month, day, hour, minute, second, millis)?;
    Some(local - offset_min * 60 * MS_PER_SEC)
}

/// Parses `YYYY-MM-DD HH:MM:SS` given in local time at `offset_minutes` east of UTC
/// (e.g. 420 for Vietnam, UTC+7) into unix milliseconds.
#[must_use]
pub fn parse_local_datetime_ms(s: &str, offset_minutes: i32) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() != 19 || !matches!(b[10], b' ' | b'T') {
        return None;
    }
    let (year, month, day, hour, minute, second) = date_time(b)?;
    let local = unix_ms(year, month, day, hour, minute, second, 0)?;
    Some(local - i64::from(offset_minutes) * 60 * MS_PER_SEC)
}

/// Formats unix milliseconds as RFC 3339 in UTC with milliseconds:
/// `2026-09-15T10:21:07.498Z`.
#[must_use]
pub fn format_rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    let (y, mo, d) = civil_from_days(days);
    let secs = rem / MS_PER_SEC;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        rem % MS_PER_SEC
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_instants() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        // 2026-01-01T00:00:00Z = 1767225600 s (the Polar vectors' timestamp).
        assert_eq!(
            parse_rfc3339_ms("2026-01-01T00:00:00Z"),
            Some(1_767_225_600_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-09-15T10:21:07.498211Z"),
            Some(1_789_467_667_498)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-01-01T07:00:00+07:00"),
            Some(1_767_225_600_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2025-12-31T23:30:00.5-00:30"),
            Some(1_767_225_600_500)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29 12:00:00Z"),
            Some(1_709_208_000_000)
        );
    }

    #[test]
    fn rejects_bad_input() {
        for s in [
            "",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+7:00",
            "2026-01-01T00:00:00Zjunk",
            "２026-01-01T00:00:00Z",
            "-026-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(s), None, "{s:?}");
        }
    }

    #[test]
    fn local_datetime_with_offset() {
        // SePay: Vietnam time, UTC+7.
        assert_eq!(
            parse_local_datetime_ms("2026-01-01 07:00:00", 420),
            Some(1_767_225_600_000)
        );
        assert_eq!(parse_local_datetime_ms("2026-01-01 07:00", 420), None);
        assert_eq!(parse_local_datetime_ms("2026-01-32 07:00:00", 420), None);
    }

    #[test]
    fn format_round_trips() {
        for ms in [
            0,
            1_767_225_600_000,
            1_789_467_667_498,
            951_782_400_000,
            -1,
            253_402_300_799_999,
        ] {
            let s = format_rfc3339_ms(ms);
            assert_eq!(parse_rfc3339_ms(&s), Some(ms), "{s}");
        }
        assert_eq!(
            format_rfc3339_ms(1_767_225_600_000),
            "2026-01-01T00:00:00.000Z"
        );
    }
}
