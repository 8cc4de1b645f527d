//! R10 (tests/RELIABILITY.md): a read transaction that begins while a
//! reclamation step of another `Log` punches must not be given the stale
//! view its process had, whose frames the punch is freeing.
//!
//! A step looks for epoch locks, then punches `[512, B)`. A reader whose
//! view ends at `L < B` and which held no lock when the step looked takes
//! its lock (on its view's epoch) and refreshes while the punch runs. The
//! punch is not atomic to it: the kernel zeroes the partial block at the
//! range's end first and drops cached pages in order, so the reader can
//! find its view's last bytes (the trailer before `L`) still there and the
//! bytes at `L` already zero. Its refresh then said "nothing appended" and
//! the transaction read the stale version, whose frames the rest of the
//! punch then freed under it (a crc error at an offset below `B`, or SQLite
//! reading zeros from a frame it had checked: the kill test's memory-map
//! variant, about one run in five). This test makes that moment happen
//! deterministically: the step's file punches `[L, B)` first, lets the
//! reader begin its transaction, then punches `[512, L)`.

mod common;

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Dir;
use pagelog::storage::LogFile;
use pagelog::{Log, OpenOptions};
use rusqlite::{Connection, OpenFlags};

const T: Duration = Duration::from_secs(5);

/// The step's file. Until armed, a punch keeps the bytes (as on a file
/// system that cannot punch: allowed, `LogFile::punch_hole`), so that the
/// reader's view stays readable; armed with the reader's view end `L`, the
/// next punch of `[512, B)` runs as a reader may see one in progress.
struct SlowPunch {
    file: File,
    view_end: AtomicU64,
    fired: AtomicBool,
    go: Mutex<Sender<()>>,
    started: Mutex<Receiver<()>>,
}

impl LogFile for SlowPunch {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_at(buf, offset)
    }
    fn read_upto(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.file.read_upto(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.file.write_at(buf, offset)
    }
    fn len(&self) -> std::io::Result<u64> {
        LogFile::len(&self.file)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        LogFile::set_len(&self.file, len)
    }
    fn sync(&self) -> std::io::Result<()> {
        LogFile::sync(&self.file)
    }
    fn punch_hole(&self, offset: u64, len: u64) -> std::io::Result<()> {
        let l = self.view_end.swap(0, Ordering::SeqCst);
        if l == 0 {
            return Ok(());
        }
        assert!(
            offset < l && l < offset + len,
            "the punch [{offset}, {}) does not cover the view end {l}",
            offset + len
        );
        self.fired.store(true, Ordering::SeqCst);
        // The end of the range first: the bytes at L read as zeros, the
        // trailer before L still holds its bytes.
        self.file.punch_hole(l, offset + len - l)?;
        // The reader begins now. Fixed, it waits for this punch to return
        // before it refreshes: it then never says it started, and this
        // gives up waiting.
        self.go.lock().unwrap().send(()).unwrap();
        let _ = self.started.lock().unwrap().recv_timeout(Duration::from_secs(2));
        self.file.punch_hole(offset, l - offset)
    }
}

/// `count(*)`, `sum(length(v))` and `group_concat(v)` of table t, and the
/// version read.
fn rows(c: &Connection) -> rusqlite::Result<(i64, String, i64)> {
    let (n, s): (i64, String) =
        c.query_row("SELECT count(*), group_concat(v, ',') FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let v: String = c.query_row("PRAGMA pagelog_version", [], |r| r.get(0))?;
    Ok((n, s, v.parse().unwrap()))
}

/// The end of `log`'s view (the end of its last record).
fn log_end(log: &Log) -> u64 {
    let b = log.retention_state().boundary.max(512);
    log.bytes_in_use() - 512 + b
}

#[test]
fn a_transaction_beginning_while_a_step_punches_past_its_view_reads_a_kept_version() {
    let dir = Dir::new("retain-punch-race");
    let path = dir.0.join("app.db");
    common::format4_from_sqlite(
        &path,
        "PRAGMA page_size=1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 300)
         INSERT INTO t SELECT i, printf('row %d', i) FROM n;",
    );
    let policy = pagelog::retention::Policy::parse("2 versions").unwrap();
    Log::open(&path, OpenOptions::default()).unwrap().set_retention(policy, T).unwrap();
    pagelog::register().unwrap();

    // The reader, opened first and read-only: its process's view (a `Log`
    // of its own, apart from the writer's) ends where the log ends now.
    let (go_tx, go_rx) = channel::<()>();
    let (started_tx, started_rx) = channel::<()>();
    let (ready_tx, ready_rx) = channel::<()>();
    let (punched_tx, punched_rx) = channel::<()>();
    let (done_tx, done_rx) = channel();
    let p = path.clone();
    let reader = std::thread::spawn(move || {
        let r = Connection::open_with_flags_and_vfs(&p, OpenFlags::SQLITE_OPEN_READ_ONLY, "pagelog").unwrap();
        // A small cache: the second read of the table goes through the VFS.
        r.execute_batch("PRAGMA cache_size=1").unwrap();
        rows(&r).unwrap();
        ready_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        let first = (|| {
            r.execute_batch("BEGIN")?;
            rows(&r)
        })();
        let _ = started_tx.send(());
        punched_rx.recv().unwrap();
        let second = rows(&r);
        let _ = r.execute_batch("COMMIT");
        done_tx.send((first, second, pagelog::sqlite::last_error())).unwrap();
    });
    ready_rx.recv().unwrap();

    // The step's `Log`, and the writer (another `Log`: opened writable
    // after the reader's read-only one).
    let hook = Arc::new(SlowPunch {
        file: std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap(),
        view_end: AtomicU64::new(0),
        fired: AtomicBool::new(false),
        go: Mutex::new(go_tx),
        started: Mutex::new(started_rx),
    });
    let steps = Log::open_with_io(&path, OpenOptions::default(), hook.clone()).unwrap();
    let view_end = log_end(&steps);
    let w = Connection::open_with_flags_and_vfs(&path, OpenFlags::SQLITE_OPEN_READ_WRITE, "pagelog").unwrap();
    let mut i = 0;
    let mut commit = || {
        i += 1;
        w.execute("UPDATE t SET v = printf('update %d of row %d', ?1, id) WHERE id % 7 = ?1 % 7", [i]).unwrap();
    };
    // Steps (their punches kept back) until the boundary passes the
    // reader's view: the reader's version is then freed. A VACUUM to
    // another page size makes a full map, past which the boundary moves.
    for round in 0..50 {
        if steps.retention_state().boundary > view_end {
            break;
        }
        let ps = [2048, 1024][round % 2];
        w.execute_batch(&format!("PRAGMA page_size={ps}; VACUUM")).unwrap();
        for _ in 0..4 {
            commit();
            steps.reclaim(1 << 20, T).unwrap();
        }
    }
    assert!(steps.retention_state().boundary > view_end, "the boundary never passed the reader's view");
    // The next step punches [512, B) with B past the view's end.
    hook.view_end.store(view_end, Ordering::SeqCst);
    commit();
    steps.reclaim(1 << 20, T).unwrap();
    assert!(hook.fired.load(Ordering::SeqCst), "the step punched nothing");
    punched_tx.send(()).unwrap();
    let (first, second, last_error) = done_rx.recv().unwrap();
    reader.join().unwrap();

    let oldest = steps.oldest_kept().unwrap();
    let first = first.unwrap_or_else(|e| panic!("the transaction's first read: {e} ({last_error:?})"));
    assert!(
        first.2 >= oldest as i64,
        "a transaction began on version {}, which the policy had dropped (oldest kept {oldest}): its process's \
         view was taken for the latest while a step punched past it",
        first.2
    );
    let second = second.unwrap_or_else(|e| panic!("the transaction's second read: {e} ({last_error:?})"));
    assert_eq!(first, second, "a read transaction's snapshot changed");
    // It read its version exactly: as a fresh connection to it reads it.
    let uri = format!("file:{}?version={}", path.display(), first.2);
    let fresh = Connection::open_with_flags_and_vfs(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        "pagelog",
    )
    .unwrap();
    assert_eq!(rows(&fresh).unwrap(), first);
}
