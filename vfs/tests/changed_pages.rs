//! `pagelog::changed::changed_pages` (the pages whose map slots differ
//! between two versions, found by walking the two index trees together and
//! skipping shared subtrees) lists exactly what a page-by-page comparison
//! of the two maps lists, on random histories: formats 3 and 4, whole-page
//! writes, patches, truncations, growth past a tree's span (trees of
//! different depths), checkpoints, reverts, and reclamation steps under a
//! policy (nodes below the boundary read at their copies), through the
//! writer's log and a fresh open. The cost side is `changed_cost.rs`.

mod common;

use std::time::Duration;

use common::{Dir, Rng};
use pagelog::changed::{changed_pages, map_slot};
use pagelog::retention::Policy;
use pagelog::{Durability, Log, OpenOptions, Version};

const PS: usize = 1024;
const T: Duration = Duration::from_secs(5);

/// One random commit on a database of at most `max` pages.
fn commit(log: &Log, rng: &mut Rng, max: usize) {
    let _w = log.lock_writer(T).unwrap();
    let base = log.prepare_write().unwrap();
    let pages = base.db_pages() as usize;
    let spill = if rng.chance(1, 30) { 2048 } else { 1 << 20 };
    let mut txn = log.begin(base, spill);
    let r = rng.below(100);
    if pages == 0 {
        let mut img = vec![0u8; max / 2 * PS];
        for p in 0..max / 2 {
            img[p * PS] = b'X';
            img[p * PS + 1] = p as u8;
        }
        txn.write(log, 0, &img).unwrap();
    } else if r < 3 && pages > 20 {
        txn.truncate((10 + rng.below(pages as u64 - 10)) * PS as u64);
    } else if r < 8 && pages < max && rng.chance(1, 3) {
        // Sparse growth: only the new last page is written; the pages
        // between read as zeros (past a truncation: whatever the tree says).
        let add = 1 + rng.below((max - pages) as u64) as usize;
        let mut data = vec![0u8; PS];
        data[0] = b'X';
        txn.write(log, ((pages + add - 1) * PS) as u64, &data).unwrap();
    } else if r < 8 && pages < max {
        let add = 1 + rng.below((max - pages) as u64) as usize;
        let mut more = vec![0u8; add * PS];
        for p in 0..add {
            if rng.chance(1, 2) {
                more[p * PS] = b'X';
                more[p * PS + 2] = rng.next() as u8;
            }
        }
        txn.write(log, (pages * PS) as u64, &more).unwrap();
    } else if r < 50 {
        for _ in 0..1 + rng.below(4) {
            let p = rng.below(pages as u64) as usize;
            let mut data = rng.bytes(PS);
            data[0] = b'X';
            txn.write(log, (p * PS) as u64, &data).unwrap();
        }
    } else {
        let p = rng.below(pages as u64) as usize;
        let at = p * PS + 8 + rng.below(900) as usize;
        let n = 1 + rng.below(40) as usize;
        let mut data = rng.bytes(n);
        data[0] ^= 0x55;
        txn.write(log, at as u64, &data).unwrap();
    }
    log.commit(txn, Durability::Normal).unwrap();
}

/// The page-by-page comparison `changed_pages` replaces.
fn brute(a: &Version, b: &Version) -> Vec<u32> {
    let n = a.db_pages().max(b.db_pages());
    if a.page_size != b.page_size {
        return (1..=n).collect();
    }
    (1..=n).filter(|&p| !matches!((map_slot(a, p), map_slot(b, p)), (Ok(x), Ok(y)) if x == y)).collect()
}

/// Pairs compared whose trees have different depths (format 4).
static DEPTHS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn depth(v: &Version) -> Option<u8> {
    match &v.map {
        pagelog::version::Pages::Tree(t) => t.root().map(|r| r.depth),
        pagelog::version::Pages::Full(_) => None,
    }
}

/// Adjacent pairs near the end, and random pairs of kept versions.
fn check_pairs(log: &Log, rng: &mut Rng, who: &str) -> usize {
    let latest = log.latest().number;
    let oldest = log.oldest_kept().unwrap_or(1);
    let mut pairs: Vec<(u64, u64)> = (latest.saturating_sub(4).max(oldest)..latest).map(|n| (n, n + 1)).collect();
    for _ in 0..12 {
        let x = oldest + rng.below(latest - oldest + 1);
        let y = oldest + rng.below(latest - oldest + 1);
        pairs.push((x, y));
    }
    let mut differing = 0;
    for (x, y) in pairs {
        let (a, b) = (log.version(x).unwrap(), log.version(y).unwrap());
        if depth(&a) != depth(&b) {
            DEPTHS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let got = changed_pages(&a, &b).pages;
        let want = brute(&a, &b);
        assert_eq!(got, want, "{who}: versions {x} and {y}");
        assert_eq!(changed_pages(&b, &a).pages, want, "{who}: versions {y} and {x}");
        differing += want.len();
    }
    differing
}

fn history(format4: bool, seed: u64) {
    let dir = Dir::new(&format!("changed-{format4}-{seed}"));
    let path = dir.0.join("c.db");
    let log = Log::open(&path, OpenOptions { create: true, format4, ..Default::default() }).unwrap();
    let mut rng = Rng::new(seed);
    let mut differing = 0;
    for i in 0..700 {
        let latest = log.latest().number;
        let oldest = log.oldest_kept().unwrap_or(1);
        if rng.chance(1, 30) && latest > oldest + 1 {
            log.revert(oldest + rng.below(latest - oldest), T).unwrap();
        } else {
            commit(&log, &mut rng, 1400);
        }
        if format4 && i == 250 {
            log.set_retention(Policy::parse("80 versions").unwrap(), T).unwrap();
        }
        if format4 && i > 250 && i % 9 == 0 {
            log.reclaim([4 << 10, 64 << 10][rng.below(2) as usize], T).unwrap();
        }
        if i % 50 == 49 {
            differing += check_pairs(&log, &mut rng, "the writer's log");
        }
    }
    log.sync_pending().unwrap();
    let fresh = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    differing += check_pairs(&fresh, &mut rng, "a fresh open");
    assert!(differing > 0, "the pairs compared differ somewhere");
    if format4 {
        assert!(log.oldest_kept().is_some_and(|o| o > 1), "steps freed the oldest versions");
        assert!(depth(&log.latest()).is_some(), "the latest version has a tree");
    }
}

#[test]
fn format_4_agrees_with_the_page_by_page_comparison() {
    for seed in [1, 2] {
        history(true, seed);
    }
    let depths = DEPTHS.load(std::sync::atomic::Ordering::Relaxed);
    assert!(depths > 0, "some pairs compared trees of different depths");
}

#[test]
fn format_3_agrees_with_the_page_by_page_comparison() {
    history(false, 3);
}
