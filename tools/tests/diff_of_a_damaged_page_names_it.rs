//! A damaged b-tree page makes `pagelog diff` fail with a message naming
//! the page, never a panic or a hang. The damaged database is imported into
//! a log, so every crc of the log is right and only the b-tree decoder can
//! notice.

mod common;

use common::{open, pagelog, TempDir};

#[test]
fn a_leaf_with_cell_pointers_out_of_the_page_is_an_error_naming_it() {
    let d = TempDir::new("diffbad");
    let db = d.path("app.db");
    let c = open(&db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES(1, 'a');").unwrap();
    let root: i64 = c.query_row("SELECT rootpage FROM sqlite_schema WHERE name = 't'", [], |r| r.get(0)).unwrap();
    drop(c);
    // Version 2 as a plain file, then a copy with the table's root page
    // overwritten, each imported into a log of its own.
    let bytes = common::export(&db, 2, &d.path("plain.db"));
    let ps = 4096usize;
    let mut bad = bytes;
    let at = (root as usize - 1) * ps;
    bad[at..at + ps].fill(0xA5);
    bad[at] = 13; // still a table leaf, with absurd cell count and pointers
    std::fs::write(d.path("bad.db"), &bad).unwrap();
    let log2 = d.path("bad.log");
    pagelog(["import".as_ref(), d.path("bad.db").as_os_str(), log2.as_os_str()]).ok();
    let good2 = d.path("good.log");
    pagelog(["import".as_ref(), d.path("plain.db").as_os_str(), good2.as_os_str()]).ok();
    // Each log's version 1 against version 0 (the empty database).
    let r = pagelog(["diff".as_ref(), log2.as_os_str(), "0".as_ref(), "1".as_ref()]);
    assert_eq!(r.code, 1, "stdout {}\nstderr {}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("page {root}")) && r.stderr.contains("malformed"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let ok = pagelog(["diff".as_ref(), good2.as_os_str(), "0".as_ref(), "1".as_ref(), "--summary".as_ref()]).ok();
    assert!(ok.stdout.contains("t "), "{}", ok.stdout);
}
