//! `pagelog log` tells, on stderr (stdout stays one line per version), how
//! to open one of the versions it lists, and that URI opens it.

mod common;

use common::{make_log, open_version, pagelog, TempDir};

#[test]
fn log_prints_the_uri_that_opens_a_version() {
    let d = TempDir::new("log-hint");
    let db = d.path("app.db");
    drop(make_log(&db, 4));
    let r = pagelog(["log".as_ref(), db.as_os_str()]).ok();
    let hint = format!("file:{}?vfs=pagelog&version=N", db.display());
    assert!(r.stderr.contains(&hint), "stderr: {}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 5, "a header and 4 versions: {}", r.stdout);
    let c = open_version(&db, 3);
    let n: i64 = c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 2);
}
