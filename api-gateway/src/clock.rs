//! Wall-clock time as the gateway stores it: Unix seconds, calendar months
//! (`2026-12`) for quotas, RFC 3339 (`2026-12-03T18:47:32Z`) on the wire.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date (`days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar month (UTC) of `unix`, as `YYYY-MM`.
pub fn month_of(unix: i64) -> String {
    let (year, month, _) = civil_from_days(unix.div_euclid(86_400));
    format!("{year:04}-{month:02}")
}

/// `unix` as RFC 3339 in UTC.
pub fn rfc3339(unix: i64) -> String {
    let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses RFC 3339 (`2026-12-03T18:47:32Z`, an offset such as `+02:00`, or
/// fractional seconds) or a bare date (`2026-12-03`) to Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.trim();
    let number = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let year = number(parts.next()?)?;
    let month = number(parts.next()?)? as u32;
    let day = number(parts.next()?)? as u32;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut seconds = days_from_civil(year, month, day) * 86_400;
    if let Some(time) = time {
        let (clock, offset) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
            (clock, 0)
        } else {
            let at = time.rfind(['+', '-'])?;
            let (clock, zone) = time.split_at(at);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':')?;
            (clock, sign * (number(h)? * 3600 + number(m)? * 60))
        };
        let clock = clock.split('.').next()?;
        let mut fields = clock.split(':');
        let h = number(fields.next()?)?;
        let m = number(fields.next()?)?;
        let s = number(fields.next().unwrap_or("0"))?;
        if h > 23 || m > 59 || s > 60 {
            return None;
        }
        seconds += h * 3600 + m * 60 + s - offset;
    }
    Some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_months_are_calendar_months() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_342_400), "2026-12-04T00:00:00Z");
        assert_eq!(parse_rfc3339("2026-12-04T00:00:00Z"), Some(1_796_342_400));
        assert_eq!(parse_rfc3339("2026-12-04"), Some(1_796_342_400));
        assert_eq!(
            parse_rfc3339("2026-12-04T02:00:00+02:00"),
            Some(1_796_342_400)
        );
        assert_eq!(
            parse_rfc3339("2026-12-04T00:00:00.123Z"),
            Some(1_796_342_400)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2026-13-01"), None);
        assert_eq!(month_of(1_796_342_400), "2026-12");
        assert_eq!(month_of(1_796_342_400 - 4 * 86_400), "2026-11");
        for unix in [0, 951_782_400, 1_709_164_800, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(unix)), Some(unix));
        }
    }
}
