//! `pagelog restore s3://BUCKET/PREFIX OUT`: one version rebuilt from the
//! bucket, verified (crate `pagelog-replica`, `fetch.rs`).

use std::ffi::OsString;
use std::path::PathBuf;

use pagelog::EscapedName;
use pagelog_replica::fetch::{restore_into, Target};

use crate::cli::{
    diag, open_readable, plural, size, sync_dir, tmp_beside, unreadable, CmdResult, Context, Failure, Progress,
};
use crate::export::{already_exists, place, write_version};
use crate::remote::{connect, fail};
use crate::time::{parse_time_arg, TimeArg};

/// Rebuild a log (or, with --plain, a plain SQLite file) from its replica.
///
/// Downloads the segments of the generation holding the version into a
/// temporary file beside OUT, checks every record, frame and whole-database
/// checksum, truncates it at the version's commit, syncs it and renames it
/// to OUT: byte for byte the original log up to that commit. A missing,
/// truncated or altered object is an error naming it; nothing is then left
/// at OUT. An existing OUT is refused unless --force is given.
#[derive(clap::Args)]
pub struct Args {
    /// Where from: s3://BUCKET/PREFIX
    src: OsString,
    /// The file to write
    out: PathBuf,
    /// The version to restore (default: the latest replicated)
    #[arg(long, value_name = "N", conflicts_with = "time")]
    version: Option<u64>,
    /// Restore the newest version committed at or before TIME
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    time: Option<TimeArg>,
    /// Write a plain SQLite file (as `pagelog export` does) instead of a log
    #[arg(long)]
    plain: bool,
    /// Replace OUT if it exists
    #[arg(long)]
    force: bool,
}

pub fn run(a: Args) -> CmdResult {
    let store = connect(&a.src)?;
    let what = match &a.time {
        Some(t) => format!("restore {} as of {} to {}", store.loc, t.text, a.out.escaped()),
        None => format!("restore {} to {}", store.loc, a.out.escaped()),
    };
    if a.out.exists() && !a.force {
        return Err(Failure::new(what, already_exists(&a.out)));
    }
    let target = match (a.version, &a.time) {
        (Some(n), _) => Target::Version(n),
        (None, Some(t)) => Target::Time(t.us),
        (None, None) => Target::Latest,
    };
    let tmp = tmp_beside(&a.out, "restore");
    let _ = std::fs::remove_file(&tmp);
    let mut progress = Progress::new("restore");
    let restored = restore_into(&store, target, &tmp, &mut |done, total| progress.update(done, total));
    progress.finish();
    let result = restored.map_err(|e| fail(&what, e)).and_then(|r| {
        if a.plain {
            // The reader every tool uses (cli::open_readable); the file was
            // just checked whole, so it meets no damage.
            let log = open_readable(&tmp)?;
            let v = log.version(r.version).map_err(|e| unreadable(&log, r.version, e))?.version;
            let plain = tmp_beside(&a.out, "restore-plain");
            let _ = std::fs::remove_file(&plain);
            let res = write_version(&v, &plain, &what).and_then(|()| place(&plain, &a.out, a.force, &what));
            if res.is_err() {
                let _ = std::fs::remove_file(&plain);
            }
            res?;
            let _ = std::fs::remove_file(&tmp);
        } else {
            place(&tmp, &a.out, a.force, &what)?;
        }
        sync_dir(&a.out).ctx(&what)?;
        Ok(r)
    });
    let _ = std::fs::remove_file(&tmp);
    let r = result?;
    diag!(
        "pagelog: restored version {} of {} ({}, {}, {} downloaded) to {}{}",
        r.version,
        store.loc,
        r.generation,
        plural(r.objects, "object"),
        size(r.downloaded),
        a.out.escaped(),
        if a.plain { " as a plain SQLite file" } else { "" }
    );
    Ok(0)
}
