//! A log deleted or renamed away under an open connection: writes are
//! refused with SQLITE_READONLY_DBMOVED, as stock SQLite refuses them, never
//! accepted into a file nobody can open again; reads go on.

use pagelog_e2e::{count, extension_stem, open, run_shell, version, TempDir};
use rusqlite::ffi::SQLITE_READONLY_DBMOVED;

fn refused_as_moved(r: rusqlite::Result<usize>) {
    let e = r.expect_err("a write to a moved log must fail");
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => f.extended_code,
        _ => panic!("not an SQLite error: {e}"),
    };
    assert_eq!(code, SQLITE_READONLY_DBMOVED, "{e}");
    let msg = pagelog::sqlite::last_error().unwrap_or_default();
    assert!(msg.contains("deleted or renamed") && msg.contains("x.db"), "{msg}");
}

#[test]
fn a_write_after_the_log_was_deleted_is_refused_and_reads_go_on() {
    let d = TempDir::new("moved-rm");
    let p = d.path("x.db");
    let c = open(&p);
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    std::fs::remove_file(&p).unwrap();
    refused_as_moved(c.execute("INSERT INTO t VALUES (2)", []));
    // Whatever the journal mode: SQLite itself only checks when it opens a
    // journal file, pagelog on every write transaction.
    c.execute_batch("PRAGMA journal_mode = MEMORY").unwrap();
    refused_as_moved(c.execute("INSERT INTO t VALUES (3)", []));
    assert_eq!(count(&c, "t"), 1, "the open connection still reads its file");
    drop(c);
    assert!(!p.exists(), "nothing recreated the deleted name");
}

#[test]
fn a_write_after_the_log_was_renamed_away_or_replaced_is_refused() {
    let d = TempDir::new("moved-mv");
    let p = d.path("x.db");
    let c = open(&p);
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    let moved = d.path("y.db");
    std::fs::rename(&p, &moved).unwrap();
    refused_as_moved(c.execute("INSERT INTO t VALUES (2)", []));
    // Another log now takes the old name: still not this connection's file.
    let other = open(&p);
    other.execute_batch("CREATE TABLE u(y)").unwrap();
    refused_as_moved(c.execute("INSERT INTO t VALUES (3)", []));
    drop(c);
    // The renamed log holds exactly what was committed before the rename.
    let y = open(&moved);
    assert_eq!(count(&y, "t"), 1);
    assert_eq!(version(&y), 2);
    // Renamed back, the name leads to the file again: writes work.
    drop(y);
    drop(other);
    let c2 = open(&moved);
    std::fs::rename(&moved, d.path("z.db")).unwrap();
    std::fs::rename(d.path("z.db"), &moved).unwrap();
    c2.execute("INSERT INTO t VALUES (4)", []).unwrap();
    assert_eq!(count(&c2, "t"), 2);
}

/// The recipe, in the stock shell: `.system rm x.db` and then INSERT
/// fails with SQLite's own "attempt to write a readonly database".
#[test]
fn the_shell_refuses_an_insert_into_a_deleted_log() {
    let d = TempDir::new("moved-shell");
    let script = format!(
        ".load {}\n.open file:x.db?vfs=pagelog\nCREATE TABLE t(x);\nINSERT INTO t VALUES (1);\n.system rm x.db\n\
         INSERT INTO t VALUES (2);\nSELECT count(*) FROM t;\n",
        extension_stem()
    );
    let out = run_shell(&d.0, &script);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("attempt to write a readonly database"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    assert!(d.files().is_empty(), "{:?}", d.files());
}
