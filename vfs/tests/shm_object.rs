//! The shared object of a log (`src/shm.rs`) when it was left behind by a
//! killed process, or deleted while in use. All objects of this test live
//! in a directory of its own (`PAGELOG_SHM_DIR`), so the test can find,
//! forge and delete them.
//!
//! * A leaked object is never trusted: the first process to use the log
//!   again is alone (nobody holds the DMS lock) and resets the words from
//!   the log's end. Here the leaked words claim everything visible; a FULL
//!   commit held in its sync must still be invisible to a reader.
//! * A deleted object: the processes that had it keep theirs; one that
//!   opens the log meanwhile does without (its own commits sync under
//!   WRITER), sees every commit that returned, and once the old users have
//!   closed, the next one makes a new object.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::held_sync::HeldSync;
use common::shm_objects::{objects, shm_dir};
use pagelog::{Durability, Log, OpenOptions};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pagelog-shmobj-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn commit_page(log: &Log, fill: u8) -> u64 {
    let _w = log.lock_writer(Duration::from_secs(10)).unwrap();
    let base = log.prepare_write().unwrap();
    let mut t = log.begin(base, 1 << 20);
    t.write(log, 0, &[fill; 4096]).unwrap();
    log.commit(t, Durability::Full).unwrap().unwrap().number
}

#[test]
fn a_leaked_object_claiming_everything_visible_is_reset_by_the_next_first_user() {
    shm_dir();
    let d = dir("leak");
    let p = d.join("a.log");
    {
        let log = Log::open(&p, OpenOptions { create: true, ..Default::default() }).unwrap();
        commit_page(&log, 1);
        commit_page(&log, 2);
        assert_eq!(objects(&p).len(), 1, "the log's object exists while it is open");
    }
    let objs = objects(&p);
    assert!(objs.is_empty(), "the last user removes the object: {objs:?}");
    // A process killed with the log open leaves its object: forge one whose
    // words say that everything up to 1 TiB is durable and visible.
    let name = {
        let log = Log::open(&p, OpenOptions::default()).unwrap();
        let name = objects(&p).pop().unwrap();
        drop(log);
        name
    };
    let mut forged = vec![0u8; 4096];
    forged[..8].copy_from_slice(b"PLGSHM01");
    for at in [8, 16, 24] {
        forged[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    }
    std::fs::write(&name, &forged).unwrap();

    let io = HeldSync::open(&p);
    let writer = Arc::new(Log::open_with_io(&p, OpenOptions::default(), io.clone()).unwrap());
    let reader = Log::open(&p, OpenOptions::default()).unwrap();
    assert_eq!(reader.refresh().unwrap().number, 2);
    io.arm();
    let w = writer.clone();
    let t = std::thread::spawn(move || commit_page(&w, 3));
    io.wait_inside();
    assert_eq!(reader.refresh().unwrap().number, 2, "the leaked words were trusted: a commit showed before its sync");
    io.release();
    assert_eq!(t.join().unwrap(), 3);
    assert_eq!(reader.refresh().unwrap().number, 3);
    drop((writer, reader));
    assert!(objects(&p).is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_object_deleted_while_in_use_leaves_newcomers_without_it_until_the_old_users_close() {
    shm_dir();
    let d = dir("deleted");
    let p = d.join("a.log");
    let old = Log::open(&p, OpenOptions { create: true, ..Default::default() }).unwrap();
    commit_page(&old, 1);
    commit_page(&old, 2); // attached by now
    let objs = objects(&p);
    assert_eq!(objs.len(), 1);
    std::fs::remove_file(&objs[0]).unwrap();

    // A newcomer: makes a new object, finds others on the log, does without.
    let new = Log::open(&p, OpenOptions::default()).unwrap();
    assert_eq!(new.refresh().unwrap().number, 2);
    assert_eq!(commit_page(&old, 3), 3);
    assert_eq!(new.refresh().unwrap().number, 3, "a commit that returned is seen");
    assert_eq!(commit_page(&new, 4), 4);
    assert_eq!(new.refresh().unwrap().number, 4);
    assert_eq!(commit_page(&old, 5), 5);
    assert_eq!(old.refresh().unwrap().number, 5);
    assert_eq!(new.refresh().unwrap().number, 5);
    drop((old, new));
    // Everyone closed: the next first user makes (or resets) an object.
    let again = Log::open(&p, OpenOptions::default()).unwrap();
    assert_eq!(again.refresh().unwrap().number, 5);
    assert_eq!(objects(&p).len(), 1);
    assert_eq!(commit_page(&again, 6), 6);
    assert_eq!(&again.latest().page(1).unwrap().unwrap()[..], &[6u8; 4096][..]);
    drop(again);
    let _ = std::fs::remove_dir_all(&d);
}

/// Format 4 has no object (`group.rs`, `attach_shm`: its retention steps
/// sync under WRITER): so nothing that reads the shared words (the refresh
/// that takes commits below `synced` or `appended` unchecked, the lazy
/// pending versions, the MARK skip, the probe skip) runs on a format-4
/// log. R12 (tests/RELIABILITY.md), a format-4 failure bisected to those
/// cuts, cannot come from them while this holds.
#[test]
fn a_format4_log_under_a_policy_never_gets_an_object() {
    shm_dir();
    let d = dir("format4");
    let p = d.join("a.log");
    let a = Log::open(&p, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    commit_page(&a, 1);
    a.set_retention(pagelog::retention::Policy::parse("2 versions").unwrap(), Duration::from_secs(10)).unwrap();
    let b = Log::open(&p, OpenOptions::default()).unwrap();
    for i in 2..8u8 {
        let w = if i % 2 == 0 { &a } else { &b };
        assert_eq!(commit_page(w, i), i as u64);
        assert_eq!(a.refresh().unwrap().number, i as u64);
        assert_eq!(b.refresh().unwrap().number, i as u64);
    }
    let objs = objects(&p);
    assert!(objs.is_empty(), "a format-4 log has a shared object: {objs:?}");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&d);
}
