//! Replication of format-4 logs (checkpoints as index trees, CONTROL and
//! INDEX records, retention punching holes below the boundary B) against a
//! real Garage server, as the other replicate tests get it:
//! restores are byte for byte the primary's prefix, `follow` keeps a
//! replica current across checkpoints and CONTROL records, a replicator
//! that shipped bytes before they were freed keeps going (the replica keeps
//! them, so versions the primary no longer keeps still restore), one that
//! lagged behind the boundary refuses, saying why and what to do, and a new
//! replica of a reclaimed log starts at the boundary, its head carrying the
//! frames read in place below it; holes are never shipped as the log nor
//! called damage.

mod common;
#[path = "replica/garage.rs"]
mod garage;
mod retained;

use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;

use common::{export, open, TempDir};
use garage::Garage;
use retained::*;

fn server() -> &'static Garage {
    static G: OnceLock<Garage> = OnceLock::new();
    G.get_or_init(|| Garage::start("replicate-f4"))
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "exit {:?}:\n{}", o.status.code(), text(&o));
    o
}

/// Exit 1 with one line on stderr starting "pagelog: "; returns that line.
fn fails(o: Output) -> String {
    assert_eq!(o.status.code(), Some(1), "expected exit 1:\n{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.starts_with("pagelog: ") && err.trim_end().lines().count() == 1, "not one error line:\n{err}");
    err
}

fn replicate_once(g: &Garage, db: &Path, url: &str) -> Output {
    g.pagelog().arg("replicate").arg(db).arg(url).arg("--once").args(["--max-segment", "64k"]).output().unwrap()
}

fn restore(g: &Garage, url: &str, out: &Path, extra: &[&str]) -> Output {
    g.pagelog().arg("restore").arg(url).arg(out).arg("--force").args(extra).output().unwrap()
}

fn follow_once(g: &Garage, url: &str, replica: &Path) -> Output {
    g.pagelog().arg("follow").arg(url).arg(replica).arg("--once").output().unwrap()
}

/// The latest version of a log, as a fresh read-only open finds it.
fn latest_of(db: &Path) -> u64 {
    pagelog::Log::open(db, pagelog::OpenOptions { read_only: true, ..Default::default() }).unwrap().latest().number
}

/// Restores version `n` (None: the latest) and checks it is byte for byte
/// `source`'s prefix, holding version `n`; returns the restored bytes.
fn restored_is_prefix(g: &Garage, url: &str, out: &Path, n: Option<u64>, source: &[u8], want: u64) -> Vec<u8> {
    let extra = n.map(|n| vec!["--version".to_string(), n.to_string()]).unwrap_or_default();
    ok(restore(g, url, out, &extra.iter().map(String::as_str).collect::<Vec<_>>()));
    let got = std::fs::read(out).unwrap();
    assert!(got.len() <= source.len(), "the restore of {n:?} is longer than the source");
    assert!(got == source[..got.len()], "the restore of {n:?} differs from the source's prefix");
    assert_eq!(latest_of(out), want);
    got
}

#[test]
fn a_format_4_log_restores_byte_for_byte_and_its_replica_outlives_the_primarys_retention() {
    let g = server();
    let d = TempDir::new("rep-f4");
    let db = d.path("app.db");
    let url = g.url("f4");
    // 600 one-row commits: checkpoints every 256 commits, each with its
    // INDEX and CONTROL records.
    make_format4_log(&db, 300, 600);
    let hashes = version_hashes(&db);
    let latest = *hashes.keys().last().unwrap();
    ok(replicate_once(g, &db, &url));
    let before = std::fs::read(&db).unwrap();
    let out = d.path("out.db");
    restored_is_prefix(g, &url, &out, None, &before, latest);
    for n in [1, 2, 255, 256, 257, 300, 513, latest - 1] {
        restored_is_prefix(g, &url, &out, Some(n), &before, n);
        assert_eq!(hash(&export(&db, n, &d.path("x.plain"))), hashes[&n], "version {n}");
    }
    // follow builds a replica, then keeps it current.
    let replica = d.path("replica.db");
    ok(follow_once(g, &url, &replica));
    assert_eq!(latest_of(&replica), latest);
    let followed_to = pagelog_commit_end(&replica);

    // More commits, then a policy and reclamation steps on the primary:
    // CONTROL records, checkpoints written whole, holes punched below B.
    {
        let c = open(&db);
        for i in 0..300 {
            c.execute("UPDATE t SET v = printf('late %d', ?1) WHERE id = ?1 % 300 + 1", [i]).unwrap();
        }
    }
    let all = version_hashes(&db);
    // Shipped before the steps run: the bucket holds the bytes they free.
    ok(replicate_once(g, &db, &url));
    let before = std::fs::read(&db).unwrap();
    let shipped_end = pagelog_commit_end(&db) as usize;
    let vo = reclaim(&db, "50 versions", 64 << 10);
    let (b, _) = kept(&db);
    assert!(b > 512 && vo > 600, "the steps freed the versions shipped first: B {b}, Vo {vo}");
    {
        let c = open(&db);
        for i in 0..20 {
            c.execute("UPDATE t SET v = printf('after %d', ?1) WHERE id = ?1 + 1", [i]).unwrap();
        }
    }
    let now = std::fs::read(&db).unwrap();
    assert!(now[512..b as usize].iter().all(|&x| x == 0), "the freed region reads as zeros (punched)");
    let newest = latest_of(&db);
    // Past B the steps changed nothing but the dead frames they listed and
    // then released (punched in place, docs/format-4.md step 2): zeros now.
    let released = (b as usize..shipped_end).filter(|&i| now[i] != before[i]).count();
    assert!(
        (b as usize..shipped_end).all(|i| now[i] == before[i] || now[i] == 0),
        "past B the primary changed only by punching"
    );
    eprintln!("{released} bytes past B released on the primary after they were shipped");

    // The replicator that shipped the freed bytes keeps going.
    ok(replicate_once(g, &db, &url));
    // Its replica keeps every byte it shipped (the primary's later punches
    // are not shipped: the replica holds a superset of the intact set, see
    // docs/format-4.md "Next"), then the primary's bytes after them.
    let replica_bytes = [&before[..shipped_end], &now[shipped_end..]].concat();
    let got = restored_is_prefix(g, &url, &out, None, &replica_bytes, newest);
    assert_eq!(got.len() as u64, pagelog_commit_end(&db), "the restore ends at the primary's latest commit");
    // A version the primary no longer keeps restores from the replica.
    for n in [1, 300, vo - 1] {
        restored_is_prefix(g, &url, &out, Some(n), &before, n);
        assert_eq!(hash(&export(&out, n, &d.path("x.plain"))), all[&n], "version {n}");
        let e = g.pagelog().arg("export").arg(&db).arg(d.path("y.plain")).args(["--version", &n.to_string()]).output();
        assert!(!e.unwrap().status.success(), "the primary no longer keeps version {n}");
    }
    // Kept versions, through the replica, read as on the primary.
    for n in [vo, newest] {
        restored_is_prefix(g, &url, &out, Some(n), &replica_bytes, n);
        assert_eq!(hash(&export(&out, n, &d.path("x.plain"))), hash(&export(&db, n, &d.path("y.plain"))));
    }
    // The bucket lists every version it holds, from 1: more than the primary keeps.
    let o = ok(g.pagelog().args(["info", &url, "--json"]).output().unwrap());
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["latest_version"].as_u64(), Some(newest), "{info}");
    let o = ok(g.pagelog().args(["log", &url, "--json"]).output().unwrap());
    let segs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let firsts = segs.as_array().unwrap().iter().filter_map(|s| s["first_version"].as_u64());
    assert_eq!(firsts.min(), Some(1), "{segs}");
    // follow carries the replica across the checkpoints and CONTROL records,
    // from below the boundary the new ones set (its own bytes there are whole).
    assert!(followed_to < b, "the replica was followed to {followed_to}, below B {b}");
    ok(follow_once(g, &url, &replica));
    assert_eq!(latest_of(&replica), newest);
    assert_eq!(std::fs::read(&replica).unwrap(), got, "the followed replica is the restored log");
}

/// The end of the latest commit of a log, as `pagelog info --json` says.
fn pagelog_commit_end(db: &Path) -> u64 {
    let o = ok(std::process::Command::new(env!("CARGO_BIN_EXE_pagelog"))
        .arg("info")
        .arg(db)
        .arg("--json")
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["commit_end"].as_u64().unwrap()
}

#[test]
fn a_replica_behind_the_boundary_is_refused_and_a_new_one_starts_at_the_boundary() {
    let g = server();
    let d = TempDir::new("rep-f4-freed");
    let db = d.path("app.db");
    make_format4_log(&db, 300, 300);
    let lag = g.url("f4-lag");
    ok(replicate_once(g, &db, &lag));
    let shipped = latest_of(&db);
    {
        let c = open(&db);
        for i in 0..300 {
            c.execute("UPDATE t SET v = printf('late %d', ?1) WHERE id = ?1 % 300 + 1", [i]).unwrap();
        }
    }
    let vo = reclaim(&db, "50 versions", 64 << 10);
    let (b, _) = kept(&db);
    assert!(vo > shipped + 1, "the steps freed versions never shipped: Vo {vo}, shipped up to {shipped}");

    // A replica that lagged behind the boundary cannot be continued.
    let e = fails(replicate_once(g, &db, &lag));
    assert!(e.contains("cannot be continued") && e.contains(&format!("512..{b}")), "{e}");
    assert!(e.contains(&format!("restores versions up to {shipped}")) && !e.contains("damaged"), "{e}");
    // It still restores what it holds.
    let out = d.path("out.db");
    ok(restore(g, &lag, &out, &[]));
    assert_eq!(latest_of(&out), shipped);

    // A replicator starting fresh on the reclaimed log starts a generation
    // at the boundary: the header, a hole where the freed bytes were, the
    // log from B on; it restores the versions after the CONTROL record that
    // set B (nothing older can be read without the freed bytes).
    let fresh = g.url("f4-fresh");
    // Right after the steps, no commit follows the CONTROL record that set
    // B: nothing of the log from B on restores yet, so nothing is shipped.
    let o = g.pagelog().arg("replicate").arg(&db).arg(&fresh).args(["--once", "--json"]).output().unwrap();
    let s: serde_json::Value = serde_json::from_slice(&ok(o).stdout).unwrap();
    assert_eq!(s["version"].as_u64(), Some(0), "{s}");
    {
        let c = open(&db);
        for i in 0..5 {
            c.execute("UPDATE t SET v = printf('fresh %d', ?1) WHERE id = ?1 + 1", [i]).unwrap();
        }
    }
    ok(replicate_once(g, &db, &fresh));
    let (b, vo) = kept(&db);
    let newest = latest_of(&db);
    let o = ok(g.pagelog().args(["info", &fresh, "--json"]).output().unwrap());
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let first = info["generations"][0]["first_version"].as_u64().unwrap();
    assert_eq!(info["latest_version"].as_u64(), Some(newest), "{info}");
    assert!(first >= vo && first <= newest, "restores from {first}: Vo {vo}, latest {newest}");
    let primary = std::fs::read(&db).unwrap();
    for n in [None, Some(first), Some(newest)] {
        let extra = n.map(|n| vec!["--version".to_string(), n.to_string()]).unwrap_or_default();
        ok(restore(g, &fresh, &out, &extra.iter().map(String::as_str).collect::<Vec<_>>()));
        let got = std::fs::read(&out).unwrap();
        assert_eq!(got[..512], primary[..512], "the header");
        // Below B: a hole up to the lowest frame the state reads in place
        // (none here: the load is too small to be ALIGNED), then those frames,
        // shipped with the head.
        let low = 512 + got[512..b as usize].iter().position(|&x| x != 0).unwrap_or(b as usize - 512) as u64;
        assert!(got[512..low as usize].iter().all(|&x| x == 0), "a hole where the freed bytes were");
        assert!(got[b as usize..] == primary[b as usize..got.len()], "the log from B on, byte for byte");
        let v = n.unwrap_or(newest);
        assert_eq!(latest_of(&out), v);
        assert_eq!(hash(&export(&out, v, &d.path("x.plain"))), hash(&export(&db, v, &d.path("y.plain"))));
    }
    let e = fails(restore(g, &fresh, &out, &["--version", &(first - 1).to_string()]));
    assert!(e.contains(&format!("no version {}", first - 1)), "{e}");
    // --time: the newest version at or before it, never one before `first`.
    let hist = common::history(&db);
    let at = |n: u64| hist.iter().find(|v| v["version"] == n).unwrap()["timestamp_us"].as_u64().unwrap();
    let t = |us: u64| format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    ok(restore(g, &fresh, &out, &["--time", &t(at(first))]));
    assert_eq!(latest_of(&out), first);
    let e = fails(restore(g, &fresh, &out, &["--time", &t(at(first) - 1)]));
    assert!(e.contains("no version committed at or before that time"), "{e}");
    // follow builds a replica from it and keeps it current.
    let replica = d.path("replica.db");
    ok(follow_once(g, &fresh, &replica));
    assert_eq!(latest_of(&replica), newest);
    {
        let c = open(&db);
        c.execute("UPDATE t SET v = 'followed' WHERE id = 7", []).unwrap();
    }
    ok(replicate_once(g, &db, &fresh));
    ok(follow_once(g, &fresh, &replica));
    assert_eq!(latest_of(&replica), newest + 1);
}

/// A format-4 log whose first commit loads `rows` rows of 400 bytes at
/// 1 KiB pages (one record of far more than 32 frames: ALIGNED), then
/// `updates` updates of the first `hot` rows only: the load's other pages
/// are never replaced, so a step leaves their frames in place below `B`.
fn make_log_with_a_cold_load(path: &Path, rows: u32, hot: u32, updates: u32) {
    make_format4_log_of(path, rows, "printf('cold row %d ', i) || hex(randomblob(190))", hot, updates);
}

#[test]
fn a_new_replica_of_a_log_with_frames_in_place_below_the_boundary_restores_every_kept_version() {
    let g = server();
    let d = TempDir::new("rep-f4-in-place");
    let db = d.path("app.db");
    make_log_with_a_cold_load(&db, 400, 10, 400);
    let vo = reclaim(&db, "40 versions", 64 << 10);
    assert!(vo > 2, "the steps freed the load's version");
    {
        let c = open(&db);
        for i in 0..5 {
            c.execute("UPDATE t SET v = printf('fresh %d', ?1) WHERE id = ?1 + 1", [i]).unwrap();
        }
    }
    // The primary reads its cold pages in place below B, and says they are
    // intact.
    ok(g.pagelog().arg("verify").arg(&db).output().unwrap());
    let (b, vo) = kept(&db);
    let primary = std::fs::read(&db).unwrap();
    let low = 512 + primary[512..b as usize].iter().position(|&x| x != 0).expect("frames below B") as u64;
    assert!(low < b, "frames in place below B");

    let url = g.url("f4-in-place");
    ok(replicate_once(g, &db, &url));
    let newest = latest_of(&db);
    let o = ok(g.pagelog().args(["info", &url, "--json"]).output().unwrap());
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let first = info["generations"][0]["first_version"].as_u64().unwrap();
    assert!(first >= vo && first <= newest, "restores from {first}: Vo {vo}, latest {newest}");
    let out = d.path("out.db");
    for v in first..=newest {
        ok(restore(g, &url, &out, &["--version", &v.to_string()]));
        let got = std::fs::read(&out).unwrap();
        assert_eq!(latest_of(&out), v);
        // Every page of every kept version, the cold ones read in place
        // below B among them, as the primary reads it.
        assert_eq!(
            hash(&export(&out, v, &d.path("x.plain"))),
            hash(&export(&db, v, &d.path("y.plain"))),
            "version {v}"
        );
        assert!(got[512..low as usize].iter().all(|&x| x == 0), "a hole below the lowest frame in place");
        assert!(got[b as usize..] == primary[b as usize..got.len()], "the log from B on, byte for byte");
    }
    // follow builds a replica from it, which reads (and verifies) the same.
    let replica = d.path("replica.db");
    ok(follow_once(g, &url, &replica));
    assert_eq!(latest_of(&replica), newest);
    assert_eq!(hash(&export(&replica, newest, &d.path("z.plain"))), hash(&export(&db, newest, &d.path("y.plain"))));
    ok(g.pagelog().arg("verify").arg(&replica).output().unwrap());

    // The generation goes on: cold rows are rewritten (their frames below
    // the head's start die, and the primary's steps punch them), more steps
    // move B on, and the resumed replica still restores every version the
    // primary keeps (a later state reads in place below the generation's
    // start only frames the first one did).
    {
        let c = open(&db);
        for i in 0..150 {
            c.execute("UPDATE t SET v = printf('late %d', ?1) WHERE id = ?1 * 2 + 50", [i]).unwrap();
        }
    }
    ok(replicate_once(g, &db, &url)); // shipped before the steps free it
    reclaim(&db, "40 versions", 64 << 10);
    {
        let c = open(&db);
        c.execute("UPDATE t SET v = 'after the steps' WHERE id = 3", []).unwrap();
    }
    let (b2, vo2) = kept(&db);
    assert!(b2 > b, "the steps moved B on: {b} -> {b2}");
    ok(replicate_once(g, &db, &url));
    let newest = latest_of(&db);
    for v in vo2..=newest {
        ok(restore(g, &url, &out, &["--version", &v.to_string()]));
        assert_eq!(
            hash(&export(&out, v, &d.path("x.plain"))),
            hash(&export(&db, v, &d.path("y.plain"))),
            "version {v} after the generation went on"
        );
    }
    ok(follow_once(g, &url, &replica));
    assert_eq!(latest_of(&replica), newest);
    ok(g.pagelog().arg("verify").arg(&replica).output().unwrap());
    // And a new generation started now (some frames below B died and were
    // punched, others stay) restores what it holds exactly.
    let again = g.url("f4-in-place-again");
    {
        let c = open(&db);
        c.execute("UPDATE t SET v = 'one more' WHERE id = 4", []).unwrap();
    }
    ok(replicate_once(g, &db, &again));
    let newest = latest_of(&db);
    let o = ok(g.pagelog().args(["info", &again, "--json"]).output().unwrap());
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let first = info["generations"][0]["first_version"].as_u64().unwrap();
    for v in [first, newest] {
        ok(restore(g, &again, &out, &["--version", &v.to_string()]));
        assert_eq!(
            hash(&export(&out, v, &d.path("x.plain"))),
            hash(&export(&db, v, &d.path("y.plain"))),
            "version {v}"
        );
    }
}
