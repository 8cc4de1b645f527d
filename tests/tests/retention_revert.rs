//! A kept revert whose patch names a base the oldest kept version does not
//! reach (format 4, in development; issue 20).
//!
//! Found by `retention_under_kill.rs`'s writer (reverts to two versions
//! back under a policy of six): kept versions read a page as "a patch of
//! page 89 making crc …, found a page with crc …", and every later step
//! failed on it. A revert to `T` copies `T`'s entries; a patch among them
//! names `T`'s base image `X`. When a version between `T` and the revert
//! wrote the page whole (`Z`) and becomes the oldest kept, a step frees `X`
//! (the base tree holds `Vo`'s items, and `Z` needs no redirection), while
//! the revert, still kept, reads its patch against what the base tree
//! gives for the page, or the hole — silently wrong bytes in a process
//! that had read the patch before (it checks a patch's crc once), an error
//! in any other. A step pinned the boundary below a kept revert's entries
//! but not below the bases its patches name; it now does, unless the base
//! is the oldest kept version's own.

use std::time::Duration;

use pagelog::retention::Policy;
use pagelog::{Durability, Log, OpenOptions};
use pagelog_e2e::TempDir;

const PS: usize = 1024;
const PAGES: usize = 8;
const T: Duration = Duration::from_secs(5);

#[test]
fn a_kept_revert_reads_back_after_steps_free_its_patches_base() {
    let d = TempDir::new("retain-revert");
    let p = d.path("revert.db");
    let log = Log::open(&p, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let mut images: Vec<Vec<u8>> = vec![Vec::new()];
    // Writes `data` at `at` in one transaction, page by page (the first
    // write of a log sets its page size).
    fn write(images: &mut Vec<Vec<u8>>, log: &Log, at: usize, data: &[u8]) {
        let _g = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        if data.len() >= PS {
            for (i, c) in data.chunks(PS).enumerate() {
                txn.write(log, (at + i * PS) as u64, c).unwrap();
            }
        } else {
            txn.write(log, at as u64, data).unwrap();
        }
        let v = log.commit(txn, Durability::Normal).unwrap().expect("a version");
        let mut img = images.last().unwrap().clone();
        if img.len() < at + data.len() {
            img.resize(at + data.len(), 0);
        }
        img[at..at + data.len()].copy_from_slice(data);
        assert_eq!(v.number as usize, images.len());
        images.push(img);
    }
    // Version 1: every page whole (page 5's image is X).
    let mut first = vec![b'X'; PAGES * PS];
    for (i, c) in first.chunks_mut(PS).enumerate() {
        c[1] = i as u8;
    }
    write(&mut images, &log, 0, &first);
    // Small writes to page 5: patches, each naming X; past a second full
    // map (every 256 commits), so that a step may free version 1's bytes.
    for i in 0..300u32 {
        write(&mut images, &log, 4 * PS + 100 + (i as usize % 50), &i.to_le_bytes());
    }
    let t = images.len() as u64 - 1; // T: page 5 is a patch on X
                                     // Page 5 whole (Z), then another commit, then the revert to T.
    let z: Vec<u8> = (0..PS).map(|i| (i * 7 % 251) as u8 | 1).collect();
    write(&mut images, &log, 4 * PS, &z);
    write(&mut images, &log, 0, b"XY");
    let r = log.revert(t, T).unwrap().expect("the revert made a version");
    // What the revert reads before any step (T's pages; page 1's change
    // counter is the revert's own).
    let mut reverted = vec![0u8; r.size_bytes() as usize];
    r.read(0, &mut reverted).unwrap();
    assert!(reverted[PS..] == images[t as usize][PS..], "the revert reads other pages than version {t}");
    images.push(reverted);
    assert_eq!(r.number as usize, images.len() - 1);
    // Keep the revert and the version before it (which wrote Z), then step.
    log.set_retention(Policy::parse("2 versions").unwrap(), T).unwrap();
    while log.reclaim(1 << 30, T).unwrap().appended > 0 {}
    let fresh = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let oldest = fresh.oldest_kept().unwrap_or(1);
    for n in oldest..=r.number {
        for (who, l) in [("the writer", &log), ("a fresh open", &fresh)] {
            let v = l.version(n).unwrap();
            let mut got = vec![0u8; images[n as usize].len()];
            v.read(0, &mut got).unwrap_or_else(|e| panic!("{who}: version {n} (kept from {oldest}): {e}"));
            let want = &images[n as usize];
            let first = got.iter().zip(want.iter()).position(|(a, b)| a != b);
            assert!(
                got == *want,
                "{who}: version {n} differs from what was committed (first at {first:?}, lens {} {})",
                got.len(),
                want.len()
            );
        }
    }
    // Committing and stepping go on once the revert leaves the policy.
    for i in 0..300u32 {
        write(&mut images, &log, 2 * PS + 100, &i.to_le_bytes());
    }
    while log.reclaim(1 << 30, T).unwrap().appended > 0 {}
    let oldest = log.oldest_kept().expect("steps ran");
    assert!(oldest > r.number, "the revert still holds the boundary: oldest kept {oldest}");
    let v = log.version(log.latest().number).unwrap();
    let mut got = vec![0u8; v.size_bytes() as usize];
    v.read(0, &mut got).unwrap();
    assert!(got == *images.last().unwrap());
}
