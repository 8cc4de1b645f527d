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
    /// The database's pages, and how many of the first ones commits after
    /// the first write (the others stay as the first commit wrote them).
    pages: usize,
    hot: u64,
}

impl Model {
    fn commit(&mut self, log: &Log) {
        self.try_commit(log).unwrap();
    }

    /// Drops the images of versions below `v` (a test that keeps only the
    /// newest versions need not hold them all).
    fn forget_below(&mut self, v: u64) {
        for img in self.images.iter_mut().take(v as usize).skip(1) {
            *img = Vec::new();
        }
    }

    /// One commit; on an error (a full disk), nothing of it is in the
    /// model, and the log must be as it was.
    fn try_commit(&mut self, log: &Log) -> Result<(), Error> {
        self.try_commit_on(log, None)
    }

    /// One commit on `snapshot` when it is still the latest version (as
    /// SQLite's connection writes on the snapshot its read began with,
    /// which a step by another process may have given a new control state
    /// since), else on the latest.
    fn try_commit_on(&mut self, log: &Log, snapshot: Option<std::sync::Arc<Version>>) -> Result<(), Error> {
        let mut img = self.images.last().unwrap().clone();
        let _w = log.lock_writer(T).unwrap();
        let latest = log.prepare_write().unwrap();
        let base = snapshot.filter(|s| s.number == latest.number).unwrap_or(latest);
        let spill = if self.rng.chance(1, 40) { 2048 } else { 1 << 20 };
        let mut txn = log.begin(base, spill);
        if img.is_empty() {
            img = vec![0u8; self.pages * PS];
            for p in 0..self.pages {
                img[p * PS] = b'X'; // never an SQLite header
                img[p * PS + 1] = p as u8;
            }
            txn.write(log, 0, &img)?;
        } else if self.rng.chance(1, 3) {
            // A whole page.
            let p = self.rng.below(self.hot) as usize;
            let mut data = self.rng.bytes(PS);
            data[0] = b'X';
            txn.write(log, (p * PS) as u64, &data)?;
            img[p * PS..(p + 1) * PS].copy_from_slice(&data);
        } else {
            // A few bytes: stored as a patch.
            let p = self.rng.below(self.hot) as usize;
            let at = p * PS + 8 + self.rng.below(900) as usize;
            let n = 1 + self.rng.below(40) as usize;
            let mut data = self.rng.bytes(n);
            if img[at..at + n] == data[..] {
                data[0] ^= 0x55; // a write that changes nothing makes no version
            }
            txn.write(log, at as u64, &data)?;
            img[at..at + data.len()].copy_from_slice(&data);
        }
        let v = log.commit(txn, Durability::Normal)?.expect("a version");
        assert_eq!(v.number as usize, self.images.len());
        self.images.push(img);
        Ok(())
    }

    fn check(&self, v: &Version, who: &str) {
        let want = &self.images[v.number as usize];
        let mut got = vec![0u8; want.len()];
        let n = v.read(0, &mut got).unwrap_or_else(|e| panic!("{who}: version {}: {e}", v.number));
        assert_eq!(n, want.len(), "{who}: version {} size", v.number);
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        assert!(
            got == *want,
            "{who}: version {} differs from what was committed, from byte {first:?} (page {:?})",
            v.number,
            first.map(|i| i / PS + 1)
        );
    }

    /// Every kept version, through `log` and a fresh open; versions below
    /// the oldest kept are refused, naming it.
    fn check_all(&self, log: &Log, path: &Path) {
        let latest = self.images.len() as u64 - 1;
        let fresh = Log::open(path, OpenOptions { read_only: true, ..Default::default() }).unwrap_or_else(|e| {
            let _ = std::fs::copy(path, "/tmp/retention-failed.db");
            panic!("a fresh open (file kept at /tmp/retention-failed.db): {e}")
        });
        if fresh.latest().number != latest {
            let _ = std::fs::copy(path, "/tmp/f4-r567/recover-failed.db");
        }
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
    let model = Model { images: vec![Vec::new()], rng: Rng::new(seed), pages: PAGES as usize, hot: PAGES as u64 };
    (log, path, model)
}

fn reclaim_all(log: &Log) -> (u64, u64) {
    let (mut freed, mut steps) = (0, 0);
    loop {
        let r = log.reclaim(64 << 10, T).unwrap();
        if std::env::var("TRACE_STEPS").is_ok() {
            eprintln!("{r:?}");
        }
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
    let live = PAGES as usize * PS;
    assert!(e.to_string().contains(&format!("below the live database, 40 KiB ({live} bytes")), "{e}");
    assert!(log.retention().is_all(), "a refused budget changed the policy");
    let p3 = dir.0.join("f3.db");
    let log3 = Log::open(&p3, OpenOptions { create: true, ..Default::default() }).unwrap();
    let mut m3 = Model { images: vec![Vec::new()], rng: Rng::new(4), pages: PAGES as usize, hot: PAGES as u64 };
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

/// A format-4 log (in development: only the log API creates one) whose
/// first version is a plain database made by stock SQLite: table t of 300
/// rows (id, v TEXT), 1 KiB pages.
fn sqlite_log(dir: &Dir) -> std::path::PathBuf {
    let path = dir.0.join("app.db");
    common::format4_from_sqlite(
        &path,
        "PRAGMA page_size=1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 300)
         INSERT INTO t SELECT i, printf('row %d', i) FROM n;",
    );
    path
}

/// `?version=N` (issue 20 item 1): a connection to a kept version reads
/// it while steps run; once the policy drops it, its next transaction is
/// refused with an error naming the oldest kept version (and a new
/// connection to it too), while the writer and kept versions go on.
#[test]
fn a_version_connection_is_refused_once_its_version_is_dropped_naming_the_oldest_kept() {
    use rusqlite::{Connection, OpenFlags};
    let dir = Dir::new("retain-version-uri");
    let path = sqlite_log(&dir);
    pagelog::register().unwrap();
    let w = Connection::open_with_flags_and_vfs(&path, OpenFlags::SQLITE_OPEN_READ_WRITE, "pagelog").unwrap();
    w.query_row("PRAGMA pagelog_retain='20 versions'", [], |r| r.get::<_, String>(0)).unwrap();
    for i in 0..50 {
        w.execute("UPDATE t SET v = printf('first %d', ?1) WHERE id = ?1 % 300 + 1", [i]).unwrap();
    }
    let pinned_at: i64 = w.query_row("SELECT pagelog_version()", [], |r| r.get(0)).unwrap();
    let ro = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    let uri = |n: i64| format!("file:{}?version={n}", path.display());
    let pinned = Connection::open_with_flags_and_vfs(uri(pinned_at), ro, "pagelog").unwrap();
    let rows = |c: &Connection| c.query_row("SELECT group_concat(v) FROM t", [], |r| r.get::<_, String>(0));
    let seen = rows(&pinned).unwrap();
    // Kept for a while: steps run, the version reads the same.
    for i in 0..15 {
        w.execute("UPDATE t SET v = printf('then %d', ?1) WHERE id = ?1 % 300 + 1", [i]).unwrap();
    }
    assert_eq!(rows(&pinned).unwrap(), seen, "a kept version read differently");
    for i in 0..3000 {
        w.execute("UPDATE t SET v = printf('later %d', ?1) WHERE id = ?1 % 300 + 1", [i]).unwrap();
    }
    let oldest =
        Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap().oldest_kept().unwrap();
    assert!(oldest as i64 > pinned_at, "version {pinned_at} was not dropped (oldest kept {oldest})");
    let e = rows(&pinned).expect_err("a dropped version was read");
    let msg = pagelog::sqlite::last_error().unwrap_or_default();
    let want = format!("version {pinned_at} is no longer kept: the retention policy keeps versions {oldest} to");
    assert!(msg.contains(&want), "{e}: {msg}");
    let e = Connection::open_with_flags_and_vfs(uri(pinned_at), ro, "pagelog")
        .and_then(|c| rows(&c))
        .expect_err("a dropped version opened");
    let msg = pagelog::sqlite::last_error().unwrap_or_default();
    assert!(msg.contains(&want), "{e}: {msg}");
    // The oldest kept one reads, and the writer goes on.
    let kept = Connection::open_with_flags_and_vfs(uri(oldest as i64), ro, "pagelog").unwrap();
    assert!(rows(&kept).unwrap().contains("later"));
    w.execute("UPDATE t SET v = 'last' WHERE id = 1", []).unwrap();
}

/// Through SQLite: the policy set with `PRAGMA pagelog_retain`, enforced by
/// the writer's own commits, while another connection holds a read
/// transaction whose snapshot must keep reading the same rows.
#[test]
fn through_sqlite_commits_enforce_the_policy_and_an_open_read_transaction_keeps_its_snapshot() {
    use rusqlite::{Connection, OpenFlags};
    let dir = Dir::new("retain-sqlite");
    let path = sqlite_log(&dir);
    pagelog::register().unwrap();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI;
    let open = || Connection::open_with_flags_and_vfs(&path, flags, "pagelog").unwrap();
    let w = open();
    w.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
    // A size budget below the live database is refused, naming its size.
    let live: i64 = w
        .query_row("SELECT page_count * page_size FROM pragma_page_count, pragma_page_size", [], |r| r.get(0))
        .unwrap();
    let e = w.query_row("PRAGMA pagelog_retain='1 KiB'", [], |r| r.get::<_, String>(0)).unwrap_err();
    assert!(
        e.to_string().contains("below the live database") && e.to_string().contains(&format!("({live} bytes")),
        "{e}"
    );
    let policy: String = w.query_row("PRAGMA pagelog_retain", [], |r| r.get(0)).unwrap();
    assert_eq!(policy, "all", "a refused budget changed the policy");
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

/// The size form: as many of the newest versions as fit in the budget.
/// Steps drop the oldest versions until the log's bytes (from its boundary
/// on) fit; every kept version reads back; a larger budget keeps more.
#[test]
fn a_size_budget_keeps_the_newest_versions_that_fit() {
    let dir = Dir::new("retain-size");
    let (log, path, mut m) = new_log(&dir, 11);
    for _ in 0..1500 {
        m.commit(&log);
    }
    log.sync_pending().unwrap();
    let total = log.bytes_in_use();
    let mut kept = Vec::new();
    for budget_kib in [640u64, 384] {
        let budget = budget_kib << 10;
        assert!(total > budget, "the log ({total} bytes) already fits in {budget_kib} KiB: no test");
        log.set_retention(Policy::parse(&format!("{budget_kib} KiB")).unwrap(), T).unwrap();
        reclaim_all(&log);
        let in_use = log.bytes_in_use();
        let latest = m.images.len() as u64 - 1;
        let oldest = log.oldest_kept().expect("reclaimed");
        assert!(in_use <= budget, "{budget_kib} KiB: the log holds {in_use} bytes after reclaiming");
        assert!(oldest < latest - 100, "{budget_kib} KiB: only versions {oldest}..={latest} kept in {in_use} bytes");
        // Blocks on disk: the bytes in use, plus the last step's region (the
        // reserve for a full disk, 64 KiB here) and the pre-allocated tail.
        let tail = (path.metadata().unwrap().len() / 8).clamp(64 << 10, 4 << 20);
        assert!(blocks(&path) <= in_use + tail + (128 << 10), "blocks {} for {in_use} in use", blocks(&path));
        m.check_all(&log, &path);
        kept.push(latest - oldest + 1);
    }
    assert!(kept[0] > kept[1], "640 KiB keeps {} versions, 384 KiB {}", kept[0], kept[1]);
    // Committing goes on, and steps keep the log within the budget (plus
    // what commits add between two looks).
    for i in 0..400 {
        m.commit(&log);
        if i % 50 == 0 {
            reclaim_all(&log);
            assert!(log.bytes_in_use() <= (384 << 10) + (64 << 10), "the log outgrew its budget");
        }
    }
    m.check_all(&log, &path);
}

impl Model {
    /// Reverts to version `to`; the model's new image is the target's with
    /// page 1's counters as the revert sets them (bytes 24, 40 and 92),
    /// which the check compares against what the log reads.
    fn revert(&mut self, log: &Log, to: u64) {
        let v = log.revert(to, T).unwrap().expect("a version");
        assert_eq!(v.number as usize, self.images.len());
        let want = &self.images[to as usize];
        let mut got = vec![0u8; want.len()];
        v.read(0, &mut got).unwrap();
        let counters = |i: usize| (24..28).contains(&i) || (40..44).contains(&i) || (92..96).contains(&i);
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(a == b || counters(i), "revert to {to}: byte {i} differs");
        }
        self.images.push(got);
    }
}

/// Reverts no longer pin the boundary: a kept revert's entries that the
/// oldest kept version does not share (its target's items, long before it)
/// are relocated into the straggler table, so the log is freed past them
/// and reaches its budget while the revert, and the patches written on top
/// of the reverted pages, read back exactly.
#[test]
fn a_kept_revert_whose_target_is_dropped_does_not_hold_the_boundary() {
    let dir = Dir::new("retain-revert");
    let (log, path, mut m) = new_log(&dir, 13);
    // Full maps every 256 commits here: the reverts come after the one at
    // 769, so that the boundary the policy allows (its transaction's start)
    // lies past everything they name.
    for _ in 0..780 {
        m.commit(&log);
    }
    m.revert(&log, 40); // entries naming items from near the log's start
    for _ in 0..15 {
        m.commit(&log); // patches whose bases are the reverted pages
    }
    m.revert(&log, 770);
    m.commit(&log);
    m.revert(&log, 300);
    for _ in 0..5 {
        m.commit(&log);
    }
    log.sync_pending().unwrap();
    let total = log.bytes_in_use();
    let latest = m.images.len() as u64 - 1;
    log.set_retention(Policy::parse("30 versions, 160 KiB").unwrap(), T).unwrap();
    reclaim_all(&log);
    let oldest = log.oldest_kept().expect("reclaimed");
    assert!(oldest <= latest - 29 && oldest < 781, "oldest kept {oldest} of {latest}: the reverts are kept");
    let in_use = log.bytes_in_use();
    // Pinned, the boundary would stay below version 40's items, near the
    // log's start. Freed, what stays is the log since the full map at 769
    // and the copies of three databases' worth of pages the kept versions
    // read (Vo's, version 40's and version 300's, 40 KiB each).
    assert!(in_use <= total / 2, "a kept revert held the boundary: {in_use} of {total} bytes still in use");
    m.check_all(&log, &path);
    // Once every revert falls out of the policy, their entries leave the
    // table, and the log goes on within its budget.
    for i in 0..300 {
        m.commit(&log);
        if i % 40 == 0 {
            reclaim_all(&log);
            m.check_all(&log, &path);
        }
    }
    reclaim_all(&log);
    assert!(log.bytes_in_use() <= 160 << 10, "{} bytes in use for a 160 KiB budget", log.bytes_in_use());
    m.check_all(&log, &path);
}

/// A kept revert to a version of another page size than the oldest kept
/// one (a VACUUM changed it in between): its entries are stragglers of
/// that other size, copied and checked as such (R7: the step read them
/// with the oldest kept version's page size and failed "expected frame
/// crc … (page p), found another").
#[test]
fn a_kept_revert_across_a_page_size_change_is_relocated_at_its_own_page_size() {
    let dir = Dir::new("retain-revert-ps");
    let path = dir.0.join("r.db");
    let log = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let mut rng = Rng::new(7);
    let mut images: Vec<Vec<u8>> = vec![Vec::new()];
    let size = 32 * 1024;
    let commit = |img: &[u8], chunk: usize| {
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        for at in (0..img.len()).step_by(chunk) {
            txn.write(&log, at as u64, &img[at..at + chunk]).unwrap();
        }
        log.commit(txn, Durability::Normal).unwrap().expect("a version").number
    };
    let mut img = rng.bytes(size);
    for p in 0..size / 1024 {
        img[p * 1024] = b'X'; // never an SQLite header
    }
    // Versions 1-10 in pages of 1 KiB (a few pages changed each).
    for v in 1..=10u64 {
        if v > 1 {
            let p = rng.below(32) as usize;
            img[p * 1024 + 8..p * 1024 + 500].copy_from_slice(&rng.bytes(492));
        }
        assert_eq!(commit(&img, 1024), v);
        images.push(img.clone());
    }
    // Version 11 in pages of 2 KiB (the same bytes, a VACUUM's), then more.
    for v in 11..=20u64 {
        let p = rng.below(16) as usize;
        img[p * 2048 + 8..p * 2048 + 1000].copy_from_slice(&rng.bytes(992));
        assert_eq!(commit(&img, 2048), v);
        images.push(img.clone());
    }
    // Version 21: a revert to version 5 (1 KiB pages, its items older than
    // everything version 11 on reads), then commits on top of it.
    let v = log.revert(5, T).unwrap().expect("a version");
    let mut got = vec![0u8; size];
    v.read(0, &mut got).unwrap();
    images.push(got.clone());
    img = got;
    for v in 22..=24u64 {
        let p = rng.below(32) as usize;
        img[p * 1024 + 8..p * 1024 + 500].copy_from_slice(&rng.bytes(492));
        assert_eq!(commit(&img, 1024), v);
        images.push(img.clone());
    }
    // Keep the last 8: the oldest kept is version 17 (2 KiB pages), the
    // revert and its successors (1 KiB pages, version 5's items) are kept.
    log.set_retention(Policy::parse("8 versions").unwrap(), T).unwrap();
    reclaim_all(&log);
    let oldest = log.oldest_kept().expect("reclaimed");
    assert!(oldest > 11 && oldest <= 17, "oldest kept {oldest}");
    assert!(log.retention_state().boundary > 512);
    let fresh = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    for n in oldest..=24 {
        for l in [&log, &fresh] {
            let v = l.version(n).unwrap();
            let mut got = vec![0u8; size];
            v.read(0, &mut got).unwrap_or_else(|e| panic!("version {n}: {e}"));
            assert!(got == images[n as usize], "version {n} differs from what was committed");
        }
    }
    assert!(!fresh.verify().damaged(), "verify: {:?}", fresh.verify());
}

/// Recovery checks the frames of the commits no claim covers; for a
/// checkpoint, those its own nodes name. A checkpoint shares the nodes of
/// the pages nobody wrote since older trees, which steps free and punch
/// (readers find them at their copies): recovery read them where they lay,
/// found zeros, and dropped the checkpoint and every commit after it, all
/// of which had returned (seen as "verify: recovery stops at version N − 1"
/// in the kill test with reverts, whose checkpoints share old nodes).
#[test]
fn recovery_keeps_an_unclaimed_checkpoint_that_shares_freed_nodes() {
    let dir = Dir::new("retain-ckpt-recovery");
    let path = dir.0.join("r.db");
    let log = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    // 200 pages, commits on the first 8 only: the nodes of the others stay
    // those of the first checkpoint, shared by every later one.
    let mut m = Model { images: vec![Vec::new()], rng: Rng::new(5), pages: 200, hot: 8 };
    for _ in 0..300 {
        m.commit(&log);
    }
    log.set_retention(Policy::parse("10 versions").unwrap(), T).unwrap();
    reclaim_all(&log);
    for i in 0..600 {
        m.commit(&log);
        // A process that opens the log now (a kill -9 of the writer leaves
        // it so) recovers every commit that returned.
        let fresh = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
        assert_eq!(
            fresh.latest().number,
            m.images.len() as u64 - 1,
            "commit {i} after the policy: recovery dropped it"
        );
        if i % 20 == 19 {
            reclaim_all(&log);
        }
    }
    m.check_all(&log, &path);
}

/// A rolled-back transaction's SPILL records past the log's end, partly
/// overwritten by the commits after it, stay in the file: the last record
/// there names the commit the transaction began on, whose horizon (a
/// NORMAL commit's) may name a commit a step has freed since. Recovery took
/// that claim as the log's and refused it, "which the record at … says was
/// made durable, found no such commit" (R9, the kill test with reverts).
#[test]
fn recovery_after_spill_debris_naming_a_commit_whose_horizon_was_freed() {
    let dir = Dir::new("retain-debris");
    let (log, path, mut m) = new_log(&dir, 9);
    for _ in 0..300 {
        m.commit(&log);
    }
    log.set_retention(Policy::parse("10 versions").unwrap(), T).unwrap();
    reclaim_all(&log);
    // A step claims the latest durable; the two NORMAL commits after it
    // name that one as their horizon.
    m.commit(&log);
    m.commit(&log);
    {
        // A transaction on the latest that spills, then is dropped.
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 2048);
        for round in 0..4u8 {
            for p in 0..PAGES as usize {
                let mut page = vec![b'X'; PS];
                page[1] = round;
                txn.write(&log, (p * PS) as u64, &page).unwrap();
            }
        }
    }
    // A revert right after it: a checkpoint, so the boundary can move up
    // to the commit before it, past that horizon.
    let latest = m.images.len() as u64 - 1;
    m.revert(&log, latest - 1);
    for _ in 0..12 {
        m.commit(&log);
    }
    for _ in 0..3 {
        reclaim_all(&log);
        m.commit(&log);
    }
    let fresh = Log::open(&path, OpenOptions { read_only: true, ..Default::default() })
        .unwrap_or_else(|e| panic!("recovery: {e}"));
    assert_eq!(fresh.latest().number, m.images.len() as u64 - 1);
    m.check_all(&log, &path);
}
/// Reverts to random kept versions among commits and small steps, on three
/// seeds: after every few steps every kept version reads back exactly,
/// through the writer and a fresh open (the straggler table chained over
/// many steps, its entries re-copied as the boundary passes their copies,
/// dropped as their reverts fall out of the policy).
#[test]
fn reverts_among_commits_and_steps_keep_every_kept_version_exact() {
    let seeds: Vec<u64> = match std::env::var("SEEDS") {
        Ok(n) => (100..100 + n.parse::<u64>().unwrap()).collect(),
        Err(_) => vec![21, 22, 23],
    };
    for seed in seeds {
        let dir = Dir::new("retain-revert-random");
        let (log, path, mut m) = new_log(&dir, seed);
        for _ in 0..300 {
            m.commit(&log);
        }
        let policy = if seed % 2 == 0 { "60 versions" } else { "30 versions, 200 KiB" };
        log.set_retention(Policy::parse(policy).unwrap(), T).unwrap();
        for i in 0..900 {
            let latest = m.images.len() as u64 - 1;
            let oldest = log.oldest_kept().unwrap_or(1);
            if m.rng.chance(1, 25) && latest > oldest {
                let to = oldest + m.rng.below(latest - oldest);
                m.revert(&log, to);
            } else {
                m.commit(&log);
            }
            if i % 7 == 0 {
                let r = log.reclaim([4 << 10, 16 << 10, 64 << 10][m.rng.below(3) as usize], T).unwrap();
                if std::env::var("TRACE_STEPS").is_ok() {
                    eprintln!("step after {i}: {r:?}");
                    m.check_all(&log, &path);
                }
            }
            if i % 150 == 0 {
                m.check_all(&log, &path);
            }
        }
        reclaim_all(&log);
        m.check_all(&log, &path);
        assert!(log.oldest_kept().is_some(), "seed {seed}: nothing was reclaimed");
    }
}

/// The end of `log`'s view (the end of its last record).
fn log_end(log: &Log) -> u64 {
    let b = log.retention_state().boundary.max(512);
    log.bytes_in_use() - 512 + b
}

/// Reverts and steps from two `Log` handles, some of them torn as a kill
/// -9 tears them (the bytes of the operation's records from a random
/// point on never reached the file), the handle that made them then
/// reopened as a new process recovers: the kill test's writer process
/// (its SQLite connection's log and the `Log` it reverts and steps with),
/// replaced after each kill, without SQLite. `verify` must find the log
/// clean after any of them (R5: it called a reclaimed revert's checkpoint
/// between `B` and the oldest kept version's checkpoint damage, and a step
/// put `B` inside a checkpoint's transaction, after its INDEX record; R6: a
/// commit on a snapshot taken before another handle's step named a patch
/// base the step had freed, and recovery then dropped it and every commit
/// after it).
/// `SEEDS=n` runs n seeds, `ROUNDS=n` that many operations each.
#[test]
fn torn_reverts_and_steps_from_two_handles_keep_every_kept_version_exact() {
    use std::os::unix::fs::FileExt;
    let seeds: Vec<u64> = match std::env::var("SEEDS") {
        Ok(n) => (200..200 + n.parse::<u64>().unwrap()).collect(),
        // 202: a step's record torn after its punch, which had freed a frame
        // read in place by the state the tear leaves (reclaim.rs invariant 2).
        // 204: a pooled slot that the other handle had recycled since was
        // punched as stale by a step with nothing to free (`give_back`):
        // page 32 of version 542 read as zeros (slots.rs, punch_stale_slots).
        Err(_) => vec![200, 201, 202, 204],
    };
    for seed in seeds {
        let dir = Dir::new("retain-revert-torn");
        if std::env::var("TRACE_STEPS").is_ok() {
            eprintln!("seed {seed}");
        }
        let (a, path, mut m) = new_log(&dir, seed);
        m.commit(&a); // the first commit makes the log format 4
        let mut logs = vec![a, Log::open(&path, OpenOptions::default()).unwrap()];
        for _ in 0..300 {
            let h = m.rng.below(2) as usize;
            m.commit(&logs[h]);
        }
        let policy = if seed % 2 == 0 { "60 versions" } else { "30 versions, 200 KiB" };
        logs[0].set_retention(Policy::parse(policy).unwrap(), T).unwrap();
        let trace = std::env::var("TRACE_STEPS").is_ok();
        let rounds = std::env::var("ROUNDS").map_or(600, |r| r.parse().unwrap());
        for i in 0..rounds {
            let h = m.rng.below(2) as usize;
            let log = &logs[h];
            log.refresh().unwrap();
            let mut end0 = log_end(log);
            let latest = m.images.len() as u64 - 1;
            let oldest = log.oldest_kept().unwrap_or(1);
            let made_version = if i % 5 == 0 {
                let r = log
                    .reclaim([4 << 10, 16 << 10, 64 << 10][m.rng.below(3) as usize], T)
                    .unwrap_or_else(|e| panic!("seed {seed}, round {i}: a step by handle {h}: {e}"));
                if trace {
                    eprintln!("{i}: step by {h}: {r:?}");
                }
                false
            } else if m.rng.chance(1, 8) && latest > oldest {
                let to = oldest + m.rng.below(latest - oldest);
                if trace {
                    eprintln!("{i}: revert by {h} to {to} (latest {latest}, oldest {oldest})");
                }
                m.revert(log, to);
                true
            } else if m.rng.chance(1, 4) {
                // A transaction on a snapshot taken before another handle's
                // step (SQLite's, whose read began before it).
                let snapshot = log.refresh().unwrap();
                logs[1 - h].reclaim([4 << 10, 16 << 10][m.rng.below(2) as usize], T).unwrap();
                m.try_commit_on(log, Some(snapshot)).unwrap();
                end0 = log_end(log); // (the other handle's step is not torn)
                true
            } else {
                m.commit(log);
                true
            };
            let end1 = log_end(log);
            if end1 > end0 && m.rng.chance(1, 6) {
                // Killed while appending: what it wrote from `cut` on is lost.
                let cut = end0 + m.rng.below(end1 - end0);
                if trace {
                    eprintln!("{i}: torn at {cut} in [{end0}, {end1})");
                }
                let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.write_all_at(&vec![0u8; (end1 - cut) as usize], cut).unwrap();
                drop(f);
                let new = Log::open(&path, OpenOptions::default())
                    .unwrap_or_else(|e| panic!("seed {seed}, round {i}: recovery after a tear: {e}"));
                // A killed process writes nothing more (its `Drop` would
                // sync and mark what it committed, torn or not).
                std::mem::forget(std::mem::replace(&mut logs[h], new));
                // A tear in a MARK after a commit leaves the commit.
                if made_version && logs[h].latest().number < m.images.len() as u64 - 1 {
                    m.images.pop();
                }
            } else if m.rng.chance(1, 40) {
                logs[h] = Log::open(&path, OpenOptions::default()).unwrap();
            }
            if i % 100 == 0 || made_version && i % 7 == 0 {
                for log in &logs {
                    log.refresh().unwrap();
                    m.check_all(log, &path);
                }
                let rep = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap().verify();
                if rep.damaged() {
                    let _ = std::fs::copy(&path, "/tmp/f4-r567/verify-failed.db");
                    panic!("seed {seed}, round {i}: verify: {rep:?}");
                }
            }
        }
        reclaim_all(&logs[1]);
        for log in &logs {
            log.refresh().unwrap();
            m.check_all(log, &path);
        }
        assert!(logs[0].oldest_kept().is_some(), "seed {seed}: nothing was reclaimed");
    }
}
/// A tmpfs mounted for a test (as io_errors.rs does; needs root), unmounted
/// lazily when dropped, also when the test panics.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> std::io::Result<Tmpfs> {
        use std::ffi::CString;
        std::fs::create_dir_all(dir)?;
        let target = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        let opts = CString::new(format!("size={size}")).unwrap();
        // SAFETY: plain mount(2) with valid NUL-terminated strings.
        let rc = unsafe { libc::mount(c"tmpfs".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, opts.as_ptr().cast()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: umount2(2) of the mount point we mounted.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A full disk under a policy (issue 20 item 3), through SQLite on a 4 MiB
/// tmpfs. Commits of a few bytes each (patches) go on under `3 versions`
/// until a filler file takes every free byte; from then on, whenever a
/// commit finds the disk full it fails with SQLITE_FULL leaving the
/// database as it was, the step that follows frees what the policy drops,
/// and the next commit succeeds: never two failures in a row, thousands of
/// commits on a disk nobody but pagelog frees.
#[test]
fn under_a_policy_commits_go_on_on_a_full_disk() {
    use rusqlite::{Connection, ErrorCode, OpenFlags};
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || std::env::var("PAGELOG_SKIP_MOUNT").is_ok() {
        println!("SKIPPED: mounting a small tmpfs needs root (or PAGELOG_SKIP_MOUNT is set)");
        return;
    }
    let dir = Dir::new("retain-full");
    let mnt = Tmpfs::mount(&dir.0.join("mnt"), "4m").expect("mount a tmpfs as root");
    let path = mnt.0.join("full.db");
    common::format4_from_sqlite(
        &path,
        "PRAGMA page_size=4096; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 100)
         INSERT INTO t SELECT i, zeroblob(2000) FROM n;",
    );
    pagelog::register().unwrap();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI;
    let c = Connection::open_with_flags_and_vfs(&path, flags, "pagelog").unwrap();
    c.query_row("PRAGMA pagelog_retain='3 versions'", [], |r| r.get::<_, String>(0)).unwrap();
    // Row i ends with its last update's number: the model.
    let mut model = vec![0i64; 101];
    let (mut fulls, mut in_a_row, mut after_filler) = (0, 0, 0);
    // The disk fills when the log is at its largest: just before a full map
    // (every 256 commits here; version n + 1 is the 760th commit's), when
    // it holds the commits since the one before (the policy's versions
    // depend on it) and the next full map frees them.
    const FILL_AT: i64 = 760;
    for n in 1..=5000i64 {
        if n == FILL_AT {
            // The application has run under its policy for a while: its
            // automatic steps freed what the policy drops, the last one's
            // region held as the reserve.
            assert!(Log::open(&path, OpenOptions::default()).unwrap().oldest_kept().is_some(), "no step ran");
            // Another program takes every free byte.
            use std::io::Write;
            let mut f = std::fs::File::create(mnt.0.join("filler")).unwrap();
            while f.write_all(&[7u8; 4096]).is_ok() {}
            while f.write_all(&[7u8; 512]).is_ok() {}
        }
        let id = 1 + (n * 37) % 100;
        let sql = "UPDATE t SET v = randomblob(1990) || printf('%10d', ?1) WHERE id = ?2";
        match c.execute(sql, rusqlite::params![n, id]) {
            Ok(_) => {
                model[id as usize] = n;
                in_a_row = 0;
                after_filler += (n > FILL_AT) as u64;
            }
            Err(e) => {
                assert_eq!(e.sqlite_error_code(), Some(ErrorCode::DiskFull), "commit {n}: {e}");
                fulls += 1;
                in_a_row += 1;
                if std::env::var("TRACE_STEPS").is_ok() {
                    eprintln!("commit {n}: {e}: {:?}", pagelog::sqlite::last_error());
                }
                assert!(in_a_row < 2, "commit {n}: two commits in a row found the disk full: {e}");
            }
        }
    }
    let check = |c: &Connection| {
        let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok");
        for (id, &n) in model.iter().enumerate().skip(1) {
            let got: String = c
                .query_row(
                    "SELECT CAST(substr(CAST(v AS BLOB), 1991) AS TEXT) FROM t WHERE id = ?1",
                    [id as i64],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(got, format!("{n:10}"), "row {id}");
        }
    };
    check(&c);
    drop(c);
    let c = Connection::open_with_flags_and_vfs(&path, flags, "pagelog").unwrap();
    check(&c);
    let log = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let written = log.latest().end;
    println!(
        "full disk: {after_filler} commits after the filler took every free byte ({fulls} found the disk full), \
         the log's offsets reached {written} bytes on a 4 MiB file system"
    );
    assert!(after_filler > 4000, "only {after_filler} commits succeeded on the full disk");
    assert!(fulls > 0, "the disk never filled up: the failure path was not tested");
    assert!(written > 16 << 20, "the log wrote only {written} bytes");
    drop(c);
    drop(mnt);
}

/// A disk of a given capacity: the real file (on the test's tmpfs, whose
/// blocks follow writes and punches exactly), refusing with ENOSPC any
/// write that would take its allocated bytes past `cap`, or any write
/// longer than `max_write` (a disk with that much room left).
struct CapFile {
    file: std::fs::File,
    cap: std::sync::atomic::AtomicU64,
    max_write: std::sync::atomic::AtomicU64,
}

impl CapFile {
    fn allocated_after(&self, offset: u64, len: u64) -> std::io::Result<u64> {
        let m = self.file.metadata()?;
        let past_end = (offset + len).saturating_sub(offset.max(m.len()));
        Ok(m.blocks() * 512 + past_end.next_multiple_of(4096))
    }
}

impl pagelog::storage::LogFile for CapFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        pagelog::storage::LogFile::read_at(&self.file, buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.allocated_after(offset, buf.len() as u64)? > self.cap.load(Relaxed)
            || buf.len() as u64 > self.max_write.load(Relaxed)
        {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        pagelog::storage::LogFile::write_at(&self.file, buf, offset)
    }
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
    fn punch_hole(&self, offset: u64, len: u64) -> std::io::Result<()> {
        pagelog::storage::LogFile::punch_hole(&self.file, offset, len)
    }
}

/// The reclaimer on a full disk (issue 20 item 3), through the log API and
/// a disk of fixed capacity. A step whose CONTROL record does not fit
/// retries smaller until one does; then a commit that finds the disk full
/// fails leaving the log as it was, and after the step a writer takes on
/// such a failure (`reclaim_after_disk_full`, what the SQLite glue calls),
/// the next commit succeeds.
#[test]
fn on_a_full_disk_a_step_retries_smaller_and_the_commit_after_a_failed_one_succeeds() {
    let dir = Dir::new("retain-cap");
    let path = dir.0.join("r.db");
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).unwrap();
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let disk =
        std::sync::Arc::new(CapFile { file, cap: AtomicU64::new(u64::MAX), max_write: AtomicU64::new(u64::MAX) });
    let log = Log::open_with_io(&path, OpenOptions { create: true, format4: true, ..Default::default() }, disk.clone())
        .unwrap();
    // 120 pages, all written in the first 120 commits, then only 20 of
    // them: the last images of the other 100 lie spread over the log's
    // first records, and stay live.
    let mut m = Model { images: vec![Vec::new()], rng: Rng::new(17), pages: 120, hot: 120 };
    for i in 0..760 {
        if i == 120 {
            m.hot = 20;
        }
        m.commit(&log);
        m.forget_below(i.max(50) - 50);
    }
    log.set_retention(Policy::parse("5 versions").unwrap(), T).unwrap();
    // Room for 16 KiB at a time: the first step (everything up to the
    // full map before the oldest kept version, ~100 live pages copied)
    // does not fit; it retries smaller until one does.
    disk.max_write.store(16 << 10, Relaxed);
    let r = log.reclaim(4 << 20, T).unwrap_or_else(|e| panic!("a step on a full disk: {e}"));
    assert!(r.freed > 0 && r.shrunk > 0, "the step did not retry smaller: {r:?}");
    disk.max_write.store(u64::MAX, Relaxed);
    m.check_all(&log, &path);
    // A step of the automatic size: its region stays allocated, the reserve
    // a step on a full disk punches first.
    assert!(log.reclaim(pagelog::reclaim::AUTO_STEP_BYTES, T).unwrap().freed > 0);
    // Now the disk is full but for 8 KiB (and the pre-allocated tail).
    let used = blocks(&path);
    disk.cap.store(used + (8 << 10), Relaxed);
    // Commits until one finds the disk full: it fails, and leaves the log
    // as it was; the step a writer then takes punches the reserve, and the
    // next commit succeeds.
    let mut ok = 0;
    let e = loop {
        let before = log.latest().number;
        match m.try_commit(&log) {
            Ok(()) => ok += 1,
            Err(e) => {
                assert_eq!(log.latest().number, before, "a failed commit changed the log");
                break e;
            }
        }
        assert!(ok < 5000, "the disk never filled up");
    };
    assert!(e.is_disk_full(), "{e}");
    m.check_all(&log, &path);
    {
        let _w = log.lock_writer(T).unwrap();
        log.prepare_write().unwrap();
        let r = log.reclaim_after_disk_full().unwrap_or_else(|e| panic!("the step after a failed commit: {e}"));
        assert!(r.is_some_and(|r| r.punched > 0), "nothing was given back: {r:?}");
    }
    m.try_commit(&log).unwrap_or_else(|e| panic!("the commit after the step: {e}"));
    m.check_all(&log, &path);
    println!("capped disk: {ok} commits, then one found the disk full, the next one after a step succeeded");
}

/// Not a test: measures the longest pause a step makes a writer wait (the
/// step runs under the WRITER lock, after the commit that made it due), at
/// the automatic step size. `cargo test --release -p pagelog --test
/// retention measure_step_pause -- --ignored --nocapture`; PAGELOG_MEASURE_MB
/// (default 256) sets the database's size, PAGELOG_MEASURE_DIR where the log
/// goes (default: the temporary directory), PAGELOG_MEASURE_COMMITS how many
/// one-page commits run under `1000 versions`.
#[test]
#[ignore]
fn measure_step_pause() {
    use std::time::Instant;
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let mb = env("PAGELOG_MEASURE_MB", 256);
    let commits = env("PAGELOG_MEASURE_COMMITS", 40_000);
    let base = std::env::var("PAGELOG_MEASURE_DIR").map(std::path::PathBuf::from).unwrap_or(std::env::temp_dir());
    let path = base.join(format!("pagelog-measure-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let log = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    const PS4: usize = 4096;
    let pages = (mb << 20) as usize / PS4;
    let mut rng = Rng::new(99);
    {
        let _w = log.lock_writer(T).unwrap();
        let b = log.prepare_write().unwrap();
        let mut txn = log.begin(b, 32 << 20);
        let mut page = vec![b'X'; PS4];
        for p in 0..pages {
            rng.fill(&mut page[8..]);
            txn.write(&log, (p * PS4) as u64, &page).unwrap();
        }
        log.commit(txn, Durability::Full).unwrap().unwrap();
    }
    log.set_retention(Policy::parse("1000 versions").unwrap(), T).unwrap();
    let (mut pauses, mut commit_times) = (Vec::new(), Vec::new());
    for _ in 0..commits {
        let _w = log.lock_writer(T).unwrap();
        let b = log.prepare_write().unwrap();
        let mut txn = log.begin(b, 32 << 20);
        let mut page = vec![b'X'; PS4];
        rng.fill(&mut page[8..]);
        txn.write(&log, rng.below(pages as u64) * PS4 as u64, &page).unwrap();
        let t = Instant::now();
        log.commit(txn, Durability::Normal).unwrap().unwrap();
        commit_times.push(t.elapsed());
        let t = Instant::now();
        if let Some(r) = log.reclaim_if_due().unwrap() {
            pauses.push((t.elapsed(), r));
        }
    }
    pauses.sort_by_key(|p| std::cmp::Reverse(p.0));
    commit_times.sort();
    let pct = |v: &[std::time::Duration], q: f64| v[((v.len() - 1) as f64 * q) as usize];
    println!(
        "{} build, {mb} MiB database ({pages} pages of 4 KiB) in {}, {commits} one-page commits under 1000 versions",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        base.display()
    );
    println!(
        "commit: median {:?}, p99 {:?}, max {:?}",
        pct(&commit_times, 0.5),
        pct(&commit_times, 0.99),
        commit_times.last().unwrap()
    );
    // Steps within the automatic size, and those whose first record was
    // larger (a bulk load's SPILL records: a step frees whole records).
    let (within, over): (Vec<_>, Vec<_>) =
        pauses.iter().partition(|(_, r)| r.freed <= 2 * pagelog::reclaim::AUTO_STEP_BYTES);
    for (what, v) in [("steps within 2 x the step size", within), ("steps over a larger record", over)] {
        if let Some((d, r)) = v.first() {
            let median = v[v.len() / 2].0;
            println!("{what}: {}, pause median {median:?}, max {d:?} ({r:?})", v.len());
        }
    }
    println!("bytes in use {} (blocks {}), log offsets {}", log.bytes_in_use(), blocks(&path), log.latest().end);
    let _ = std::fs::remove_file(&path);
}

/// Power loss with reverts among the steps (the straggler table; issue 20
/// item 6 for what this file adds): a workload of commits, reverts to kept
/// versions and small steps on a simulated disk (`common::SimDisk`, as
/// retention_power_loss.rs uses it), then, for every operation of its
/// retention phase, the disk as a power loss there may leave it: recovery
/// reaches a version between the newest synced and the newest written, and
/// the versions the policy keeps read back exactly. Two seeds (`SEEDS=N`:
/// N; 10 were run: 733 crash points, 21 steps with a straggler table).
#[test]
fn power_loss_with_reverts_among_the_steps_keeps_every_kept_version() {
    use common::{Op, SimDisk};
    let seeds: u64 = std::env::var("SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let mut points = 0;
    for seed in 0..seeds {
        let dir = Dir::new("retain-revert-crash");
        let path = dir.0.join("w.db");
        let disk = SimDisk::create(&path, &[]);
        let log = Log::open_with_io(&path, OpenOptions { format4: true, ..Default::default() }, disk.clone()).unwrap();
        let mut m = Model { images: vec![Vec::new()], rng: Rng::new(seed + 500), pages: 16, hot: 16 };
        // written[v]: the operation that wrote version v's commit record.
        let mut written = vec![0usize];
        let mut retain_from = 0;
        // Full maps every 256 commits: the steps (from 790 on, `30
        // versions`) free up to the one at 769, past items that the reverts
        // (between 765 and 790, to versions 20 to 80 back) name and the
        // oldest kept version does not share: straggler keys.
        for i in 0..830 {
            let before = disk.op_count();
            let latest = m.images.len() as u64 - 1;
            if (765..790).contains(&i) && m.rng.chance(1, 4) {
                let to = latest - 20 - m.rng.below(60);
                m.revert(&log, to);
            } else {
                m.commit(&log);
            }
            let v = log.latest();
            let at = disk.write_covering(before, v.commit_offset);
            written.push(at);
            if i == 790 {
                retain_from = disk.op_count();
                log.set_retention(Policy::parse("30 versions").unwrap(), T).unwrap();
            }
            if i > 790 && m.rng.chance(1, 2) {
                log.reclaim(4096 * (1 + m.rng.below(32)), T).unwrap();
            }
        }
        m.check_all(&log, &path);
        assert!(log.oldest_kept().is_some_and(|o| o > 769), "nothing was reclaimed: the test would prove nothing");
        m.forget_below(790 - 45);
        drop(log);
        let n = disk.op_count();
        let mut rng = Rng::new(seed ^ 0xfeed);
        for k in retain_from..=n {
            let img = disk.crash_image(&[], k, &mut rng);
            let p = dir.0.join("crash.db");
            std::fs::write(&p, &img).unwrap();
            let ops = disk.ops_since(0);
            let last_sync = ops[..k].iter().rposition(|(_, o)| matches!(o, Op::Sync));
            let floor = last_sync.map_or(0, |s| (1..m.images.len()).rev().find(|&v| written[v] < s).unwrap_or(0));
            let ceiling = (1..m.images.len()).rev().find(|&v| written[v] < k).unwrap_or(0);
            macro_rules! fail {
                ($($t:tt)*) => { panic!("seed {seed}, power lost after operation {k} of {n}: {}", format!($($t)*)) };
            }
            let log = Log::open(&p, OpenOptions { read_only: true, ..Default::default() })
                .unwrap_or_else(|e| fail!("open: {e}"));
            let latest = log.latest().number as usize;
            if latest < floor || latest > ceiling {
                fail!("recovered version {latest}, expected {floor}..={ceiling}");
            }
            // The versions the policy keeps and a few more (what a crash
            // before a step still keeps goes further back; the model holds
            // only these).
            let oldest = log.oldest_kept().unwrap_or(1).max(1) as usize;
            for v in oldest.max(latest.saturating_sub(35))..=latest {
                let want = &m.images[v];
                assert!(!want.is_empty(), "the model forgot version {v}");
                let mut got = vec![0u8; want.len()];
                log.version(v as u64)
                    .and_then(|x| x.read(0, &mut got))
                    .unwrap_or_else(|e| fail!("version {v} (kept from {oldest}): {e}"));
                if got != *want {
                    fail!("version {v} (kept from {oldest}) differs from what was committed");
                }
            }
            points += 1;
        }
    }
    eprintln!("{points} crash points");
}
