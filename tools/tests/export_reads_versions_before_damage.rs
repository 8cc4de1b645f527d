//! A log whose durable history is damaged refuses to open, but the versions
//! before the damage can still be read: `export`, `log` and `info` read the
//! log forward from its start (FORMAT.md, "Reading a damaged log"), name the
//! damage and exit 1.

mod common;

use common::*;

#[test]
fn export_of_a_version_before_the_damage_works_and_after_it_fails() {
    let d = TempDir::new("export-damaged");
    let db = d.path("app.db");
    drop(make_log(&db, 8));
    let good = d.path("v4-before.db");
    let want = export(&db, 4, &good);
    let want5 = export(&db, 5, &d.path("v5-before.db"));
    // Damage the record header of version 6's commit.
    let v6 = history(&db).iter().find(|v| v["version"] == 6).unwrap()["offset"].as_u64().unwrap();
    let mut b = std::fs::read(&db).unwrap();
    b[v6 as usize + 20] ^= 0x10;
    std::fs::write(&db, &b).unwrap();

    let info = pagelog(["info".as_ref(), db.as_os_str()]);
    assert_eq!(info.code, 1, "the damaged log does not open: {}{}", info.stdout, info.stderr);
    assert!(info.stdout.contains("open          refused: damaged at offset"), "{}", info.stdout);
    assert!(info.stdout.contains("versions      5 can be read: 0, 1 to 5"), "{}", info.stdout);
    let log = pagelog(["log".as_ref(), db.as_os_str(), "--json".as_ref()]);
    assert_eq!(log.code, 1, "{}", log.stderr);
    let listed: Vec<u64> = log.json().as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(listed, [5, 4, 3, 2, 1]);
    assert!(offsets_named(&log.stderr).contains(&(v6 + 44)), "the bad header crc is named: {}", log.stderr);

    let out = d.path("v4.db");
    let r = pagelog(["export".as_ref(), db.as_os_str(), out.as_os_str(), "--version".as_ref(), "4".as_ref()]);
    assert_eq!(r.code, 1, "damage was met: {}", r.stderr);
    assert!(r.stderr.contains("warning") && r.stderr.contains("is damaged at offset"), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), want, "version 4 exports as it did before the damage");
    assert_eq!(sqlite3(&out, "SELECT count(*) FROM t").trim(), "3");
    // Without --version: the newest version that can be read.
    let newest = d.path("newest.db");
    let r = pagelog(["export".as_ref(), db.as_os_str(), newest.as_os_str()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("exported version 5 "), "{}", r.stderr);
    assert_eq!(std::fs::read(&newest).unwrap(), want5);

    let late = d.path("v7.db");
    let r = pagelog(["export".as_ref(), db.as_os_str(), late.as_os_str(), "--version".as_ref(), "7".as_ref()]);
    assert_eq!(r.code, 1, "version 7 lies after the damage: {}", r.stderr);
    assert!(r.stderr.contains("version 7 cannot be read") && r.stderr.contains("are 0, 1 to 5"), "{}", r.stderr);
    assert!(!late.exists(), "nothing is left at OUT");
    assert_eq!(std::fs::read(&db).unwrap(), b, "the log is left as it was");
}
