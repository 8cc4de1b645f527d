//! A reader elsewhere that walked several commits still being synced keeps
//! all but the last only as what it read of them (`group.rs`, `Pend`), and
//! makes a version of one when a sync makes it the newest visible: that
//! version must read exactly as its commit wrote it.
//!
//! Three `Log` handles on one file stand for three processes (each its own
//! open file description, locks and view): writer A, whose sync the test
//! holds, writer B, who appends behind it, and the reader.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::held_sync::HeldSync;
use pagelog::{Durability, Log, OpenOptions};

fn append(log: &Log, page: u32, fill: u8) -> pagelog::group::Pending {
    let _w = log.lock_writer(Duration::from_secs(10)).unwrap();
    let mut t = log.begin(log.prepare_write().unwrap(), 1 << 20);
    t.write(log, (page as u64 - 1) * 4096, &[fill; 4096]).unwrap();
    log.commit_appended(t, Durability::Full).unwrap().unwrap()
}

#[test]
fn a_pending_commit_the_sync_stops_at_reads_as_written() {
    let d = std::env::temp_dir().join(format!("pagelog-pending-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("a.log");
    {
        let l = Log::open(&p, OpenOptions { create: true, ..Default::default() }).unwrap();
        let _w = l.lock_writer(Duration::from_secs(10)).unwrap();
        let mut t = l.begin(l.prepare_write().unwrap(), 1 << 20);
        t.write(&l, 0, &[1; 3 * 4096]).unwrap();
        assert_eq!(l.commit(t, Durability::Full).unwrap().unwrap().number, 1);
    }
    let io = HeldSync::open(&p);
    let a = Arc::new(Log::open_with_io(&p, OpenOptions::default(), io.clone()).unwrap());
    let b = Log::open(&p, OpenOptions::default()).unwrap();
    let reader = Log::open(&p, OpenOptions::default()).unwrap();
    assert_eq!(reader.refresh().unwrap().number, 1);

    // Version 2 (page 2) by A, whose sync is held; version 3 (page 3) by B
    // behind it, after A's syncer read how far to sync.
    let p2 = append(&a, 2, 2);
    io.arm();
    let a2 = a.clone();
    let t = std::thread::spawn(move || a2.finish_commit(p2).unwrap().number);
    io.wait_inside();
    let p3 = append(&b, 3, 3);

    // The reader walks both, sees neither.
    assert_eq!(reader.refresh().unwrap().number, 1);
    // A's sync returns: version 2, not 3, is durable and visible.
    io.release();
    assert_eq!(t.join().unwrap(), 2);
    let v = reader.refresh().unwrap();
    assert_eq!(v.number, 2, "the sync covered version 2 only");
    // The fill byte of a page (one byte repeated), so a failure prints one byte.
    let page = |v: &pagelog::Version, n: u32| {
        let b = v.page(n).unwrap().unwrap();
        assert!(b.iter().all(|&x| x == b[0]), "page {n} of version {} is one fill", v.number);
        b[0]
    };
    assert_eq!(page(&v, 1), 1);
    assert_eq!(page(&v, 2), 2);
    assert_eq!(page(&v, 3), 1, "version 2 does not hold version 3's page");
    assert_eq!(v.end, reader.version(2).unwrap().end);

    // B's own sync: version 3.
    assert_eq!(b.finish_commit(p3).unwrap().number, 3);
    let v3 = reader.refresh().unwrap();
    assert_eq!(v3.number, 3);
    assert_eq!((page(&v3, 2), page(&v3, 3)), (2, 3));
    // The version made for the reader's readers is still whole.
    assert_eq!(page(&v, 3), 1);
    drop((a, b, reader));
    let _ = std::fs::remove_dir_all(&d);
}
