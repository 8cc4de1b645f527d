//! docs/format-4.md: a hole below the boundary B is a freed region, a hole
//! at or after B is damage. Zeros written over a commit of a kept version
//! of a reclaimed log are named as damage (an offset at or after B) by
//! verify and by the reading tools, which still give up the versions before
//! it, while the freed region below B is never called damage.

mod common;
mod retained;

use common::*;
use retained::*;

#[test]
fn zeros_over_a_kept_commit_are_damage_and_the_freed_region_is_not() {
    let d = TempDir::new("reclaimed-hole");
    let db = d.path("app.db");
    make_format4_log(&db, 300, 1500);
    let before = version_hashes(&db);
    let vo = reclaim(&db, "100 versions", 256 << 10);
    let (b, _) = kept(&db);
    let h = history(&db);
    // A commit in the middle of the kept versions: zero its record.
    let mid = h.iter().find(|v| v["version"] == vo + 50).unwrap();
    let at = mid["offset"].as_u64().unwrap();
    assert!(at > b);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        f.write_all_at(&[0u8; 64], at).unwrap();
    }
    let r = pagelog(["verify".as_ref(), db.as_os_str()]).expect_code(1);
    let named = offsets_named(&r.stdout);
    assert!(named.iter().any(|&o| o >= b), "verify names no offset at or after B = {b}:\n{}", r.stdout);
    assert!(named.iter().all(|&o| o >= b), "verify calls the freed region (below {b}) damaged:\n{}", r.stdout);

    let r = pagelog(["log".as_ref(), db.as_os_str(), "--json".as_ref()]).expect_code(1);
    assert!(r.stderr.contains("damaged"), "{}", r.stderr);
    assert!(offsets_named(&r.stderr).iter().all(|&o| o >= b), "the freed region called damage:\n{}", r.stderr);
    let listed: Vec<u64> = r.json().as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    // The versions before the damage are still read, and none below Vo.
    assert!(listed.contains(&vo) && listed.contains(&(vo + 49)), "{listed:?}");
    assert!(listed.iter().all(|&v| v >= vo), "{listed:?}");
    let out = d.path("out.db");
    let n = (vo + 10).to_string();
    let r =
        pagelog(["export".as_ref(), db.as_os_str(), out.as_os_str(), "--version".as_ref(), n.as_ref()]).expect_code(1);
    assert!(r.stderr.contains("damaged"), "{}", r.stderr);
    assert_eq!(hash(&std::fs::read(&out).unwrap()), before[&(vo + 10)]);
}
