//! `pagelog revert DB --to N`: make an old version the latest again.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{check_version, diag, open_writable, version_range, CmdResult, Context, Failure};
use pagelog::EscapedName;

/// Make version N the latest again, keeping history.
///
/// Appends a new version whose contents equal version N (unchanged pages
/// are shared, not copied), and prints its number. The pages of N that the
/// latest version does not share are read back first (`Log::revert` does):
/// a version damage hides is refused (exit 1), naming the damage. Connections that have
/// the database open see the change at their next transaction. Reverting
/// to the latest version does nothing.
#[derive(clap::Args)]
pub struct Args {
    /// The pagelog database (log file)
    db: PathBuf,
    /// The version to go back to (0: the empty database)
    #[arg(long, value_name = "N")]
    to: u64,
    /// How long to wait for a writing connection to finish, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    timeout: u64,
}

pub fn run(a: Args) -> CmdResult {
    let log = open_writable(&a.db)?;
    let what = format_args!("revert {} to version {}", a.db.escaped(), a.to).to_string();
    let timeout = Duration::from_millis(a.timeout);
    // Hold the writer lock, then make sure the file is still the one at the
    // path: a compaction that renamed a new log over it in between would
    // leave this process writing to a file nobody reads any more.
    let _writer = log.lock_writer(timeout).ctx(&what)?;
    if !log.is_current_file().ctx(&what)? {
        return Err(Failure::new(what, "the log was replaced (compacted) meanwhile; run the command again"));
    }
    let range = version_range(&log)?;
    check_version(&log, a.to, range)?;
    match log.revert(a.to, timeout).ctx(&what)? {
        Some(v) => println!("{}", v.number),
        None => {
            diag!("pagelog: {}: version {} is already the latest; nothing to do", a.db.escaped(), a.to);
            println!("{}", range.1);
        }
    }
    Ok(0)
}
