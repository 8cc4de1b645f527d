//! PRAGMA synchronous decides how often the log is synced. This file holds
//! one test only: the sync counter is process-wide.

use pagelog_e2e::{open, TempDir};

#[test]
fn full_syncs_once_per_commit_normal_rarely_and_off_never() {
    let d = TempDir::new("durability");
    let run = |mode: &str, file: &str| -> u64 {
        let c = open(&d.path(file));
        c.execute_batch(&format!("PRAGMA synchronous = {mode}; CREATE TABLE t(x)")).unwrap();
        let before = pagelog::sync_count();
        for i in 0..50 {
            c.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        pagelog::sync_count() - before
    };
    assert_eq!(run("FULL", "full.db"), 50, "FULL: exactly one sync per commit");
    assert_eq!(run("EXTRA", "extra.db"), 50, "EXTRA: exactly one sync per commit");
    let normal = run("NORMAL", "normal.db");
    assert!(normal <= 2, "NORMAL: synced at most once a second, not per commit ({normal})");
    assert_eq!(run("OFF", "off.db"), 0, "OFF: never synced");
    // Closing the last connection makes NORMAL's commits durable.
    let c = open(&d.path("close.db"));
    c.execute_batch("PRAGMA synchronous = NORMAL; CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    let before = pagelog::sync_count();
    drop(c);
    assert_eq!(pagelog::sync_count() - before, 1, "the last close syncs pending commits");
    // SQLite refuses PRAGMA synchronous inside a transaction and stays at
    // FULL; pagelog, which sees the pragma first, must not drop to OFF.
    let c = open(&d.path("refused.db"));
    c.execute_batch("CREATE TABLE t(x); BEGIN").unwrap();
    let err = c.execute_batch("PRAGMA synchronous = OFF").unwrap_err();
    assert!(err.to_string().contains("inside a transaction"), "{err}");
    c.execute_batch("INSERT INTO t VALUES (1)").unwrap();
    let before = pagelog::sync_count();
    c.execute_batch("COMMIT").unwrap();
    assert_eq!(pagelog::sync_count() - before, 1, "still FULL after a refused PRAGMA synchronous=OFF");
    let before = pagelog::sync_count();
    c.execute("INSERT INTO t VALUES (2)", []).unwrap();
    assert_eq!(pagelog::sync_count() - before, 1, "and for the next commits");
}
