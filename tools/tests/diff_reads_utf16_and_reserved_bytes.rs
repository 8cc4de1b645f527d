//! `pagelog diff` on a database whose pages end in reserved bytes (header
//! byte 20, here 40 bytes, as a checksum or encryption extension leaves)
//! and whose text is UTF-16: cells, overflow chains and text decode right,
//! and `--sql` still turns version A into version B.

mod common;

use std::process::Command;

use common::{export, open, pagelog, sqlite3_shell, TempDir};

#[test]
fn reserved_bytes_and_utf16_text_are_read_right() {
    let d = TempDir::new("diffres");
    let plain = d.path("plain.db");
    let o = Command::new(sqlite3_shell())
        .arg(&plain)
        .arg(
            "PRAGMA encoding = 'UTF-16le'; CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT, b BLOB);
              INSERT INTO t VALUES (1, 'héllo', randomblob(5000)), (2, 'two', NULL);",
        )
        .arg(".filectrl reserve_bytes 40")
        .arg("VACUUM;")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let db = d.path("app.db");
    pagelog(["import".as_ref(), plain.as_os_str(), db.as_os_str()]).ok();
    let c = open(&db);
    c.execute_batch("BEGIN; UPDATE t SET s = 'wörld ✓', b = randomblob(7000) WHERE id = 1; INSERT INTO t VALUES (3, 'drei', x'00'); COMMIT;")
        .unwrap();
    drop(c);
    let image = export(&db, 2, &d.path("b.db"));
    assert_eq!(image[20], 40, "the reserved bytes survived");

    let json = pagelog(["diff".as_ref(), db.as_os_str(), "1".as_ref(), "--json".as_ref()]).ok().stdout;
    let objs: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objs[0]["kind"], "update", "{json}");
    assert_eq!(objs[0]["changes"]["s"]["old"], "héllo");
    assert_eq!(objs[0]["changes"]["s"]["new"], "wörld ✓");
    assert_eq!(objs[0]["changes"]["b"]["new"]["blob"].as_str().unwrap().len(), 14000);
    assert_eq!(objs[1]["new"]["s"], "drei");

    let a = d.path("a.db");
    export(&db, 1, &a);
    let sql = pagelog(["diff".as_ref(), db.as_os_str(), "1..2".as_ref(), "--sql".as_ref()]).ok().stdout;
    let o = Command::new(sqlite3_shell()).arg(&a).arg(&sql).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let left = Command::new("/usr/bin/sqldiff").arg(&a).arg(d.path("b.db")).output().unwrap();
    assert!(left.status.success() && left.stdout.is_empty(), "{}", String::from_utf8_lossy(&left.stdout));
}
