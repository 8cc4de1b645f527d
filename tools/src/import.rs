//! `pagelog import PLAIN DB`: a new log whose version 1 is a plain SQLite file.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pagelog::txn::DEFAULT_SPILL_LIMIT;
use pagelog::EscapedName;
use pagelog::{format, Durability, Log, OpenOptions};
use rusqlite::{Connection, OpenFlags};

use crate::cli::{diag, plural, sync_dir, CmdResult, Context, Failure, Progress};

/// Create a new pagelog database from a plain SQLite file.
///
/// Version 1 of the new log DB holds PLAIN's pages as they are. DB must not
/// exist. PLAIN is only read: while it is copied, an SQLite read transaction
/// on it keeps other processes from changing it. PLAIN must not be in WAL
/// mode (switch it with `sqlite3 PLAIN 'PRAGMA journal_mode=DELETE'`) and
/// must not have a hot journal (open it once with sqlite3 to roll the
/// interrupted transaction back).
#[derive(clap::Args)]
pub struct Args {
    /// The plain SQLite database to read
    plain: PathBuf,
    /// The pagelog database (log file) to create
    db: PathBuf,
}

/// What the first 100 bytes of a plain SQLite file say.
struct PlainHeader {
    page_size: u32,
    /// Database size in pages from the header, when SQLite would trust it.
    header_pages: Option<u32>,
}

fn parse_header(h: &[u8], plain: &Path) -> Result<PlainHeader, String> {
    if h.len() < 100 || &h[..16] != b"SQLite format 3\0" {
        if h.starts_with(&format::MAGIC) {
            return Err(format!("{} is already a pagelog log, not a plain SQLite database", plain.escaped()));
        }
        return Err(format!("{} is not an SQLite database (no \"SQLite format 3\" header)", plain.escaped()));
    }
    let raw = u16::from_be_bytes([h[16], h[17]]) as u32;
    let page_size = if raw == 1 { 65536 } else { raw };
    if !format::valid_page_size(page_size) {
        return Err(format!("{} has an invalid page size {raw} in its header", plain.escaped()));
    }
    if h[18] == 2 || h[19] == 2 {
        return Err(format!(
            "{} is in WAL mode; pagelog does not read WAL files (change it first with \
             `sqlite3 {} 'PRAGMA journal_mode=DELETE'`, which checkpoints the WAL)",
            plain.escaped(),
            plain.escaped()
        ));
    }
    let be = |at: usize| u32::from_be_bytes(h[at..at + 4].try_into().unwrap());
    // The in-header size is valid when "version-valid-for" equals the change counter.
    let header_pages = (be(28) != 0 && be(92) == be(24)).then(|| be(28));
    Ok(PlainHeader { page_size, header_pages })
}

pub fn run(a: Args) -> CmdResult {
    let what = format!("import {} into {}", a.plain.escaped(), a.db.escaped());
    if std::fs::symlink_metadata(&a.db).is_ok() {
        return Err(Failure::new(&what, format_args!("{} already exists; import creates a new log", a.db.escaped())));
    }
    let plain = std::fs::File::open(&a.plain).ctx(format_args!("open {}", a.plain.escaped()))?;
    let mut h = [0u8; 100];
    let len = plain.metadata().ctx(&what)?.len();
    if len == 0 {
        return Err(Failure::new(&what, format_args!("{} is empty: there is nothing to import", a.plain.escaped())));
    }
    let n = plain.read_at(&mut h, 0).ctx(&what)?;
    parse_header(&h[..n], &a.plain).map_err(|e| Failure::new(&what, e))?;

    // A read transaction on PLAIN, through SQLite's own locking, for the
    // duration of the copy. `plain` stays open until the connection closes:
    // closing any descriptor of a file drops the process's POSIX locks on it.
    let conn =
        Connection::open_with_flags(&a.plain, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| Failure::new(&what, e))?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(|e| Failure::new(&what, e))?;
    let locked = conn.execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;");
    if let Err(e) = locked {
        let hot = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK);
        if hot {
            return Err(Failure::new(
                &what,
                format_args!(
                    "{} has a hot journal ({}-journal, left by an interrupted transaction); open it once \
                     with sqlite3 to roll that transaction back, then import",
                    a.plain.escaped(),
                    a.plain.escaped()
                ),
            ));
        }
        return Err(Failure::new(&what, format_args!("{} cannot be read by SQLite: {e}", a.plain.escaped())));
    }
    // Read the header again under the lock: this is the state we copy.
    let len = plain.metadata().ctx(&what)?.len();
    plain.read_exact_at(&mut h, 0).ctx(&what)?;
    let ph = parse_header(&h, &a.plain).map_err(|e| Failure::new(&what, e))?;
    let ps = ph.page_size as u64;
    if len % ps != 0 {
        return Err(Failure::new(
            &what,
            format_args!("{} is {len} bytes, not a whole number of {ps}-byte pages", a.plain.escaped()),
        ));
    }
    let file_pages = (len / ps) as u32;
    let pages = match ph.header_pages {
        Some(p) if p <= file_pages => p,
        _ => file_pages,
    };

    // Create DB (never an existing file), then write version 1.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&a.db)
        .ctx(format_args!("create {}", a.db.escaped()))?;
    let result = write_log(&a.db, &plain, pages, ps, &what);
    drop(conn);
    drop(plain);
    match result {
        Ok(v) => {
            sync_dir(&a.db).ctx(&what)?;
            println!("{v}");
            diag!(
                "pagelog: imported {} into {} as version {v} ({} of {ps} bytes)",
                a.plain.escaped(),
                a.db.escaped(),
                plural(pages as u64, "page")
            );
            Ok(0)
        }
        Err((f, remove)) => {
            if remove {
                let _ = std::fs::remove_file(&a.db);
            }
            Err(f)
        }
    }
}

/// Writes version 1. On failure, also says whether DB may be removed (not
/// when another process wrote to it meanwhile).
fn write_log(db: &Path, plain: &std::fs::File, pages: u32, ps: u64, what: &str) -> Result<u64, (Failure, bool)> {
    let f = |e: Failure| (e, true);
    let log = Log::open(db, OpenOptions::default()).ctx(what).map_err(f)?;
    let _writer = log.lock_writer(Duration::ZERO).ctx(what).map_err(f)?;
    let base = log.prepare_write().ctx(what).map_err(f)?;
    if base.number != 0 {
        return Err((
            Failure::new(what, format_args!("{} was written by another process meanwhile", db.escaped())),
            false,
        ));
    }
    let mut txn = log.begin(base, DEFAULT_SPILL_LIMIT);
    let mut buf = vec![0u8; ps as usize];
    let mut progress = Progress::new("import");
    let total = pages as u64 * ps;
    for p in 0..pages as u64 {
        plain.read_exact_at(&mut buf, p * ps).ctx(what).map_err(f)?;
        txn.write(&log, p * ps, &buf).ctx(what).map_err(f)?;
        progress.update((p + 1) * ps, total);
    }
    progress.finish();
    match log.commit(txn, Durability::Full).ctx(what).map_err(f)? {
        Some(v) => Ok(v.number),
        None => Err(f(Failure::new(what, "nothing was written"))),
    }
}
