//! Replication through a fault-injecting HTTP proxy (`replica/proxy.rs`) in
//! front of a real Garage server (one per test binary): answers dropped
//! after the request landed, requests reset mid-body, answers delayed past
//! the client's timeout, 503s. Whatever happens, the bucket holds one
//! history without overlaps, it restores byte for byte, every `--version N`
//! equals `pagelog export`, and the replicator catches up once the faults
//! stop (issue 24).

#[path = "replica/check.rs"]
mod check;
mod common;
#[path = "replica/garage.rs"]
mod garage;
#[path = "replica/proxy.rs"]
mod proxy;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use check::{fails, info, ok, replicated_clean, restore_checks};
use common::{make_log, open, version, TempDir};
use garage::Garage;
use proxy::{Fault, Proxy, Rule};

fn server() -> &'static Garage {
    static G: OnceLock<Garage> = OnceLock::new();
    G.get_or_init(|| Garage::start("faults"))
}

struct Writer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

/// Commits rows of 1.5 KB every few milliseconds until stopped.
fn writer(db: &Path) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let (db, s) = (db.to_path_buf(), stop.clone());
    let thread = std::thread::spawn(move || {
        let c = open(&db);
        let mut i = 0;
        while !s.load(Ordering::Relaxed) {
            c.execute("INSERT INTO t(v, b) VALUES(?1, randomblob(1500))", [format!("w{i}")]).unwrap();
            i += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        version(&c)
    });
    Writer { stop, thread }
}

impl Writer {
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

struct Replicator(Child);

impl Replicator {
    /// `max_segment`: with the default (16M) a pass after a failed one cuts
    /// a longer segment than the failed put held, from the same start.
    fn spawn(p: &Proxy, db: &Path, url: &str, timeout: &str, max_segment: &str) -> Replicator {
        let child = server()
            .pagelog_at(&p.endpoint)
            .env("PAGELOG_S3_TIMEOUT", timeout)
            .arg("replicate")
            .arg(db)
            .arg(url)
            .args(["--interval", "50ms", "--max-segment", max_segment])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Replicator(child)
    }

    /// Stops it (it must still be running) and returns its stderr.
    fn stop(mut self) -> String {
        assert!(self.0.try_wait().unwrap().is_none(), "the replicator exited: {}", self.stderr());
        self.stderr()
    }

    fn stderr(&mut self) -> String {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let mut err = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut err).unwrap();
        }
        err
    }
}

fn direct() -> Command {
    server().pagelog()
}

/// Waits until the bucket holds version `want` (read around the proxy).
fn wait_replicated(url: &str, want: u64, r: &mut Replicator) -> Duration {
    let t0 = Instant::now();
    loop {
        let v = info(&direct, url).map_or(0, |v| v["latest_version"].as_u64().unwrap());
        if v >= want {
            return t0.elapsed();
        }
        if let Some(st) = r.0.try_wait().unwrap() {
            panic!("the replicator exited ({st}): {}", r.stderr());
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "not caught up to {want} (at {v})");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Says each thing once: no line repeats an object's name in a row of
/// contexts (`put KEY: put KEY: …`), and entities are decoded.
fn said_once(err: &str) {
    assert!(!err.contains("&quot;") && !err.contains("&amp;"), "undecoded entities:\n{err}");
    for line in err.lines() {
        for verb in ["put ", "get ", "list ", "head "] {
            for (i, _) in line.match_indices(verb) {
                let ctx: String = line[i..].chars().take_while(|&c| c != ':').collect();
                let again = format!("{ctx}: {ctx}:");
                assert!(!line.contains(&again), "context said twice: {line}");
            }
        }
    }
}

#[test]
fn a_lost_answer_is_retried_as_the_same_object_and_the_bucket_restores() {
    let g = server();
    let p = Proxy::start(&g.s3_addr());
    let d = TempDir::new("faults-lost");
    let db = d.path("app.db");
    drop(make_log(&db, 6));
    let url = g.url("lost");
    // Segment puts land, their answers are lost, more times in a row than a
    // request's attempts (6): the pass fails with the segment in the
    // bucket. Twice: the second segment, and one later on.
    p.arm(Rule::new(Some("PUT"), "/seg-", Fault::DropAnswer).skip(1).times(7));
    p.arm(Rule::new(Some("PUT"), "/seg-", Fault::DropAnswer).skip(3).times(6));
    // The first lease too, more times than a request's attempts: the first
    // pass fails, and the next finds a lease of its own.
    p.arm(Rule::new(Some("PUT"), "/lease-", Fault::DropAnswer).times(6));
    let w = writer(&db);
    let mut r = Replicator::spawn(&p, &db, &url, "60", "16M");
    std::thread::sleep(Duration::from_secs(8));
    let latest = w.stop();
    wait_replicated(&url, latest, &mut r);
    let err = r.stop();
    assert_eq!(replicated_clean(&direct, &url), latest);
    let (dropped, landed) = p.applied(Fault::DropAnswer);
    // The lease's 6 and a segment's 7 at least (the writer may stop
    // before the second segment rule applies).
    assert!(dropped >= 13, "{dropped} answers dropped");
    assert_eq!(landed, dropped, "answers dropped after the put landed");
    // The listing and restore agree with the source.
    let o = ok(direct().args(["log", &url]).output().unwrap());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("overlap"));
    restore_checks(&direct, &url, &db, &d.path(""), latest, &[1, 6, 7, latest / 2, latest]);
    said_once(&err);
    eprintln!("{dropped} answers dropped after the put landed; replicated {latest} versions, no overlap");
}

#[test]
fn resets_delays_and_503s_leave_one_history_and_messages_say_each_thing_once() {
    let g = server();
    let p = Proxy::start(&g.s3_addr());
    let d = TempDir::new("faults-mixed");
    let db = d.path("app.db");
    drop(make_log(&db, 6));
    let url = g.url("mixed");
    // Reset mid-body more times in a row than a request's attempts: the
    // pass fails with nothing in the bucket, and the next puts the same
    // object.
    p.arm(Rule::new(Some("PUT"), "/seg-", Fault::ResetMidBody).skip(1).times(7));
    // Landed, answered after the client gave up (PAGELOG_S3_TIMEOUT=1).
    p.arm(Rule::new(Some("PUT"), "/seg-", Fault::Delay(Duration::from_millis(2500))).skip(2).times(2));
    // More 503s in a row than a request's attempts: a pass fails.
    p.arm(Rule::new(Some("PUT"), "/seg-", Fault::Status503).skip(2).times(8));
    p.arm(Rule::new(Some("GET"), "list-type", Fault::Status503).skip(3).times(3));
    let w = writer(&db);
    let mut r = Replicator::spawn(&p, &db, &url, "1", "16k");
    std::thread::sleep(Duration::from_secs(5));
    let latest = w.stop();
    wait_replicated(&url, latest, &mut r);
    let err = r.stop();
    for f in [Fault::ResetMidBody, Fault::Delay(Duration::from_millis(2500)), Fault::Status503] {
        assert!(p.applied(f).0 > 0, "{f:?} never applied");
    }
    assert_eq!(replicated_clean(&direct, &url), latest);
    restore_checks(&direct, &url, &db, &d.path(""), latest, &[6, latest / 2, latest]);
    assert!(err.contains("retrying"), "{err}");
    assert!(err.contains("\"not now\""), "the 503's message, decoded: {err}");
    said_once(&err);
    // --once gives up after a request's attempts, saying it once.
    p.arm(Rule::new(None, "", Fault::Status503));
    let c = open(&db);
    c.execute("INSERT INTO t(v) VALUES('one more')", []).unwrap();
    let e = fails(g.pagelog_at(&p.endpoint).arg("replicate").arg(&db).arg(&url).arg("--once").output().unwrap());
    assert!(e.contains("HTTP 503 ServiceUnavailable: the proxy says \"not now\"") && e.contains("gave up"), "{e}");
    said_once(&e);
    eprintln!("--once against 503s: {}", e.trim());
}

#[test]
fn after_an_outage_the_replicator_catches_up_promptly() {
    let g = server();
    let p = Proxy::start(&g.s3_addr());
    let d = TempDir::new("faults-outage");
    let db = d.path("app.db");
    drop(make_log(&db, 6));
    let url = g.url("outage");
    let w = writer(&db);
    let mut r = Replicator::spawn(&p, &db, &url, "60", "16k");
    std::thread::sleep(Duration::from_secs(2));
    // The store answers nothing but 503 for 20 s: longer than a request's
    // retries, so passes fail and the replicator backs off.
    p.arm(Rule::new(None, "", Fault::Status503));
    std::thread::sleep(Duration::from_secs(20));
    let latest = w.stop();
    let before = info(&direct, &url).unwrap()["latest_version"].as_u64().unwrap();
    p.clear();
    let cleared = Instant::now();
    let took = wait_replicated(&url, latest, &mut r);
    let resumed = p
        .seen()
        .iter()
        .find(|s| s.at > cleared && s.method == "PUT" && s.path.contains("/seg-"))
        .map(|s| s.at - cleared)
        .expect("a segment put after the outage");
    let err = r.stop();
    assert!(err.contains("retrying"), "{err}");
    assert_eq!(replicated_clean(&direct, &url), latest);
    restore_checks(&direct, &url, &db, &d.path(""), latest, &[before, latest]);
    eprintln!(
        "outage of 20 s (503s): {} versions behind when it ended; the first segment put {:.2} s and caught up \
         {:.2} s after the store answered again",
        latest - before,
        resumed.as_secs_f64(),
        took.as_secs_f64()
    );
}

/// Puts bytes `[from's end, to's end)` of `db` as a segment of the
/// generation that `store` holds (the first), versions `from+1..=to`, as a
/// replicator that lost an answer used to; `flip`: one byte at that log
/// offset altered.
fn put_segment(store: &pagelog_replica::Store, db: &Path, from: u64, to: u64, flip: Option<u64>) -> String {
    let log = pagelog::Log::open(db, pagelog::OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let start = if from == 0 { 0 } else { log.version(from).unwrap().end };
    let (first, last) = (log.version(from + 1).unwrap(), log.version(to).unwrap());
    let mut bytes = vec![0u8; (last.end - start) as usize];
    std::os::unix::fs::FileExt::read_exact_at(log.file(), &mut bytes, start).unwrap();
    if let Some(at) = flip {
        bytes[(at - start) as usize] ^= 0x20;
    }
    let seg = pagelog_replica::Segment {
        start,
        end: last.end,
        first: from + 1,
        last: to,
        first_us: first.timestamp_us,
        last_us: last.timestamp_us,
        size: last.end - start,
        recycled: 0,
    };
    let cat = pagelog_replica::catalog(store).unwrap();
    let key = store.loc.key(&format!("{}/{}", cat.generations[0].dir(), seg.name()));
    store
        .put(&key, seg.size, false, &mut || Ok(Box::new(std::io::Cursor::new(bytes.clone())) as Box<dyn std::io::Read>))
        .unwrap();
    key
}

fn add_versions(db: &Path, upto: u64) {
    let c = open(db);
    while version(&c) < upto {
        c.execute("INSERT INTO t(v, b) VALUES('more', randomblob(3000))", []).unwrap();
    }
}

fn overlaps(url: &str) -> u64 {
    let v = info(&direct, url).unwrap();
    v["generations"].as_array().unwrap().iter().map(|g| g["overlapping_segments"].as_u64().unwrap()).sum()
}

#[test]
fn overlapping_segments_restore_as_one_history_and_replicate_once_repairs_them() {
    let g = server();
    let d = TempDir::new("faults-overlap");
    let db = d.path("app.db");
    drop(make_log(&db, 6));
    let url = g.url("overlap");
    let store = g.store("overlap");
    ok(direct().arg("replicate").arg(&db).arg(&url).arg("--once").output().unwrap());
    // Issue 24's bucket: 7..11 landed (answer lost), then 7..16 from the
    // same start.
    add_versions(&db, 11);
    put_segment(&store, &db, 6, 11, None);
    add_versions(&db, 16);
    put_segment(&store, &db, 6, 16, None);
    assert_eq!(overlaps(&url), 1);
    let o = ok(direct().args(["info", &url]).output().unwrap());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("overlap") && text.contains("replicate --once") && !text.contains("INCOMPLETE"), "{text}");
    let o = ok(direct().args(["log", &url]).output().unwrap());
    assert!(String::from_utf8_lossy(&o.stderr).contains("overlap"));
    restore_checks(&direct, &url, &db, &d.path(""), 16, &[6, 9, 11, 12, 16]);
    // follow reads it as one history too.
    let replica = d.path("replica.db");
    ok(direct().arg("follow").arg(&url).arg(&replica).arg("--once").output().unwrap());
    assert_eq!(check::local_latest(&replica), 16);
    // A partial overlap: 17..18, then 18..20 (cut from inside it).
    add_versions(&db, 20);
    put_segment(&store, &db, 16, 18, None);
    put_segment(&store, &db, 17, 20, None);
    assert_eq!(overlaps(&url), 2);
    restore_checks(&direct, &url, &db, &d.path(""), 20, &[17, 18, 20]);
    ok(direct().arg("follow").arg(&url).arg(&replica).arg("--once").output().unwrap());
    assert_eq!(check::local_latest(&replica), 20);
    // replicate --once repairs the bucket: compares, re-cuts, removes.
    add_versions(&db, 22);
    let o = ok(direct().arg("replicate").arg(&db).arg(&url).arg("--once").output().unwrap());
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("removed"), "{said}");
    assert_eq!(replicated_clean(&direct, &url), 22);
    restore_checks(&direct, &url, &db, &d.path(""), 22, &[6, 16, 19, 22]);
    ok(direct().arg("follow").arg(&url).arg(&replica).arg("--once").output().unwrap());
    assert_eq!(check::local_latest(&replica), 22);
}

#[test]
fn overlaps_that_differ_are_damage_named_and_earlier_versions_still_restore() {
    let g = server();
    let d = TempDir::new("faults-differ");
    let db = d.path("app.db");
    drop(make_log(&db, 6));
    add_versions(&db, 20);
    let url = g.url("differ");
    let store = g.store("differ");
    ok(direct().arg("replicate").arg(&db).arg(&url).arg("--once").output().unwrap());
    add_versions(&db, 22);
    let log = pagelog::Log::open(&db, pagelog::OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let bad = log.version(10).unwrap().end + 100;
    drop(log);
    let key = put_segment(&store, &db, 6, 22, Some(bad));
    let e = fails(direct().arg("restore").arg(&url).arg(d.path("out.db")).output().unwrap());
    assert!(e.contains(&key) && e.contains(&format!("log offset {bad}")) && e.contains("differs"), "{e}");
    assert!(!d.path("out.db").exists());
    // Every version the first object holds restores.
    for n in [6, 10, 20] {
        let out = d.path(&format!("v{n}.db"));
        ok(direct()
            .arg("restore")
            .arg(&url)
            .arg(&out)
            .args(["--plain", "--version", &n.to_string()])
            .output()
            .unwrap());
        let want = common::export(&db, n, &d.path("export.db"));
        assert!(std::fs::read(&out).unwrap() == want, "version {n} differs");
    }
    // The replicator does not build on it, and says where it differs.
    let e = fails(direct().arg("replicate").arg(&db).arg(&url).arg("--once").output().unwrap());
    assert!(e.contains(&key) && e.contains(&format!("log offset {bad}")), "{e}");
    // follow neither.
    let e = fails(direct().arg("follow").arg(&url).arg(d.path("replica.db")).arg("--once").output().unwrap());
    assert!(e.contains(&format!("log offset {bad}")), "{e}");
}
