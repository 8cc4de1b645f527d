//! `verify` of a log whose boundary sits on a reclaimed checkpoint's commit
//! (format 4, in development; issue 20).
//!
//! A step frees up to the start of the commit before the oldest kept
//! version's checkpoint; that commit stays (the checkpoint names it), and
//! when it is a checkpoint itself (the log's first commit, a revert, a
//! VACUUM changing the page size) its tree's nodes, written before it, are
//! freed and not relocated: its version is not kept. `verify` read that
//! tree and called the log damaged ("an index-tree node at level 1
//! relocated by the CONTROL record at … found no copy in its straggler
//! table"), found by `retention_under_kill.rs` after its second kill; it
//! now counts such a checkpoint as reclaimed when its tree cannot be read.

use std::time::Duration;

use pagelog::retention::Policy;
use pagelog::{Durability, Log, OpenOptions};
use pagelog_e2e::TempDir;

const T: Duration = Duration::from_secs(5);

/// One transaction writing `pages` pages of `ps` bytes filled with `fill`.
fn commit(log: &Log, ps: usize, pages: usize, fill: u8) {
    let _g = log.lock_writer(T).unwrap();
    let base = log.prepare_write().unwrap();
    let mut txn = log.begin(base, 1 << 20);
    for p in 0..pages {
        let mut page = vec![fill; ps];
        page[0] = b'X';
        page[1] = p as u8;
        txn.write(log, (p * ps) as u64, &page).unwrap();
    }
    log.commit(txn, Durability::Normal).unwrap().expect("a version");
}

#[test]
fn verify_calls_a_reclaimed_checkpoint_at_the_boundary_freed_not_damaged() {
    let d = TempDir::new("retain-verify");
    let p = d.path("v.db");
    let log = Log::open(&p, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    commit(&log, 1024, 40, 1); // version 1: a checkpoint (the first commit)
    commit(&log, 4096, 10, 2); // version 2: another page size, another checkpoint
    for i in 0..6 {
        commit(&log, 4096, 1, 3 + i);
    }
    log.set_retention(Policy::parse("3 versions").unwrap(), T).unwrap();
    let mut freed = 0;
    loop {
        let s = log.reclaim(1 << 30, T).unwrap();
        freed += s.freed;
        if s.appended == 0 {
            break;
        }
    }
    assert!(freed > 0 && log.oldest_kept().is_some_and(|o| o > 2), "nothing was reclaimed: {freed}");
    let rep = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).unwrap().verify();
    assert!(!rep.damaged() && rep.error.is_none() && rep.recovery_error.is_none(), "{rep:?}");
    assert!(rep.items.iter().all(|i| i.problem.is_none()), "{rep:?}");
}
