//! `pagelog compact`: smaller file, kept versions byte-identical, refused
//! while the database is open.

mod common;
use common::*;

fn compact(db: &std::path::Path, args: &[&str]) -> Run {
    let mut a: Vec<std::ffi::OsString> = vec!["compact".into(), db.into()];
    a.extend(args.iter().map(|s| s.into()));
    pagelog(a)
}

/// A log with 20 versions, some of them large.
fn busy_log(d: &TempDir) -> std::path::PathBuf {
    let db = d.path("app.db");
    let c = open(&db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)").unwrap();
    for i in 2..=20 {
        if i % 5 == 0 {
            c.execute("UPDATE t SET v = randomblob(3000)", []).unwrap();
        } else {
            c.execute("INSERT INTO t VALUES(?1, randomblob(2000 + ?1 * 10))", [i]).unwrap();
        }
    }
    assert_eq!(version(&c), 20);
    db
}

#[test]
fn compact_keep_last_shrinks_the_file_and_keeps_versions_identical() {
    let d = TempDir::new("compact-last");
    let db = busy_log(&d);
    let before: Vec<(u64, Vec<u8>)> = (16..=20).map(|n| (n, export(&db, n, &d.path("e.sqlite")))).collect();
    let times: Vec<serde_json::Value> = history(&db).into_iter().take(5).collect();
    // The log's bytes, not the file's (which ends in pre-allocated zeros).
    let size_before = times[0]["offset"].as_u64().unwrap() + times[0]["bytes"].as_u64().unwrap();

    let r = compact(&db, &["--keep-last", "5"]).ok();
    assert!(r.stdout.contains("kept versions 16 to 20"), "{}", r.stdout);
    let size_after = std::fs::metadata(&db).unwrap().len();
    // What is kept: version 16's pages, copied whole, and the records of
    // versions 17 to 20; a page they stored as a patch whose base only a
    // dropped version had is copied whole (at most a page each).
    let n = |t: &serde_json::Value, k: &str| t[k].as_u64().unwrap();
    let ps = n(&times[4], "page_size");
    let kept = n(&times[4], "db_pages") * ps
        + times[..4].iter().map(|t| n(t, "bytes") + n(t, "pages_written") * ps).sum::<u64>();
    assert!(size_after < size_before, "{size_before} -> {size_after}");
    assert!(size_after <= kept + 16 * 1024, "{size_before} -> {size_after}, keeping about {kept} bytes");
    assert_eq!(versions(&db), vec![20, 19, 18, 17, 16]);
    for (n, bytes) in &before {
        assert_eq!(&export(&db, *n, &d.path("e.sqlite")), bytes, "version {n} changed");
    }
    // Numbers, timestamps and checksums are unchanged; the oldest is a full map.
    let after = history(&db);
    for (a, b) in after.iter().zip(&times) {
        for k in ["version", "timestamp_us", "checksum", "db_pages"] {
            assert_eq!(a[k], b[k], "{k}");
        }
    }
    assert_eq!(after[4]["full_map"], true);
    pagelog(["verify".as_ref(), db.as_os_str()]).ok();
    assert!(d.files().iter().all(|f| !f.contains("compact-tmp")), "{:?}", d.files());

    // Removed versions are gone; the log keeps working.
    let r = pagelog(["export".as_ref(), db.as_os_str(), d.path("old").as_os_str(), "--version".as_ref(), "3".as_ref()])
        .expect_code(1);
    assert!(r.stderr.contains("removed by compaction"), "{}", r.stderr);
    assert_eq!(export(&db, 0, &d.path("e.sqlite")), b"", "version 0 is still the empty database");
    let c = open(&db);
    assert_eq!(rows(&c, "PRAGMA integrity_check"), vec!["ok"]);
    c.execute("INSERT INTO t VALUES(1000, x'00')", []).unwrap();
    assert_eq!(version(&c), 21);
    drop(c);
    assert_eq!(pagelog(["revert".as_ref(), db.as_os_str(), "--to".as_ref(), "16".as_ref()]).ok().stdout.trim(), "22");
    assert_eq!(export(&db, 22, &d.path("e.sqlite")).len(), before[0].1.len());
    // Compacting a compacted log again.
    compact(&db, &["--keep-last", "2"]).ok();
    assert_eq!(versions(&db), vec![22, 21]);
    pagelog(["verify".as_ref(), db.as_os_str()]).ok();
}

#[test]
fn compact_keep_since_keeps_versions_from_that_time() {
    let d = TempDir::new("compact-since");
    let db = busy_log(&d);
    let h = history(&db);
    let t = h.iter().find(|v| v["version"] == 12).unwrap()["time"].as_str().unwrap().to_string();
    let first =
        h.iter().rev().find(|v| v["time"].as_str().unwrap() >= t.as_str()).unwrap()["version"].as_u64().unwrap();
    let keep: Vec<(u64, Vec<u8>)> = (first..=20).map(|n| (n, export(&db, n, &d.path("e.sqlite")))).collect();
    compact(&db, &["--keep-since", &t]).ok();
    assert_eq!(*versions(&db).last().unwrap(), first);
    for (n, bytes) in &keep {
        assert_eq!(&export(&db, *n, &d.path("e.sqlite")), bytes, "version {n}");
    }
    // A time after the latest keeps only the latest.
    compact(&db, &["--keep-since", "2999-01-01T00:00:00Z"]).ok();
    assert_eq!(versions(&db), vec![20]);
    // Nothing left to remove: the file is not rewritten.
    let bytes = std::fs::read(&db).unwrap();
    let r = compact(&db, &["--keep-last", "1"]).ok();
    assert!(r.stdout.contains("nothing to compact"), "{}", r.stdout);
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
}

#[test]
fn compact_is_refused_while_a_connection_has_the_database_open() {
    let d = TempDir::new("compact-open");
    let db = busy_log(&d);
    let c = open(&db);
    let bytes = std::fs::read(&db).unwrap();
    let r = compact(&db, &["--keep-last", "1"]).expect_code(1);
    assert!(r.stderr.contains("open"), "{}", r.stderr);
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    assert!(d.files().iter().all(|f| !f.contains("compact-tmp")), "{:?}", d.files());
    drop(c);
    compact(&db, &["--keep-last", "1"]).ok();
    assert_eq!(versions(&db), vec![20]);
}

#[test]
fn compact_needs_exactly_one_keep_option() {
    let d = TempDir::new("compact-usage");
    let db = busy_log(&d);
    assert_eq!(compact(&db, &[]).code, 2);
    assert_eq!(compact(&db, &["--keep-last", "0"]).code, 2);
    assert_eq!(compact(&db, &["--keep-last", "1", "--keep-since", "0"]).code, 2);
    assert_eq!(versions(&db).len(), 20);
}
