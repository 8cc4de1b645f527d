//! A write transaction whose snapshot is already older than the log's
//! latest version can never commit: `lock(RESERVED)` answers
//! SQLITE_BUSY_SNAPSHOT at once, without taking the WRITER lock only to give
//! it back (`src/sqlite/file.rs`). Under group commit at FULL this is most
//! write transactions of a busy writer (the refresh at SHARED gives the
//! visible version while commits are being synced), and the take and
//! release cost three `fcntl`, a `statx`, a probe of the log end and a
//! ring of the writer doorbell that woke a waiter for nothing.
//!
//! The test watches the writer bell in the log's shared object: every
//! release of WRITER through pagelog bumps it (`src/shm.rs`).

use std::path::Path;
use std::time::Duration;

mod common;

use common::shm_objects::{bytes_at, shm_dir};
use rusqlite::{Connection, ErrorCode, OpenFlags};

fn open(p: &Path) -> Connection {
    pagelog::register().unwrap();
    let c = Connection::open_with_flags_and_vfs(
        p,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        "pagelog",
    )
    .unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// The writer bell (a u32) in the shared object of the log at `p`.
fn writer_bell(p: &Path) -> u32 {
    u32::from_le_bytes(bytes_at(p, pagelog::shm::AT_WRITER_BELL))
}

#[test]
fn a_stale_write_transaction_gets_busy_snapshot_without_taking_writer() {
    shm_dir();
    let d = std::env::temp_dir().join(format!("pagelog-stale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("db");
    let a = open(&p);
    let b = open(&p);
    a.execute_batch("CREATE TABLE t(v INTEGER); INSERT INTO t VALUES (0);").unwrap();

    // A reads version n; B then commits n + 1.
    a.execute_batch("BEGIN").unwrap();
    let v: i64 = a.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 0);
    b.execute("UPDATE t SET v = v + 1", []).unwrap();

    let before = writer_bell(&p);
    let err = a.execute("UPDATE t SET v = v + 10", []).unwrap_err();
    match &err {
        rusqlite::Error::SqliteFailure(e, _) => {
            assert_eq!(e.code, ErrorCode::DatabaseBusy, "{err}");
            assert_eq!(e.extended_code, rusqlite::ffi::SQLITE_BUSY_SNAPSHOT, "{err}");
        }
        other => panic!("expected SQLITE_BUSY_SNAPSHOT, got {other}"),
    }
    assert_eq!(
        writer_bell(&p),
        before,
        "the stale transaction took and released WRITER (the release rang the writer bell)"
    );

    // Rolled back, it starts again from the latest and commits.
    a.execute_batch("ROLLBACK").unwrap();
    a.execute("UPDATE t SET v = v + 10", []).unwrap();
    let v: i64 = b.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 11);
    drop((a, b));
    let _ = std::fs::remove_dir_all(&d);
}
