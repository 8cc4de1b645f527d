//! The harness end to end at a tiny scale, stock configurations only (the
//! pagelog VFS is tested where it lives). Nothing here is timed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::Connection;
use serde_json::Value;
use speedtest::config::Config;
use speedtest::runner;
use speedtest::workload::{generate, Scale};

fn speedtest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_speedtest")).args(args).output().expect("run the speedtest binary")
}

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("speedtest-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn count(db: &Path, table: &str) -> i64 {
    let c = Connection::open(db).unwrap();
    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

#[test]
fn a_tiny_run_leaves_the_rows_the_script_implies() {
    let dir = scratch("tiny");
    let json = dir.join("out.json");
    let out = speedtest(&[
        "--scale",
        "0.01",
        "--runs",
        "1",
        "--configs",
        "delete-full,wal-normal",
        "--quiet",
        "--dir",
        dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "speedtest failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    // 1000 and 25000 rows, scaled by 0.01.
    for cfg in ["delete-full", "wal-normal"] {
        let db = dir.join(format!("speedtest-{cfg}.db"));
        assert_eq!(count(&db, "t1"), 10, "{cfg}");
        assert_eq!(count(&db, "t2"), 250, "{cfg}");
        assert!(stdout.contains(&format!("{cfg}, [s]")), "{stdout}");
    }
    assert!(stdout.contains("1. 10 INSERTs"));
    assert!(stdout.contains("4. 100 SELECTs on a string comparison"));

    // Two stock configurations: no like-for-like pair, and the verdict says so.
    assert!(stdout.contains("Verdict") && stdout.contains("none: no pagelog and stock configuration"), "{stdout}");
    // The chart beside the JSON: a panel per test.
    let svg = std::fs::read_to_string(dir.join("out.svg")).expect("the chart beside the JSON");
    assert!(svg.starts_with("<svg") && svg.contains("1. 10 INSERTs") && svg.contains("wal-normal"), "{svg}");

    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["samples"].as_array().unwrap().len(), 2 * 4);
    assert_eq!(v["scale"]["t2_rows"], 250);
    for c in v["configs"].as_array().unwrap() {
        let probe = &c["fsync_probe_test1"];
        if probe.get("not_available").is_none() {
            assert_eq!(probe["commits"], 11);
        }
    }
    // delete-full syncs at least once per commit (its journal), if strace counted.
    let delete = &v["configs"][0]["fsync_probe_test1"];
    if let Some(per) = delete["per_commit"].as_f64() {
        assert!(per >= 1.0, "{delete}");
    }
}

#[test]
fn all_fifteen_tests_keep_the_tables_the_model_predicts() {
    let dir = scratch("model");
    let w = generate(Scale::new(0.01).unwrap(), true);
    let cfg = Config::WalFull;
    let path = runner::db_path(&dir, cfg);
    let conn = runner::open(cfg, &path).unwrap();
    runner::setup(&conn, cfg).unwrap();
    for t in &w.tests {
        runner::run_test(&conn, t).unwrap();
        runner::check_counts(&conn, cfg, t.expect).unwrap_or_else(|e| panic!("after test {} ({}): {e}", t.id, t.title));
    }
    // The DELETEs did delete something, so the model was exercised.
    let after_10 = w.tests[9].expect.t2.unwrap();
    let after_12 = w.tests[11].expect.t2.unwrap();
    assert!(after_12 < after_10);
}

#[test]
fn the_shell_mode_runs_the_same_sql() {
    if Command::new("sqlite3").arg("-version").output().is_err() {
        eprintln!("sqlite3 not found: skipping --shell");
        return;
    }
    let dir = scratch("shell");
    let out = speedtest(&[
        "--shell",
        "--scale",
        "0.01",
        "--runs",
        "1",
        "--configs",
        "wal-full",
        "--all-tests",
        "--quiet",
        "--no-fsync-probe",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "speedtest --shell failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("15. DROP TABLE"), "{stdout}");
    // After DROP TABLE nothing is left.
    let c = Connection::open(dir.join("speedtest-wal-full.db")).unwrap();
    let n: i64 = c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn bad_input_is_refused_with_a_message() {
    for (args, needle) in [
        (&["--configs", "nope"][..], "invalid value 'nope'"),
        (&["--configs", "wal-full,wal-full"][..], "twice"),
        (&["--scale", "0"][..], "scale must be"),
        (&["--scale", "x"][..], "not a number"),
        (&["--runs", "0"][..], "--runs"),
    ] {
        let out = speedtest(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
