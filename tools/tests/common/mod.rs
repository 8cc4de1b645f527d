//! Helpers for the CLI tests: temporary directories, connections through the
//! pagelog VFS, and running the built `pagelog` binary.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use rusqlite::{Connection, OpenFlags};

pub use pagelog_e2e::{file_uri, open, sqlite3_shell, version, TempDir};

/// Opens version `n` of `path` read-only through `file:PATH?vfs=pagelog&version=N`.
pub fn open_version(path: &Path, n: u64) -> Connection {
    pagelog::register().expect("register pagelog");
    let uri = format!("{}?vfs=pagelog&version={n}", file_uri(path));
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI;
    Connection::open_with_flags(&uri, flags).unwrap_or_else(|e| panic!("open {uri}: {e}"))
}

/// Every row of `sql`, each as its columns joined by '|'.
pub fn rows(c: &Connection, sql: &str) -> Vec<String> {
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        let cols: Vec<String> = (0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => "NULL".to_string(),
                rusqlite::types::ValueRef::Integer(x) => x.to_string(),
                rusqlite::types::ValueRef::Real(x) => x.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                rusqlite::types::ValueRef::Blob(b) => {
                    format!("x'{}'", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
                }
            })
            .collect();
        Ok(cols.join("|"))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

pub fn table_exists(c: &Connection, name: &str) -> bool {
    c.query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1", [name], |r| r.get::<_, i64>(0))
        .unwrap()
        == 1
}

/// The result of one run of the `pagelog` binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panics unless the exit code is `code`; returns self.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    pub fn ok(self) -> Run {
        self.expect_code(0)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `pagelog ARGS...` and waits for it.
pub fn pagelog<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Run::from(Command::new(env!("CARGO_BIN_EXE_pagelog")).args(args).output().expect("run pagelog"))
}

/// Runs the stock sqlite3 shell on a plain database file with one SQL argument.
pub fn sqlite3(db: &Path, sql: &str) -> String {
    let o = Command::new(sqlite3_shell()).arg("-batch").arg(db).arg(sql).output().unwrap();
    assert!(o.status.success(), "sqlite3 {}: {}", db.display(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Creates a log with `n` versions: version 1 creates table t, each later
/// one inserts a row (id = version, a text naming it, a blob).
pub fn make_log(path: &Path, n: u64) -> Connection {
    let c = open(path);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)").unwrap();
    for v in 2..=n {
        c.execute("INSERT INTO t VALUES(?1, 'row of version ' || ?1, zeroblob(?1 * 100))", [v as i64]).unwrap();
    }
    assert_eq!(version(&c), n);
    c
}

/// `pagelog log DB --json`, parsed.
pub fn history(db: &Path) -> Vec<serde_json::Value> {
    let r = pagelog(["log".as_ref(), db.as_os_str(), "--json".as_ref()]).ok();
    r.json().as_array().unwrap().clone()
}

/// Version numbers of `pagelog log DB --json`, newest first.
pub fn versions(db: &Path) -> Vec<u64> {
    history(db).iter().map(|v| v["version"].as_u64().unwrap()).collect()
}

/// Exports version `n` of `db` to `out` with the CLI and returns its bytes.
pub fn export(db: &Path, n: u64, out: &Path) -> Vec<u8> {
    let n = n.to_string();
    pagelog(["export".as_ref(), db.as_os_str(), out.as_os_str(), "--version".as_ref(), n.as_ref(), "--force".as_ref()])
        .ok();
    std::fs::read(out).unwrap()
}

/// All numbers that follow the word "offset " in `s`.
pub fn offsets_named(s: &str) -> Vec<u64> {
    s.match_indices("offset ")
        .filter_map(|(i, m)| {
            let rest = &s[i + m.len()..];
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .collect()
}

/// Flips the bits `mask` of the byte at `offset` of the file at `path`.
pub fn flip(path: &Path, offset: u64, mask: u8) {
    let mut b = std::fs::read(path).unwrap();
    b[offset as usize] ^= mask;
    std::fs::write(path, &b).unwrap();
}

/// Recomputes the trailer crc of the COMMIT record at `at` in a log's bytes
/// (after an edit of its commit info or entries), as a writer would have
/// written it: the record checks out again.
pub fn reseal_commit(b: &mut [u8], at: usize) {
    use pagelog::format;
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let salt = u64_at(format::HDR_SALT);
    let length = u64_at(at + format::RH_LENGTH) as usize;
    let ci = at + format::RECORD_HEADER_SIZE;
    let entries = u32::from_le_bytes(b[ci + format::CI_ENTRIES..ci + format::CI_ENTRIES + 4].try_into().unwrap());
    let payload = format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE + entries as usize * format::ENTRY_SIZE;
    let t = at + length - format::TRAILER_SIZE;
    let crc = format::salted_crc(salt, &[&b[at..at + payload], &b[t..t + format::TR_CRC]]);
    b[t + format::TR_CRC..t + format::TRAILER_SIZE].copy_from_slice(&crc.to_le_bytes());
}

/// Makes a log of 4 versions at `db` whose version 2 alone reads a damaged
/// frame (a byte flipped), recovery and the latest version untouched, and
/// returns that frame's offset. Page 2 is rewritten whole by every version
/// (random bytes: stored as frames, never as patches based on version 2's
/// image).
pub fn damage_a_page_only_version_2_reads(db: &Path) -> u64 {
    use pagelog::version::Pages;
    let c = open(db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)").unwrap();
    c.execute_batch("INSERT INTO t VALUES(1, randomblob(3000))").unwrap();
    for _ in 3..=4 {
        c.execute_batch("UPDATE t SET b = randomblob(3000)").unwrap();
    }
    assert_eq!(version(&c), 4);
    drop(c);
    let log = pagelog::Log::open(db, pagelog::OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let latest = log.refresh().unwrap();
    let (Pages::Full(old), Pages::Full(new)) = (&log.version(2).unwrap().map, &latest.map) else {
        panic!("a format-3 log has full maps")
    };
    let (o, n) = (old.get(2).unwrap(), new.get(2).unwrap());
    assert_ne!(o, n, "version 2 and the latest share page 2");
    drop(log);
    flip(db, o.offset + 200, 0xff);
    o.offset
}
