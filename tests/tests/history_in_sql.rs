//! History from SQL: `pagelog_version()` as an INTEGER and the
//! `pagelog_diff` table, through rusqlite, the sqlite3 shell and Python.

use pagelog_e2e::{extension_stem, open, python3, run_shell, TempDir};

fn four_versions(p: &std::path::Path) -> rusqlite::Connection {
    let c = open(p);
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO t VALUES(1, 'a'), (2, 'b');
         UPDATE t SET v = 'B' WHERE id = 2;
         CREATE TABLE w(k TEXT PRIMARY KEY, n INT) WITHOUT ROWID; ",
    )
    .unwrap();
    c
}

#[test]
fn pagelog_version_is_an_integer_through_rusqlite_also_for_an_attached_database() {
    let d = TempDir::new("fnver");
    let p = d.path("app.db");
    let c = four_versions(&p);
    let v: i64 = c.query_row("SELECT pagelog_version()", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 4);
    let q = d.path("aux.db");
    open(&q).execute_batch("CREATE TABLE x(y)").unwrap();
    c.execute(&format!("ATTACH 'file:{}?vfs=pagelog' AS aux", q.display()), []).unwrap();
    let a: i64 = c.query_row("SELECT pagelog_version('aux')", [], |r| r.get(0)).unwrap();
    assert_eq!(a, 1);
    let text: String = c.query_row("PRAGMA pagelog_version", [], |r| r.get(0)).unwrap();
    assert_eq!(text, "4");
    let e = c.query_row("SELECT pagelog_version('nope')", [], |r| r.get::<_, i64>(0)).unwrap_err();
    assert!(e.to_string().contains("no database named"), "{e}");
    c.execute_batch("ATTACH ':memory:' AS mem").unwrap();
    let e = c.query_row("SELECT pagelog_version('mem')", [], |r| r.get::<_, i64>(0)).unwrap_err();
    assert!(e.to_string().contains("not opened through the pagelog VFS"), "{e}");
}

#[test]
fn pagelog_version_on_a_plain_database_is_a_clear_error() {
    pagelog::register().unwrap();
    let c = rusqlite::Connection::open_in_memory().unwrap();
    let e = c.query_row("SELECT pagelog_version()", [], |r| r.get::<_, i64>(0)).unwrap_err();
    assert!(e.to_string().contains("\"main\" is not opened through the pagelog VFS"), "{e}");
}

#[test]
fn pagelog_diff_lists_row_and_schema_changes_through_rusqlite() {
    let d = TempDir::new("difftab");
    let p = d.path("app.db");
    let c = four_versions(&p);
    let rows = |sql: &str| -> Vec<String> {
        let mut st = c.prepare(sql).unwrap();
        st.query_map([], |r| {
            Ok((0..5)
                .map(|i| r.get::<_, Option<String>>(i).unwrap().unwrap_or_else(|| "NULL".into()))
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    };
    assert_eq!(rows("SELECT * FROM pagelog_diff(2, 3)"), ["t|update|{\"rowid\":2}|{\"v\":\"b\"}|{\"v\":\"B\"}"]);
    assert_eq!(
        rows("SELECT * FROM pagelog_diff(1, 2)"),
        ["t|insert|{\"rowid\":1}|NULL|{\"id\":1,\"v\":\"a\"}", "t|insert|{\"rowid\":2}|NULL|{\"id\":2,\"v\":\"b\"}"]
    );
    let created = rows("SELECT * FROM pagelog_diff(3)");
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(created[0].starts_with("w|create|{\"type\":\"table\"}|NULL|CREATE TABLE w"), "{created:?}");
    let n: i64 =
        c.query_row("SELECT count(*) FROM pagelog_diff(1, 4, 'main') WHERE kind = 'insert'", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 2);
    let e = c.query_row("SELECT count(*) FROM pagelog_diff(1, 99)", [], |r| r.get::<_, i64>(0)).unwrap_err();
    assert!(e.to_string().contains("version 99 does not exist"), "{e}");
}

#[test]
fn the_shell_sees_the_function_and_the_diff_table() {
    let d = TempDir::new("fnshell");
    let p = d.path("app.db");
    drop(four_versions(&p));
    let script = format!(
        ".load {}\n.open file:app.db?vfs=pagelog\nSELECT pagelog_version(), typeof(pagelog_version());\n\
         SELECT \"table\", kind, key, new FROM pagelog_diff(2, 3);\n",
        extension_stem()
    );
    let out = run_shell(d.path("").as_path(), &script);
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{so}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(so.lines().collect::<Vec<_>>(), ["4|integer", "t|update|{\"rowid\":2}|{\"v\":\"B\"}"]);
}

#[test]
fn python_reads_pagelog_version_as_an_int() {
    let d = TempDir::new("fnpy");
    let p = d.path("app.db");
    drop(four_versions(&p));
    let script = r#"
import sqlite3, sys
boot = sqlite3.connect(":memory:")
boot.enable_load_extension(True)
boot.load_extension(sys.argv[1])
db = sqlite3.connect("file:%s?vfs=pagelog" % sys.argv[2], uri=True)
v = db.execute("SELECT pagelog_version()").fetchone()[0]
print(type(v).__name__, v)
print(db.execute("SELECT count(*) FROM pagelog_diff(1, 4)").fetchone()[0])
"#;
    let out =
        std::process::Command::new(python3()).arg("-c").arg(script).arg(extension_stem()).arg(&p).output().unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{so}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(so.lines().collect::<Vec<_>>(), ["int 4", "3"]);
}
