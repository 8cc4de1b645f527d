//! A log whose durable history is damaged refuses to open, but the versions
//! before the damage can still be exported: `pagelog export --version N`
//! reads them by walking the log from its start.

mod common;

use common::*;

#[test]
fn export_of_a_version_before_the_damage_works_and_after_it_fails() {
    let d = TempDir::new("export-damaged");
    let db = d.path("app.db");
    drop(make_log(&db, 8));
    let good = d.path("v4-before.db");
    let want = export(&db, 4, &good);
    // Damage the record header of version 6's commit.
    let v6 = history(&db).iter().find(|v| v["version"] == 6).unwrap()["offset"].as_u64().unwrap();
    let mut b = std::fs::read(&db).unwrap();
    b[v6 as usize + 20] ^= 0x10;
    std::fs::write(&db, &b).unwrap();

    let info = pagelog(["info".as_ref(), db.as_os_str()]);
    assert_eq!(info.code, 1, "the damaged log does not open: {}{}", info.stdout, info.stderr);
    let out = d.path("v4.db");
    let r = pagelog(["export".as_ref(), db.as_os_str(), out.as_os_str(), "--version".as_ref(), "4".as_ref()]).ok();
    assert!(r.stderr.contains("warning") && r.stderr.contains("before the damage"), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), want, "version 4 exports as it did before the damage");
    assert_eq!(sqlite3(&out, "SELECT count(*) FROM t").trim(), "3");

    let late = d.path("v7.db");
    let r = pagelog(["export".as_ref(), db.as_os_str(), late.as_os_str(), "--version".as_ref(), "7".as_ref()]);
    assert_eq!(r.code, 1, "version 7 lies after the damage: {}", r.stderr);
    assert!(!late.exists(), "nothing is left at OUT");
    assert_eq!(std::fs::read(&db).unwrap(), b, "the log is left as it was");
}
