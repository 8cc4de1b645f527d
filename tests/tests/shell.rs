//! The stock sqlite3 shell loading the built extension.

use pagelog_e2e::{count, extension_stem, open, run_shell, version, TempDir};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_readme_quick_start_works_in_the_shell() {
    let d = TempDir::new("shell-quick");
    let out = run_shell(
        &d.0,
        &format!(
            ".load {}\n.open file:app.db?vfs=pagelog\nCREATE TABLE t(x); INSERT INTO t VALUES(1);\nPRAGMA pagelog_version;\n",
            extension_stem()
        ),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "2", "stderr: {}", stderr(&out));
    assert_eq!(d.files(), vec!["app.db"]);
    // What the shell wrote, rusqlite reads through pagelog.
    let c = open(&d.path("app.db"));
    assert_eq!(version(&c), 2);
    assert_eq!(count(&c, "t"), 1);
}

#[test]
fn loading_twice_registers_once_and_every_feature_works_in_the_shell() {
    let d = TempDir::new("shell-twice");
    let ext = extension_stem();
    let script = format!(
        ".load {ext}\n.load {ext}\n.open file:a.db?vfs=pagelog\n\
         CREATE TABLE t(x, y);\n\
         INSERT INTO t VALUES (1, 'a');\n\
         BEGIN; INSERT INTO t VALUES (2, 'b'); ROLLBACK;\n\
         SAVEPOINT s; INSERT INTO t VALUES (3, 'c'); RELEASE s;\n\
         PRAGMA page_size = 16384; VACUUM;\n\
         SELECT count(*), sum(x) FROM t;\n\
         PRAGMA page_size;\n\
         PRAGMA integrity_check;\n\
         PRAGMA pagelog_version;\n\
         .open file:b.db?vfs=pagelog\n\
         CREATE TABLE u(z); INSERT INTO u VALUES (42);\n\
         SELECT z FROM u;\n"
    );
    let out = run_shell(&d.0, &script);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines, vec!["2|4", "16384", "ok", "4", "42"], "stderr: {}", stderr(&out));
    assert_eq!(d.files(), vec!["a.db", "b.db"]);
}

/// As SQLite does where WAL cannot be had (no shared memory): the pragma
/// answers the mode in force, without an error, and nothing changes.
#[test]
fn journal_mode_wal_in_the_shell_answers_the_mode_in_force_and_the_database_works() {
    let d = TempDir::new("shell-wal");
    let out = run_shell(
        &d.0,
        &format!(
            ".load {}\n.open file:a.db?vfs=pagelog\nCREATE TABLE t(x);\nPRAGMA journal_mode=WAL;\nINSERT INTO t VALUES (7);\nSELECT x FROM t;\nPRAGMA journal_mode;\n",
            extension_stem()
        ),
    );
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), vec!["delete", "7", "delete"]);
    assert_eq!(d.files(), vec!["a.db"]);
}

#[test]
fn the_default_entry_point_makes_pagelog_the_default_vfs() {
    let d = TempDir::new("shell-default");
    let out = run_shell(
        &d.0,
        &format!(
            ".load {} sqlite3_pagelog_default_init\n.open plain-name.db\nCREATE TABLE t(x); INSERT INTO t VALUES (1);\nPRAGMA pagelog_version;\n",
            extension_stem()
        ),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "2");
    let bytes = std::fs::read(d.path("plain-name.db")).unwrap();
    assert_eq!(&bytes[..8], b"PAGELOG\0", "opened without vfs=, the file must still be a pagelog log");
}

#[test]
fn a_plain_database_opened_through_pagelog_in_the_shell_is_refused_and_unchanged() {
    let d = TempDir::new("shell-plain");
    let plain = d.path("plain.db");
    {
        let c = rusqlite::Connection::open(&plain).unwrap();
        c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    }
    let before = std::fs::read(&plain).unwrap();
    let out = run_shell(
        &d.0,
        &format!(
            ".load {}\n.open file:plain.db?vfs=pagelog\nSELECT * FROM t;\nINSERT INTO t VALUES (2);\n",
            extension_stem()
        ),
    );
    let err = stderr(&out);
    assert!(err.contains("not a database") || err.contains("unable to open"), "{err}");
    assert_eq!(std::fs::read(&plain).unwrap(), before);
}

/// The extension reads URI parameters through the host SQLite's API table:
/// `psow=no` (SQLite's own boolean spelling) is refused and creates nothing,
/// `psow=1` opens as usual.
#[test]
fn psow_0_is_refused_in_the_shell_too() {
    let d = TempDir::new("shell-psow");
    let out = run_shell(
        &d.0,
        &format!(
            ".load {}\n.open file:off.db?vfs=pagelog&psow=no\nCREATE TABLE t(x);\n\
             .open file:on.db?vfs=pagelog&psow=1\nCREATE TABLE t(x);\nPRAGMA pagelog_version;\n",
            extension_stem()
        ),
    );
    assert!(stderr(&out).contains("unable to open database"), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1", "stderr: {}", stderr(&out));
    assert_eq!(d.files(), vec!["on.db"]);
}
