//! Power loss at every write around format-4 checkpoints (issue 21 item 4):
//! a checkpoint's INDEX, CONTROL and COMMIT records go out in one write
//! (after its spills), so a power loss tears them as `SimDisk` may
//! (`common/mod.rs`: the durable image plus unsynced operations kept,
//! dropped or torn sector by sector).
//!
//! For every crash point from the operation before each checkpoint's write
//! to the fourth after it (and a sample of the others), several images:
//! recovery succeeds; it reaches at least the newest version synced before
//! the failure and at most the newest written; every version from the last
//! synced one up to it, and a sample of the older ones, reads back exactly
//! as committed (a torn INDEX record is no record: the walk
//! stops before its checkpoint, never serving a page through half a tree);
//! and the log takes a new commit that a fresh open reads back.
//! The workload mixes reverts (checkpoints on an older version's tree) in.
//! `PAGELOG_LONG=1`: 12 seeds and 20 images a point instead of 2 and 3.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{long_mode, Dir, Op, Rng, SimDisk};
use pagelog::format;
use pagelog::version::Pages;
use pagelog::{Durability, Log, OpenOptions};

const PS: usize = 4096;
const PAGES: usize = 40;
const T: Duration = Duration::from_secs(5);

struct Run {
    disk: std::sync::Arc<SimDisk>,
    images: Vec<Vec<u8>>,
    /// written[v]: the operation that wrote version v's commit record.
    written: Vec<usize>,
    /// The operations that wrote a checkpoint's records.
    checkpoints: Vec<usize>,
}

fn workload(path: &Path, seed: u64, commits: usize) -> Run {
    let disk = SimDisk::create(path, &[]);
    let log = Log::open_with_io(path, OpenOptions { format4: true, ..Default::default() }, disk.clone()).unwrap();
    let mut rng = Rng::new(seed);
    let (mut images, mut written, mut checkpoints) = (vec![Vec::new()], vec![0], Vec::new());
    // The log's page size: a page-shaped write of another size (as VACUUM
    // changing `page_size` does) changes it, and makes a checkpoint.
    let mut ps = PS;
    for _ in 0..commits {
        if images.len() > 2 && rng.chance(1, 80) {
            // A revert: a checkpoint on the target's tree (page 1's
            // counters are the revert's own: the model takes them as read).
            let to = 1 + rng.below(images.len() as u64 - 2);
            let before = disk.op_count();
            let v = log.revert(to, T).unwrap().expect("a new version");
            let mut got = vec![0u8; v.size_bytes() as usize];
            v.read(0, &mut got).unwrap();
            let want = &images[to as usize];
            assert!(got.len() == want.len() && got[PS..] == want[PS..], "revert to {to}");
            let at = disk.write_covering(before, v.commit_offset);
            checkpoints.push(at);
            ps = v.page_size as usize;
            images.push(got);
            written.push(at);
            continue;
        }
        let mut img: Vec<u8> = images.last().unwrap().clone();
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, if rng.chance(1, 10) { 2 * PS } else { 1 << 20 });
        let pages = img.len() / PS;
        if img.is_empty() {
            img = vec![b'X'; PAGES * PS];
            txn.write(&log, 0, &img).unwrap();
        } else if rng.chance(1, 60) {
            // A page-shaped write of the other page size.
            ps = if ps == PS { 2 * PS } else { PS };
            img.resize(img.len().next_multiple_of(ps), 0);
            let at = rng.below((img.len() / ps) as u64) as usize * ps;
            let d = vec![b'W'; ps];
            txn.write(&log, at as u64, &d).unwrap();
            img[at..at + ps].copy_from_slice(&d);
        } else if rng.chance(1, 20) && pages > 8 {
            let keep = (4 + rng.below(pages as u64 - 4) as usize) * PS / ps;
            txn.truncate((keep * ps) as u64);
            img.truncate(keep * ps);
        } else if rng.chance(1, 10) && pages < 2 * PAGES {
            for _ in 0..1 + rng.below(8) {
                let more = vec![b'Y'; ps];
                txn.write(&log, img.len() as u64, &more).unwrap();
                img.extend_from_slice(&more);
            }
        } else if rng.chance(1, 2) {
            let p = rng.below((img.len() / ps) as u64) as usize;
            let mut d = rng.bytes(ps);
            d[0] = b'X';
            txn.write(&log, (p * ps) as u64, &d).unwrap();
            img[p * ps..(p + 1) * ps].copy_from_slice(&d);
        } else {
            let at = 8 + rng.below((pages * PS - 48) as u64) as usize;
            let n = 1 + rng.below(30) as usize;
            let d = rng.bytes(n);
            txn.write(&log, at as u64, &d).unwrap();
            img[at..at + d.len()].copy_from_slice(&d);
        }
        let d = if rng.chance(1, 4) { Durability::Full } else { Durability::Normal };
        let before = disk.op_count();
        let v = log.commit(txn, d).unwrap().expect("a version");
        assert_eq!(v.number as usize, images.len());
        let at = disk.write_covering(before, v.commit_offset);
        match &v.map {
            Pages::Tree(t) if t.checkpoint_offset() == v.commit_offset => checkpoints.push(at),
            Pages::Tree(_) => {}
            Pages::Full(_) => panic!("a format-4 version's map is a tree"),
        }
        images.push(img);
        written.push(at);
    }
    drop(log);
    assert!(checkpoints.len() >= 3, "the workload wrote {} checkpoints: too few to test", checkpoints.len());
    Run { disk, images, written, checkpoints }
}

fn check(run: &Run, dir: &Path, k: usize, rng: &mut Rng, write_after: bool) -> Result<(), String> {
    let img = run.disk.crash_image(&[], k, rng);
    check_image(run, dir, k, img, write_after)
}

/// The image after operation `w`, a checkpoint's write, kept whole but for
/// its INDEX record's nodes, which never reached the disk (zeros, as the
/// pre-allocated space they were written over): the tear that only the
/// INDEX record's payload crc can see, as the commit after it is whole.
fn torn_index_image(run: &Run, w: usize) -> Option<Vec<u8>> {
    let ops = run.disk.ops_since(0);
    let mut img = Vec::new();
    for (_, op) in &ops[..=w] {
        common::apply_whole(&mut img, op);
    }
    let Op::Write { off, data } = &ops[w].1 else { return None };
    if data.get(format::RH_KIND) != Some(&format::KIND_INDEX) {
        return None; // this checkpoint wrote no node
    }
    let meta = format::RECORD_HEADER_SIZE + format::IX_PAYLOAD_BYTES;
    let nodes = u64::from_le_bytes(data[meta..meta + 8].try_into().unwrap()) as usize;
    let from = *off as usize + format::RECORD_HEADER_SIZE + format::INDEX_INFO_SIZE;
    img[from..from + nodes].fill(0);
    Some(img)
}

fn check_image(run: &Run, dir: &Path, k: usize, img: Vec<u8>, write_after: bool) -> Result<(), String> {
    let p = dir.join(format!("crash-{k}.db"));
    std::fs::write(&p, &img).unwrap();
    let ops = run.disk.ops_since(0);
    let last_sync = ops[..k].iter().rposition(|(_, o)| matches!(o, Op::Sync));
    let floor = last_sync.map_or(0, |s| (1..run.images.len()).rev().find(|&v| run.written[v] < s).unwrap_or(0));
    let ceiling = (1..run.images.len()).rev().find(|&v| run.written[v] < k).unwrap_or(0);
    let log = Log::open(&p, OpenOptions::default()).map_err(|e| format!("open: {e}"))?;
    let latest = log.latest().number as usize;
    if latest < floor || latest > ceiling {
        return Err(format!("recovered version {latest}, expected {floor}..={ceiling}"));
    }
    // Every version from the last synced one, and a sample of the older
    // ones (each builds its overlay: all of them would cost minutes).
    for n in (1..=latest).filter(|&n| n + 3 >= floor || n % 29 == 0) {
        let v = log.version(n as u64).map_err(|e| format!("version {n} (latest {latest}): {e}"))?;
        let want = &run.images[n];
        let mut got = vec![0u8; want.len()];
        v.read(0, &mut got).map_err(|e| format!("version {n} (latest {latest}): read: {e}"))?;
        if got != *want || v.size_bytes() as usize != want.len() {
            let first = got.iter().zip(want.iter()).position(|(a, b)| a != b);
            return Err(format!(
                "version {n} (latest {latest}) differs from what was committed: size {} want {}, first diff {first:?}, map {:?}",
                v.size_bytes(),
                want.len(),
                v.map
            ));
        }
    }
    if write_after && latest > 0 {
        let page = vec![b'Z'; 100];
        {
            let _w = log.lock_writer(T).unwrap();
            let base = log.prepare_write().map_err(|e| format!("prepare a write: {e}"))?;
            let mut txn = log.begin(base, 1 << 20);
            txn.write(&log, 8, &page).unwrap();
            log.commit(txn, Durability::Full).map_err(|e| format!("commit after recovery: {e}"))?;
        }
        drop(log);
        let log = Log::open(&p, OpenOptions { read_only: true, ..Default::default() })
            .map_err(|e| format!("reopen after a commit: {e}"))?;
        let v = log.latest();
        let mut want = run.images[latest].clone();
        want[8..108].copy_from_slice(&page);
        let mut got = vec![0u8; want.len()];
        v.read(0, &mut got).map_err(|e| format!("the commit after recovery: read: {e}"))?;
        if v.number as usize != latest + 1 || got != want {
            return Err(format!("the commit after recovery (version {}) did not read back", v.number));
        }
    }
    let _ = std::fs::remove_file(&p);
    Ok(())
}

#[test]
fn power_loss_at_every_write_of_a_checkpoint_opens_the_latest_durable_version() {
    let (seeds, per_point) = if long_mode() { (12, 20) } else { (2, 3) };
    let (mut points, mut images) = (0, 0);
    for seed in 0..seeds {
        let dir = Dir::new(&format!("ckpt-crash-{seed}"));
        let run = workload(&dir.0.join("w.db"), seed, 700);
        let n = run.disk.op_count();
        let mut rng = Rng::new(seed ^ 0x1dec5);
        let near = |k: usize| run.checkpoints.iter().any(|&w| k + 1 >= w && k <= w + 4);
        for &w in &run.checkpoints {
            if let Some(img) = torn_index_image(&run, w) {
                if let Err(e) = check_image(&run, &dir.0, w + 1, img, true) {
                    panic!("seed {seed}, the INDEX record's nodes of operation {w} lost: {e}");
                }
                images += 1;
            }
        }
        for k in (0..=n).filter(|&k| near(k) || k % 53 == 0) {
            let times = if near(k) { per_point } else { 1 };
            for i in 0..times {
                if let Err(e) = check(&run, &dir.0, k, &mut rng, i == 0) {
                    panic!("seed {seed}, power lost after operation {k} of {n}: {e}");
                }
                images += 1;
            }
            points += 1;
        }
    }
    eprintln!("{points} crash points, {images} images");
}
