//! Creating a database where the directory is read-only fails with the
//! reason the system gave: permission denied, naming the file. Before, the
//! read-only retry (for a file that exists but is not writable) failed with
//! ENOENT, and its "No such file or directory" replaced the real EACCES in
//! SQLite's error log.
//!
//! Mode 555 does not restrict root: as root the shell runs as nobody
//! (`setpriv`), else as the current user; where neither can be had the test
//! says so and skips.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use pagelog_e2e::{extension, sqlite3_shell, TempDir};

const NOBODY: &str = "65534";

/// How to run the shell so that mode 555 refuses it, or why it cannot be.
fn unprivileged_shell() -> Result<Command, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(Command::new(sqlite3_shell()));
    }
    let setpriv = Path::new("/usr/bin/setpriv");
    if !setpriv.exists() {
        return Err("running as root and /usr/bin/setpriv (util-linux) is not installed".into());
    }
    let args = ["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"];
    let probe = Command::new(setpriv).args(args).arg("true").status().map_err(|e| e.to_string())?;
    if !probe.success() {
        return Err(format!("running as root and setpriv cannot switch to uid {NOBODY} here ({probe})"));
    }
    let mut c = Command::new(setpriv);
    c.args(args).arg(sqlite3_shell());
    Ok(c)
}

#[test]
fn creating_a_database_in_a_read_only_directory_reports_permission_denied_naming_the_file() {
    let mut shell = match unprivileged_shell() {
        Ok(c) => c,
        Err(why) => {
            println!("SKIPPED: {why}");
            return;
        }
    };
    let d = TempDir::new("ro-dir-create");
    // The extension where the unprivileged user can read it.
    let ext = d.path("libpagelog.so");
    std::fs::copy(extension(), &ext).unwrap();
    std::fs::set_permissions(&ext, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ro = d.path("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let script = format!(
        ".log stderr\n.load {}\n.open file:new.db?vfs=pagelog\nCREATE TABLE t(x);\n",
        ext.to_string_lossy().trim_end_matches(".so")
    );
    use std::io::Write;
    let mut child = shell
        .arg("-batch")
        .current_dir(&ro)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let name = ro.join("new.db");
    let want = format!("pagelog: open {}: Permission denied", name.display());
    assert!(err.contains(&want), "SQLite's error log names the refusal ({want}):\n{err}");
    assert!(!err.contains("No such file"), "the retry's ENOENT is not the reason:\n{err}");
    assert!(!name.exists(), "nothing was created");
}
