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
fn a_damaged_last_commit_is_treated_as_never_committed() {
    let d = TempDir::new("lastdamaged");
    let p = d.path("a.db");
    build(&p, 6);
    let last = ro(&p).latest().commit_offset;
    let mut b = std::fs::read(&p).unwrap();
    b[last as usize + 20] ^= 0x40; // inside its record header
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
