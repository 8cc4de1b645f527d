//! `pagelog follow` against a real Garage server: a read-only replica that
//! a reader process keeps open sees the primary's new versions, and local
//! writes to the replica are refused.

mod common;
#[path = "replica/garage.rs"]
mod garage;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{file_uri, make_log, open, version, TempDir};
use garage::Garage;
use rusqlite::{Connection, OpenFlags};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn open_ro(p: &std::path::Path) -> Connection {
    pagelog::register().unwrap();
    let uri = format!("{}?mode=ro", file_uri(p));
    Connection::open_with_flags_and_vfs(uri, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI, "pagelog")
        .unwrap()
}

#[test]
fn a_reader_of_the_replica_sees_new_versions_and_local_writes_are_refused() {
    let g = Garage::start("follow");
    let d = TempDir::new("follow");
    let db = d.path("app.db");
    let replica = d.path("replica.db");
    let url = g.url("follow");
    let c = make_log(&db, 5);
    // Both polling intervals (100 ms here; `PAGELOG_FOLLOW_INTERVAL=1s` for
    // the defaults, as docs/benchmarks.md's figure).
    let iv = std::env::var("PAGELOG_FOLLOW_INTERVAL").unwrap_or_else(|_| "100ms".into());
    let _rep = Killed(
        g.pagelog()
            .arg("replicate")
            .arg(&db)
            .arg(&url)
            .args(["--interval", &iv])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    loop {
        let o = g.pagelog().args(["info", &url, "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        if v["latest_version"].as_u64() == Some(5) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "never replicated");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _fol = Killed(
        g.pagelog()
            .arg("follow")
            .arg(&url)
            .arg(&replica)
            .args(["--interval", &iv])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while !replica.exists() {
        assert!(t0.elapsed() < Duration::from_secs(30), "the replica never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let r = open_ro(&replica);
    assert_eq!(version(&r), 5);
    // New versions on the primary reach the open reader.
    let mut lags = Vec::new();
    for i in 0..10 {
        c.execute("INSERT INTO t(v) VALUES(?1)", [format!("new {i}")]).unwrap();
        let want = version(&c);
        let committed = Instant::now();
        loop {
            // One statement, one read transaction: the rows and the version agree.
            let (n, v): (i64, i64) = r
                .query_row("SELECT count(*), pagelog_version() FROM t", [], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap();
            if v as u64 == want {
                assert_eq!(n as u64, want - 1, "rows as of version {want}");
                break;
            }
            assert!(committed.elapsed() < Duration::from_secs(20), "version {want} never reached the replica");
            std::thread::sleep(Duration::from_millis(10));
        }
        lags.push(committed.elapsed().as_secs_f64());
    }
    lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "follow lag (commit on the primary to a reader of the replica; both intervals {iv}): median {:.2} s, max {:.2} s",
        lags[lags.len() / 2],
        lags[lags.len() - 1]
    );
    // The replica refuses local writes: follow holds its write lock.
    let w = open(&replica);
    w.busy_timeout(Duration::from_millis(0)).unwrap();
    let e = w.execute("INSERT INTO t(v) VALUES('local')", []).unwrap_err();
    assert!(e.to_string().contains("locked") || e.to_string().contains("busy"), "{e}");
    assert_eq!(r.query_row("SELECT count(*) FROM t WHERE v = 'local'", [], |row| row.get::<_, i64>(0)).unwrap(), 0);
}

fn run_ok(mut c: std::process::Command) -> String {
    let o = c.output().unwrap();
    let t = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{c:?}:\n{t}");
    t
}

fn run_fails(mut c: std::process::Command) -> String {
    let o = c.output().unwrap();
    let t = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{c:?}:\n{t}");
    t
}

#[test]
fn follow_resumes_a_half_appended_segment_refuses_a_replica_written_to_and_rebuilds_after_a_compaction() {
    let g = Garage::start("follow-once");
    let d = TempDir::new("follow-once");
    let db = d.path("app.db");
    let replica = d.path("replica.db");
    let url = g.url("once");
    let replicate = || {
        let mut c = g.pagelog();
        c.arg("replicate").arg(&db).arg(&url).arg("--once");
        run_ok(c);
    };
    let follow = || {
        let mut c = g.pagelog();
        c.arg("follow").arg(&url).arg(&replica).arg("--once");
        c
    };
    let same_as_primary = |n: u64| {
        let got = std::fs::read(&replica).unwrap();
        let src = std::fs::read(&db).unwrap();
        assert!(got == src[..got.len()], "the replica is not the primary's prefix");
        assert_eq!(version(&open_ro(&replica)), n);
    };
    let c = make_log(&db, 10);
    replicate();
    run_ok(follow());
    same_as_primary(10);

    // A follow stopped half-way through appending a segment: the next one
    // appends it again.
    for i in 0..10 {
        c.execute("INSERT INTO t(v, b) VALUES(?1, randomblob(3000))", [format!("x{i}")]).unwrap();
    }
    replicate();
    let have = std::fs::metadata(&replica).unwrap().len() as usize;
    let src = std::fs::read(&db).unwrap();
    let half = have + (src.len() - have) / 3;
    let f = std::fs::OpenOptions::new().write(true).open(&replica).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &src[have..half], have as u64).unwrap();
    drop(f);
    run_ok(follow());
    same_as_primary(20);

    // A replica someone wrote to is refused, naming where it differs.
    {
        let w = open(&replica);
        w.execute("INSERT INTO t(v) VALUES('local')", []).unwrap();
    }
    c.execute("INSERT INTO t(v) VALUES('primary')", []).unwrap();
    replicate();
    let e = run_fails(follow());
    assert!(e.contains("written to"), "{e}");

    // After a compaction of the primary, follow rebuilds the replica from
    // the new generation.
    std::fs::remove_file(&replica).unwrap();
    run_ok(follow());
    drop(c);
    let mut cc = std::process::Command::new(env!("CARGO_BIN_EXE_pagelog"));
    cc.arg("compact").arg(&db).args(["--keep-last", "3"]);
    run_ok(cc);
    let c = open(&db);
    c.execute("INSERT INTO t(v) VALUES('after')", []).unwrap();
    replicate();
    run_ok(follow());
    same_as_primary(22);
}
