//! `pagelog compact` on a format-4 log: online and in place, with no second
//! copy, as a one-off retention policy. It works while a connection has the
//! database open (format 3's compact refuses then), the file stays the same
//! file (same inode), the blocks of the older versions are given back, the
//! kept versions read as before, and the log's own policy is unchanged.

mod common;
mod retained;

use std::os::unix::fs::MetadataExt;

use common::*;
use retained::*;

#[test]
fn compact_keep_last_frees_the_older_versions_in_place_with_a_connection_open() {
    let d = TempDir::new("compact-f4");
    let db = d.path("app.db");
    make_format4_log(&db, 300, 1500);
    let before = version_hashes(&db);
    let c = open(&db);
    let ino = std::fs::metadata(&db).unwrap().ino();
    let disk = disk_bytes(&db);

    let r = pagelog(["compact".as_ref(), db.as_os_str(), "--keep-last".as_ref(), "5".as_ref()]).ok();
    assert!(r.stdout.contains("in place"), "{}", r.stdout);
    let (b, vo) = kept(&db);
    assert!(b > 512 && vo > 1 && vo <= 1497, "kept from {vo}: the 5 newest versions at least");
    assert!(r.stdout.contains(&format!("kept versions {vo} to 1501")), "{}", r.stdout);
    assert_eq!(std::fs::metadata(&db).unwrap().ino(), ino, "the log was replaced, not compacted in place");
    assert!(disk_bytes(&db) < disk / 2, "blocks on disk {disk} -> {}", disk_bytes(&db));
    let out = d.path("out.db");
    for n in vo..=1501 {
        assert_eq!(hash(&export(&db, n, &out)), before[&n], "version {n}");
    }
    // The log's own policy is still `all`; the open connection goes on.
    let r = pagelog(["retain".as_ref(), db.as_os_str()]).ok();
    assert!(r.stdout.lines().next().unwrap().ends_with("all"), "{}", r.stdout);
    c.execute("UPDATE t SET v = 'after compact' WHERE id = 7", []).unwrap();
    assert_eq!(version(&c), 1502);
    assert_eq!(versions(&db).last(), Some(&vo));
    pagelog(["verify".as_ref(), db.as_os_str()]).ok();

    // --keep-since a time in the future: only what cannot be freed stays.
    let r =
        pagelog(["compact".as_ref(), db.as_os_str(), "--keep-since".as_ref(), "2999-01-01T00:00:00Z".as_ref()]).ok();
    assert!(r.stdout.contains(&db.display().to_string()), "{}", r.stdout);
    assert_eq!(versions(&db)[0], 1502);
}
