//! Fair waiting for the write lock (issue 23, item 3; `src/sqlite/fair.rs`).
//!
//! Eight writers, each its own connection (OFD locks make connections in one
//! process conflict exactly as processes do), `busy_timeout` 5 s,
//! `synchronous=FULL`, single-row INSERTs in autocommit for a few seconds
//! while two threads burn CPU (the 2-core machine is then oversubscribed
//! about fivefold): no statement may fail with SQLITE_BUSY, every writer
//! must commit, and the rows must be exactly the commits that returned.
//! The longest wait is printed, not asserted (speed lives in benchmarks).
//! `PAGELOG_LONG=1` runs 20 s instead of 3.
//!
//! Also: a connection whose own thread holds the lock through another
//! connection still gets BUSY once `busy_timeout` has passed (the wait is
//! bounded, no deadlock); with no busy handler a free lock is taken at once.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};

const WRITERS: usize = 8;

fn open(p: &std::path::Path) -> Connection {
    pagelog::register().unwrap();
    Connection::open_with_flags_and_vfs(p, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE, "pagelog")
        .unwrap()
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pagelog-fair-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Outcome {
    commits: u64,
    longest: Duration,
    failure: Option<String>,
}

#[test]
fn eight_writers_under_load_never_get_busy_and_all_progress() {
    let d = dir("eight");
    let p = d.join("db");
    open(&p).execute_batch("CREATE TABLE t(w INTEGER, n INTEGER, pad BLOB)").unwrap();
    let secs = if common::long_mode() { 20 } else { 3 };
    let stop = Arc::new(AtomicBool::new(false));
    let burners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                let c = open(&p);
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                c.execute_batch("PRAGMA synchronous=FULL").unwrap();
                let mut out = Outcome { commits: 0, longest: Duration::ZERO, failure: None };
                let mut stmt = c.prepare("INSERT INTO t VALUES (?1, ?2, randomblob(100))").unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match stmt.execute((w as i64, out.commits as i64)) {
                        Ok(_) => out.commits += 1,
                        Err(e) => {
                            out.failure =
                                Some(format!("writer {w} after {} commits, {:?}: {e}", out.commits, t.elapsed()));
                            break;
                        }
                    }
                    out.longest = out.longest.max(t.elapsed());
                }
                out
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let outs: Vec<Outcome> = writers.into_iter().map(|h| h.join().unwrap()).collect();
    for b in burners {
        b.join().unwrap();
    }
    let counts: Vec<u64> = outs.iter().map(|o| o.commits).collect();
    let longest = outs.iter().map(|o| o.longest).max().unwrap();
    let each: Vec<u128> = outs.iter().map(|o| o.longest.as_millis()).collect();
    eprintln!(
        "{WRITERS} writers, {secs} s: commits per writer {counts:?}, longest wait {longest:?} (ms per writer {each:?})"
    );
    let failures: Vec<&String> = outs.iter().filter_map(|o| o.failure.as_ref()).collect();
    assert!(failures.is_empty(), "statements failed: {failures:?}");
    assert!(counts.iter().all(|&n| n > 0), "a writer never committed: {counts:?}");
    // Every commit that returned is there, once, and nothing else.
    let c = open(&p);
    for (w, &n) in counts.iter().enumerate() {
        let (rows, distinct, max): (i64, i64, Option<i64>) = c
            .query_row("SELECT count(*), count(DISTINCT n), max(n) FROM t WHERE w = ?1", [w as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((rows, distinct, max), (n as i64, n as i64, Some(n as i64 - 1)), "writer {w}");
    }
    drop(c);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_wait_is_bounded_when_this_thread_holds_the_lock_elsewhere() {
    let d = dir("self");
    let p = d.join("db");
    let (a, b) = (open(&p), open(&p));
    a.execute_batch("CREATE TABLE t(x)").unwrap();
    b.busy_timeout(Duration::from_millis(300)).unwrap();
    a.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)").unwrap();
    let err = b.execute("INSERT INTO t VALUES (2)", []).unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::DatabaseBusy), "{err}");
    a.execute_batch("COMMIT").unwrap();
    // The failed wait left nothing behind: b writes, and so does a again.
    b.execute("INSERT INTO t VALUES (3)", []).unwrap();
    a.execute("INSERT INTO t VALUES (4)", []).unwrap();
    let n: i64 = b.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 3);
    drop((a, b));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn without_a_busy_handler_a_free_lock_is_taken_and_a_held_one_refused_at_once() {
    let d = dir("nohandler");
    let p = d.join("db");
    let (a, b) = (open(&p), open(&p));
    a.execute_batch("CREATE TABLE t(x)").unwrap();
    b.busy_timeout(Duration::ZERO).unwrap();
    b.execute("INSERT INTO t VALUES (1)", []).unwrap();
    a.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = b.execute("INSERT INTO t VALUES (2)", []).unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::DatabaseBusy), "{err}");
    a.execute_batch("COMMIT").unwrap();
    b.execute("INSERT INTO t VALUES (3)", []).unwrap();
    drop((a, b));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_stale_snapshot_still_gets_busy_at_once() {
    let d = dir("stale");
    let p = d.join("db");
    let (a, b) = (open(&p), open(&p));
    a.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    b.busy_timeout(Duration::from_secs(5)).unwrap();
    b.execute_batch("BEGIN").unwrap();
    let _: i64 = b.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    a.execute("INSERT INTO t VALUES (2)", []).unwrap();
    // b's snapshot predates a's commit: waiting cannot help, so no wait.
    let t = Instant::now();
    let err = b.execute("INSERT INTO t VALUES (3)", []).unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::DatabaseBusy), "{err}");
    eprintln!("stale snapshot refused after {:?}", t.elapsed());
    b.execute_batch("ROLLBACK").unwrap();
    b.execute("INSERT INTO t VALUES (3)", []).unwrap();
    drop((a, b));
    std::fs::remove_dir_all(&d).unwrap();
}
