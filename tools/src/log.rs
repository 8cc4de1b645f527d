//! `pagelog log DB`: the versions of a log, newest first.

use std::path::PathBuf;

use pagelog::history::CommitSummary;
use pagelog::EscapedName;
use serde_json::json;

use crate::cli::{diag, open_readable, ranges_text, report_damage, CmdResult, Context};
use crate::time::{format_us, parse_time};

/// List the versions of a log, newest first.
///
/// One line per version: its number, commit time (UTC), the pages its
/// transaction wrote, the database size in pages, and the bytes its records
/// take in the log. Version 0 (the empty database) is not listed.
///
/// "written" counts the pages the transaction stored (page images and
/// patches in its own records); "bytes" is the size of its records, from
/// the end of the commit before it (past the MARK that follows that one)
/// to the end of its COMMIT record: its SPILL records and its COMMIT.
///
/// A format-4 log whose retention policy reclaimed old versions: the kept
/// versions are listed, and a line on stderr says where history starts
/// (the oldest kept version) and under which policy.
///
/// A damaged log: every version that recovery, or a read forward from the
/// start of the log, proves intact is listed; the damage is named on
/// stderr and the exit status is 1.
#[derive(clap::Args)]
pub struct Args {
    /// The pagelog database (log file), or a replica: s3://BUCKET/PREFIX
    db: PathBuf,
    /// Print one JSON array of objects instead
    #[arg(long)]
    json: bool,
    /// Show only the N newest versions (after --since)
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Show only versions committed at or after TIME
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<u64>,
}

pub fn run(a: Args) -> CmdResult {
    if crate::remote::is_s3(a.db.as_os_str()) {
        return crate::remote::log(a.db.as_os_str(), a.json, a.limit);
    }
    let r = open_readable(&a.db)?;
    let listing = r.listing().ctx(format_args!("read history of {}", a.db.escaped()))?;
    let shown: Vec<&CommitSummary> = listing
        .versions
        .iter()
        .rev()
        .filter(|c| a.since.is_none_or(|t| c.timestamp_us >= t))
        .take(a.limit.unwrap_or(usize::MAX))
        .collect();
    let code = report_damage(&a.db, &listing.damage);
    let (oldest_kept, _) = r.kept().ctx(format_args!("read history of {}", a.db.escaped()))?;
    if oldest_kept > 1 {
        diag!(
            "pagelog: history starts at version {oldest_kept}: the retention policy ({}) reclaimed versions 1 to {}",
            r.log().retention_state().policy,
            oldest_kept - 1
        );
    }
    if code != 0 {
        if let Some(p) = &listing.forward_end {
            diag!("pagelog: the read forward from the start of the log ends {p}");
        }
        diag!("pagelog: versions that can be read (listed): {}", ranges_text(&listing));
    }
    if a.json {
        let arr: Vec<_> = shown.iter().map(|c| to_json(c)).collect();
        println!("{}", serde_json::to_string_pretty(&arr).expect("json"));
        return Ok(code);
    }
    if shown.is_empty() {
        return Ok(code);
    }
    println!("{:>8}  {:<24}  {:>8}  {:>8}  {:>12}", "version", "time (UTC)", "written", "pages", "bytes");
    for c in shown {
        println!(
            "{:>8}  {:<24}  {:>8}  {:>8}  {:>12}",
            c.version,
            format_us(c.timestamp_us, 3),
            c.pages_written,
            c.db_pages,
            c.bytes
        );
    }
    // On stderr, so that stdout stays one line per version for scripts.
    diag!("open version N read-only in SQLite: file:{}?vfs=pagelog&version=N", a.db.display());
    Ok(code)
}

pub fn to_json(c: &CommitSummary) -> serde_json::Value {
    json!({
        "version": c.version,
        "time": format_us(c.timestamp_us, 6),
        "timestamp_us": c.timestamp_us,
        "pages_written": c.pages_written,
        "db_pages": c.db_pages,
        "page_size": c.page_size,
        "bytes": c.bytes,
        "offset": c.offset,
        "full_map": c.full_map,
        "checksum": format!("{:#018x}", c.checksum),
    })
}
