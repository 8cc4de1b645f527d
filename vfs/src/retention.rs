//! Retention policies: how much history a log keeps (docs/format-4.md,
//! "The policy"). Parsing, the canonical text form, and which versions a
//! policy keeps. No I/O: the reclaimer asks, the CONTROL record stores.
//!
//! # Forms
//! | text | keeps |
//! |------|-------|
//! | `all` | every version (the default) |
//! | `N versions` | the latest N versions |
//! | `D days`, `H hours`, `M minutes`, `S seconds` | every version committed within that time, and the newest before it |
//! | `S KiB`, `S MiB`, `S GiB` | the newest versions whose bytes fit in S on disk (the reclaimer measures) |
//!
//! Forms combine with `,`: a version is kept if any form keeps it. Each form
//! may appear once. Numbers are whole and at least 1; units are
//! case-insensitive and may be singular.
//!
//! The size form is measured by the reclaimer (`reclaim.rs`), as the bytes
//! the log holds from its boundary on (what its blocks on disk come to once
//! the freed region is punched); [`Policy::oldest_kept_within`] takes its
//! answer and unites it with the other forms'.
//!
//! # Invariants
//! 1. The latest version is always kept, whatever the policy.
//! 2. `Policy::parse(p.to_string()) == p` for every policy `p`.

use std::fmt;

/// A retention policy; every field `None` is `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Keep the latest this many versions.
    pub versions: Option<u64>,
    /// Keep the versions committed within this many seconds (and the newest
    /// before them).
    pub age_secs: Option<u64>,
    /// Keep the newest versions that fit in this many bytes on disk.
    pub bytes: Option<u64>,
}

impl Policy {
    /// Keep everything (format 3's behaviour, and the default).
    pub const ALL: Policy = Policy { versions: None, age_secs: None, bytes: None };

    pub fn is_all(&self) -> bool {
        *self == Policy::ALL
    }

    /// Parses the text form (see the module documentation). The error says
    /// what was wrong and what is accepted.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let t = text.trim();
        let accepted = "give `all`, `N versions`, a time (`7 days`, `12 hours`, `30 minutes`) or a size \
                        (`500 MiB`, `10 GiB`), or several joined by `,`";
        if t.eq_ignore_ascii_case("all") {
            return Ok(Policy::ALL);
        }
        if t.is_empty() {
            return Err(format!("an empty retention policy; {accepted}"));
        }
        let mut p = Policy::ALL;
        for part in t.split(',') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let [n, unit] = words[..] else {
                return Err(format!("{:?} is not a retention form; {accepted}", part.trim()));
            };
            let n: u64 = n
                .parse()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| format!("{n:?} in {:?} is not a whole number of at least 1", part.trim()))?;
            let unit = unit.to_ascii_lowercase();
            let unit = unit.strip_suffix('s').filter(|u| !u.is_empty()).unwrap_or(&unit);
            let (slot, value) = match unit {
                "version" => (&mut p.versions, Some(n)),
                "second" | "sec" => (&mut p.age_secs, n.checked_mul(1)),
                "minute" | "min" => (&mut p.age_secs, n.checked_mul(60)),
                "hour" => (&mut p.age_secs, n.checked_mul(3600)),
                "day" => (&mut p.age_secs, n.checked_mul(86_400)),
                "kib" => (&mut p.bytes, n.checked_mul(1 << 10)),
                "mib" => (&mut p.bytes, n.checked_mul(1 << 20)),
                "gib" => (&mut p.bytes, n.checked_mul(1 << 30)),
                "tib" => (&mut p.bytes, n.checked_mul(1 << 40)),
                _ => return Err(format!("{:?}: unknown unit; {accepted}", part.trim())),
            };
            let value = value.ok_or_else(|| format!("{:?} is too large", part.trim()))?;
            if slot.replace(value).is_some() {
                return Err(format!("{:?}: a policy names each kind (versions, time, size) once", part.trim()));
            }
        }
        Ok(p)
    }

    /// The oldest version the whole policy keeps, of versions
    /// `oldest..=latest`: the union of its forms, as [`Policy::oldest_kept`]
    /// for the count and age forms, and `by_size()` for the size form (the
    /// reclaimer measures it; called only when the policy has one). A policy
    /// of only a size form keeps what that form keeps. Never above `latest`.
    pub fn oldest_kept_within(
        &self,
        oldest: u64,
        latest: u64,
        now_us: u64,
        timestamp: impl Fn(u64) -> u64,
        by_size: impl FnOnce() -> u64,
    ) -> u64 {
        if self.is_all() || latest <= oldest {
            return oldest.min(latest);
        }
        let mut keep = latest;
        if self.versions.is_some() || self.age_secs.is_some() {
            keep = Policy { bytes: None, ..*self }.oldest_kept(oldest, latest, now_us, timestamp);
        }
        if self.bytes.is_some() {
            keep = keep.min(by_size());
        }
        keep.max(oldest).min(latest)
    }

    /// The oldest version the count and age forms keep, of versions
    /// `oldest..=latest` (`timestamp(v)`: version v's commit time in
    /// microseconds; `now_us`: now). The size form is the reclaimer's to
    /// apply, as it depends on bytes on disk: this returns `oldest` for it.
    /// Never above `latest`.
    pub fn oldest_kept(&self, oldest: u64, latest: u64, now_us: u64, timestamp: impl Fn(u64) -> u64) -> u64 {
        if self.is_all() || self.bytes.is_some() || latest <= oldest {
            return oldest.min(latest);
        }
        // Each form's own oldest kept version; the policy keeps the union,
        // so the lowest of them.
        let mut keep = latest;
        if let Some(n) = self.versions {
            keep = keep.min(latest.saturating_sub(n - 1).max(oldest));
        }
        if let Some(secs) = self.age_secs {
            let since = now_us.saturating_sub(secs.saturating_mul(1_000_000));
            // The first version committed at or after `since` (binary search:
            // commit times never decrease), then the newest before it.
            let (mut lo, mut hi) = (oldest, latest + 1);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if timestamp(mid) >= since {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            keep = keep.min(lo.saturating_sub(1).max(oldest));
        }
        keep.max(oldest).min(latest)
    }
}

impl Policy {
    /// Whether every form of the policy keeps markedly less than the log
    /// holds, from what its control state says alone (no record read): the
    /// versions form more than an eighth more versions than it keeps (at
    /// least one), the time form an oldest version more than an eighth of
    /// its window older than the window, the size form more than an eighth
    /// more bytes than its budget. The policy keeps the union of its
    /// forms, so one form within its margin keeps everything it would.
    /// `oldest`, `oldest_us`: the oldest version held and its commit time;
    /// `in_use`: the bytes the log holds from its boundary on.
    pub fn exceeded(&self, oldest: u64, oldest_us: u64, latest: u64, now_us: u64, in_use: u64) -> bool {
        if self.is_all() || latest <= oldest {
            return false;
        }
        let over = |held: u64, kept: u64| held > kept.saturating_add(kept / 8);
        self.versions.is_none_or(|n| over(latest - oldest + 1, n))
            && self.age_secs.is_none_or(|s| over(now_us.saturating_sub(oldest_us), s.saturating_mul(1_000_000)))
            && self.bytes.is_none_or(|b| over(in_use, b))
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("all");
        }
        let mut parts = Vec::new();
        if let Some(n) = self.versions {
            parts.push(format!("{n} version{}", if n == 1 { "" } else { "s" }));
        }
        if let Some(s) = self.age_secs {
            let (n, unit) = [(86_400, "day"), (3600, "hour"), (60, "minute"), (1, "second")]
                .into_iter()
                .find(|(u, _)| s % u == 0)
                .map(|(u, name)| (s / u, name))
                .expect("1 divides every number");
            parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
        }
        if let Some(b) = self.bytes {
            let (n, unit) = [(1u64 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
                .into_iter()
                .find(|(u, _)| b % u == 0)
                .map(|(u, name)| (b / u, name))
                .unwrap_or((b, "bytes"));
            parts.push(format!("{n} {unit}"));
        }
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::Policy;

    #[test]
    fn every_form_parses_and_prints_back_the_same_policy() {
        for (text, canon) in [
            ("all", "all"),
            ("ALL", "all"),
            ("1000 versions", "1000 versions"),
            ("1 version", "1 version"),
            ("7 days", "7 days"),
            ("48 hours", "2 days"),
            ("90 minutes", "90 minutes"),
            ("30 sec", "30 seconds"),
            ("500 MiB", "500 MiB"),
            ("2048 mib", "2 GiB"),
            ("10 GiB, 1000 versions", "1000 versions, 10 GiB"),
            ("  3 versions ,  1 day ", "3 versions, 1 day"),
        ] {
            let p = Policy::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(p.to_string(), canon, "{text}");
            assert_eq!(Policy::parse(&p.to_string()).unwrap(), p, "{text}");
        }
    }

    #[test]
    fn bad_forms_are_refused_saying_what_is_accepted() {
        for bad in ["", "versions", "0 versions", "-1 versions", "10 parsecs", "1 day, 2 days", "1.5 GiB", "3"] {
            let e = Policy::parse(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(Policy::parse("10 parsecs").unwrap_err().contains("N versions"));
    }

    #[test]
    fn the_oldest_kept_version_is_the_union_of_the_forms_and_never_past_the_latest() {
        // Version v committed at v seconds.
        let ts = |v: u64| v * 1_000_000;
        let now = 100 * 1_000_000;
        let p = |s: &str| Policy::parse(s).unwrap();
        assert_eq!(p("all").oldest_kept(1, 100, now, ts), 1);
        assert_eq!(p("10 versions").oldest_kept(1, 100, now, ts), 91);
        assert_eq!(p("1 version").oldest_kept(1, 100, now, ts), 100);
        assert_eq!(p("1000 versions").oldest_kept(5, 100, now, ts), 5);
        // Within 20 s: versions 80..=100, and the newest before them (79).
        assert_eq!(p("20 seconds").oldest_kept(1, 100, now, ts), 79);
        assert_eq!(p("20 seconds, 50 versions").oldest_kept(1, 100, now, ts), 51);
        assert_eq!(p("20 seconds, 5 versions").oldest_kept(1, 100, now, ts), 79);
        // Nothing within the window: the latest alone, and the newest before.
        assert_eq!(p("1 second").oldest_kept(1, 100, 1_000 * 1_000_000, ts), 100);
        assert_eq!(p("10 GiB").oldest_kept(3, 100, now, ts), 3);
    }

    #[test]
    fn the_size_form_unites_with_the_others_and_alone_keeps_what_it_measures() {
        let ts = |v: u64| v * 1_000_000;
        let now = 100 * 1_000_000;
        let p = |s: &str| Policy::parse(s).unwrap();
        // Alone: what the reclaimer measured, within oldest..=latest.
        assert_eq!(p("10 MiB").oldest_kept_within(1, 100, now, ts, || 60), 60);
        assert_eq!(p("10 MiB").oldest_kept_within(1, 100, now, ts, || 500), 100);
        assert_eq!(p("10 MiB").oldest_kept_within(70, 100, now, ts, || 60), 70);
        // A version is kept if any form keeps it.
        assert_eq!(p("10 versions, 10 MiB").oldest_kept_within(1, 100, now, ts, || 60), 60);
        assert_eq!(p("50 versions, 10 MiB").oldest_kept_within(1, 100, now, ts, || 95), 51);
        // Without a size form, the same as oldest_kept, and no measuring.
        let never = || -> u64 { panic!("measured without a size form") };
        assert_eq!(p("10 versions").oldest_kept_within(1, 100, now, ts, never), 91);
        assert_eq!(p("all").oldest_kept_within(1, 100, now, ts, never), 1);
    }
}
