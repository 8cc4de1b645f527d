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
        vec!["verify", dbs],
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
