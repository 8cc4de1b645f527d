//! Format 4: connections keep their epoch lock between read transactions
//! (`vfs/src/epochs.rs`), yet an idle connection does not hold reclamation
//! back, and a long read transaction still pins its snapshot.
//!
//! The reader is a stock `sqlite3` shell with the extension loaded, driven
//! line by line (its own process, so only its own reaper thread can drop
//! its lock), beside a writer in this process that commits under a
//! retention policy; `Log::reclaim` asks for an explicit step, which
//! punches everything freed (`punched == boundary`) exactly when no other
//! open file description holds an epoch lock below the log's current one.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use pagelog::{Log, OpenOptions};
use pagelog_e2e::{extension_stem, format4_from_sqlite, open, sqlite3_shell, TempDir};

const T: Duration = Duration::from_secs(5);

/// A format-4 log holding `t(id, v)` with 300 rows, made through the
/// library (SQLite creates format-3 logs).
fn format4_log(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.path("app.db");
    format4_from_sqlite(
        &path,
        "PRAGMA page_size=1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 300)
         INSERT INTO t SELECT i, printf('row %d', i) FROM n;",
    );
    path
}

/// The sqlite3 shell, reading the log through pagelog, one statement at a
/// time.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
}

impl Shell {
    fn open(dir: &Path) -> Shell {
        let mut child = Command::new(sqlite3_shell())
            .arg("-batch")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut s = Shell { child, stdin, out };
        // A one-page cache: every read goes through the VFS.
        s.run(&format!(".load {}\n.open file:app.db?vfs=pagelog\nPRAGMA cache_size=1;", extension_stem()));
        s
    }

    /// Runs `sql` and returns the lines it printed.
    fn run(&mut self, sql: &str) -> Vec<String> {
        writeln!(self.stdin, "{sql}\n.print --end--").unwrap();
        self.stdin.flush().unwrap();
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            assert!(self.out.read_line(&mut l).unwrap() > 0, "the shell exited; printed {lines:?}");
            let l = l.trim_end().to_string();
            if l == "--end--" {
                return lines;
            }
            lines.push(l);
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` one-row commits through `w` (the writer's steps run among them).
fn updates(w: &rusqlite::Connection, from: i64, n: i64) {
    for i in from..from + n {
        w.execute("UPDATE t SET v = printf('update %d of row %d', ?1, id) WHERE id = ?1 % 300 + 1", [i]).unwrap();
    }
}

/// Explicit steps until one finds nothing more to free, which then punches
/// what earlier steps freed: whether that was everything below the
/// boundary (a step that frees keeps its own region as the reserve).
fn punched_all(log: &Log) -> bool {
    loop {
        let r = log.reclaim(64 << 10, T).unwrap();
        if r.freed == 0 {
            assert!(r.boundary > 512, "no step ever freed anything: {r:?}");
            return r.punched == r.boundary;
        }
    }
}

/// Explicit steps until one punches everything freed; false if none did
/// within `limit` (the reader's process never let its old epoch go).
fn punches_all_within(log: &Log, limit: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        if punched_all(log) {
            return true;
        }
        if t0.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SNAP: &str = "SELECT count(*), sum(length(v)), group_concat(v) FROM t;";

/// Enough read transactions that a connection keeps its lock between them
/// (`epochs::KEEP_AFTER`: its first ones drop it, as before), which also
/// starts its process's reaper.
fn warm_up_shell(shell: &mut Shell) {
    for _ in 0..pagelog::epochs::KEEP_AFTER + 4 {
        assert_eq!(shell.run("SELECT count(*) FROM t;"), vec!["300".to_string()]);
    }
}

fn warm_up(c: &rusqlite::Connection) {
    for _ in 0..pagelog::epochs::KEEP_AFTER + 4 {
        let n: i64 = c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 300);
    }
}

/// A reader process that ran one transaction and then sits idle keeps no
/// lock that stops reclamation for good: its epoch goes (its reaper thread
/// drops it once it has been idle for a tick), and the next step punches
/// everything freed. Its next transaction reads the latest version.
#[test]
fn an_idle_reader_process_does_not_hold_reclamation_back() {
    let dir = TempDir::new("epoch-idle-process");
    let path = format4_log(&dir);
    pagelog::register().unwrap();
    let w = open(&path);
    w.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
    w.query_row("PRAGMA pagelog_retain='10 versions'", [], |r| r.get::<_, String>(0)).unwrap();
    updates(&w, 0, 300);
    let mut shell = Shell::open(&dir.0);
    warm_up_shell(&mut shell);
    let before = shell.run(SNAP);
    assert_eq!(before.len(), 1, "{before:?}");
    // The shell is idle from here on; the writer's steps free what the
    // shell's last snapshot read.
    updates(&w, 300, 1500);
    let log = Log::open(&path, OpenOptions::default()).unwrap();
    assert!(
        punches_all_within(&log, Duration::from_secs(30)),
        "an idle reader in another process held an old epoch's lock for 30 s"
    );
    let latest: Vec<String> = {
        let (n, len, all): (i64, i64, String) =
            w.query_row(SNAP.trim_end_matches(';'), [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
        vec![format!("{n}|{len}|{all}")]
    };
    assert_eq!(shell.run(SNAP), latest, "the idle reader's next transaction reads the latest version");
}

/// A reader process in a long read transaction keeps its epoch lock for as
/// long as it lasts, however many of its reaper's ticks pass: steps do not
/// punch what its snapshot reads, and it reads the same rows throughout.
/// Once it ends, reclamation catches up.
#[test]
fn a_long_read_transaction_in_another_process_pins_its_snapshot_past_the_reapers_ticks() {
    let dir = TempDir::new("epoch-long-txn");
    let path = format4_log(&dir);
    pagelog::register().unwrap();
    let w = open(&path);
    w.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
    w.query_row("PRAGMA pagelog_retain='10 versions'", [], |r| r.get::<_, String>(0)).unwrap();
    updates(&w, 0, 300);
    let mut shell = Shell::open(&dir.0);
    warm_up_shell(&mut shell);
    assert!(shell.run("BEGIN;").is_empty());
    let seen = shell.run(SNAP);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let log = Log::open(&path, OpenOptions::default()).unwrap();
    for round in 0..3 {
        updates(&w, 300 + round * 700, 700);
        // Several of the reader's reaper ticks (`epochs::TICK`) pass while
        // it is in its transaction: not a timed assertion, the reaper must
        // never drop a lock under a transaction however long it waits.
        std::thread::sleep(4 * pagelog::epochs::TICK);
        assert!(!punched_all(&log), "round {round}: a step punched below a reader's open snapshot");
        assert_eq!(shell.run(SNAP), seen, "round {round}: the reader's snapshot changed");
    }
    assert!(shell.run("COMMIT;").is_empty());
    assert!(
        punches_all_within(&log, Duration::from_secs(30)),
        "the reader ended its transaction but reclamation never caught up"
    );
}

/// In one process, a step drops the kept locks of idle connections on its
/// log before it looks for readers: an idle connection there never delays
/// a punch, without waiting for any tick. A connection in a transaction
/// keeps its lock and its snapshot.
#[test]
fn an_idle_connection_in_the_steps_own_process_never_delays_a_punch() {
    let dir = TempDir::new("epoch-idle-same-process");
    let path = format4_log(&dir);
    pagelog::register().unwrap();
    let w = open(&path);
    w.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
    w.query_row("PRAGMA pagelog_retain='10 versions'", [], |r| r.get::<_, String>(0)).unwrap();
    updates(&w, 0, 600);
    let log = Log::open(&path, OpenOptions::default()).unwrap();
    let idle = open(&path);
    let busy = open(&path);
    busy.execute_batch("PRAGMA cache_size=1").unwrap();
    warm_up(&idle);
    warm_up(&busy);
    for round in 0..5 {
        updates(&w, 600 + round * 50, 50);
        // `idle` reads (and keeps the epoch lock of what it read), then a
        // step runs right away: it must punch everything freed.
        let n: i64 = idle.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 300);
        updates(&w, 10_000 + round * 20, 20);
        assert!(punched_all(&log), "round {round}: an idle connection of this process delayed a punch");
    }
    // A transaction in progress keeps its lock and its snapshot.
    busy.execute_batch("BEGIN").unwrap();
    let snap = |c: &rusqlite::Connection| -> String {
        c.query_row("SELECT group_concat(v) FROM t", [], |r| r.get(0)).unwrap()
    };
    let seen = snap(&busy);
    updates(&w, 20_000, 300);
    assert!(!punched_all(&log), "a step punched below an open transaction's snapshot");
    assert_eq!(snap(&busy), seen);
    busy.execute_batch("COMMIT").unwrap();
    assert!(punched_all(&log), "once the transaction ended, the next step punched everything freed");
}
