//! What a whole child process cost: CPU time (user + system) and peak
//! resident memory, from `wait4`'s `rusage` of that one child, plus its
//! wall time from spawn to exit. Used to time `sqlite3` shell processes
//! that open a database and run one query (issue 21).
//!
//! Invariant: the child is reaped with `wait4` on its own pid, so the
//! figures are that child's alone (not every child's, as `RUSAGE_CHILDREN`
//! would be), including what its own children cost once they were reaped.
//!
//! Why a helper process: Linux's `ru_maxrss` of a child includes the peak
//! RSS of the address space it was spawned from (`exec` keeps the old mm's
//! high-water mark), so a child of a harness holding a large cache would
//! report the harness's RSS, not its own. [`run`] therefore starts a small
//! helper (this binary again, `--cost-child`, see [`cost_child_main`]),
//! which spawns the measured program, reaps it, and appends one line
//! `speedtest-cost: CPU_SECS MAXRSS_KIB WALL_SECS EXIT_CODE` to its stdout;
//! the helper's own few MiB are the floor of what can be measured.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// One child's cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    /// User + system CPU seconds.
    pub cpu: f64,
    /// Peak resident set, bytes (`ru_maxrss`, which Linux gives in KiB).
    pub max_rss: u64,
    /// Spawn to exit, seconds.
    pub wall: f64,
}

/// What the child printed.
#[derive(Clone, Debug)]
pub struct Finished {
    pub cost: Cost,
    pub stdout: String,
    pub stderr: String,
    /// The exit code; `None` if a signal ended it.
    pub code: Option<i32>,
}

fn secs(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

/// The marker of the helper's last line.
const MARK: &str = "speedtest-cost: ";

/// Runs `program args` through the helper `helper --cost-child` with
/// `input` on its stdin; the cost is the program's alone.
pub fn run(helper: &Path, program: &Path, args: &[&OsStr], input: &[u8]) -> Result<Finished, String> {
    let mut cmd = Command::new(helper);
    cmd.arg("--cost-child").arg(program).args(args);
    let mut f = run_direct(&mut cmd, input)?;
    let at = f.stdout.rfind(MARK).ok_or_else(|| format!("the --cost-child helper failed: {}", f.stderr.trim()))?;
    let line = f.stdout.split_off(at);
    let v: Vec<f64> = line[MARK.len()..].split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let [cpu, kib, wall, code] = v[..] else {
        return Err(format!("the --cost-child helper printed {line:?}"));
    };
    f.cost = Cost { cpu, max_rss: kib as u64 * 1024, wall };
    f.code = (code >= 0.0).then_some(code as i32);
    Ok(f)
}

/// The helper: `--cost-child PROGRAM ARGS…` runs the program with this
/// process's stdio, reaps it and prints the marker line. Returns the exit
/// status for this process.
pub fn cost_child_main(mut args: impl Iterator<Item = OsString>) -> i32 {
    let Some(program) = args.next() else {
        eprintln!("--cost-child: no program");
        return 2;
    };
    let t0 = Instant::now();
    let child = match Command::new(&program).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("--cost-child: run {program:?}: {e}");
            return 2;
        }
    };
    match reap(child.id() as libc::pid_t) {
        Ok((status, ru)) => {
            let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
            let cpu = secs(ru.ru_utime) + secs(ru.ru_stime);
            println!("{MARK}{cpu} {} {} {code}", ru.ru_maxrss, t0.elapsed().as_secs_f64());
            0
        }
        Err(e) => {
            eprintln!("--cost-child: {e}");
            2
        }
    }
}

/// `wait4` on our own unreaped child.
fn reap(pid: libc::pid_t) -> Result<(libc::c_int, libc::rusage), String> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; an all-zero value is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unreaped child (std's Child never waited on
    // it); status and ru are valid, exclusive pointers for the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    Ok((status, ru))
}

/// Runs `cmd` with `input` on its stdin, collects its output, and reaps it
/// with `wait4` (its `ru_maxrss` includes this process's; see above).
pub fn run_direct(cmd: &mut Command, input: &[u8]) -> Result<Finished, String> {
    let what = format!("{:?}", cmd.get_program());
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {what}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let mut err_pipe = child.stderr.take().ok_or("no stderr pipe")?;
    // stderr is drained by a thread so that a chatty child cannot block on
    // it while we wait on stdout.
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let write_result = stdin.write_all(input);
    drop(stdin);
    let mut stdout = String::new();
    let read_result = child.stdout.take().ok_or("no stdout pipe")?.read_to_string(&mut stdout);
    let (status, ru) = reap(child.id() as libc::pid_t).map_err(|e| format!("{what}: {e}"))?;
    let wall = t0.elapsed().as_secs_f64();
    let stderr = err_reader.join().unwrap_or_default();
    write_result.map_err(|e| format!("{what}: write its stdin: {e} (stderr: {})", stderr.trim()))?;
    read_result.map_err(|e| format!("{what}: read its stdout: {e}"))?;
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let cost = Cost { cpu: secs(ru.ru_utime) + secs(ru.ru_stime), max_rss: ru.ru_maxrss as u64 * 1024, wall };
    Ok(Finished { cost, stdout, stderr, code })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_reports_its_output_and_cost() {
        let f = run_direct(Command::new("cat").arg("-"), b"hello\n").unwrap();
        assert_eq!(f.stdout, "hello\n");
        assert_eq!(f.code, Some(0));
        assert!(f.cost.max_rss > 0 && f.cost.wall > 0.0);
        let f = run_direct(&mut Command::new("false"), b"").unwrap();
        assert_eq!(f.code, Some(1));
    }
}
