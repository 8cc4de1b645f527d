//! SQLite semantics through rusqlite: versions, rollback, spills, page sizes,
//! VACUUM, auto_vacuum, savepoints, attached databases, journal modes (WAL
//! kept as SQLite keeps it without shared memory), refused modes and URI
//! parameters, pragmas on plain databases, snapshot isolation and the
//! single writer.

use std::time::Duration;

use pagelog_e2e::{count, integrity, open, version, TempDir};
use rusqlite::ErrorCode;

#[test]
fn each_write_transaction_is_one_version_and_rollback_makes_none() {
    let d = TempDir::new("versions");
    let c = open(&d.path("a.db"));
    assert_eq!(version(&c), 0);
    c.execute_batch("CREATE TABLE t(x)").unwrap();
    assert_eq!(version(&c), 1);
    for i in 0..10 {
        c.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
    }
    assert_eq!(version(&c), 11);
    c.execute_batch("BEGIN; INSERT INTO t VALUES (99); INSERT INTO t VALUES (100); COMMIT").unwrap();
    assert_eq!(version(&c), 12);
    c.execute_batch("BEGIN; DELETE FROM t; ROLLBACK").unwrap();
    assert_eq!(version(&c), 12);
    assert_eq!(count(&c, "t"), 12);
    drop(c);
    let c = open(&d.path("a.db"));
    assert_eq!(version(&c), 12);
    assert_eq!(count(&c, "t"), 12);
    assert_eq!(integrity(&c), "ok");
}

#[test]
fn a_transaction_that_changes_no_page_makes_no_version() {
    let d = TempDir::new("noop");
    let c = open(&d.path("a.db"));
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    let v = version(&c);
    c.execute_batch("BEGIN IMMEDIATE; COMMIT").unwrap();
    c.execute("DELETE FROM t WHERE x = 42", []).unwrap();
    c.execute_batch("BEGIN; SELECT * FROM t; COMMIT").unwrap();
    assert_eq!(version(&c), v);
}

#[test]
fn rollback_after_the_page_cache_spilled_leaves_data_and_file_exactly_as_before() {
    let d = TempDir::new("spillrollback");
    let p = d.path("a.db");
    let c = open(&p);
    c.execute_batch("CREATE TABLE t(x, y); INSERT INTO t VALUES (1, 'one')").unwrap();
    let before_bytes = std::fs::read(&p).unwrap();
    let v = version(&c);
    // A tiny page cache makes SQLite write pages to the VFS mid-transaction;
    // a tiny spill limit makes pagelog spill them to the log tail.
    c.execute_batch("PRAGMA cache_size = 5; PRAGMA pagelog_spill_limit = 65536").unwrap();
    c.execute_batch("BEGIN; UPDATE t SET y = 'changed';").unwrap();
    for i in 0..3000 {
        c.execute("INSERT INTO t VALUES (?1, randomblob(200))", [i]).unwrap();
    }
    assert_ne!(std::fs::read(&p).unwrap(), before_bytes, "the transaction should have spilled to the log");
    c.execute_batch("ROLLBACK").unwrap();
    assert_eq!(version(&c), v);
    assert_eq!(count(&c, "t"), 1);
    let y: String = c.query_row("SELECT y FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(y, "one");
    assert_eq!(std::fs::read(&p).unwrap(), before_bytes, "rollback must leave the log byte-for-byte as before");
    assert_eq!(integrity(&c), "ok");
}

#[test]
fn a_transaction_larger_than_the_spill_limit_commits_whole() {
    let d = TempDir::new("bigtxn");
    let p = d.path("a.db");
    let c = open(&p);
    c.execute_batch("PRAGMA cache_size = 50; PRAGMA pagelog_spill_limit = 65536; CREATE TABLE t(x, b)").unwrap();
    c.execute_batch("BEGIN").unwrap();
    for i in 0..2000 {
        c.execute("INSERT INTO t VALUES (?1, randomblob(1000))", [i]).unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    assert_eq!(version(&c), 2);
    drop(c);
    let c = open(&p);
    assert_eq!(count(&c, "t"), 2000);
    let s: i64 = c.query_row("SELECT sum(x) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(s, 1999 * 2000 / 2);
    assert_eq!(integrity(&c), "ok");
}

#[test]
fn every_page_size_from_512_to_65536_works() {
    let d = TempDir::new("pagesizes");
    let mut ps = 512;
    while ps <= 65536 {
        let p = d.path(&format!("p{ps}.db"));
        let c = open(&p);
        c.execute_batch(&format!("PRAGMA page_size = {ps}; CREATE TABLE t(x, b)")).unwrap();
        for i in 0..50 {
            c.execute("INSERT INTO t VALUES (?1, randomblob(700))", [i]).unwrap();
        }
        drop(c);
        let c = open(&p);
        let got: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        assert_eq!(got, ps);
        assert_eq!(count(&c, "t"), 50);
        assert_eq!(integrity(&c), "ok");
        ps *= 2;
    }
}

#[test]
fn vacuum_works_and_can_change_the_page_size() {
    let d = TempDir::new("vacuum");
    let p = d.path("a.db");
    let c = open(&p);
    c.execute_batch("CREATE TABLE t(x, b)").unwrap();
    for i in 0..300 {
        c.execute("INSERT INTO t VALUES (?1, randomblob(500))", [i]).unwrap();
    }
    c.execute("DELETE FROM t WHERE x % 2 = 0", []).unwrap();
    let pages_before: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    c.execute_batch("VACUUM").unwrap();
    let pages_after: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    assert!(pages_after < pages_before, "{pages_after} < {pages_before}");
    c.execute_batch("PRAGMA page_size = 8192; VACUUM").unwrap();
    drop(c);
    let c = open(&p);
    let ps: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    assert_eq!(ps, 8192);
    assert_eq!(count(&c, "t"), 150);
    assert_eq!(integrity(&c), "ok");
    c.execute_batch("PRAGMA page_size = 1024; VACUUM").unwrap();
    let ps: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    assert_eq!(ps, 1024);
    assert_eq!(integrity(&c), "ok");
}

#[test]
fn auto_vacuum_full_and_incremental_shrink_the_database() {
    let d = TempDir::new("autovacuum");
    for mode in ["FULL", "INCREMENTAL"] {
        let p = d.path(&format!("{mode}.db"));
        let c = open(&p);
        c.execute_batch(&format!("PRAGMA auto_vacuum = {mode}; CREATE TABLE t(x, b)")).unwrap();
        for i in 0..200 {
            c.execute("INSERT INTO t VALUES (?1, randomblob(2000))", [i]).unwrap();
        }
        let big: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        c.execute("DELETE FROM t WHERE x >= 20", []).unwrap();
        if mode == "INCREMENTAL" {
            // incremental_vacuum frees one page per step: step it to the end.
            let mut st = c.prepare("PRAGMA incremental_vacuum").unwrap();
            let mut rows = st.query([]).unwrap();
            while rows.next().unwrap().is_some() {}
        }
        let small: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        assert!(small < big / 2, "{mode}: {small} pages after delete, {big} before");
        drop(c);
        let c = open(&p);
        assert_eq!(count(&c, "t"), 20);
        assert_eq!(integrity(&c), "ok");
    }
}

#[test]
fn savepoints_roll_back_to_and_release() {
    let d = TempDir::new("savepoints");
    let c = open(&d.path("a.db"));
    c.execute_batch(
        "CREATE TABLE t(x);
         BEGIN;
         INSERT INTO t VALUES (1);
         SAVEPOINT a;
         INSERT INTO t VALUES (2);
         SAVEPOINT b;
         INSERT INTO t VALUES (3);
         ROLLBACK TO b;
         RELEASE b;
         INSERT INTO t VALUES (4);
         ROLLBACK TO a;
         INSERT INTO t VALUES (5);
         RELEASE a;
         COMMIT;",
    )
    .unwrap();
    let v: Vec<i64> = c
        .prepare("SELECT x FROM t ORDER BY x")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(v, vec![1, 5]);
    assert_eq!(version(&c), 2);
}

#[test]
fn attached_pagelog_databases_commit_together() {
    let d = TempDir::new("attach");
    let c = open(&d.path("main.db"));
    let other = d.path("other.db");
    c.execute(&format!("ATTACH 'file:{}?vfs=pagelog' AS aux", other.display()), []).unwrap();
    c.execute_batch("CREATE TABLE t(x); CREATE TABLE aux.u(y); BEGIN; INSERT INTO t VALUES (1); INSERT INTO aux.u VALUES (2); COMMIT;")
        .unwrap();
    drop(c);
    let o = open(&other);
    let y: i64 = o.query_row("SELECT y FROM u", [], |r| r.get(0)).unwrap();
    assert_eq!(y, 2);
    assert_eq!(version(&o), 2);
    assert_eq!(integrity(&o), "ok");
}

#[test]
fn journal_modes_delete_truncate_persist_and_memory_work_and_leave_no_side_files() {
    let d = TempDir::new("journalmodes");
    for mode in ["DELETE", "TRUNCATE", "PERSIST", "MEMORY"] {
        let p = d.path(&format!("{mode}.db"));
        let c = open(&p);
        let got: String = c.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0)).unwrap();
        assert_eq!(got.to_uppercase(), mode);
        c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1); BEGIN; INSERT INTO t VALUES (2); ROLLBACK;")
            .unwrap();
        c.execute("INSERT INTO t VALUES (3)", []).unwrap();
        assert_eq!(count(&c, "t"), 2);
        assert_eq!(integrity(&c), "ok");
    }
    let files = d.files();
    assert_eq!(files, vec!["DELETE.db", "MEMORY.db", "PERSIST.db", "TRUNCATE.db"], "no journal files on disk");
}

/// SQLite's rule for `PRAGMA journal_mode`: "if the journal mode could not
/// be changed, the original journal mode is returned". Asked for WAL,
/// pagelog (a log itself, with no shared memory) keeps the mode in force and
/// says which, without an error, on main and on an attached database.
#[test]
fn journal_mode_wal_keeps_the_mode_in_force_and_answers_it_without_an_error() {
    let d = TempDir::new("wal-kept");
    let c = open(&d.path("a.db"));
    c.execute_batch("CREATE TABLE t(x)").unwrap();
    let wal = |c: &rusqlite::Connection, sql: &str| c.query_row(sql, [], |r| r.get::<_, String>(0)).unwrap();
    assert_eq!(wal(&c, "PRAGMA journal_mode = WAL"), "delete");
    assert_eq!(wal(&c, "PRAGMA journal_mode = memory"), "memory");
    assert_eq!(wal(&c, "PRAGMA main.journal_mode = 'wal'"), "memory");
    assert_eq!(wal(&c, "PRAGMA journal_mode"), "memory");
    c.execute(&format!("ATTACH '{}?vfs=pagelog' AS aux", pagelog_e2e::file_uri(&d.path("b.db"))), []).unwrap();
    c.execute_batch("CREATE TABLE aux.u(y)").unwrap();
    assert_eq!(wal(&c, "PRAGMA aux.journal_mode = WAL"), "delete");
    c.execute("INSERT INTO t VALUES (1)", []).unwrap();
    c.execute_batch("BEGIN; INSERT INTO t VALUES (2); ROLLBACK").unwrap();
    assert_eq!(count(&c, "t"), 1);
    assert_eq!(version(&c), 2);
    assert_eq!(d.files(), vec!["a.db", "b.db"], "no -wal or -shm file");
}

/// journal_mode=OFF would let a failed statement or a ROLLBACK TO leave half
/// its change for the next COMMIT: refused, saying why and what to use.
#[test]
fn journal_mode_off_and_exclusive_locking_are_refused_with_a_message() {
    let d = TempDir::new("refused");
    let c = open(&d.path("a.db"));
    c.execute_batch("CREATE TABLE t(x)").unwrap();
    for (sql, needle) in [
        ("PRAGMA journal_mode = OFF", "journal_mode=OFF is refused: without a journal SQLite cannot undo"),
        ("PRAGMA journal_mode = OFF", "use journal_mode=MEMORY"),
        ("PRAGMA locking_mode = EXCLUSIVE", "locking_mode=EXCLUSIVE is not supported"),
        ("PRAGMA pagelog_nonsense", "unknown pragma pagelog_nonsense"),
    ] {
        let err = c.query_row(sql, [], |r| r.get::<_, String>(0)).unwrap_err().to_string();
        assert!(err.contains(needle), "{sql}: {err}");
    }
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "delete");
    c.execute("INSERT INTO t VALUES (1)", []).unwrap();
    assert_eq!(d.files(), vec!["a.db"]);
}

/// `nolock=1` makes SQLite skip xLock, where pagelog takes snapshots and the
/// writer's lock: refused at open, naming the file, rather than failing
/// every write later with "disk I/O error".
#[test]
fn nolock_1_is_refused_at_open_with_a_message() {
    pagelog::register().unwrap();
    let d = TempDir::new("nolock");
    let p = d.path("n.db");
    open(&p).execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    for q in ["nolock=1", "nolock=1&mode=ro", "nolock=true"] {
        let uri = format!("{}?{q}", pagelog_e2e::file_uri(&p));
        let err = rusqlite::Connection::open_with_flags_and_vfs(&uri, pagelog_e2e::rw_flags(), "pagelog")
            .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)))
            .unwrap_err();
        assert_eq!(err.sqlite_error_code(), Some(ErrorCode::CannotOpen), "{q}: {err}");
        let msg = pagelog::sqlite::last_error().unwrap();
        assert!(msg.contains("nolock=1 is not supported") && msg.contains("n.db"), "{msg}");
    }
    let uri = format!("{}?nolock=0", pagelog_e2e::file_uri(&p));
    let c = rusqlite::Connection::open_with_flags_and_vfs(&uri, pagelog_e2e::rw_flags(), "pagelog").unwrap();
    c.execute("INSERT INTO t VALUES (2)", []).unwrap();
    assert_eq!(count(&c, "t"), 2);
}

/// On a database not opened through pagelog, SQLite never shows pagelog the
/// `pagelog_*` pragmas (it ignores pragmas it does not know, without an
/// error: pagelog cannot change that), so they answer nothing; the function
/// `pagelog_version()` is the check that fails, saying why.
#[test]
fn on_a_plain_database_pagelog_pragmas_answer_nothing_and_the_function_is_an_error() {
    pagelog::register().unwrap();
    let d = TempDir::new("plain-pragmas");
    let c = rusqlite::Connection::open(d.path("plain.db")).unwrap();
    c.execute_batch("CREATE TABLE t(x)").unwrap();
    for sql in ["PRAGMA pagelog_version", "PRAGMA pagelog_spill_limit = 1000000", "PRAGMA pagelog_spill_limit"] {
        let mut st = c.prepare(sql).unwrap();
        assert_eq!(st.query([]).unwrap().next().unwrap().map(|_| ()), None, "{sql} answers no row");
    }
    let err = c.query_row("SELECT pagelog_version()", [], |r| r.get::<_, i64>(0)).unwrap_err().to_string();
    assert!(err.contains("not opened through the pagelog VFS"), "{err}");
}

#[test]
fn a_reader_keeps_its_snapshot_while_another_connection_commits() {
    let d = TempDir::new("snapshot");
    let p = d.path("a.db");
    let a = open(&p);
    let b = open(&p);
    a.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    b.execute_batch("BEGIN").unwrap();
    assert_eq!(count(&b, "t"), 1);
    let vb = version(&b);
    // The writer is not blocked by the open read transaction.
    a.execute("INSERT INTO t VALUES (2)", []).unwrap();
    a.execute("INSERT INTO t VALUES (3)", []).unwrap();
    assert_eq!(count(&b, "t"), 1, "the reader's snapshot does not move");
    assert_eq!(version(&b), vb);
    // Writing from a stale snapshot is refused at once, as in WAL mode.
    let err = b.execute("INSERT INTO t VALUES (4)", []).unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::DatabaseBusy), "{err}");
    b.execute_batch("ROLLBACK").unwrap();
    assert_eq!(count(&b, "t"), 3, "the next transaction sees the new versions");
    b.execute("INSERT INTO t VALUES (4)", []).unwrap();
    assert_eq!(count(&a, "t"), 4);
}

#[test]
fn one_writer_at_a_time_with_busy_timeout() {
    let d = TempDir::new("onewriter");
    let p = d.path("a.db");
    let a = open(&p);
    let b = open(&p);
    a.execute_batch("CREATE TABLE t(x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)").unwrap();
    b.busy_timeout(Duration::from_millis(200)).unwrap();
    let t0 = std::time::Instant::now();
    let err = b.execute_batch("BEGIN IMMEDIATE").unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::DatabaseBusy), "{err}");
    assert!(t0.elapsed() >= Duration::from_millis(150), "busy_timeout must be honoured");
    // Readers are not blocked by the writer.
    assert_eq!(count(&b, "t"), 0);
    a.execute_batch("COMMIT").unwrap();
    b.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT").unwrap();
    assert_eq!(count(&a, "t"), 2);
}

#[test]
fn a_writer_waiting_in_busy_timeout_proceeds_when_the_lock_is_released() {
    let d = TempDir::new("busywait");
    let p = d.path("a.db");
    let a = open(&p);
    a.execute_batch("CREATE TABLE t(x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)").unwrap();
    let p2 = p.clone();
    let h = std::thread::spawn(move || {
        let b = open(&p2);
        b.busy_timeout(Duration::from_secs(10)).unwrap();
        b.execute("INSERT INTO t VALUES (2)", []).unwrap();
        count(&b, "t")
    });
    std::thread::sleep(Duration::from_millis(200));
    a.execute_batch("COMMIT").unwrap();
    assert_eq!(h.join().unwrap(), 2);
}

#[test]
fn reads_through_mmap_see_the_same_data() {
    let d = TempDir::new("mmap");
    let p = d.path("m.db");
    let c = open(&p);
    c.execute_batch("PRAGMA mmap_size = 67108864; CREATE TABLE t(x, b)").unwrap();
    for i in 0..200 {
        c.execute("INSERT INTO t VALUES (?1, randomblob(300))", [i]).unwrap();
    }
    let other = open(&p);
    other.execute_batch("PRAGMA mmap_size = 67108864").unwrap();
    let s: i64 = other.query_row("SELECT sum(x) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(s, 199 * 200 / 2);
    c.execute("UPDATE t SET x = x + 1", []).unwrap();
    let s: i64 = other.query_row("SELECT sum(x) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(s, 199 * 200 / 2 + 200);
    let ic: String = other.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ic, "ok");
}

#[test]
fn pagelog_log_lists_every_version_from_sql() {
    let d = TempDir::new("logtable");
    let c = open(&d.path("a.db"));
    c.execute_batch("CREATE TABLE t(x)").unwrap();
    for i in 0..5 {
        c.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
    }
    let rows: Vec<(i64, i64, i64)> = c
        .prepare("SELECT version, db_pages, pages_written FROM pagelog_log ORDER BY version")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
    assert!(rows.iter().all(|r| r.1 == 2 && r.2 >= 1), "{rows:?}");
    let other = d.path("b.db");
    c.execute(&format!("ATTACH 'file:{}?vfs=pagelog' AS aux", other.display()), []).unwrap();
    c.execute_batch("CREATE TABLE aux.u(y)").unwrap();
    let n: i64 = c.query_row("SELECT count(*) FROM pagelog_log('aux')", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
    let plain = rusqlite::Connection::open(d.path("plain.db")).unwrap();
    let err = plain.query_row("SELECT count(*) FROM pagelog_log", [], |r| r.get::<_, i64>(0)).unwrap_err();
    assert!(err.to_string().contains("not opened through the pagelog VFS"), "{err}");
}

/// pagelog appends each record right after the previous one, inside the
/// sector holding the previous commit's trailer: it needs powersafe
/// overwrite, SQLite's default. A user who says the disk lacks it (`psow=0`,
/// the URI parameter of SQLite's unix VFS) is refused, not ignored.
#[test]
fn psow_0_is_refused_with_a_message_and_creates_nothing() {
    pagelog::register().unwrap();
    let d = TempDir::new("psow");
    let p = d.path("a.db");
    let uri = |q: &str| format!("file:{}?{q}", p.display());
    for off in ["psow=0", "psow=off", "psow=FALSE", "psow=no"] {
        let err = rusqlite::Connection::open_with_flags_and_vfs(uri(off), pagelog_e2e::rw_flags(), "pagelog")
            .and_then(|c| c.execute_batch("CREATE TABLE t(x)"))
            .unwrap_err();
        assert_eq!(err.sqlite_error_code(), Some(ErrorCode::CannotOpen), "{off}: {err}");
        let msg = pagelog::sqlite::last_error().unwrap();
        assert!(msg.contains("psow=0 is not supported") && msg.contains("a.db"), "{msg}");
        assert!(!p.exists(), "{off}: nothing is created");
    }
    let c = rusqlite::Connection::open_with_flags_and_vfs(uri("psow=1"), pagelog_e2e::rw_flags(), "pagelog").unwrap();
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    assert_eq!(count(&c, "t"), 1);
}

/// `PRAGMA mmap_size` reports its value as on a plain file, and pages wholly
/// past it are read with xRead, never handed out from the memory map.
#[test]
fn mmap_size_is_reported_and_limits_the_pages_read_through_the_map() {
    let d = TempDir::new("mmap-size");
    let c = open(&d.path("a.db"));
    c.execute_batch("PRAGMA page_size = 1024; CREATE TABLE t(k, v)").unwrap();
    c.execute_batch(
        "WITH RECURSIVE s(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM s WHERE k < 1000)
         INSERT INTO t SELECT k, randomblob(300) FROM s",
    )
    .unwrap();
    let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    assert!(pages > 300, "{pages} pages");
    let mmap = |c: &rusqlite::Connection, sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(mmap(&c, "PRAGMA mmap_size"), 0);
    let scan = |c: &rusqlite::Connection| {
        let before = pagelog::sqlite::mapped_fetches();
        let n: i64 = c.query_row("SELECT sum(length(v)) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 300_000);
        pagelog::sqlite::mapped_fetches() - before
    };
    scan(&c); // every frame checked once, through xRead
    assert_eq!(scan(&c), 0, "mmap_size 0: nothing is mapped");
    assert_eq!(mmap(&c, "PRAGMA mmap_size = 40960"), 40960);
    assert_eq!(mmap(&c, "PRAGMA mmap_size"), 40960);
    let mapped = scan(&c);
    assert!(mapped > 0 && mapped <= 40, "{mapped} pages mapped below a 40-page limit");
    assert_eq!(mmap(&c, "PRAGMA mmap_size = 268435456"), 268435456);
    let mapped = scan(&c);
    assert!(mapped as i64 >= pages - 40, "{mapped} of {pages} pages mapped");
}
