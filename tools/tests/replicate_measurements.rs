//! Measurements of replication against a real Garage server (ignored by
//! default; the README's figures come from these). Run in release:
//!
//! ```sh
//! cargo test --release -p pagelog-tools --test replicate_measurements -- --ignored --nocapture --test-threads 1
//! ```
//! `PAGELOG_REPLICA_MB` sets the size of the bulk log (default 1024).

mod common;
#[path = "replica/garage.rs"]
mod garage;

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{open, version, TempDir};
use garage::Garage;

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

/// A log of about `mb` MiB: transactions of 4 MiB of random rows.
fn bulk_log(db: &Path, mb: u64) {
    let c = open(db);
    c.execute_batch("PRAGMA synchronous = NORMAL; CREATE TABLE t(b BLOB)").unwrap();
    for _ in 0..mb / 4 {
        c.execute_batch("BEGIN").unwrap();
        for _ in 0..1000 {
            c.execute("INSERT INTO t VALUES(randomblob(4000))", []).unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }
}

#[test]
#[ignore]
fn throughput_and_restore_against_plain_transfers_of_the_same_bytes() {
    let mb: u64 = std::env::var("PAGELOG_REPLICA_MB").ok().and_then(|s| s.parse().ok()).unwrap_or(1024);
    let g = Garage::start("measure-bulk");
    let d = TempDir::new("measure-bulk");
    let db = d.path("app.db");
    let t = Instant::now();
    bulk_log(&db, mb);
    // What is shipped: the log up to its latest commit (the file goes on
    // with a MARK and pre-allocated zeros).
    let o =
        std::process::Command::new(env!("CARGO_BIN_EXE_pagelog")).arg("info").arg(&db).arg("--json").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let size = v["commit_end"].as_u64().unwrap();
    eprintln!("built a {:.0} MiB log in {:.1} s", size as f64 / (1 << 20) as f64, t.elapsed().as_secs_f64());
    // Page cache warm for both runs.
    let _ = std::fs::read(&db).unwrap();

    // The limit: the same bytes, as 16 MiB objects, with the same client.
    let s = g.store("plain");
    let t = Instant::now();
    let mut off = 0u64;
    let mut keys = Vec::new();
    while off < size {
        let n = (16u64 << 20).min(size - off);
        let key = s.loc.key(&format!("part-{off:020}"));
        let f = std::fs::File::open(&db).unwrap();
        s.put(&key, n, false, &mut || {
            use std::io::{Seek, SeekFrom};
            let mut f = f.try_clone()?;
            f.seek(SeekFrom::Start(off))?;
            Ok(Box::new(f.take(n)) as Box<dyn Read>)
        })
        .unwrap();
        keys.push(key);
        off += n;
    }
    let plain_up = t.elapsed();

    let url = g.url("rep");
    let t = Instant::now();
    let o = g.pagelog().arg("replicate").arg(&db).arg(&url).arg("--once").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rep_up = t.elapsed();

    let plain_file = d.path("plain.bin");
    let t = Instant::now();
    {
        let f = std::fs::File::create(&plain_file).unwrap();
        let mut at = 0u64;
        for k in &keys {
            let start = at;
            s.get_into(k, None, &mut |b| {
                use std::os::unix::fs::FileExt;
                match b {
                    None => at = start,
                    Some(b) => {
                        f.write_all_at(b, at)?;
                        at += b.len() as u64;
                    }
                }
                Ok(())
            })
            .unwrap();
        }
        f.sync_all().unwrap();
    }
    let plain_down = t.elapsed();
    let out = d.path("out.db");
    let t = Instant::now();
    let o = g.pagelog().arg("restore").arg(&url).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rep_down = t.elapsed();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), size);
    eprintln!(
        "MEASURE bulk {:.0} MiB: replicate --once {:.1} s ({:.0} MiB/s) vs plain upload {:.1} s ({:.0} MiB/s): {:.2}x; \
         restore {:.1} s ({:.0} MiB/s) vs plain download {:.1} s ({:.0} MiB/s): {:.2}x",
        size as f64 / (1 << 20) as f64,
        rep_up.as_secs_f64(),
        mib_s(size, rep_up),
        plain_up.as_secs_f64(),
        mib_s(size, plain_up),
        plain_up.as_secs_f64() / rep_up.as_secs_f64(),
        rep_down.as_secs_f64(),
        mib_s(size, rep_down),
        plain_down.as_secs_f64(),
        mib_s(size, plain_down),
        plain_down.as_secs_f64() / rep_down.as_secs_f64(),
    );
}

/// Speedtest test 1's pattern: `n` one-row INSERTs, each its own
/// transaction. Returns each version with its commit time, and the time taken.
fn test1_round(c: &rusqlite::Connection, n: usize) -> (Vec<(u64, Instant)>, Duration) {
    let mut out = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n {
        c.execute("INSERT INTO t(v, b) VALUES('row ' || ?1, randomblob(100))", [i as i64]).unwrap();
        out.push((version(c), Instant::now()));
    }
    (out, t0.elapsed())
}

/// Rounds of test 1 (1000 one-row commits, one round a second), alone and
/// with `pagelog replicate` running (interval 1 s): how long a round takes
/// (the cost to the primary), and how long after its commit each version
/// is reported replicated.
#[test]
#[ignore]
fn lag_under_test_1_and_the_cost_to_the_primary() {
    let g = Garage::start("measure-lag");
    for sync in ["FULL", "NORMAL"] {
        let d = TempDir::new("measure-lag");
        let db = d.path("app.db");
        let c = open(&db);
        c.execute_batch(&format!(
            "PRAGMA synchronous = {sync}; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)"
        ))
        .unwrap();
        let rounds = 8;
        let mut alone = Vec::new();
        for _ in 0..rounds {
            alone.push(test1_round(&c, 1000).1.as_secs_f64());
            std::thread::sleep(Duration::from_millis(500));
        }
        let url = g.url(&format!("lag-{sync}"));
        let mut child = g
            .pagelog()
            .arg("replicate")
            .arg(&db)
            .arg(&url)
            .args(["--json", "--interval", "1s"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let seen: Arc<Mutex<Vec<(u64, Instant)>>> = Default::default();
        let reader = {
            let seen = seen.clone();
            let mut so = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                let mut buf = String::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = so.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
                    while let Some(i) = buf.find('\n') {
                        let line: String = buf.drain(..=i).collect();
                        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                            seen.lock().unwrap().push((v["version"].as_u64().unwrap_or(0), Instant::now()));
                        }
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_secs(2));
        let mut with = Vec::new();
        let mut commits = Vec::new();
        for _ in 0..rounds {
            let (cs, took) = test1_round(&c, 1000);
            with.push(took.as_secs_f64());
            commits.extend(cs);
            std::thread::sleep(Duration::from_millis(500));
        }
        std::thread::sleep(Duration::from_secs(3));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let seen = seen.lock().unwrap();
        let mut lags: Vec<f64> = commits
            .iter()
            .filter_map(|(v, t)| {
                seen.iter().find(|(sv, st)| sv >= v && st >= t).map(|(_, st)| (*st - *t).as_secs_f64())
            })
            .collect();
        let missing = commits.len() - lags.len();
        lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = |p: f64| lags[((lags.len() - 1) as f64 * p) as usize];
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        let (a, w) = (median(&mut alone), median(&mut with));
        eprintln!(
            "MEASURE synchronous={sync}: test 1 (1000 one-row commits) median {:.3} s alone, {:.3} s with the \
             replicator running ({:+.1}%, {rounds} rounds each); commit-to-replicated lag median {:.2} s, p99 {:.2} s, \
             max {:.2} s ({missing} of {} never seen)",
            a,
            w,
            (w / a - 1.0) * 100.0,
            pct(0.5),
            pct(0.99),
            pct(1.0),
            commits.len()
        );
    }
}
