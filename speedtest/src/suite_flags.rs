//! Command-line flags of the scale suite's `open` and `growth` parts and of
//! the concurrency suite, flattened into main.rs's `Cli`, with `--quick`'s
//! small sizes (for testing the harness itself, e.g. in CI: the figures of a
//! quick run mean nothing).

use clap::{Args, ValueEnum};

use crate::scale::Parts;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Part {
    Classic,
    Open,
    Open4,
    Growth,
    Retain,
}

#[derive(Args, Debug)]
pub struct SuiteFlags {
    /// --suite scale/concurrency: a small, short run that tests the harness
    /// (scale: 64 MiB, 100 + 1000 commits, ?version 500 old, 2000 growth
    /// commits; concurrency: 2 rounds of 0.5 s). Explicit flags still win.
    #[arg(long)]
    pub quick: bool,

    /// --suite scale: the parts to run, comma-separated: classic (issue 4's
    /// steps), open (issue 21: a new process's open + one query), growth
    /// (issue 20: disk growth under single-row UPDATEs), retain (issue 20:
    /// the same on format-4 logs with and without a retention policy), open4
    /// (issue 21 after format 4: `open` on format 4, format 3 and stock WAL
    /// side by side, plus point SELECTs format 4 vs 3; not in the default).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Part::Classic, Part::Open, Part::Growth, Part::Retain])]
    pub parts: Vec<Part>,

    /// --suite scale, part open4: leave the format-3 side out (format 4 and
    /// stock WAL only): at 16 GiB its log is 16 GiB more disk and its
    /// one-commit processes each read a 64 MiB full map.
    #[arg(long)]
    pub open4_skip_format3: bool,

    /// --suite scale, part open: whole-process pairs per measurement [default: 21].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub pairs: Option<u64>,

    /// --suite scale, part open: how many commits old the `?version=N` is [default: 5000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub version_age: Option<u64>,

    /// --suite scale, parts growth and retain: single-row UPDATEs per database [default: 500000].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub growth_commits: Option<u64>,

    /// --suite scale, parts growth and retain: sample the disk use every S commits [default: 10000].
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..))]
    pub growth_sample: Option<u64>,

    /// --suite scale, part retain: the policy, set with `PRAGMA pagelog_retain='POLICY'`
    /// [default: 1000 versions].
    #[arg(long, value_name = "POLICY")]
    pub retain: Option<String>,

    /// --suite concurrency: seconds each workload runs per side and round [default: 3].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub round_secs: Option<f64>,

    /// --suite concurrency: run only the workloads whose name starts with
    /// one of these, comma-separated (e.g. `8w` for fair waiting) [default: all].
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub workloads: Vec<String>,

    /// Internal: run as a reader/writer worker process (see worker.rs).
    #[arg(long, hide = true, value_name = "SPEC")]
    pub worker: Option<String>,
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x <= 3600.0 => Ok(x),
        _ => Err(format!("{s:?}: expected seconds, 0 < S ≤ 3600")),
    }
}

/// Flags only `--suite scale` reads (with scale.rs's own).
pub const SCALE_ONLY: [&str; 10] = [
    "scale_size",
    "scale_versions",
    "scale_processes",
    "parts",
    "pairs",
    "version_age",
    "growth_commits",
    "growth_sample",
    "retain",
    "open4_skip_format3",
];
/// Flags only `--suite concurrency` reads.
pub const CONCURRENCY_ONLY: [&str; 2] = ["round_secs", "workloads"];

impl SuiteFlags {
    pub fn parts(&self) -> Parts {
        Parts {
            classic: self.parts.contains(&Part::Classic),
            open: self.parts.contains(&Part::Open),
            open4: self.parts.contains(&Part::Open4),
            growth: self.parts.contains(&Part::Growth),
            retain: self.parts.contains(&Part::Retain),
        }
    }

    /// `flag`, else the quick or the full default.
    pub fn pick<T: Copy>(&self, flag: Option<T>, quick: T, full: T) -> T {
        flag.unwrap_or(if self.quick { quick } else { full })
    }
}
