//! Several OS processes at once, for a bounded time: three writers moving
//! money between accounts and two readers checking the books.
//!
//! * Writers (`plworker stress-writer`): each transaction (BEGIN IMMEDIATE,
//!   busy_timeout 30 s) moves a random amount between two random accounts and
//!   adds 1 to the writer's own commit counter; every 10th transaction is
//!   rolled back instead, every 25th also rewrites a 200 KB history row (with
//!   a 20-page cache and a 64 KiB spill limit, it spills to the log). Writers
//!   0 and 1 run with `synchronous = FULL`, writer 2 with `NORMAL`.
//! * Readers (`plworker stress-reader`): in one read transaction, the sum of
//!   the balances is the fixed total, no balance is NULL, the number of
//!   accounts is right; across transactions neither the version nor the
//!   sum of the commit counters goes backwards; and every commit a writer
//!   announced as returned (its counter, in a side file) before the
//!   transaction began is seen, in whatever process and at whatever
//!   synchronous level it was made.
//! * Any violation, SQLITE_CORRUPT or other error (but BUSY) makes the
//!   process exit non-zero. At the end: every process succeeded; each
//!   writer's counter equals the commits it reported (no lost update); the
//!   version equals the setup's plus the commits (each commit made exactly
//!   one version); the total is intact; `integrity_check` is ok.
//!
//! Runs 3 s by default; `PAGELOG_STRESS_SECS=N` or `PAGELOG_LONG=1` (60 s)
//! for longer. Prints commits/s and reads/s.
//!
//! Known bug B9: a transaction that starts (`Log::refresh`) while another
//! process truncates the spill of a transaction it rolled back can fail with
//! SQLITE_IOERR ("failed to fill whole buffer"): `refresh` reads records past
//! the committed end with `pread`, up to a file length it took a moment
//! before, and a short read is an error instead of "no record there". The
//! workers count these and retry (the count is printed); the `#[ignore]`d
//! tests below fail on them.

use std::process::{Command, Stdio};
use std::time::Instant;

use pagelog_e2e::{field, integrity, open, open_bank, stress_seconds, version, TempDir};

const ACCOUNTS: i64 = 100;
const BALANCE: i64 = 1_000;
const WRITERS: i64 = 3;
const READERS: usize = 2;

#[test]
fn three_writers_and_two_readers_keep_the_books_balanced_and_lose_no_update() {
    stress(false);
}

/// At least 20 s (B9 is a race: it showed about once every 10 s here).
#[test]
#[ignore = "long: 20 s of stress with no tolerance (B9 is fixed)"]
fn strict_stress_tolerates_no_io_error() {
    stress(true);
}

fn stress(strict: bool) {
    let d = TempDir::new("stress");
    let p = d.path("bank.db");
    let secs = if strict { stress_seconds(3.0).max(20.0) } else { stress_seconds(3.0) };
    let setup_version = {
        let c = open_bank(&p, ACCOUNTS, BALANCE, WRITERS);
        version(&c)
    };
    let total = ACCOUNTS * BALANCE;
    let db = p.to_str().unwrap().to_string();
    let announce = d.path("announce");
    let t0 = Instant::now();
    let spawn = |args: Vec<String>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_plworker"));
        cmd.env("PLWORKER_ANNOUNCE", &announce);
        if strict {
            cmd.env("PAGELOG_STRESS_STRICT", "1");
        }
        cmd.args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let sync = if w == 2 { "NORMAL" } else { "FULL" };
            spawn(vec!["stress-writer".into(), db.clone(), w.to_string(), secs.to_string(), sync.into()])
        })
        .collect();
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            spawn(vec!["stress-reader".into(), db.clone(), secs.to_string(), total.to_string(), ACCOUNTS.to_string()])
        })
        .collect();
    let finish = |k: std::process::Child, what: String| -> String {
        let out = k.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{what} failed ({}):\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let mut b9 = 0;
    let mut commits = Vec::new();
    for (w, k) in writers.into_iter().enumerate() {
        let out = finish(k, format!("writer {w}"));
        commits.push(field(&out, "commits"));
        b9 += field(&out, "b9");
    }
    let mut reads = 0;
    for (r, k) in readers.into_iter().enumerate() {
        let out = finish(k, format!("reader {r}"));
        reads += field(&out, "reads");
        b9 += field(&out, "b9");
    }
    let elapsed = t0.elapsed().as_secs_f64();

    let c = open(&p);
    for (w, &n) in commits.iter().enumerate() {
        let counter: i64 = c.query_row("SELECT n FROM counters WHERE writer = ?1", [w as i64], |r| r.get(0)).unwrap();
        assert_eq!(counter as u64, n, "writer {w} reported {n} commits, its counter says {counter}: a lost update");
    }
    let all: u64 = commits.iter().sum();
    assert_eq!(version(&c), setup_version + all, "one version per reported commit");
    let (sum, nulls): (i64, i64) = c
        .query_row("SELECT sum(bal), count(*) - count(bal) FROM accounts", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((sum, nulls), (total, 0));
    assert_eq!(integrity(&c), "ok");
    assert!(all > 0 && reads > 0, "every process made progress: {commits:?} commits, {reads} reads");
    println!(
        "stress: {secs} s, {WRITERS} writers, {READERS} readers: {all} commits ({:.0}/s; per writer {commits:?}), \
         {reads} read transactions ({:.0}/s), in {elapsed:.1} s; known bug B9 hit {b9} times",
        all as f64 / elapsed,
        reads as f64 / elapsed
    );
    assert_eq!(b9, 0, "bug B9 is fixed: an I/O error during a refresh is a regression");
}

/// B9 at the log level, in one process with two `Log`s on one file (as two
/// processes have): one rolls back transactions that spilled past the end
/// of an append-only log (so `rollback` truncates the file), the other
/// refreshes in a loop. Every `refresh` must succeed.
#[test]
fn refreshing_while_another_log_truncates_a_rolled_back_spill_never_fails() {
    use pagelog::{Durability, Log, OpenOptions};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    let d = TempDir::new("b9");
    let p = d.path("a.log");
    let opts = OpenOptions { create: true, append_only: true, ..Default::default() };
    let writer = Log::open(&p, opts).unwrap();
    {
        let _w = writer.lock_writer(Duration::from_secs(5)).unwrap();
        let base = writer.prepare_write().unwrap();
        let mut txn = writer.begin(base, 1 << 20);
        txn.write(&writer, 0, &[7u8; 4096]).unwrap();
        writer.commit(txn, Durability::Full).unwrap().unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let p2 = p.clone();
    // Opens (recovery) and refreshes in a loop, a new `Log` every 20 refreshes.
    let reader = std::thread::spawn(move || {
        let (mut ok, mut errors, mut first) = (0u64, 0u64, None);
        let mut fail = |e: pagelog::Error| {
            errors += 1;
            first.get_or_insert(e.to_string());
        };
        while !st.load(Ordering::Relaxed) {
            let log = match Log::open(&p2, OpenOptions { read_only: true, ..Default::default() }) {
                Ok(l) => l,
                Err(e) => {
                    fail(e);
                    continue;
                }
            };
            for _ in 0..20 {
                match log.refresh() {
                    Ok(_) => ok += 1,
                    Err(e) => fail(e),
                }
            }
        }
        (ok, errors, first)
    });
    let t0 = Instant::now();
    let mut rollbacks = 0;
    while t0.elapsed() < Duration::from_secs(2) {
        let _w = writer.lock_writer(Duration::from_secs(5)).unwrap();
        let base = writer.prepare_write().unwrap();
        let mut txn = writer.begin(base, 8192);
        for p in 0..16u64 {
            txn.write(&writer, p * 4096, &[p as u8; 4096]).unwrap();
        }
        writer.rollback(txn).unwrap();
        rollbacks += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, errors, first) = reader.join().unwrap();
    println!("{rollbacks} rollbacks, {ok} refreshes ok, {errors} opens or refreshes failed; first: {first:?}");
    assert_eq!(errors, 0, "open or refresh failed {errors} times ({ok} refreshes ok): {first:?}");
}
