//! Group commit through SQLite (`src/group.rs`): while one connection's
//! FULL commit waits in its sync, other writers append behind it (WRITER
//! was released before the sync), one later sync covers all of them, and
//! no reader sees any of them before a sync covered it.
//!
//! The log's I/O goes through [`HeldSync`] (the VFS's test hook), whose
//! first sync after `arm` waits until the test releases it. A second view
//! of the file, `Log::open` of its own (another open file description and
//! state, as another process has), watches what is in the file.

mod common;

use std::time::{Duration, Instant};

use common::held_sync::HeldSync;
use rusqlite::{Connection, OpenFlags};

fn open(p: &std::path::Path) -> Connection {
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

fn values(c: &Connection) -> Vec<String> {
    let mut st = c.prepare("SELECT v FROM t ORDER BY id").unwrap();
    st.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
}

#[test]
fn writers_append_behind_a_running_sync_and_one_later_sync_covers_them_all() {
    let d = std::env::temp_dir().join(format!("pagelog-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("app.db");
    {
        let c = open(&p);
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1,'-'),(2,'-'),(3,'-');",
        )
        .unwrap();
    }
    let io = HeldSync::open(&p);
    pagelog::registry::set_io_hook(&p, Some(io.clone()));
    let reader = open(&p);
    let watcher = pagelog::Log::open(&p, pagelog::OpenOptions::default()).unwrap();
    let base = watcher.refresh().unwrap().number;
    let before = values(&reader);
    assert_eq!(before, ["-", "-", "-"]);

    io.arm();
    let syncs0 = io.syncs.load(std::sync::atomic::Ordering::SeqCst);
    let write = |id: i64, v: &'static str| {
        let p = p.clone();
        std::thread::spawn(move || {
            let c = open(&p);
            c.execute("UPDATE t SET v = ?2 WHERE id = ?1", rusqlite::params![id, v]).unwrap();
        })
    };
    let a = write(1, "a");
    io.wait_inside();
    let (b, c) = (write(2, "b"), write(3, "c"));
    // B and C append while A's sync is held: the file's real end moves on.
    let t0 = Instant::now();
    while watcher.refresh_latest().unwrap().number < base + 3 {
        assert!(t0.elapsed() < Duration::from_secs(20), "writers could not append while a sync ran");
        std::thread::sleep(Duration::from_millis(2));
    }
    // Nobody sees any of them: not this process's reader, not the watcher.
    assert_eq!(values(&reader), before, "a reader saw a commit whose sync had not returned");
    assert_eq!(watcher.refresh().unwrap().number, base);
    assert!(!a.is_finished() && !b.is_finished() && !c.is_finished(), "a commit returned before its sync");

    io.release();
    for t in [a, b, c] {
        t.join().unwrap();
    }
    let syncs = io.syncs.load(std::sync::atomic::Ordering::SeqCst) - syncs0;
    // A's own sync (held), then one for B and C together.
    assert!(syncs <= 2, "{syncs} syncs for 3 commits, two of them appended during the first");
    assert_eq!(values(&reader), ["a", "b", "c"]);
    assert_eq!(watcher.refresh().unwrap().number, base + 3);
    pagelog::registry::set_io_hook(&p, None);
    drop((reader, watcher));
    let _ = std::fs::remove_dir_all(&d);
}
