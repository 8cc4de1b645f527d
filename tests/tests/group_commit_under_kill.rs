//! Group commit under kill -9: four FULL writer processes (one NORMAL)
//! moving money between accounts (`plworker stress-writer`), two reader
//! processes checking the books (`plworker stress-reader`: the sum is
//! constant in every transaction, nothing goes backwards, and every commit
//! a writer announced as returned, in the side file, is seen by every
//! transaction that begins after). Meanwhile writers are killed with
//! SIGKILL at random moments (mid-append, mid-sync, while others wait for
//! the sync a killed one was running) and started again.
//!
//! At the end: both readers succeeded; every writer's counter in the
//! database is at least the last value it announced (no returned commit
//! lost); the total is intact; `integrity_check` is ok. Runs 4 s by
//! default (`PAGELOG_STRESS_SECS`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pagelog_e2e::{integrity, open, open_bank, stress_seconds, TempDir};

const ACCOUNTS: i64 = 100;
const BALANCE: i64 = 1_000;
const WRITERS: i64 = 5;

#[test]
fn killed_writers_mid_group_lose_no_returned_commit_and_readers_see_consistent_books() {
    let d = TempDir::new("group-kill");
    let p = d.path("bank.db");
    drop(open_bank(&p, ACCOUNTS, BALANCE, WRITERS));
    let secs = stress_seconds(4.0);
    let total = ACCOUNTS * BALANCE;
    let db = p.to_str().unwrap().to_string();
    let announce = d.path("announce");
    let spawn = |args: Vec<String>| -> Child {
        Command::new(env!("CARGO_BIN_EXE_plworker"))
            .env("PLWORKER_ANNOUNCE", &announce)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let writer = |w: i64, secs: f64| {
        let sync = if w == WRITERS - 1 { "NORMAL" } else { "FULL" };
        spawn(vec!["stress-writer".into(), db.clone(), w.to_string(), secs.to_string(), sync.into()])
    };
    let t0 = Instant::now();
    let mut writers: Vec<Child> = (0..WRITERS).map(|w| writer(w, secs + 1.0)).collect();
    let readers: Vec<Child> = (0..2)
        .map(|_| {
            spawn(vec!["stress-reader".into(), db.clone(), secs.to_string(), total.to_string(), ACCOUNTS.to_string()])
        })
        .collect();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut kills = 0;
    while t0.elapsed().as_secs_f64() < secs - 0.5 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(50 + rng % 200));
        let w = (rng >> 20) as usize % WRITERS as usize;
        let _ = writers[w].kill(); // SIGKILL
        let _ = writers[w].wait();
        kills += 1;
        let left = secs + 1.0 - t0.elapsed().as_secs_f64();
        writers[w] = writer(w as i64, left.max(0.5));
    }
    for (r, k) in readers.into_iter().enumerate() {
        let out = k.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "reader {r} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (w, k) in writers.into_iter().enumerate() {
        let out = k.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "writer {w} failed ({}):\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let announced: Vec<i64> = {
        let b = std::fs::read(&announce).unwrap_or_default();
        b.chunks(8).filter(|c| c.len() == 8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
    };
    let c = open(&p);
    for (w, &a) in announced.iter().enumerate() {
        let n: i64 = c.query_row("SELECT n FROM counters WHERE writer = ?1", [w as i64], |r| r.get(0)).unwrap();
        assert!(n >= a, "writer {w} announced its commit making its counter {a}, the database says {n}: lost");
    }
    let sum: i64 = c.query_row("SELECT sum(bal) FROM accounts", [], |r| r.get(0)).unwrap();
    assert_eq!(sum, total);
    assert_eq!(integrity(&c), "ok");
    assert!(kills > 3 && announced.iter().sum::<i64>() > 0, "{kills} kills, announced {announced:?}");
    println!("{kills} writers killed; counters announced {announced:?}");
}
