//! What every subcommand shares: failures with exit codes, error messages
//! that name what was being done ("open log app.db: …"), opening logs, and
//! progress on stderr.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use pagelog::pagemap::Slot;
use pagelog::verify::Problem;
use pagelog::version::{Pages, Version};
use pagelog::{Error, EscapedName, Listing, Log, OpenOptions, Readable};

/// Exit codes: 0 ok, 1 failure or damage found, 2 usage (clap's own, and
/// [`Failure::usage`] for arguments clap cannot check).
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// A subcommand's failure: the message printed after "pagelog: ", and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub msg: String,
    pub code: i32,
}

impl Failure {
    pub fn new(what: impl Display, why: impl Display) -> Failure {
        Failure { msg: format!("{what}: {why}"), code: EXIT_FAILURE }
    }

    /// An argument the command cannot use: exit status 2, as clap's own
    /// usage errors.
    pub fn usage(what: impl Display, why: impl Display) -> Failure {
        Failure { msg: format!("{what}: {why}"), code: EXIT_USAGE }
    }
}

pub type CmdResult = Result<i32, Failure>;

/// A pagelog error without the file name (the context names it already).
pub fn describe(e: &Error) -> String {
    match e {
        Error::Io { op, offset: Some(o), source, .. } => format!("{op} at offset {o}: {source}"),
        Error::Io { op: "open", offset: None, source, .. } => source.to_string(),
        Error::Io { op, offset: None, source, .. } => format!("{op}: {source}"),
        Error::NotALog { reason, .. } => format!("not a pagelog log ({reason}); it was left unchanged"),
        Error::Corrupt { offset, expected, found, .. } => {
            format!("the log is damaged at offset {offset}: expected {expected}, found {found}")
        }
        Error::Busy { reason, .. } | Error::ReadOnly { reason, .. } => reason.clone(),
        Error::NoSuchVersion { version, latest, .. } => {
            format!("version {version} does not exist (the latest is {latest})")
        }
        Error::Reclaimed { version, oldest, latest, .. } => format!(
            "version {version} is no longer kept: the retention policy keeps versions {oldest} to {latest} \
             (and version 0, the empty database); see `pagelog retain`"
        ),
        Error::Unsupported(s) => s.clone(),
        Error::Unreadable { version, source } => {
            format!("version {version} cannot be read: {}; nothing was written", describe(source))
        }
        other => other.to_string(),
    }
}

/// Adds "what was being done" to errors.
pub trait Context<T> {
    fn ctx(self, what: impl Display) -> Result<T, Failure>;
}

impl<T> Context<T> for pagelog::Result<T> {
    fn ctx(self, what: impl Display) -> Result<T, Failure> {
        self.map_err(|e| {
            let what = what.to_string();
            let why = describe_in(&e, &what);
            Failure::new(what, why)
        })
    }
}

/// [`describe`], unless the error is about a file `what` does not name (the
/// temporary file `compact` and `upgrade` write beside the log, say): then
/// the whole message, which names that file.
fn describe_in(e: &Error, what: &str) -> String {
    let path = match e {
        Error::Io { path, .. }
        | Error::NotALog { path, .. }
        | Error::Corrupt { path, .. }
        | Error::Busy { path, .. }
        | Error::ReadOnly { path, .. }
        | Error::NoSuchVersion { path, .. }
        | Error::Reclaimed { path, .. } => path,
        // The log layer words these itself, starting with the file's name:
        // once is enough when the context names it already.
        Error::Unsupported(s) => {
            return match s.split_once(": ") {
                Some((file, rest)) if what.split_whitespace().any(|w| w == file) => rest.to_string(),
                _ => s.clone(),
            }
        }
        _ => return describe(e),
    };
    if what.contains(&path.escaped().to_string()) {
        describe(e)
    } else {
        e.to_string()
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, what: impl Display) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(what, e))
    }
}

/// Page `pgno` of `v` as its map stores it (offset and crc), before any
/// format-4 redirection: two versions whose slots are equal read the same
/// bytes.
pub fn stored_slot(v: &Version, pgno: u32) -> pagelog::Result<Option<Slot>> {
    match &v.map {
        Pages::Full(m) => Ok(m.get(pgno)),
        Pages::Tree(t) => t.get(pgno),
    }
}

/// The one of `versions` whose page map names the page image (or patch)
/// at `offset`, the offset of a damage: the version that damage hides.
pub fn version_reading<'a>(versions: &[&'a Version], offset: u64) -> Option<&'a Version> {
    versions.iter().copied().find(|v| {
        (1..=v.db_pages()).any(|p| {
            matches!(stored_slot(v, p), Ok(Some(s)) if s.offset != 0 && pagelog::patch::position(s.offset) == offset)
        })
    })
}

/// Opens an existing log, read-only (the tool never disturbs other processes
/// when it only reads, and never creates a file), for reading whatever of
/// it can be read: recovered,
/// or, when recovery finds damage, read forward from its start
/// (`pagelog::Readable`). The tools that only read (`export`, `log`,
/// `info`, `diff`, `restore --plain`) show or extract every version that
/// recovery or that forward read can prove intact, name the damage, and
/// exit 1 when they met any.
pub fn open_readable(db: &Path) -> Result<Readable, Failure> {
    Readable::open(db).ctx(format_args!("open log {}", db.escaped()))
}

/// Prints each damage a reading tool met on stderr, and returns the exit
/// code: 1 when there was any.
pub fn report_damage(db: &Path, damage: &[Problem]) -> i32 {
    for p in damage {
        eprintln!("pagelog: warning: log {} is damaged {p}", db.escaped());
    }
    if damage.is_empty() {
        0
    } else {
        EXIT_FAILURE
    }
}

/// The versions of a listing as people read them: `0, 1 to 7, 257 to 701`
/// (version 0, the empty database, can always be read).
pub fn ranges_text(l: &Listing) -> String {
    let mut parts = vec!["0".to_string()];
    for (a, b) in l.ranges() {
        parts.push(if a == b { a.to_string() } else { format!("{a} to {b}") });
    }
    parts.join(", ")
}

/// The failure for version `n` of a log read with `open_readable` that
/// cannot be read: it does not exist, or damage hides it (named, with the
/// versions that can be read).
pub fn unreadable(r: &Readable, n: u64, e: Error) -> Failure {
    let what = format_args!("log {}", r.log().path().escaped()).to_string();
    let listing = match r.listing() {
        Ok(l) => l,
        Err(e2) => return Failure::new(what, format_args!("{}; {}", describe(&e), describe(&e2))),
    };
    match e {
        Error::NoSuchVersion { latest, .. } => {
            let oldest = listing.versions.first().map_or(0, |v| v.version);
            let held = held_versions(oldest, latest);
            Failure::new(what, format_args!("version {n} does not exist ({held})"))
        }
        Error::Corrupt { .. } => Failure::new(
            what,
            format_args!(
                "version {n} cannot be read: {}; the versions that can be read are {}",
                describe(&e),
                ranges_text(&listing)
            ),
        ),
        e => Failure::new(what, describe(&e)),
    }
}

/// Opens an existing log for writing (never creates one).
pub fn open_writable(db: &Path) -> Result<Log, Failure> {
    Log::open(db, OpenOptions::default()).ctx(format_args!("open log {}", db.escaped()))
}

/// The versions a log holds: (oldest, latest); (0, 0) when it is empty.
pub fn version_range(log: &Log) -> Result<(u64, u64), Failure> {
    let what = format_args!("read log {}", log.path().escaped()).to_string();
    let latest = log.refresh().ctx(&what)?.number;
    let oldest = log.oldest_version().ctx(&what)?;
    Ok((oldest, latest))
}

/// Checks that version `n` exists in a log holding `oldest..=latest`.
/// Version 0, the empty database, always exists (FORMAT.md), also in a
/// compacted log.
pub fn check_version(log: &Log, n: u64, (oldest, latest): (u64, u64)) -> Result<(), Failure> {
    if n != 0 && n <= latest && log.oldest_kept().is_some_and(|o| n < o) {
        // Format 4: a retention policy reclaimed it (not damage, not compaction).
        let e = Error::Reclaimed { path: log.path().to_path_buf(), version: n, oldest, latest };
        return Err(Failure::new(format_args!("log {}", log.path().escaped()), describe(&e)));
    }
    if n > latest || (n < oldest && n != 0) {
        let held = held_versions(oldest, latest);
        return Err(Failure::new(
            format_args!("log {}", log.path().escaped()),
            format_args!("version {n} does not exist ({held})"),
        ));
    }
    Ok(())
}

/// A progress line on stderr, shown only when stderr is a terminal.
pub struct Progress {
    label: &'static str,
    enabled: bool,
    started: Instant,
    last: Option<Instant>,
}

impl Progress {
    pub fn new(label: &'static str) -> Progress {
        Progress { label, enabled: std::io::stderr().is_terminal(), started: Instant::now(), last: None }
    }

    /// `done` of `total` bytes (total 0: unknown).
    pub fn update(&mut self, done: u64, total: u64) {
        if !self.enabled || self.started.elapsed() < Duration::from_millis(300) {
            return;
        }
        if self.last.is_some_and(|l| l.elapsed() < Duration::from_millis(100)) {
            return;
        }
        self.last = Some(Instant::now());
        let line = if total > 0 {
            let pct = (done as f64 * 100.0 / total as f64).min(100.0);
            format!("{}: {pct:5.1}% ({} of {})", self.label, size(done), size(total))
        } else {
            format!("{}: {}", self.label, size(done))
        };
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\r{line}\x1b[K");
        let _ = e.flush();
    }

    pub fn finish(&mut self) {
        if self.enabled && self.last.is_some() {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[K");
            let _ = e.flush();
            self.last = None;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// "1 page", "2 pages": a count with its noun, in the singular for one.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A byte count for people: `12.3 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A temporary file name in `path`'s directory: `.NAME.pagelog-WHAT.PID`,
/// with NAME's exact bytes.
pub fn tmp_beside(path: &Path, what: &str) -> std::path::PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".pagelog-{what}.{}", std::process::id()));
    path.with_file_name(name)
}

/// Syncs the directory holding `path`, making a rename or creation durable.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// Makes a closed stdout (`pagelog log app.db | head -3`) end the program
/// quietly with status 0, as `cat` or `ls` under a shell that ignores
/// SIGPIPE would. Rust ignores SIGPIPE, so `println!` panics with "failed
/// printing to stdout: Broken pipe" when the reader has gone; this hook turns
/// exactly that panic into `exit(0)` (and the same for stderr, should any
/// `eprintln!` remain: diagnostics go through [`write_diag`]); any other
/// failure to print to stdout (ENOSPC, EIO) into "pagelog: write output:
/// <why>" and status 1. Any other panic
/// keeps the default report, shortened to one line without a backtrace,
/// written so that it cannot panic again.
pub fn quiet_on_closed_pipe() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        // Any other failure to write the output (a full disk, an I/O
        // error): a failure of the command, said plainly, as `diff` says it.
        if let Some(why) = msg.strip_prefix("failed printing to stdout: ") {
            write_diag(format_args!("pagelog: write output: {why}"));
            std::process::exit(EXIT_FAILURE);
        }
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        write_diag(format_args!("pagelog: internal error{at}: {msg}"));
        std::process::exit(EXIT_FAILURE);
    }));
}

/// Writes one line to stderr, never panicking: every diagnostic (warnings,
/// statistics, the final error) goes through here or [`diag!`]. When nobody
/// reads stderr any more (`pagelog diff … 2>&1 | head -1` after `head`
/// exited) the line is dropped and the command goes on: the work it was
/// asked to do is finished, and it exits with the status it would have had
/// (a closed stdout, where the output itself goes, ends it with status 0).
pub fn write_diag(line: std::fmt::Arguments) {
    let mut text = line.to_string();
    text.push('\n');
    // One write for the whole line, so lines of concurrent processes do not
    // interleave; any error (EPIPE, EBADF for a closed descriptor) is dropped.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// `eprintln!` that cannot panic: see [`write_diag`].
macro_rules! diag {
    ($($arg:tt)*) => {
        $crate::cli::write_diag(format_args!($($arg)*))
    };
}
pub(crate) use diag;

/// Like `println!`, for output written with `writeln!` to a locked stdout:
/// a reader that went away (EPIPE) ends the program quietly with status 0.
pub fn closed_pipe_exits(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other,
    }
}

/// What a log of versions `oldest..=latest` holds, said to a user who asked
/// for a version it does not (version 0, the empty database, always exists).
fn held_versions(oldest: u64, latest: u64) -> String {
    if latest == 0 {
        "the log is empty (version 0)".to_string()
    } else if oldest > 1 {
        format!("the log holds versions 0 and {oldest} to {latest}; the others were removed by compaction")
    } else {
        format!("the log holds versions 0 to {latest}")
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::tmp_beside;

    #[test]
    fn a_temporary_name_keeps_every_byte_of_the_name_it_is_beside() {
        let tmp = tmp_beside(pagelog::path_from_bytes(b"d/caf\xe9.db"), "export");
        let mut want = b"d/.caf\xe9.db.pagelog-export.".to_vec();
        want.extend_from_slice(std::process::id().to_string().as_bytes());
        assert_eq!(tmp.as_os_str().as_bytes(), want.as_slice());
    }
}
