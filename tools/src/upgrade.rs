//! `pagelog upgrade DB`: rewrite a log of an older format in this build's.

use std::path::PathBuf;

use pagelog::compact::{compact, Keep};
use pagelog::format::FORMAT_VERSION;
use pagelog::{Log, OpenOptions};

use crate::cli::{CmdResult, Context, Progress};

/// Rewrite a log of an older format in the current one, keeping every version.
///
/// This build reads logs of format 1 but never writes to one (a write is
/// refused with a message naming this command), and writes to logs of
/// format 2 in format 2 (without patches). The rewrite works like
/// `compact`: the new log is written beside DB, synced, verified and renamed
/// over it, so a crash leaves the old log or the new one. Version numbers,
/// timestamps and contents are unchanged. Refused while any connection or
/// process has the database open.
#[derive(clap::Args)]
pub struct Args {
    /// The pagelog database (log file)
    db: PathBuf,
}

pub fn run(a: Args) -> CmdResult {
    let log = Log::open(&a.db, OpenOptions { read_only: true, ..Default::default() })
        .ctx(format_args!("open log {}", a.db.display()))?;
    let header = log.header().ctx(format_args!("read {}", a.db.display()))?;
    drop(log);
    let Some(h) = header.filter(|h| h.format != FORMAT_VERSION) else {
        println!("{}: already in format {FORMAT_VERSION}; nothing to do", a.db.display());
        return Ok(0);
    };
    let mut progress = Progress::new("upgrade");
    let stats = compact(&a.db, Keep::All, &mut |done, total| progress.update(done, total))
        .ctx(format_args!("upgrade {}", a.db.display()))?;
    progress.finish();
    println!(
        "{}: format {} -> {FORMAT_VERSION}, versions {} to {} kept: {} -> {} bytes",
        a.db.display(),
        h.format,
        stats.first_kept,
        stats.latest,
        stats.bytes_before,
        stats.bytes_after
    );
    Ok(0)
}
