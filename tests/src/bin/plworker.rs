//! A worker process for the multi-process and crash tests.
//!
//! * `plworker increment DB N` — adds 1 to the counter N times, each in its
//!   own transaction, with a busy timeout.
//! * `plworker writer DB START` — forever: transaction i (from START) inserts
//!   a batch of rows tagged i whose size it also records, and prints
//!   `committed i` after COMMIT returns. Some batches are large enough to
//!   spill; every 23rd is followed by a VACUUM that may change the page
//!   size. Meant to be killed with SIGKILL at random moments.
//! * `plworker stress-writer DB ID SECONDS SYNC` — for SECONDS: transactions
//!   that move a random amount between two random accounts and add 1 to
//!   writer ID's commit counter; every 10th is rolled back instead, every
//!   25th also writes a 200 KB history row (the transaction spills) and
//!   deletes the previous one; between transactions it pauses 0–1 ms (think
//!   time, so that the writers interleave). `PRAGMA synchronous = SYNC`.
//!   Prints `commits N busy B b9 K` at the end. Exits 2 on any error other
//!   than SQLITE_BUSY and known bug B9 (see below).
//! * `plworker stress-reader DB SECONDS TOTAL ACCOUNTS` — for SECONDS: read
//!   transactions that check that the balances sum to TOTAL, that none is
//!   NULL, that there are ACCOUNTS of them, and that neither the version
//!   nor the commit counters ever go backwards. Prints `reads N b9 K` at the
//!   end. Exits 2 on any violation or error (SQLITE_CORRUPT included) but
//!   known bug B9.
//!
//! * `plworker race-writer DB SECONDS SYNC` — for SECONDS: single-row
//!   UPDATEs of table `t` (`v` up, `w` down by the same amount, so every
//!   row's `v + w` stays 0), one per transaction, as fast as it can; every
//!   100th commit also rewrites a 100 KB row (it spills, with a 64 KiB
//!   spill limit) and every 10th of those is rolled back; every 500th is a
//!   revert to 10 versions back (`Log::revert`, as `pagelog revert`).
//!   Prints `commits N`.
//!   `PRAGMA synchronous = SYNC`. Exits 2 on any error but SQLITE_BUSY.
//! * `plworker race-reader DB SECONDS` — for SECONDS: point SELECTs by
//!   random id, each its own read transaction, checking `v + w = 0`; every
//!   100th read also sums the whole table, and every 500th opens an older
//!   version read-only (`?version=N`) and sums it. Prints `reads N`. Exits 2
//!   on any error but SQLITE_BUSY (SQLITE_CORRUPT and IOERR included).
//!
//! * `plworker retain-writer DB HASHES SYNC` — forever, on a format-4 log
//!   with a retention policy (`retention_under_kill.rs`): transactions that
//!   move an amount between two rows of `t` (the sum of `v` stays
//!   constant), rewrite one row's `pad` (some spill) and count in `meta`;
//!   now and then (5%) a VACUUM that changes the page size, or (2%) a revert to two
//!   versions back (`Log::revert`). After each returns, it reads the
//!   version it made and appends `version hash` (`rows_hash`) to HASHES.
//!   Every 4th round it runs one explicit reclamation step (`Log::reclaim`,
//!   16–128 KiB), printing `step` before it and `stepped freed F punched P
//!   relocated R` after (so the test can kill it inside one); commits also
//!   take automatic steps. Exits 2 on any error but SQLITE_BUSY. Meant to
//!   be killed with SIGKILL.
//! * `plworker reclaim DB BYTES` — one reclamation step (`Log::reclaim`) of
//!   at most BYTES; prints what it did. A reproducer for a failing step.
//! * `plworker retain-reader DB SECONDS OBS TOTAL KEEP` — for SECONDS (or
//!   until a file `OBS.stop` exists): long
//!   read transactions on the latest version (hash the rows, sleep 0–150
//!   ms while the writer commits and reclaims, hash again: the two must
//!   agree, the version must not move, the sum must be TOTAL), and, one
//!   time in four, a `?version=N` connection to a recent version (N up to
//!   KEEP + 3 behind) with two such transactions. A reclaimed version must
//!   be refused with the clear error naming an oldest kept version above
//!   N. With a 7th argument `mmap`, SQLite reads through xFetch
//!   (`PRAGMA mmap_size`). Appends `version hash` for every transaction to OBS and prints
//!   `long L pinned P reclaimed R busy B`. Exits 2 on anything else.
//!
//! Known bug B9 (see tests/tests/stress.rs): a transaction that starts while
//! another process truncates a rolled-back transaction's spill may fail with
//! SQLITE_IOERR "failed to fill whole buffer". The stress modes count these
//! and retry; with `PAGELOG_STRESS_STRICT=1` they fail on them instead.
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};

/// Known bug B9: an I/O error from reading past a file end that moved.
fn is_b9(e: &rusqlite::Error) -> bool {
    std::env::var("PAGELOG_STRESS_STRICT").is_err()
        && e.sqlite_error_code() == Some(ErrorCode::SystemIoFailure)
        && pagelog::sqlite::last_error().is_some_and(|m| m.contains("failed to fill whole buffer"))
}

fn fail(what: &str) -> ! {
    let pagelog_said = pagelog::sqlite::last_error().unwrap_or_default();
    eprintln!("plworker: {what} (pagelog: {pagelog_said})");
    keep_log_now(&format!("{what} (pagelog: {pagelog_said})"));
    std::process::exit(2)
}

/// The log a retain reader reads, copied by [`fail`] when
/// `PAGELOG_KEEP_FAILED=DIR` is set.
static READER_LOG: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Copies the reader's log to `$PAGELOG_KEEP_FAILED/reader-PID.db` (with the
/// message beside it) at the reader's first error: the writer goes on and
/// its steps soon free what the reader met (tests/RELIABILITY.md, R12: the
/// test's own copy, made after the next kill, had lost the damaged region).
fn keep_log_now(what: &str) {
    let (Some(dir), Some(db)) = (std::env::var_os("PAGELOG_KEEP_FAILED"), READER_LOG.get()) else { return };
    let dir = Path::new(&dir);
    let _ = std::fs::create_dir_all(dir);
    let pid = std::process::id();
    let to = dir.join(format!("reader-{pid}.db"));
    if std::fs::copy(db, &to).is_ok() {
        let _ = std::fs::write(dir.join(format!("reader-{pid}.txt")), what);
        eprintln!("plworker: the log as the reader failed on it is kept in {}", to.display());
    }
}

/// A transfer transaction of the stress test; Ok(false) when rolled back on purpose.
/// One transfer; `Some(n)`: committed, writer `id`'s counter now `n`.
fn transfer(c: &Connection, id: i64, i: u64, rng: &mut u64, accounts: i64) -> rusqlite::Result<Option<i64>> {
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    let a = (next() % accounts as u64) as i64;
    let b = (next() % accounts as u64) as i64;
    let amount = (next() % 100) as i64 + 1;
    c.execute_batch("BEGIN IMMEDIATE")?;
    let body = (|| {
        c.execute("UPDATE accounts SET bal = bal - ?1 WHERE id = ?2", [amount, a])?;
        c.execute("UPDATE accounts SET bal = bal + ?1 WHERE id = ?2", [amount, b])?;
        let n: i64 = c.query_row("UPDATE counters SET n = n + 1 WHERE writer = ?1 RETURNING n", [id], |r| r.get(0))?;
        if i % 25 == 24 {
            c.execute("DELETE FROM history WHERE writer = ?1", [id])?;
            c.execute("INSERT INTO history(writer, pad) VALUES (?1, randomblob(200000))", [id])?;
        }
        Ok(n)
    })();
    let n = match body {
        Ok(n) => n,
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            return Err(e);
        }
    };
    if i % 10 == 9 {
        c.execute_batch("ROLLBACK")?;
        return Ok(None);
    }
    if let Err(e) = c.execute_batch("COMMIT") {
        let _ = c.execute_batch("ROLLBACK");
        return Err(e);
    }
    Ok(Some(n))
}

/// `PLWORKER_ANNOUNCE`: a file where each stress writer, once its COMMIT
/// has returned, stores its counter (8 bytes at `8 × id`), and which each
/// stress reader reads before it begins a transaction: a commit that has
/// returned must be visible to every transaction that begins after it
/// (as in WAL), in any process.
fn announce_file() -> Option<std::fs::File> {
    let p = std::env::var_os("PLWORKER_ANNOUNCE")?;
    Some(std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(p).unwrap())
}

fn announced(f: &std::fs::File) -> Vec<i64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 8 * 64];
    let n = f.read_at(&mut buf, 0).unwrap();
    buf[..n - n % 8].chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let conn = pagelog_e2e::open(Path::new(&args[2]));
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    match args[1].as_str() {
        "increment" => {
            let n: u32 = args[3].parse().unwrap();
            for _ in 0..n {
                conn.execute("UPDATE counter SET n = n + 1", []).unwrap();
            }
        }
        "writer" => {
            conn.execute_batch("PRAGMA pagelog_spill_limit = 65536").unwrap();
            let mut i: i64 = args[3].parse().unwrap();
            let mut out = std::io::stdout();
            loop {
                let rows = [1i64, 3, 50, 400][(i % 4) as usize];
                let blob = if i % 7 == 0 { 3000 } else { 20 };
                let tx = conn.unchecked_transaction().unwrap();
                for k in 0..rows {
                    tx.execute(
                        "INSERT INTO t(txn, k, size, pad) VALUES (?1, ?2, ?3, randomblob(?4))",
                        rusqlite::params![i, k, rows, blob],
                    )
                    .unwrap();
                }
                if i % 5 == 0 {
                    tx.execute("DELETE FROM t WHERE txn = ?1", [i - 3]).unwrap();
                    tx.execute("INSERT INTO gone(txn) VALUES (?1)", [i - 3]).unwrap();
                }
                tx.commit().unwrap();
                writeln!(out, "committed {i}").unwrap();
                out.flush().unwrap();
                if i % 23 == 11 {
                    // Kills also land in VACUUMs, some of which change the page size.
                    let ps = [4096, 8192, 1024][(i / 23 % 3) as usize];
                    conn.execute_batch(&format!("PRAGMA page_size = {ps}; VACUUM")).unwrap();
                }
                i += 1;
            }
        }
        "stress-writer" => {
            let id: i64 = args[3].parse().unwrap();
            let secs: f64 = args[4].parse().unwrap();
            conn.execute_batch(&format!(
                "PRAGMA synchronous = {}; PRAGMA pagelog_spill_limit = 65536; PRAGMA cache_size = 20",
                args[5]
            ))
            .unwrap_or_else(|e| fail(&format!("writer {id}: setup: {e}")));
            let accounts: i64 = conn
                .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
                .unwrap_or_else(|e| fail(&format!("writer {id}: {e}")));
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (id as u64 + 1).wrapping_mul(0x1000_0000_01B3);
            let (mut commits, mut busy, mut b9) = (0u64, 0u64, 0u64);
            let deadline = Instant::now() + Duration::from_secs_f64(secs);
            let mut i = 0u64;
            let announce = announce_file();
            while Instant::now() < deadline {
                match transfer(&conn, id, i, &mut rng, accounts) {
                    Ok(Some(n)) => {
                        commits += 1;
                        if let Some(f) = &announce {
                            use std::os::unix::fs::FileExt;
                            f.write_at(&n.to_le_bytes(), 8 * id as u64).unwrap();
                        }
                    }
                    Ok(None) => {}
                    Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => busy += 1,
                    Err(e) if is_b9(&e) => b9 += 1,
                    Err(e) => fail(&format!("writer {id}: transaction {i}: {e}")),
                }
                i += 1;
                std::thread::sleep(Duration::from_micros(rng % 1000));
            }
            println!("commits {commits} busy {busy} b9 {b9}");
        }
        "stress-reader" => {
            let secs: f64 = args[3].parse().unwrap();
            let total: i64 = args[4].parse().unwrap();
            let accounts: i64 = args[5].parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs_f64(secs);
            let (mut reads, mut last_version, mut last_commits, mut b9) = (0u64, 0u64, 0i64, 0u64);
            let announce = announce_file();
            while Instant::now() < deadline {
                let seen_returned = announce.as_ref().map(announced).unwrap_or_default();
                let r = (|| -> rusqlite::Result<(i64, i64, i64, i64, u64)> {
                    conn.execute_batch("BEGIN")?;
                    let mut st = conn.prepare_cached("SELECT writer, n FROM counters")?;
                    let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
                    for row in rows {
                        let (w, n) = row?;
                        let a = seen_returned.get(w as usize).copied().unwrap_or(0);
                        if n < a {
                            fail(&format!(
                                "reader: writer {w}'s commit making its counter {a} had returned before this \
                                 transaction began, which sees {n}"
                            ));
                        }
                    }
                    let (sum, n, non_null) =
                        conn.query_row("SELECT sum(bal), count(*), count(bal) FROM accounts", [], |r| {
                            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                        })?;
                    let commits: i64 = conn.query_row("SELECT sum(n) FROM counters", [], |r| r.get(0))?;
                    let v: String = conn.query_row("PRAGMA pagelog_version", [], |r| r.get(0))?;
                    conn.execute_batch("COMMIT")?;
                    Ok((sum, n, non_null, commits, v.parse().unwrap()))
                })();
                match r {
                    Ok((sum, n, non_null, commits, version)) => {
                        if sum != total || n != accounts || non_null != accounts {
                            fail(&format!(
                                "reader: version {version}: sum {sum} (expected {total}), {n} accounts, \
                                 {non_null} not NULL (expected {accounts})"
                            ));
                        }
                        if version < last_version || commits < last_commits {
                            fail(&format!(
                                "reader: went backwards: version {last_version} -> {version}, \
                                 commits {last_commits} -> {commits}"
                            ));
                        }
                        (last_version, last_commits) = (version, commits);
                        reads += 1;
                    }
                    Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    Err(e) if is_b9(&e) => {
                        b9 += 1;
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    Err(e) => fail(&format!("reader: {e}")),
                }
            }
            println!("reads {reads} b9 {b9}");
        }
        "race-writer" => race_writer(&conn, &args[2], args[3].parse().unwrap(), &args[4]),
        "race-reader" => race_reader(&conn, Path::new(&args[2]), args[3].parse().unwrap()),
        "reclaim" => {
            // One reclamation step (a reproducer for a failing one).
            let log = pagelog::Log::open(Path::new(&args[2]), pagelog::OpenOptions::default())
                .unwrap_or_else(|e| fail(&format!("reclaim: open: {e}")));
            match log.reclaim(args[3].parse().unwrap(), Duration::from_secs(10)) {
                Ok(r) => println!("{r:?}"),
                Err(e) => fail(&format!("reclaim: {e}")),
            }
        }
        "retain-writer" => retain_writer(&conn, Path::new(&args[2]), Path::new(&args[3]), &args[4]),
        "retain-reader" => retain_reader(
            &conn,
            Path::new(&args[2]),
            args[3].parse().unwrap(),
            Path::new(&args[4]),
            args[5].parse().unwrap(),
            args[6].parse().unwrap(),
            args.get(7).is_some_and(|a| a == "mmap"),
        ),
        m => panic!("unknown mode {m}"),
    }
}

fn xorshift(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

/// Rows of the race table (`race-writer`, `race-reader`).
const RACE_ROWS: u64 = 10_000;

fn race_writer(conn: &Connection, db: &str, secs: f64, sync: &str) {
    conn.execute_batch(&format!("PRAGMA synchronous = {sync}; PRAGMA pagelog_spill_limit = 65536"))
        .unwrap_or_else(|e| fail(&format!("race writer: setup: {e}")));
    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ std::process::id() as u64;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut commits, mut i) = (0u64, 0u64);
    while Instant::now() < deadline {
        i += 1;
        let id = (1 + xorshift(&mut rng) % RACE_ROWS) as i64;
        let d = (xorshift(&mut rng) % 1000) as i64 + 1;
        if i % 500 == 250 {
            // A revert, as `pagelog revert` makes it: a new version equal to
            // an older one (which also keeps every row's v + w at 0).
            let log = pagelog::Log::open(Path::new(db), pagelog::OpenOptions::default())
                .unwrap_or_else(|e| fail(&format!("race writer: open for revert: {e}")));
            let to = log.latest().number.saturating_sub(10).max(1);
            match log.revert(to, Duration::from_secs(10)) {
                Ok(_) => commits += 1,
                Err(pagelog::Error::Busy { .. }) => {}
                Err(e) => fail(&format!("race writer: revert to {to}: {e}")),
            }
            continue;
        }
        let r = if i % 100 == 0 {
            (|| {
                conn.execute_batch("BEGIN IMMEDIATE")?;
                conn.execute("UPDATE t SET v = v + ?1, w = w - ?1 WHERE id = ?2", rusqlite::params![d, id])?;
                conn.execute("UPDATE big SET b = randomblob(100000) WHERE id = 1", [])?;
                conn.execute_batch(if i % 1000 == 0 { "ROLLBACK" } else { "COMMIT" })
            })()
        } else {
            conn.execute("UPDATE t SET v = v + ?1, w = w - ?1 WHERE id = ?2", rusqlite::params![d, id]).map(|_| ())
        };
        match r {
            Ok(()) => commits += 1,
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(e) => fail(&format!("race writer: transaction {i}: {e}")),
        }
    }
    println!("commits {commits}");
}

fn race_reader(conn: &Connection, path: &Path, secs: f64) {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (std::process::id() as u64).wrapping_mul(0x1000_0000_01B3);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut reads = 0u64;
    let check = |r: rusqlite::Result<()>, what: &str| match r {
        Ok(()) => true,
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => false,
        Err(e) => fail(&format!("race reader: {what}: {e}")),
    };
    while Instant::now() < deadline {
        reads += 1;
        let id = (1 + xorshift(&mut rng) % RACE_ROWS) as i64;
        let point = conn.query_row("SELECT v + w FROM t WHERE id = ?1", [id], |r| r.get::<_, i64>(0)).map(|s| {
            if s != 0 {
                fail(&format!("race reader: row {id}: v + w = {s}, expected 0"));
            }
        });
        check(point, "point select");
        if reads % 100 == 0 {
            let all = conn.query_row("SELECT sum(v + w), count(*) FROM t", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            });
            check(
                all.map(|(s, n)| {
                    if s != 0 || n != RACE_ROWS as i64 {
                        fail(&format!("race reader: sum {s} over {n} rows, expected 0 over {RACE_ROWS}"));
                    }
                }),
                "table sum",
            );
        }
        if reads % 500 == 0 {
            let latest: rusqlite::Result<String> = conn.query_row("PRAGMA pagelog_version", [], |r| r.get(0));
            let Ok(latest) = latest.map(|v| v.parse::<u64>().unwrap()) else { continue };
            let n = 1 + xorshift(&mut rng) % latest;
            pagelog::register().unwrap();
            let uri = format!("{}?version={n}", pagelog_e2e::file_uri(path));
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
            let old = Connection::open_with_flags_and_vfs(&uri, flags, "pagelog")
                .and_then(|c| c.query_row("SELECT coalesce(sum(v + w), 0) FROM t", [], |r| r.get::<_, i64>(0)));
            check(
                old.map(|s| {
                    if s != 0 {
                        fail(&format!("race reader: version {n}: sum {s}, expected 0"));
                    }
                }),
                &format!("version {n}"),
            );
        }
    }
    println!("reads {reads}");
}

/// Appends one `version hash` line to `f` (one write: a kill leaves a whole
/// line or a torn last one, which `read_pairs` drops).
fn record(f: &mut std::fs::File, v: u64, h: u64) {
    f.write_all(format!("{v} {h:016x}\n").as_bytes()).unwrap_or_else(|e| fail(&format!("record: {e}")));
}

/// The version the connection reads now and its rows' hash and sum, in one
/// read transaction.
fn version_hash(conn: &Connection) -> rusqlite::Result<(u64, u64, i64)> {
    conn.execute_batch("BEGIN")?;
    let r = (|| -> rusqlite::Result<(u64, u64, i64)> {
        // Rows first: BEGIN is deferred and the pragma (a file control)
        // starts no read transaction; the version read after them is the
        // transaction's snapshot.
        let (h, sum) = pagelog_e2e::rows_hash(conn)?;
        let v: String = conn.query_row("PRAGMA pagelog_version", [], |r| r.get(0))?;
        Ok((v.parse().unwrap(), h, sum))
    })();
    let end = conn.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let r = r?;
    end.map(|()| r)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

fn retain_writer(conn: &Connection, db: &Path, hashes: &Path, sync: &str) {
    conn.execute_batch(&format!("PRAGMA synchronous = {sync}; PRAGMA pagelog_spill_limit = 65536"))
        .unwrap_or_else(|e| fail(&format!("retain writer: setup: {e}")));
    let log = pagelog::Log::open(db, pagelog::OpenOptions::default())
        .unwrap_or_else(|e| fail(&format!("retain writer: open the log: {e}")));
    let mut hf = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(hashes)
        .unwrap_or_else(|e| fail(&format!("retain writer: {}: {e}", hashes.display())));
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap_or_else(|e| fail(&format!("retain writer: {e}")));
    let mut rng = 0x2545_F491_4F6C_DD1Du64
        ^ (std::process::id() as u64).wrapping_mul(0x9E37_79B9)
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut out = std::io::stdout();
    let mut last: Option<u64> = None;
    // To narrow a failure down: PLWORKER_NO=vacuum,revert,step leaves those out.
    let no = std::env::var("PLWORKER_NO").unwrap_or_default();
    let (reverts, vacuums, steps) = (!no.contains("revert"), !no.contains("vacuum"), !no.contains("step"));
    for round in 0u64.. {
        let what = xorshift(&mut rng) % 100;
        let r: rusqlite::Result<()> = if what < 2 && reverts && last.is_some_and(|v| v > 3) {
            // A revert to a version the policy keeps (KEEP > 2).
            let to = last.unwrap() - 2;
            match log.revert(to, Duration::from_secs(10)) {
                Ok(_) | Err(pagelog::Error::Busy { .. }) => Ok(()),
                Err(e) => fail(&format!("retain writer: revert to {to}: {e}")),
            }
        } else if what < 7 && vacuums {
            // Always to another page size: the commit after it is a full
            // map, past which a step can move the boundary.
            let now: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap_or(4096);
            let ps = [4096, 1024, 8192].into_iter().filter(|&p| p != now).nth((xorshift(&mut rng) % 2) as usize);
            conn.execute_batch(&format!("PRAGMA page_size = {}; VACUUM", ps.unwrap_or(4096)))
        } else {
            let a = (1 + xorshift(&mut rng) % rows as u64) as i64;
            let b = (1 + xorshift(&mut rng) % rows as u64) as i64;
            let c = (1 + xorshift(&mut rng) % rows as u64) as i64;
            let amount = (xorshift(&mut rng) % 100) as i64 + 1;
            let size = if xorshift(&mut rng) % 30 == 0 { 70_000 } else { 10 + xorshift(&mut rng) % 2000 } as i64;
            (|| {
                conn.execute_batch("BEGIN IMMEDIATE")?;
                conn.execute("UPDATE t SET v = v - ?1 WHERE id = ?2", [amount, a])?;
                conn.execute("UPDATE t SET v = v + ?1 WHERE id = ?2", [amount, b])?;
                conn.execute("UPDATE t SET pad = randomblob(?1) WHERE id = ?2", [size, c])?;
                conn.execute("UPDATE meta SET n = n + 1", [])?;
                conn.execute_batch("COMMIT")
            })()
        };
        match r {
            Ok(()) => {}
            Err(e) if is_busy(&e) => {
                let _ = conn.execute_batch("ROLLBACK");
                continue;
            }
            Err(e) => fail(&format!("retain writer: round {round}: {e}")),
        }
        // The one writer: the latest version is the one it just made.
        let (v, h, sum) = match version_hash(conn) {
            Ok(x) => x,
            Err(e) => fail(&format!("retain writer: reading back round {round}: {e}")),
        };
        if last.is_some_and(|l| v != l + 1) {
            fail(&format!("retain writer: made version {v} after {last:?}"));
        }
        let _ = sum;
        last = Some(v);
        record(&mut hf, v, h);
        if round % 4 == 3 && steps {
            let max = 16384u64 << (xorshift(&mut rng) % 4);
            writeln!(out, "step").unwrap();
            out.flush().unwrap();
            match log.reclaim(max, Duration::from_secs(10)) {
                Ok(s) => {
                    writeln!(out, "stepped freed {} punched {} relocated {}", s.freed, s.punched, s.relocated).unwrap()
                }
                Err(pagelog::Error::Busy { .. }) => writeln!(out, "stepped busy").unwrap(),
                Err(e) => fail(&format!("retain writer: reclamation step: {e}")),
            }
            out.flush().unwrap();
        }
    }
}

/// The oldest kept version a "reclaimed" error names (`keeps versions X to`).
fn reclaimed_oldest(msg: &str) -> Option<u64> {
    let rest = msg.split("is no longer kept: the retention policy keeps versions ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

fn retain_reader(conn: &Connection, db: &Path, secs: f64, obs: &Path, total: i64, keep: u64, mmap: bool) {
    let _ = READER_LOG.set(db.to_path_buf());
    // A small cache, so a second pass reads through the VFS again; with
    // `mmap`, SQLite reads pages through xFetch (pointers into the log).
    let setup = if mmap { "PRAGMA cache_size = 10; PRAGMA mmap_size = 268435456" } else { "PRAGMA cache_size = 10" };
    conn.execute_batch(setup).unwrap_or_else(|e| fail(&format!("retain reader: setup: {e}")));
    let mut of = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(obs)
        .unwrap_or_else(|e| fail(&format!("retain reader: {}: {e}", obs.display())));
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (std::process::id() as u64).wrapping_mul(0x1000_0000_01B3);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut long, mut pinned, mut reclaimed, mut busy) = (0u64, 0u64, 0u64, 0u64);
    let mut latest = 0u64;
    // One transaction: hash, wait, hash again; both hashes and versions agree.
    let txn = |c: &Connection, rng: &mut u64| -> rusqlite::Result<(u64, u64, i64)> {
        c.execute_batch("BEGIN")?;
        let r = (|| -> rusqlite::Result<(u64, u64, i64)> {
            let (h1, s1) = pagelog_e2e::rows_hash(c)?; // starts the read transaction
            let v1: String = c.query_row("PRAGMA pagelog_version", [], |r| r.get(0))?;
            std::thread::sleep(Duration::from_millis(xorshift(rng) % 150));
            let (h2, s2) = pagelog_e2e::rows_hash(c)?;
            let v2: String = c.query_row("PRAGMA pagelog_version", [], |r| r.get(0))?;
            if (v1 != v2) || (h1, s1) != (h2, s2) {
                fail(&format!(
                    "retain reader: a read transaction's snapshot changed: version {v1} hash {h1:016x} sum {s1} \
                     -> version {v2} hash {h2:016x} sum {s2}"
                ));
            }
            Ok((v1.parse().unwrap(), h1, s1))
        })();
        let end = c.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" });
        let r = r?;
        end.map(|()| r)
    };
    let stop = obs.with_extension("stop");
    while Instant::now() < deadline && !stop.exists() {
        if latest == 0 || xorshift(&mut rng) % 4 != 0 {
            match txn(conn, &mut rng) {
                Ok((v, h, sum)) => {
                    if sum != total {
                        fail(&format!("retain reader: version {v}: sum {sum}, expected {total}"));
                    }
                    if v < latest {
                        fail(&format!("retain reader: the latest went back from {latest} to {v}"));
                    }
                    latest = v;
                    record(&mut of, v, h);
                    long += 1;
                }
                Err(e) if is_busy(&e) => busy += 1,
                Err(e) => fail(&format!("retain reader: read transaction: {e}")),
            }
        } else {
            let n = latest.saturating_sub(xorshift(&mut rng) % (keep + 4)).max(1);
            pagelog::register().unwrap();
            let uri = format!("{}?version={n}", pagelog_e2e::file_uri(db));
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
            // A reclaimed version: refused (at the open or at a later
            // transaction) with the error naming an oldest kept above n.
            let refused = |e: &rusqlite::Error| {
                let msg = pagelog::sqlite::last_error().unwrap_or_default();
                match reclaimed_oldest(&msg) {
                    Some(o) if o > n && msg.contains(&format!("version {n} is no longer kept")) => {}
                    _ => fail(&format!("retain reader: ?version={n}: {e}: {msg}")),
                }
            };
            let c = match Connection::open_with_flags_and_vfs(&uri, flags, "pagelog") {
                Ok(c) => c,
                Err(e) => {
                    refused(&e);
                    reclaimed += 1;
                    continue;
                }
            };
            let _ = c.execute_batch(setup);
            for _ in 0..2 {
                match txn(&c, &mut rng) {
                    Ok((v, h, sum)) => {
                        if v != n || sum != total {
                            fail(&format!("retain reader: ?version={n} read version {v} with sum {sum}"));
                        }
                        record(&mut of, v, h);
                        pinned += 1;
                    }
                    Err(e) if is_busy(&e) => busy += 1,
                    Err(e) => {
                        refused(&e);
                        reclaimed += 1;
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(xorshift(&mut rng) % 50));
            }
        }
        std::thread::sleep(Duration::from_millis(xorshift(&mut rng) % 20));
    }
    println!("long {long} pinned {pinned} reclaimed {reclaimed} busy {busy}");
}
