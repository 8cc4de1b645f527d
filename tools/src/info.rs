//! `pagelog info DB`: a summary of a log.

use std::collections::HashSet;
use std::path::PathBuf;

use pagelog::format;
use pagelog::verify::Problem;
use pagelog::EscapedName;
use serde_json::json;

use crate::cli::{open_readable, ranges_text, report_damage, size, CmdResult, Context, EXIT_FAILURE};
use crate::time::format_us;

/// Show a summary of a log: format, page size, versions and sizes
///
/// live size: the size of the latest version as a plain database
/// (database pages × page size).
///
/// reclaimable: what `pagelog compact --keep-last 1` would remove: the file
/// size minus the size of a log holding only the latest version (the 512-byte
/// header, plus one commit record: its full page map and one copy of every
/// distinct page image the latest version references). It counts older
/// versions' pages, their metadata, space pre-allocated past the end and
/// debris of unfinished transactions. 0 when the log holds a single version
/// (compaction then has nothing to remove).
///
/// --json: `commit_end` is the end of the latest version's COMMIT record
/// (a copy of the log cut there holds every version; what replication
/// ships), `log_end` the log end of FORMAT.md (past the MARK that may follow
/// that commit: where the next record goes; null when recovery refuses the
/// log).
///
/// Retention (format 4): `policy` is the log's retention policy (`pagelog
/// retain`); `history starts` the oldest kept version Vo, when the policy
/// reclaimed older ones (versions 1 to Vo−1 are gone; version 0, the empty
/// database, always reads); `freed` the bytes below the boundary B, given
/// back to the file system (a hole). `on disk` is what the file takes on
/// disk (st_blocks × 512, what `du` counts), `file size` its length, holes
/// included. --json: `retention` holds `policy`, `oldest_kept` (null
/// until a step reclaimed versions), `boundary` and `freed_bytes`;
/// `disk_bytes` the bytes on disk.
///
/// A damaged log: the versions that recovery, or a read forward from the
/// start of the log, prove intact are counted and shown; each damage is
/// named ("damage" rows, "damage" in JSON) and the exit status is 1.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The pagelog database (log file), or a replica: s3://BUCKET/PREFIX
    db: PathBuf,
    /// Print one JSON object instead
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> CmdResult {
    if crate::remote::is_s3(a.db.as_os_str()) {
        return crate::remote::info(a.db.as_os_str(), a.json);
    }
    let r = open_readable(&a.db)?;
    let what = format_args!("read log {}", a.db.escaped()).to_string();
    let header = r.log().header().ctx(&what)?;
    let listing = r.listing().ctx(&what)?;
    let history = &listing.versions;
    let (oldest, newest) = (history.first(), history.last());
    // Recovery's latest version (always readable), or, when recovery
    // refuses the log, the newest version read forward from its start.
    let latest = r.version(r.latest().ctx(&what)?).ctx(&what)?.version;
    let file_size = std::fs::metadata(&a.db).ctx(&what)?.len();
    let on_disk = disk_bytes(&a.db).ctx(&what)?;
    let (vo, boundary) = r.kept().ctx(&what)?;
    let policy = r.log().retention_state().policy;
    let freed = boundary - format::FIRST_RECORD;
    let format_version = header.map_or(format::FORMAT_VERSION, |h| h.format);
    let log_end = r.log_end();

    let ps = latest.page_size as u64;
    let live = latest.size_bytes();
    let frames: HashSet<u64> =
        (1..=latest.db_pages()).filter_map(|p| latest.map.get(p)).map(|s| s.offset).filter(|&o| o != 0).collect();
    let lay = format::layout(
        format::FORMAT_VERSION,
        format::FIRST_RECORD,
        format::KIND_COMMIT,
        latest.db_pages(),
        frames.len() as u32,
        latest.page_size,
        0,
    );
    let compacted = format::FIRST_RECORD + lay.length;
    // A hole takes no room: once a policy freed part of the log, count
    // what the file takes on disk.
    let held = if freed > 0 { on_disk } else { file_size };
    let reclaimable = if history.len() > 1 { held.saturating_sub(compacted) } else { 0 };
    let commit_end = if latest.number == 0 { 0 } else { latest.end };

    if a.json {
        let problem = |p: &Problem| json!({ "offset": p.offset, "expected": p.expected, "found": p.found });
        let v = json!({
            "file": a.db.escaped().to_string(),
            "format_version": format_version,
            "page_size": latest.page_size,
            "created": header.map(|h| format_us(h.created_us, 6)),
            "versions": history.len(),
            "readable": listing.ranges(),
            "oldest_version": oldest.map_or(0, |c| c.version),
            "oldest_time": oldest.map(|c| format_us(c.timestamp_us, 6)),
            "latest_version": latest.number,
            "latest_time": newest.map(|c| format_us(c.timestamp_us, 6)),
            "file_size": file_size,
            "disk_bytes": on_disk,
            "retention": (format_version >= format::FORMAT_V4).then(|| json!({
                "policy": policy.to_string(),
                "oldest_kept": (vo > 0).then_some(vo),
                "boundary": boundary,
                "freed_bytes": freed,
            })),
            "commit_end": commit_end,
            "log_end": log_end,
            "db_pages": latest.db_pages(),
            "live_size": live,
            "latest_frame_bytes": frames.len() as u64 * ps,
            "reclaimable": reclaimable,
            "recovery_error": r.recovery_error().map(problem),
            "damage": listing.damage.iter().map(problem).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(report_damage(&a.db, &listing.damage));
    }
    let row = |k: &str, v: String| println!("{k:<14}{v}");
    row("file", a.db.escaped().to_string());
    row("format", format!("pagelog log, format version {format_version}"));
    if let Some(h) = header {
        row("created", format_us(h.created_us, 3));
    }
    match (oldest, newest) {
        (Some(o), Some(n)) if listing.damage.is_empty() => {
            row("versions", format!("{} ({} to {})", history.len(), o.version, n.version));
            row("oldest", format!("{}  {}", o.version, format_us(o.timestamp_us, 3)));
            row("latest", format!("{}  {}", n.version, format_us(n.timestamp_us, 3)));
            row("page size", latest.page_size.to_string());
        }
        (Some(o), Some(n)) => {
            row("versions", format!("{} can be read: {}", history.len(), ranges_text(&listing)));
            row("oldest", format!("{}  {}", o.version, format_us(o.timestamp_us, 3)));
            row("latest", format!("{}  {}", n.version, format_us(n.timestamp_us, 3)));
            row("page size", latest.page_size.to_string());
        }
        _ => row("versions", "0 (an empty database)".into()),
    }
    if format_version >= format::FORMAT_V4 {
        row("policy", policy.to_string());
        if vo > 0 {
            row("history", format!("starts at version {vo}: the retention policy reclaimed versions 1 to {}", vo - 1));
            row("freed", format!("{freed} bytes ({}) below offset {boundary}", size(freed)));
        }
    }
    row("on disk", format!("{on_disk} bytes ({})", size(on_disk)));
    row("file size", format!("{file_size} bytes ({})", size(file_size)));
    row("live size", format!("{live} bytes ({}; {} pages)", size(live), latest.db_pages()));
    row("reclaimable", format!("{reclaimable} bytes ({}) by `pagelog compact --keep-last 1`", size(reclaimable)));
    if let Some(p) = r.recovery_error() {
        row("open", format!("refused: damaged {p}"));
    }
    for p in &listing.damage {
        row("damage", p.to_string());
    }
    if r.recovery_error().is_some() {
        if let Some(p) = &listing.forward_end {
            row("read ends", p.to_string());
        }
    }
    Ok(if listing.damage.is_empty() { 0 } else { EXIT_FAILURE })
}

/// Bytes the file takes on disk: `st_blocks` × 512 (what `du` counts; a
/// hole punched by reclamation takes none).
pub fn disk_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)?.blocks() * 512)
}
