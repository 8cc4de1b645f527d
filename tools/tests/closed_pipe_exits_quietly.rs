//! `pagelog log app.db | head -3`: when the reader of stdout goes away,
//! every subcommand that prints ends with status 0 and says nothing on
//! stderr (no "Broken pipe" panic). Tested with a real pipe whose read end
//! is closed before the program writes, and with output larger than the
//! pipe's buffer.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::{open, TempDir};

#[test]
fn every_printing_subcommand_exits_quietly_on_a_closed_pipe() {
    let d = TempDir::new("pipe");
    let db = d.path("app.db");
    let c = open(&db);
    c.execute_batch("PRAGMA synchronous = OFF; CREATE TABLE t(id INTEGER PRIMARY KEY, v)").unwrap();
    for i in 0..1200 {
        c.execute("INSERT INTO t VALUES(?1, randomblob(50))", [i]).unwrap();
    }
    drop(c);
    let dbs = db.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["log", dbs],
        vec!["log", dbs, "--json"],
        vec!["info", dbs],
        vec!["info", dbs, "--json"],
        vec!["verify", dbs, "--verbose"],
        vec!["verify", dbs, "--json"],
        vec!["diff", dbs, "1", "1201"],
        vec!["diff", dbs, "1..1201", "--json"],
        vec!["diff", dbs, "1..1201", "--sql"],
    ];
    for args in cases {
        for read_first in [0usize, 100] {
            let mut child = Command::new(env!("CARGO_BIN_EXE_pagelog"))
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = child.stdout.take().unwrap();
            let mut buf = vec![0u8; read_first];
            out.read_exact(&mut buf).unwrap();
            drop(out);
            let o = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(0), "pagelog {args:?} after reading {read_first} bytes: stderr {err}");
            assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "pagelog {args:?}: {err}");
        }
    }
}

/// The write end of a pipe whose read end is already closed: every write to
/// it fails with EPIPE, as after `| head -1` has exited.
fn closed_pipe() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe() fills two descriptors that we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are ours, each wrapped once.
    let (r, w) = unsafe { (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1])) };
    drop(r);
    w
}

/// `pagelog diff app.db 8 2 2>&1 | head -4`: stderr closed too (alone, or the
/// same pipe as stdout). No subcommand may abort or panic; each exits with
/// the status it has when both streams are read (0, 1 for a failure, 2 for
/// a usage error), or 0 when stdout itself was closed, and does its work.
#[test]
fn every_subcommand_exits_quietly_when_stderr_is_a_closed_pipe() {
    let d = TempDir::new("pipe-stderr");
    let db = d.path("app.db");
    let c = open(&db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v)").unwrap();
    for i in 0..20 {
        c.execute("INSERT INTO t VALUES(?1, randomblob(50))", [i]).unwrap();
    }
    drop(c);
    let plain = d.path("plain.db");
    rusqlite::Connection::open(&plain).unwrap().execute_batch("CREATE TABLE p(x); INSERT INTO p VALUES(1)").unwrap();
    let dbs = db.to_str().unwrap().to_string();
    let missing = d.path("missing.db").to_str().unwrap().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    // (arguments, exit status when both streams are read, a file the command must have written)
    let cases: Vec<(Vec<String>, i32)> = vec![
        (s(&["log", &dbs]), 0),
        (s(&["info", &dbs]), 0),
        (s(&["verify", &dbs]), 0),
        (s(&["diff", &dbs, "8", "2"]), 0),
        (s(&["diff", &dbs, "9", "10", "--summary"]), 0),
        (s(&["revert", &dbs, "--to", "21"]), 0),
        (s(&["log", &missing]), 1),
        (s(&["diff", &dbs, "a", "b"]), 2),
        (s(&["log"]), 2),
        (s(&["--help"]), 0),
    ];
    for both in [false, true] {
        // Commands that write a file and then report it on stderr: the file
        // must be there, whatever happened to the report.
        let out = d.path(&format!("out{both}.db"));
        let imported = d.path(&format!("imported{both}.db"));
        let writers = vec![
            (s(&["export", &dbs, out.to_str().unwrap()]), 0),
            (s(&["import", plain.to_str().unwrap(), imported.to_str().unwrap()]), 0),
        ];
        for (args, code) in cases.iter().chain(&writers) {
            let err = closed_pipe();
            let stdout = if both { Stdio::from(err.try_clone().unwrap()) } else { Stdio::null() };
            let st =
                Command::new(env!("CARGO_BIN_EXE_pagelog")).args(args).stdout(stdout).stderr(err).status().unwrap();
            assert_eq!(st.code(), Some(*code), "pagelog {args:?} (stdout closed too: {both}): {st}");
        }
        assert!(out.exists() && imported.exists(), "export and import wrote their files");
    }
}

/// Output that cannot be written for another reason (a full disk:
/// `/dev/full` answers ENOSPC) is a failure, said in one line naming what
/// failed; `println!`'s panic reached the user as "pagelog: internal error
/// at /rustc/…/stdio.rs:1165: failed printing to stdout: …".
#[test]
fn output_to_a_full_disk_fails_with_a_plain_message() {
    let d = TempDir::new("full");
    let db = d.path("app.db");
    let c = open(&db);
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    drop(c);
    let dbs = db.to_str().unwrap();
    for args in [vec!["log", dbs], vec!["info", dbs], vec!["verify", dbs], vec!["retain", dbs], vec!["diff", dbs, "1"]]
    {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_pagelog")).args(&args).stdout(full).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("pagelog: write output: No space left on device"), "{args:?}: {stderr}");
        assert!(!stderr.contains("internal error"), "{args:?}: {stderr}");
    }
}
