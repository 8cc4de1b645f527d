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
}
