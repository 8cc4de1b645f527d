//! `?version=0` opens the empty database every log starts from (README,
//! docs/cli.md, FORMAT.md), whatever the log: format 4 with a control
//! state, format 4 after its retention policy reclaimed old versions, or an
//! empty (0-byte) file.
//!
//! Before, a format-4 log with a CONTROL record spun forever (version 0's
//! control state is none, so its epoch never matched the latest's), and an
//! empty file was called truncated. The shell runs under `timeout` so that
//! a spin is a failure, not a hung test.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pagelog::retention::Policy;
use pagelog::{Log, OpenOptions};
use pagelog_e2e::{extension_stem, format4_from_sqlite, sqlite3_shell, TempDir};

const T: Duration = Duration::from_secs(10);

/// The shell's answer to `SELECT count(*) FROM sqlite_master` at version 0
/// of `db`, under a 30 s timeout: (exit status, stdout, stderr).
fn count_at_version_0(dir: &Path, db: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let script = format!(
        ".load {}\n.open file:{db}?vfs=pagelog&version=0\nSELECT count(*) FROM sqlite_master;\n",
        extension_stem()
    );
    let mut child = Command::new("timeout")
        .arg("30")
        .arg(sqlite3_shell())
        .arg("-batch")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_empty_database(dir: &Path, db: &str) {
    let (code, out, err) = count_at_version_0(dir, db);
    assert_ne!(code, Some(124), "{db}: version=0 did not answer within 30 s");
    assert_eq!((code, out.as_str(), err.as_str()), (Some(0), "0", ""), "{db}: version 0 is the empty database");
}

#[test]
fn version_0_of_a_format_4_log_with_a_control_record_reads_as_empty() {
    let d = TempDir::new("v0-f4");
    let p = d.path("app.db");
    format4_from_sqlite(&p, "CREATE TABLE t(x); INSERT INTO t VALUES(1);");
    // A CONTROL record (as `pagelog upgrade --format 4` writes): epoch 1.
    let log = Log::open(&p, OpenOptions::default()).unwrap();
    log.set_retention(Policy::parse("100 versions").unwrap(), T).unwrap();
    assert!(log.retention_state().epoch > 0, "the log has a control state");
    drop(log);
    assert_empty_database(&d.0, "app.db");
}

#[test]
fn version_0_of_a_reclaimed_format_4_log_still_reads_as_empty() {
    let d = TempDir::new("v0-f4-reclaimed");
    let p = d.path("app.db");
    format4_from_sqlite(&p, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
    let c = pagelog_e2e::open(&p);
    for i in 0..300 {
        c.execute("INSERT INTO t(v) VALUES (?1)", [i]).unwrap();
    }
    drop(c);
    let log = Log::open(&p, OpenOptions::default()).unwrap();
    log.set_retention(Policy::parse("2 versions").unwrap(), T).unwrap();
    while log.reclaim(1 << 30, T).unwrap().appended > 0 {}
    assert!(log.oldest_kept().is_some_and(|v| v > 1), "a step reclaimed the oldest versions");
    drop(log);
    assert_empty_database(&d.0, "app.db");
}

#[test]
fn version_0_of_an_empty_file_reads_as_empty() {
    let d = TempDir::new("v0-empty");
    std::fs::write(d.path("e.db"), b"").unwrap();
    assert_empty_database(&d.0, "e.db");
    assert_eq!(std::fs::metadata(d.path("e.db")).unwrap().len(), 0, "reading wrote nothing");
}
