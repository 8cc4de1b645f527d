//! A commit that a group sync covered but no record claims yet (the sync's
//! MARK could not be written: another writer held WRITER) is taken by a
//! reader elsewhere as a claimed one is: its frames are not re-read by the
//! refresh that finds it (issue 23: every process crc'd every other
//! writer's frames), and a frame damaged after the sync is damage when it
//! is read, never a write still in progress that ends the reader's view
//! before it (recovery.rs, `scan_forward`'s `synced`).
//!
//! The same holds for a commit still waiting for its sync once its write
//! returned (the shared `appended` word covers it): a reader that walks it
//! keeps it pending without re-reading its frames.
//!
//! Two `Log` handles on one file stand for two processes (each its own
//! open file description, locks and view); a third holds WRITER while the
//! sync runs so that no MARK follows the commit.

mod common;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::held_sync::HeldSync;
use pagelog::{Durability, Error, Log, OpenOptions};

#[test]
fn a_synced_commit_is_taken_as_claimed_and_its_damaged_frame_is_damage() {
    let d = std::env::temp_dir().join(format!("pagelog-synced-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("a.log");
    let writer = Log::open(&p, OpenOptions { create: true, ..Default::default() }).unwrap();
    {
        let _w = writer.lock_writer(Duration::from_secs(10)).unwrap();
        let mut t = writer.begin(writer.prepare_write().unwrap(), 1 << 20);
        t.write(&writer, 0, &[1; 4096]).unwrap();
        assert_eq!(writer.commit(t, Durability::Full).unwrap().unwrap().number, 1);
    }
    let reader = Log::open(&p, OpenOptions::default()).unwrap();
    assert_eq!(reader.refresh().unwrap().number, 1);

    // Version 2: appended under WRITER, then synced with WRITER held by
    // someone else, so the syncer writes no MARK after it.
    let pending = {
        let _w = writer.lock_writer(Duration::from_secs(10)).unwrap();
        let mut t = writer.begin(writer.prepare_write().unwrap(), 1 << 20);
        t.write(&writer, 0, &[2; 4096]).unwrap();
        writer.commit_appended(t, Durability::Full).unwrap().unwrap()
    };
    assert!(pending.waits(), "a FULL commit with the shared words waits for its group's sync");
    let holder = Log::open(&p, OpenOptions::default()).unwrap();
    let held = holder.lock_writer(Duration::from_secs(10)).unwrap();
    let v2 = writer.finish_commit(pending).unwrap();
    drop(held);
    assert_eq!(v2.number, 2);
    let slot = v2.map.get(1).unwrap();
    assert_eq!(slot.offset % 8, 0, "page 1 of version 2 is a page image");
    let mut mark = [0u8; 8];
    std::fs::File::open(&p).unwrap().read_exact_at(&mut mark, v2.end).unwrap();
    assert_eq!(mark, [0; 8], "no record (no MARK) follows version 2");

    // Damage its frame after the sync (what a disk may do to any durable
    // byte; reads of a claimed commit report it).
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(&[0xEE], slot.offset + 100).unwrap();
    (&f).flush().unwrap();

    let v = reader.refresh().unwrap();
    assert_eq!(v.number, 2, "a commit a sync covered is not taken for a write still in progress");
    match v.page(1) {
        Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, slot.offset),
        other => panic!("a damaged frame of a synced commit must read as damage, got {other:?}"),
    }
    drop((writer, reader, holder));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_commit_whose_write_returned_is_walked_without_its_frames_while_its_sync_runs() {
    let d = std::env::temp_dir().join(format!("pagelog-appended-{}", std::process::id()));
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
    let writer = std::sync::Arc::new(Log::open_with_io(&p, OpenOptions::default(), io.clone()).unwrap());
    let reader = Log::open(&p, OpenOptions::default()).unwrap();
    assert_eq!(reader.refresh().unwrap().number, 1);

    let pending = {
        let _w = writer.lock_writer(Duration::from_secs(10)).unwrap();
        let mut t = writer.begin(writer.prepare_write().unwrap(), 1 << 20);
        t.write(&*writer, 0, &[2; 4096]).unwrap();
        writer.commit_appended(t, Durability::Full).unwrap().unwrap()
    };
    let slot = writer.refresh_latest().unwrap().map.get(1).unwrap();
    assert_eq!(slot.offset % 8, 0, "page 1 of version 2 is a page image");
    io.arm();
    let w = writer.clone();
    let t = std::thread::spawn(move || w.finish_commit(pending).map(|v| v.number));
    io.wait_inside();
    // Its write returned, its sync runs: damage its frame now.
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().write_all_at(&[0xEE], slot.offset + 100).unwrap();
    assert_eq!(reader.refresh().unwrap().number, 1, "not visible before its sync");
    assert_eq!(reader.refresh_latest().unwrap().number, 2, "walked as pending, its frames not re-read");
    io.release();
    assert_eq!(t.join().unwrap().unwrap(), 2);
    let v = reader.refresh().unwrap();
    assert_eq!(v.number, 2);
    match v.page(1) {
        Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, slot.offset),
        other => panic!("a damaged frame of a commit whose write returned must read as damage, got {other:?}"),
    }
    drop((writer, reader));
    let _ = std::fs::remove_dir_all(&d);
}
