//! `pagelog verify DB`: check every byte of a log's committed history.

use std::path::PathBuf;

use pagelog::verify::{verify_file, Item, Problem, VerifyReport};
use pagelog::EscapedName;
use serde_json::{json, Value};

use crate::cli::{describe, plural, CmdResult, Progress, EXIT_FAILURE};

/// Check every record, page image and version of a log.
///
/// Checks each record's crcs and links, each commit's page map, the crc of
/// every page image, and that each version's whole-database checksum matches
/// its page map: what a version reads back is what was committed. Prints
/// each damaged record or version, then the summary "N ok, M invalid (...)";
/// --verbose also prints one line per version that is ok.
///
/// Exit status 0 when committed history is intact, 1 when it is damaged.
/// Bytes after the last complete version (an unfinished transaction left by
/// a crash, or pre-allocated space) are not damage: `open` ignores them and
/// the next write overwrites them. They are reported, as a warning when they
/// hold data, and do not change the exit status.
///
/// A format-4 log whose retention policy reclaimed old versions: the region
/// below the boundary is freed (a hole), not damage; it is not read, and is
/// reported on its own line ("freed: …"). The walk starts at the boundary,
/// lists the kept versions, and checks that every reference a kept version
/// makes into the freed region resolves to a relocated copy with the right
/// crc.
#[derive(clap::Args)]
pub struct Args {
    /// The pagelog database (log file)
    db: PathBuf,
    /// Print one JSON object instead
    #[arg(long)]
    json: bool,
    /// Also list every version that is ok, one line each
    #[arg(long, short)]
    verbose: bool,
}

pub fn run(a: Args) -> CmdResult {
    let mut progress = Progress::new("verify");
    let rep = verify_file(&a.db, &mut |done, total| progress.update(done, total));
    progress.finish();
    let code = if rep.damaged() { EXIT_FAILURE } else { 0 };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&a.db, &rep)).expect("json"));
        return Ok(code);
    }
    if let Some(e) = &rep.error {
        println!("{}: cannot be verified: {}", a.db.escaped(), describe(e));
        println!("0 ok, 1 invalid");
        return Ok(code);
    }
    for item in &rep.items {
        match (item.version, &item.problem) {
            (Some(v), None) if a.verbose => println!("version {v}: ok"),
            (Some(_), None) => {}
            (Some(v), Some(p)) => println!("version {v}: invalid {p}"),
            // (The item's offset is the problem's: say it once.)
            (None, Some(p)) => println!("damage {p}"),
            (None, None) => {}
        }
    }
    if let Some(e) = &rep.recovery_error {
        println!("open: invalid: recovery fails: {e}");
    }
    let after = rep.items.iter().rev().find_map(|i| i.version.filter(|_| i.problem.is_none()));
    if let Some(t) = &rep.tail {
        let after = after.map_or("the header".to_string(), |v| format!("version {v}"));
        if t.zeros {
            // Pre-allocated space is how a healthy log grows: shown only in
            // the full listing.
            if a.verbose {
                println!(
                    "note: {} bytes of pre-allocated space (zeros) after {after}, at offset {}",
                    t.bytes, t.offset
                );
            }
        } else {
            let lost = if t.lost_versions.is_empty() {
                String::new()
            } else {
                format!(
                    "; it holds version(s) {} that were never made durable",
                    t.lost_versions.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
                )
            };
            println!(
                "warning: {} bytes at offset {} after {after} are an unfinished transaction or debris of one \
                 (open ignores them; the next write overwrites them){lost}: {}",
                t.bytes, t.offset, t.reason
            );
        }
    }
    if let Some(o) = rep.oldest_kept {
        println!(
            "freed: {} bytes below offset {} (the retention policy reclaimed versions before {o}; not read, not \
             damage)",
            rep.freed_bytes,
            rep.freed_bytes + pagelog::format::FIRST_RECORD
        );
    }
    println!(
        "{} ok, {} invalid ({}, {}, {} of {} bytes checked)",
        rep.ok_count(),
        rep.invalid_count(),
        plural(rep.versions_checked() as u64, "version"),
        plural(rep.frames_checked as u64, "page image"),
        rep.bytes_checked,
        rep.file_len
    );
    if let Some(p) = rep.damage() {
        println!("first damage {p}; last good version {}", rep.last_good_version);
    }
    Ok(code)
}

fn problem_json(p: &Problem) -> Value {
    json!({ "offset": p.offset, "expected": p.expected, "found": p.found })
}

fn item_json(i: &Item) -> Value {
    json!({
        "version": i.version,
        "offset": i.offset,
        "ok": i.problem.is_none(),
        "problem": i.problem.as_ref().map(problem_json),
    })
}

fn to_json(db: &std::path::Path, rep: &VerifyReport) -> Value {
    json!({
        "file": db.escaped().to_string(),
        "ok": !rep.damaged(),
        "error": rep.error.as_ref().map(describe),
        "versions_ok": rep.ok_count(),
        "invalid": rep.invalid_count() + usize::from(rep.error.is_some()),
        "versions_checked": rep.versions_checked(),
        "frames_checked": rep.frames_checked,
        "bytes_checked": rep.bytes_checked,
        "file_size": rep.file_len,
        "recovered_version": rep.recovered_version,
        "freed_bytes": rep.freed_bytes,
        "oldest_kept": rep.oldest_kept,
        "reclaimed_versions_walked": rep.reclaimed_versions,
        "recovery_error": rep.recovery_error,
        "last_good_version": rep.last_good_version,
        "first_damage": rep.damage().map(problem_json),
        "tail": rep.tail.as_ref().map(|t| json!({
            "offset": t.offset,
            "bytes": t.bytes,
            "zeros": t.zeros,
            "lost_versions": t.lost_versions,
            "reason": problem_json(&t.reason),
        })),
        "items": rep.items.iter().map(item_json).collect::<Vec<_>>(),
    })
}
