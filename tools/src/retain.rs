//! `pagelog retain DB [POLICY] [--now]`: show or set a log's retention
//! policy (format 4), and enforce it now.
//!
//! The policy is stored in the log (a CONTROL record, `Log::set_retention`),
//! so every process and tool honours it; writers enforce it after their
//! commits in bounded steps. `--now` runs steps (`Log::reclaim`) until the
//! policy holds. Each step takes the log's WRITER lock, as a commit does,
//! so it runs while other processes read and write: a writer waits for at
//! most one step, and a reader's open transaction keeps its snapshot (its
//! epoch lock keeps the region it reads from being punched).

use std::path::{Path, PathBuf};
use std::time::Duration;

use pagelog::format::{FIRST_RECORD, FORMAT_V4};
use pagelog::retention::Policy;
use pagelog::{EscapedName, Log, OpenOptions};

use crate::cli::{plural, size, CmdResult, Context, Failure};

/// The most one step of `--now` frees: a writer waits for at most one step.
pub const STEP_BYTES: u64 = 64 << 20;

/// Show or set the retention policy of a log (format 4), or enforce it now.
///
/// Without POLICY: prints the policy, the versions kept and the bytes freed.
/// With POLICY: stores it in the log, where every process and tool honours
/// it; writers then enforce it after their commits, a bounded step at a
/// time. POLICY is `all` (keep everything: the default), `N versions`, a
/// time (`7 days`, `12 hours`, `30 minutes`, `45 seconds`: every version
/// committed within it, and the newest before it), a size (`500 MiB`,
/// `10 GiB`: the newest versions that fit in it on disk), or several of them
/// joined by `,` (a version is kept if any form keeps it). The latest
/// version is always kept.
///
/// --now: runs reclamation steps until the policy holds, while other
/// connections and processes go on reading and writing (each step holds
/// the write lock for a bounded time, as a commit does).
///
/// Needs a log in format 4: a log of an older format is refused, naming
/// `pagelog upgrade --format 4`, which rewrites it.
///
/// --json: {"policy", "oldest_kept" (null until a step reclaimed versions),
/// "latest", "boundary", "freed_bytes", "not_punched" (true while an open
/// read transaction keeps the freed region allocated, below the lowest page
/// image still read in place), "in_place_bytes" (page images below the
/// boundary still read where they were written), "disk_bytes",
/// "file_size", and with --now "steps", "freed_now", "relocated"}.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The pagelog database (log file)
    db: PathBuf,
    /// The policy to set, e.g. '1000 versions' or '7 days, 100 versions' (one argument: quote it)
    #[arg(value_name = "POLICY", value_parser = parse_policy)]
    policy: Option<Policy>,
    /// Enforce the policy now: run reclamation steps until it holds
    #[arg(long)]
    now: bool,
    /// How long to wait for a writing connection to finish, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    timeout: u64,
    /// Print one JSON object instead
    #[arg(long)]
    json: bool,
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    Policy::parse(s)
}

/// The refusal of a log whose format has no retention.
pub fn needs_format4(db: &Path, format: u32) -> Failure {
    Failure::new(
        format_args!("log {}", db.escaped()),
        format_args!(
            "a retention policy needs a log in format 4, and this one is in format {format}; rewrite it with \
             `pagelog upgrade --format 4 {}` (every version is kept; no connection may have it open meanwhile)",
            db.escaped()
        ),
    )
}

pub fn run(a: Args) -> CmdResult {
    let writes = a.policy.is_some() || a.now;
    let log = Log::open(&a.db, OpenOptions { read_only: !writes, ..Default::default() })
        .ctx(format_args!("open log {}", a.db.escaped()))?;
    let what = format!("retain {}", a.db.escaped());
    let format = log.header().ctx(&what)?.map_or(0, |h| h.format);
    if format == 0 && writes {
        return Err(Failure::new(what, "the log is empty; set a retention policy after its first commit"));
    }
    if format != 0 && format < FORMAT_V4 {
        if writes {
            return Err(needs_format4(&a.db, format));
        }
        if a.json {
            let latest = log.refresh().ctx(&what)?.number;
            let v = serde_json::json!({ "format_version": format, "policy": "all", "latest": latest });
            println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        } else {
            println!(
                "policy        all (a log in format {format} keeps every version; `pagelog upgrade --format 4` \
                 rewrites it in format 4, which can keep less)"
            );
        }
        return Ok(0);
    }
    let timeout = Duration::from_millis(a.timeout);
    if let Some(p) = a.policy {
        log.set_retention(p, timeout).ctx(&what)?;
    }
    let mut done = None;
    if a.now {
        let before = crate::info::disk_bytes(&a.db).ctx(&what)?;
        let r = enforce(&log, timeout).ctx(&what)?;
        let after = crate::info::disk_bytes(&a.db).ctx(&what)?;
        if !a.json {
            println!(
                "{}: {} freed in {} ({} relocated); bytes on disk {} -> {}",
                a.db.escaped(),
                size(r.freed),
                plural(r.steps, "step"),
                plural(r.relocated, "page"),
                before,
                after
            );
        }
        done = Some(r);
    }
    if a.json {
        let latest = log.refresh().ctx(&what)?.number;
        let st = log.retention_state();
        // Frames still read where they were written, below the boundary.
        let in_place = log.in_place_frames().ctx(&what)?;
        let mut v = serde_json::json!({
            "format_version": format,
            "policy": st.policy.to_string(),
            "oldest_kept": st.oldest_kept,
            "latest": latest,
            "boundary": st.boundary,
            "freed_bytes": st.boundary - FIRST_RECORD,
            "not_punched": !is_hole(&a.db, FIRST_RECORD, st.boundary.min(in_place.0)),
            "in_place_bytes": in_place.1,
            "disk_bytes": crate::info::disk_bytes(&a.db).ctx(&what)?,
            "file_size": std::fs::metadata(&a.db).ctx(&what)?.len(),
        });
        if let Some(r) = done {
            v["steps"] = r.steps.into();
            v["freed_now"] = r.freed.into();
            v["relocated"] = r.relocated.into();
        }
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(0);
    }
    print_state(&log).ctx(&what)?;
    Ok(0)
}

/// What [`enforce`] did.
#[derive(Debug, Default)]
pub struct Enforced {
    pub steps: u64,
    pub freed: u64,
    pub relocated: u64,
}

/// Runs reclamation steps of at most [`STEP_BYTES`] until one frees nothing.
pub fn enforce(log: &Log, timeout: Duration) -> pagelog::Result<Enforced> {
    let mut out = Enforced::default();
    loop {
        let r = log.reclaim(STEP_BYTES, timeout)?;
        if r.freed == 0 {
            return Ok(out);
        }
        out.steps += 1;
        out.freed += r.freed;
        out.relocated += r.relocated;
    }
}

/// Prints the policy and what the log keeps.
fn print_state(log: &Log) -> pagelog::Result<()> {
    let latest = log.refresh()?.number;
    println!("policy        {}", log.retention());
    if latest == 0 {
        println!("versions      none yet (an empty database)");
        return Ok(());
    }
    let oldest = log.oldest_version()?;
    println!("kept          versions {oldest} to {latest} (and version 0, the empty database)");
    if let Some(n) = log.retention().versions {
        if latest - oldest + 1 > n {
            // Docs/format-4.md: the boundary never passes the full page map
            // the oldest kept version is built from.
            println!(
                "note          more than the policy asks: versions are freed up to the full page map the oldest \
                 kept one is built from, which later commits move on"
            );
        }
    }
    let boundary = log.retention_state().boundary;
    if boundary > FIRST_RECORD {
        println!(
            "freed         {} bytes below offset {boundary} (versions before {oldest} were reclaimed)",
            boundary - FIRST_RECORD
        );
        let (low, held) = log.in_place_frames()?;
        if held > 0 {
            println!(
                "in place      {held} bytes ({}) of page images below it, still read where they were written",
                size(held)
            );
        }
        if !is_hole(log.path(), FIRST_RECORD, boundary.min(low)) {
            // reclaim.rs punches only what no reader's epoch lock still covers.
            println!(
                "note          part of it is not given back to the file system yet: an open read transaction \
                 holds an older snapshot; a reclamation step after it ends punches it"
            );
        }
    }
    Ok(())
}

/// Whether the whole file-system blocks inside `[from, to)` of the file at
/// `path` hold no data (a punched hole: the blocks at the ends of the range
/// are shared with bytes outside it and only zeroed), as `lseek(SEEK_DATA)`
/// sees it. False when it cannot tell.
fn is_hole(path: &Path, from: u64, to: u64) -> bool {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(f) = std::fs::File::open(path) else { return false };
    let block = f.metadata().map_or(4096, |m| m.blksize()).max(512);
    let (lo, hi) = (from.next_multiple_of(block), to / block * block);
    if lo >= hi {
        return true;
    }
    // SAFETY: lseek on a descriptor this function owns; no memory is passed.
    let data = unsafe { libc::lseek(f.as_raw_fd(), lo as libc::off_t, libc::SEEK_DATA) };
    if data < 0 {
        // ENXIO: no data at or after `lo` at all.
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO);
    }
    data as u64 >= hi
}
