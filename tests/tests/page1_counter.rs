//! Format 2 stores no new page-1 image when a commit changed only SQLite's
//! change counter; page 1 reads with the counter its commit records. Another
//! process's commits, and a revert, must still reach a connection that keeps
//! its page cache across transactions (SQLite compares page 1's counter at
//! the start of each read transaction).

use pagelog::{Log, OpenOptions};
use pagelog_e2e::{count, extension_stem, open, run_shell, TempDir};

fn version_of(c: &rusqlite::Connection) -> i64 {
    c.query_row("SELECT pagelog_version()", [], |r| r.get(0)).unwrap()
}

#[test]
fn one_row_commits_store_one_page_and_other_processes_and_reverts_are_seen() {
    let d = TempDir::new("page1");
    let p = d.path("c.db");
    let a = open(&p);
    a.execute_batch("PRAGMA cache_size = 1000; CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    assert_eq!(count(&a, "t"), 1);
    let before = version_of(&a);

    // Other processes: one row, one commit each. (The first one's SQLite
    // also writes its own library version into page 1, bytes 96-99, so it
    // stores page 1; the second changes only the counters.)
    for x in [2, 3] {
        let script = format!(".load {}\n.open file:c.db?vfs=pagelog\nINSERT INTO t VALUES ({x});\n", extension_stem());
        let out = run_shell(&d.0, &script);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    {
        let log = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).unwrap();
        let (v, w) = (log.latest(), log.version(log.latest().number - 1).unwrap());
        let changed: Vec<u32> = (1..=v.db_pages()).filter(|&p| v.map.get(p) != w.map.get(p)).collect();
        assert_eq!(changed, vec![2], "a one-row commit stores only the changed leaf, not page 1");
        assert_eq!(v.counter, w.counter + 1, "the counter still moves by one");
        let p1 = v.page(1).unwrap().unwrap();
        assert_eq!(u32::from_be_bytes(p1[24..28].try_into().unwrap()), v.counter);
        assert_eq!(u32::from_be_bytes(p1[92..96].try_into().unwrap()), v.counter);
    }
    assert_eq!(count(&a, "t"), 3, "the long-lived connection sees the other processes' rows");
    assert!(version_of(&a) > before);

    // A revert by another Log (as `pagelog revert` in another process would).
    {
        let log = Log::open(&p, OpenOptions::default()).unwrap();
        let to = log.latest().number - 1;
        log.revert(to, std::time::Duration::from_secs(5)).unwrap().unwrap();
    }
    assert_eq!(count(&a, "t"), 2, "the connection sees the revert");
    a.execute("INSERT INTO t VALUES (4)", []).unwrap();
    assert_eq!(count(&a, "t"), 3);
    let ok: String = a.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
}
