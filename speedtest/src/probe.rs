//! Counting the fsync/fdatasync calls of test 1 with `strace`.
//!
//! Stock SQLite has no sync counter, so the harness runs test 1 once more per
//! configuration in a child process under
//! `strace -f -e trace=fsync,fdatasync,openat` and counts the sync calls made
//! between two markers: the child opens two empty files in `--dir`, named
//! [`MARK_BEGIN`] and [`MARK_END`], right before and after the test, so
//! setup (creating the file, switching to WAL) and closing are not counted.
//!
//! * in-process mode: the child is this executable again, with the hidden
//!   `--probe-child CONFIG` flag ([`run_probe_child`]);
//! * `--shell` mode: the child is the `sqlite3` shell, and the markers are
//!   `.read` commands of the (empty) marker files.
//!
//! The probe runs after the timed runs, on its own file, so strace's
//! overhead never touches a timing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::Config;
use crate::measure::remove_db_files;
use crate::runner::{self, Mode, ShellOpts};
use crate::workload::Workload;

/// File names of the markers, created empty in `--dir`.
pub const MARK_BEGIN: &str = "speedtest-fsync-probe-begin.sql";
pub const MARK_END: &str = "speedtest-fsync-probe-end.sql";

/// Sync calls seen during test 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncCounts {
    pub fsync: u64,
    pub fdatasync: u64,
    /// Transactions test 1 commits (1 CREATE TABLE + one per INSERT).
    pub commits: u64,
}

impl SyncCounts {
    pub fn per_commit(&self) -> f64 {
        (self.fsync + self.fdatasync) as f64 / self.commits.max(1) as f64
    }
}

/// The probe's outcome for one configuration.
#[derive(Clone, Debug)]
pub enum ProbeOutcome {
    Counted(SyncCounts),
    /// Why there is no count ("strace not found", "--no-fsync-probe", an error).
    NotAvailable(String),
}

/// Whether `strace` can be run.
pub fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The file the probe works on: `speedtest-<config>.probe.db`.
pub fn probe_db_path(dir: &Path, cfg: Config) -> PathBuf {
    dir.join(format!("speedtest-{}.probe.db", cfg.name()))
}

/// Counts test 1's syncs for `cfg` under strace.
pub fn probe(cfg: Config, workload: &Workload, dir: &Path, mode: &Mode) -> Result<SyncCounts, String> {
    let test1 = workload.tests.first().ok_or_else(|| "the workload has no tests".to_string())?;
    let db = probe_db_path(dir, cfg);
    let trace = dir.join(format!("speedtest-{}.probe.strace", cfg.name()));
    remove_db_files(&db)?;
    for m in [MARK_BEGIN, MARK_END] {
        fs::write(dir.join(m), "").map_err(|e| format!("write {}: {e}", dir.join(m).display()))?;
    }

    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o"]).arg(&trace).args(["-e", "trace=fsync,fdatasync,openat"]);
    let mut script_file = None;
    match mode {
        Mode::InProcess => {
            let exe = std::env::current_exe().map_err(|e| format!("fsync probe: cannot find this executable: {e}"))?;
            cmd.arg(exe)
                .args(["--probe-child", cfg.name(), "--scale"])
                .arg(workload.scale.factor.to_string())
                .arg("--dir")
                .arg(dir);
        }
        Mode::Shell(sh) => {
            let script = dir.join(format!("speedtest-{}.probe.sql", cfg.name()));
            fs::write(&script, shell_probe_script(cfg, &db, sh, workload)?)
                .map_err(|e| format!("write {}: {e}", script.display()))?;
            let sqlite = runner::shell_command(cfg, &db, sh, true);
            cmd.arg(sqlite.get_program()).args(sqlite.get_args());
            script_file = Some(script);
        }
    }
    if let Some(s) = &script_file {
        let f = fs::File::open(s).map_err(|e| format!("open {}: {e}", s.display()))?;
        cmd.stdin(Stdio::from(f));
    } else {
        cmd.stdin(Stdio::null());
    }
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{cfg}: fsync probe: run strace: {e}"))?;
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(format!(
            "{cfg}: fsync probe: strace {}, stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = fs::read_to_string(&trace).map_err(|e| format!("{cfg}: fsync probe: read {}: {e}", trace.display()))?;
    let (fsync, fdatasync) = count_syncs_between_marks(&text).ok_or_else(|| {
        format!(
            "{cfg}: fsync probe: the markers are missing from {} (child stderr: {})",
            trace.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    remove_db_files(&db)?;
    let _ = fs::remove_file(&trace);
    for m in [MARK_BEGIN, MARK_END] {
        let _ = fs::remove_file(dir.join(m));
    }
    if let Some(s) = script_file {
        let _ = fs::remove_file(s);
    }
    Ok(SyncCounts { fsync, fdatasync, commits: test1.commits })
}

fn dir_of(db: &Path) -> &Path {
    db.parent().unwrap_or(Path::new("."))
}

fn shell_probe_script(cfg: Config, db: &Path, sh: &ShellOpts, workload: &Workload) -> Result<String, String> {
    let mut s = runner::shell_open_preamble(cfg, db, sh)?;
    for sql in cfg.setup_sql() {
        s.push_str(&sql);
        s.push('\n');
    }
    s.push_str(&format!(".read \"{}\"\n", dir_of(db).join(MARK_BEGIN).display()));
    for sql in &workload.tests[0].statements {
        s.push_str(sql);
        s.push('\n');
    }
    s.push_str(&format!(".read \"{}\"\n", dir_of(db).join(MARK_END).display()));
    Ok(s)
}

/// Counts `fsync(` and `fdatasync(` calls in strace output between the
/// begin and end markers. `None` if a marker is missing.
pub fn count_syncs_between_marks(trace: &str) -> Option<(u64, u64)> {
    let mut inside = false;
    let mut seen_begin = false;
    let (mut fsync, mut fdatasync) = (0, 0);
    for line in trace.lines() {
        if line.contains(MARK_BEGIN) {
            inside = true;
            seen_begin = true;
            continue;
        }
        if line.contains(MARK_END) {
            return seen_begin.then_some((fsync, fdatasync));
        }
        if !inside {
            continue;
        }
        // With -f each line starts with the pid; an interrupted call shows
        // as "fsync(3 <unfinished ...>" then "<... fsync resumed>": count the first.
        let call = line.trim_start().trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
        if call.starts_with("fsync(") {
            fsync += 1;
        } else if call.starts_with("fdatasync(") {
            fdatasync += 1;
        }
    }
    None
}

/// The hidden `--probe-child CONFIG` mode: set up a fresh database, run
/// test 1 between the two markers, close.
pub fn run_probe_child(cfg: Config, workload: &Workload, dir: &Path) -> Result<(), String> {
    let test1 = workload.tests.first().ok_or_else(|| "the workload has no tests".to_string())?;
    let db = probe_db_path(dir, cfg);
    remove_db_files(&db)?;
    let conn = runner::open(cfg, &db)?;
    runner::setup(&conn, cfg)?;
    // The opens are the markers strace sees.
    let _ = fs::File::open(dir.join(MARK_BEGIN));
    runner::run_test(&conn, test1)?;
    let _ = fs::File::open(dir.join(MARK_END));
    conn.close().map_err(|(_, e)| format!("{cfg}: close: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_are_counted_between_the_markers_only() {
        let trace = format!(
            "100 fsync(3) = 0\n\
             100 openat(AT_FDCWD, \"{MARK_BEGIN}\", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)\n\
             100 fdatasync(4) = 0\n\
             100 openat(AT_FDCWD, \"/x.db-journal\", O_RDWR) = 5\n\
             100 fsync(5) = 0\n\
             101 fsync(6 <unfinished ...>\n\
             101 <... fsync resumed>) = 0\n\
             100 openat(AT_FDCWD, \"{MARK_END}\", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)\n\
             100 fsync(3) = 0\n"
        );
        assert_eq!(count_syncs_between_marks(&trace), Some((2, 1)));
        assert_eq!(count_syncs_between_marks("1 fsync(3) = 0\n"), None);
    }
}
