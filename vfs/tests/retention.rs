//! Retention in place (format 4, in development; issue 20, docs/format-4.md):
//! a log with a policy frees its oldest part while every kept version keeps
//! reading exactly what was committed.
//!
//! Each test builds a format-4 log of many small commits (whole pages,
//! partial writes stored as patches, a spilling transaction now and then)
//! against a model of every version's image, sets a policy, runs
//! reclamation steps, and checks: every kept version, through the writer's
//! `Log` and through a fresh open, equals the model byte for byte; versions
//! below the oldest kept are `Error::Reclaimed`, naming it; the file's
//! allocated blocks shrink; and committing goes on.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::{Dir, Rng};
use pagelog::retention::Policy;
use pagelog::{Durability, Error, Log, OpenOptions, Version};

const PS: usize = 1024;
const PAGES: u32 = 40;
const T: Duration = Duration::from_secs(5);

struct Model {
    /// images[v]: version v's database.
    images: Vec<Vec<u8>>,
    rng: Rng,
}

impl Model {
    fn commit(&mut self, log: &Log) {
        let mut img = self.images.last().unwrap().clone();
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let spill = if self.rng.chance(1, 40) { 2048 } else { 1 << 20 };
        let mut txn = log.begin(base, spill);
        if img.is_empty() {
            img = vec![0u8; PAGES as usize * PS];
            for p in 0..PAGES as usize {
                img[p * PS] = b'X'; // never an SQLite header
                img[p * PS + 1] = p as u8;
            }
            txn.write(log, 0, &img).unwrap();
        } else if self.rng.chance(1, 3) {
            // A whole page.
            let p = self.rng.below(PAGES as u64) as usize;
            let mut data = self.rng.bytes(PS);
            data[0] = b'X';
            txn.write(log, (p * PS) as u64, &data).unwrap();
            img[p * PS..(p + 1) * PS].copy_from_slice(&data);
        } else {
            // A few bytes: stored as a patch.
            let p = self.rng.below(PAGES as u64) as usize;
            let at = p * PS + 8 + self.rng.below(900) as usize;
            let n = 1 + self.rng.below(40) as usize;
            let data = self.rng.bytes(n);
            txn.write(log, at as u64, &data).unwrap();
            img[at..at + data.len()].copy_from_slice(&data);
        }
        let v = log.commit(txn, Durability::Normal).unwrap().expect("a version");
        assert_eq!(v.number as usize, self.images.len());
        self.images.push(img);
    }

    fn check(&self, v: &Version, who: &str) {
        let want = &self.images[v.number as usize];
        let mut got = vec![0u8; want.len()];
        let n = v.read(0, &mut got).unwrap_or_else(|e| panic!("{who}: version {}: {e}", v.number));
        assert_eq!(n, want.len(), "{who}: version {} size", v.number);
        assert!(got == *want, "{who}: version {} differs from what was committed", v.number);
    }

    /// Every kept version, through `log` and a fresh open; versions below
    /// the oldest kept are refused, naming it.
    fn check_all(&self, log: &Log, path: &Path) {
        let latest = self.images.len() as u64 - 1;
        let fresh = Log::open(path, OpenOptions { read_only: true, ..Default::default() }).unwrap_or_else(|e| {
            let _ = std::fs::copy(path, "/tmp/retention-failed.db");
            panic!("a fresh open (file kept at /tmp/retention-failed.db): {e}")
        });
        assert_eq!(fresh.latest().number, latest, "a fresh open recovers the latest version");
        let oldest = log.oldest_kept().unwrap_or(1);
        assert_eq!(fresh.oldest_kept(), log.oldest_kept(), "the control state survives reopening");
        for n in oldest..=latest {
            self.check(&log.version(n).unwrap(), "the writer's log");
            self.check(&fresh.version(n).unwrap(), "a fresh open");
        }
        for n in [1, oldest.saturating_sub(1)].into_iter().filter(|&n| n >= 1 && n < oldest) {
            match fresh.version(n) {
                Err(Error::Reclaimed { oldest: o, .. }) => assert_eq!(o, oldest),
                other => panic!("version {n} below the oldest kept {oldest}: {:?}", other.map(|v| v.number)),
            }
        }
        assert_eq!(fresh.version(0).unwrap().db_pages(), 0, "version 0 is the empty database");
    }
}

fn blocks(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

fn new_log(dir: &Dir, seed: u64) -> (Log, std::path::PathBuf, Model) {
    let path = dir.0.join("r.db");
    let log = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let model = Model { images: vec![Vec::new()], rng: Rng::new(seed) };
    (log, path, model)
}

fn reclaim_all(log: &Log) -> (u64, u64) {
    let (mut freed, mut steps) = (0, 0);
    loop {
        let r = log.reclaim(64 << 10, T).unwrap();
        if r.freed == 0 {
            return (freed, steps);
        }
        freed += r.freed;
        steps += 1;
        assert!(steps < 10_000, "reclamation does not end");
    }
}

#[test]
fn a_policy_of_twenty_versions_frees_the_oldest_part_and_every_kept_version_reads_back() {
    let dir = Dir::new("retain-20");
    let (log, path, mut m) = new_log(&dir, 1);
    for _ in 0..700 {
        m.commit(&log);
    }
    log.sync_pending().unwrap();
    let before = blocks(&path);
    assert!(log.retention().is_all());
    log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
    assert_eq!(log.retention().to_string(), "20 versions");
    let (freed, steps) = reclaim_all(&log);
    assert!(freed > 0 && steps > 0, "nothing was freed");
    let latest = m.images.len() as u64 - 1;
    let oldest = log.oldest_kept().expect("reclaimed");
    assert_eq!(oldest, latest - 19, "the policy keeps the latest 20 versions");
    let after = blocks(&path);
    assert!(after < before / 2, "blocks in use {before} -> {after}: the freed region was not given back");
    m.check_all(&log, &path);
    // Committing goes on, and so does reclamation.
    for i in 0..300 {
        m.commit(&log);
        if i % 25 == 0 {
            reclaim_all(&log);
        }
    }
    reclaim_all(&log);
    m.check_all(&log, &path);
    // The log may hold more than the policy asks (the boundary waits for the
    // full map the oldest kept version depends on), never less.
    let oldest = log.oldest_kept().unwrap();
    assert!(oldest <= m.images.len() as u64 - 20, "oldest kept {oldest}: a version the policy keeps was dropped");
    assert!(blocks(&path) < before, "the log grew back past its size before any reclamation");
}

#[test]
fn a_policy_survives_reopening_and_a_log_without_one_is_never_reclaimed() {
    let dir = Dir::new("retain-reopen");
    let (log, path, mut m) = new_log(&dir, 2);
    for _ in 0..300 {
        m.commit(&log);
    }
    let r = log.reclaim(1 << 20, T).unwrap();
    assert_eq!((r.freed, r.appended), (0, 0), "the policy `all` keeps everything");
    log.set_retention(Policy::parse("5 versions, 1 day").unwrap(), T).unwrap();
    drop(log);
    let log = Log::open(&path, OpenOptions::default()).unwrap();
    assert_eq!(log.retention().to_string(), "5 versions, 1 day");
    // Everything was committed within the day: nothing may go.
    let r = log.reclaim(1 << 20, T).unwrap();
    assert_eq!(r.freed, 0, "a version within the time window was dropped");
    m.check_all(&log, &path);
}

#[test]
fn a_size_budget_below_the_database_is_refused_and_format_3_logs_have_no_policy() {
    let dir = Dir::new("retain-refuse");
    let (log, _path, mut m) = new_log(&dir, 3);
    m.commit(&log);
    let e = log.set_retention(Policy::parse("10 KiB").unwrap(), T).unwrap_err();
    assert!(e.to_string().contains("below the database's own size"), "{e}");
    let p3 = dir.0.join("f3.db");
    let log3 = Log::open(&p3, OpenOptions { create: true, ..Default::default() }).unwrap();
    let mut m3 = Model { images: vec![Vec::new()], rng: Rng::new(4) };
    m3.commit(&log3);
    let e = log3.set_retention(Policy::parse("10 versions").unwrap(), T).unwrap_err();
    assert!(e.to_string().contains("format 4"), "{e}");
}

#[test]
fn a_row_overwritten_out_of_the_policy_is_gone_from_the_files_bytes() {
    let dir = Dir::new("retain-forget");
    let (log, path, mut m) = new_log(&dir, 5);
    m.commit(&log);
    let marker = b"FORGET-ME-7f3a9c51";
    // A page holding the marker, then overwritten whole, many times over.
    {
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        let mut page = vec![b'X'; PS];
        page[100..100 + marker.len()].copy_from_slice(marker);
        txn.write(&log, 7 * PS as u64, &page).unwrap();
        log.commit(txn, Durability::Full).unwrap().unwrap();
        let mut img = m.images.last().unwrap().clone();
        img[7 * PS..8 * PS].copy_from_slice(&page);
        m.images.push(img);
    }
    let raw = |p: &Path| std::fs::read(p).unwrap().windows(marker.len()).any(|w| w == marker);
    assert!(raw(&path), "the marker is in the file once committed");
    for _ in 0..600 {
        // Whole pages only, so that no patch keeps the marker's page as its base.
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        let p = 7 + m.rng.below(3) as usize;
        let mut data = m.rng.bytes(PS);
        data[0] = b'X';
        txn.write(&log, (p * PS) as u64, &data).unwrap();
        log.commit(txn, Durability::Normal).unwrap().unwrap();
        let mut img = m.images.last().unwrap().clone();
        img[p * PS..(p + 1) * PS].copy_from_slice(&data);
        m.images.push(img);
    }
    log.set_retention(Policy::parse("5 versions").unwrap(), T).unwrap();
    reclaim_all(&log);
    // The last step's region is punched by the next one (or now, if no
    // reader holds an older epoch: none does here).
    log.reclaim(64 << 10, T).unwrap();
    assert!(!raw(&path), "the overwritten marker is still in the file's bytes");
    m.check_all(&log, &path);
}

/// The tools' reads of a log with a boundary: the history lists the kept
/// versions, and verify checks them without calling the freed region damage.
#[test]
fn history_and_verify_of_a_reclaimed_log_see_the_kept_versions_and_no_damage() {
    let dir = Dir::new("retain-tools");
    let (log, path, mut m) = new_log(&dir, 7);
    for _ in 0..600 {
        m.commit(&log);
    }
    log.set_retention(Policy::parse("30 versions").unwrap(), T).unwrap();
    reclaim_all(&log);
    log.reclaim(64 << 10, T).unwrap();
    let oldest = log.oldest_kept().unwrap();
    let fresh = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let h = fresh.history().unwrap_or_else(|e| panic!("history of a reclaimed log: {e}"));
    let listed: Vec<u64> = h.iter().map(|c| c.version).collect();
    assert_eq!(listed.iter().max(), Some(&(m.images.len() as u64 - 1)));
    assert!(listed.contains(&oldest), "the oldest kept version {oldest} is listed");
    // Verify starts at the boundary, never calls the freed region damage,
    // and checks every kept version.
    let rep = fresh.verify();
    assert!(!rep.damaged(), "verify calls a reclaimed log damaged: {rep:?}");
    assert_eq!(rep.oldest_kept, Some(oldest));
    assert!(rep.freed_bytes > 0);
    assert_eq!(rep.versions_checked() as u64, m.images.len() as u64 - oldest, "{rep:?}");
}

/// Through SQLite: the policy set with `PRAGMA pagelog_retain`, enforced by
/// the writer's own commits, while another connection holds a read
/// transaction whose snapshot must keep reading the same rows.
#[test]
fn through_sqlite_commits_enforce_the_policy_and_an_open_read_transaction_keeps_its_snapshot() {
    use rusqlite::{Connection, OpenFlags};
    let dir = Dir::new("retain-sqlite");
    let path = dir.0.join("app.db");
    {
        // A format-4 log (in development: only the log API creates one)
        // whose first version is a plain database made by stock SQLite.
        let plain = dir.0.join("plain.db");
        let c = Connection::open(&plain).unwrap();
        c.execute_batch(
            "PRAGMA page_size=1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 300)
             INSERT INTO t SELECT i, printf('row %d', i) FROM n;",
        )
        .unwrap();
        drop(c);
        let bytes = std::fs::read(&plain).unwrap();
        let log = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
        let _g = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        txn.write(&log, 0, &bytes).unwrap();
        log.commit(txn, Durability::Full).unwrap().unwrap();
    }
    pagelog::register().unwrap();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI;
    let open = || Connection::open_with_flags_and_vfs(&path, flags, "pagelog").unwrap();
    let w = open();
    w.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
    let policy: String = w.query_row("PRAGMA pagelog_retain='10 versions'", [], |r| r.get(0)).unwrap();
    assert_eq!(policy, "10 versions");
    // A reader in the middle of a transaction.
    let r = open();
    // A small cache: re-reading the table goes through the VFS.
    r.execute_batch("PRAGMA cache_size=1; BEGIN").unwrap();
    let snap = |c: &Connection| -> (i64, String) {
        c.query_row("SELECT count(*), group_concat(v, ',') FROM t", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap()
    };
    let seen = snap(&r);
    let v_snap: i64 = r.query_row("SELECT pagelog_version()", [], |r| r.get(0)).unwrap();
    let big = blocks(&path);
    for i in 0..3000 {
        w.execute("UPDATE t SET v = printf('update %d of row %d', ?1, id) WHERE id = ?1 % 300 + 1", [i]).unwrap();
    }
    let during = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap().oldest_kept();
    assert!(
        during.is_some_and(|o| o as i64 > v_snap),
        "steps ran and dropped the reader's version from the policy ({during:?}, reader at {v_snap})"
    );
    assert_eq!(snap(&r), seen, "a read transaction's snapshot changed while steps ran");
    r.execute_batch("COMMIT").unwrap();
    // One more commit lets a step punch what the reader was holding.
    for i in 0..200 {
        w.execute("UPDATE t SET v = 'last' WHERE id = ?1", [i % 300 + 1]).unwrap();
    }
    let latest: i64 = w.query_row("SELECT pagelog_version()", [], |r| r.get(0)).unwrap();
    let log = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let oldest = log.oldest_kept().expect("the commits reclaimed");
    assert!(oldest as i64 > v_snap, "nothing older than the reader's snapshot was dropped: oldest {oldest}");
    assert!(oldest as i64 <= latest - 9, "a version the policy keeps was dropped");
    assert!(blocks(&path) < big + (3 << 20), "the log kept growing: {big} -> {}", blocks(&path));
    let ok: String = w.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    // A reclaimed version is refused, naming the oldest kept.
    let uri = format!("file:{}?version={}", path.display(), oldest - 1);
    let old = Connection::open_with_flags_and_vfs(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        "pagelog",
    )
    .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)));
    let e = old.expect_err("a reclaimed version opened");
    let msg = pagelog::sqlite::last_error().unwrap_or_default();
    assert!(msg.contains(&format!("keeps versions {oldest}")), "{e}: {msg}");
    // A kept one reads.
    let uri = format!("file:{}?version={}", path.display(), latest - 5);
    let kept = Connection::open_with_flags_and_vfs(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        "pagelog",
    )
    .unwrap();
    let n: i64 = kept.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 300);
}
