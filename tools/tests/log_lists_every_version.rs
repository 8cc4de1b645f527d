//! `pagelog log` and `pagelog info` on a log with a known history.

mod common;
use common::*;

#[test]
fn log_lists_one_line_per_version_newest_first() {
    let d = TempDir::new("log-lines");
    let db = d.path("app.db");
    let _c = make_log(&db, 12);
    let r = pagelog(["log".as_ref(), db.as_os_str()]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].contains("version") && lines[0].contains("time"), "a header line: {}", lines[0]);
    let listed: Vec<u64> = lines[1..].iter().map(|l| l.split_whitespace().next().unwrap().parse().unwrap()).collect();
    assert_eq!(listed, (1..=12).rev().collect::<Vec<u64>>());
    // Each line: version, ISO-8601 UTC time, pages written, db pages, bytes.
    let f: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(f.len(), 5, "{}", lines[1]);
    assert!(f[1].ends_with('Z') && f[1].contains('T'), "{}", f[1]);
}

#[test]
fn log_json_parses_and_describes_each_transaction() {
    let d = TempDir::new("log-json");
    let db = d.path("app.db");
    let c = make_log(&db, 6);
    let h = history(&db);
    assert_eq!(h.len(), 6);
    for (i, v) in h.iter().enumerate() {
        assert_eq!(v["version"].as_u64().unwrap(), 6 - i as u64);
        assert_eq!(v["page_size"].as_u64().unwrap(), 4096);
        assert!(v["pages_written"].as_u64().unwrap() >= 1);
        assert!(v["bytes"].as_u64().unwrap() > 0);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
    // Times are in commit order, and the offsets grow.
    let ts: Vec<u64> = h.iter().rev().map(|v| v["timestamp_us"].as_u64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    let offs: Vec<u64> = h.iter().rev().map(|v| v["offset"].as_u64().unwrap()).collect();
    assert!(offs.windows(2).all(|w| w[0] < w[1]), "{offs:?}");
    assert_eq!(
        h[0]["db_pages"].as_u64().unwrap(),
        c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0)).unwrap() as u64
    );
    // Version 1 is a full page map.
    assert_eq!(h[5]["full_map"], serde_json::Value::Bool(true));
}

#[test]
fn log_limit_and_since_select_the_newest_versions() {
    let d = TempDir::new("log-filter");
    let db = d.path("app.db");
    let _c = make_log(&db, 10);
    let r = pagelog(["log".as_ref(), db.as_os_str(), "--json".as_ref(), "--limit".as_ref(), "3".as_ref()]).ok();
    let v: Vec<u64> = r.json().as_array().unwrap().iter().map(|x| x["version"].as_u64().unwrap()).collect();
    assert_eq!(v, vec![10, 9, 8]);

    let all = history(&db);
    let t7 = all.iter().find(|v| v["version"] == 7).unwrap();
    let t7_us = t7["timestamp_us"].as_u64().unwrap();
    let expect: Vec<u64> = all
        .iter()
        .filter(|v| v["timestamp_us"].as_u64().unwrap() >= t7_us)
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert!(expect.contains(&7) && expect.contains(&10));
    // As ISO-8601 UTC (with microseconds) and as unix seconds with a fraction.
    let iso = t7["time"].as_str().unwrap().to_string();
    let unix = format!("{}.{:06}", t7_us / 1_000_000, t7_us % 1_000_000);
    for since in [iso, unix] {
        let r = pagelog(["log".as_ref(), db.as_os_str(), "--json".as_ref(), "--since".as_ref(), since.as_ref()]).ok();
        let got: Vec<u64> = r.json().as_array().unwrap().iter().map(|x| x["version"].as_u64().unwrap()).collect();
        assert_eq!(got, expect, "--since {since}");
    }
    let r = pagelog(["log".as_ref(), db.as_os_str(), "--since".as_ref(), "2999-01-01T00:00:00Z".as_ref()]).ok();
    assert_eq!(r.stdout, "");
    // A time without a zone is refused as a usage error.
    let r = pagelog(["log".as_ref(), db.as_os_str(), "--since".as_ref(), "2026-01-01T00:00:00".as_ref()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("UTC"), "{}", r.stderr);
}

#[test]
fn info_reports_versions_sizes_and_what_compaction_would_reclaim() {
    let d = TempDir::new("info");
    let db = d.path("app.db");
    let c = make_log(&db, 8);
    let pages = c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0)).unwrap() as u64;
    let r = pagelog(["info".as_ref(), db.as_os_str(), "--json".as_ref()]).ok();
    let j = r.json();
    assert_eq!(j["format_version"], pagelog::format::FORMAT_VERSION);
    assert_eq!(j["page_size"], 4096);
    assert_eq!(j["versions"], 8);
    assert_eq!(j["oldest_version"], 1);
    assert_eq!(j["latest_version"], 8);
    assert_eq!(j["file_size"].as_u64().unwrap(), std::fs::metadata(&db).unwrap().len());
    assert_eq!(j["live_size"].as_u64().unwrap(), pages * 4096);
    let reclaimable = j["reclaimable"].as_u64().unwrap();
    assert!(reclaimable > 0 && reclaimable < j["file_size"].as_u64().unwrap());
    let text = pagelog(["info".as_ref(), db.as_os_str()]).ok().stdout;
    for k in ["format", "page size", "versions", "file size", "live size", "reclaimable"] {
        assert!(text.contains(k), "info lacks {k}:\n{text}");
    }
}

#[test]
fn an_empty_log_has_no_versions() {
    let d = TempDir::new("log-empty");
    let db = d.path("empty.db");
    std::fs::write(&db, b"").unwrap();
    assert_eq!(pagelog(["log".as_ref(), db.as_os_str()]).ok().stdout, "");
    assert_eq!(versions(&db), Vec::<u64>::new());
    let j = pagelog(["info".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json();
    assert_eq!(j["versions"], 0);
    assert_eq!(j["reclaimable"], 0);
    assert_eq!(std::fs::read(&db).unwrap(), b"");
}

#[test]
fn a_missing_file_is_an_error_naming_it_and_is_not_created() {
    let d = TempDir::new("log-missing");
    let db = d.path("nope.db");
    let r = pagelog(["log".as_ref(), db.as_os_str()]).expect_code(1);
    assert!(r.stderr.starts_with("pagelog: open log "), "{}", r.stderr);
    assert!(r.stderr.contains("nope.db"), "{}", r.stderr);
    assert!(!db.exists());
}
