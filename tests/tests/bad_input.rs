//! Bad input: empty files, files that are not logs, torn tails, and damage
//! inside committed history. Nothing is written to a file that is not a
//! log, and damage is an error naming the offset, never wrong data.

use pagelog::{Log, OpenOptions};
use pagelog_e2e::{count, integrity, open, try_open, version, TempDir};
use rusqlite::ErrorCode;

fn ro(p: &std::path::Path) -> Log {
    Log::open(p, OpenOptions { read_only: true, ..Default::default() }).unwrap()
}

#[test]
fn a_zero_byte_file_is_a_new_empty_database() {
    let d = TempDir::new("zero");
    let p = d.path("a.db");
    std::fs::write(&p, b"").unwrap();
    let c = open(&p);
    assert_eq!(version(&c), 0);
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    assert_eq!(version(&c), 2);
    assert_eq!(&std::fs::read(&p).unwrap()[..8], b"PAGELOG\0");
}

#[test]
fn files_that_are_not_logs_are_refused_and_left_byte_for_byte_unchanged() {
    let d = TempDir::new("notalog");
    let plain = d.path("plain.db");
    {
        let c = rusqlite::Connection::open(&plain).unwrap();
        c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    }
    let random = d.path("random.bin");
    let mut x = 0x1234_5678_u32;
    let bytes: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(&random, &bytes).unwrap();
    let short = d.path("short.bin");
    std::fs::write(&short, b"hello").unwrap();
    let zeros = d.path("zeros.bin");
    std::fs::write(&zeros, vec![0u8; 4096]).unwrap();
    let newer = d.path("newer.bin");
    let mut h = vec![0u8; 512];
    h[..8].copy_from_slice(b"PAGELOG\0");
    h[8] = 99; // a format version this build does not read
    h[12] = 64;
    h[17] = 16; // page size 4096
    let crc = crc32fast::hash(&h[..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&newer, &h).unwrap();
    let badcrc = d.path("badcrc.bin");
    h[24] ^= 1;
    std::fs::write(&badcrc, &h).unwrap();

    for (p, needle) in [
        (&plain, "plain SQLite database"),
        (&random, "magic"),
        (&short, "too short"),
        (&zeros, "magic"),
        (&newer, "format version 99"),
        (&badcrc, "header crc"),
    ] {
        let before = std::fs::read(p).unwrap();
        let res = try_open(p).and_then(|c| {
            c.execute_batch("CREATE TABLE IF NOT EXISTS z(y); INSERT INTO z VALUES (1)")?;
            Ok(c)
        });
        let err = res.err().unwrap_or_else(|| panic!("{} was opened as a log", p.display()));
        let code = err.sqlite_error_code();
        assert!(
            matches!(
                code,
                Some(ErrorCode::NotADatabase) | Some(ErrorCode::CannotOpen) | Some(ErrorCode::DatabaseCorrupt)
            ),
            "{}: {err}",
            p.display()
        );
        let msg = pagelog::sqlite::last_error().unwrap_or_default();
        assert!(msg.contains(needle) && msg.contains(&*p.to_string_lossy()), "{}: message {msg:?}", p.display());
        assert_eq!(std::fs::read(p).unwrap(), before, "{} must be left unchanged", p.display());
    }
}

/// Builds a log with versions 1..=n, each inserting one row (k).
fn build(p: &std::path::Path, n: i64) {
    let c = open(p);
    c.execute_batch("CREATE TABLE t(k, pad)").unwrap();
    for k in 2..=n {
        c.execute("INSERT INTO t VALUES (?1, randomblob(100))", [k]).unwrap();
    }
    assert_eq!(version(&c), n as u64);
}

#[test]
fn a_torn_tail_opens_at_the_last_complete_version_and_the_next_write_works() {
    let d = TempDir::new("torn");
    let p = d.path("a.db");
    build(&p, 10);
    let (last, end) = {
        let log = ro(&p);
        let v = log.latest();
        (v.commit_offset, v.end)
    };
    // Cut the last commit in half.
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(last + (end - last) / 2).unwrap();
    drop(f);
    let c = open(&p);
    assert_eq!(version(&c), 9);
    assert_eq!(count(&c, "t"), 8);
    assert_eq!(integrity(&c), "ok");
    c.execute("INSERT INTO t VALUES (100, NULL)", []).unwrap();
    drop(c);
    let c = open(&p);
    assert_eq!(version(&c), 10);
    assert_eq!(count(&c, "t"), 9);
}

#[test]
fn a_damaged_last_commit_that_returned_is_an_error_and_the_file_is_left_as_it_is() {
    let d = TempDir::new("lastdamaged");
    let p = d.path("a.db");
    build(&p, 6);
    let last = ro(&p).latest().commit_offset;
    let mut b = std::fs::read(&p).unwrap();
    b[last as usize + 20] ^= 0x40; // inside its record header
    std::fs::write(&p, &b).unwrap();
    // Its MARK says it was durable: damage, not an unfinished transaction.
    let r = try_open(&p).and_then(|c| {
        c.execute("INSERT INTO t VALUES (99, 'x')", [])?;
        Ok(())
    });
    let e = r.expect_err("a write on a log whose durable history is damaged is refused");
    assert_eq!(e.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt), "{e}");
    assert_eq!(std::fs::read(&p).unwrap(), b, "the refused write left the file byte for byte");
    let err = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).err().expect("open fails");
    assert!(err.to_string().contains(&format!("offset {last}")), "names the damaged commit: {err}");
}

#[test]
fn a_damaged_last_commit_whose_mark_a_power_cut_lost_is_treated_as_never_committed() {
    let d = TempDir::new("lastdamaged-nomark");
    let p = d.path("a.db");
    build(&p, 6);
    let (last, end) = {
        let v = ro(&p).latest();
        (v.commit_offset, v.end)
    };
    let mut b = std::fs::read(&p).unwrap();
    b[last as usize + 20] ^= 0x40; // inside its record header
    b[end as usize..(end + pagelog::format::MARK_SIZE) as usize].fill(0); // its MARK never reached the disk
    std::fs::write(&p, &b).unwrap();
    let c = open(&p);
    assert_eq!(version(&c), 5);
    assert_eq!(count(&c, "t"), 4);
}

#[test]
fn a_flipped_bit_in_an_old_frame_fails_the_read_with_the_offset() {
    let d = TempDir::new("flip");
    let p = d.path("a.db");
    {
        let c = open(&p);
        c.execute_batch("CREATE TABLE t(k, pad); CREATE TABLE u(x)").unwrap();
        c.execute("INSERT INTO t VALUES (1, randomblob(3000))", []).unwrap();
        for i in 0..5 {
            c.execute("INSERT INTO u VALUES (?1)", [i]).unwrap();
        }
    }
    // Table t's root page (page 2) was last written several versions ago.
    let frame = {
        let log = ro(&p);
        let v = log.latest();
        let slot = v.map.get(2).unwrap();
        assert!(slot.offset < v.commit_offset, "page 2 must come from an older commit");
        slot.offset
    };
    let mut b = std::fs::read(&p).unwrap();
    b[frame as usize + 1000] ^= 1;
    std::fs::write(&p, &b).unwrap();
    let c = open(&p);
    assert_eq!(count(&c, "u"), 5, "pages that are intact read fine");
    let err = c.query_row("SELECT length(pad) FROM t", [], |r| r.get::<_, i64>(0)).unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt), "{err}");
    let msg = pagelog::sqlite::last_error().unwrap();
    assert!(msg.contains(&format!("offset {frame}")), "{msg}");
    // Once the damage is known, a write that never reads the damaged page
    // is refused too, and the file is left as it is.
    let err = c.execute("INSERT INTO u VALUES (99)", []).unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt), "{err}");
    let msg = pagelog::sqlite::last_error().unwrap();
    assert!(msg.contains(&format!("offset {frame}")) && msg.contains("refused"), "{msg}");
    drop(c);
    assert_eq!(std::fs::read(&p).unwrap(), b, "a refused write leaves the file byte-identical");
}

#[test]
fn damage_to_a_commit_between_the_full_map_and_the_latest_is_an_error_at_open() {
    let d = TempDir::new("middle");
    let p = d.path("a.db");
    build(&p, 8);
    // Commits 2..=8 are deltas after the full map of version 1; damage version 4.
    let off = ro(&p).version(4).unwrap().commit_offset;
    let mut b = std::fs::read(&p).unwrap();
    b[off as usize + 30] ^= 0x01;
    std::fs::write(&p, &b).unwrap();
    let err =
        Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).err().expect("must not open silently");
    let msg = err.to_string();
    assert!(msg.contains("corrupt") && msg.contains(&format!("offset {off}")), "{msg}");
    let err = try_open(&p).and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))).unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt), "{err}");
}

#[test]
fn a_log_truncated_by_another_program_is_an_error_at_the_next_transaction_not_a_crash() {
    let d = TempDir::new("shrunk");
    let p = d.path("a.db");
    build(&p, 20);
    let c = open(&p);
    assert_eq!(count(&c, "t"), 19);
    let end = ro(&p).latest().end;
    // Another program cuts the file below the committed end while we have it
    // open (and mapped).
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(end / 2).unwrap();
    let err = c.query_row("SELECT count(*), sum(length(pad)) FROM t", [], |r| r.get::<_, i64>(0)).unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt), "{err}");
    let msg = pagelog::sqlite::last_error().unwrap();
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn a_log_truncated_by_another_program_during_a_read_transaction_is_an_error_not_a_crash() {
    let d = TempDir::new("shrunk-mid");
    let p = d.path("a.db");
    build(&p, 40);
    let c = open(&p);
    c.execute_batch("PRAGMA cache_size = 1").unwrap(); // make SQLite read pages again
    c.execute_batch("BEGIN").unwrap();
    assert_eq!(count(&c, "t"), 39);
    let end = ro(&p).latest().end;
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(end / 3).unwrap();
    // Same read transaction, same snapshot: its pages now lie past the end of
    // the file. SQLite's reads go through pread, so this is an error, not SIGBUS.
    let err = c.query_row("SELECT sum(length(pad)) FROM t", [], |r| r.get::<_, i64>(0)).unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt), "{err}");
    let msg = pagelog::sqlite::last_error().unwrap();
    assert!(msg.contains("truncated"), "{msg}");
}

// With `PRAGMA mmap_size` set, SQLite asks the VFS for pointers into the file
// (xFetch). pagelog hands out only frames this process has already checked;
// the first read of a frame goes through xRead (pread), which reports a file
// cut short as SQLITE_CORRUPT where touching the memory map would raise
// SIGBUS and kill the process (and with it this test binary).

/// Opens `p` (a path, or a `file:` URI) through pagelog with memory-mapped
/// reads on (256 MiB covers every database here).
fn open_mmap(p: &str) -> rusqlite::Connection {
    pagelog::register().unwrap();
    let c = rusqlite::Connection::open_with_flags_and_vfs(p, pagelog_e2e::rw_flags(), "pagelog").unwrap();
    let limit: i64 = c.query_row("PRAGMA mmap_size = 268435456", [], |r| r.get(0)).unwrap();
    assert_eq!(limit, 268435456);
    c
}

/// `sum(length(pad))` over t: reads every leaf page of t.
fn pad_total(c: &rusqlite::Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT sum(length(pad)) FROM t", [], |r| r.get(0))
}

fn assert_truncation_error(err: rusqlite::Error) {
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt), "{err}");
    let msg = pagelog::sqlite::last_error().unwrap();
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn with_mmap_a_log_truncated_by_another_program_between_transactions_is_an_error_not_a_crash() {
    let d = TempDir::new("mmap-shrunk");
    let p = d.path("a.db");
    build(&p, 40);
    let c = open_mmap(p.to_str().unwrap());
    // The second pass reads through pointers into the map.
    let before = pagelog::sqlite::mapped_fetches();
    assert_eq!(pad_total(&c).unwrap(), 3900);
    assert_eq!(pad_total(&c).unwrap(), 3900);
    assert!(pagelog::sqlite::mapped_fetches() > before, "the second pass must read through the map");
    let end = ro(&p).latest().end;
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(end / 3).unwrap();
    assert_truncation_error(pad_total(&c).unwrap_err());
    // Still an error, still alive.
    assert_truncation_error(pad_total(&c).unwrap_err());
}

#[test]
fn with_mmap_a_log_truncated_during_a_read_transaction_before_its_pages_were_read_is_an_error_not_a_crash() {
    let d = TempDir::new("mmap-shrunk-mid");
    let p = d.path("a.db");
    {
        let c = open(&p);
        c.execute_batch("CREATE TABLE u(x); INSERT INTO u VALUES (1); CREATE TABLE t(k, pad)").unwrap();
        for k in 1..=40 {
            c.execute("INSERT INTO t VALUES (?1, randomblob(100))", [k]).unwrap();
        }
    }
    // A new Log for the file: no frame has been checked in this process.
    let c = open_mmap(p.to_str().unwrap());
    c.execute_batch("BEGIN").unwrap();
    assert_eq!(count(&c, "u"), 1);
    let end = ro(&p).latest().end;
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(end / 3).unwrap();
    // Same read transaction, same snapshot: t's pages now lie past the end
    // of the file and were never read. Checking them through the map would
    // be SIGBUS; xFetch declines, and xRead's pread reports the truncation.
    assert_truncation_error(pad_total(&c).unwrap_err());
    c.execute_batch("ROLLBACK").unwrap();
    assert_truncation_error(pad_total(&c).unwrap_err());
}

#[test]
fn with_mmap_a_log_truncated_between_transactions_of_a_pinned_version_is_an_error_not_a_crash() {
    let d = TempDir::new("mmap-shrunk-pinned");
    let p = d.path("a.db");
    build(&p, 40);
    // Cut 8 bytes into the frame (or patch: format 3) of the page of t
    // written last, after page 1's: page 1 (read with xRead at the start
    // of every transaction) still reads, that page of t does not.
    let cut = {
        let v = ro(&p).version(40).unwrap();
        let at = |n: u32| pagelog::patch::position(v.map.get(n).unwrap().offset);
        let last = (2..=v.db_pages()).map(at).max().unwrap();
        assert!(last > at(1), "page 1's frame must come first ({}, {last})", at(1));
        last + 8
    };
    // A version=N connection reads without refreshing, so it checks the
    // length itself at the start of each transaction; the first transaction
    // leaves t's frames checked, so the second would get pointers to them
    // (without the check SQLite read the cut page through one: zeros up to
    // the end of the file's last memory page, SIGBUS beyond).
    let c = open_mmap(&format!("file:{}?vfs=pagelog&version=40", p.display()));
    let before = pagelog::sqlite::mapped_fetches();
    assert_eq!(pad_total(&c).unwrap(), 3900);
    assert_eq!(pad_total(&c).unwrap(), 3900);
    assert!(pagelog::sqlite::mapped_fetches() > before, "the second pass must read through the map");
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(cut).unwrap();
    assert_truncation_error(pad_total(&c).unwrap_err());
}

#[test]
fn with_mmap_reads_are_correct_and_go_through_the_map_once_their_frames_are_checked() {
    let d = TempDir::new("mmap-reads");
    let p = d.path("a.db");
    let rows = 2000i64;
    {
        let c = open(&p);
        c.execute_batch("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)").unwrap();
        c.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
             INSERT INTO t SELECT i, printf('%0500d', i) FROM n",
            [rows],
        )
        .unwrap();
    }
    let c = open_mmap(p.to_str().unwrap());
    let pages = c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0)).unwrap() as u64;
    assert!(pages > 200, "{pages} pages");
    // Every row's v ends in its k: the sums prove each row was read intact.
    let totals = |c: &rusqlite::Connection| -> (i64, i64, i64) {
        c.query_row("SELECT sum(k), sum(length(v)), sum(CAST(v AS INTEGER)) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap()
    };
    let want = (rows * (rows + 1) / 2, rows * 500, rows * (rows + 1) / 2);
    let m0 = pagelog::sqlite::mapped_fetches();
    assert_eq!(totals(&c), want, "first pass");
    let m1 = pagelog::sqlite::mapped_fetches();
    assert_eq!(totals(&c), want, "second pass");
    let m2 = pagelog::sqlite::mapped_fetches();
    for k in (1..=rows).step_by(37) {
        let v: String = c.query_row("SELECT v FROM t WHERE k = ?1", [k], |r| r.get(0)).unwrap();
        assert_eq!(v, format!("{k:0500}"));
    }
    // The first pass checks each frame through xRead; the second reads every
    // page of t through a pointer into the map.
    eprintln!("mapped fetches: first pass {}, second pass {}, {pages} pages", m1 - m0, m2 - m1);
    assert!(m1 - m0 < pages / 4, "first pass: {} mapped fetches", m1 - m0);
    assert!(m2 - m1 >= pages - 10, "second pass: {} mapped fetches of {pages} pages", m2 - m1);
    assert_eq!(integrity(&c), "ok");

    // Another connection of this process commits; the mapped reader sees the
    // new version at its next transaction (its own commit's frames are
    // checked when written, so they are mapped at once).
    let w = open(&p);
    w.execute("UPDATE t SET v = printf('%0500d', 2 * k) WHERE k % 2 = 0", []).unwrap();
    let even = rows / 2 * (rows / 2 + 1); // sum of the even k
    let want = (want.0, want.1, want.2 + even);
    let m3 = pagelog::sqlite::mapped_fetches();
    assert_eq!(totals(&c), want, "after another connection's commit");
    assert!(pagelog::sqlite::mapped_fetches() - m3 >= pages - 10);
    assert_eq!(totals(&c), want);
}
