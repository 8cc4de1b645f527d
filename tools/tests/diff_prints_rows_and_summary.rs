//! The forms of `pagelog diff`: versions as A, A B or A..B, the aligned
//! human output (no colour off a terminal), `--json` objects, `--summary`,
//! `--table`, and the errors for a missing table or version.

mod common;

use common::{open, pagelog, TempDir};

#[test]
fn diff_prints_rows_per_table_and_accepts_every_version_form() {
    let d = TempDir::new("diffcli");
    let db = d.path("app.db");
    let c = open(&db);
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         CREATE TABLE w(k TEXT PRIMARY KEY, n INT) WITHOUT ROWID;
         BEGIN; INSERT INTO t VALUES(1, 'a'), (2, 'b'); INSERT INTO w VALUES('x', 1); COMMIT;
         BEGIN; UPDATE t SET v = 'B' WHERE id = 2; DELETE FROM w; INSERT INTO t VALUES(3, 'c'); COMMIT;",
    )
    .unwrap();
    let dbs = db.to_str().unwrap();
    let human = pagelog(["diff", dbs, "3"]).ok().stdout;
    assert!(human.contains("version 3 -> 4"), "{human}");
    assert!(human.contains("~ rowid 2  v: 'b' -> 'B'"), "{human}");
    assert!(human.contains("+ rowid 3  id=3, v='c'"), "{human}");
    assert!(human.contains("- k='x'  k='x', n=1"), "{human}");
    assert!(!human.contains('\x1b'), "no colour when stdout is not a terminal");
    assert_eq!(pagelog(["diff", dbs, "3..4"]).ok().stdout, human);
    assert_eq!(pagelog(["diff", dbs, "3", "4"]).ok().stdout, human);
    let json = pagelog(["diff", dbs, "3", "--table", "t", "--json"]).ok().stdout;
    let objs: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objs.len(), 3, "{json}");
    assert_eq!(objs[0]["kind"], "update");
    assert_eq!(objs[0]["key"]["rowid"], 2);
    assert_eq!(objs[0]["changes"]["v"]["old"], "b");
    assert_eq!(objs[0]["changes"]["v"]["new"], "B");
    assert_eq!(objs[1]["kind"], "insert");
    assert_eq!(objs[2]["kind"], "summary");
    assert_eq!((objs[2]["inserted"].as_u64(), objs[2]["updated"].as_u64()), (Some(1), Some(1)));
    let summary = pagelog(["diff", dbs, "3", "--summary"]).ok().stdout;
    assert!(
        summary.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["t", "1", "0", "1", "same"]),
        "{summary}"
    );
    let e = pagelog(["diff", dbs, "3", "--table", "nope"]).expect_code(1);
    assert!(e.stderr.contains("no table \"nope\""), "{}", e.stderr);
    let e = pagelog(["diff", dbs, "4"]).expect_code(1);
    assert!(e.stderr.contains("version 5 does not exist"), "{}", e.stderr);
    let e = pagelog(["diff", dbs, "x..4"]).expect_code(2);
    assert!(e.stderr.contains("not a version number"), "{}", e.stderr);
}
