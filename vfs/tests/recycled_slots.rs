//! Recycling dead slots (format 4 under a retention policy, issue 20;
//! `vfs/src/slots.rs`; FORMAT.md, "Frames in recycled slots"): a released
//! SLOT range joins the writer's pool, and a later one-row commit writes
//! its frame into it instead of appending it, so no freeing call is made
//! for it and the file stops growing.
//!
//! * recycling happens: the freeing calls per commit and the bytes
//!   appended per commit drop, against the same run without recycling, and
//!   every kept version reads back exactly;
//! * power loss at every write (each write into a recycled slot included),
//!   sync and punch: recovery opens a version between the last synced one
//!   and the last written, the kept versions read back exactly, `verify`
//!   is clean;
//! * two writers (two `Log` handles on one file: separate open file
//!   descriptions, so separate WRITER locks and separate pools, as two
//!   processes) alternating commits: no live slot is ever overwritten.

mod common;

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Dir, Rng};
use pagelog::retention::Policy;
use pagelog::storage::LogFile;
use pagelog::{Durability, Log, OpenOptions};

const PS: usize = 1024;
const T: Duration = Duration::from_secs(5);

/// The real file, its writes into the committed log (below the end it had
/// when written: a recycled slot, or a MARK/CONTROL record never is) and
/// its freeing calls counted.
struct Counting {
    f: File,
    punches: AtomicUsize,
    slot_writes: AtomicUsize,
    len: std::sync::atomic::AtomicU64,
}

impl Counting {
    fn new(f: File) -> Arc<Counting> {
        Arc::new(Counting {
            f,
            punches: AtomicUsize::new(0),
            slot_writes: AtomicUsize::new(0),
            len: Default::default(),
        })
    }
}

impl LogFile for Counting {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.f.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if buf.len() == PS && offset % PS as u64 == 0 && buf.iter().any(|&b| b != 0) {
            self.slot_writes.fetch_add(1, Ordering::Relaxed);
        }
        self.f.write_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        LogFile::len(&self.f)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.len.store(len, Ordering::Relaxed);
        LogFile::set_len(&self.f, len)
    }
    fn sync(&self) -> io::Result<()> {
        LogFile::sync(&self.f)
    }
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        self.punches.fetch_add(1, Ordering::Relaxed);
        LogFile::punch_hole(&self.f, offset, len)
    }
}

/// One commit of one whole page `p` (random bytes) on `log`, then what
/// the SQLite glue does after a commit, WRITER lock held: a step when due,
/// else a bounded release.
fn commit_page(log: &Log, images: &mut Vec<Vec<u8>>, rng: &mut Rng, pages: u64, load: bool) {
    let mut img = images.last().cloned().unwrap_or_default();
    let _w = log.lock_writer(T).unwrap();
    let base = log.prepare_write().unwrap();
    let mut txn = log.begin(base, 1 << 20);
    if load {
        img = vec![b'X'; pages as usize * PS];
        txn.write(log, 0, &img).unwrap();
    } else {
        let p = 1 + rng.below(pages - 1);
        let mut d = rng.bytes(PS);
        d[0] = b'X';
        txn.write(log, p * PS as u64, &d).unwrap();
        img[p as usize * PS..(p as usize + 1) * PS].copy_from_slice(&d);
    }
    log.commit(txn, Durability::Normal).unwrap().expect("a version");
    images.push(img);
    if !load {
        log.reclaim_if_due().unwrap();
    }
}

/// A fresh format-4 log `file` in a new directory `name`, through a
/// [`Counting`] file, loaded with `pages` pages (version 1) and given the
/// policy "20 versions"; returns the directory (kept alive), the log's
/// path, the counters, the log and the images committed so far.
fn loaded_log(
    name: &str,
    file: &str,
    pages: u64,
    rng: &mut Rng,
) -> (Dir, std::path::PathBuf, Arc<Counting>, Log, Vec<Vec<u8>>) {
    let dir = Dir::new(name);
    let path = dir.0.join(file);
    std::fs::write(&path, []).unwrap();
    let io = Counting::new(std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap());
    let log = Log::open_with_io(&path, OpenOptions { format4: true, ..Default::default() }, io.clone()).unwrap();
    let mut images: Vec<Vec<u8>> = vec![Vec::new()];
    commit_page(&log, &mut images, rng, pages, true);
    log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
    (dir, path, io, log, images)
}

/// `commits` one-page commits under "20 versions" on a fresh log; returns
/// (freeing calls, slot writes, bytes the log grew by) over the last
/// `tail` commits, after checking every kept version.
fn run(recycle: bool, commits: usize, tail: usize) -> (usize, usize, u64) {
    const PAGES: u64 = 300;
    let dir = Dir::new(if recycle { "recycle-on" } else { "recycle-off" });
    let path = dir.0.join("r.db");
    std::fs::write(&path, []).unwrap();
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let io = Counting::new(f);
    let opts = OpenOptions { format4: true, no_recycling: !recycle, ..Default::default() };
    let log = Log::open_with_io(&path, opts, io.clone()).unwrap();
    let mut rng = Rng::new(41);
    let mut images: Vec<Vec<u8>> = vec![Vec::new()];
    commit_page(&log, &mut images, &mut rng, PAGES, true);
    log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
    let (mut punches, mut slots, mut end) = (0, 0, 0);
    for i in 0..commits {
        if i == commits - tail {
            punches = io.punches.load(Ordering::Relaxed);
            slots = io.slot_writes.load(Ordering::Relaxed);
            end = log.latest().end;
        }
        commit_page(&log, &mut images, &mut rng, PAGES, false);
        let v = images.len();
        if v > 100 {
            images[v - 100] = Vec::new();
        }
        if i % 500 == 499 {
            common::check_kept(&images, &log, &path);
        }
    }
    common::check_kept(&images, &log, &path);
    {
        use std::os::unix::fs::MetadataExt;
        eprintln!(
            "recycle {recycle}: blocks {} KiB, in use {} KiB, end {} KiB",
            std::fs::metadata(&path).unwrap().blocks() / 2,
            log.bytes_in_use() >> 10,
            log.latest().end >> 10
        );
    }
    (
        io.punches.load(Ordering::Relaxed) - punches,
        io.slot_writes.load(Ordering::Relaxed) - slots,
        log.latest().end - end,
    )
}

#[test]
fn one_row_commits_under_a_policy_write_into_dead_slots_instead_of_punching_them() {
    const COMMITS: usize = 3000;
    const TAIL: usize = 1500;
    let (p_off, s_off, grew_off) = run(false, COMMITS, TAIL);
    let (p_on, s_on, grew_on) = run(true, COMMITS, TAIL);
    let per = |x: f64| x / TAIL as f64;
    eprintln!(
        "over the last {TAIL} of {COMMITS} one-page commits: without recycling {:.2} freeing calls, {:.2} slot \
         writes, {:.0} bytes appended per commit; with it {:.2}, {:.2}, {:.0}",
        per(p_off as f64),
        per(s_off as f64),
        per(grew_off as f64),
        per(p_on as f64),
        per(s_on as f64),
        per(grew_on as f64),
    );
    // Most commits' frames go into a dead slot (78% here), the frames that
    // die while their record is still above `B` included: a step lists
    // those of `[B, B')` that no kept version names as SLOT ranges (52%
    // when they went with the region's runs, punched) ...
    assert!(s_on * 10 >= TAIL * 7, "only {s_on} of {TAIL} commits wrote into a recycled slot");
    assert_eq!(s_off, 0, "no slot is written without recycling");
    // ... so the freeing calls go: the metadata runs between the region's
    // slots hold no whole block and are not listed (0.17 a commit when the
    // region was punched as runs; 0.71 without recycling) ...
    assert!(p_on * 10 < p_off, "freeing calls: {p_on} with recycling, {p_off} without");
    // ... and the log grows by each recycled commit's metadata, not by a
    // padded frame (a 1 KiB page: ~2 KiB a commit without; 617 bytes a
    // commit on average with, here).
    assert!(grew_on * 3 < grew_off * 2, "the log grew by {grew_on} bytes with recycling, {grew_off} without");
}

/// Power loss at every write (each frame written into a recycled slot
/// included), sync and punch of a long-lived writer under a policy:
/// recovery opens a version between the last synced one and the last
/// written, the oldest kept, the last synced and the latest read back
/// exactly (every kept version at every 16th crash point), `verify` is
/// clean. A torn slot write makes its commit unfinished (recovery's step 4
/// checks every image a RECYCLED commit names: FORMAT.md), never a page
/// served wrong.
#[test]
fn power_loss_at_every_write_into_a_recycled_slot_keeps_every_kept_version() {
    use common::{Op, SimDisk};
    const MANY: u64 = 300;
    const COMMITS: usize = 1200;
    let dir = Dir::new("recycle-power");
    let path = dir.0.join("p.db");
    let disk = SimDisk::create(&path, &[]);
    let log = Log::open_with_io(&path, OpenOptions { format4: true, ..Default::default() }, disk.clone()).unwrap();
    let mut rng = Rng::new(17);
    // versions[v][p]: page p of version v (pages shared between versions).
    let mut versions: Vec<Vec<Arc<Vec<u8>>>> = vec![Vec::new()];
    // written[v]: the operation that wrote version v's commit record.
    let mut written = vec![0usize];
    let mut window_from = 0;
    for i in 0..COMMITS {
        let before = disk.op_count();
        let mut pages = versions.last().cloned().unwrap_or_default();
        {
            let _w = log.lock_writer(T).unwrap();
            let base = log.prepare_write().unwrap();
            let mut txn = log.begin(base, 1 << 20);
            if pages.is_empty() {
                pages = (0..MANY).map(|_| Arc::new(vec![b'X'; PS])).collect();
                txn.write(&log, 0, &vec![b'X'; MANY as usize * PS]).unwrap();
            } else {
                // One page, or now and then two (a commit may get a slot
                // for one image and carry the other).
                for _ in 0..if rng.chance(1, 8) { 2 } else { 1 } {
                    let p = 1 + rng.below(MANY - 1);
                    let mut d = rng.bytes(PS);
                    d[0] = b'X';
                    txn.write(&log, p * PS as u64, &d).unwrap();
                    pages[p as usize] = Arc::new(d);
                }
            }
            // Now and then FULL: syncs (and MARKs) among the slot writes.
            let d = if rng.chance(1, 10) { Durability::Full } else { Durability::Normal };
            log.commit(txn, d).unwrap().expect("a version");
            if i > 0 {
                log.reclaim_if_due().unwrap();
            }
        }
        let v = log.latest();
        let at = disk.write_covering(before, v.commit_offset);
        written.push(at);
        versions.push(pages);
        if i == 0 {
            log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
        }
        if i == COMMITS - 400 {
            window_from = disk.op_count();
        }
    }
    let end = log.latest().end;
    drop(log);
    let n = disk.op_count();
    let ops = disk.ops_since(0);
    // Writes of a page image below the log end of their time: frames into
    // recycled slots (a record is never written below the end).
    let slot_writes = ops[window_from..]
        .iter()
        .filter(|(_, o)| matches!(o, Op::Write { off, data } if data.len() == PS && *off + PS as u64 <= end && *off % PS as u64 == 0))
        .count();
    eprintln!("{slot_writes} writes into recycled slots among the {} operations crashed at", n - window_from);
    assert!(slot_writes >= 50, "only {slot_writes} slot writes where power is lost: the test would prove little");
    let image = |v: usize| -> Vec<u8> { versions[v].iter().flat_map(|p| p.iter().copied()).collect() };
    let mut rng = Rng::new(37);
    for k in window_from..=n {
        let img = disk.crash_image(&[], k, &mut rng);
        let p = dir.0.join("crash.db");
        std::fs::write(&p, &img).unwrap();
        let last_sync = ops[..k].iter().rposition(|(_, o)| matches!(o, Op::Sync));
        let floor = last_sync.map_or(0, |s| (1..versions.len()).rev().find(|&v| written[v] < s).unwrap_or(0));
        let ceiling = (1..versions.len()).rev().find(|&v| written[v] < k).unwrap_or(0);
        let log = Log::open(&p, OpenOptions { read_only: true, ..Default::default() })
            .unwrap_or_else(|e| panic!("power lost after operation {k} of {n}: open: {e}"));
        let latest = log.latest().number as usize;
        assert!(floor <= latest && latest <= ceiling, "after op {k}: recovered {latest}, expected {floor}..={ceiling}");
        let oldest = log.oldest_kept().unwrap_or(1).max(1) as usize;
        let all: Vec<usize> =
            if k % 16 == 0 { (oldest..=latest).collect() } else { vec![oldest, floor.max(oldest), latest] };
        for v in all {
            let want = image(v);
            let mut got = vec![0u8; want.len()];
            log.version(v as u64)
                .and_then(|x| x.read(0, &mut got))
                .unwrap_or_else(|e| panic!("after op {k} of {n}: version {v} (kept from {oldest}): {e}"));
            assert!(got == want, "after op {k} of {n}: version {v} (kept from {oldest}) differs");
        }
        let rep = log.verify();
        assert!(!rep.damaged(), "after op {k} of {n}: verify: {rep:?}");
    }
}

/// Two writers with a pool each take turns under the WRITER lock (two
/// `Log` handles: two open file descriptions, as two processes), each
/// releasing lists and recycling slots: a slot one of them recycled is
/// never taken by the other (each drops what the other's commits name:
/// `slots.rs` invariant 3), so every kept version reads back exactly,
/// through both handles and a fresh open, and `verify` is clean.
#[test]
fn two_writers_alternating_never_overwrite_a_live_slot() {
    const PAGES: u64 = 200;
    let dir = Dir::new("recycle-two");
    let path = dir.0.join("two.db");
    std::fs::write(&path, []).unwrap();
    let ios = [0, 1].map(|_| Counting::new(std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap()));
    let logs: Vec<Log> = ios
        .iter()
        .map(|io| Log::open_with_io(&path, OpenOptions { format4: true, ..Default::default() }, io.clone()).unwrap())
        .collect();
    let mut rng = Rng::new(23);
    let mut images: Vec<Vec<u8>> = vec![Vec::new()];
    commit_page(&logs[0], &mut images, &mut rng, PAGES, true);
    logs[0].set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
    for i in 0..3000usize {
        // Turns of random length, so that each writer has slots pooled
        // while the other recycles from the same list.
        let w = if (i / 3) % 2 == 0 { 0 } else { 1 };
        let w = if rng.chance(1, 4) { 1 - w } else { w };
        commit_page(&logs[w], &mut images, &mut rng, PAGES, false);
        let v = images.len();
        if v > 100 {
            images[v - 100] = Vec::new();
        }
        if i % 250 == 249 {
            common::check_kept(&images, &logs[w], &path);
            logs[1 - w].refresh().unwrap();
            common::check_kept(&images, &logs[1 - w], &path);
        }
    }
    let s = ios.each_ref().map(|io| io.slot_writes.load(Ordering::Relaxed));
    eprintln!("slot writes by each writer: {s:?}");
    assert!(s[0] >= 300 && s[1] >= 300, "each writer must recycle for the test to prove anything: {s:?}");
    common::check_kept(&images, &logs[0], &path);
    logs[1].refresh().unwrap();
    common::check_kept(&images, &logs[1], &path);
}

/// A step right after a commit that recycled a slot (no checkpoint between
/// the list it came from and the step): the step's list leaves the slot
/// out (`slots.rs` invariant 4), so another process, whose pool and view
/// of "recycled since" start at that step's record, never pools or
/// punches it while the commit that wrote it is kept.
#[test]
fn a_step_after_a_recycling_commit_does_not_list_the_slot_again() {
    const PAGES: u64 = 200;
    let mut rng = Rng::new(29);
    let (_dir, path, io, a, mut images) = loaded_log("recycle-step", "s.db", PAGES, &mut rng);
    let mut rounds = 0;
    for _ in 0..40 {
        // Commits until one writes into a recycled slot, then a step at
        // once; then a second handle releases what that step listed.
        for _ in 0..200 {
            let before = io.slot_writes.load(Ordering::Relaxed);
            commit_page(&a, &mut images, &mut rng, PAGES, false);
            if io.slot_writes.load(Ordering::Relaxed) > before {
                break;
            }
        }
        a.reclaim(64 << 10, T).unwrap();
        let b = Log::open(&path, OpenOptions { format4: true, ..Default::default() }).unwrap();
        b.reclaim(64 << 10, T).unwrap();
        commit_page(&b, &mut images, &mut rng, PAGES, false);
        drop(b);
        rounds += 1;
        let v = images.len();
        if v > 60 {
            images[v - 60] = Vec::new();
        }
        common::check_kept(&images, &a, &path);
    }
    assert!(io.slot_writes.load(Ordering::Relaxed) >= 20, "too few recycled commits: {rounds} rounds");
}

/// R12's suspect (tests/RELIABILITY.md): a kept version whose page-1 entry
/// is an older version's *patch* (a revert names it again) while later
/// commits leave page 1 alone, so that no patch of a kept commit above the
/// boundary names page 1's base; steps and recycling commits then run on.
/// Every kept version must read back exactly: a base a kept patch names is
/// never listed as a slot and written over.
#[test]
fn a_reverted_patch_keeps_its_base_while_slots_are_recycled() {
    const PAGES: u64 = 100;
    let mut rng = Rng::new(37);
    let (_dir, path, io, log, mut images) = loaded_log("recycle-revert-patch", "p.db", PAGES, &mut rng);
    let mut reverts = 0;
    for i in 0..1500usize {
        let latest = images.len() as u64 - 1;
        if rng.chance(1, 12) {
            // A few bytes of page 1 (the first page: offset 0) changed: a patch.
            let mut img = images.last().cloned().unwrap();
            {
                let _w = log.lock_writer(T).unwrap();
                let base = log.prepare_write().unwrap();
                let mut txn = log.begin(base, 1 << 20);
                let at = 100 + rng.below(PS as u64 - 120) as usize;
                for b in &mut img[at..at + 12] {
                    *b = rng.below(256) as u8;
                }
                txn.write(&log, 0, &img[..PS]).unwrap();
                log.commit(txn, Durability::Normal).unwrap().expect("a version");
            }
            images.push(img);
            log.reclaim_if_due().unwrap();
        } else if rng.chance(1, 30) && latest > 12 {
            let to = latest - 2 - rng.below(8);
            if let Some(v) = log.revert(to, T).unwrap() {
                // The target's image but for page 1's counters (the change
                // counter, the schema cookie and the version-valid-for
                // number), which a revert moves on.
                let mut got = vec![0u8; images[to as usize].len()];
                v.read(0, &mut got).unwrap();
                let mut want = images[to as usize].clone();
                for r in [24..28, 40..44, 92..96] {
                    want[r.clone()].copy_from_slice(&got[r]);
                }
                let diff: Vec<usize> = (0..want.len()).filter(|&k| got[k] != want[k]).collect();
                assert!(diff.is_empty(), "the revert to {to} is not its target: bytes {diff:?}");
                images.push(got);
                reverts += 1;
            }
        } else {
            commit_page(&log, &mut images, &mut rng, PAGES, false);
        }
        if i % 8 == 7 {
            log.reclaim(32 << 10, T).unwrap();
        }
        let v = images.len();
        if v > 60 {
            images[v - 60] = Vec::new();
        }
        if i % 100 == 99 {
            common::check_kept(&images, &log, &path);
        }
    }
    common::check_kept(&images, &log, &path);
    let s = io.slot_writes.load(Ordering::Relaxed);
    eprintln!("{reverts} reverts, {s} slot writes");
    assert!(
        reverts >= 20 && s >= 150,
        "the test must revert and recycle to prove anything: {reverts} reverts, {s} slot writes"
    );
}
