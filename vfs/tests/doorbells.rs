//! The doorbells of the shared object (`src/shm.rs`): a thread that waits
//! for WRITER in the busy handler's sleep (`src/sqlite/fair.rs`), or for a
//! sync another thread runs (`src/group.rs`), sleeps on a futex word that
//! the release rings, so it is woken by the release itself, not by its
//! next poll. The object counts the sleepers a ring woke (`FUTEX_WAKE`'s
//! answer: a sleeper the kernel took off the futex, not one whose sleep
//! timed out); these tests read those counters from the object, which lives
//! in a directory of this test's own (`PAGELOG_SHM_DIR`).
//!
//! * A writer blocked in the busy handler behind an open write transaction
//!   is woken by its COMMIT.
//! * Writers that appended while another's sync was held sleep until it
//!   ends and are woken by it (one of them then syncs for the rest).
//! * A release that rings nothing (WRITER held through a descriptor of the
//!   test's own, as by another program or a killed process) still lets the
//!   waiter in: its sleeps are bounded, the bell is news, not the truth.

mod common;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::held_sync::HeldSync;
use common::shm_objects::{bytes_at, shm_dir};
use rusqlite::{Connection, OpenFlags};

fn dir(name: &str) -> PathBuf {
    shm_dir();
    let d = std::env::temp_dir().join(format!("pagelog-bells-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn open(p: &Path) -> Connection {
    pagelog::register().unwrap();
    let c = Connection::open_with_flags_and_vfs(
        p,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        "pagelog",
    )
    .unwrap();
    c.busy_timeout(Duration::from_secs(20)).unwrap();
    c
}

/// The u64 at `at` in the shared object of the log at `p` (open now).
fn word(p: &Path, at: usize) -> u64 {
    u64::from_le_bytes(bytes_at(p, at))
}

fn writer_wakes(p: &Path) -> u64 {
    word(p, pagelog::shm::AT_WRITER_WAKES)
}

fn sync_wakes(p: &Path) -> u64 {
    word(p, pagelog::shm::AT_SYNC_WAKES)
}

fn make_table(p: &Path) -> Connection {
    let c = open(p);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER); INSERT INTO t VALUES (1, 0), (2, 0), (3, 0);")
        .unwrap();
    c
}

/// Waits until `f` holds, or fails after 20 s.
fn until(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(20), "never: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_writer_waiting_in_the_busy_handler_is_woken_by_the_commit_it_waits_for() {
    let d = dir("writer");
    let p = d.join("app.db");
    let holder = make_table(&p);
    let wakes0 = writer_wakes(&p);
    // Five rounds: a ring finds the waiter asleep unless it is, that very
    // microsecond, between two looks (each sleep lasts up to 1 ms).
    for round in 1..=5i64 {
        holder.execute_batch("BEGIN IMMEDIATE; UPDATE t SET v = v + 1 WHERE id = 1;").unwrap();
        let q = p.clone();
        let waiter = std::thread::spawn(move || {
            let c = open(&q);
            c.execute("UPDATE t SET v = v + 1 WHERE id = 2", []).unwrap();
        });
        // Its statement got BUSY and the busy handler's sleep waits now.
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "the waiter got WRITER while another connection held it");
        holder.execute_batch("COMMIT").unwrap();
        waiter.join().unwrap();
        let v: (i64, i64) = holder
            .query_row("SELECT (SELECT v FROM t WHERE id = 1), (SELECT v FROM t WHERE id = 2)", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(v, (round, round));
    }
    let woken = writer_wakes(&p) - wakes0;
    assert!(woken >= 1, "no release of WRITER woke its waiter in 5 rounds (all waited out their sleep)");
    eprintln!("writer bell: {woken} of 5 waiters woken by the release");
    drop(holder);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn commits_waiting_for_a_held_sync_are_woken_when_it_ends() {
    let d = dir("sync");
    let p = d.join("app.db");
    drop(make_table(&p));
    let io = HeldSync::open(&p);
    pagelog::registry::set_io_hook(&p, Some(io.clone()));
    let keep = open(&p); // keeps the log, and its object, open throughout
    let wakes0 = sync_wakes(&p);
    io.arm();
    let write = |id: i64| {
        let p = p.clone();
        std::thread::spawn(move || {
            let c = open(&p);
            c.execute("UPDATE t SET v = v + 1 WHERE id = ?1", [id]).unwrap();
        })
    };
    let first = write(1);
    io.wait_inside();
    let behind = [write(2), write(3)];
    let watcher = pagelog::Log::open(&p, pagelog::OpenOptions::default()).unwrap();
    let base = watcher.refresh().unwrap().number;
    until("the two writers appended behind the held sync", || watcher.refresh_latest().unwrap().number >= base + 2);
    // They now sleep on the sync bell (the held sync is this process's).
    std::thread::sleep(Duration::from_millis(50));
    assert!(behind.iter().all(|t| !t.is_finished()), "a commit returned before its sync");
    io.release();
    first.join().unwrap();
    for t in behind {
        t.join().unwrap();
    }
    let woken = sync_wakes(&p) - wakes0;
    assert!(woken >= 1, "the end of the held sync woke none of the two commits waiting for it");
    eprintln!("sync bell: {woken} sleepers woken ({} syncs)", io.syncs.load(Ordering::SeqCst));
    pagelog::registry::set_io_hook(&p, None);
    drop((keep, watcher));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_release_that_rings_no_bell_still_lets_the_waiter_in() {
    let d = dir("silent");
    let p = d.join("app.db");
    let c = make_table(&p);
    // WRITER held through a descriptor pagelog does not know: its release
    // (the descriptor closed, as when a process is killed) rings nothing.
    let other = std::fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
    // SAFETY: flock is a plain C struct; all-zero is a valid value for it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = pagelog::lock::WRITER as libc::off_t;
    fl.l_len = 1;
    // SAFETY: a valid descriptor and a live, initialised flock struct.
    assert_eq!(unsafe { libc::fcntl(other.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) }, 0);
    let q = p.clone();
    let waiter = std::thread::spawn(move || {
        let c = open(&q);
        c.execute("UPDATE t SET v = 7 WHERE id = 3", []).unwrap();
        Instant::now()
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(!waiter.is_finished(), "the waiter got WRITER while another description held it");
    let released = Instant::now();
    drop(other);
    let got = waiter.join().unwrap();
    // Bounded by the fallback (1 ms a sleep) plus scheduling; 5 s would
    // mean a hang broken only by the busy handler's own sleeps.
    assert!(got.duration_since(released) < Duration::from_secs(5), "the waiter hung after a silent release");
    let v: i64 = c.query_row("SELECT v FROM t WHERE id = 3", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 7);
    drop(c);
    let _ = std::fs::remove_dir_all(&d);
}
