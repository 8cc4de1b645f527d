//! Faults while replicating, against a real Garage server: the replicator
//! killed -9 at pseudo-random moments while a writer commits, and the
//! server killed and restarted in the middle of an upload. Each time the
//! replicator resumes where the bucket ends, and the restore is byte for
//! byte the source log.

mod common;
#[path = "replica/garage.rs"]
mod garage;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{make_log, open, version, TempDir};
use garage::Garage;

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "exit {:?}:\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn spawn_replicator(g: &Garage, db: &Path, url: &str, extra: &[&str]) -> Child {
    g.pagelog()
        .arg("replicate")
        .arg(db)
        .arg(url)
        .args(["--interval", "20ms"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn replicated(g: &Garage, url: &str) -> u64 {
    let o = ok(g.pagelog().args(["info", url, "--json"]).output().unwrap());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for gen in v["generations"].as_array().unwrap() {
        assert_eq!(gen["complete"], true, "a generation with a gap or overlap: {v}");
    }
    v["latest_version"].as_u64().unwrap()
}

/// Restores the latest version and compares it with the source's prefix.
fn restore_equals_source(g: &Garage, url: &str, db: &Path, out: &Path, want: u64) {
    ok(g.pagelog().arg("restore").arg(url).arg(out).arg("--force").output().unwrap());
    let got = std::fs::read(out).unwrap();
    let src = std::fs::read(db).unwrap();
    assert!(src.len() >= got.len());
    assert!(got == src[..got.len()], "the restore differs from the source's prefix");
    let o = ok(std::process::Command::new(env!("CARGO_BIN_EXE_pagelog"))
        .arg("info")
        .arg(out)
        .arg("--json")
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["latest_version"].as_u64(), Some(want));
}

#[test]
fn a_replicator_killed_at_random_moments_resumes_with_nothing_lost_or_doubled() {
    let g = Garage::start("kill-replicator");
    let d = TempDir::new("rep-kill");
    let db = d.path("app.db");
    drop(make_log(&db, 5));
    let url = g.url("kill");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = open(&db);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                c.execute("INSERT INTO t(v, b) VALUES(?1, randomblob(1500))", [format!("w{i}")]).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(3));
            }
            version(&c)
        })
    };
    let mut seed = 0x9e37_79b9_u64;
    let mut killed_running = 0;
    for _ in 0..12 {
        let mut child = spawn_replicator(&g, &db, &url, &["--max-segment", "16k"]);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(150 + seed % 600));
        if child.try_wait().unwrap().is_none() {
            killed_running += 1;
        }
        child.kill().unwrap();
        let st = child.wait().unwrap();
        if st.code().is_some() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the replicator exited by itself ({st}): {err}");
        }
    }
    assert!(killed_running >= 10, "only {killed_running} kills landed while it ran");
    stop.store(true, Ordering::Relaxed);
    let latest = writer.join().unwrap();
    assert!(replicated(&g, &url) > 5, "nothing was replicated between kills");
    ok(g.pagelog().arg("replicate").arg(&db).arg(&url).arg("--once").output().unwrap());
    assert_eq!(replicated(&g, &url), latest);
    restore_equals_source(&g, &url, &db, &d.path("out.db"), latest);
}

#[test]
fn the_server_killed_and_restarted_mid_upload_loses_nothing() {
    let g = Garage::start("kill-server");
    let d = TempDir::new("rep-server");
    let db = d.path("app.db");
    {
        let c = make_log(&db, 2);
        for i in 0..400 {
            c.execute("INSERT INTO t(v, b) VALUES(?1, randomblob(20000))", [format!("r{i}")]).unwrap();
        }
    }
    let latest = 402;
    let url = g.url("server");
    let mut child = spawn_replicator(&g, &db, &url, &["--max-segment", "64k"]);
    let t0 = Instant::now();
    while replicated(&g, &url) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "nothing replicated");
        std::thread::sleep(Duration::from_millis(20));
    }
    g.kill();
    let during = Instant::now();
    // Longer than one request's retries (about 6 s): the pass fails, and
    // the replicator retries it with backoff.
    std::thread::sleep(Duration::from_secs(9));
    g.restart();
    let t1 = Instant::now();
    while replicated(&g, &url) < latest {
        assert!(child.try_wait().unwrap().is_none(), "the replicator gave up while the server was down");
        assert!(t1.elapsed() < Duration::from_secs(90), "the replicator did not catch up after the restart");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "server down {:.1} s; caught up {:.1} s after the restart",
        (t1 - during).as_secs_f64(),
        t1.elapsed().as_secs_f64()
    );
    child.kill().unwrap();
    let _ = child.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("retrying"), "the replicator should have said it was retrying: {err}");
    restore_equals_source(&g, &url, &db, &d.path("out.db"), latest);
}
