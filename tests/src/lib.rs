//! Helpers shared by the end-to-end tests in `tests/tests/`: temporary
//! directories, connections through the pagelog VFS, and the paths of the
//! real clients the tests drive (the built extension, the sqlite3 shell,
//! Debian's python3, the `plworker` binary).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use rusqlite::{Connection, OpenFlags};

pub mod spec;

/// A fresh, empty directory for one test (removed when dropped).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join("pagelog-tests").join(format!(
            "{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
    /// The path of the file named by exactly these bytes (which need not be UTF-8).
    pub fn path_bytes(&self, f: &[u8]) -> PathBuf {
        self.0.join(pagelog::path_from_bytes(f))
    }
    /// Names of the files in the directory as their exact bytes, sorted.
    pub fn names(&self) -> Vec<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        let mut v: Vec<Vec<u8>> =
            std::fs::read_dir(&self.0).unwrap().map(|e| e.unwrap().file_name().as_bytes().to_vec()).collect();
        v.sort();
        v
    }
    /// Names of the files in the directory, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn rw_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_URI
}

/// Opens `path` through the pagelog VFS (registering it first).
pub fn open(path: &Path) -> Connection {
    try_open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

pub fn try_open(path: &Path) -> rusqlite::Result<Connection> {
    pagelog::register().expect("register pagelog");
    Connection::open_with_flags_and_vfs(path, rw_flags(), "pagelog")
}

/// `path` as the path part of a `file:` URI: every byte but unreserved ones
/// and `/` percent-encoded, so any name (`?`, `#`, `%`, bytes that are not
/// UTF-8) reaches SQLite as exactly its bytes.
pub fn file_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut s = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// Opens version `n` of the database at `path`, read-only and in place
/// (`?version=N`).
pub fn open_version(path: &Path, n: u64) -> Connection {
    pagelog::register().expect("register pagelog");
    let uri = format!("{}?version={n}", file_uri(path));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    Connection::open_with_flags_and_vfs(&uri, flags, "pagelog")
        .unwrap_or_else(|e| panic!("open version {n} of {}: {e}", path.display()))
}

/// `PRAGMA pagelog_version` as a number.
pub fn version(c: &Connection) -> u64 {
    let s: String = c.query_row("PRAGMA pagelog_version", [], |r| r.get(0)).unwrap();
    s.parse().unwrap()
}

pub fn integrity(c: &Connection) -> String {
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap()
}

pub fn count(c: &Connection, table: &str) -> i64 {
    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

/// The loadable extension `cargo test` built beside this test binary.
pub fn extension() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for cand in [deps.join("libpagelog.so"), deps.parent().unwrap().join("libpagelog.so")] {
        if cand.exists() {
            return cand;
        }
    }
    panic!("libpagelog.so not found next to {}; run `cargo build -p pagelog`", exe.display());
}

/// The extension path without its `.so` suffix, as `.load` takes it.
pub fn extension_stem() -> String {
    let p = extension();
    p.to_string_lossy().trim_end_matches(".so").to_string()
}

/// The stock sqlite3 shell; the tests need it (`scripts/test` installs it).
pub fn sqlite3_shell() -> PathBuf {
    for p in ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("the sqlite3 shell is not installed (apt-get install sqlite3)");
}

/// Runs the sqlite3 shell in `dir` with `script` on stdin.
pub fn run_shell(dir: &Path, script: &str) -> Output {
    run_shell_bytes(dir, script.as_bytes())
}

/// Runs the sqlite3 shell in `dir` with `script`'s exact bytes on stdin
/// (file names and SQL that are not UTF-8 reach SQLite as they are).
pub fn run_shell_bytes(dir: &Path, script: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(sqlite3_shell())
        .arg("-batch")
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script).unwrap();
    child.wait_with_output().unwrap()
}

/// A new database for the bank workload of `plworker stress-writer` and
/// `stress-reader`: `accounts` rows of `balance` each, a zero counter per
/// writer, an empty history; made in one transaction. Returns its
/// connection.
pub fn open_bank(path: &Path, accounts: i64, balance: i64, writers: i64) -> Connection {
    let c = open(path);
    c.execute_batch(
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, bal INTEGER);
         CREATE TABLE counters(writer INTEGER PRIMARY KEY, n INTEGER NOT NULL);
         CREATE TABLE history(writer INTEGER, pad BLOB);",
    )
    .unwrap();
    c.execute_batch("BEGIN").unwrap();
    for id in 0..accounts {
        c.execute("INSERT INTO accounts VALUES (?1, ?2)", [id, balance]).unwrap();
    }
    for w in 0..writers {
        c.execute("INSERT INTO counters VALUES (?1, 0)", [w]).unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    c
}

/// Debian's python3, whose sqlite3 module can load extensions.
pub fn python3() -> PathBuf {
    let p = PathBuf::from("/usr/bin/python3");
    assert!(p.exists(), "Debian's /usr/bin/python3 is not installed (apt-get install python3)");
    p
}

/// How long a stress test runs: `PAGELOG_STRESS_SECS=N`, else 60 s under
/// `PAGELOG_LONG=1`, else `default`.
pub fn stress_seconds(default: f64) -> f64 {
    if let Some(s) = std::env::var("PAGELOG_STRESS_SECS").ok().and_then(|s| s.parse().ok()) {
        return s;
    }
    if std::env::var("PAGELOG_LONG").is_ok_and(|v| !v.is_empty() && v != "0") {
        60.0
    } else {
        default
    }
}

/// The number after the word `name` in a worker's output (`commits 12 busy 0`).
pub fn field(out: &str, name: &str) -> u64 {
    let mut it = out.split_whitespace();
    while let Some(w) = it.next() {
        if w == name {
            return it.next().and_then(|x| x.parse().ok()).unwrap_or_else(|| panic!("bad {name} in {out:?}"));
        }
    }
    panic!("no {name} in {out:?}")
}

/// A hash of every row of the retention tests' table `t(id, v, pad)` and
/// of `meta`, in id order, with the sum of `v`: two reads of one version
/// hash alike, any other page (another version's, a freed region's zeros)
/// changes it. Shared by `plworker retain-*` and `retention_under_kill.rs`.
pub fn rows_hash(c: &Connection) -> rusqlite::Result<(u64, i64)> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= x as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    let mut sum = 0i64;
    let mut st = c.prepare_cached("SELECT id, v, pad FROM t ORDER BY id")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let (id, v, pad): (i64, i64, Vec<u8>) = (r.get(0)?, r.get(1)?, r.get(2)?);
        sum += v;
        eat(&id.to_le_bytes());
        eat(&v.to_le_bytes());
        eat(&(pad.len() as u64).to_le_bytes());
        eat(&pad);
    }
    let n: i64 = c.query_row("SELECT n FROM meta", [], |r| r.get(0))?;
    eat(&n.to_le_bytes());
    Ok((h, sum))
}

/// Lines `version hash` (hash in hex) of a retention test's side file, in
/// order; a torn last line (its writer killed mid-write) is left out.
pub fn read_pairs(path: &Path) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let mut it = line.split_whitespace();
        match (it.next().map(str::parse), it.next().map(|h| u64::from_str_radix(h, 16)), it.next()) {
            (Some(Ok(v)), Some(Ok(h)), None) => out.push((v, h)),
            _ => panic!("{}: bad line {line:?}", path.display()),
        }
    }
    out
}

/// The Rust code blocks of the README (and of any docs/ page listed here)
/// are doc-tests of this crate, which has `pagelog` and `rusqlite` as
/// dependencies, as the README tells an app to: `cargo test` compiles and
/// runs them, so they cannot rot (tools/tests/docs_code_blocks.rs checks
/// every other block, and that each page with a rust block is listed here).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// Makes `path` a format-4 log whose first version is the database stock
/// SQLite builds by running `setup` on a plain file beside it (while format
/// 4 is in development only the log API creates such a log; SQLite, given
/// an empty file, would make it format 3).
pub fn format4_from_sqlite(path: &Path, setup: &str) {
    let plain = path.with_extension("plain");
    let c = Connection::open(&plain).unwrap();
    c.execute_batch(setup).unwrap();
    drop(c);
    let bytes = std::fs::read(&plain).unwrap();
    std::fs::remove_file(&plain).unwrap();
    let opts = pagelog::OpenOptions { create: true, format4: true, ..Default::default() };
    let log = pagelog::Log::open(path, opts).unwrap();
    let _g = log.lock_writer(std::time::Duration::from_secs(5)).unwrap();
    let base = log.prepare_write().unwrap();
    let mut txn = log.begin(base, 1 << 20);
    txn.write(&log, 0, &bytes).unwrap();
    log.commit(txn, pagelog::Durability::Full).unwrap().expect("version 1");
}
