//! The scale suite's `open`, `growth`, `retain` and `open4` parts and the
//! concurrency suite, run small (`--quick`; `open4` at 8 MiB): the harness
//! works end to end (sqlite3 processes with the extension loaded, worker
//! processes, the report's structure).
//! Nothing here is timed: the figures of a quick run mean nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("speedtest-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The loadable extension cargo built beside this test binary.
fn extension() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for cand in [deps.join("libpagelog.so"), deps.parent().unwrap().join("libpagelog.so")] {
        if cand.exists() {
            return cand;
        }
    }
    panic!("libpagelog.so not found next to {}; run `cargo build -p pagelog`", exe.display());
}

fn run_json(args: &[&str], json: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_speedtest")).args(args).output().expect("run speedtest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "speedtest {args:?} failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

fn row<'a>(v: &'a Value, key: &str) -> &'a Value {
    let rows = v["rows"].as_array().unwrap();
    rows.iter().find(|r| r["key"] == key).unwrap_or_else(|| panic!("no row {key} in {v:#}"))
}

#[test]
fn quick_open_growth_and_retain_parts_report_every_state() {
    let dir = scratch("quick-scale");
    let json = dir.join("out.json");
    let ext = extension();
    let v = run_json(
        &[
            "--suite",
            "scale",
            "--quick",
            "--parts",
            "open,growth,retain",
            "--pairs",
            "3",
            "--retain",
            "1000 versions",
            "--extension",
            ext.to_str().unwrap(),
            "--quiet",
            "--dir",
            dir.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
        &json,
    );
    assert_eq!(v["suite"], "scale");
    assert!(v["machine"].as_str().unwrap().contains("cores"));
    for state in ["a", "b", "c"] {
        let cpu = row(&v, &format!("open_cpu_{state}"));
        for side in ["pagelog", "stock"] {
            assert_eq!(cpu[side]["seconds"].as_array().unwrap().len(), 3, "{state} {side}");
            let rss = &row(&v, &format!("open_rss_{state}"))[side];
            assert!(rss["samples"].as_array().unwrap().iter().all(|x| x.as_f64().unwrap() > 0.0), "{rss}");
        }
        assert_eq!(row(&v, &format!("open_pair_{state}"))["pagelog"]["samples"].as_array().unwrap().len(), 3);
    }
    assert!(row(&v, "open_version_old")["label"].as_str().unwrap().contains("500 commits old"));
    // 2000 growth commits sampled every 500: the start and four samples, never shrinking
    // without a policy.
    for side in ["pagelog", "stock"] {
        let curve = row(&v, "growth_blocks")[side]["samples"].as_array().unwrap().clone();
        let commits: Vec<u64> = curve.iter().map(|s| s["commits"].as_u64().unwrap()).collect();
        assert_eq!(commits, [0, 500, 1000, 1500, 2000], "{side}");
        assert_eq!(row(&v, "growth_commits")[side]["ops"], 2000, "{side}");
        assert_eq!(row(&v, "growth_latency")[side]["n"], 2000, "{side}");
        assert!(row(&v, "growth_reads")[side]["ops"].as_u64().unwrap() > 0, "{side}");
    }
    // Retention (format 4): both logs sampled after every chunk, the same
    // commits made to each, the policy's steady-state ratio per sample, and
    // a budget below the database refused.
    for key in ["retain_blocks_policy", "retain_blocks_none", "retain_log_end"] {
        let curve = row(&v, key)["pagelog"]["samples"].as_array().unwrap().clone();
        let commits: Vec<u64> = curve.iter().map(|s| s["commits"].as_u64().unwrap()).collect();
        assert_eq!(commits, [0, 500, 1000, 1500, 2000], "{key}");
    }
    assert_eq!(row(&v, "retain_ratio")["pagelog"]["samples"].as_array().unwrap().len(), 5);
    for key in ["retain_commits_policy", "retain_commits_none"] {
        assert_eq!(row(&v, key)["pagelog"]["ops"], 2000, "{key}");
    }
    for key in ["retain_reads_policy", "retain_reads_none"] {
        assert!(row(&v, key)["pagelog"]["ops"].as_u64().unwrap() > 0, "{key}");
    }
    let refused = row(&v, "retain_budget_refused")["pagelog"]["missing"].as_str().unwrap();
    assert!(refused.starts_with("refused: "), "{refused}");
    let names: Vec<&str> = v["targets"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.iter().filter(|n| n.contains("issue 21")).count() == 4, "{names:?}");
    assert!(names.iter().filter(|n| n.contains("issue 20")).count() == 4, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap(); // about 250 MiB of databases
}

#[test]
fn open4_part_reports_three_sides_and_the_select_ratio() {
    let dir = scratch("open4");
    let json = dir.join("out.json");
    let ext = extension();
    let args = ["--suite", "scale", "--parts", "open4", "--scale-size", "8MiB", "--scale-processes", "10"];
    let more = ["--scale-versions", "600", "--version-age", "500", "--pairs", "2", "--quiet"];
    let mut all: Vec<&str> = args.iter().chain(&more).copied().collect();
    all.extend(["--extension", ext.to_str().unwrap(), "--dir", dir.to_str().unwrap()]);
    all.extend(["--json", json.to_str().unwrap()]);
    let v = run_json(&all, &json);
    for state in ["a", "b", "c"] {
        for key in [format!("open4_cpu_{state}"), format!("open4_f3_cpu_{state}")] {
            for side in ["pagelog", "stock"] {
                assert_eq!(row(&v, &key)[side]["seconds"].as_array().unwrap().len(), 2, "{key} {side}");
            }
        }
    }
    for key in ["open4_version_old", "open4_f3_version_old"] {
        assert!(row(&v, key)["label"].as_str().unwrap().contains("500 commits old"), "{key}");
    }
    assert_eq!(row(&v, "open4_select_ratio")["pagelog"]["samples"].as_array().unwrap().len(), 12);
    let names: Vec<&str> = v["targets"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.iter().filter(|n| n.contains("issue 21")).count(), 9, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn open4_without_format_3_measures_format_4_against_stock_only() {
    let dir = scratch("open4-skip-f3");
    let json = dir.join("out.json");
    let ext = extension();
    let args = ["--suite", "scale", "--parts", "open4", "--open4-skip-format3", "--scale-size", "8MiB"];
    let more = ["--scale-processes", "5", "--scale-versions", "300", "--version-age", "200", "--pairs", "2", "--quiet"];
    let mut all: Vec<&str> = args.iter().chain(&more).copied().collect();
    all.extend(["--extension", ext.to_str().unwrap(), "--dir", dir.to_str().unwrap()]);
    all.extend(["--json", json.to_str().unwrap()]);
    let v = run_json(&all, &json);
    let keys: Vec<&str> = v["rows"].as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap()).collect();
    for state in ["a", "b", "c"] {
        let key = format!("open4_cpu_{state}");
        for side in ["pagelog", "stock"] {
            assert_eq!(row(&v, &key)[side]["seconds"].as_array().unwrap().len(), 2, "{key} {side}");
        }
    }
    assert!(keys.iter().all(|k| !k.starts_with("open4_f3_")), "no format-3 rows: {keys:?}");
    assert!(!dir.join("open4-f3.db").exists(), "no format-3 file");
    assert!(row(&v, "open4_version_old")["label"].as_str().unwrap().contains("200 commits old"));
    assert_eq!(row(&v, "open4_select_ratio")["pagelog"]["samples"].as_array().unwrap().len(), 12);
    let names: Vec<&str> = v["targets"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.iter().filter(|n| n.contains("issue 21")).count(), 4, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn quick_concurrency_suite_reports_every_workload() {
    let dir = scratch("quick-concurrency");
    let json = dir.join("out.json");
    let v = run_json(
        &[
            "--suite",
            "concurrency",
            "--quick",
            "--runs",
            "1",
            "--round-secs",
            "0.2",
            "--quiet",
            "--dir",
            dir.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
        &json,
    );
    assert_eq!(v["suite"], "concurrency");
    let rows = v["rows"].as_array().unwrap();
    for w in ["1w+2r FULL", "1w+2r NORMAL", "1w+8r FULL", "1w+8r NORMAL", "4w FULL", "16w FULL", "8w FULL busy 5s"] {
        let of = |m: &str| rows.iter().find(|r| r["workload"] == w && r["metric"] == m);
        let writes = of("writes/s (commits/s)").unwrap_or_else(|| panic!("{w}: no writes/s"));
        for side in ["pagelog", "stock"] {
            assert_eq!(writes[side].as_array().unwrap().len(), 1, "{w} {side}");
        }
        assert_eq!(of("reads/s").is_some(), w.contains("r "), "{w}: reads/s only with readers");
        assert!(of("longest write wait ms").is_some() && of("SQLITE_BUSY failures").is_some(), "{w}");
        assert_eq!(of("slowest writer ÷ mean writer").is_some(), !w.starts_with("1w"), "{w}: share only with writers");
    }
    // The templates and trial files are removed.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("out.json")], "{left:?}");
}
