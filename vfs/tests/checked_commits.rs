//! `Log::checked_commits`: the commit boundaries a replica may be cut at.
//! Every prefix it returns is a valid log of that version; it never passes
//! the version it is told is durable; damage ends it, named.

use std::time::Duration;

use pagelog::{Boundary, Durability, Log, OpenOptions};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pagelog-checked-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d.join("a.log")
}

/// One commit writing `n` pages filled with `fill`; a small spill limit
/// makes larger ones spill.
fn commit(log: &Log, n: u64, fill: u8, d: Durability) -> u64 {
    let _w = log.lock_writer(Duration::from_secs(1)).unwrap();
    let base = log.prepare_write().unwrap();
    let mut t = log.begin(base, 64 << 10);
    for p in 0..n {
        t.write(log, p * 4096, &[fill.wrapping_add(p as u8); 4096]).unwrap();
    }
    log.commit(t, d).unwrap().unwrap().number
}

#[test]
fn every_boundary_is_a_valid_log_of_its_version_and_segments_chain() {
    let p = tmp("chain");
    let log = Log::open(&p, OpenOptions { create: true, ..Default::default() }).unwrap();
    for i in 0..12u8 {
        // Every fourth commit is large enough to spill.
        let n = if i % 4 == 3 { 40 } else { 2 };
        commit(&log, n, i, Durability::Full);
    }
    assert_eq!(log.durable_version().unwrap(), 12);
    let all = log.checked_commits(&Boundary::START, 12, u64::MAX).unwrap();
    assert!(all.damage.is_none());
    assert_eq!(all.commits.iter().map(|b| b.version).collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>());
    let bytes = std::fs::read(&p).unwrap();
    for b in &all.commits {
        let q = p.with_file_name(format!("prefix-{}", b.version));
        std::fs::write(&q, &bytes[..b.end as usize]).unwrap();
        let l = Log::open(&q, OpenOptions { read_only: true, ..Default::default() }).unwrap();
        assert_eq!(l.latest().number, b.version);
        assert!(!l.verify().damaged(), "prefix of version {}", b.version);
        assert_eq!(log.boundary_at(b.commit_offset).unwrap(), Some(*b));
    }
    // One commit per piece with max_bytes = 1, each piece starting where
    // the last ended.
    let mut at = Boundary::START;
    for v in 1..=12 {
        let c = log.checked_commits(&at, 12, 1).unwrap();
        assert_eq!(c.commits.len(), 1);
        assert_eq!(c.commits[0].version, v);
        at = c.commits[0];
    }
    assert!(log.checked_commits(&at, 12, 1).unwrap().commits.is_empty());
    // Never past `upto`.
    assert_eq!(log.checked_commits(&Boundary::START, 7, u64::MAX).unwrap().commits.last().unwrap().version, 7);
}

#[test]
fn unsynced_commits_are_not_durable_until_synced() {
    let p = tmp("normal");
    let log = Log::open(&p, OpenOptions { create: true, ..Default::default() }).unwrap();
    commit(&log, 2, 1, Durability::Full);
    commit(&log, 2, 2, Durability::Normal);
    commit(&log, 2, 3, Durability::Normal);
    let other = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    assert_eq!(other.latest().number, 3);
    assert_eq!(other.durable_version().unwrap(), 1);
}

#[test]
fn a_damaged_frame_ends_the_walk_at_the_commit_before_it() {
    let p = tmp("damage");
    let log = Log::open(&p, OpenOptions { create: true, ..Default::default() }).unwrap();
    for i in 0..8u8 {
        commit(&log, 3, i, Durability::Full);
    }
    let all = log.checked_commits(&Boundary::START, 8, u64::MAX).unwrap();
    drop(log);
    // The last byte of version 5's last page image, just before its trailer.
    let at = all.commits[4].end - 17;
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[at as usize] ^= 1;
    std::fs::write(&p, &bytes).unwrap();
    let log = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let c = log.checked_commits(&Boundary::START, 8, u64::MAX).unwrap();
    assert_eq!(c.commits.last().unwrap().version, 4);
    match c.damage {
        Some(pagelog::Error::Corrupt { offset, .. }) => {
            assert!(offset > all.commits[3].end && offset <= at, "damage named at {offset}, byte {at}")
        }
        other => panic!("expected damage, got {other:?}"),
    }
}
