//! Replication on a 3-node Garage cluster (`replication_factor = 3`, one
//! zone per node, on loopback; one cluster for this test binary) while a
//! writer commits, `replicate` ships continuously and `follow` keeps a
//! replica that reader threads check throughout (every read transaction:
//! the rows agree with the version). Faults, in turn: kill -9 of a peer
//! node, of the node the clients talk to, and of two nodes (quorum lost;
//! `replicate --once` then exits 1). After each: the replicator catches up,
//! the bucket holds one history without overlaps, the restore is byte for
//! byte the source's prefix, and `restore --version N` equals `pagelog
//! export --version N`. `PAGELOG_CHAOS_ROUNDS=N` repeats the three faults N
//! times (default 1; figures in tests/RELIABILITY.md).

#[path = "replica/check.rs"]
mod check;
mod common;
#[path = "replica/garage.rs"]
mod garage;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use check::{fails, info, local_latest, replicated_clean, restore_checks};
use common::{file_uri, make_log, open, version, TempDir};
use garage::{Cluster, Garage};
use rusqlite::{Connection, OpenFlags};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn open_ro(p: &Path) -> Connection {
    pagelog::register().unwrap();
    let uri = format!("{}?mode=ro", file_uri(p));
    Connection::open_with_flags_and_vfs(uri, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI, "pagelog")
        .unwrap()
}

/// Waits until the bucket holds the local log's latest version (the
/// writer paused); returns how long until the store first answered a
/// listing, and until the bucket held that version.
fn caught_up(cmd: &dyn Fn() -> Command, url: &str, db: &Path, replicator: &mut Killed) -> (Duration, Duration) {
    let want = local_latest(db);
    let t0 = Instant::now();
    let mut answered = None;
    loop {
        let got = info(cmd, url);
        if got.is_some() && answered.is_none() {
            answered = Some(t0.elapsed());
        }
        let v = got.map_or(0, |v| v["latest_version"].as_u64().unwrap());
        if v >= want {
            return (answered.unwrap(), t0.elapsed());
        }
        if let Some(st) = replicator.0.try_wait().unwrap() {
            let err = std::fs::read_to_string(db.with_file_name("replicate.err")).unwrap_or_default();
            panic!("the replicator exited ({st}):\n{err}");
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "not caught up to {want} (at {v})");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_9_of_a_peer_the_clients_node_and_two_nodes_leaves_a_bucket_that_restores() {
    let cl = Cluster::start("cluster", 3);
    let n0: &Garage = &cl.nodes[0];
    let cmd = || n0.pagelog();
    let d = TempDir::new("cluster");
    let db = d.path("app.db");
    let replica = d.path("replica.db");
    let url = n0.url("chaos");
    // The cluster serves requests once its nodes see each other.
    let t0 = Instant::now();
    while info(&cmd, &url).is_none() {
        assert!(t0.elapsed() < Duration::from_secs(60), "the cluster never answered");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(make_log(&db, 6));

    let stop = Arc::new(AtomicBool::new(false));
    let pause = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop, pause) = (db.clone(), stop.clone(), pause.clone());
        std::thread::spawn(move || {
            let c = open(&db);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if !pause.load(Ordering::Relaxed) {
                    c.execute("INSERT INTO t(v, b) VALUES(?1, randomblob(1500))", [format!("w{i}")]).unwrap();
                    i += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            version(&c)
        })
    };
    let spawn = |args: &[&str], err: &str| {
        let err = std::fs::File::create(d.path(err)).unwrap();
        n0.pagelog().args(args).stdout(Stdio::null()).stderr(err).spawn().unwrap()
    };
    let db_s = db.to_str().unwrap();
    let mut rep =
        Killed(spawn(&["replicate", db_s, &url, "--interval", "100ms", "--max-segment", "64k"], "replicate.err"));
    // follow needs a replica to start from.
    let t0 = Instant::now();
    while info(&cmd, &url).is_none_or(|v| v["latest_version"].as_u64() < Some(6)) {
        assert!(t0.elapsed() < Duration::from_secs(60), "nothing replicated");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut fol = Killed(spawn(&["follow", &url, replica.to_str().unwrap(), "--interval", "100ms"], "follow.err"));
    // Readers of the replica: in every read transaction the rows agree
    // with the version.
    let (checks, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (replica, stop, checks, failures) = (replica.clone(), stop.clone(), checks.clone(), failures.clone());
            std::thread::spawn(move || {
                while !replica.exists() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                std::thread::sleep(Duration::from_millis(200));
                let r = open_ro(&replica);
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    let got = r.query_row("SELECT count(*), pagelog_version() FROM t", [], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                    });
                    match got {
                        Ok((n, v)) if n as u64 + 1 == v as u64 && v >= last => last = v,
                        other => {
                            eprintln!("reader: {other:?} (last version seen {last})");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    checks.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();

    let rounds: u32 = std::env::var("PAGELOG_CHAOS_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let mut figures = Vec::new();
    let check_all = |label: &str, rep: &mut Killed, figures: &mut Vec<String>| {
        pause.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        let (answered, caught) = caught_up(&cmd, &url, &db, rep);
        let latest = replicated_clean(&cmd, &url);
        assert_eq!(latest, local_latest(&db));
        restore_checks(&cmd, &url, &db, &d.path(""), latest, &[6, latest / 3, latest - 1]);
        figures.push(format!(
            "{label}: the cluster answered a listing {:.2} s after its nodes were up again, the replicator was \
             caught up {:.2} s after that",
            answered.as_secs_f64(),
            (caught - answered).as_secs_f64()
        ));
        pause.store(false, Ordering::Relaxed);
    };
    for round in 0..rounds {
        // 1. A peer node (not the one the clients talk to).
        std::thread::sleep(Duration::from_secs(2));
        cl.nodes[2].kill();
        std::thread::sleep(Duration::from_secs(5));
        cl.nodes[2].restart();
        check_all(&format!("round {round}, peer killed 5 s"), &mut rep, &mut figures);

        // 2. The node the clients talk to.
        std::thread::sleep(Duration::from_secs(2));
        n0.kill();
        std::thread::sleep(Duration::from_secs(6));
        n0.restart();
        check_all(&format!("round {round}, client's node killed 6 s"), &mut rep, &mut figures);

        // 3. Two nodes: quorum lost; --once fails, the continuous
        //    replicator waits.
        std::thread::sleep(Duration::from_secs(2));
        cl.nodes[1].kill();
        cl.nodes[2].kill();
        let e =
            fails(n0.pagelog().arg("replicate").arg(&db).arg(n0.url("quorum-lost")).arg("--once").output().unwrap());
        assert!(e.contains("gave up") || e.contains("HTTP 5"), "{e}");
        std::thread::sleep(Duration::from_secs(4));
        cl.nodes[1].restart();
        cl.nodes[2].restart();
        check_all(&format!("round {round}, two nodes killed (quorum lost)"), &mut rep, &mut figures);
    }
    stop.store(true, Ordering::Relaxed);
    let latest = writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    caught_up(&cmd, &url, &db, &mut rep);
    // The followed replica reaches the latest version, byte for byte.
    let t0 = Instant::now();
    while !replica.exists() || local_latest(&replica) < latest {
        if t0.elapsed() > Duration::from_secs(60) {
            let err = std::fs::read_to_string(d.path("follow.err")).unwrap_or_default();
            panic!("the replica never reached {latest}:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(st) = fol.0.try_wait().unwrap() {
        panic!("follow exited ({st}): {}", std::fs::read_to_string(d.path("follow.err")).unwrap_or_default());
    }
    let got = std::fs::read(&replica).unwrap();
    let src = std::fs::read(&db).unwrap();
    assert!(got == src[..got.len()], "the replica is not the primary's prefix");
    let (checks, failures) = (checks.load(Ordering::Relaxed), failures.load(Ordering::Relaxed));
    for f in &figures {
        eprintln!("{f}");
    }
    eprintln!("{latest} versions; {checks} reader checks of the followed replica, {failures} failures");
    assert!(checks > 0);
    assert_eq!(failures, 0);
}
