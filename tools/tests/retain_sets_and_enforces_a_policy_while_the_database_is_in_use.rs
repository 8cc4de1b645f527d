//! `pagelog retain DB [POLICY] [--now]` on a format-4 log that SQLite
//! connections have open: a reader in the middle of a transaction keeps
//! reading its snapshot while `--now` frees the oldest versions, a writer
//! goes on committing, the policy is stored in the log (every process
//! sees it), and a format-3 log or a bad policy is refused clearly.

mod common;
mod retained;

use common::*;
use retained::*;

fn snapshot(c: &rusqlite::Connection) -> (i64, String) {
    c.query_row("SELECT count(*), group_concat(v, ',') FROM t", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap()
}

#[test]
fn retain_now_frees_space_while_a_reader_and_a_writer_have_the_database_open() {
    let d = TempDir::new("retain-online");
    let db = d.path("app.db");
    make_format4_log(&db, 300, 800);
    let before = version_hashes(&db);

    let r = pagelog(["retain".as_ref(), db.as_os_str()]).ok();
    assert!(r.stdout.lines().next().unwrap().ends_with("all"), "{}", r.stdout);

    let reader = open(&db);
    reader.execute_batch("PRAGMA cache_size=1; BEGIN").unwrap();
    let seen = snapshot(&reader);
    let writer = open(&db);
    let disk = disk_bytes(&db);

    let r = pagelog(["retain".as_ref(), db.as_os_str(), "20 versions".as_ref(), "--now".as_ref()]).ok();
    assert!(r.stdout.contains("freed in"), "{}", r.stdout);
    let (b, vo) = kept(&db);
    assert!(b > 512 && vo > 1, "--now moved the boundary: {}", r.stdout);
    assert!(r.stdout.contains(&format!("kept          versions {vo} to 801")), "{}", r.stdout);
    // The reader's snapshot is untouched; the writer goes on.
    assert_eq!(snapshot(&reader), seen, "a read transaction's snapshot changed under retain --now");
    writer.execute("UPDATE t SET v = 'after retain' WHERE id = 1", []).unwrap();
    assert_eq!(version(&writer), 802);
    reader.execute_batch("COMMIT").unwrap();
    assert!(rows(&reader, "SELECT v FROM t WHERE id = 1") == ["after retain"]);

    // The policy is in the log, for every process.
    let r = pagelog(["retain".as_ref(), db.as_os_str()]).ok();
    assert!(r.stdout.lines().next().unwrap().ends_with("20 versions"), "{}", r.stdout);
    let via_sql: String = writer.query_row("PRAGMA pagelog_retain", [], |r| r.get(0)).unwrap();
    assert_eq!(via_sql, "20 versions");
    let r = pagelog(["retain".as_ref(), db.as_os_str()]).ok();

    // What was kept reads as before; the file gave blocks back.
    let out = d.path("out.db");
    for n in [vo, vo + 1, 801] {
        assert_eq!(hash(&export(&db, n, &out)), before[&n], "version {n}");
    }
    // The reader held an older snapshot while the step ran: the freed region
    // waits for a step after it ended (reclaim.rs invariant 2).
    assert!(r.stdout.contains("not given back to the file system yet"), "{}", r.stdout);
    drop(reader);
    for i in 0..300 {
        writer.execute("UPDATE t SET v = 'more ' || ?1 WHERE id = ?1 % 300 + 1", [i]).unwrap();
    }
    let r = pagelog(["retain".as_ref(), db.as_os_str(), "--now".as_ref()]).ok();
    assert!(!r.stdout.contains("not given back"), "{}", r.stdout);
    assert!(disk_bytes(&db) < disk, "no blocks were given back: {disk} -> {}", disk_bytes(&db));
    let (b, vo) = kept(&db);
    drop(writer);
    let r = pagelog(["verify".as_ref(), db.as_os_str()]).ok();
    assert!(r.stdout.contains(&format!("{} ok, 0 invalid", 1102 - vo + 1)), "{}", r.stdout);

    let j = pagelog(["retain".as_ref(), db.as_os_str(), "--json".as_ref()]).ok().json();
    assert_eq!(j["policy"], "20 versions");
    assert_eq!(j["oldest_kept"], vo);
    assert_eq!(j["latest"], 1102);
    assert_eq!(j["boundary"], b);
    assert_eq!(j["freed_bytes"], b - 512);
    assert_eq!(j["not_punched"], false);
    assert_eq!(j["disk_bytes"], disk_bytes(&db));

    // Setting `all` keeps what is left from now on.
    pagelog(["retain".as_ref(), db.as_os_str(), "all".as_ref(), "--now".as_ref()]).ok();
    assert_eq!(kept(&db), (b, vo));
}

#[test]
fn a_format_3_log_and_a_bad_policy_are_refused_saying_what_to_do() {
    let d = TempDir::new("retain-refused");
    let db = d.path("f3.db");
    drop(make_log(&db, 3));
    let r = pagelog(["retain".as_ref(), db.as_os_str(), "10 versions".as_ref()]).expect_code(1);
    assert!(r.stderr.contains("format 4") && r.stderr.contains("pagelog upgrade --format 4"), "{}", r.stderr);
    let r = pagelog(["retain".as_ref(), db.as_os_str(), "--now".as_ref()]).expect_code(1);
    assert!(r.stderr.contains("pagelog upgrade --format 4"), "{}", r.stderr);
    // Showing it works: a format-3 log keeps everything.
    let r = pagelog(["retain".as_ref(), db.as_os_str()]).ok();
    assert!(r.stdout.starts_with("policy        all"), "{}", r.stdout);

    let f4 = d.path("f4.db");
    make_format4_log(&f4, 10, 2);
    for bad in ["10 parsecs", "0 versions", "1 day, 2 days", ""] {
        let r = pagelog(["retain".as_ref(), f4.as_os_str(), bad.as_ref()]).expect_code(2);
        assert!(r.stderr.contains("POLICY"), "{bad}: {}", r.stderr);
    }
    // A size budget below the database is refused, naming its size.
    let r = pagelog(["retain".as_ref(), f4.as_os_str(), "1 KiB".as_ref()]).expect_code(1);
    assert!(r.stderr.contains("dropping the latest version"), "{}", r.stderr);
}
