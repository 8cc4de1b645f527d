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
print(db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
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
    assert_eq!(lines[2], "delete", "journal_mode=WAL answers the mode in force");
    assert_eq!(lines[3], "101");
    let c = open(&p);
    assert_eq!(version(&c), 3);
    assert_eq!(count(&c, "t"), 101);
    assert_eq!(d.files(), vec!["py.db"]);
}

/// An app that asks for WAL at startup, as sqlite-utils' `enable_wal()` does
/// (and Django or Rails set-ups through their init commands): it reads the
/// mode, sets WAL under `with conn:`, and then relies on what WAL gives — a
/// reader that keeps reading while a writer holds an open transaction. On
/// pagelog it runs unchanged: the pragma answers the mode in force (SQLite's
/// rule when a mode cannot be changed), no -wal or -shm file appears, and
/// the reader is not blocked.
#[test]
fn an_app_that_enables_wal_at_startup_runs_unchanged() {
    let d = TempDir::new("python-wal-app");
    let script = r#"
import os, sqlite3, sys
ext, path = sys.argv[1], sys.argv[2]
boot = sqlite3.connect(":memory:")
boot.enable_load_extension(True)
boot.load_extension(ext)
uri = "file:%s?vfs=pagelog" % path

class Database:  # what sqlite_utils.Database does in enable_wal()
    def __init__(self, uri):
        self.conn = sqlite3.connect(uri, uri=True)
    def execute(self, sql, params=()):
        return self.conn.execute(sql, params)
    @property
    def journal_mode(self):
        return self.execute("PRAGMA journal_mode;").fetchone()[0]
    def enable_wal(self):
        if self.journal_mode != "wal":
            with self.conn:
                self.execute("PRAGMA journal_mode=wal;")

db = Database(uri)
db.enable_wal()
print("mode", db.journal_mode)
with db.conn:
    db.execute("CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO items(name) VALUES ('a'), ('b')")
reader = Database(uri)
reader.enable_wal()
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO items(name) VALUES ('c')")
print("reader sees", reader.execute("SELECT count(*) FROM items").fetchone()[0])
db.conn.commit()
print("reader sees", reader.execute("SELECT count(*) FROM items").fetchone()[0])
print("files", sorted(os.listdir(os.path.dirname(path))))
print("version", db.execute("PRAGMA pagelog_version").fetchone()[0])
"#;
    let p = d.path("app.db");
    let out =
        std::process::Command::new(python3()).arg("-c").arg(script).arg(extension_stem()).arg(&p).output().unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout {so}\nstderr {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = so.lines().collect();
    assert_eq!(lines, vec!["mode delete", "reader sees 2", "reader sees 3", "files ['app.db']", "version 3"]);
    let c = open(&p);
    assert_eq!(count(&c, "items"), 3);
}
