//! The retirement step (format 4, docs/format-4.md "Punching dead frames in
//! place", step 2 without recycling; `retire.rs`, `retire_step.rs`): a step
//! lists the frames the commits it retires leave dead in its CONTROL
//! record's free list, and a later step releases (punches) them once no
//! reader holds an older epoch.
//!
//! Checked with real files: every dead write's bytes are gone from the file
//! once released (a marker per write, scanned for in the raw bytes), every
//! write a kept version reaches reads back exactly, through the writer and a
//! fresh open, `verify` is clean; and a reader holding an older epoch keeps
//! every listed range in place (its snapshot reads back, and the dead bytes
//! are still there) until it lets go.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Dir, Rng};
use pagelog::retention::Policy;
use pagelog::{Durability, Log, OpenOptions};

const PS: usize = 1024;
const PAGES: usize = 40;
const HOT: u64 = 8;
const T: Duration = Duration::from_secs(5);

struct Model {
    images: Vec<Vec<u8>>,
    /// writes[v]: the page version v wrote whole (version 1: the load).
    writes: Vec<usize>,
    rng: Rng,
}

fn marker(v: usize) -> Vec<u8> {
    format!("RETIRE-MARK-{v:07}-").into_bytes()
}

impl Model {
    fn commit(&mut self, log: &Log) {
        let v = self.images.len();
        let mut img = self.images.last().cloned().unwrap_or_default();
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        let p = if img.is_empty() {
            img = vec![b'X'; PAGES * PS];
            txn.write(log, 0, &img).unwrap();
            0
        } else {
            // A whole page (no patch keeps an old image as its base).
            let p = 1 + self.rng.below(HOT) as usize;
            let mut d = self.rng.bytes(PS);
            d[0] = b'X';
            let m = marker(v);
            d[100..100 + m.len()].copy_from_slice(&m);
            txn.write(log, (p * PS) as u64, &d).unwrap();
            img[p * PS..(p + 1) * PS].copy_from_slice(&d);
            p
        };
        let got = log.commit(txn, Durability::Normal).unwrap().expect("a version");
        assert_eq!(got.number as usize, v);
        self.images.push(img);
        self.writes.push(p);
    }

    /// The versions from 2 on whose write a later write of the same page at
    /// or before `vo` replaced: dead once `vo` is the oldest kept.
    fn dead_writes(&self, vo: usize) -> Vec<usize> {
        (2..self.writes.len())
            .filter(|&v| (v + 1..=vo.min(self.writes.len() - 1)).any(|w| self.writes[w] == self.writes[v]))
            .collect()
    }

    fn check_kept(&self, log: &Log, path: &Path) {
        common::check_kept(&self.images, log, path);
    }
}

fn positions(path: &Path, vs: &[usize]) -> Vec<Option<usize>> {
    let b = std::fs::read(path).unwrap();
    vs.iter()
        .map(|&v| {
            let m = marker(v);
            b.windows(m.len()).position(|w| w == m)
        })
        .collect()
}

fn reclaim_all(log: &Log) -> u64 {
    let mut boundary = 0;
    for _ in 0..10_000 {
        let r = log.reclaim(64 << 10, T).unwrap();
        if r.freed == 0 {
            return boundary;
        }
        boundary = r.boundary;
    }
    panic!("reclamation does not end");
}

fn setup(dir: &Dir, seed: u64, commits: usize) -> (Log, std::path::PathBuf, Model) {
    let path = dir.0.join("r.db");
    let log = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let mut m = Model { images: vec![Vec::new()], writes: vec![0], rng: Rng::new(seed) };
    for _ in 0..commits {
        m.commit(&log);
    }
    log.sync_pending().unwrap();
    (log, path, m)
}

#[test]
fn dead_frames_past_the_boundary_are_punched_and_every_kept_version_reads_back() {
    let dir = Dir::new("retire-punch");
    let (log, path, m) = setup(&dir, 3, 600);
    log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
    let latest = m.images.len() - 1;
    // Where each write's bytes are before any step.
    let all: Vec<usize> = (2..=latest).collect();
    let at_first = positions(&path, &all);
    let boundary = reclaim_all(&log);
    let vo = log.oldest_kept().expect("reclaimed") as usize;
    assert!(boundary > 512 && vo + 20 > latest, "boundary {boundary}, oldest kept {vo} of {latest}");
    // The next step releases what the last one listed (no reader here).
    log.reclaim(64 << 10, T).unwrap();
    let dead = m.dead_writes(vo);
    // The test proves something only if dead writes lie past the boundary,
    // where the FIFO step does not punch.
    let past: Vec<usize> =
        dead.iter().copied().filter(|&v| at_first[v - 2].is_some_and(|p| p as u64 >= boundary)).collect();
    assert!(past.len() >= 20, "only {} dead writes past the boundary {boundary}", past.len());
    let now = positions(&path, &past);
    let left: Vec<usize> = past.iter().zip(&now).filter(|(_, p)| p.is_some()).map(|(v, _)| *v).collect();
    assert!(left.is_empty(), "dead writes still in the file past the boundary {boundary}: {left:?}");
    // What kept versions reach is all there.
    let live: Vec<usize> = all.iter().copied().filter(|v| !dead.contains(v) && *v >= 2).collect();
    let live_now = positions(&path, &live);
    for (v, p) in live.iter().zip(&live_now) {
        if at_first[v - 2].is_some_and(|p| p as u64 >= boundary) {
            assert!(p.is_some(), "write {v} (live at oldest kept {vo}) is gone");
        }
    }
    m.check_kept(&log, &path);
    drop(log);
    // Reopened, the next steps go on from the list the log holds.
    let log = Log::open(&path, OpenOptions::default()).unwrap();
    let mut m = m;
    for _ in 0..300 {
        m.commit(&log);
    }
    reclaim_all(&log);
    log.reclaim(64 << 10, T).unwrap();
    m.check_kept(&log, &path);
}

#[test]
fn a_reader_of_an_older_epoch_keeps_the_listed_frames_until_it_lets_go() {
    use std::os::fd::AsFd;
    let dir = Dir::new("retire-reader");
    let (log, path, m) = setup(&dir, 11, 600);
    log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
    // The reader: a version the steps below retire (a `?version=N`
    // connection opened before the policy), and a lock on the epoch it was
    // read under, from a description of its own. No step ran yet: the
    // log's CONTROL records (the checkpoints' copies, the policy's) are
    // epoch 1.
    let snap = log.version(560).unwrap();
    let epoch_file = std::fs::File::open(&path).unwrap();
    let epoch = 1;
    assert!(pagelog::lock::try_lock(
        epoch_file.as_fd(),
        pagelog::lock::EPOCH_BASE + epoch,
        pagelog::lock::Mode::Shared
    )
    .unwrap());
    let boundary = reclaim_all(&log);
    for _ in 0..3 {
        log.reclaim(64 << 10, T).unwrap();
    }
    let vo = log.oldest_kept().expect("reclaimed") as usize;
    assert!(vo > 560, "the held version {} is still kept (oldest kept {vo})", snap.number);
    let want = &m.images[snap.number as usize];
    let mut got = vec![0u8; want.len()];
    snap.read(0, &mut got).unwrap_or_else(|e| panic!("the held version {}: {e}", snap.number));
    assert!(got == *want, "the held version {} changed", snap.number);
    let dead = m.dead_writes(vo);
    // Held: every dead write past the boundary is still in the file.
    let held = positions(&path, &dead);
    let past: Vec<usize> =
        dead.iter().zip(&held).filter(|(_, p)| p.is_some_and(|p| p as u64 >= boundary)).map(|(v, _)| *v).collect();
    assert!(past.len() >= 20, "only {} dead writes left past the boundary {boundary}", past.len());
    // Let go: the next step releases the list.
    drop(epoch_file);
    log.reclaim(64 << 10, T).unwrap();
    let after = positions(&path, &past);
    let left = after.iter().filter(|p| p.is_some()).count();
    assert_eq!(left, 0, "{left} of {} dead writes past the boundary still in the file after release", past.len());
    m.check_kept(&log, &path);
}

/// Power loss at every write, sync and punch from the policy on: steps that
/// list dead frames, the steps that release them (a punch is a write of
/// zeros in `SimDisk`), and commits between them. Every crash image
/// recovers a version between the last synced one and the last written,
/// every version it keeps reads back exactly, and `verify` finds no damage.
#[test]
fn power_loss_at_every_operation_of_listing_and_releasing_keeps_every_kept_version() {
    use common::{Op, SimDisk};
    let dir = Dir::new("retire-power");
    let path = dir.0.join("w.db");
    let disk = SimDisk::create(&path, &[]);
    let log = Log::open_with_io(&path, OpenOptions { format4: true, ..Default::default() }, disk.clone()).unwrap();
    let mut m = Model { images: vec![Vec::new()], writes: vec![0], rng: Rng::new(29) };
    // written[v]: the operation that wrote version v's commit record.
    let mut written = vec![0usize];
    let mut commit = |m: &mut Model, log: &Log| {
        let before = disk.op_count();
        m.commit(log);
        let v = log.latest();
        let at = disk.write_covering(before, v.commit_offset);
        written.push(at);
    };
    for _ in 0..560 {
        commit(&mut m, &log);
    }
    log.sync_pending().unwrap();
    let retain_from = disk.op_count();
    log.set_retention(Policy::parse("12 versions").unwrap(), T).unwrap();
    for round in 0..6 {
        for _ in 0..(if round == 0 { 0 } else { 20 }) {
            commit(&mut m, &log);
        }
        for _ in 0..3 {
            log.reclaim(16 << 10, T).unwrap();
        }
    }
    drop(log);
    let n = disk.op_count();
    let ops = disk.ops_since(0);
    // The releases' punches: zeros a page long at a page's offset (the
    // FIFO's punch starts at 512 and is longer).
    let releases = ops[retain_from..]
        .iter()
        .filter(|(_, o)| matches!(o, Op::Write { off, data } if *off > 512 && data.len() == PS && data.iter().all(|&b| b == 0)))
        .count();
    assert!(releases >= 20, "only {releases} released frames: the test would prove little");
    let mut rng = Rng::new(77);
    for k in retain_from..=n {
        let img = disk.crash_image(&[], k, &mut rng);
        let p = dir.0.join("crash.db");
        std::fs::write(&p, &img).unwrap();
        let last_sync = ops[..k].iter().rposition(|(_, o)| matches!(o, Op::Sync));
        let floor = last_sync.map_or(0, |s| (1..m.images.len()).rev().find(|&v| written[v] < s).unwrap_or(0));
        let ceiling = (1..m.images.len()).rev().find(|&v| written[v] < k).unwrap_or(0);
        let log = Log::open(&p, OpenOptions { read_only: true, ..Default::default() })
            .unwrap_or_else(|e| panic!("power lost after operation {k} of {n}: open: {e}"));
        let latest = log.latest().number as usize;
        assert!(floor <= latest && latest <= ceiling, "after op {k}: recovered {latest}, expected {floor}..={ceiling}");
        let oldest = log.oldest_kept().unwrap_or(1).max(1) as usize;
        for v in oldest..=latest {
            let want = &m.images[v];
            let mut got = vec![0u8; want.len()];
            log.version(v as u64)
                .and_then(|x| x.read(0, &mut got))
                .unwrap_or_else(|e| panic!("after op {k} of {n}: version {v} (kept from {oldest}): {e}"));
            assert!(got == *want, "after op {k} of {n}: version {v} (kept from {oldest}) differs");
        }
        let rep = log.verify();
        assert!(!rep.damaged(), "after op {k} of {n}: verify: {rep:?}");
    }
}

/// Under a policy at 4096-byte pages, one-frame commits are padded to a
/// block (ALIGNED), so the frames a step finds dead past the boundary give
/// their blocks back when released (holes, `SEEK_HOLE`), not only zeros.
#[test]
fn under_a_policy_dead_frames_give_their_blocks_back_at_4096_byte_pages() {
    const BIG: usize = 4096;
    // On a disk file system: tmpfs may keep a punched page of a huge
    // folio allocated (zeroed, not freed), which says nothing of pagelog.
    let dir = std::env::temp_dir().join(format!("pagelog-retire-blocks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("b.db");
    let log = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let mut rng = Rng::new(5);
    let mut writes = vec![0usize, 0];
    let write = |log: &Log, at: usize, d: &[u8]| {
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        txn.write(log, at as u64, d).unwrap();
        log.commit(txn, Durability::Normal).unwrap().expect("a version")
    };
    write(&log, 0, &vec![b'X'; 40 * BIG]);
    log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
    for _ in 0..600 {
        let p = 1 + rng.below(HOT) as usize;
        let v = writes.len();
        let mut d = rng.bytes(BIG);
        d[0] = b'X';
        let m = marker(v);
        d[100..100 + m.len()].copy_from_slice(&m);
        assert_eq!(write(&log, p * BIG, &d).number as usize, v);
        writes.push(p);
    }
    log.sync_pending().unwrap();
    let latest = writes.len() - 1;
    let all: Vec<usize> = (2..=latest).collect();
    let at_first = positions(&path, &all);
    let boundary = reclaim_all(&log);
    log.reclaim(64 << 10, T).unwrap(); // releases the last list, punches the reserve
    let vo = log.oldest_kept().expect("reclaimed") as usize;
    let dead_past = all
        .iter()
        .filter(|&&v| (v + 1..=vo).any(|w| writes[w] == writes[v]))
        .filter(|&&v| at_first[v - 2].is_some_and(|p| p as u64 >= boundary))
        .count() as u64;
    assert!(dead_past >= 20, "only {dead_past} dead frames past the boundary {boundary}");
    // Blocks given back past the boundary: holes in [B, end of the log).
    let end = log.latest().commit_offset;
    let holes = holes_in(&path, boundary, end);
    assert!(
        holes >= dead_past * BIG as u64,
        "{holes} bytes of holes in [{boundary}, {end}) for {dead_past} dead frames of {BIG} bytes"
    );
    drop(log);
    let fresh = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    assert!(!fresh.verify().damaged(), "verify after release");
    drop(fresh);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bytes of holes in `[from, to)` of the file at `path` (`SEEK_HOLE`).
fn holes_in(path: &Path, from: u64, to: u64) -> u64 {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    let (mut pos, mut holes) = (from, 0u64);
    while pos < to {
        // SAFETY: lseek on a descriptor this function owns; no memory is passed.
        let h = unsafe { libc::lseek(f.as_raw_fd(), pos as libc::off_t, libc::SEEK_HOLE) };
        if h < 0 || h as u64 >= to {
            break;
        }
        // SAFETY: as above.
        let d = unsafe { libc::lseek(f.as_raw_fd(), h, libc::SEEK_DATA) };
        let d = if d < 0 { to } else { (d as u64).min(to) };
        holes += d - h as u64;
        pos = d;
    }
    holes
}
