//! The verdict that leads the report: one line per like-for-like pair, a
//! pagelog configuration against a stock one at the same `synchronous`
//! level (the same promise on power loss), e.g. pagelog FULL against WAL
//! FULL and against DELETE FULL, pagelog NORMAL against WAL NORMAL. Pairs of
//! different levels are never compared: NORMAL may lose the last commits on
//! power loss and skips the syncs that FULL pays for.
//!
//! A difference counts only when the runs' min–max ranges do not overlap;
//! otherwise the verdict says "no clear difference". With one run there is
//! no range, and the medians decide (the line says so).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::config::Config;
use crate::stats::Stats;

/// How a pagelog configuration fared against a stock one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Faster,
    Slower,
    NoClearDifference,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Faster => "faster",
            Outcome::Slower => "slower",
            Outcome::NoClearDifference => "no clear difference",
        }
    }
}

/// pagelog's times `p` against stock's `s` (smaller is faster).
pub fn compare(p: Stats, s: Stats) -> Outcome {
    let overlap = p.n > 1 && s.n > 1 && p.min <= s.max && s.min <= p.max;
    if overlap || p.median == s.median {
        Outcome::NoClearDifference
    } else if p.median < s.median {
        Outcome::Faster
    } else {
        Outcome::Slower
    }
}

/// One like-for-like comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub pagelog: Config,
    pub stock: Config,
    /// Seconds for all tests of one run (summed), over the runs.
    pub pagelog_total: Stats,
    pub stock_total: Stats,
    /// Ratio of the medians, pagelog ÷ stock.
    pub ratio: f64,
    pub outcome: Outcome,
    /// Test ids by outcome.
    pub per_test: Vec<(usize, Outcome)>,
}

/// The like-for-like pairs among `configs`: FULL pairs first, then NORMAL;
/// within a level, in `configs` order.
pub fn pairs(configs: &[Config]) -> Vec<(Config, Config)> {
    let mut v: Vec<(Config, Config)> = Vec::new();
    for &p in configs.iter().filter(|c| c.is_pagelog()) {
        for &s in configs.iter().filter(|c| !c.is_pagelog()) {
            if p.like_for_like(s) {
                v.push((p, s));
            }
        }
    }
    v.sort_by_key(|(p, _)| std::cmp::Reverse(p.synchronous().1));
    v
}

/// The verdicts for `configs`, in [`pairs`] order. `totals(c)`: the
/// seconds of all tests of one run summed, over the runs of `c`;
/// `per_test(c, i)`: the seconds of test `i` (0-based; its id is
/// `test_ids[i]`) over the runs. Pairs without samples are left out.
pub fn verdicts(
    configs: &[Config],
    test_ids: &[usize],
    totals: impl Fn(Config) -> Option<Stats>,
    per_test: impl Fn(Config, usize) -> Option<Stats>,
) -> Vec<Verdict> {
    pairs(configs)
        .into_iter()
        .filter_map(|(p, s)| {
            let (pt, st) = (totals(p)?, totals(s)?);
            let per_test = test_ids
                .iter()
                .enumerate()
                .filter_map(|(i, &id)| Some((id, compare(per_test(p, i)?, per_test(s, i)?))))
                .collect();
            let ratio = if st.median > 0.0 { pt.median / st.median } else { f64::NAN };
            Some(Verdict {
                pagelog: p,
                stock: s,
                pagelog_total: pt,
                stock_total: st,
                ratio,
                outcome: compare(pt, st),
                per_test,
            })
        })
        .collect()
}

/// "2.9×", "1.04×", "58×": how many times faster or slower, never "0.00".
pub fn fmt_factor(ratio: f64) -> String {
    let f = if ratio < 1.0 { 1.0 / ratio } else { ratio };
    if f < 2.0 {
        format!("{f:.2}×")
    } else if f < 10.0 {
        format!("{f:.1}×")
    } else {
        format!("{f:.0}×")
    }
}

fn list(ids: &[usize]) -> String {
    ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

impl Verdict {
    /// The one line: level, outcome, totals, per-test breakdown.
    pub fn line(&self) -> String {
        let level = self.pagelog.synchronous().0;
        let vs = self.stock.label();
        let head = match self.outcome {
            Outcome::Faster => format!("pagelog is {} faster than {vs}", fmt_factor(self.ratio)),
            Outcome::Slower => format!("pagelog is {} slower than {vs}", fmt_factor(self.ratio)),
            Outcome::NoClearDifference => format!("pagelog and {vs}: no clear difference"),
        };
        let runs = if self.pagelog_total.n > 1 && self.stock_total.n > 1 {
            format!("median of {} runs", self.pagelog_total.n.min(self.stock_total.n))
        } else {
            "one run, no spread to judge by".into()
        };
        let mut by = Vec::new();
        for o in [Outcome::Faster, Outcome::Slower, Outcome::NoClearDifference] {
            let ids: Vec<usize> = self.per_test.iter().filter(|(_, x)| *x == o).map(|(id, _)| *id).collect();
            if ids.len() == self.per_test.len() && ids.len() > 1 {
                by.push(format!("{} in every test", o.name()));
            } else if !ids.is_empty() {
                by.push(format!("{} in {} {}", o.name(), if ids.len() == 1 { "test" } else { "tests" }, list(&ids)));
            }
        }
        format!(
            "synchronous={level:<6} {head} ({:.3} s vs {:.3} s for all tests, {runs}); {}",
            self.pagelog_total.median,
            self.stock_total.median,
            by.join("; ")
        )
    }

    pub fn to_json(&self) -> Value {
        let ids = |o: Outcome| self.per_test.iter().filter(|(_, x)| *x == o).map(|(id, _)| *id).collect::<Vec<_>>();
        json!({
            "synchronous": self.pagelog.synchronous().0,
            "pagelog": self.pagelog.name(),
            "stock": self.stock.name(),
            "pagelog_seconds_median": self.pagelog_total.median,
            "stock_seconds_median": self.stock_total.median,
            "ratio": self.ratio,
            "outcome": self.outcome.name(),
            "faster_tests": ids(Outcome::Faster),
            "slower_tests": ids(Outcome::Slower),
            "no_clear_difference_tests": ids(Outcome::NoClearDifference),
        })
    }
}

/// The verdict block that opens the report.
pub fn render(configs: &[Config], vs: &[Verdict]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Verdict, like for like (same synchronous level, i.e. the same promise on power loss; \
         \"no clear difference\" when the runs' min–max ranges overlap):\n"
    );
    if vs.is_empty() {
        let _ = writeln!(
            out,
            "  none: no pagelog and stock configuration at the same synchronous level among {} \
             (compare pagelog-full with wal-full or delete-full, pagelog-normal with wal-normal)",
            configs.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
        );
    }
    for v in vs {
        let _ = writeln!(out, "  {}", v.line());
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(median: f64, min: f64, max: f64, n: usize) -> Stats {
        Stats { median, min, max, n }
    }

    #[test]
    fn only_the_same_durability_is_compared() {
        assert_eq!(
            pairs(&Config::ALL),
            vec![
                (Config::PagelogFull, Config::DeleteFull),
                (Config::PagelogFull, Config::WalFull),
                (Config::PagelogNormal, Config::WalNormal)
            ]
        );
        assert_eq!(pairs(&[Config::PagelogFull, Config::WalNormal]), vec![]);
        assert_eq!(
            pairs(&[Config::WalNormal, Config::PagelogNormal]),
            vec![(Config::PagelogNormal, Config::WalNormal)]
        );
    }

    #[test]
    fn overlapping_ranges_are_no_clear_difference() {
        assert_eq!(compare(s(1.0, 0.9, 1.1, 3), s(2.0, 1.9, 2.1, 3)), Outcome::Faster);
        assert_eq!(compare(s(3.0, 2.5, 3.1, 3), s(2.0, 1.9, 2.1, 3)), Outcome::Slower);
        assert_eq!(compare(s(1.0, 0.9, 2.0, 3), s(2.0, 1.9, 2.1, 3)), Outcome::NoClearDifference);
        // One run: the medians decide.
        assert_eq!(compare(s(1.0, 1.0, 1.0, 1), s(1.1, 1.1, 1.1, 1)), Outcome::Faster);
        assert_eq!(compare(s(1.0, 1.0, 1.0, 1), s(1.0, 1.0, 1.0, 1)), Outcome::NoClearDifference);
    }

    #[test]
    fn factors_are_never_rounded_to_nothing() {
        assert_eq!(fmt_factor(1.0 / 58.47), "58×");
        assert_eq!(fmt_factor(58.47), "58×");
        assert_eq!(fmt_factor(0.5), "2.0×");
        assert_eq!(fmt_factor(1.04), "1.04×");
        assert_eq!(fmt_factor(0.004), "250×");
    }
}
