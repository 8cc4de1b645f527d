//! When a format-4 writer writes a checkpoint (`vfs/src/checkpoint.rs`):
//! every `commits_between(db pages)` commits (at most 2,048), whoever
//! commits. A stream of processes that each open the log to commit once
//! (each open replays every commit since the newest map commit) used to
//! checkpoint at a handle's first commit once 512 commits followed the last
//! checkpoint; summaries (every 256th commit after the newest map commit,
//! FORMAT.md "Summary commits") now keep that replay below 256, so such a
//! handle's first commit is a checkpoint only when 512 commits follow the
//! newest map commit, which summaries never let happen.

mod common;

use std::time::Duration;

use common::Dir;
use pagelog::version::Pages;
use pagelog::{Durability, Log, OpenOptions, Version};

const PS: usize = 512;
/// commits_between(40,000) = 625: more than 512.
const PAGES: usize = 40_000;
const T: Duration = Duration::from_secs(5);

fn commit(log: &Log, pgno: usize, byte: u8) -> std::sync::Arc<Version> {
    let _w = log.lock_writer(T).unwrap();
    let base = log.prepare_write().unwrap();
    let mut txn = log.begin(base, 1 << 20);
    txn.write(log, ((pgno - 1) * PS) as u64, &[byte; PS]).unwrap();
    log.commit(txn, Durability::Normal).unwrap().expect("a version")
}

/// (commits since its checkpoint, whether it is one, commits since its
/// newest map commit).
fn since(v: &Version) -> (u64, bool, u64) {
    match &v.map {
        Pages::Tree(t) => (t.commits(), t.checkpoint_offset() == v.commit_offset, t.map_commit().1),
        Pages::Full(_) => panic!("a format-4 version reads a tree"),
    }
}

#[test]
fn one_commit_handles_and_a_long_lived_writer_checkpoint_every_625_commits_and_summaries_bound_the_walk() {
    let dir = Dir::new("ckpt-first");
    let path = dir.0.join("p.db");
    let long = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    {
        let _w = long.lock_writer(T).unwrap();
        let base = long.prepare_write().unwrap();
        let mut txn = long.begin(base, 1 << 20);
        txn.write(&long, 0, &[1u8; PS]).unwrap(); // page size 512
        txn.write(&long, PS as u64, &vec![2u8; (PAGES - 1) * PS]).unwrap();
        long.commit(txn, Durability::Normal).unwrap().expect("version 1");
    }
    // One long-lived writer: 600 commits, no checkpoint (625 would be due),
    // summaries at 256 and 512.
    for i in 0..600u64 {
        let v = commit(&long, 2 + i as usize, 10 + (i % 200) as u8);
        assert_eq!(since(&v), (i + 1, false, (i + 1) % 256), "commit {i} of the long-lived writer");
    }
    // Handles that open the log and commit once, 600 commits after the
    // checkpoint (88 after the summary): no checkpoint (it was one before
    // summaries: 600 >= 512), until the interval's end.
    for k in 0..30u64 {
        let once = Log::open(&path, OpenOptions::default()).unwrap();
        let walked = match &once.latest().map {
            Pages::Tree(t) => t.map_commit().1,
            Pages::Full(_) => panic!("a format-4 version reads a tree"),
        };
        assert!(walked < 256, "the open walked {walked} commits after its map commit");
        let v = commit(&once, 5000 + k as usize, 9);
        let n = 601 + k;
        let want = if n >= 625 { (n - 625, n == 625, n - 625) } else { (n, false, n - 512) };
        assert_eq!(since(&v), want, "the first commit of a new handle, {n} commits after the checkpoint");
    }
    drop(long);
    let fresh = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    assert!(fresh.verify().damage().is_none());
}
