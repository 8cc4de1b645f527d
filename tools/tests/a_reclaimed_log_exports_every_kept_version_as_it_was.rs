//! A format-4 log whose retention policy freed its oldest part (a hole
//! below the boundary B > 512): `log` lists exactly the kept versions,
//! every kept version exports byte for byte as it read before reclamation,
//! `diff` compares kept versions, and a reclaimed version is refused naming
//! the oldest kept one, never called damage.

mod common;
mod retained;

use common::*;
use retained::*;

#[test]
fn every_kept_version_exports_as_before_and_reclaimed_ones_are_refused_naming_the_oldest_kept() {
    let d = TempDir::new("reclaimed-export");
    let db = d.path("app.db");
    make_format4_log(&db, 300, 1500);
    let before = version_hashes(&db);
    let latest = *before.keys().last().unwrap();
    assert_eq!(latest, 1501);
    let vo = reclaim(&db, "100 versions", 256 << 10);
    let (b, vo2) = kept(&db);
    assert_eq!(vo, vo2);
    assert!(b > 512, "the steps moved the boundary");
    assert!(vo > 1 && vo <= latest - 99, "the policy keeps the latest 100 versions, and reclaimed older ones: {vo}");

    // log: exactly the kept versions, newest first, and where history starts.
    assert_eq!(versions(&db), (vo..=latest).rev().collect::<Vec<_>>());
    let r = pagelog(["log".as_ref(), db.as_os_str(), "--limit".as_ref(), "1".as_ref()]).ok();
    assert!(r.stderr.contains(&format!("history starts at version {vo}")), "{}", r.stderr);
    assert!(!r.stderr.contains("damage"), "{}", r.stderr);

    // Every kept version, through the CLI, as it read before reclamation.
    let out = d.path("out.db");
    for n in vo..=latest {
        assert_eq!(hash(&export(&db, n, &out)), before[&n], "version {n} exports differently after reclamation");
    }
    // The exported latest opens in stock SQLite.
    export(&db, latest, &out);
    assert_eq!(sqlite3(&out, "SELECT count(*) FROM t").trim(), "300");
    // Version 0, the empty database, always exports.
    assert!(export(&db, 0, &out).is_empty());

    // A reclaimed version is refused, naming the oldest kept; not damage.
    for n in [1, vo - 1] {
        let r = pagelog([
            "export".as_ref(),
            db.as_os_str(),
            out.as_os_str(),
            "--force".as_ref(),
            "--version".as_ref(),
            n.to_string().as_ref(),
        ])
        .expect_code(1);
        assert!(
            r.stderr.contains("no longer kept") && r.stderr.contains(&format!("keeps versions {vo} to")),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("damaged"), "{}", r.stderr);
    }

    // diff between kept versions works; from a reclaimed one it names Vo.
    let a = (latest - 1).to_string();
    let r = pagelog(["diff".as_ref(), db.as_os_str(), a.as_ref(), "--summary".as_ref()]).ok();
    assert!(r.stdout.contains("t"), "{}", r.stdout);
    let r = pagelog(["diff".as_ref(), db.as_os_str(), "1".as_ref(), latest.to_string().as_ref()]).expect_code(1);
    assert!(r.stderr.contains(&format!("keeps versions {vo} to")), "{}", r.stderr);
}
