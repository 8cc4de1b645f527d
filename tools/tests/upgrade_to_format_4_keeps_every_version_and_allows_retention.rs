//! `pagelog upgrade --format 4`: a log made by SQLite in format 3 is
//! rewritten in format 4 with every version as it was; SQLite goes on
//! writing it in format 4, and a retention policy can then be set and
//! enforced. The default target stays format 3.

mod common;
mod retained;

use common::*;
use retained::*;

#[test]
fn a_format_3_log_upgraded_to_format_4_keeps_every_version_and_takes_a_policy() {
    let d = TempDir::new("upgrade-f4");
    let db = d.path("app.db");
    drop(make_log(&db, 80));
    let before = version_hashes(&db);
    assert_eq!(pagelog(["info".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json()["format_version"], 3);

    let r = pagelog(["upgrade".as_ref(), db.as_os_str(), "--format".as_ref(), "4".as_ref()]).ok();
    assert!(r.stdout.contains("format 3 -> 4, versions 1 to 80 kept"), "{}", r.stdout);
    assert_eq!(pagelog(["info".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json()["format_version"], 4);
    assert_eq!(version_hashes(&db), before, "a version changed in the upgrade");
    let out = d.path("out.db");
    for n in [1, 40, 80] {
        assert_eq!(hash(&export(&db, n, &out)), before[&n]);
    }
    pagelog(["verify".as_ref(), db.as_os_str()]).ok();
    // Again: nothing to do; the default target (3) does not go back.
    let r = pagelog(["upgrade".as_ref(), db.as_os_str(), "--format".as_ref(), "4".as_ref()]).ok();
    assert!(r.stdout.contains("already in format 4"), "{}", r.stdout);
    let r = pagelog(["upgrade".as_ref(), db.as_os_str()]).ok();
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
    pagelog(["upgrade".as_ref(), db.as_os_str(), "--format".as_ref(), "5".as_ref()]).expect_code(2);

    // SQLite writes on in format 4, and retention works.
    let c = open(&db);
    c.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
    for i in 0..300 {
        c.execute("UPDATE t SET v = 'u' || ?1 WHERE id = ?1 % 79 + 2", [i]).unwrap();
    }
    assert_eq!(version(&c), 380);
    drop(c);
    let all = version_hashes(&db);
    let r = pagelog(["retain".as_ref(), db.as_os_str(), "10 versions".as_ref(), "--now".as_ref()]).ok();
    assert!(r.stdout.contains("freed in"), "{}", r.stdout);
    let (b, vo) = kept(&db);
    assert!(b > 512 && vo > 80, "{}", r.stdout);
    assert_eq!(versions(&db), (vo..=380).rev().collect::<Vec<_>>());
    for n in [vo, 380] {
        assert_eq!(hash(&export(&db, n, &out)), all[&n]);
    }
    pagelog(["verify".as_ref(), db.as_os_str()]).ok();
}
