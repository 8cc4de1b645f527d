//! Under `Durability::Full` no other connection may see a version before
//! the sync that makes it durable has returned (stock WAL never shows a
//! FULL commit before its sync). Two `Log` handles on one file stand for
//! two processes: each has its own open file description, its own locks
//! and its own view. The writer's log file holds its sync until the test
//! lets it go, so the reader looks exactly while the sync runs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::held_sync::HeldSync;
use pagelog::{Durability, Log, OpenOptions};

fn commit_page(log: &Log, fill: u8) -> u64 {
    let _w = log.lock_writer(Duration::from_secs(10)).unwrap();
    let base = log.prepare_write().unwrap();
    let mut t = log.begin(base, 1 << 20);
    t.write(log, 0, &[fill; 4096]).unwrap();
    log.commit(t, Durability::Full).unwrap().unwrap().number
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pagelog-visible-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_reader_elsewhere_never_sees_a_full_commit_while_its_sync_runs() {
    let d = dir("reader");
    let p = d.join("a.log");
    // Version 1, synced normally.
    drop(Log::open(&p, OpenOptions { create: true, ..Default::default() }).unwrap());
    let io = HeldSync::open(&p);
    let writer = Arc::new(Log::open_with_io(&p, OpenOptions::default(), io.clone()).unwrap());
    assert_eq!(commit_page(&writer, 1), 1);
    let reader = Log::open(&p, OpenOptions::default()).unwrap();
    assert_eq!(reader.refresh().unwrap().number, 1);

    io.arm();
    let w = writer.clone();
    let t = std::thread::spawn(move || commit_page(&w, 2));
    io.wait_inside();
    // The commit record of version 2 is in the file; its sync has not
    // returned. Look several times, as a reader's transactions would.
    for _ in 0..3 {
        let v = reader.refresh().unwrap();
        assert_eq!(v.number, 1, "a reader saw version {} while its sync was still running", v.number);
        std::thread::sleep(Duration::from_millis(5));
    }
    io.release();
    assert_eq!(t.join().unwrap(), 2);
    // Returned: durable, so every reader sees it at its next transaction.
    let v = reader.refresh().unwrap();
    assert_eq!(v.number, 2);
    assert_eq!(&v.page(1).unwrap().unwrap()[..], &[2u8; 4096][..]);
    drop((writer, reader));
    let _ = std::fs::remove_dir_all(&d);
}
