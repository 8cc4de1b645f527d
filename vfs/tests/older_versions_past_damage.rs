//! FORMAT.md step 5, "Any version N below the latest": an older version's
//! commit is found map commit to map commit, then on the path from its map
//! commit. A damaged commit in the middle of history hides only the
//! versions whose way or map it lies on: in its interval, those after it
//! (their maps cross it); never the ones before it, whichever end of the
//! interval they are nearer (the lookup's walk back from the interval's
//! end used to cross the damage and give up; tests/spec_reader/README.md,
//! D17).

mod common;

use std::time::Duration;

use common::Dir;
use pagelog::{Durability, Error, Log, OpenOptions};

const PS: usize = 4096;
const T: Duration = Duration::from_secs(5);

/// Page 1 at version `v`.
fn page(v: u64) -> Vec<u8> {
    let mut b = vec![0u8; PS];
    for (i, x) in b.iter_mut().enumerate() {
        *x = (v as usize * 7 + i) as u8;
    }
    b
}

#[test]
fn a_damaged_commit_hides_only_the_versions_whose_way_or_map_crosses_it() {
    let dir = Dir::new("older-versions-past-damage");
    let path = dir.0.join("h.db");
    let log = Log::open(&path, OpenOptions { create: true, ..Default::default() }).unwrap();
    for v in 1..=300u64 {
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        txn.write(&log, 0, &page(v)).unwrap();
        assert_eq!(log.commit(txn, Durability::Full).unwrap().expect("a version").number, v);
    }
    let history = log.history().unwrap();
    drop(log);
    // The interval that holds version 200: from its map commit to the next.
    let maps: Vec<u64> = history.iter().filter(|c| c.full_map).map(|c| c.version).collect();
    let damaged = 200u64;
    let start = *maps.iter().filter(|&&m| m < damaged).max().unwrap();
    let next = *maps.iter().find(|&&m| m > damaged).expect("a map commit after the damage");
    assert!(damaged - start > (next - 1) / 2, "the damage lies in the far half of its interval");
    // One byte of version 200's record header: its crc no longer checks out.
    let at = history.iter().find(|c| c.version == damaged).unwrap().offset;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at as usize + 20] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let log = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    assert_eq!(log.refresh().unwrap().number, 300);
    let mut buf = vec![0u8; PS];
    for n in 1..=300u64 {
        match log.version(n) {
            Ok(v) => {
                assert!(n < damaged || n >= next, "version {n} read, though its map crosses the damage at {at}");
                v.read(0, &mut buf).unwrap_or_else(|e| panic!("version {n}: {e}"));
                assert!(buf == page(n), "version {n}: wrong page");
            }
            Err(Error::Corrupt { offset, .. }) => {
                assert!((damaged..next).contains(&n), "version {n} (damage at {at} is after it): damaged at {offset}");
            }
            Err(e) => panic!("version {n}: {e}"),
        }
    }
}
