//! Nothing lost under kill -9 while retention runs (format 4, in
//! development; issue 20 item 6), with reader processes beside the writer.
//!
//! A format-4 log with `PRAGMA pagelog_retain = '6 versions'`. One
//! `plworker retain-writer` commits transfers between the rows of `t` (the
//! sum of `v` is constant), rewrites pads (some transactions spill), runs a
//! VACUUM that changes the page size or a revert now and then, and an
//! explicit reclamation step (`Log::reclaim`, 16–128 KiB) every 4th round,
//! besides the automatic steps its commits take. After each commit returns
//! it appends the version's hash (`rows_hash`) to a side file. It is killed
//! with SIGKILL at a random moment, or a few microseconds after it printed
//! that a step begins (the kill then lands inside the step when the writer
//! never printed its end), and started again, alternating FULL and NORMAL.
//!
//! Three `plworker retain-reader`s (in the second test one of them reads
//! through SQLite's memory map, xFetch) run all along: long read transactions on
//! the latest version that hash the rows twice (the snapshot must not
//! change, whatever steps run meanwhile: the epoch locks), and `?version=N`
//! connections to recent versions, which either read N or are refused with
//! the error naming an oldest kept version above N. Any other error fails.
//!
//! After every kill: recovery opens a version at least the latest whose
//! commit returned (and at most one more); every recorded version from the
//! oldest kept on reads back through `?version=N` with its recorded hash,
//! and every page of every kept version reads through the library
//! (`Version::read`, crc-checked); versions below are refused as reclaimed,
//! naming the oldest kept, through the library and through SQLite; the
//! latest passes `integrity_check` with the constant sum; the library's
//! `verify` reports no damage (a build whose verify does not check a log
//! with a boundary says so: that answer is accepted and counted). At
//! the end every hash a reader saw equals the writer's for that version.
//!
//! Runs 20 s by default; `PAGELOG_STRESS_SECS=N` or `PAGELOG_LONG=1` (60 s)
//! for longer. Prints kills, commits, steps, reader transactions.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pagelog::retention::Policy;
use pagelog::{Error, Log, OpenOptions};
use pagelog_e2e::{
    field, file_uri, format4_from_sqlite, integrity, open, read_pairs, rows_hash, stress_seconds, TempDir,
};
use rusqlite::{Connection, OpenFlags};

const KEEP: u64 = 6;
const ROWS: i64 = 150;
const TOTAL: i64 = ROWS * 1000;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// A format-4 log holding `t` and `meta`, with the policy set through
/// SQLite. Only the library creates format 4 while it is in development,
/// and a log takes its format from the writer of its first commit (an
/// empty file created by `Log::open` has no header yet): the first version
/// is a database made by stock SQLite, committed through the library.
fn setup(p: &Path, keep: u64) {
    format4_from_sqlite(
        p,
        &format!(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL, pad BLOB NOT NULL);
             CREATE TABLE meta(n INTEGER NOT NULL); INSERT INTO meta VALUES (0);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
             INSERT INTO t SELECT i, 1000, randomblob(500) FROM n;"
        ),
    );
    let c = open(p);
    assert_eq!(rows_hash(&c).unwrap().1, TOTAL);
    if std::env::var("PLWORKER_NO").is_ok_and(|v| v.contains("policy")) {
        return; // narrowing a failure down: format 4 without a policy
    }
    let set: String = c.query_row(&format!("PRAGMA pagelog_retain = '{keep} versions'"), [], |r| r.get(0)).unwrap();
    assert_eq!(set, format!("{keep} versions"));
    let log = Log::open(p, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    assert_eq!(log.retention(), Policy::parse(&format!("{keep} versions")).unwrap());
}

fn open_version_uri(p: &Path, n: u64) -> rusqlite::Result<Connection> {
    pagelog::register().unwrap();
    let uri = format!("{}?version={n}", file_uri(p));
    Connection::open_with_flags_and_vfs(uri, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI, "pagelog")
}

/// The writer's recorded hashes as a map; a version recorded twice must
/// have one hash (a killed writer's version is never made again).
fn recorded(hashes: &Path) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    for (v, h) in read_pairs(hashes) {
        if let Some(old) = m.insert(v, h) {
            assert_eq!(old, h, "version {v} recorded with two hashes");
        }
    }
    m
}

/// On a failure (a panic while it lives), keeps the test's files and the
/// writers' output under /tmp/pagelog-retention-failed-PID for a post-mortem.
struct KeepOnFailure<'a> {
    dir: &'a TempDir,
    trace: &'a str,
}

impl Drop for KeepOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let to = std::env::temp_dir().join(format!("pagelog-retention-failed-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&to);
            for f in self.dir.files() {
                let _ = std::fs::copy(self.dir.path(&f), to.join(&f));
            }
            let _ = std::fs::write(to.join("trace"), self.trace);
            eprintln!("files kept in {}", to.display());
        }
    }
}

#[derive(Default)]
struct Checked {
    versions: u64,
    refused: u64,
    verify_unsupported: u64,
}

/// What must hold after every kill (see the module documentation).
/// `before`: the latest version when the killed writer started (it may
/// have made one more version than it recorded: killed in between).
fn check_log(p: &Path, rec: &BTreeMap<u64, u64>, before: u64, rng: &mut u64, stats: &mut Checked, when: &str) -> u64 {
    let log = Log::open(p, OpenOptions { read_only: true, ..Default::default() }).unwrap_or_else(|e| {
        // To look at it: PAGELOG_KEEP_FAILED=DIR keeps a copy of the log.
        if let Some(dir) = std::env::var_os("PAGELOG_KEEP_FAILED") {
            let _ = std::fs::copy(p, Path::new(&dir).join("recovery-failed.db"));
        }
        panic!("{when}: recovery failed: {e}")
    });
    let latest = log.latest().number;
    let last = rec.keys().next_back().copied().unwrap_or(0);
    assert!(
        latest >= last && latest <= last.max(before) + 1,
        "{when}: recovery opened version {latest}; the latest returned commit is {last} (and {before} when the \
         writer started)"
    );
    let oldest = log.oldest_kept().unwrap_or(1);
    assert!(oldest <= latest + 1 - KEEP.min(latest), "{when}: the policy keeps {KEEP} versions, oldest is {oldest}");
    // Every page of every kept version, through the library.
    for n in oldest..=latest {
        let v = log.version(n).unwrap_or_else(|e| panic!("{when}: version {n} (kept from {oldest}): {e}"));
        let mut buf = vec![0u8; v.size_bytes() as usize];
        v.read(0, &mut buf).unwrap_or_else(|e| panic!("{when}: version {n} (kept from {oldest}): read: {e}"));
    }
    // The rows of every recorded kept version, through SQLite.
    for (&n, &h) in rec.range(oldest..) {
        let c = open_version_uri(p, n).unwrap_or_else(|e| panic!("{when}: open ?version={n}: {e}"));
        let (got, sum) = rows_hash(&c).unwrap_or_else(|e| {
            panic!("{when}: ?version={n} (kept from {oldest}): {e}: {:?}", pagelog::sqlite::last_error())
        });
        assert_eq!((got, sum), (h, TOTAL), "{when}: version {n} (kept from {oldest}) reads other rows");
        stats.versions += 1;
    }
    // Versions below are refused, naming the oldest kept.
    if oldest > 1 {
        let below = [oldest - 1, 1 + xorshift(rng) % (oldest - 1)];
        for n in below {
            match log.version(n) {
                Err(Error::Reclaimed { oldest: o, .. }) => assert_eq!(o, oldest, "{when}: version {n}"),
                other => panic!("{when}: version {n} below the oldest kept {oldest}: {:?}", other.map(|v| v.number)),
            }
            let e = open_version_uri(p, n)
                .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)))
                .expect_err("a reclaimed version opened");
            let msg = pagelog::sqlite::last_error().unwrap_or_default();
            assert!(
                msg.contains(&format!("version {n} is no longer kept"))
                    && msg.contains(&format!("keeps versions {oldest} to")),
                "{when}: ?version={n}: {e}: {msg}"
            );
            stats.refused += 1;
        }
    }
    let c = open(p);
    assert_eq!(integrity(&c), "ok", "{when}");
    assert_eq!(pagelog_e2e::version(&c), latest, "{when}: SQLite opens another version than recovery");
    assert_eq!(rows_hash(&c).unwrap().1, TOTAL, "{when}: the latest version's sum");
    drop(c);
    let rep = log.verify();
    assert!(rep.damage().is_none() && rep.recovery_error.is_none(), "{when}: verify calls the log damaged: {rep:?}");
    match &rep.error {
        None => {}
        Some(Error::Unsupported(m)) if m.contains("retention policy freed") => stats.verify_unsupported += 1,
        Some(e) => panic!("{when}: verify: {e}"),
    }
    latest
}

/// Without reverts (`PLWORKER_NO=revert`).
#[test]
fn kill_9_of_a_reclaiming_writer_beside_readers_loses_nothing() {
    kill_9_beside_readers(false, false);
}

/// The same with reverts among the commits (the deterministic revert tests
/// are `retention_revert.rs` and `vfs/tests/retention.rs`; R5-R9 in
/// tests/RELIABILITY.md were found with it).
#[test]
fn kill_9_with_reverts_among_the_steps_loses_nothing() {
    kill_9_beside_readers(false, true);
}

/// The same with reverts and one reader reading through SQLite's memory
/// map (xFetch). R10 (tests/RELIABILITY.md) was found with it: a reader
/// that took its epoch lock while a step punched past its view took the
/// stale view for the latest (`vfs/tests/retention_punch_race.rs`).
#[test]
fn kill_9_beside_readers_one_through_sqlites_memory_map_loses_nothing() {
    kill_9_beside_readers(true, true);
}

fn kill_9_beside_readers(mmap_reader: bool, reverts: bool) {
    let d = TempDir::new("retain-kill");
    let p = d.path("app.db");
    let hashes = d.path("hashes");
    setup(&p, KEEP);
    let secs = stress_seconds(20.0);
    let worker = env!("CARGO_BIN_EXE_plworker");
    let db = p.to_str().unwrap();
    let mut readers: Vec<_> = (0..3)
        .map(|i| {
            let obs = d.path(&format!("obs-{i}"));
            let child = Command::new(worker)
                .args([
                    "retain-reader",
                    db,
                    &(secs * 4.0 + 60.0).to_string(),
                    obs.to_str().unwrap(),
                    &TOTAL.to_string(),
                    &KEEP.to_string(),
                    if i == 2 && mmap_reader { "mmap" } else { "read" },
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, obs)
        })
        .collect();
    let mut rng = 0x853c_49e6_748f_ea9bu64 ^ std::process::id() as u64;
    let start = Instant::now();
    let (mut kills, mut mid_step, mut steps, mut freed, mut punched) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut stats = Checked::default();
    let mut trace = String::new();
    let mut before = 1;
    while start.elapsed().as_secs_f64() < secs {
        let sync = ["FULL", "NORMAL"][(kills % 2) as usize];
        let mut w = Command::new(worker);
        if !reverts && std::env::var_os("PLWORKER_NO").is_none() {
            w.env("PLWORKER_NO", "revert");
        }
        let mut w = w
            .args(["retain-writer", db, hashes.to_str().unwrap(), sync])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(w.stdout.take().unwrap()).lines();
        let mut last_line = String::new();
        // Each line of the writer: kept in the trace, steps counted.
        let mut eat = |l: String, last_line: &mut String| {
            trace.push_str(&l);
            trace.push('\n');
            if let Some(rest) = l.strip_prefix("stepped freed ") {
                steps += 1;
                let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                freed += f[0];
                punched = punched.max(f[1]);
            }
            *last_line = l;
        };
        if xorshift(&mut rng) % 2 == 0 {
            std::thread::sleep(Duration::from_millis(50 + xorshift(&mut rng) % 1200));
        } else {
            // Into a step: after the n-th "step", a few microseconds late.
            let mut n = 1 + xorshift(&mut rng) % 3;
            for l in lines.by_ref() {
                eat(l.unwrap(), &mut last_line);
                if last_line == "step" {
                    n -= 1;
                    if n == 0 {
                        break;
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(xorshift(&mut rng) % 3000));
        }
        let _ = w.kill();
        let status = w.wait().unwrap();
        for l in lines {
            eat(l.unwrap(), &mut last_line);
        }
        let mut err = String::new();
        w.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        if status.signal() != Some(9) {
            let _keep = KeepOnFailure { dir: &d, trace: &trace };
            panic!("the writer failed ({status}) before it was killed: {err}");
        }
        kills += 1;
        if last_line == "step" {
            mid_step += 1;
        }
        trace.push_str(&format!("kill {kills} ({sync}); last line {last_line:?}\n"));
        let rec = recorded(&hashes);
        let keep = KeepOnFailure { dir: &d, trace: &trace };
        before = check_log(&p, &rec, before, &mut rng, &mut stats, &format!("after kill {kills}"));
        // A reader that failed says why now, not at the end.
        for (i, (r, _)) in readers.iter_mut().enumerate() {
            if let Some(st) = r.try_wait().unwrap() {
                let mut err = String::new();
                r.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                panic!("reader {i} stopped ({st}) after kill {kills}: {err}");
            }
        }
        std::mem::forget(keep);
    }
    for (_, obs) in &readers {
        std::fs::write(obs.with_extension("stop"), b"").unwrap();
    }
    let rec = recorded(&hashes);
    let _keep = KeepOnFailure { dir: &d, trace: &trace };
    let mut seen = 0u64;
    let (mut long, mut pinned, mut reclaimed, mut busy) = (0, 0, 0, 0);
    for (i, (r, obs)) in readers.into_iter().enumerate() {
        let o = r.wait_with_output().unwrap();
        let (so, se) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "reader {i} failed ({}): {se}{so}", o.status);
        long += field(&so, "long");
        pinned += field(&so, "pinned");
        reclaimed += field(&so, "reclaimed");
        busy += field(&so, "busy");
        for (v, h) in read_pairs(&obs) {
            if let Some(&want) = rec.get(&v) {
                assert_eq!(h, want, "reader {i} read version {v} as other rows than its writer committed");
                seen += 1;
            }
        }
    }
    let log = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let commits = rec.len();
    eprintln!(
        "{:.1} s: {kills} kills ({mid_step} inside an explicit step), {commits} versions recorded, {steps} \
         explicit steps finished ({freed} bytes freed, punched up to {punched}); oldest kept {:?} of {}; \
         readers: {long} long transactions, {pinned} ?version=N transactions, {reclaimed} refused as reclaimed, \
         {busy} busy, {seen} hashes compared; after kills: {} kept versions hashed, {} reclaimed refused, verify \
         unsupported {} times; 0 errors",
        start.elapsed().as_secs_f64(),
        log.oldest_kept(),
        log.latest().number,
        stats.versions,
        stats.refused,
        stats.verify_unsupported,
    );
    assert!(kills > 0 && commits > 0 && long > 0, "nothing ran");
    assert!(log.oldest_kept().is_some_and(|o| o > 1) && freed > 0, "no step freed anything: the test proves nothing");
}

/// A `?version=N` connection whose version the policy dropped: a read
/// transaction already open keeps reading N (its epoch lock), the next one
/// is refused, as is a new connection, with the error naming the oldest
/// kept version; through the library, `Error::Reclaimed` names it too.
#[test]
fn a_version_connection_to_a_reclaimed_version_gets_an_error_naming_the_oldest_kept() {
    let d = TempDir::new("retain-refused");
    let p = d.path("app.db");
    setup(&p, 3);
    let w = open(&p);
    let commit = |i: i64| {
        let (a, b) = (i % ROWS + 1, (i + 7) % ROWS + 1);
        w.execute_batch(&format!(
            "BEGIN; UPDATE t SET v = v + 1 WHERE id = {a}; UPDATE t SET v = v - 1 WHERE id = {b}; COMMIT"
        ))
        .unwrap();
    };
    for i in 0..10 {
        commit(i);
    }
    let n = pagelog_e2e::version(&w) - 5;
    let idle = open_version_uri(&p, n).unwrap();
    let (h, sum) = rows_hash(&idle).unwrap();
    assert_eq!(sum, TOTAL);
    let held = open_version_uri(&p, n).unwrap();
    held.execute_batch("PRAGMA cache_size = 10; BEGIN").unwrap();
    assert_eq!(rows_hash(&held).unwrap(), (h, sum));
    // Past two full maps (every 256 commits), then steps until nothing is left to free.
    for i in 0..600 {
        commit(i);
    }
    let log = Log::open(&p, OpenOptions::default()).unwrap();
    while log.reclaim(1 << 30, Duration::from_secs(5)).unwrap().appended > 0 {}
    let oldest = log.oldest_kept().expect("steps ran");
    assert!(oldest > n, "version {n} is still kept (oldest {oldest})");
    // The open read transaction still reads version n, exactly.
    assert_eq!(rows_hash(&held).unwrap(), (h, sum), "an open read transaction's version changed");
    held.execute_batch("COMMIT").unwrap();
    let latest = log.latest().number;
    let want = format!(
        "version {n} is no longer kept: the retention policy keeps versions {oldest} to {latest} (and version 0"
    );
    for (who, c) in
        [("the next transaction", Some(&held)), ("an idle connection", Some(&idle)), ("a new connection", None)]
    {
        let r = match c {
            Some(c) => rows_hash(c),
            None => open_version_uri(&p, n).and_then(|c| rows_hash(&c)),
        };
        let e = r.expect_err("a reclaimed version read");
        let msg = pagelog::sqlite::last_error().unwrap_or_default();
        assert!(msg.contains(&want), "{who}: {e}; pagelog: {msg}");
        eprintln!("{who} on ?version={n}: {e}; pagelog: {msg}");
    }
    match log.version(n) {
        Err(e @ Error::Reclaimed { .. }) => assert!(e.to_string().contains(&want), "{e}"),
        other => panic!("version {n}: {:?}", other.map(|v| v.number)),
    }
    // Kept versions still open.
    let c = open_version_uri(&p, oldest).unwrap();
    assert_eq!(rows_hash(&c).unwrap().1, TOTAL);
}
