//! Python's sqlite3 module (Debian's python3, which can load extensions).

use pagelog_e2e::{count, extension_stem, open, python3, version, TempDir};

#[test]
fn python_loads_the_extension_and_uses_the_vfs() {
    let d = TempDir::new("python");
    let script = r#"
import sqlite3, sys
ext, path = sys.argv[1], sys.argv[2]
boot = sqlite3.connect(":memory:")
boot.enable_load_extension(True)
boot.load_extension(ext)
boot.load_extension(ext)  # a second load must not register a second VFS
db = sqlite3.connect("file:%s?vfs=pagelog" % path, uri=True, isolation_level=None)
db.execute("CREATE TABLE t(x)")
db.execute("INSERT INTO t VALUES (1)")
db.execute("BEGIN")
db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
db.execute("COMMIT")
db.execute("BEGIN"); db.execute("DELETE FROM t"); db.execute("ROLLBACK")
print(db.execute("PRAGMA pagelog_version").fetchone()[0])
print(db.execute("SELECT count(*) FROM t").fetchone()[0])
try:
    db.execute("PRAGMA journal_mode=WAL")
    print("WAL accepted")
except sqlite3.Error as e:
    print("refused:", e)
other = sqlite3.connect("file:%s?vfs=pagelog" % path, uri=True)
print(other.execute("SELECT count(*) FROM t").fetchone()[0])
"#;
    let p = d.path("py.db");
    let out =
        std::process::Command::new(python3()).arg("-c").arg(script).arg(extension_stem()).arg(&p).output().unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout {so}\nstderr {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = so.lines().collect();
    assert_eq!(lines[0], "3");
    assert_eq!(lines[1], "101");
    assert!(lines[2].starts_with("refused:") && lines[2].contains("WAL"), "{}", lines[2]);
    assert_eq!(lines[3], "101");
    let c = open(&p);
    assert_eq!(version(&c), 3);
    assert_eq!(count(&c, "t"), 101);
    assert_eq!(d.files(), vec!["py.db"]);
}
