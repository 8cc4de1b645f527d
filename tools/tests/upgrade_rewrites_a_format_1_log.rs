//! `pagelog upgrade`: a log written by a format-1 build opens for reading,
//! refuses writes with a message naming the command, and after the upgrade
//! holds the same versions in format 2 and takes writes again.

mod common;

use std::time::Duration;

use common::{pagelog, TempDir};
use pagelog::{Durability, Error, Log, OpenOptions};

/// A format-1 log kept in the fuzz corpus: eight versions of 1 KiB pages.
fn format1_log() -> Vec<u8> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../vfs/tests/corpus/format1-base0-deltas.log");
    std::fs::read(p).expect("the kept format-1 log")
}

fn pages_of_every_version(log: &Log) -> Vec<Vec<Vec<u8>>> {
    let latest = log.refresh().unwrap().number;
    (1..=latest)
        .map(|n| {
            let v = log.version(n).unwrap();
            (1..=v.db_pages()).map(|p| v.page(p).unwrap().unwrap().to_vec()).collect()
        })
        .collect()
}

#[test]
fn a_format_1_log_is_read_refuses_writes_and_upgrade_keeps_every_version() {
    let dir = TempDir::new("upgrade");
    let db = dir.0.join("old.log");
    std::fs::write(&db, format1_log()).unwrap();

    let log = Log::open(&db, OpenOptions::default()).unwrap();
    assert_eq!(log.header().unwrap().unwrap().format, 1);
    let before = pages_of_every_version(&log);
    assert_eq!(before.len(), 8);
    let _w = log.lock_writer(Duration::from_secs(5)).unwrap();
    match log.prepare_write() {
        Err(Error::ReadOnly { reason, .. }) => assert!(reason.contains("pagelog upgrade"), "{reason}"),
        other => panic!("a write to a format-1 log must be refused, got {:?}", other.map(|v| v.number)),
    }
    drop(_w);
    drop(log);
    assert_eq!(std::fs::read(&db).unwrap(), format1_log(), "the refused write left the file as it was");

    let out = pagelog(["upgrade".as_ref(), db.as_os_str()]).ok();
    let want = format!("format 1 -> {}", pagelog::format::FORMAT_VERSION);
    assert!(out.stdout.contains(&want), "{}", out.stdout);
    let log = Log::open(&db, OpenOptions::default()).unwrap();
    assert_eq!(log.header().unwrap().unwrap().format, pagelog::format::FORMAT_VERSION);
    assert_eq!(pages_of_every_version(&log), before, "every version reads as before");
    assert!(!log.verify().damaged());

    let _w = log.lock_writer(Duration::from_secs(5)).unwrap();
    let base = log.prepare_write().expect("an upgraded log takes writes");
    let mut txn = log.begin(base, 1 << 20);
    txn.write(&log, 0, &[7u8; 1024]).unwrap();
    assert_eq!(log.commit(txn, Durability::Full).unwrap().unwrap().number, 9);
    drop(_w);
    drop(log);

    let again = pagelog(["upgrade".as_ref(), db.as_os_str()]).ok();
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
}
