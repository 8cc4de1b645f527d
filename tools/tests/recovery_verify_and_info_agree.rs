//! Issue 25, items 3 and 4: `verify` applies recovery's own bound on a
//! commit's `db pages` (one bound, `format::max_db_pages`), so an
//! unclaimed last commit over it is the torn tail recovery takes it for,
//! not damage; `info --json` names the end of the latest COMMIT record
//! (`commit_end`) apart from FORMAT.md's log end (`log_end`, past its MARK,
//! where verify's tail starts).

mod common;

use common::*;
use pagelog::format;

#[test]
fn an_unclaimed_last_commit_over_the_db_pages_bound_is_a_torn_tail_for_verify_too() {
    let d = TempDir::new("db-pages-bound");
    let db = d.path("app.db");
    drop(make_log(&db, 8));
    let v8 = history(&db).iter().find(|v| v["version"] == 8).unwrap()["offset"].as_u64().unwrap() as usize;
    let mut b = std::fs::read(&db).unwrap();
    let length = u64::from_le_bytes(b[v8 + format::RH_LENGTH..v8 + format::RH_LENGTH + 8].try_into().unwrap());
    // Cut after version 8's commit: its MARK gone, nothing claims it durable.
    b.truncate(v8 + length as usize);
    let len = b.len() as u64;
    let at = v8 + format::RECORD_HEADER_SIZE + format::CI_DB_PAGES;
    for (over, opens) in [(1u64, 7u64), (0, 8)] {
        let pages = format::max_db_pages(len) + over;
        assert_eq!(pages, len / 512 + 65536 + over, "FORMAT.md's bound: file length / 512 + 65536");
        b[at..at + 4].copy_from_slice(&(pages as u32).to_le_bytes());
        reseal_commit(&mut b, v8);
        std::fs::write(&db, &b).unwrap();
        let latest =
            pagelog(["info".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json()["latest_version"].clone();
        assert_eq!(latest.as_u64(), Some(opens), "recovery opens version {opens} with {pages} pages");
        let v = pagelog(["verify".as_ref(), db.as_os_str()]);
        assert_eq!(v.code, 0, "not damage:\n{}", v.stdout);
        if over == 1 {
            assert!(
                v.stdout.contains(&format!("warning: {} bytes at offset {v8} after version 7", len - v8 as u64)),
                "{}",
                v.stdout
            );
            assert!(v.stdout.contains(&format!("found {pages} pages")), "{}", v.stdout);
        }
    }
}

#[test]
fn info_names_the_commit_end_and_the_log_end_apart() {
    let d = TempDir::new("log-end");
    let db = d.path("app.db");
    drop(make_log(&db, 4)); // synchronous=FULL: a MARK follows every commit
    let j = pagelog(["info".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json();
    let v4 = history(&db).iter().find(|v| v["version"] == 4).unwrap()["offset"].as_u64().unwrap();
    let b = std::fs::read(&db).unwrap();
    let length = u64::from_le_bytes(b[v4 as usize + 8..v4 as usize + 16].try_into().unwrap());
    assert_eq!(j["commit_end"].as_u64(), Some(v4 + length), "{j}");
    assert_eq!(j["log_end"].as_u64(), Some(v4 + length + format::MARK_SIZE), "past the MARK: {j}");
    // verify's tail (the pre-allocated zeros) starts at the log end.
    let v = pagelog(["verify".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json();
    assert_eq!(v["tail"]["offset"], j["log_end"], "{v}");
}
