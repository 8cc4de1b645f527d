//! `pagelog compact DB`: rewrite a log keeping only its newest versions
//! (format 3), or free the older ones in place, online (format 4).

use std::path::{Path, PathBuf};
use std::time::Duration;

use pagelog::compact::{compact, Keep};
use pagelog::format::FORMAT_V4;
use pagelog::retention::Policy;
use pagelog::{EscapedName, Log, OpenOptions};

use crate::cli::{diag, open_writable, size, CmdResult, Context, Progress};
use crate::time::parse_time;

/// How long the online form waits for a writing connection.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Rewrite a log, dropping versions older than the ones kept.
///
/// Kept versions keep their numbers, timestamps and contents; the oldest kept
/// becomes the first version of the new log. At least the latest version is
/// always kept; with --keep-since the kept versions run from the first one
/// committed at or after TIME to the latest.
///
/// Format 3 (and older): the new log is written to DB.compact-tmp beside DB,
/// synced, verified, and renamed over DB: a crash at any moment leaves the
/// old log or the new one. Refused while any connection or process has the
/// database open.
///
/// Format 4: works online and in place, with no second copy, as a one-off
/// retention policy (see `pagelog retain`): it stores the policy `K
/// versions` (--keep-since: every version committed since TIME, and the
/// newest before it), runs reclamation steps until it holds, and puts the
/// log's own policy back. Versions are freed up to the full page map the
/// oldest kept one is built from, so a few more than asked may stay.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
#[command(group(clap::ArgGroup::new("keep").required(true).args(["keep_last", "keep_since"])))]
pub struct Args {
    /// The pagelog database (log file)
    db: PathBuf,
    /// Keep the K newest versions
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    keep_last: Option<u64>,
    /// Keep the versions committed at or after TIME
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    keep_since: Option<u64>,
}

pub fn run(a: Args) -> CmdResult {
    let keep = match (a.keep_last, a.keep_since) {
        (Some(k), _) => Keep::Last(k),
        (None, Some(t)) => Keep::Since(t),
        (None, None) => unreachable!("clap requires one of them"),
    };
    let format = Log::open(&a.db, OpenOptions { read_only: true, ..Default::default() })
        .and_then(|l| l.header())
        .ctx(format_args!("open log {}", a.db.escaped()))?
        .map_or(0, |h| h.format);
    if format >= FORMAT_V4 {
        return online(&a.db, keep);
    }
    let mut progress = Progress::new("compact");
    let stats = compact(&a.db, keep, &mut |done, total| progress.update(done, total))
        .ctx(format_args!("compact {}", a.db.escaped()))?;
    progress.finish();
    if !stats.rewritten {
        if stats.latest == 0 {
            println!("{}: the log is empty; nothing to compact", a.db.escaped());
        } else {
            println!(
                "{}: nothing to compact: it holds versions {} to {} and all are kept",
                a.db.escaped(),
                stats.oldest_before,
                stats.latest
            );
        }
        return Ok(0);
    }
    println!(
        "{}: kept versions {} to {} (removed {} to {}): {} -> {} bytes ({} -> {})",
        a.db.escaped(),
        stats.first_kept,
        stats.latest,
        stats.oldest_before,
        stats.first_kept - 1,
        stats.bytes_before,
        stats.bytes_after,
        size(stats.bytes_before),
        size(stats.bytes_after)
    );
    Ok(0)
}

/// The retention policy that keeps what `keep` asks for, as of now.
fn policy_for(keep: Keep) -> Policy {
    match keep {
        Keep::Last(k) => Policy { versions: Some(k), ..Policy::ALL },
        Keep::Since(t) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let now_us = now.as_micros() as u64;
            match now_us.checked_sub(t).filter(|&d| d > 0) {
                // Whole seconds, rounded up: never fewer versions than asked.
                Some(d) => Policy { age_secs: Some(d.div_ceil(1_000_000)), ..Policy::ALL },
                None => Policy { versions: Some(1), ..Policy::ALL }, // TIME is now or later: the latest
            }
        }
        Keep::All => Policy::ALL,
    }
}

/// Format 4: a one-off policy, enforced now, then the log's own put back.
fn online(db: &Path, keep: Keep) -> CmdResult {
    let what = format!("compact {}", db.escaped());
    let log = open_writable(db)?;
    let latest = log.refresh().ctx(&what)?.number;
    if latest == 0 {
        println!("{}: the log is empty; nothing to compact", db.escaped());
        return Ok(0);
    }
    let oldest_before = log.oldest_version().ctx(&what)?;
    let bytes_before = crate::info::disk_bytes(db).ctx(&what)?;
    let standing = log.retention();
    log.set_retention(policy_for(keep), TIMEOUT).ctx(&what)?;
    let done = crate::retain::enforce(&log, TIMEOUT);
    // The log's own policy again, whether or not a step failed.
    let restored = log.set_retention(standing, TIMEOUT);
    let done = done.ctx(&what)?;
    restored.ctx(format_args!("{what}: put back the retention policy {standing}"))?;
    let oldest = log.oldest_version().ctx(&what)?;
    let latest = log.refresh().ctx(&what)?.number;
    let bytes_after = crate::info::disk_bytes(db).ctx(&what)?;
    if oldest == oldest_before {
        println!(
            "{}: nothing to compact: it holds versions {oldest} to {latest}, and the older ones cannot be freed \
             before the full page map the oldest kept version is built from",
            db.escaped()
        );
        return Ok(0);
    }
    println!(
        "{}: kept versions {oldest} to {latest} (removed {oldest_before} to {}), in place: {} -> {} bytes on disk \
         ({} -> {})",
        db.escaped(),
        oldest - 1,
        bytes_before,
        bytes_after,
        size(bytes_before),
        size(bytes_after)
    );
    diag!("pagelog: {} freed in {} step(s); the retention policy is still {standing}", size(done.freed), done.steps);
    Ok(0)
}
