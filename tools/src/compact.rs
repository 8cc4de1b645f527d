//! `pagelog compact DB`: rewrite a log keeping only its newest versions.

use std::path::PathBuf;

use pagelog::compact::{compact, Keep};
use pagelog::EscapedName;

use crate::cli::{size, CmdResult, Context, Progress};
use crate::time::parse_time;

/// Rewrite a log, dropping versions older than the ones kept.
///
/// Kept versions keep their numbers, timestamps and contents; the oldest kept
/// becomes the first version of the new log. At least the latest version is
/// always kept; with --keep-since the kept versions run from the first one
/// committed at or after TIME to the latest.
///
/// The new log is written to DB.compact-tmp beside DB, synced, verified, and
/// renamed over DB: a crash at any moment leaves the old log or the new one.
/// Refused while any connection or process has the database open.
#[derive(clap::Args)]
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
