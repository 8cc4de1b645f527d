//! A format-4 log with a hole below its boundary B: `verify` is clean,
//! checks exactly the kept versions and reports the freed bytes on a line
//! of their own; `info` shows the policy, where history starts, B, the
//! bytes on disk (st_blocks × 512) and the file length, in text and JSON.

mod common;
mod retained;

use common::*;
use retained::*;

#[test]
fn verify_is_clean_and_info_numbers_match_the_file() {
    let d = TempDir::new("reclaimed-verify");
    let db = d.path("app.db");
    make_format4_log(&db, 300, 1200);
    let vo = reclaim(&db, "3 versions", 128 << 10);
    let (b, _) = kept(&db);
    assert!(b > 512);
    let latest = 1201u64;
    let kept_count = latest - vo + 1;

    let r = pagelog(["verify".as_ref(), db.as_os_str()]).ok();
    let freed = b - 512;
    assert!(r.stdout.contains(&format!("freed: {freed} bytes below offset {b}")), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("{kept_count} ok, 0 invalid")), "{}", r.stdout);
    assert!(!r.stdout.contains("warning"), "{}", r.stdout);
    let j = pagelog(["verify".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["freed_bytes"], freed);
    assert_eq!(j["oldest_kept"], vo);
    assert_eq!(j["versions_checked"], kept_count);
    assert_eq!(j["recovered_version"], latest);

    let len = std::fs::metadata(&db).unwrap().len();
    let on_disk = disk_bytes(&db);
    assert!(on_disk < len, "the freed region is a hole: {on_disk} bytes on disk, {len} long");
    let j = pagelog(["info".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json();
    assert_eq!(j["format_version"], 4);
    assert_eq!(j["file_size"], len);
    assert_eq!(j["disk_bytes"], on_disk);
    assert_eq!(j["oldest_version"], vo);
    assert_eq!(j["latest_version"], latest);
    assert_eq!(j["versions"], kept_count);
    assert_eq!(j["retention"]["policy"], "3 versions");
    assert_eq!(j["retention"]["oldest_kept"], vo);
    assert_eq!(j["retention"]["boundary"], b);
    assert_eq!(j["retention"]["freed_bytes"], freed);
    assert_eq!(j["damage"].as_array().unwrap().len(), 0);

    let r = pagelog(["info".as_ref(), db.as_os_str()]).ok();
    let row = |k: &str| {
        r.stdout.lines().find(|l| l.starts_with(k)).unwrap_or_else(|| panic!("no {k} row:\n{}", r.stdout)).to_string()
    };
    assert!(row("policy").ends_with("3 versions"), "{}", r.stdout);
    assert!(row("history").contains(&format!("starts at version {vo}")), "{}", r.stdout);
    assert!(row("freed").contains(&format!("{freed} bytes")) && row("freed").contains(&b.to_string()));
    assert!(row("on disk").contains(&format!("{on_disk} bytes")), "{}", r.stdout);
    assert!(row("file size").contains(&format!("{len} bytes")), "{}", r.stdout);

    // A format-4 log before any reclamation: the policy, nothing freed.
    let fresh = d.path("fresh.db");
    make_format4_log(&fresh, 50, 5);
    let j = pagelog(["info".as_ref(), fresh.as_os_str(), "--json".as_ref()]).ok().json();
    assert_eq!(j["retention"]["policy"], "all");
    assert_eq!(j["retention"]["oldest_kept"], serde_json::Value::Null);
    assert_eq!(j["retention"]["freed_bytes"], 0);
    let r = pagelog(["verify".as_ref(), fresh.as_os_str()]).ok();
    assert!(!r.stdout.contains("freed"), "{}", r.stdout);
}
