//! Reader processes beside a writer process never see a healthy database
//! as damaged (issue 26), whatever the timing.
//!
//! One `plworker race-writer` commits single-row UPDATEs (small patches),
//! with a spilling transaction every 100 commits, a rolled-back one every
//! 1,000 and a revert every 500, at `synchronous = FULL` or `NORMAL`; 2, 4 or 8 `plworker
//! race-reader` processes run point SELECTs (each its own read transaction,
//! so each refreshes its view of the log), table sums and reads of older
//! versions (`?version=N`), and fail on any error but SQLITE_BUSY:
//! SQLITE_CORRUPT and SQLITE_IOERR included. Meanwhile this process opens
//! the log again and again as the tools do (`Log::open`, the history
//! listing, `version(n)`, `verify`): none may report damage.
//!
//! The invariant every reader checks: each row's `v + w` is 0.
//!
//! Runs 2 s per configuration by default (six configurations, about 20 s in
//! all); `PAGELOG_STRESS_SECS=N` or `PAGELOG_LONG=1` (60 s each) for longer.
//! Prints commits and reads per configuration.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pagelog::{Log, OpenOptions};
use pagelog_e2e::{field, integrity, open, stress_seconds, TempDir};

/// The tools' way in, repeated while the writer commits: open (recovery),
/// list the history, read an older version, verify. Returns how many rounds.
fn tools_round(path: &Path, stop: &AtomicBool) -> u64 {
    let mut rounds = 0;
    while !stop.load(Ordering::Relaxed) {
        let log = Log::open(path, OpenOptions { read_only: true, ..Default::default() })
            .unwrap_or_else(|e| panic!("a tool opening the log while it is written got: {e}"));
        let latest = log.latest().number;
        let h = log.history().unwrap_or_else(|e| panic!("history while the log is written: {e}"));
        assert!(h.iter().any(|c| c.version == latest), "history lacks the latest version {latest}");
        if latest > 1 {
            let v = log.version(latest / 2).unwrap_or_else(|e| panic!("version {}: {e}", latest / 2));
            let mut page = vec![0u8; v.page_size as usize];
            v.read(0, &mut page).unwrap_or_else(|e| panic!("version {}: read: {e}", v.number));
        }
        if rounds % 4 == 0 {
            let rep = log.verify();
            assert!(!rep.damaged(), "verify while the log is written reports damage: {rep:?}");
        }
        rounds += 1;
    }
    rounds
}

fn race(readers: usize, sync: &str) {
    let d = TempDir::new(&format!("race-{readers}-{sync}"));
    let p = d.path("race.db");
    {
        let c = open(&p);
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL, w INTEGER NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
             INSERT INTO t SELECT i, 0, 0 FROM n;
             CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB);
             INSERT INTO big VALUES (1, randomblob(100000));",
        )
        .unwrap();
    }
    let secs = stress_seconds(2.0);
    let worker = env!("CARGO_BIN_EXE_plworker");
    let spawn =
        |args: &[&str]| Command::new(worker).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let db = p.to_str().unwrap();
    let s = secs.to_string();
    let writer = spawn(&["race-writer", db, &s, sync]);
    let n_readers = readers;
    let readers: Vec<_> = (0..readers).map(|_| spawn(&["race-reader", db, &s])).collect();
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let tool_rounds = std::thread::scope(|sc| {
        let t = sc.spawn(|| tools_round(&p, &stop));
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap()
    });
    let out = |c: std::process::Child, who: &str| {
        let o = c.wait_with_output().unwrap();
        let (so, se) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "{who} failed ({}): {se}{so}", o.status);
        so.into_owned()
    };
    let commits = field(&out(writer, "the writer"), "commits");
    let reads: u64 =
        readers.into_iter().enumerate().map(|(i, r)| field(&out(r, &format!("reader {i}")), "reads")).sum();
    let took = start.elapsed().as_secs_f64();
    eprintln!(
        "1 writer ({sync}) + {n_readers} readers, {took:.1} s: {commits} commits, {reads} reads, \
         {tool_rounds} tool rounds, 0 errors"
    );
    assert!(commits > 0 && reads > 0, "the workers did nothing: {commits} commits, {reads} reads");
    let c = open(&p);
    assert_eq!(integrity(&c), "ok");
    let sum: i64 = c.query_row("SELECT sum(v + w) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(sum, 0);
}

#[test]
fn readers_beside_a_full_writer_never_see_damage() {
    for readers in [2, 4, 8] {
        race(readers, "FULL");
    }
}

#[test]
fn readers_beside_a_normal_writer_never_see_damage() {
    for readers in [2, 4, 8] {
        race(readers, "NORMAL");
    }
}
