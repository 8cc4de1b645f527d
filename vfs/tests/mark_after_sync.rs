//! After a group sync, the syncer writes a MARK only if nothing follows the
//! commit the sync covered (FORMAT.md, "MARK records"). When another
//! commit is already appended behind it, the syncer now sees so from the
//! shared words and leaves WRITER alone (`src/group.rs`, `mark_if_idle`):
//! finding it out under WRITER cost a try of the lock, a probe of the log
//! end, the unlock and a ring of the writer bell that woke a waiter for
//! nothing (issue 23). The last sync, with nothing behind, still writes its
//! MARK.
//!
//! Two `Log` handles on one file stand for two processes; the test holds
//! A's sync while B appends behind it and watches the writer bell in the
//! log's shared object: every release of WRITER through pagelog bumps it.

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::held_sync::HeldSync;
use common::shm_objects::{bytes_at, shm_dir};
use pagelog::{Durability, Log, OpenOptions};

fn writer_bell(p: &Path) -> u32 {
    u32::from_le_bytes(bytes_at(p, pagelog::shm::AT_WRITER_BELL))
}

fn append(log: &Log, fill: u8) -> pagelog::group::Pending {
    let _w = log.lock_writer(Duration::from_secs(10)).unwrap();
    let mut t = log.begin(log.prepare_write().unwrap(), 1 << 20);
    t.write(log, 0, &[fill; 4096]).unwrap();
    log.commit_appended(t, Durability::Full).unwrap().unwrap()
}

/// The 8 bytes at `at` of the file: zero where no record starts.
fn at(p: &Path, at: u64) -> [u8; 8] {
    let mut b = [0u8; 8];
    std::fs::File::open(p).unwrap().read_exact_at(&mut b, at).unwrap();
    b
}

#[test]
fn a_syncer_with_a_commit_behind_it_leaves_writer_alone_and_the_last_one_marks() {
    shm_dir();
    let d = std::env::temp_dir().join(format!("pagelog-mark-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("a.log");
    {
        let l = Log::open(&p, OpenOptions { create: true, ..Default::default() }).unwrap();
        let _w = l.lock_writer(Duration::from_secs(10)).unwrap();
        let mut t = l.begin(l.prepare_write().unwrap(), 1 << 20);
        t.write(&l, 0, &[1; 4096]).unwrap();
        assert_eq!(l.commit(t, Durability::Full).unwrap().unwrap().number, 1);
    }
    let io = HeldSync::open(&p);
    let a = Arc::new(Log::open_with_io(&p, OpenOptions::default(), io.clone()).unwrap());
    let b = Log::open(&p, OpenOptions::default()).unwrap();

    // A's commit syncs (held) after WRITER is released; B appends behind.
    let p2 = append(&a, 2);
    io.arm();
    let a2 = a.clone();
    let t = std::thread::spawn(move || a2.finish_commit(p2).unwrap());
    io.wait_inside();
    let p3 = append(&b, 3);
    let v3_end = b.refresh_latest().unwrap().end;

    let bell = writer_bell(&p);
    io.release();
    let v2 = t.join().unwrap();
    assert_eq!(v2.number, 2);
    assert_eq!(writer_bell(&p), bell, "A's syncer took and released WRITER though version 3 follows its sync");
    assert_ne!(at(&p, v2.end), [0; 8], "version 3's records follow version 2 directly (no MARK between)");

    // B's sync covers version 3, nothing follows it: its MARK is written.
    assert_eq!(b.finish_commit(p3).unwrap().number, 3);
    assert_ne!(writer_bell(&p), bell, "the last syncer took WRITER for its MARK");
    assert_ne!(at(&p, v3_end), [0; 8], "a MARK follows the last commit a sync covered");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&d);
}
