//! When a format-4 writer writes a checkpoint (`vfs/src/checkpoint.rs`):
//! every `commits_between(db pages)` commits (at most 2,048), and sooner —
//! once 512 commits follow the last one — at the first commit of a log
//! handle, so that a stream of processes that each open the log to commit
//! once (each open replays every commit since the checkpoint) replays at
//! most 512, while a long-lived writer keeps the longer interval.

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

/// (commits since its checkpoint, whether it is one).
fn since(v: &Version) -> (u64, bool) {
    match &v.map {
        Pages::Tree(t) => (t.commits(), t.checkpoint_offset() == v.commit_offset),
        Pages::Full(_) => panic!("a format-4 version reads a tree"),
    }
}

#[test]
fn a_handles_first_commit_checkpoints_after_512_commits_a_long_lived_writer_after_625() {
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
    // One long-lived writer: 600 commits, no checkpoint (625 would be due).
    for i in 0..600 {
        let v = commit(&long, 2 + i, 10 + (i % 200) as u8);
        assert_eq!(since(&v), (i as u64 + 1, false), "commit {i} of the long-lived writer");
    }
    // A handle that opens the log and commits once: a checkpoint, since
    // 600 ≥ 512 commits follow the last one.
    let once = Log::open(&path, OpenOptions::default()).unwrap();
    let v = commit(&once, 5000, 9);
    assert_eq!(since(&v), (0, true), "the first commit of a new handle after 600 commits");
    // Its second commit, and the long-lived writer's, follow the interval.
    assert_eq!(since(&commit(&once, 5001, 9)), (1, false));
    for i in 0..520 {
        assert_eq!(since(&commit(&long, 7000 + i, 3)), (i as u64 + 2, false), "long-lived commit {i}");
    }
    // A new handle's first commit after 522 < 625 commits: 522 ≥ 512, a
    // checkpoint; one after fewer than 512: none.
    let again = Log::open(&path, OpenOptions::default()).unwrap();
    assert_eq!(since(&commit(&again, 9000, 4)), (0, true));
    let third = Log::open(&path, OpenOptions::default()).unwrap();
    assert_eq!(since(&commit(&third, 9001, 4)), (1, false), "one commit since the checkpoint");
    drop((long, once, again, third));
    let fresh = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    assert!(fresh.verify().damage().is_none());
}
