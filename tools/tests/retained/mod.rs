//! Format-4 logs with retention for the CLI tests: a log whose first
//! version is written through the pagelog library in format 4 (the only way
//! to create one while format 4 is in development), later versions through
//! SQLite, then a policy set and reclamation steps run until the boundary
//! has moved past 512 and the oldest versions are gone.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use pagelog::retention::Policy;
use pagelog::{Durability, Log, OpenOptions};

use crate::common::*;

pub const T: Duration = Duration::from_secs(10);

/// A stable hash of bytes (FNV-1a, 64 bits): what a version exported to.
pub fn hash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Creates a format-4 log at `path` whose version 1 is a plain database of
/// 1 KiB pages with table t of `rows` rows, then commits `updates` one-row
/// UPDATEs through SQLite (versions 2 ..= updates + 1).
pub fn make_format4_log(path: &Path, rows: u32, updates: u32) {
    make_format4_log_of(path, rows, "printf('row %d', i)", rows, updates);
}

/// [`make_format4_log`] with row i's value `value` (an SQL expression of
/// `i`), and the UPDATEs going round the first `hot` rows only.
pub fn make_format4_log_of(path: &Path, rows: u32, value: &str, hot: u32, updates: u32) {
    let plain = path.with_extension("plain");
    {
        let c = rusqlite::Connection::open(&plain).unwrap();
        c.execute_batch(&format!(
            "PRAGMA page_size=1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < {rows})
             INSERT INTO t SELECT i, {value} FROM n;"
        ))
        .unwrap();
    }
    let bytes = std::fs::read(&plain).unwrap();
    std::fs::remove_file(&plain).unwrap();
    {
        let log = Log::open(path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
        let _g = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        txn.write(&log, 0, &bytes).unwrap();
        log.commit(txn, Durability::Full).unwrap().unwrap();
    }
    let c = open(path);
    c.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
    for i in 0..updates {
        c.execute("UPDATE t SET v = printf('update %d of row %d', ?1, id) WHERE id = ?1 % ?2 + 1", [i, hot]).unwrap();
    }
    assert_eq!(version(&c), updates as u64 + 1);
}

/// The hash of every version of `db` (its database image, as it reads
/// through the pagelog library), by version number.
pub fn version_hashes(db: &Path) -> BTreeMap<u64, u64> {
    let log = Log::open(db, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let (oldest, latest) = (log.oldest_version().unwrap(), log.latest().number);
    (oldest..=latest)
        .map(|n| {
            let v = log.version(n).unwrap();
            let mut img = vec![0u8; v.size_bytes() as usize];
            assert_eq!(v.read(0, &mut img).unwrap(), img.len());
            (n, hash(&img))
        })
        .collect()
}

/// The log's boundary and oldest kept version, as a fresh open finds them.
pub fn kept(db: &Path) -> (u64, u64) {
    let log = Log::open(db, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let s = log.retention_state();
    (s.boundary, s.oldest_kept.unwrap_or(1))
}

/// Sets `policy` on `db` and runs reclamation steps of `step` bytes until
/// one frees nothing, then one more (which punches what the last freed).
/// Returns the oldest kept version.
pub fn reclaim(db: &Path, policy: &str, step: u64) -> u64 {
    let log = Log::open(db, OpenOptions::default()).unwrap();
    log.set_retention(Policy::parse(policy).unwrap(), T).unwrap();
    for _ in 0..10_000 {
        if log.reclaim(step, T).unwrap().freed == 0 {
            break;
        }
    }
    log.reclaim(step, T).unwrap();
    log.oldest_kept().expect("the steps moved the boundary")
}

/// Bytes on disk: `st_blocks` × 512.
pub fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}
