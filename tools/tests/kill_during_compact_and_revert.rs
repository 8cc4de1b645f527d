//! kill -9 of `pagelog compact` and `pagelog revert` at pseudo-random
//! moments: the database always opens at a committed state (the old one or
//! the new one), reads back exactly, and passes `pagelog verify`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{open, rows, version, TempDir};

fn pagelog() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pagelog"))
}

/// A log with 120 versions of a table of 2 KB rows.
fn build(p: &std::path::Path) {
    let c = open(p);
    c.execute_batch("CREATE TABLE t(k INTEGER, pad BLOB)").unwrap();
    for k in 0..119 {
        c.execute("INSERT INTO t VALUES (?1, randomblob(2000))", [k]).unwrap();
    }
    assert_eq!(version(&c), 120);
}

fn contents(p: &std::path::Path) -> (u64, Vec<String>) {
    let c = open(p);
    (version(&c), rows(&c, "SELECT k, hex(pad) FROM t ORDER BY k"))
}

fn verify_ok(p: &std::path::Path) {
    let out = pagelog().arg("verify").arg(p).output().unwrap();
    assert!(
        out.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn kill_after(mut child: std::process::Child, us: u64) -> bool {
    std::thread::sleep(Duration::from_micros(us));
    let _ = child.kill(); // SIGKILL on Unix
    let st = child.wait().unwrap();
    st.code().is_none() // true when the kill landed before it finished
}

#[test]
fn killing_compact_at_any_moment_leaves_the_old_or_the_new_log_whole() {
    let d = TempDir::new("kill-compact");
    let base = d.path("base.db");
    build(&base);
    let (v, want) = contents(&base);
    let mut seed = 0x2545_f491_u64;
    let mut landed = 0;
    for round in 0..12 {
        let p = d.path("c.db");
        std::fs::copy(&base, &p).unwrap();
        let _ = std::fs::remove_file(d.path("c.db.compact-tmp"));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let child = pagelog().args(["compact", p.to_str().unwrap(), "--keep-last", "3"]).spawn().unwrap();
        landed += kill_after(child, seed % 40_000) as u32;
        let (v2, got) = contents(&p);
        assert_eq!((v2, &got), (v, &want), "round {round}: the latest version must read back unchanged");
        verify_ok(&p);
        // A later compaction works, whatever the killed one left behind.
        let st = pagelog().args(["compact", p.to_str().unwrap(), "--keep-last", "3"]).status().unwrap();
        assert!(st.success(), "round {round}: compact after a killed compact");
        assert_eq!(contents(&p), (v, want.clone()));
    }
    assert!(landed > 0, "no kill landed during a compaction: the test proves nothing");
}

#[test]
fn killing_revert_at_any_moment_leaves_the_old_or_the_reverted_version() {
    let d = TempDir::new("kill-revert");
    let base = d.path("base.db");
    build(&base);
    let (v, latest) = contents(&base);
    let target = {
        let c = common::open_version(&base, 60);
        rows(&c, "SELECT k, hex(pad) FROM t ORDER BY k")
    };
    let mut seed = 0x9e37_79b9_u64;
    let (mut old, mut new) = (0, 0);
    for round in 0..12 {
        let p = d.path("r.db");
        std::fs::copy(&base, &p).unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let child = pagelog().args(["revert", p.to_str().unwrap(), "--to", "60"]).spawn().unwrap();
        kill_after(child, seed % 20_000);
        let (v2, got) = contents(&p);
        if v2 == v {
            assert_eq!(got, latest, "round {round}: not reverted, so unchanged");
            old += 1;
        } else {
            assert_eq!((v2, &got), (v + 1, &target), "round {round}: reverted, so equal to version 60");
            new += 1;
        }
        verify_ok(&p);
        let c = open(&p);
        c.execute("INSERT INTO t VALUES (-1, NULL)", []).unwrap();
        assert_eq!(version(&c), v2 + 1, "round {round}: the next write works");
    }
    eprintln!("revert killed: {old} before it committed, {new} after");
}
