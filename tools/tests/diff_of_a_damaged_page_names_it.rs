//! A damaged b-tree page makes `pagelog diff` fail with a message naming
//! the page, never a panic or a hang. The damaged databases are imported
//! into logs, so every crc of the log is right and only the b-tree decoder
//! can notice.

mod common;

use std::time::{Duration, Instant};

use common::{open, pagelog, TempDir};

/// Version 2 of a small log (rowid and WITHOUT ROWID tables, overflow
/// chains, an index) as a plain file, and its page size.
fn plain_image(d: &TempDir) -> (Vec<u8>, usize, i64) {
    let db = d.path("app.db");
    let c = open(&db);
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v); CREATE INDEX tv ON t(v);
         CREATE TABLE w(k TEXT PRIMARY KEY, b BLOB) WITHOUT ROWID;
         BEGIN;
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 300)
         INSERT INTO t SELECT i, CASE WHEN i % 50 = 0 THEN randomblob(9000) ELSE hex(randomblob(30)) END FROM s;
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200)
         INSERT INTO w SELECT printf('k%05d', i), randomblob(i * 20) FROM s;
         COMMIT;",
    )
    .unwrap();
    let root: i64 = c.query_row("SELECT rootpage FROM sqlite_schema WHERE name = 't'", [], |r| r.get(0)).unwrap();
    let n = common::version(&c);
    drop(c);
    (common::export(&db, n, &d.path("plain.db")), 4096, root)
}

#[test]
fn a_leaf_with_cell_pointers_out_of_the_page_is_an_error_naming_it() {
    let d = TempDir::new("diffbad");
    let (bytes, ps, root) = plain_image(&d);
    let mut bad = bytes;
    let at = (root as usize - 1) * ps;
    bad[at..at + ps].fill(0xA5);
    bad[at] = 13; // still a table leaf, with absurd cell count and pointers
    std::fs::write(d.path("bad.db"), &bad).unwrap();
    let log = d.path("bad.log");
    pagelog(["import".as_ref(), d.path("bad.db").as_os_str(), log.as_os_str()]).ok();
    // The log's version 1 against version 0 (the empty database).
    let r = pagelog(["diff".as_ref(), log.as_os_str(), "0".as_ref(), "1".as_ref()]);
    assert_eq!(r.code, 1, "stdout {}\nstderr {}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("page {root}")) && r.stderr.contains("malformed"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn randomly_damaged_pages_give_an_error_or_a_diff_never_a_panic_or_a_hang() {
    let d = TempDir::new("diffmut");
    let (bytes, ps, _) = plain_image(&d);
    let pages = bytes.len() / ps;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let rounds = if std::env::var_os("PAGELOG_LONG").is_some() { 400 } else { 40 };
    let (mut errors, mut clean) = (0, 0);
    for round in 0..rounds {
        let mut bad = bytes.clone();
        let page = 1 + rnd(pages - 1); // page 1's header stays readable by import
        let at = page * ps;
        match rnd(3) {
            0 => {
                for _ in 0..1 + rnd(8) {
                    bad[at + rnd(ps)] ^= 1 << rnd(8);
                }
            }
            1 => {
                let (o, n) = (rnd(ps), 1 + rnd(64));
                for b in &mut bad[at + o..(at + o + n).min(at + ps)] {
                    *b = rnd(256) as u8;
                }
            }
            _ => {
                let o = at + 3 + rnd(9); // cell count, content start, child pointer
                bad[o] = rnd(256) as u8;
            }
        }
        let (plain, log) = (d.path(&format!("m{round}.db")), d.path(&format!("m{round}.log")));
        std::fs::write(&plain, &bad).unwrap();
        pagelog(["import".as_ref(), plain.as_os_str(), log.as_os_str()]).ok();
        for flag in ["--json", "--sql"] {
            let started = Instant::now();
            let r = pagelog(["diff".as_ref(), log.as_os_str(), "0..1".as_ref(), flag.as_ref()]);
            assert!(started.elapsed() < Duration::from_secs(20), "round {round}: diff took {:?}", started.elapsed());
            assert!(
                !r.stderr.contains("panicked") && !r.stderr.contains("internal error"),
                "round {round}: {}",
                r.stderr
            );
            match r.code {
                0 => clean += 1,
                1 => {
                    assert!(r.stderr.contains("page "), "round {round}: an error that names no page: {}", r.stderr);
                    errors += 1;
                }
                c => panic!("round {round}: exit code {c}: {}", r.stderr),
            }
        }
        let _ = std::fs::remove_file(&plain);
        let _ = std::fs::remove_file(&log);
    }
    assert!(errors > 0 && clean > 0, "{errors} errors, {clean} clean diffs: the mutations should produce both");
}

/// A frame whose crc fails (damage in the log, not in the b-tree) made
/// `diff 1 2` say "pagelog log app.db is corrupt at offset N: …" without
/// saying which of the two versions it hides. It names the version now;
/// versions that do not read the frame still diff.
#[test]
fn a_damaged_frame_is_named_with_the_version_it_hides() {
    let d = TempDir::new("diffcrc");
    let db = d.path("app.db");
    let frame = common::damage_a_page_only_version_2_reads(&db);
    for (a, b) in [("1", "2"), ("2", "3")] {
        let r = pagelog(["diff".as_ref(), db.as_os_str(), a.as_ref(), b.as_ref()]).expect_code(1);
        assert!(r.stderr.contains("version 2 cannot be read"), "{a} {b}: {}", r.stderr);
        assert!(r.stderr.contains(&format!("offset {frame}")), "{a} {b}: {}", r.stderr);
        assert!(r.stderr.contains(db.to_str().unwrap()), "{a} {b}: {}", r.stderr);
    }
    pagelog(["diff".as_ref(), db.as_os_str(), "3".as_ref(), "4".as_ref()]).ok();
}
