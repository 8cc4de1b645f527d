//! Turning samples into the result tables (stdout, Markdown like the seed's)
//! and into JSON (every sample).
//!
//! The report opens with the verdict ([`crate::verdict`]): one line per
//! pair of configurations at the same `synchronous` level. Each cell is the
//! median of the runs with their min–max; ratios are of medians, pagelog
//! over stock, so below 1 means pagelog was faster, and only pairs at the
//! same level are shown (others promise different things on power loss).
//! Figures that count the whole machine rather than this benchmark (the
//! block device's written bytes) are marked so.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::config::{synchronous_name, Config};
use crate::measure::{Filesystem, Sizes};
use crate::probe::ProbeOutcome;
use crate::runner::RunRecord;
use crate::verdict::{self, Verdict};
use crate::workload::Workload;

pub use crate::stats::{stats, Stats};

/// Facts about the environment, printed above the tables.
#[derive(Clone, Debug)]
pub struct Meta {
    pub sqlite_version: String,
    /// "in-process" or "shell".
    pub mode: String,
    /// Human description of the mode ("rusqlite bundled SQLite 3.x, in-process").
    pub mode_detail: String,
    pub dir: PathBuf,
    pub filesystem: Option<Filesystem>,
    pub cpu: Option<String>,
    /// UTC, ISO 8601.
    pub date: String,
    pub runs: u32,
    pub sync_before_test: bool,
    pub pause_ms: u64,
}

/// Everything a report is made of.
#[derive(Clone, Debug)]
pub struct Report<'a> {
    pub meta: Meta,
    pub workload: &'a Workload,
    pub configs: Vec<Config>,
    pub records: Vec<RunRecord>,
    pub probes: Vec<(Config, ProbeOutcome)>,
}

fn fmt_secs(x: f64) -> String {
    if x < 0.01 {
        format!("{x:.5}")
    } else {
        format!("{x:.3}")
    }
}

fn fmt_cell(s: Option<Stats>) -> String {
    match s {
        Some(s) if s.n > 1 => format!("{} ({}–{})", fmt_secs(s.median), fmt_secs(s.min), fmt_secs(s.max)),
        Some(s) => fmt_secs(s.median),
        None => "n/a".into(),
    }
}

/// A ratio with two significant digits: `0.0042`, `0.37`, `1.2`, `58`.
pub fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() || r <= 0.0 {
        return "n/a".into();
    }
    let decimals = (1 - r.log10().floor() as i32).max(0) as usize;
    format!("{r:.decimals$}")
}

fn kib(bytes: f64) -> String {
    format!("{:.0}", bytes / 1024.0)
}

impl Report<'_> {
    fn records_of(&self, cfg: Config) -> impl Iterator<Item = &RunRecord> {
        self.records.iter().filter(move |r| r.config == cfg)
    }

    /// Seconds of test `index` (0-based) for `cfg`, over all runs.
    pub fn test_stats(&self, cfg: Config, index: usize) -> Option<Stats> {
        let xs: Vec<f64> = self.records_of(cfg).filter_map(|r| r.tests.get(index).map(|t| t.seconds)).collect();
        stats(&xs)
    }

    fn close_stats(&self, cfg: Config) -> Option<Stats> {
        let xs: Vec<f64> = self.records_of(cfg).filter_map(|r| r.close_seconds).collect();
        stats(&xs)
    }

    fn size_stats(&self, cfg: Config, pick: impl Fn(&RunRecord) -> Option<&Sizes>) -> Option<Stats> {
        let xs: Vec<f64> = self.records_of(cfg).filter_map(|r| pick(r).map(|s| s.total() as f64)).collect();
        stats(&xs)
    }

    /// Per-run totals over all tests of a `/proc/self/io` field.
    fn io_stats(&self, cfg: Config, field: impl Fn(&crate::measure::IoCounters) -> u64) -> Option<Stats> {
        let xs: Vec<f64> = self
            .records_of(cfg)
            .filter_map(|r| r.tests.iter().map(|t| t.io.as_ref().map(&field)).sum::<Option<u64>>().map(|b| b as f64))
            .collect();
        stats(&xs)
    }

    /// Device bytes written per run (sum over tests), median over runs.
    fn device_stats(&self, cfg: Config) -> Option<Stats> {
        let xs: Vec<f64> = self
            .records_of(cfg)
            .filter_map(|r| r.tests.iter().map(|t| t.device_bytes).sum::<Option<u64>>().map(|b| b as f64))
            .collect();
        stats(&xs)
    }

    /// pagelog's own sync count per commit in test 1, median over runs.
    fn vfs_syncs_per_commit(&self, cfg: Config) -> Option<Stats> {
        let commits = self.workload.tests.first()?.commits.max(1) as f64;
        let xs: Vec<f64> =
            self.records_of(cfg).filter_map(|r| r.tests.first()?.vfs_syncs.map(|s| s as f64 / commits)).collect();
        stats(&xs)
    }

    /// Seconds of all tests of one run summed, over the runs of `cfg`.
    pub fn total_stats(&self, cfg: Config) -> Option<Stats> {
        let xs: Vec<f64> = self.records_of(cfg).map(|r| r.tests.iter().map(|t| t.seconds).sum()).collect();
        stats(&xs)
    }

    /// One verdict per like-for-like pair (see [`crate::verdict`]).
    pub fn verdicts(&self) -> Vec<Verdict> {
        let ids: Vec<usize> = self.workload.tests.iter().map(|t| t.id).collect();
        verdict::verdicts(&self.configs, &ids, |c| self.total_stats(c), |c, i| self.test_stats(c, i))
    }

    fn probe_of(&self, cfg: Config) -> Option<&ProbeOutcome> {
        self.probes.iter().find(|(c, _)| *c == cfg).map(|(_, p)| p)
    }

    /// The stdout report: header, times, ratios, per-configuration facts.
    pub fn render(&self) -> String {
        let m = &self.meta;
        let mut out = String::new();
        let _ = writeln!(out, "speedtest — tool/speedtest.tcl, pagelog against stock SQLite\n");
        out.push_str(&verdict::render(&self.configs, &self.verdicts()));
        let _ = writeln!(out, "SQLite:      {} ({})", m.sqlite_version, m.mode_detail);
        let _ = writeln!(out, "Date:        {}", m.date);
        if let Some(cpu) = &m.cpu {
            let _ = writeln!(out, "CPU:         {cpu}");
        }
        let fs = m
            .filesystem
            .as_ref()
            .map(|f| format!(" ({} on {}, mounted at {})", f.fstype, f.device, f.mount_point))
            .unwrap_or_default();
        let _ = writeln!(out, "Directory:   {}{fs}", m.dir.display());
        let sc = &self.workload.scale;
        let _ = writeln!(
            out,
            "Workload:    scale {} ({} t1 rows, {} t2 rows), {} tests; runs per configuration: {}, round-robin",
            sc.factor,
            sc.t1_rows,
            sc.t2_rows,
            self.workload.tests.len(),
            m.runs
        );
        let _ = writeln!(
            out,
            "Between tests: {}{}",
            if m.sync_before_test { "sync" } else { "no sync" },
            if m.pause_ms > 0 { format!(", {} ms pause", m.pause_ms) } else { String::new() }
        );
        let _ = writeln!(out);

        // Times
        let _ = writeln!(out, "Seconds per test: median (min–max) over runs: {}\n", m.runs);
        let mut header = vec!["Test".to_string()];
        header.extend(self.configs.iter().map(|c| format!("{c}, [s]")));
        let mut rows = Vec::new();
        for (i, t) in self.workload.tests.iter().enumerate() {
            let mut row = vec![format!("{}. {}", t.id, t.title)];
            row.extend(self.configs.iter().map(|&c| fmt_cell(self.test_stats(c, i))));
            rows.push(row);
        }
        if self.records.iter().any(|r| r.close_seconds.is_some()) {
            let mut row = vec!["(closing the connection)".to_string()];
            row.extend(self.configs.iter().map(|&c| fmt_cell(self.close_stats(c))));
            rows.push(row);
        }
        out.push_str(&markdown_table(&header, &rows));
        out.push('\n');

        // Ratios, like for like only
        let pairs = verdict::pairs(&self.configs);
        if !pairs.is_empty() {
            let _ = writeln!(
                out,
                "pagelog ÷ stock at the same synchronous level, ratio of medians (below 1: pagelog faster)\n"
            );
            let mut header = vec!["Test".to_string()];
            header.extend(pairs.iter().map(|(p, s)| format!("{p} ÷ {s}")));
            let mut rows = Vec::new();
            for (i, t) in self.workload.tests.iter().enumerate() {
                let mut row = vec![format!("{}. {}", t.id, t.title)];
                for &(p, s) in &pairs {
                    row.push(match (self.test_stats(p, i), self.test_stats(s, i)) {
                        (Some(a), Some(b)) if b.median > 0.0 => fmt_ratio(a.median / b.median),
                        _ => "n/a".into(),
                    });
                }
                rows.push(row);
            }
            out.push_str(&markdown_table(&header, &rows));
            out.push('\n');
        }

        // Per configuration
        let _ = writeln!(out, "Per configuration (sizes and bytes: median over runs)\n");
        let header: Vec<String> = [
            "Config",
            "journal_mode",
            "synchronous",
            "fsyncs/commit, test 1 (strace)",
            "VFS syncs/commit, test 1",
            "size at end, open [KiB]",
            "size after close [KiB]",
            "write_bytes/run [KiB] (whole folios)",
            "wchar/run [KiB]",
            "device writes/run [KiB] (machine-wide*)",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut rows = Vec::new();
        for &c in &self.configs {
            let first = self.records_of(c).next();
            let probe = match self.probe_of(c) {
                Some(ProbeOutcome::Counted(s)) => format!(
                    "{:.2} ({} fsync + {} fdatasync / {} commits)",
                    s.per_commit(),
                    s.fsync,
                    s.fdatasync,
                    s.commits
                ),
                Some(ProbeOutcome::NotAvailable(why)) => format!("n/a ({why})"),
                None => "n/a".into(),
            };
            let vfs = match self.vfs_syncs_per_commit(c) {
                Some(s) => format!("{:.2}", s.median),
                None => "n/a".into(),
            };
            let size = |s: Option<Stats>| s.map(|s| kib(s.median)).unwrap_or_else(|| "n/a".into());
            rows.push(vec![
                c.to_string(),
                first.map(|r| r.journal_mode.clone()).unwrap_or_default(),
                first.map(|r| synchronous_name(r.synchronous)).unwrap_or_default(),
                probe,
                vfs,
                size(self.size_stats(c, |r| r.size_open.as_ref())),
                size(self.size_stats(c, |r| Some(&r.size_closed))),
                size(self.io_stats(c, |io| io.write_bytes)),
                size(self.io_stats(c, |io| io.wchar)),
                size(self.device_stats(c)),
            ]);
        }
        out.push_str(&markdown_table(&header, &rows));
        let device = self.meta.filesystem.as_ref().map(|f| f.device.as_str()).unwrap_or("the disk");
        let _ = writeln!(
            out,
            "\n* machine-wide: the block device's own count of bytes written ({device}, /sys/block/…/stat), \
             which includes every other process writing to it during the tests, and the `sync` before each \
             test flushes their data too; trust it only on an otherwise idle machine. Every other column \
             counts this benchmark alone (its process and the shells it runs)."
        );
        out
    }

    /// Every sample and every derived number, for machines.
    pub fn to_json(&self) -> Value {
        let m = &self.meta;
        let sc = &self.workload.scale;
        let tests: Vec<Value> = self
            .workload
            .tests
            .iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "title": t.title,
                    "statements": t.statements.len(),
                    "commits": t.commits,
                    "expect_t1_rows": t.expect.t1,
                    "expect_t2_rows": t.expect.t2,
                })
            })
            .collect();
        let sizes_json = |s: &Sizes| {
            json!({
                "total": s.total(),
                "files": s.files.iter().map(|f| json!({
                    "suffix": f.suffix, "len": f.len, "allocated": f.allocated
                })).collect::<Vec<_>>(),
            })
        };
        let mut samples = Vec::new();
        let mut runs = Vec::new();
        for r in &self.records {
            for (t, s) in self.workload.tests.iter().zip(&r.tests) {
                samples.push(json!({
                    "run": r.run,
                    "config": r.config.name(),
                    "test": t.id,
                    "title": t.title,
                    "seconds": s.seconds,
                    "write_bytes": s.io.map(|io| io.write_bytes),
                    "cancelled_write_bytes": s.io.map(|io| io.cancelled_write_bytes),
                    "wchar": s.io.map(|io| io.wchar),
                    "vfs_syncs": s.vfs_syncs,
                    "device_bytes": s.device_bytes,
                }));
            }
            runs.push(json!({
                "run": r.run,
                "config": r.config.name(),
                "journal_mode": r.journal_mode,
                "synchronous": r.synchronous,
                "synchronous_name": synchronous_name(r.synchronous),
                "close_seconds": r.close_seconds,
                "size_open": r.size_open.as_ref().map(sizes_json),
                "size_closed": sizes_json(&r.size_closed),
            }));
        }
        let stat_json = |s: Option<Stats>| s.map(|s| json!({"median": s.median, "min": s.min, "max": s.max, "n": s.n}));
        let mut cells = Vec::new();
        for (i, t) in self.workload.tests.iter().enumerate() {
            for &c in &self.configs {
                cells.push(json!({
                    "test": t.id,
                    "config": c.name(),
                    "seconds": stat_json(self.test_stats(c, i)),
                }));
            }
        }
        let mut ratios = Vec::new();
        for &p in self.configs.iter().filter(|c| c.is_pagelog()) {
            for &s in self.configs.iter().filter(|c| !c.is_pagelog()) {
                for (i, t) in self.workload.tests.iter().enumerate() {
                    let r = match (self.test_stats(p, i), self.test_stats(s, i)) {
                        (Some(a), Some(b)) if b.median > 0.0 => Some(a.median / b.median),
                        _ => None,
                    };
                    ratios.push(json!({
                        "test": t.id, "pagelog": p.name(), "stock": s.name(), "ratio": r,
                        "like_for_like": p.like_for_like(s),
                    }));
                }
            }
        }
        let configs: Vec<Value> = self
            .configs
            .iter()
            .map(|&c| {
                let probe = match self.probe_of(c) {
                    Some(ProbeOutcome::Counted(s)) => json!({
                        "fsync": s.fsync, "fdatasync": s.fdatasync, "commits": s.commits,
                        "per_commit": s.per_commit(),
                    }),
                    Some(ProbeOutcome::NotAvailable(why)) => json!({"not_available": why}),
                    None => Value::Null,
                };
                json!({
                    "config": c.name(),
                    "vfs": if c.is_pagelog() { "pagelog" } else { "unix" },
                    "synchronous": c.synchronous().0,
                    "total_seconds": stat_json(self.total_stats(c)),
                    "fsync_probe_test1": probe,
                    "vfs_syncs_per_commit_test1": stat_json(self.vfs_syncs_per_commit(c)),
                    "close_seconds": stat_json(self.close_stats(c)),
                    "size_open_bytes": stat_json(self.size_stats(c, |r| r.size_open.as_ref())),
                    "size_closed_bytes": stat_json(self.size_stats(c, |r| Some(&r.size_closed))),
                    "write_bytes_per_run": stat_json(self.io_stats(c, |io| io.write_bytes)),
                    "wchar_per_run": stat_json(self.io_stats(c, |io| io.wchar)),
                    "device_bytes_per_run": stat_json(self.device_stats(c)),
                    "device_bytes_machine_wide": true,
                })
            })
            .collect();
        json!({
            "tool": "speedtest",
            "sqlite_version": m.sqlite_version,
            "mode": m.mode,
            "mode_detail": m.mode_detail,
            "date": m.date,
            "cpu": m.cpu,
            "dir": m.dir.display().to_string(),
            "filesystem": m.filesystem.as_ref().map(|f| json!({
                "fstype": f.fstype, "device": f.device, "mount_point": f.mount_point
            })),
            "scale": {
                "factor": sc.factor, "t1_rows": sc.t1_rows, "t2_rows": sc.t2_rows,
                "t1_refill_rows": sc.t1_refill_rows, "delete_below": sc.delete_below,
            },
            "all_tests": self.workload.all_tests,
            "runs": m.runs,
            "sync_before_test": m.sync_before_test,
            "pause_ms": m.pause_ms,
            "config_names": self.configs.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "tests": tests,
            "samples": samples,
            "run_details": runs,
            "cells": cells,
            "verdicts": self.verdicts().iter().map(Verdict::to_json).collect::<Vec<_>>(),
            "ratios": ratios,
            "configs": configs,
        })
    }
}

/// A Markdown table with padded columns; all but the first right-aligned.
pub fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let ncol = header.len();
    let width = |s: &str| s.chars().count();
    let mut w: Vec<usize> = header.iter().map(|h| width(h).max(3)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(ncol) {
            w[i] = w[i].max(width(c));
        }
    }
    let pad = |s: &str, n: usize, right: bool| {
        let fill = " ".repeat(n.saturating_sub(width(s)));
        if right {
            format!("{fill}{s}")
        } else {
            format!("{s}{fill}")
        }
    };
    let mut out = String::new();
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    out.push_str(&line(header.iter().enumerate().map(|(i, h)| pad(h, w[i], false)).collect()));
    out.push_str(&line(
        (0..ncol).map(|i| if i == 0 { "-".repeat(w[i]) } else { format!("{}:", "-".repeat(w[i] - 1)) }).collect(),
    ));
    for r in rows {
        out.push_str(&line((0..ncol).map(|i| pad(r.get(i).map(String::as_str).unwrap_or(""), w[i], i > 0)).collect()));
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time.
pub fn iso8601_utc(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::measure::{FileSize, IoCounters};
    use crate::probe::SyncCounts;
    use crate::runner::TestSample;
    use crate::workload::{generate, Scale};

    pub(crate) fn fake_report(workload: &Workload) -> Report<'_> {
        let mut records = Vec::new();
        for run in 1..=3u32 {
            for (k, &c) in Config::ALL.iter().enumerate() {
                records.push(RunRecord {
                    config: c,
                    run,
                    tests: workload
                        .tests
                        .iter()
                        .enumerate()
                        .map(|(i, _)| TestSample {
                            seconds: 0.1 * (k + 1) as f64 + 0.01 * i as f64 + 0.001 * run as f64,
                            io: Some(IoCounters { wchar: 8192, write_bytes: 4096, cancelled_write_bytes: 0 }),
                            vfs_syncs: c.is_pagelog().then_some(1001),
                            device_bytes: Some(12288),
                        })
                        .collect(),
                    close_seconds: Some(0.001),
                    size_open: Some(Sizes { files: vec![FileSize { suffix: "".into(), len: 8192, allocated: 8192 }] }),
                    size_closed: Sizes { files: vec![FileSize { suffix: "".into(), len: 4096, allocated: 4096 }] },
                    journal_mode: "delete".into(),
                    synchronous: c.synchronous().1,
                });
            }
        }
        Report {
            meta: Meta {
                sqlite_version: "3.x".into(),
                mode: "in-process".into(),
                mode_detail: "test".into(),
                dir: PathBuf::from("/nowhere"),
                filesystem: None,
                cpu: None,
                date: iso8601_utc(0),
                runs: 3,
                sync_before_test: true,
                pause_ms: 0,
            },
            workload,
            configs: Config::ALL.to_vec(),
            records,
            probes: Config::ALL
                .iter()
                .map(|&c| (c, ProbeOutcome::Counted(SyncCounts { fsync: 3003, fdatasync: 0, commits: 1001 })))
                .collect(),
        }
    }

    #[test]
    fn stats_take_the_median_and_range() {
        assert_eq!(stats(&[]), None);
        let s = stats(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
    }

    #[test]
    fn the_table_names_every_config_and_test() {
        let w = generate(Scale::new(0.01).unwrap(), true);
        let r = fake_report(&w);
        let text = r.render();
        for c in Config::ALL {
            assert!(text.contains(&format!("{c}, [s]")), "{c} column missing:\n{text}");
            assert!(text.contains(&format!("| {c} ")), "{c} summary row missing:\n{text}");
        }
        for t in &w.tests {
            assert!(text.contains(&format!("{}. {}", t.id, t.title)), "test {} missing", t.id);
        }
        // Three ratio columns, each at one synchronous level; none across levels.
        assert!(text.contains("pagelog-normal ÷ wal-normal"));
        assert!(text.contains("pagelog-full ÷ wal-full") && text.contains("pagelog-full ÷ delete-full"));
        assert!(!text.contains("pagelog-full ÷ wal-normal") && !text.contains("pagelog-normal ÷ delete-full"));
        // The verdict leads, in words.
        let verdict = text.find("Verdict").expect("no verdict");
        assert!(verdict < text.find("Seconds per test").unwrap());
        assert!(text.contains("synchronous=FULL   pagelog is"), "{text}");
        assert!(text.contains("synchronous=NORMAL pagelog is"), "{text}");
        for c in Config::ALL {
            let row = text.lines().rfind(|l| l.starts_with(&format!("| {c} "))).unwrap();
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells[3], c.synchronous().0, "synchronous by name: {row}");
        }
        assert!(text.contains("machine-wide"));
        // Median (min–max) of three runs of config 1, test 1: 0.101..0.103.
        assert!(text.contains("0.102 (0.101–0.103)"), "{text}");
        assert!(text.contains("3.00 (3003 fsync + 0 fdatasync / 1001 commits)"));
    }

    #[test]
    fn the_json_holds_every_sample() {
        let w = generate(Scale::new(0.01).unwrap(), true);
        let r = fake_report(&w);
        let v = r.to_json();
        // Round-trip through text, as a consumer would read it.
        let v: Value = serde_json::from_str(&serde_json::to_string_pretty(&v).unwrap()).unwrap();
        let samples = v["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 3 * Config::ALL.len() * w.tests.len());
        for c in Config::ALL {
            for t in &w.tests {
                let n = samples.iter().filter(|s| s["config"] == c.name() && s["test"] == t.id).count();
                assert_eq!(n, 3, "{c} test {}", t.id);
            }
            assert!(v["configs"].as_array().unwrap().iter().any(|x| x["config"] == c.name()));
        }
        assert_eq!(v["tests"].as_array().unwrap().len(), w.tests.len());
        assert_eq!(v["ratios"].as_array().unwrap().len(), 6 * w.tests.len());
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
