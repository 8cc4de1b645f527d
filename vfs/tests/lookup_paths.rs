//! The leaf table (`vfs/src/leaves.rs`): a format-4 lookup that repeats
//! the path of an earlier one (same tree root, same control state) reads
//! the leaf that lookup reached without descending the tree. These tests
//! warm the table through one version, then read every page through
//! versions whose path differs — a new checkpoint's tree, a revert's, a
//! reclamation step's control state — in one process (one `Log`, whose
//! mappings share the table), alternating, and fail on a page read through
//! a leaf another path reached. (That a step's control state is part of the
//! path, damage at a relocated leaf's copy included, is tested in
//! `index.rs`, where a control state can be made by hand.)

mod common;

use std::time::Duration;

use common::Dir;
use pagelog::retention::Policy;
use pagelog::version::Pages;
use pagelog::{Durability, Error, Log, OpenOptions, Version};

const PS: usize = 4096;
const PAGES: u32 = 300;
const T: Duration = Duration::from_secs(5);

/// Page `p`'s bytes at generation `g`: every 64-byte run names both.
fn page(p: u32, g: u32) -> Vec<u8> {
    let mut b = vec![0u8; PS];
    for run in b.chunks_mut(64) {
        run[0] = b'X';
        run[1..5].copy_from_slice(&p.to_le_bytes());
        run[5..9].copy_from_slice(&g.to_le_bytes());
    }
    b
}

/// The generation of each page in each version.
struct Model {
    gens: Vec<Vec<u32>>,
}

impl Model {
    fn commit(&mut self, log: &Log, pages: &[u32]) -> std::sync::Arc<Version> {
        let mut gens = self.gens.last().cloned().unwrap_or_else(|| vec![0; PAGES as usize + 1]);
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        for &p in pages {
            gens[p as usize] += 1;
            txn.write(log, (p as u64 - 1) * PS as u64, &page(p, gens[p as usize])).unwrap();
        }
        let v = log.commit(txn, Durability::Normal).unwrap().expect("a version");
        assert_eq!(v.number as usize, self.gens.len() + 1);
        self.gens.push(gens);
        v
    }

    /// Every page of `v` through the lookups SQLite's reads make.
    fn check(&self, v: &Version, who: &str) {
        let gens = &self.gens[v.number as usize - 1];
        let mut got = vec![0u8; PS];
        for p in 1..=PAGES {
            v.read((p as u64 - 1) * PS as u64, &mut got).unwrap_or_else(|e| panic!("{who}: page {p}: {e}"));
            assert!(got == page(p, gens[p as usize]), "{who}: version {} page {p}", v.number);
        }
    }
}

fn tree_of(v: &Version) -> &pagelog::index::TreeMap {
    match &v.map {
        Pages::Tree(t) => t,
        Pages::Full(_) => panic!("a format-4 version reads a tree"),
    }
}

fn new_log(dir: &Dir) -> (Log, std::path::PathBuf, Model) {
    let path = dir.0.join("lookups.db");
    let log = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let mut m = Model { gens: Vec::new() };
    m.commit(&log, &(1..=PAGES).collect::<Vec<_>>());
    (log, path, m)
}

/// Commits one page a time (cycling through `pages`) until a checkpoint
/// is written; returns the checkpoint's version.
fn commit_to_a_checkpoint(log: &Log, m: &mut Model, pages: &[u32]) -> std::sync::Arc<Version> {
    let from = tree_of(&log.latest()).checkpoint_offset();
    for i in 0.. {
        let v = m.commit(log, &[pages[i % pages.len()]]);
        if tree_of(&v).checkpoint_offset() != from {
            assert_eq!(tree_of(&v).overlay_len(), 0, "a checkpoint reads its tree alone");
            return v;
        }
    }
    unreachable!()
}

#[test]
fn a_leaf_reached_through_one_checkpoints_tree_is_not_served_for_another_or_a_revert() {
    let dir = Dir::new("lookup-paths");
    let (log, _path, mut m) = new_log(&dir);
    let a = log.latest();
    m.check(&a, "the first checkpoint");
    // Every page changes, one a commit, until the next checkpoint: its tree
    // has a new leaf for every page, under a new root.
    let all: Vec<u32> = (1..=PAGES).collect();
    let b = commit_to_a_checkpoint(&log, &mut m, &all);
    assert_ne!(tree_of(&a).root(), tree_of(&b).root());
    for round in 0..2 {
        m.check(&b, &format!("round {round}: the second checkpoint, after the first"));
        m.check(&a, &format!("round {round}: the first checkpoint again"));
    }
    // A revert writes a checkpoint on the first one's tree (new paths to
    // page 1 only: it shares every other leaf), read between the others.
    let r = log.revert(a.number, T).unwrap().expect("a new version");
    assert_ne!(tree_of(&r).root(), tree_of(&a).root());
    let mut gens = m.gens[a.number as usize - 1].clone();
    gens[1] = m.gens.last().unwrap()[1]; // page 1 is compared past its counter below
    m.gens.push(gens);
    let mut got = vec![0u8; PS];
    for p in 2..=PAGES {
        for (v, who) in [(&r, "the revert"), (&b, "the second checkpoint"), (&r, "the revert again")] {
            v.read((p as u64 - 1) * PS as u64, &mut got).unwrap();
            let g = if v.number == b.number { m.gens[b.number as usize - 1][p as usize] } else { 1 };
            assert!(got == page(p, g), "{who}: page {p}");
        }
    }
    m.check(&b, "the second checkpoint after the revert");
}

#[test]
fn after_a_step_a_reader_warmed_before_it_reads_every_page_through_the_new_control_state() {
    let dir = Dir::new("lookup-step");
    let (log, path, mut m) = new_log(&dir);
    // Pages 1..=16 change, the rest never do: the later checkpoints share
    // the first one's leaves for them, which a step relocates when it frees
    // the first checkpoint, so the reader's lookups after it read those
    // leaves at their copies.
    let hot: Vec<u32> = (1..=16).collect();
    for _ in 0..3 {
        commit_to_a_checkpoint(&log, &mut m, &hot);
    }
    for i in 0..40 {
        m.commit(&log, &[hot[i % hot.len()]]);
    }
    log.sync_pending().unwrap();
    // A reader of its own (the step reads and writes the copies through
    // the writer's cache), warmed by every page before the step.
    let reader = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let v = reader.latest();
    m.check(&v, "before the step");
    log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
    while log.reclaim(64 << 10, T).unwrap().freed > 0 {}
    assert!(log.oldest_kept().is_some_and(|o| o > 1), "the step dropped the first versions");
    let after = reader.refresh().unwrap();
    assert_eq!(after.number, v.number);
    assert_eq!(tree_of(&after).root(), tree_of(&v).root(), "no commit since: the same tree, a new control state");
    assert!(matches!(reader.version(1), Err(Error::Reclaimed { .. })), "the reader sees the step");
    for round in 0..2 {
        m.check(&after, &format!("round {round}: after the step"));
    }
}
