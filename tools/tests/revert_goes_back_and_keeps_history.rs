//! `pagelog revert`, seen by connections of another process (this one), and
//! reading old versions through `?version=N`.

mod common;
use common::*;

fn revert(db: &std::path::Path, to: u64) -> u64 {
    let to = to.to_string();
    let r = pagelog(["revert".as_ref(), db.as_os_str(), "--to".as_ref(), to.as_ref()]).ok();
    r.stdout.trim().parse().unwrap_or_else(|_| panic!("revert printed {:?}", r.stdout))
}

#[test]
fn revert_and_revert_of_revert_restore_contents_and_versions_keep_growing() {
    let d = TempDir::new("revert");
    let db = d.path("app.db");
    let c = make_log(&db, 10);
    drop(c);
    let at = |n: u64| rows(&open_version(&db, n), "SELECT id, v FROM t ORDER BY id");

    let v11 = revert(&db, 4);
    assert_eq!(v11, 11);
    assert_eq!(at(11), at(4));
    assert_eq!(at(11).len(), 3);
    let v12 = revert(&db, 10);
    assert_eq!(v12, 12);
    assert_eq!(at(12), at(10));
    // Revert of the revert: version 11 again.
    assert_eq!(revert(&db, 11), 13);
    assert_eq!(at(13), at(4));
    assert_eq!(versions(&db), (1..=13).rev().collect::<Vec<_>>());
    // A revert writes one page (page 1); the others are shared.
    let h = history(&db);
    assert_eq!(h[0]["pages_written"], 1);
    // The reverted database is sound, and can be written again.
    let c = open(&db);
    assert_eq!(rows(&c, "PRAGMA integrity_check"), vec!["ok"]);
    c.execute("INSERT INTO t VALUES(100, 'after', NULL)", []).unwrap();
    assert_eq!(version(&c), 14);
    assert_eq!(rows(&c, "SELECT count(*) FROM t"), vec!["4"]);
}

#[test]
fn reverting_to_a_version_that_does_not_exist_fails_and_changes_nothing() {
    let d = TempDir::new("revert-bad");
    let db = d.path("app.db");
    drop(make_log(&db, 3));
    let before = std::fs::read(&db).unwrap();
    let r = pagelog(["revert".as_ref(), db.as_os_str(), "--to".as_ref(), "9".as_ref()]).expect_code(1);
    assert!(r.stderr.contains("version 9 does not exist"), "{}", r.stderr);
    assert_eq!(std::fs::read(&db).unwrap(), before);
    // Reverting to the latest does nothing.
    assert_eq!(revert(&db, 3), 3);
    assert_eq!(std::fs::read(&db).unwrap(), before);
    // No --to: a usage error.
    assert_eq!(pagelog(["revert".as_ref(), db.as_os_str()]).code, 2);
}

#[test]
fn a_connection_held_open_across_a_revert_sees_the_old_schema_and_later_changes() {
    let d = TempDir::new("revert-held");
    let db = d.path("app.db");
    let held = open(&db);
    held.execute_batch("CREATE TABLE a(x); INSERT INTO a VALUES(1); INSERT INTO a VALUES(2);").unwrap();
    let n = version(&held);
    assert_eq!(n, 3);
    held.execute_batch("CREATE TABLE b(y); INSERT INTO b VALUES('b'); DROP TABLE a;").unwrap();
    assert!(!table_exists(&held, "a"));
    assert_eq!(version(&held), 6);

    // Another process reverts while `held` stays open.
    assert_eq!(revert(&db, n), 7);
    assert_eq!(version(&held), 7);
    assert!(table_exists(&held, "a"), "the dropped table is back");
    assert!(!table_exists(&held, "b"));
    assert_eq!(rows(&held, "SELECT x FROM a ORDER BY x"), vec!["1", "2"]);

    // A further schema change by another connection is seen by `held`.
    let other = open(&db);
    other.execute_batch("CREATE TABLE c(z); INSERT INTO c VALUES('c');").unwrap();
    assert_eq!(rows(&held, "SELECT z FROM c"), vec!["c"]);
    held.execute("INSERT INTO a VALUES(3)", []).unwrap();
    assert_eq!(rows(&other, "SELECT count(*) FROM a"), vec!["3"]);

    // Revert of the revert, still under both connections.
    let v = revert(&db, 6);
    assert!(!table_exists(&held, "a") && !table_exists(&other, "c"));
    assert_eq!(rows(&held, "SELECT y FROM b"), vec!["b"]);
    assert_eq!(version(&other), v);
    assert_eq!(rows(&held, "PRAGMA integrity_check"), vec!["ok"]);
}

#[test]
fn a_version_uri_reads_that_version_and_refuses_writes() {
    let d = TempDir::new("version-uri");
    let db = d.path("app.db");
    let c = make_log(&db, 5);
    let old = open_version(&db, 3);
    assert_eq!(rows(&old, "SELECT id FROM t ORDER BY id"), vec!["2", "3"]);
    assert_eq!(version(&old), 3);
    // New commits do not change what the pinned connection reads.
    c.execute("INSERT INTO t VALUES(50, 'x', NULL)", []).unwrap();
    assert_eq!(rows(&old, "SELECT count(*) FROM t"), vec!["2"]);
    let err = old.execute("INSERT INTO t VALUES(99, 'no', NULL)", []).unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::ReadOnly), "{err}");
    // The latest through the CLI agrees.
    assert_eq!(versions(&db)[0], 6);
}

/// A revert to a version whose pages are damaged committed a new latest
/// version made of that damage: the database itself then failed with
/// "database disk image is malformed", though the latest read fine before.
/// The revert must be refused, naming the damage, and write nothing.
#[test]
fn a_revert_to_a_damaged_version_is_refused_and_the_latest_still_reads() {
    let d = TempDir::new("revert-damaged");
    let db = d.path("app.db");
    let frame = damage_a_page_only_version_2_reads(&db);
    let before = std::fs::read(&db).unwrap();

    let r = pagelog(["revert".as_ref(), db.as_os_str(), "--to".as_ref(), "2".as_ref()]).expect_code(1);
    assert!(r.stderr.contains("version 2"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("offset {frame}")), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_eq!(std::fs::read(&db).unwrap(), before, "the refused revert wrote to the log");

    // The latest version still reads in SQLite, and an intact version can
    // still be reverted to.
    let c = open(&db);
    assert_eq!(rows(&c, "SELECT count(*) FROM t"), ["1"]);
    drop(c);
    assert_eq!(revert(&db, 1), 5);
    assert_eq!(rows(&open(&db), "SELECT count(*) FROM t"), ["0"]);
}

/// The refusal is `Log::revert`'s, so every caller gets it, not only this
/// tool: the library, in format 3 and in format 4 (whose maps are index
/// trees), refuses a revert to a version whose damaged page the latest
/// does not share, names the damage, and writes nothing. Before, the
/// library committed the damage as the latest version.
#[test]
fn the_library_refuses_a_revert_to_a_damaged_version_in_formats_3_and_4() {
    for format4 in [false, true] {
        let d = TempDir::new("revert-damaged-lib");
        let db = d.path("app.db");
        let c = open(&db);
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)").unwrap();
        c.execute_batch("INSERT INTO t VALUES(1, randomblob(3000))").unwrap();
        for _ in 3..=4 {
            c.execute_batch("UPDATE t SET b = randomblob(3000)").unwrap();
        }
        drop(c);
        if format4 {
            pagelog(["upgrade".as_ref(), db.as_os_str(), "--format".as_ref(), "4".as_ref()]).ok();
        }
        // Page 2 as version 2 stores it (random bytes: a frame, not a patch).
        let log = pagelog::Log::open(&db, pagelog::OpenOptions::default()).unwrap();
        let latest = log.refresh().unwrap();
        let old = log.version(2).unwrap().map.try_get(2).unwrap().unwrap();
        assert_ne!(Some(old), latest.map.try_get(2).unwrap(), "version 2 and the latest share page 2");
        drop(log);
        flip(&db, old.offset + 200, 0xff);
        let before = std::fs::read(&db).unwrap();

        let log = pagelog::Log::open(&db, pagelog::OpenOptions::default()).unwrap();
        let e = match log.revert(2, std::time::Duration::from_secs(5)) {
            Err(e) => e,
            Ok(v) => {
                panic!("format 4: {format4}: the revert to damaged version 2 made version {:?}", v.map(|v| v.number))
            }
        };
        let msg = e.to_string();
        assert!(matches!(e, pagelog::Error::Unreadable { version: 2, .. }), "format 4: {format4}: {e:?}");
        assert!(msg.contains(&format!("offset {}", old.offset)), "format 4: {format4}: {msg}");
        drop(log);
        assert_eq!(std::fs::read(&db).unwrap(), before, "format 4: {format4}: the refused revert wrote");
        let c = open(&db);
        assert_eq!(rows(&c, "SELECT count(*) FROM t"), ["1"]);
        assert_eq!(version(&c), 4);
    }
}
