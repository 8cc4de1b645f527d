//! `pagelog export DB OUT`: one version as a plain SQLite database file.

use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::cli::{
    diag, open_readable, plural, report_damage, sync_dir, tmp_beside, unreadable, CmdResult, Context, Failure, Progress,
};
use pagelog::EscapedName;

/// Write one version as a plain SQLite database file.
///
/// The file holds the version's pages in order, exactly as it reads through
/// pagelog, and opens in any SQLite. It is written to a temporary file in
/// OUT's directory, synced, then renamed to OUT, so OUT never holds half a
/// database. An existing OUT is refused unless --force is given.
///
/// A damaged log: every version that recovery, or a read forward from the
/// start of the log, proves intact can be exported (the default is then
/// the newest such version); the damage is named on stderr and the exit
/// status is 1 even though OUT was written. A version the damage hides is
/// an error naming the damage and the versions that can be read.
#[derive(clap::Args)]
pub struct Args {
    /// The pagelog database (log file)
    db: PathBuf,
    /// The plain SQLite file to write
    out: PathBuf,
    /// The version to export (default: the latest; 0 is the empty database)
    #[arg(long, value_name = "N")]
    version: Option<u64>,
    /// Replace OUT if it exists
    #[arg(long)]
    force: bool,
}

pub fn run(a: Args) -> CmdResult {
    let r = open_readable(&a.db)?;
    let n = match a.version {
        Some(n) => n,
        None => r.latest().ctx(format_args!("read log {}", a.db.escaped()))?,
    };
    let read = r.version(n).map_err(|e| unreadable(&r, n, e))?;
    let what = format!("export {} version {n} to {}", a.db.escaped(), a.out.escaped());
    if let Ok(md) = std::fs::metadata(&a.out) {
        let db = r.log().file().metadata().ctx(&what)?;
        if md.dev() == db.dev() && md.ino() == db.ino() {
            return Err(Failure::new(&what, format_args!("{} is the log itself; name another file", a.out.escaped())));
        }
        if !a.force {
            return Err(Failure::new(&what, already_exists(&a.out)));
        }
        if md.is_dir() {
            return Err(Failure::new(&what, format_args!("{} is a directory", a.out.escaped())));
        }
    }
    let v = &read.version;
    let tmp = tmp_beside(&a.out, "export");
    let result = write_version(v, &tmp, &what).and_then(|()| place(&tmp, &a.out, a.force, &what));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    let code = report_damage(&a.db, &read.damage);
    diag!(
        "pagelog: exported version {n} of {} to {} ({} of {} bytes){}",
        a.db.escaped(),
        a.out.escaped(),
        plural(v.db_pages() as u64, "page"),
        v.page_size,
        if code == 0 { "" } else { "; its commit, page map and every page check out, the damage is elsewhere" }
    );
    Ok(code)
}

pub(crate) fn write_version(v: &pagelog::Version, tmp: &Path, what: &str) -> Result<(), Failure> {
    let f = std::fs::OpenOptions::new().write(true).create_new(true).open(tmp).ctx(what)?;
    let mut w = BufWriter::with_capacity(1 << 20, &f);
    let mut progress = Progress::new("export");
    let total = v.size_bytes();
    for p in 1..=v.db_pages() {
        let page = v.page(p).ctx(what)?.expect("page within the database");
        w.write_all(&page).ctx(what)?;
        progress.update(p as u64 * v.page_size as u64, total);
    }
    w.flush().ctx(what)?;
    drop(w);
    f.sync_all().ctx(what)?;
    Ok(())
}

/// The refusal of an existing output file, naming it.
pub(crate) fn already_exists(out: &Path) -> String {
    format!("{} already exists (use --force to replace it)", out.escaped())
}

/// Moves the finished temporary file to `out`: without `force`, atomically
/// refusing an `out` that appeared meanwhile (a hard link fails if it exists).
pub(crate) fn place(tmp: &Path, out: &Path, force: bool, what: &str) -> Result<(), Failure> {
    if force {
        std::fs::rename(tmp, out).ctx(what)?;
    } else {
        match std::fs::hard_link(tmp, out) {
            Ok(()) => std::fs::remove_file(tmp).ctx(what)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Failure::new(what, already_exists(out)))
            }
            // A file system without hard links: check, then rename.
            Err(_) if !out.exists() => std::fs::rename(tmp, out).ctx(what)?,
            Err(_) => return Err(Failure::new(what, already_exists(out))),
        }
    }
    sync_dir(out).ctx(what)?;
    Ok(())
}
