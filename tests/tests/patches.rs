//! Format 3 stores small changes as patches (FORMAT.md, "Patches"). Through
//! the stock sqlite3 shell, one process per batch of one-row commits, the
//! same SQL run on a plain SQLite file (rollback journal) is the oracle: each
//! version pagelog makes must read back byte for byte as the file SQLite
//! wrote, page 1's derived counters included.

use pagelog::{Log, OpenOptions};
use pagelog_e2e::{count, extension_stem, open, run_shell, TempDir};

/// Every page of `v`, concatenated: what `pagelog export` writes.
fn image(v: &pagelog::Version) -> Vec<u8> {
    (1..=v.db_pages()).flat_map(|p| v.page(p).unwrap().unwrap().to_vec()).collect()
}

fn batch(first: i64, n: i64) -> String {
    let mut s = String::new();
    for i in first..first + n {
        s += &format!("INSERT INTO t1 VALUES({i}, {}, 'row {i} of the test, some words');\n", i * 7919 % 10007);
        if i % 5 == 0 {
            s += &format!("UPDATE t1 SET b = b + 1 WHERE a = {};\n", i / 2);
        }
        if i % 17 == 0 {
            s += &format!("DELETE FROM t1 WHERE a = {};\n", i - 3);
        }
    }
    s
}

#[test]
fn one_row_commits_are_patches_and_every_version_reads_as_the_file_sqlite_wrote() {
    let d = TempDir::new("patches-shell");
    let ext = extension_stem();
    let pl = format!(".load {ext}\n.open file:app.db?vfs=pagelog\n");
    let plain = ".open plain.db\n";
    let setup = "CREATE TABLE t1(a INTEGER, b INTEGER, c TEXT); CREATE INDEX t1c ON t1(c);\n";
    let reader = open(&d.path("app.db"));
    reader.execute_batch("PRAGMA cache_size = 1000").ok();
    let mut checkpoints = Vec::new();
    for (k, sql) in [setup.to_string(), batch(1, 60), batch(61, 60), batch(121, 60)].iter().enumerate() {
        for head in [&pl[..], plain] {
            let out = run_shell(&d.0, &format!("{head}{sql}"));
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let log = Log::open(&d.path("app.db"), OpenOptions { read_only: true, ..Default::default() }).unwrap();
        checkpoints.push((log.latest().number, std::fs::read(d.path("plain.db")).unwrap()));
        if k > 0 {
            // A connection that keeps its page cache sees the other
            // processes' commits (page 1's counter moved).
            let want: i64 = rusqlite::Connection::open(d.path("plain.db"))
                .unwrap()
                .query_row("SELECT count(*) FROM t1", [], |r| r.get(0))
                .unwrap();
            assert_eq!(count(&reader, "t1"), want);
        }
    }
    let log = Log::open(&d.path("app.db"), OpenOptions { read_only: true, ..Default::default() }).unwrap();
    for (n, want) in &checkpoints {
        let got = image(&log.version(*n).unwrap());
        assert!(
            got == *want,
            "version {n} does not read as the file SQLite wrote ({} vs {} bytes)",
            got.len(),
            want.len()
        );
    }
    // Most one-row commits stored patches, not pages.
    let (mut patches, mut images) = (0, 0);
    let latest = log.latest().number;
    for n in 3..=latest {
        let (v, w) = (log.version(n).unwrap(), log.version(n - 1).unwrap());
        for p in 1..=v.db_pages() {
            let s = v.map.get(p).unwrap();
            if w.map.get(p) != Some(s) {
                if pagelog::patch::is_patch(s.offset) {
                    patches += 1;
                } else {
                    images += 1;
                }
            }
        }
    }
    assert!(patches > 3 * images, "{patches} patches, {images} images over {} commits", latest - 2);
    let rep = log.verify();
    assert!(!rep.damaged(), "{rep:?}");
    let ok: String = reader.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
}
