//! The reason behind SQLite's bare "unable to open database file" reaches
//! SQLite's error log (`SQLITE_CONFIG_LOG`). One test per binary: the log
//! callback must be installed before SQLite initialises.

use std::sync::Mutex;

use pagelog_e2e::{open, TempDir};
use rusqlite::{Connection, OpenFlags};

static LOGGED: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());

fn collect(code: std::ffi::c_int, msg: &str) {
    LOGGED.lock().unwrap().push((code, msg.to_string()));
}

#[test]
fn opening_a_version_that_does_not_exist_logs_why() {
    // SAFETY: first SQLite call of this process; the callback is thread-safe.
    unsafe { rusqlite::trace::config_log(Some(collect)) }.expect("config_log before SQLite starts");
    let d = TempDir::new("errlog");
    let p = d.path("app.db");
    let c = open(&p);
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES(1); INSERT INTO t VALUES(2); INSERT INTO t VALUES(3);")
        .unwrap();
    let uri = format!("file:{}?vfs=pagelog&version=999", p.display());
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    let err = Connection::open_with_flags(&uri, flags).expect_err("version 999 must not open");
    assert!(err.to_string().contains("unable to open"), "{err}");
    let logged = LOGGED.lock().unwrap().clone();
    assert!(
        logged.iter().any(|(code, m)| *code == 14 && m.contains("version 999 does not exist") && m.contains("0 to 4")),
        "error log: {logged:?}"
    );
    assert_eq!(pagelog::sqlite::last_error().as_deref().map(|m| m.contains("version 999")), Some(true));
}
