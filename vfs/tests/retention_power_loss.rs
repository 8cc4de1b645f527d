//! Power loss during retention (format 4, in development; issue 20 item 6):
//! at every write, sync and hole punch of reclamation steps (and of the
//! commits between them), the disk keeps what `SimDisk` says it may
//! (`common/mod.rs`: the durable image plus unsynced operations kept,
//! dropped or torn; a punch is modelled as a write of zeros).
//!
//! For every crash point: recovery succeeds; it reaches at least the newest
//! version whose commit was synced before the failure and at most the newest
//! written; and every version the recovered log still keeps (from its
//! oldest kept version to its latest) reads back exactly as committed, while
//! older ones are refused as reclaimed. The workload also checks, after
//! every step, every kept version through the writer and a fresh open.
//!
//! A reader holds an old snapshot across some of the steps, as a SQLite
//! read transaction does (a `Version` of the latest, and a shared lock on
//! its epoch's byte from a description of its own): while it holds it, a
//! step may punch only what was freed before that epoch, and the snapshot
//! reads back exactly, every page, after every step (a punch here writes
//! zeros to the real file, so a wrong one is seen). The crash points are
//! counted by what the last operation was: a write of a commit, a write of
//! a step (its CONTROL record: the relocated copies and the base tree's
//! nodes), a sync, or a punch.
//!
//! Two seeds by default (~20 s of CPU in a debug build); `PAGELOG_LONG=1`
//! runs 40 seeds (about 20 CPU-minutes), three images per crash point
//! (`PAGELOG_SEEDS=N`: seeds 0 to N − 1; `SEED=N`: seed N only;
//! `TRACE_STEPS=1` prints each step).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{long_mode, Dir, Op, Rng, SimDisk};
use pagelog::retention::Policy;
use pagelog::{Durability, Error, Log, OpenOptions};

const PS: usize = 512;
const PAGES: usize = 12;
const T: Duration = Duration::from_secs(5);

struct Run {
    disk: std::sync::Arc<SimDisk>,
    /// The operations of each reclamation step, `start..end`.
    steps: Vec<std::ops::Range<usize>>,
    /// Steps run while a reader held an older snapshot.
    held_steps: usize,
    /// The first operation of the retention phase (the policy's record).
    retain_from: usize,
    /// images[v]: version v's database; written[v]: the op that wrote its
    /// commit record.
    images: Vec<Vec<u8>>,
    written: Vec<usize>,
}

fn workload(path: &Path, seed: u64, commits: usize) -> Run {
    let disk = SimDisk::create(path, &[]);
    let log = Log::open_with_io(path, OpenOptions { format4: true, ..Default::default() }, disk.clone()).unwrap();
    let mut rng = Rng::new(seed);
    let mut images = vec![Vec::new()];
    let mut written = vec![0];
    let keep = 2 + rng.below(8);
    // Reclamation can free nothing before the second full map (every 256
    // commits here): the policy comes after the third.
    let retain_at = commits - 80;
    let mut retain_from = 0;
    let (mut steps, mut held_steps) = (Vec::new(), 0);
    // The log's epoch: 1 from its first CONTROL record (the copy before a
    // full map, or the policy's), +1 for each step that appended one.
    let mut epoch = 1u64;
    // A reader in a read transaction: its snapshot, the boundary then, and
    // its epoch lock on a description of its own.
    let mut reader: Option<(std::sync::Arc<pagelog::Version>, u64, std::fs::File)> = None;
    let mut boundary = pagelog::format::FIRST_RECORD;
    for i in 0..commits {
        let mut img: Vec<u8> = images.last().unwrap().clone();
        {
            let _w = log.lock_writer(T).unwrap();
            let base = log.prepare_write().unwrap();
            let mut txn = log.begin(base, if rng.chance(1, 15) { 1024 } else { 1 << 20 });
            if img.is_empty() {
                img = vec![b'X'; PAGES * PS];
                txn.write(&log, 0, &img).unwrap();
            } else if rng.chance(1, 2) {
                let p = rng.below(PAGES as u64) as usize;
                let mut d = rng.bytes(PS);
                d[0] = b'X';
                txn.write(&log, (p * PS) as u64, &d).unwrap();
                img[p * PS..(p + 1) * PS].copy_from_slice(&d);
            } else {
                let at = 8 + rng.below((PAGES * PS - 48) as u64) as usize;
                let n = 1 + rng.below(30) as usize;
                let d = rng.bytes(n);
                txn.write(&log, at as u64, &d).unwrap();
                img[at..at + d.len()].copy_from_slice(&d);
            }
            let d = if rng.chance(1, 3) { Durability::Full } else { Durability::Normal };
            let before = disk.op_count();
            let v = log.commit(txn, d).unwrap().expect("a version");
            assert_eq!(v.number as usize, images.len());
            let at = disk.write_covering(before, v.commit_offset);
            images.push(img);
            written.push(at);
        }
        if i == retain_at {
            retain_from = disk.op_count();
            log.set_retention(Policy::parse(&format!("{keep} versions")).unwrap(), T).unwrap();
        }
        if i > retain_at && reader.is_none() && rng.chance(1, 12) {
            use std::os::fd::AsFd;
            let f = std::fs::File::open(path).unwrap();
            assert!(pagelog::lock::try_lock(f.as_fd(), pagelog::lock::EPOCH_BASE + epoch, pagelog::lock::Mode::Shared)
                .unwrap());
            reader = Some((log.latest(), boundary, f));
        } else if reader.is_some() && rng.chance(1, 10) {
            reader = None; // the read transaction ends: its lock goes
        }
        if i > retain_at && rng.chance(1, 4) {
            let before = disk.op_count();
            let r = log.reclaim(4096 * (1 + rng.below(16)), T).unwrap();
            steps.push(before..disk.op_count());
            if r.appended > 0 {
                epoch += 1;
                boundary = r.boundary;
            }
            if let Some((snap, b, _)) = &reader {
                held_steps += 1;
                assert!(
                    r.punched <= *b,
                    "seed {seed}: a step punched up to {} under a reader whose snapshot's boundary is {b}",
                    r.punched
                );
                let want = &images[snap.number as usize];
                let mut got = vec![0u8; want.len()];
                if let Err(e) = snap.read(0, &mut got) {
                    panic!("seed {seed}: after step {r:?}: a reader's snapshot of version {}: {e}", snap.number);
                }
                assert!(
                    got == *want,
                    "seed {seed}: after step {r:?}: a reader's snapshot of version {} changed",
                    snap.number
                );
            }
            if std::env::var("TRACE_STEPS").is_ok() {
                eprintln!("seed {seed} op {} commit {}: {r:?}", disk.op_count(), images.len() - 1);
            }
            // Every kept version still reads as committed, right after the step.
            let oldest = log.oldest_kept().unwrap_or(1) as usize;
            for (n, want) in images.iter().enumerate().skip(oldest) {
                let v = log.version(n as u64).unwrap();
                let mut got = vec![0u8; want.len()];
                if let Err(e) = v.read(0, &mut got) {
                    panic!("seed {seed}: after step {r:?}: version {n} (oldest kept {oldest}): {e}");
                }
                assert!(got == *want, "seed {seed}: after step {r:?}: version {n} differs");
            }
            let fresh = Log::open(path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
            assert_eq!(fresh.oldest_kept(), log.oldest_kept());
            for (n, want) in images.iter().enumerate().skip(oldest) {
                let v = fresh.version(n as u64).unwrap();
                let mut got = vec![0u8; want.len()];
                if let Err(e) = v.read(0, &mut got) {
                    panic!("seed {seed}: fresh open after step {r:?}: version {n} (oldest kept {oldest}): {e}");
                }
            }
        }
    }
    drop(reader);
    drop(log);
    assert!(log_reclaimed(path), "the workload freed nothing: the test would prove nothing");
    Run { disk, steps, held_steps, retain_from, images, written }
}

/// Whether the log at `path` (as the writer left it) has a boundary.
fn log_reclaimed(path: &Path) -> bool {
    Log::open(path, OpenOptions { read_only: true, ..Default::default() }).unwrap().oldest_kept().is_some()
}

fn check(run: &Run, dir: &Path, k: usize, rng: &mut Rng) -> Result<(), String> {
    let img = run.disk.crash_image(&[], k, rng);
    let p = dir.join(format!("crash-{k}.db"));
    std::fs::write(&p, &img).unwrap();
    let ops = run.disk.ops_since(0);
    let last_sync = ops[..k].iter().rposition(|(_, o)| matches!(o, Op::Sync));
    let floor = last_sync.map_or(0, |s| (1..run.images.len()).rev().find(|&v| run.written[v] < s).unwrap_or(0));
    let ceiling = (1..run.images.len()).rev().find(|&v| run.written[v] < k).unwrap_or(0);
    let log = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).map_err(|e| format!("open: {e}"))?;
    let latest = log.latest().number as usize;
    if latest < floor || latest > ceiling {
        return Err(format!("recovered version {latest}, expected {floor}..={ceiling}"));
    }
    let oldest = log.oldest_kept().unwrap_or(1).max(1) as usize;
    for n in oldest..=latest {
        let v = log.version(n as u64).map_err(|e| format!("version {n} (kept from {oldest}, latest {latest}): {e}"))?;
        let want = &run.images[n];
        let mut got = vec![0u8; want.len()];
        v.read(0, &mut got).map_err(|e| format!("version {n} (kept from {oldest}, latest {latest}): read: {e}"))?;
        if got != *want {
            return Err(format!("version {n} (kept from {oldest}) differs from what was committed"));
        }
    }
    if oldest > 1 {
        match log.version(oldest as u64 - 1) {
            Err(Error::Reclaimed { .. }) => {}
            other => {
                return Err(format!("version {} below the oldest kept: {:?}", oldest - 1, other.map(|v| v.number)))
            }
        }
    }
    drop(log);
    let _ = std::fs::remove_file(&p);
    Ok(())
}

#[test]
fn power_loss_at_every_write_sync_and_punch_of_reclamation_keeps_every_kept_version() {
    let seeds =
        std::env::var("PAGELOG_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(if long_mode() { 40 } else { 2 });
    let only: Option<u64> = std::env::var("SEED").ok().and_then(|s| s.parse().ok());
    let (mut points, mut images) = (0, 0);
    // Crash points by their last operation: commit write, step write, sync, punch.
    let (mut commit_w, mut step_w, mut syncs, mut punches, mut in_steps, mut held) = (0, 0, 0, 0, 0, 0);
    for seed in (0..seeds).filter(|s| only.is_none_or(|o| o == *s)) {
        let dir = Dir::new(&format!("retain-crash-{seed}"));
        let run = workload(&dir.0.join("w.db"), seed, 600);
        let n = run.disk.op_count();
        let mut rng = Rng::new(seed ^ 0xc0ffee);
        let all = run.disk.ops_since(0);
        // Every operation of the retention phase; a sample of those before.
        for k in (0..=n).filter(|&k| k >= run.retain_from || k % 97 == 0) {
            for _ in 0..if long_mode() { 3 } else { 1 } {
                if let Err(e) = check(&run, &dir.0, k, &mut rng) {
                    panic!("seed {seed}, power lost after operation {k} of {n}: {e}");
                }
                images += 1;
            }
            points += 1;
            let in_step = run.steps.iter().any(|r| r.start < k && k <= r.end);
            in_steps += in_step as usize;
            match k.checked_sub(1).map(|i| &all[i].1) {
                Some(Op::Sync) => syncs += 1,
                Some(Op::Write { off, data })
                    if *off == pagelog::format::FIRST_RECORD && data.iter().all(|&b| b == 0) =>
                {
                    punches += 1
                }
                Some(Op::Write { .. }) if in_step => step_w += 1,
                Some(Op::Write { .. }) => commit_w += 1,
                _ => {}
            }
        }
        held += run.held_steps;
        eprintln!("seed {seed}: {points} crash points so far, {images} images");
    }
    eprintln!(
        "{points} crash points ({in_steps} inside reclamation steps), {images} images; last operation: \
         {commit_w} commit writes, {step_w} step writes, {syncs} syncs, {punches} punches; \
         {held} steps run under a reader's older snapshot"
    );
    assert!(punches > 0 && step_w > 0 && held > 0, "the workload missed a kind of crash point");
}
