// Writes format-4 logs with pagelog itself, for compare.py and the cases:
// CONTROL records before full maps, a retention policy, reclamation steps
// (holes below the boundary, a base tree, relocated images and patches).
// Not part of any crate: compiled like open_latest.rs,
//   rustc --edition 2021 make_format4.rs --extern pagelog=target/debug/libpagelog.rlib -L target/debug/deps
// and run as `make_format4 OUTDIR [SEED]`. Each log is also written as it
// was before any byte was punched (`-unpunched`: a reader held an epoch)
// where that differs. The logs depend on the seed, not on the clock, except
// for salts and timestamps.
use std::path::{Path, PathBuf};
use std::time::Duration;

use pagelog::retention::Policy;
use pagelog::{Durability, Log, OpenOptions};

const PS: usize = 1024;
const PAGES: u64 = 40;
const T: Duration = Duration::from_secs(5);

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One commit: the first writes every page; then a whole page (1 in 3) or a
/// few bytes (stored as a patch); a transaction spills now and then.
fn commit(log: &Log, rng: &mut Rng, durability: Durability, spill_all: bool) {
    commit_in(log, rng, durability, spill_all, PAGES, false, PAGES);
}

/// [`commit`] on a database of `pages` pages; `patches`: never a whole page
/// after the first commit (a small log: a few hundred bytes a commit);
/// later commits change only pages below `hot`.
fn commit_in(log: &Log, rng: &mut Rng, durability: Durability, spill_all: bool, pages: u64, patches: bool, hot: u64) {
    let _w = log.lock_writer(T).unwrap();
    let base = log.prepare_write().unwrap();
    let spill = if spill_all || rng.below(40) == 0 { 2048 } else { 1 << 20 };
    let mut txn = log.begin(base.clone(), spill);
    if base.number == 0 {
        let mut img = vec![0u8; pages as usize * PS];
        for p in 0..pages as usize {
            img[p * PS] = b'X';
            img[p * PS + 1] = p as u8;
        }
        txn.write(log, 0, &img).unwrap();
    } else if !patches && rng.below(3) == 0 {
        let p = rng.below(hot);
        let mut data = rng.bytes(PS);
        data[0] = b'X';
        txn.write(log, p * PS as u64, &data).unwrap();
    } else {
        let p = rng.below(hot);
        let at = p * PS as u64 + 8 + rng.below(900);
        let n = 1 + rng.below(40) as usize;
        txn.write(log, at, &rng.bytes(n)).unwrap();
    }
    log.commit(txn, durability).unwrap().expect("a version");
}

fn new_log(path: &Path) -> Log {
    let _ = std::fs::remove_file(path);
    Log::open(path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap()
}

/// Reclamation steps of at most `step` bytes until one frees nothing; the
/// boundaries they reached.
fn reclaim_all(log: &Log, step: u64) -> Vec<u64> {
    let mut bs = Vec::new();
    loop {
        let r = log.reclaim(step, T).unwrap();
        if r.freed == 0 {
            return bs;
        }
        bs.push(r.boundary);
    }
}

/// `path` with the bytes `[from, to)` of `orig` written back (as they were
/// before a punch), saved as `name`.
fn unpunched(out: &Path, path: &Path, orig: &[u8], from: u64, to: u64, name: &str) {
    let mut b = std::fs::read(path).unwrap();
    b[from as usize..to as usize].copy_from_slice(&orig[from as usize..to as usize]);
    std::fs::write(out.join(name), b).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(&args[1]);
    let seed: u64 = args.get(2).map_or(1, |s| s.parse().unwrap());
    std::fs::create_dir_all(&out).unwrap();
    let mut rng = Rng(seed);
    if args.get(3).map(String::as_str) == Some("in-place") {
        in_place(&out, &mut rng);
        return;
    }

    // No policy: a CONTROL record before every full map only.
    let p = out.join("f4-no-policy.log");
    let log = new_log(&p);
    for i in 0..300 {
        commit(&log, &mut rng, if i % 7 == 0 { Durability::Full } else { Durability::Normal }, false);
    }
    drop(log);

    // A policy that frees nothing yet.
    let p = out.join("f4-policy-unreclaimed.log");
    let log = new_log(&p);
    for _ in 0..40 {
        commit(&log, &mut rng, Durability::Normal, false);
    }
    log.set_retention(Policy::parse("5 versions, 1 day").unwrap(), T).unwrap();
    for _ in 0..5 {
        commit(&log, &mut rng, Durability::Normal, false);
    }
    drop(log);

    // Reclaimed: steps of 64 KiB, commits after them, more steps.
    let p = out.join("f4-reclaimed.log");
    let log = new_log(&p);
    for _ in 0..500 {
        commit(&log, &mut rng, Durability::Normal, false);
    }
    log.sync_pending().unwrap();
    let orig = std::fs::read(&p).unwrap();
    log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
    let mut bs = reclaim_all(&log, 64 << 10);
    let b1 = *bs.last().expect("something was reclaimed");
    for i in 0..120 {
        commit(&log, &mut rng, if i % 5 == 0 { Durability::Full } else { Durability::Normal }, false);
    }
    log.sync_pending().unwrap();
    // Punched below b1 already: the bytes above it as they were before the
    // second round.
    let mut orig = orig;
    let orig2 = std::fs::read(&p).unwrap();
    orig.resize(orig2.len().max(orig.len()), 0);
    orig[b1 as usize..orig2.len()].copy_from_slice(&orig2[b1 as usize..]);
    bs.extend(reclaim_all(&log, 64 << 10));
    for _ in 0..3 {
        commit(&log, &mut rng, Durability::Normal, false);
    }
    drop(log);
    eprintln!("f4-reclaimed: boundaries {bs:?}");
    let b = *bs.last().unwrap();
    unpunched(&out, &p, &orig, 512, b, "f4-reclaimed-unpunched.log");
    let bp = bs[bs.len() - 2];
    unpunched(&out, &p, &orig, bp, b, "f4-reclaimed-punched-to-the-step-before.log");

    // A log whose reclaimed base tree is two levels deep (more than 16 pages
    // relocated) and a step's CONTROL record is the last record.
    let p = out.join("f4-reclaimed-last-record-control.log");
    let log = new_log(&p);
    for _ in 0..400 {
        commit(&log, &mut rng, Durability::Full, false);
    }
    log.set_retention(Policy::parse("3 versions").unwrap(), T).unwrap();
    let bs = reclaim_all(&log, 1 << 30);
    eprintln!("f4-reclaimed-last-record-control: boundaries {bs:?}");
    drop(log);

    // Small logs for mutate.py (what lies at or after the boundary is a few
    // records): a full map by count at version 265, a policy of 3 versions,
    // a step relocating every page it does not rewrite (a base tree of 40
    // slots, depth 2), commits after it, a second step.
    let p = out.join("f4-small-reclaimed.log");
    let log = new_log(&p);
    for i in 0..268 {
        commit(&log, &mut rng, if i % 4 == 0 { Durability::Full } else { Durability::Normal }, false);
    }
    log.sync_pending().unwrap();
    let orig = std::fs::read(&p).unwrap();
    log.set_retention(Policy::parse("3 versions").unwrap(), T).unwrap();
    let mut bs = reclaim_all(&log, 1 << 30);
    for _ in 0..4 {
        commit(&log, &mut rng, Durability::Normal, false);
    }
    bs.extend(reclaim_all(&log, 1 << 30));
    commit(&log, &mut rng, Durability::Full, false);
    drop(log);
    eprintln!("f4-small-reclaimed: boundaries {bs:?}");
    unpunched(&out, &p, &orig, 512, bs[0], "f4-small-reclaimed-unpunched.log");
    // The smallest reclaimed log with a base tree of depth 2: 20 pages, a
    // few bytes a commit, a policy of 3 versions (kept corpus files).
    let p = out.join("f4-tiny-reclaimed.log");
    let log = new_log(&p);
    for i in 0..266 {
        commit_in(&log, &mut rng, if i % 4 == 0 { Durability::Full } else { Durability::Normal }, false, 20, true, 20);
    }
    log.sync_pending().unwrap();
    let orig = std::fs::read(&p).unwrap();
    log.set_retention(Policy::parse("3 versions").unwrap(), T).unwrap();
    let bs = reclaim_all(&log, 1 << 30);
    for _ in 0..3 {
        commit_in(&log, &mut rng, Durability::Full, false, 20, true, 20);
    }
    drop(log);
    eprintln!("f4-tiny-reclaimed: boundaries {bs:?}");
    unpunched(&out, &p, &orig, 512, bs[0], "f4-tiny-reclaimed-unpunched.log");

    // Checkpoint trees that share nodes (format 4 with checkpoints): 200
    // pages, later commits only on the first 12, so a checkpoint rewrites
    // one leaf and the root and shares the others with the one before; a
    // step then frees the shared nodes' INDEX record and relocates them (the
    // straggler table).
    let p = out.join("f4-shared-nodes-reclaimed.log");
    let log = new_log(&p);
    for i in 0..600 {
        let d = if i % 4 == 0 { Durability::Full } else { Durability::Normal };
        commit_in(&log, &mut rng, d, false, 200, true, 12);
    }
    log.sync_pending().unwrap();
    let orig = std::fs::read(&p).unwrap();
    log.set_retention(Policy::parse("3 versions").unwrap(), T).unwrap();
    let bs = reclaim_all(&log, 1 << 30);
    for _ in 0..3 {
        commit_in(&log, &mut rng, Durability::Full, false, 200, true, 12);
    }
    drop(log);
    eprintln!("f4-shared-nodes-reclaimed: boundaries {bs:?}");
    if let Some(&b) = bs.first() {
        unpunched(&out, &p, &orig, 512, b, "f4-shared-nodes-reclaimed-unpunched.log");
    }

    // Recycled slots (FORMAT.md, "Frames in recycled slots"): a policy of
    // 20 versions from the load on, 499 one-page commits of 8 hot pages, a step
    // every 25 commits; each step releases what the one before listed, and
    // later commits write their page into those slots (RECYCLED). The last
    // commits are not synced (no MARK after them: a damaged slot of the
    // last one is a torn tail).
    let p = out.join("f4-recycled.log");
    let log = new_log(&p);
    for i in 0..500 {
        if i == 0 {
            commit_in(&log, &mut rng, Durability::Normal, false, PAGES, false, 8);
        } else {
            // A whole page (only whole page images are recycled).
            let _w = log.lock_writer(T).unwrap();
            let mut txn = log.begin(log.prepare_write().unwrap(), 1 << 20);
            let mut data = rng.bytes(PS);
            data[0] = b'X';
            txn.write(&log, rng.below(8) * PS as u64, &data).unwrap();
            log.commit(txn, Durability::Normal).unwrap().expect("a version");
        }
        if i == 0 {
            log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
        }
        if i % 25 == 24 {
            log.sync_pending().unwrap();
            log.reclaim(64 << 10, T).unwrap();
        }
    }
    std::fs::copy(&p, out.join("f4-recycled-unclaimed-tail.log")).unwrap();
    drop(log);

    let p = out.join("f4-small-no-policy.log");
    let log = new_log(&p);
    for i in 0..12 {
        commit(&log, &mut rng, if i % 3 == 0 { Durability::Full } else { Durability::Normal }, i == 4);
    }
    drop(log);

    // A first transaction that spilled, its full map's CONTROL record after
    // the SPILL records; no MARK (the copy is taken before the log closes).
    let p = out.join("tmp-spilled.log");
    let log = new_log(&p);
    commit(&log, &mut rng, Durability::Off, true);
    std::fs::copy(&p, out.join("f4-spilled-first-commit-unclaimed.log")).unwrap();
    drop(log);
    std::fs::remove_file(&p).unwrap();
}

/// `make_format4 OUTDIR SEED in-place`: frames read in place below the
/// boundary (FORMAT.md, "The boundary"). A load of 40 pages (one ALIGNED
/// record), a policy of 5 versions from the start, commits of the first 8
/// pages only with steps among them: the load's other pages are read where
/// it wrote them, below `B`. `-frame-punched`: one of those frames zeroed
/// (a punched frame a held version still reaches: damage, not zeros).
fn in_place(out: &Path, rng: &mut Rng) {
    let p = out.join("f4-in-place.log");
    let mut log = new_log(&p);
    commit_in(&log, rng, Durability::Normal, false, PAGES, false, 8);
    log.set_retention(Policy::parse("5 versions").unwrap(), T).unwrap();
    for i in 0..400 {
        commit_in(&log, rng, Durability::Normal, false, PAGES, false, 8);
        if i % 100 == 99 {
            // A new handle's first commit is a checkpoint (past which steps
            // may move the boundary).
            drop(log);
            log = Log::open(&p, OpenOptions::default()).unwrap();
        }
        if i % 10 == 9 {
            reclaim_all(&log, 16 << 10);
        }
    }
    let b = log.retention_state().boundary;
    eprintln!("f4-in-place: boundary {b}, latest {}", log.latest().number);
    drop(log);
    let mut bytes = std::fs::read(&p).unwrap();
    // Page 31 (index 30) as the load wrote it: 'X', 30, then zeros.
    let at = (PS..b as usize)
        .step_by(PS)
        .find(|&o| bytes[o] == b'X' && bytes[o + 1] == 30 && bytes[o + 2..o + PS].iter().all(|&x| x == 0))
        .expect("page 31 of the load read in place below B");
    eprintln!("f4-in-place-frame-punched: frame at {at}");
    bytes[at..at + PS].fill(0);
    std::fs::write(out.join("f4-in-place-frame-punched.log"), bytes).unwrap();
}
