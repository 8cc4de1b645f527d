//! `pagelog export` writes a plain SQLite file the stock shell accepts;
//! `pagelog import` turns a plain file into a log.

mod common;
use common::*;
use rusqlite::Connection;

#[test]
fn an_exported_version_passes_the_stock_shells_integrity_check_with_the_same_rows() {
    let d = TempDir::new("export");
    let db = d.path("app.db");
    let c = make_log(&db, 6);
    c.execute_batch("CREATE INDEX tv ON t(v); UPDATE t SET v = v || '!' WHERE id % 2 = 0;").unwrap();
    let latest = version(&c);
    for n in [1, 4, latest] {
        let out = d.path(&format!("v{n}.sqlite"));
        let r =
            pagelog(["export".as_ref(), db.as_os_str(), out.as_os_str(), "--version".as_ref(), n.to_string().as_ref()])
                .ok();
        assert!(r.stdout.is_empty(), "export prints nothing on stdout: {}", r.stdout);
        assert_eq!(sqlite3(&out, "PRAGMA integrity_check").trim(), "ok");
        let want = rows(&open_version(&db, n), "SELECT id, v, length(b) FROM t ORDER BY id").join("\n");
        let got = sqlite3(&out, "SELECT id, v, length(b) FROM t ORDER BY id");
        assert_eq!(got.trim_end(), want, "version {n}");
    }
    // The default is the latest version; the bytes equal the pages in order.
    let out = d.path("latest.sqlite");
    pagelog(["export".as_ref(), db.as_os_str(), out.as_os_str()]).ok();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(d.path(&format!("v{latest}.sqlite"))).unwrap());
    let pages = c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0)).unwrap() as u64;
    assert_eq!(std::fs::metadata(&out).unwrap().len(), pages * 4096);
    // No temporary file is left behind.
    assert!(d.files().iter().all(|f| !f.starts_with('.')), "{:?}", d.files());
}

#[test]
fn export_refuses_an_existing_file_unless_forced() {
    let d = TempDir::new("export-force");
    let db = d.path("app.db");
    drop(make_log(&db, 3));
    let out = d.path("out.sqlite");
    std::fs::write(&out, b"precious").unwrap();
    let r = pagelog(["export".as_ref(), db.as_os_str(), out.as_os_str()]).expect_code(1);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    pagelog(["export".as_ref(), db.as_os_str(), out.as_os_str(), "--force".as_ref()]).ok();
    assert_eq!(sqlite3(&out, "SELECT count(*) FROM t").trim(), "2");
    // Never over the log itself, even with --force.
    let before = std::fs::read(&db).unwrap();
    pagelog(["export".as_ref(), db.as_os_str(), db.as_os_str(), "--force".as_ref()]).expect_code(1);
    assert_eq!(std::fs::read(&db).unwrap(), before);
    // A version that does not exist.
    let r = pagelog(["export".as_ref(), db.as_os_str(), d.path("x").as_os_str(), "--version".as_ref(), "7".as_ref()])
        .expect_code(1);
    assert!(r.stderr.contains("version 7 does not exist"), "{}", r.stderr);
    assert!(!d.path("x").exists());
}

fn make_plain(path: &std::path::Path, page_size: u32) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size = {page_size};
         CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT, data BLOB);
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 300)
         INSERT INTO p SELECT i, 'name ' || i, randomblob(i * 7) FROM s;
         CREATE INDEX pn ON p(name);"
    ))
    .unwrap();
}

#[test]
fn import_makes_version_1_with_the_same_rows() {
    let d = TempDir::new("import");
    for ps in [4096u32, 1024, 65536] {
        let plain = d.path(&format!("plain{ps}.sqlite"));
        let db = d.path(&format!("imported{ps}.db"));
        make_plain(&plain, ps);
        let before = std::fs::read(&plain).unwrap();
        let r = pagelog(["import".as_ref(), plain.as_os_str(), db.as_os_str()]).ok();
        assert_eq!(r.stdout.trim(), "1");
        assert_eq!(std::fs::read(&plain).unwrap(), before, "import never writes PLAIN");
        assert_eq!(versions(&db), vec![1]);
        assert_eq!(history(&db)[0]["page_size"].as_u64().unwrap(), ps as u64);
        let c = open(&db);
        let want = rows(&Connection::open(&plain).unwrap(), "SELECT id, name, hex(data) FROM p ORDER BY id");
        assert_eq!(rows(&c, "SELECT id, name, hex(data) FROM p ORDER BY id"), want);
        assert_eq!(rows(&c, "PRAGMA integrity_check"), vec!["ok"]);
        // Exporting it gives back the very same bytes.
        assert_eq!(export(&db, 1, &d.path("back.sqlite")), before);
        c.execute("INSERT INTO p VALUES(1000, 'new', NULL)", []).unwrap();
        assert_eq!(version(&c), 2);
        pagelog(["verify".as_ref(), db.as_os_str()]).ok();
    }
}

#[test]
fn import_refuses_an_existing_db_a_wal_file_and_non_sqlite_files() {
    let d = TempDir::new("import-refuse");
    let plain = d.path("plain.sqlite");
    make_plain(&plain, 4096);
    // DB exists, even empty.
    let db = d.path("exists.db");
    std::fs::write(&db, b"").unwrap();
    let r = pagelog(["import".as_ref(), plain.as_os_str(), db.as_os_str()]).expect_code(1);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    assert_eq!(std::fs::read(&db).unwrap(), b"");

    // WAL mode.
    let wal = d.path("wal.sqlite");
    make_plain(&wal, 4096);
    Connection::open(&wal).unwrap().query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)).unwrap();
    let before = std::fs::read(&wal).unwrap();
    let files = d.files();
    let r = pagelog(["import".as_ref(), wal.as_os_str(), d.path("w.db").as_os_str()]).expect_code(1);
    assert!(r.stderr.contains("WAL"), "{}", r.stderr);
    assert_eq!(std::fs::read(&wal).unwrap(), before);
    assert_eq!(d.files(), files, "nothing created");

    // Not SQLite at all, and a pagelog log.
    let junk = d.path("junk.bin");
    std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
    let r = pagelog(["import".as_ref(), junk.as_os_str(), d.path("j.db").as_os_str()]).expect_code(1);
    assert!(r.stderr.contains("not an SQLite database"), "{}", r.stderr);
    let log = d.path("log.db");
    drop(make_log(&log, 2));
    let r = pagelog(["import".as_ref(), log.as_os_str(), d.path("l.db").as_os_str()]).expect_code(1);
    assert!(r.stderr.contains("pagelog log"), "{}", r.stderr);
    assert!(!d.path("j.db").exists() && !d.path("l.db").exists());
}

#[test]
fn import_refuses_a_file_with_a_hot_journal_and_leaves_both_files_alone() {
    let d = TempDir::new("import-hot");
    let plain = d.path("plain.sqlite");
    make_plain(&plain, 4096);
    // Copies of the database and its journal taken mid-transaction are what
    // a crash leaves behind: a hot journal.
    let c = Connection::open(&plain).unwrap();
    c.execute_batch("PRAGMA cache_size = 1; BEGIN; UPDATE p SET name = 'changed', data = randomblob(100);").unwrap();
    let hot = d.path("hot.sqlite");
    std::fs::copy(&plain, &hot).unwrap();
    let mut j = hot.as_os_str().to_owned();
    j.push("-journal");
    let journal = std::path::PathBuf::from(j);
    let mut pj = plain.as_os_str().to_owned();
    pj.push("-journal");
    std::fs::copy(std::path::PathBuf::from(pj), &journal).unwrap();
    drop(c);
    let (db_bytes, journal_bytes) = (std::fs::read(&hot).unwrap(), std::fs::read(&journal).unwrap());
    let r = pagelog(["import".as_ref(), hot.as_os_str(), d.path("x.db").as_os_str()]).expect_code(1);
    assert!(r.stderr.contains("hot journal"), "{}", r.stderr);
    assert_eq!(std::fs::read(&hot).unwrap(), db_bytes);
    assert_eq!(std::fs::read(&journal).unwrap(), journal_bytes);
    assert!(!d.path("x.db").exists());
}
