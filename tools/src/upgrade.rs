//! `pagelog upgrade DB`: rewrite a log of an older format in this build's.

use std::path::PathBuf;

use pagelog::compact::upgrade;
use pagelog::format::{FORMAT_V4, FORMAT_VERSION};
use pagelog::{Log, OpenOptions};

use pagelog::EscapedName;

use crate::cli::{CmdResult, Context, Failure, Progress};

/// Rewrite a log of an older format in the current one, keeping every version.
///
/// This build reads logs of format 1 but never writes to one (a write is
/// refused with a message naming this command), and writes to logs of
/// format 2 in format 2 (without patches). The rewrite works like
/// `compact`: the new log is written beside DB, synced, verified and renamed
/// over it, so a crash leaves the old log or the new one. Version numbers,
/// timestamps and contents are unchanged. Refused while any connection or
/// process has the database open.
///
/// --format 4 rewrites the log in format 4 (in development: docs/format-4.md),
/// which can keep a retention policy (`pagelog retain`) and free old versions
/// in place while the database is in use. Format 4 is a preview: a log
/// written in it by this build is not promised to open in a later one (keep
/// a format-3 copy, or `pagelog export` it). Logs are created in, and
/// upgraded to, format 3 by default.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The pagelog database (log file)
    db: PathBuf,
    /// The format to write: 3 (the default) or 4
    #[arg(long, value_name = "N", default_value_t = FORMAT_VERSION,
          value_parser = clap::value_parser!(u32).range(FORMAT_VERSION as i64..=FORMAT_V4 as i64))]
    format: u32,
}

pub fn run(a: Args) -> CmdResult {
    let log = Log::open(&a.db, OpenOptions { read_only: true, ..Default::default() })
        .ctx(format_args!("open log {}", a.db.display()))?;
    let header = log.header().ctx(format_args!("read {}", a.db.display()))?;
    drop(log);
    let target = a.format;
    // A log with no commit has nothing to rewrite, and no page size to
    // write a header with: its first commit writes the header, in format 3.
    let no_commit = || {
        Failure::new(
            format_args!("upgrade {}", a.db.escaped()),
            format_args!(
                "the log holds no commit yet, so there is nothing to rewrite: its first commit writes it in format \
                 {FORMAT_VERSION}; upgrade it after that"
            ),
        )
    };
    let Some(h) = header else {
        if target == FORMAT_VERSION {
            println!("{}: already in format {target}; nothing to do", a.db.display());
            return Ok(0);
        }
        return Err(no_commit());
    };
    if h.format == target {
        println!("{}: already in format {target}; nothing to do", a.db.display());
        return Ok(0);
    }
    if h.format > target {
        println!("{}: already in format {}, newer than format {target}; nothing to do", a.db.display(), h.format);
        return Ok(0);
    }
    let mut progress = Progress::new("upgrade");
    let stats = upgrade(&a.db, target, &mut |done, total| progress.update(done, total))
        .ctx(format_args!("upgrade {}", a.db.display()))?;
    progress.finish();
    if !stats.rewritten {
        return Err(no_commit());
    }
    println!(
        "{}: format {} -> {target}, versions {} to {} kept: {} -> {} bytes",
        a.db.display(),
        h.format,
        stats.first_kept,
        stats.latest,
        stats.bytes_before,
        stats.bytes_after
    );
    Ok(0)
}
