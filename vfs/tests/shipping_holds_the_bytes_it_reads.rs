//! A shipper of a format-4 log (`pagelog replicate`) on a log whose policy
//! frees history while it reads: `Log::hold_shippable` keeps the bytes at
//! and after the boundary it returns from being punched until dropped
//! (reclamation steps still run and move the boundary), and a walk that
//! would start in the freed region says so instead of calling it damage.

mod common;

use std::time::Duration;

use common::{Dir, Rng};
use pagelog::retention::Policy;
use pagelog::{Boundary, Durability, Log, OpenOptions};

const PS: usize = 1024;
const PAGES: usize = 40;
const T: Duration = Duration::from_secs(5);

fn commit(log: &Log, rng: &mut Rng, first: bool) {
    let _w = log.lock_writer(T).unwrap();
    let base = log.prepare_write().unwrap();
    let mut txn = log.begin(base, 1 << 20);
    if first {
        let mut img = rng.bytes(PAGES * PS);
        for p in 0..PAGES {
            img[p * PS] = b'X'; // never an SQLite header
        }
        txn.write(log, 0, &img).unwrap();
    } else {
        let p = rng.below(PAGES as u64) as usize;
        let mut data = rng.bytes(PS);
        data[0] = b'X';
        txn.write(log, (p * PS) as u64, &data).unwrap();
    }
    log.commit(txn, Durability::Normal).unwrap().expect("a version");
}

/// Steps until one frees nothing, then one more (which punches what the
/// last one freed).
fn steps(log: &Log) {
    for _ in 0..50 {
        if log.reclaim(16 << 10, T).unwrap().freed == 0 {
            break;
        }
    }
    log.reclaim(16 << 10, T).unwrap();
}

#[test]
fn held_bytes_are_not_punched_and_a_walk_below_the_boundary_is_freed_not_damage() {
    let d = Dir::new("ship-hold");
    let path = d.0.join("app.db");
    let log = Log::open(&path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let mut rng = Rng::new(7);
    for i in 0..400 {
        commit(&log, &mut rng, i == 0);
    }
    log.set_retention(Policy::parse("5 versions").unwrap(), T).unwrap();
    steps(&log);
    let shipper = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let held = shipper.hold_shippable().unwrap();
    assert!(held.from > 512, "the steps moved the boundary");
    // Up to the latest commit (the writer pre-allocates past it).
    let end = shipper.latest().end as usize;
    let seen = std::fs::read(&path).unwrap()[..end].to_vec();

    // More commits and steps while the shipper holds its bytes: the
    // boundary moves past what it holds, but nothing it holds is punched.
    for _ in 0..300 {
        commit(&log, &mut rng, false);
    }
    steps(&log);
    let b = log.retention_state().boundary;
    assert!(b > held.from, "the steps went on: B {b}, held from {}", held.from);
    let now = std::fs::read(&path).unwrap();
    assert!(now[held.from as usize..end] == seen[held.from as usize..], "held bytes were punched");

    // A walk from the start meets the hole below B: 'freed', not damage.
    shipper.refresh().unwrap();
    let c = shipper.checked_commits(&Boundary::START, shipper.latest().number, u64::MAX).unwrap();
    assert_eq!((c.commits.len(), c.freed, c.damage.is_none()), (0, Some(b), true));

    // Let go: the next steps that free something punch up to the boundary.
    let from = held.from;
    drop(held);
    for _ in 0..300 {
        commit(&log, &mut rng, false);
    }
    steps(&log);
    let b = log.retention_state().boundary;
    let now = std::fs::read(&path).unwrap();
    let nz = now[512..b as usize].iter().position(|&x| x != 0).map(|i| i + 512);
    assert!(nz.is_none(), "punched up to B {b} once let go: a byte at {nz:?} is not (held from {from})");
}
