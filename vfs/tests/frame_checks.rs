//! Frames are checked once per process by page number (`frame_tags.rs`):
//! across a VACUUM that changes the page size, readers of the versions
//! before and after it in one process read the right rows, and a damaged
//! frame of either page size is an error even after the same page number
//! was checked at the other size.

mod common;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

struct Dir(PathBuf);
impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("pagelog-framechecks-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(path: &Path, version: Option<i64>) -> Connection {
    let uri = match version {
        Some(v) => format!("file:{}?version={v}", path.display()),
        None => format!("file:{}", path.display()),
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI;
    let flags = if version.is_some() { OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI } else { flags };
    Connection::open_with_flags_and_vfs(uri, flags, "pagelog").unwrap()
}

/// Every row's text, in order, read through the table (every page of it);
/// an error if SQLite or pagelog reports one.
fn rows(c: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut s = c.prepare("SELECT v FROM t ORDER BY id")?;
    let r = s.query_map([], |r| r.get(0))?.collect();
    r
}

fn ok(c: &Connection) -> bool {
    c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)).is_ok_and(|s| s == "ok")
}

fn row_text(i: usize, gen: &str) -> String {
    // Another filler for each generation, so an update rewrites most of a
    // page (stored whole, not as a patch).
    let fill = if gen == "old" { "o" } else { "x" };
    format!("{gen}-{i:05}-{}", fill.repeat(200))
}

/// Builds a log whose first versions have 1 KiB pages and whose latest,
/// after a VACUUM to 4 KiB pages and an UPDATE of every row, has 4 KiB
/// pages. Returns the version before the VACUUM, the rows then, and the
/// rows now.
fn build(path: &Path, format4: bool) -> (i64, Vec<String>, Vec<String>) {
    let setup = "PRAGMA page_size=1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);";
    if format4 {
        common::format4_from_sqlite(path, setup);
    }
    pagelog::register().unwrap();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_URI;
    let w = Connection::open_with_flags_and_vfs(path, flags, "pagelog").unwrap();
    if !format4 {
        w.execute_batch(setup).unwrap();
    }
    let n = 300;
    for i in 0..n {
        w.execute("INSERT INTO t(id, v) VALUES (?1, ?2)", rusqlite::params![i as i64, row_text(i, "old")]).unwrap();
    }
    let before: i64 = w.query_row("SELECT pagelog_version()", [], |r| r.get(0)).unwrap();
    w.execute_batch("PRAGMA page_size=4096; VACUUM").unwrap();
    let ps: i64 = w.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    assert_eq!(ps, 4096, "the VACUUM changed the page size");
    w.execute_batch("BEGIN").unwrap();
    for i in 0..n {
        w.execute("UPDATE t SET v = ?2 WHERE id = ?1", rusqlite::params![i as i64, row_text(i, "new")]).unwrap();
    }
    w.execute_batch("COMMIT").unwrap();
    drop(w);
    let old = (0..n).map(|i| row_text(i, "old")).collect();
    let new = (0..n).map(|i| row_text(i, "new")).collect();
    (before, old, new)
}

fn both_sizes_in_one_process(format4: bool) {
    let dir = Dir::new(if format4 { "f4" } else { "f3" });
    let path = dir.0.join("app.db");
    let (before, old_rows, new_rows) = build(&path, format4);

    // Intact: both versions, alternating in one process (one tag per page
    // number: each switch re-checks the pages that differ).
    {
        let old = open(&path, Some(before));
        let new = open(&path, None);
        for round in 0..3 {
            assert_eq!(rows(&old).unwrap(), old_rows, "round {round}: 1 KiB pages");
            assert_eq!(rows(&new).unwrap(), new_rows, "round {round}: 4 KiB pages");
            assert!(ok(&old) && ok(&new), "round {round}");
        }
    }

    // In each version, a byte of a row's text in a page stored whole (not
    // as a patch): flipped, and served unchecked, it would read back as a
    // changed row, Ok.
    let (old_at, new_at) = {
        let log = pagelog::Log::open(&path, pagelog::OpenOptions { read_only: true, ..Default::default() }).unwrap();
        let text_in_an_image = |v: &pagelog::Version, prefix: &str| -> u64 {
            (2..=v.map.pages())
                .find_map(|p| {
                    let slot = v.map.try_get(p).unwrap()?;
                    if slot.offset == 0 || pagelog::patch::is_patch(slot.offset) {
                        return None;
                    }
                    let page = v.page(p).unwrap()?;
                    let row = page.windows(prefix.len()).position(|w| w == prefix.as_bytes())?;
                    Some(slot.offset + row as u64 + 30)
                })
                .expect("a page stored whole holds a row")
        };
        let v = log.version(before as u64).unwrap();
        assert_eq!(v.page_size, 1024);
        let old_at = text_in_an_image(&v, "old-0");
        let v = log.latest();
        assert_eq!(v.page_size, 4096);
        (old_at, text_in_an_image(&v, "new-0"))
    };
    let bytes = std::fs::read(&path).unwrap();
    let flip = |at: u64, name: &str| -> PathBuf {
        let mut b = bytes.clone();
        assert!(matches!(b[at as usize], b'o' | b'x'), "a filler byte");
        b[at as usize] ^= 0x01;
        let copy = dir.0.join(name);
        std::fs::write(&copy, &b).unwrap();
        copy
    };
    let is_damage = |e: rusqlite::Error| {
        let s = e.to_string();
        assert!(s.contains("malformed") || s.contains("disk I/O"), "{s}");
    };

    // The 4 KiB image damaged in a copy (a new file: a log this process has
    // not read): every page read at 1 KiB first, then at 4 KiB.
    let copy = flip(new_at, "new-damaged.db");
    {
        let old = open(&copy, Some(before));
        assert_eq!(rows(&old).unwrap(), old_rows, "the 1 KiB frames are intact");
        let new = open(&copy, None);
        is_damage(rows(&new).expect_err("a damaged 4 KiB frame is an error, after its page was checked at 1 KiB"));
    }

    // And the other way round: a 1 KiB image damaged, read after 4 KiB.
    let copy = flip(old_at, "old-damaged.db");
    {
        let new = open(&copy, None);
        assert_eq!(rows(&new).unwrap(), new_rows, "the 4 KiB frames are intact");
        let old = open(&copy, Some(before));
        is_damage(rows(&old).expect_err("a damaged 1 KiB frame is an error, after its page was checked at 4 KiB"));
    }
}

#[test]
fn a_vacuum_to_another_page_size_reads_back_and_damage_of_either_size_is_found() {
    both_sizes_in_one_process(false);
}

#[test]
fn a_vacuum_to_another_page_size_reads_back_and_damage_of_either_size_is_found_format4() {
    both_sizes_in_one_process(true);
}
