//! UTC timestamps: parsing `TIME` arguments and printing commit times.
//!
//! Only UTC, no time zones, no leap seconds: days are converted with Howard
//! Hinnant's `days_from_civil` / `civil_from_days` algorithms (proleptic
//! Gregorian calendar), so no date crate is needed.

/// Days since 1970-01-01 of the civil date `y-m-d`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = (m as i64 + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d as i64 - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146097 + doe - 719468
}

/// The civil date (year, month, day) of `z` days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Formats microseconds since the Unix epoch as ISO-8601 UTC with `digits`
/// fractional digits (0, 3 or 6): `2026-11-22T10:00:00.123Z`.
pub fn format_us(us: u64, digits: usize) -> String {
    let secs = us / 1_000_000;
    let frac = us % 1_000_000;
    let (y, mo, d) = civil_from_days((secs / 86400) as i64);
    let s = secs % 86400;
    let mut out = format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    match digits {
        0 => {}
        1..=5 => out.push_str(&format!(".{:06}", frac)[..digits + 1]),
        _ => out.push_str(&format!(".{frac:06}")),
    }
    out.push('Z');
    out
}

/// A `TIME` argument: its instant, and the text the user wrote, which
/// messages echo (`--time 2026-12-06T20:18Z`, not microseconds).
#[derive(Clone, Debug)]
pub struct TimeArg {
    pub us: u64,
    pub text: String,
}

/// [`parse_time`], keeping the argument as written.
pub fn parse_time_arg(s: &str) -> Result<TimeArg, String> {
    Ok(TimeArg { us: parse_time(s)?, text: s.trim().to_string() })
}

/// Parses a `TIME` argument into microseconds since the Unix epoch. Accepted:
/// unix seconds (`1795000000`, `1795000000.5`), an ISO-8601 UTC date
/// (`2026-11-22`, midnight UTC) or date and time ending in `Z` or `+00:00`
/// (`2026-11-22T10:00Z`, `2026-11-22T10:00:00.250Z`; a space may replace `T`).
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad = |why: &str| {
        format!(
            "invalid TIME {s:?}: {why} (use ISO-8601 UTC such as 2026-11-22T10:00:00Z, \
             or unix seconds)"
        )
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !s.contains('-') {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let secs: u64 = int.parse().map_err(|_| bad("not a number"))?;
        let us = parse_frac_us(frac).ok_or_else(|| bad("bad fraction of a second"))?;
        return secs.checked_mul(1_000_000).and_then(|x| x.checked_add(us)).ok_or_else(|| bad("out of range"));
    }
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad("expected a date YYYY-MM-DD"));
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad("expected a date YYYY-MM-DD"));
    }
    let num = |x: &str| x.parse::<u32>().ok().filter(|_| x.bytes().all(|b| b.is_ascii_digit()));
    let (Some(y), Some(m), Some(d)) = (num(y), num(m), num(d)) else {
        return Err(bad("expected a date YYYY-MM-DD"));
    };
    let y = y as i64;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(bad("no such date (years 1970 to 9999)"));
    }
    let mut secs = days_from_civil(y, m, d) as u64 * 86400;
    let mut us = 0;
    if let Some(t) = time {
        let t = if let Some(t) = t.strip_suffix(['Z', 'z']) {
            t
        } else if let Some(t) = t.strip_suffix("+00:00") {
            t
        } else {
            return Err(bad("a time must be UTC, ending in Z"));
        };
        let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
        let f: Vec<&str> = hms.split(':').collect();
        if !(2..=3).contains(&f.len()) || f.iter().any(|x| x.len() != 2) {
            return Err(bad("expected a time HH:MM or HH:MM:SS"));
        }
        let vals: Option<Vec<u32>> = f.iter().map(|x| num(x)).collect();
        let vals = vals.ok_or_else(|| bad("expected a time HH:MM or HH:MM:SS"))?;
        let (h, mi, se) = (vals[0], vals[1], vals.get(2).copied().unwrap_or(0));
        if h > 23 || mi > 59 || se > 59 || (!frac.is_empty() && f.len() != 3) {
            return Err(bad("no such time of day"));
        }
        secs += (h * 3600 + mi * 60 + se) as u64;
        us = parse_frac_us(frac).ok_or_else(|| bad("bad fraction of a second"))?;
    }
    Ok(secs * 1_000_000 + us)
}

/// `"25"` → 250000 µs; "" → 0; more than 6 digits are cut (not rounded).
fn parse_frac_us(frac: &str) -> Option<u64> {
    if frac.is_empty() {
        return Some(0);
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(6).collect();
    while digits.len() < 6 {
        digits.push('0');
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip_over_four_centuries() {
        for z in (-1000..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
            assert!(d <= days_in_month(y, m));
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_us(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(format_us(951_782_400_000_000, 0), "2000-02-29T00:00:00Z");
        assert_eq!(format_us(1_795_342_800_123_456, 3), "2026-11-22T10:20:00.123Z");
        assert_eq!(format_us(1_795_342_800_123_456, 6), "2026-11-22T10:20:00.123456Z");
    }

    #[test]
    fn parses_iso_utc_and_unix_seconds() {
        assert_eq!(parse_time("2026-11-22T10:20:00Z"), Ok(1_795_342_800_000_000));
        assert_eq!(parse_time("2026-11-22T10:20:00.123456Z"), Ok(1_795_342_800_123_456));
        assert_eq!(parse_time("2026-11-22 10:20Z"), Ok(1_795_342_800_000_000));
        assert_eq!(parse_time("2026-11-22T10:20:00+00:00"), Ok(1_795_342_800_000_000));
        assert_eq!(parse_time("2026-11-22"), Ok(1_795_305_600_000_000));
        assert_eq!(parse_time("1795342800"), Ok(1_795_342_800_000_000));
        assert_eq!(parse_time("1795342800.5"), Ok(1_795_342_800_500_000));
        for us in [0u64, 1, 951_782_400_000_000, 1_795_342_800_123_456, 4_102_444_800_000_000] {
            assert_eq!(parse_time(&format_us(us, 6)), Ok(us));
        }
    }

    #[test]
    fn refuses_local_times_and_impossible_dates() {
        for s in ["2026-11-22T10:20:00", "2026-02-30", "2026-13-01", "2026-11-22T24:00Z", "yesterday", "", "1e9"] {
            assert!(parse_time(s).is_err(), "{s:?} must be refused");
        }
        assert!(parse_time("2026-11-22T10:20:00").unwrap_err().contains("UTC"));
    }
}
