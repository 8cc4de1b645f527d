//! What finding the pages that differ between two versions costs (issue 21,
//! item 5: diff proportional to the change, revert in constant time in the
//! database's size): on a format-4 database of 40,000 pages, the pages
//! differing between two adjacent versions are found with a handful of
//! reads, in a process that has read nothing of the tree before, where a
//! page-by-page comparison of the two maps reads every leaf of the tree;
//! and a revert to the previous version reads a handful too.
//!
//! Reads are counted by the kernel (`syscr` in /proc/self/io: read system
//! calls of this process), not by the code measured. One test in this
//! binary, so no other test's reads are counted.

mod common;

use std::time::Duration;

use common::Dir;
use pagelog::changed::{changed_pages, map_slot};
use pagelog::version::Pages;
use pagelog::{Durability, Log, OpenOptions, Version};

const PS: usize = 512;
const PAGES: usize = 40_000;
const T: Duration = Duration::from_secs(5);

/// Read system calls this process has made.
fn reads() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    let line = io.lines().find(|l| l.starts_with("syscr:")).unwrap();
    line["syscr:".len()..].trim().parse().unwrap()
}

/// One commit writing `data` at `at`, page by page when it is whole pages
/// (the first write of a page's size sets the log's).
fn write(log: &Log, at: usize, data: &[u8]) {
    let _w = log.lock_writer(T).unwrap();
    let base = log.prepare_write().unwrap();
    let mut txn = log.begin(base, 64 << 20);
    if data.len() % PS == 0 {
        for (i, page) in data.chunks(PS).enumerate() {
            txn.write(log, (at + i * PS) as u64, page).unwrap();
        }
    } else {
        txn.write(log, at as u64, data).unwrap();
    }
    log.commit(txn, Durability::Normal).unwrap();
}

#[test]
fn adjacent_versions_of_a_large_database_differ_at_a_few_reads_cost() {
    let dir = Dir::new("changed-cost");
    let path = dir.0.join("big.db");
    {
        let log = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
        let mut img = vec![0u8; PAGES * PS];
        for p in 0..PAGES {
            img[p * PS] = b'X';
            img[p * PS + 1..p * PS + 5].copy_from_slice(&(p as u32).to_le_bytes());
        }
        write(&log, 0, &img);
        // Commits to a few hot pages (two leaves of the tree), past the
        // next checkpoint (every 625 commits at this size).
        for i in 0..700usize {
            write(&log, (100 + i % 16) * PS + 100, &(i as u32 + 1).to_le_bytes());
        }
        log.sync_pending().unwrap();
    }
    let open = || Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let ckpt = |v: &Version| match &v.map {
        Pages::Tree(t) => t.checkpoint_offset(),
        Pages::Full(_) => panic!("a format-4 map is a tree"),
    };

    // Two adjacent versions on different checkpoints, then two on the
    // same one: one page differs.
    let log = open();
    let latest = log.latest().number;
    let at = (3..=latest).find(|&n| ckpt(&log.version(n).unwrap()) != ckpt(&log.version(n - 1).unwrap()));
    let at = at.expect("the commits wrote a checkpoint");
    let mut costs = Vec::new();
    for (x, y) in [(at - 1, at), (latest - 1, latest), (1, latest)] {
        let (a, b) = (log.version(x).unwrap(), log.version(y).unwrap());
        let before = reads();
        let c = changed_pages(&a, &b);
        costs.push((x, y, reads() - before, c.nodes_read, c.lookups));
        let want: Vec<u32> = if x == 1 { (101..=116).collect() } else { vec![101 + (y as u32 - 2) % 16] };
        assert_eq!(c.pages, want, "versions {x} and {y}");
    }

    // The page-by-page comparison, on a fresh open, for scale.
    let log = open();
    let (a, b) = (log.version(at - 1).unwrap(), log.version(at).unwrap());
    let before = reads();
    let n = (1..=PAGES as u32).filter(|&p| map_slot(&a, p).unwrap() != map_slot(&b, p).unwrap()).count();
    let brute = reads() - before;
    assert_eq!(n, 1);
    eprintln!("(versions, read syscalls, nodes walked, lookups): {costs:?}; page by page: {brute} reads");
    assert!(brute > 1_000, "the page-by-page comparison reads every leaf ({brute} reads)");
    for (x, y, r, nodes, lookups) in costs {
        assert!(
            r <= 40 && nodes <= 40 && lookups <= 100,
            "versions {x} and {y}: {r} reads, {nodes} nodes, {lookups} lookups"
        );
    }

    // A revert to the previous version: a few reads, not the database.
    drop(log);
    let log = Log::open(&path, OpenOptions::default()).unwrap();
    let before = reads();
    let v = log.revert(latest - 1, T).unwrap().expect("a version");
    let revert = reads() - before;
    eprintln!("read syscalls of a revert: {revert}");
    assert!(revert <= 60, "a revert to the previous version: {revert} reads");
    let mut got = vec![0u8; PS];
    // The last write to the hot page before the latest one: 16 commits back.
    let (hot, before) = (101 + (latest as u32 - 2) % 16, (latest as u32 - 17).to_le_bytes());
    v.read(((hot - 1) as usize * PS) as u64, &mut got).unwrap();
    assert_eq!(got[100..104], before[..], "the revert undid the last write");
}
