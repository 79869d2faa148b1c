//! RFC 3339 timestamps for MPP's `expires` auth-param and receipt `timestamp`, from and to unix
//! seconds, without a clock and without a date library.
//!
//! We write `YYYY-MM-DDTHH:MM:SSZ`, as Aperture does, and read that form with an optional
//! fraction (dropped: the instant is the whole second it falls in) and a `Z` or `±HH:MM` offset.
//! Years run from 1970 to 9999.

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The last second RFC 3339 as we write it can name: 9999-12-31T23:59:59Z.
pub(crate) const MAX_UNIX: u64 = 253_402_300_799;

/// `YYYY-MM-DDTHH:MM:SSZ`, or `None` past the year 9999.
pub(crate) fn format_rfc3339(unix: u64) -> Option<String> {
    if unix > MAX_UNIX {
        return None;
    }
    let secs = unix as i64;
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

fn digits(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = text.get(range)?;
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Unix seconds of an RFC 3339 date-time, or `None` if it is not one (or is before 1970).
pub(crate) fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(text, 0..4)?;
    let month = digits(text, 5..7)?;
    let day = digits(text, 8..10)?;
    let hour = digits(text, 11..13)?;
    let minute = digits(text, 14..16)?;
    let second = digits(text, 17..19)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    // 60 is a leap second: it counts as the second after 59.
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        rest = &fraction[len..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let hours = digits(rest, 1..3)?;
            let minutes = digits(rest, 4..6)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'+' { offset } else { -offset }
        }
        _ => return None,
    };
    let unix =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(unix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        for (unix, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_773_576_300, "2026-03-15T12:05:00Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
            (MAX_UNIX, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(format_rfc3339(unix).as_deref(), Some(text));
            assert_eq!(parse_rfc3339(text), Some(unix), "{text}");
        }
        assert_eq!(format_rfc3339(MAX_UNIX + 1), None);
    }

    #[test]
    fn offsets_fractions_and_refusals() {
        assert_eq!(
            parse_rfc3339("2026-03-15T13:05:00+01:00"),
            Some(1_773_576_300)
        );
        assert_eq!(
            parse_rfc3339("2026-03-15T11:35:00-00:30"),
            Some(1_773_576_300)
        );
        assert_eq!(
            parse_rfc3339("2026-03-15t12:05:00.999z"),
            Some(1_773_576_300)
        );
        for bad in [
            "",
            "2026-03-15",
            "2026-03-15T12:05:00",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-03-15T24:00:00Z",
            "2026-03-15T12:05:00.Z",
            "2026-03-15T12:05:00+1:00",
            "2026-03-15 12:05:00Z",
            "+026-03-15T12:05:00Z",
            "1969-12-31T23:59:59Z",
            "2026-03-15T12:05:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_day_round_trips() {
        for day in (0..2_932_897i64).step_by(7919) {
            let unix = (day * 86_400 + 3_723) as u64;
            let text = format_rfc3339(unix).unwrap();
            assert_eq!(parse_rfc3339(&text), Some(unix), "{text}");
        }
    }
}
