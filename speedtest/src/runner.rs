//! Runs the workload for one configuration once, on a fresh database file,
//! timing each test — in this process through rusqlite's bundled SQLite, or
//! (`--shell`) through the stock `sqlite3` shell as speedtest.tcl did.
//!
//! In-process, one connection serves the whole run: open and set up
//! (untimed), then each test's statements one at a time — `prepare`, step
//! every row, read every column, finalize — the way the shell executes a
//! script. Closing the connection is timed separately (for WAL it
//! checkpoints). With `--shell`, each test is one `sqlite3 db <testN.sql>`
//! process, timed from spawn to exit, exactly like the Tcl `time "exec …"`.
//!
//! Before every test the harness runs `sync` (and sleeps `--pause-ms`), as
//! the script's `exec sync; after $delay` did; that is not timed. After the
//! run the database is reopened and its row counts checked against the
//! script's (see [`crate::workload::TableCounts`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::config::{Config, PAGELOG_VFS};
use crate::measure::{
    db_sizes, device_written_bytes, remove_db_files, sync_filesystems, Filesystem, IoCounters, Sizes,
};
use crate::workload::{TableCounts, Test, Workload};

/// How statements reach SQLite.
#[derive(Clone, Debug)]
pub enum Mode {
    /// rusqlite's bundled SQLite, in this process.
    InProcess,
    /// The stock `sqlite3` shell, one process per test.
    Shell(ShellOpts),
}

#[derive(Clone, Debug)]
pub struct ShellOpts {
    /// The `sqlite3` executable.
    pub sqlite3: PathBuf,
    /// `libpagelog.so`, loaded with `.load` for pagelog configurations.
    pub extension: PathBuf,
}

/// Settings shared by every run.
#[derive(Clone, Debug)]
pub struct RunOpts {
    pub dir: PathBuf,
    pub mode: Mode,
    /// Run `sync` before each test.
    pub sync_before_test: bool,
    /// Sleep this long before each test (after `sync`).
    pub pause: Duration,
    /// The filesystem holding `dir`, for the device's written bytes.
    pub filesystem: Option<Filesystem>,
}

/// One test of one run.
#[derive(Clone, Debug)]
pub struct TestSample {
    pub seconds: f64,
    /// `/proc/self/io` delta over the test; `None` where unavailable.
    pub io: Option<IoCounters>,
    /// `pagelog::sync_count()` delta (pagelog, in-process only).
    pub vfs_syncs: Option<u64>,
    /// Bytes the device under the directory wrote from the test's start to a
    /// `sync` after it (whole device; `None` without `sync` or a device).
    pub device_bytes: Option<u64>,
}

/// One run of one configuration.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub config: Config,
    /// 1-based.
    pub run: u32,
    /// One per test, in workload order.
    pub tests: Vec<TestSample>,
    /// Time to close the connection (in-process only).
    pub close_seconds: Option<f64>,
    /// Files after the last test, connection still open (in-process only).
    pub size_open: Option<Sizes>,
    /// Files after the connection closed.
    pub size_closed: Sizes,
    /// `PRAGMA journal_mode` after setup.
    pub journal_mode: String,
    /// `PRAGMA synchronous` after setup (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA).
    pub synchronous: i64,
}

/// The database file of `cfg` in `dir`.
pub fn db_path(dir: &Path, cfg: Config) -> PathBuf {
    dir.join(cfg.db_file_name())
}

/// Opens (creating) the database with the configuration's VFS. No pragmas.
pub fn open(cfg: Config, path: &Path) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let r = if cfg.is_pagelog() {
        Connection::open_with_flags_and_vfs(path, flags, PAGELOG_VFS)
    } else {
        Connection::open_with_flags(path, flags)
    };
    r.map_err(|e| format!("{cfg}: open {}: {e}", path.display()))
}

/// Executes one SQL statement as the shell would: prepare, step through
/// every row reading every column, finalize.
pub fn exec_statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(sql)?;
    let ncol = stmt.column_count();
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        for i in 0..ncol {
            std::hint::black_box(row.get_ref(i)?);
        }
    }
    Ok(())
}

/// Executes a test's statements in order.
pub fn run_test(conn: &Connection, test: &Test) -> Result<(), String> {
    for (i, sql) in test.statements.iter().enumerate() {
        exec_statement(conn, sql)
            .map_err(|e| format!("test {} ({}), statement {} `{sql}`: {e}", test.id, test.title, i + 1))?;
    }
    Ok(())
}

/// Runs the configuration's setup pragmas on a new database, then checks
/// and returns what SQLite reports: `(journal_mode, synchronous)`.
pub fn setup(conn: &Connection, cfg: Config) -> Result<(String, i64), String> {
    for sql in cfg.setup_sql() {
        exec_statement(conn, &sql).map_err(|e| format!("{cfg}: `{sql}`: {e}"))?;
    }
    let jm: String = conn
        .query_row("PRAGMA journal_mode;", [], |r| r.get(0))
        .map_err(|e| format!("{cfg}: PRAGMA journal_mode: {e}"))?;
    let sync: i64 = conn
        .query_row("PRAGMA synchronous;", [], |r| r.get(0))
        .map_err(|e| format!("{cfg}: PRAGMA synchronous: {e}"))?;
    check_settings(cfg, &jm, sync)?;
    Ok((jm, sync))
}

fn check_settings(cfg: Config, journal_mode: &str, synchronous: i64) -> Result<(), String> {
    if let Some(want) = cfg.journal_mode() {
        if !journal_mode.eq_ignore_ascii_case(want) {
            return Err(format!("{cfg}: journal_mode is {journal_mode:?} after setup, expected {want:?}"));
        }
    }
    let (name, want) = cfg.synchronous();
    if synchronous != want {
        return Err(format!("{cfg}: synchronous is {synchronous} after setup, expected {want} ({name})"));
    }
    Ok(())
}

/// One query whose single row is `t1 count, t2 count` — or, for a table that
/// should not exist, the number of tables by that name (expected 0).
pub fn counts_sql(expect: TableCounts) -> String {
    let part = |name: &str, exists: bool| {
        if exists {
            format!("(SELECT count(*) FROM {name})")
        } else {
            format!("(SELECT count(*) FROM sqlite_master WHERE type='table' AND name='{name}')")
        }
    };
    format!("SELECT {}, {};", part("t1", expect.t1.is_some()), part("t2", expect.t2.is_some()))
}

fn check_counts_values(cfg: Config, expect: TableCounts, got: (u64, u64)) -> Result<(), String> {
    let want = (expect.t1.unwrap_or(0), expect.t2.unwrap_or(0));
    if got != want {
        let describe = |c: Option<u64>| match c {
            Some(n) => format!("{n} rows"),
            None => "no table".to_string(),
        };
        return Err(format!(
            "{cfg}: the database does not hold what the script implies: \
             t1 expected {}, t2 expected {}; query `{}` returned ({}, {})",
            describe(expect.t1),
            describe(expect.t2),
            counts_sql(expect),
            got.0,
            got.1
        ));
    }
    Ok(())
}

/// Checks the row counts of an open database.
pub fn check_counts(conn: &Connection, cfg: Config, expect: TableCounts) -> Result<(), String> {
    let sql = counts_sql(expect);
    let got: (i64, i64) =
        conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| format!("{cfg}: `{sql}`: {e}"))?;
    check_counts_values(cfg, expect, (got.0 as u64, got.1 as u64))
}

/// Syncs (unless `--no-sync`) and pauses; returns the device's written
/// bytes after the sync, for [`device_bytes_since`].
fn before_test(opts: &RunOpts) -> Result<Option<u64>, String> {
    if opts.sync_before_test {
        sync_filesystems()?;
    }
    let dev = if opts.sync_before_test { opts.filesystem.as_ref().and_then(device_written_bytes) } else { None };
    if !opts.pause.is_zero() {
        std::thread::sleep(opts.pause);
    }
    Ok(dev)
}

/// After a test (and outside its timing): syncs, so that what the test left
/// dirty is written back, and returns the device's bytes written since `dev0`.
fn device_bytes_since(opts: &RunOpts, dev0: Option<u64>) -> Result<Option<u64>, String> {
    let Some(dev0) = dev0 else { return Ok(None) };
    sync_filesystems()?;
    Ok(opts.filesystem.as_ref().and_then(device_written_bytes).map(|d| d.saturating_sub(dev0)))
}

/// Runs every test of `workload` for `cfg` on a fresh file.
pub fn run_once(cfg: Config, run: u32, workload: &Workload, opts: &RunOpts) -> Result<RunRecord, String> {
    match &opts.mode {
        Mode::InProcess => run_in_process(cfg, run, workload, opts),
        Mode::Shell(sh) => run_in_shell(cfg, run, workload, opts, sh),
    }
}

fn run_in_process(cfg: Config, run: u32, workload: &Workload, opts: &RunOpts) -> Result<RunRecord, String> {
    let path = db_path(&opts.dir, cfg);
    remove_db_files(&path)?;
    let conn = open(cfg, &path)?;
    let (journal_mode, synchronous) = setup(&conn, cfg)?;

    let mut tests = Vec::with_capacity(workload.tests.len());
    for test in &workload.tests {
        let dev0 = before_test(opts)?;
        let io0 = IoCounters::read();
        let s0 = cfg.is_pagelog().then(pagelog::sync_count);
        let t0 = Instant::now();
        run_test(&conn, test).map_err(|e| format!("{cfg} run {run}: {e}"))?;
        let seconds = t0.elapsed().as_secs_f64();
        let s1 = cfg.is_pagelog().then(pagelog::sync_count);
        let io = IoCounters::read().zip(io0).map(|(after, before)| after.since(&before));
        let device_bytes = device_bytes_since(opts, dev0)?;
        let vfs_syncs = s0.zip(s1).map(|(a, b)| b.saturating_sub(a));
        tests.push(TestSample { seconds, io, vfs_syncs, device_bytes });
    }

    let size_open = db_sizes(&path)?;
    let t0 = Instant::now();
    conn.close().map_err(|(_, e)| format!("{cfg} run {run}: close: {e}"))?;
    let close_seconds = t0.elapsed().as_secs_f64();
    let size_closed = db_sizes(&path)?;

    let conn = open(cfg, &path)?;
    check_counts(&conn, cfg, workload.final_counts()).map_err(|e| format!("run {run}: {e}"))?;
    drop(conn);

    Ok(RunRecord {
        config: cfg,
        run,
        tests,
        close_seconds: Some(close_seconds),
        size_open: Some(size_open),
        size_closed,
        journal_mode,
        synchronous,
    })
}

// ---- the sqlite3 shell ---------------------------------------------------------

/// `path` as a `file:` URI path: percent-encodes all but unreserved bytes and `/`.
pub fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut s = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// Dot-commands that open the database in the shell. Stock configurations
/// pass the file on the command line instead and need none.
pub fn shell_open_preamble(cfg: Config, path: &Path, sh: &ShellOpts) -> Result<String, String> {
    if !cfg.is_pagelog() {
        return Ok(String::new());
    }
    let ext = sh.extension.to_str().ok_or_else(|| format!("extension path {} is not UTF-8", sh.extension.display()))?;
    if ext.contains(['"', '\n']) {
        return Err(format!("extension path {ext:?} contains a quote or newline"));
    }
    Ok(format!(".load \"{ext}\"\n.open \"file:{}?vfs={PAGELOG_VFS}\"\n", uri_path(path)))
}

/// `sqlite3 [-bail] [db]`: stock configurations name the file, pagelog ones
/// `.open` it in the script.
pub fn shell_command(cfg: Config, path: &Path, sh: &ShellOpts, bail: bool) -> Command {
    let mut c = Command::new(&sh.sqlite3);
    if bail {
        c.arg("-bail");
    }
    if !cfg.is_pagelog() {
        c.arg(path);
    }
    c
}

/// Runs the shell with `script` on stdin; output captured. An error exit or
/// anything on stderr is an error.
fn run_shell_script(mut cmd: Command, script: &Path, what: &str) -> Result<Output, String> {
    let input = fs::File::open(script).map_err(|e| format!("open {}: {e}", script.display()))?;
    let out = cmd
        .stdin(Stdio::from(input))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{what}: run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(format!(
            "{what}: {:?} {} with stderr: {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out)
}

/// The scripts of one configuration, written once into `--dir`.
#[derive(Clone, Debug)]
pub struct ShellScripts {
    pub setup: PathBuf,
    pub tests: Vec<PathBuf>,
    pub verify: PathBuf,
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    let mut f = fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Writes `<db>.setup.sql`, `<db>.testN.sql` and `<db>.verify.sql` for `cfg`.
pub fn write_shell_scripts(
    cfg: Config,
    workload: &Workload,
    dir: &Path,
    sh: &ShellOpts,
) -> Result<ShellScripts, String> {
    let path = db_path(dir, cfg);
    let open = shell_open_preamble(cfg, &path, sh)?;
    let paths = shell_script_paths(cfg, workload, dir);

    let mut text = open.clone();
    for s in cfg.setup_sql() {
        text.push_str(&s);
        text.push('\n');
    }
    text.push_str("PRAGMA journal_mode;\nPRAGMA synchronous;\n");
    write_file(&paths.setup, &text)?;

    for (t, p) in workload.tests.iter().zip(&paths.tests) {
        let mut text = open.clone();
        text.push_str(&cfg.per_connection_sql());
        text.push('\n');
        for s in &t.statements {
            text.push_str(s);
            text.push('\n');
        }
        write_file(p, &text)?;
    }

    write_file(&paths.verify, &format!("{open}{}\n", counts_sql(workload.final_counts())))?;
    Ok(paths)
}

/// Where [`write_shell_scripts`] puts `cfg`'s scripts.
pub fn shell_script_paths(cfg: Config, workload: &Workload, dir: &Path) -> ShellScripts {
    let base = cfg.db_file_name();
    ShellScripts {
        setup: dir.join(format!("{base}.setup.sql")),
        tests: workload.tests.iter().map(|t| dir.join(format!("{base}.test{}.sql", t.id))).collect(),
        verify: dir.join(format!("{base}.verify.sql")),
    }
}

/// Parses the shell's `a|b` output of [`counts_sql`].
fn parse_counts(stdout: &[u8]) -> Option<(u64, u64)> {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let (a, b) = line.trim().split_once('|')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn run_in_shell(
    cfg: Config,
    run: u32,
    workload: &Workload,
    opts: &RunOpts,
    sh: &ShellOpts,
) -> Result<RunRecord, String> {
    let path = db_path(&opts.dir, cfg);
    let scripts = shell_script_paths(cfg, workload, &opts.dir);
    remove_db_files(&path)?;

    let out =
        run_shell_script(shell_command(cfg, &path, sh, true), &scripts.setup, &format!("{cfg} run {run}: setup"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut last = text.lines().rev().filter(|l| !l.trim().is_empty());
    let synchronous = last.next().and_then(|l| l.trim().parse::<i64>().ok());
    let journal_mode = last.next().map(|l| l.trim().to_string());
    let (Some(synchronous), Some(journal_mode)) = (synchronous, journal_mode) else {
        return Err(format!(
            "{cfg} run {run}: setup: cannot read journal_mode and synchronous from the shell's output {text:?}"
        ));
    };
    check_settings(cfg, &journal_mode, synchronous)?;

    let mut tests = Vec::with_capacity(workload.tests.len());
    for (test, script) in workload.tests.iter().zip(&scripts.tests) {
        let dev0 = before_test(opts)?;
        let cmd = shell_command(cfg, &path, sh, true);
        let io0 = IoCounters::read();
        let t0 = Instant::now();
        run_shell_script(cmd, script, &format!("{cfg} run {run}: test {} ({})", test.id, test.title))?;
        let seconds = t0.elapsed().as_secs_f64();
        let io = IoCounters::read().zip(io0).map(|(after, before)| after.since(&before));
        let device_bytes = device_bytes_since(opts, dev0)?;
        tests.push(TestSample { seconds, io, vfs_syncs: None, device_bytes });
    }
    let size_closed = db_sizes(&path)?;

    let out =
        run_shell_script(shell_command(cfg, &path, sh, true), &scripts.verify, &format!("{cfg} run {run}: verify"))?;
    let got = parse_counts(&out.stdout).ok_or_else(|| {
        format!("{cfg} run {run}: verify: unexpected shell output {:?}", String::from_utf8_lossy(&out.stdout))
    })?;
    check_counts_values(cfg, workload.final_counts(), got).map_err(|e| format!("run {run}: {e}"))?;

    Ok(RunRecord {
        config: cfg,
        run,
        tests,
        close_seconds: None,
        size_open: None,
        size_closed,
        journal_mode,
        synchronous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_are_percent_encoded() {
        assert_eq!(uri_path(Path::new("/a b/c?d#e%.db")), "/a%20b/c%3Fd%23e%25.db");
    }

    #[test]
    fn counts_sql_asks_for_absent_tables_by_name() {
        let sql = counts_sql(TableCounts { t1: Some(3), t2: None });
        assert_eq!(
            sql,
            "SELECT (SELECT count(*) FROM t1), (SELECT count(*) FROM sqlite_master WHERE type='table' AND name='t2');"
        );
    }

    #[test]
    fn shell_counts_are_parsed() {
        assert_eq!(parse_counts(b"10|250\n"), Some((10, 250)));
        assert_eq!(parse_counts(b"wal\n"), None);
    }
}
