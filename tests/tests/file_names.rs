//! File names are bytes: pagelog opens exactly the name SQLite gives it,
//! whether or not it is UTF-8 (rusqlite, Python, the shell), and every
//! spelling of one file in one process (a symlink, a hard link, `./`) shares
//! one log.

use std::path::Path;

use pagelog_e2e::{
    count, extension_stem, file_uri, open, open_version, python3, run_shell_bytes, rw_flags, version, TempDir,
};
use rusqlite::{Connection, OpenFlags};

/// Two names that differ only in one byte that is not UTF-8 (Latin-1 é, è).
const E_ACUTE: &[u8] = b"caf\xe9.db";
const E_GRAVE: &[u8] = b"caf\xe8.db";

fn tables(c: &Connection) -> Vec<String> {
    let mut st = c.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").unwrap();
    st.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
}

fn open_uri(uri: &str, flags: OpenFlags) -> rusqlite::Result<Connection> {
    pagelog::register().expect("register pagelog");
    Connection::open_with_flags_and_vfs(uri, flags, "pagelog")
}

/// The log at `path`, opened directly (not through SQLite): its latest version.
fn log_version(path: &Path) -> u64 {
    let log = pagelog::Log::open(path, pagelog::OpenOptions { read_only: true, ..Default::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    log.refresh().unwrap().number
}

fn is_readonly(c: &Connection) -> bool {
    c.is_readonly(rusqlite::MAIN_DB).unwrap()
}

fn rows_of_t(c: &Connection) -> Vec<String> {
    let mut st = c.prepare("SELECT x FROM t ORDER BY rowid").unwrap();
    st.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
}

// ---- rusqlite ----------------------------------------------------------------

#[test]
fn two_names_that_differ_only_in_a_byte_that_is_not_utf8_are_two_logs() {
    let d = TempDir::new("names-two");
    let (pa, pb) = (d.path_bytes(E_ACUTE), d.path_bytes(E_GRAVE));
    // rusqlite hands SQLite a Path's bytes as they are.
    let a = open(&pa);
    a.execute_batch("CREATE TABLE a(x); INSERT INTO a VALUES (1);").unwrap();
    let b = open(&pb);
    assert_eq!(tables(&b), Vec::<String>::new(), "the second name must be a new, empty database");
    b.execute_batch("CREATE TABLE b(y);").unwrap();
    assert_eq!(d.names(), vec![E_GRAVE.to_vec(), E_ACUTE.to_vec()], "each file under its exact name, nothing else");
    assert_eq!(tables(&a), vec!["a"]);
    assert_eq!(tables(&b), vec!["b"]);
    assert_eq!((version(&a), version(&b)), (2, 1));
    drop((a, b));
    // Each file is a pagelog log of its own.
    assert_eq!((log_version(&pa), log_version(&pb)), (2, 1));
}

#[test]
fn a_file_uri_with_percent_escapes_opens_the_exact_bytes() {
    let d = TempDir::new("names-uri");
    let p = d.path_bytes(E_ACUTE);
    let uri = format!("{}?vfs=pagelog", file_uri(&p));
    assert!(uri.ends_with("caf%E9.db?vfs=pagelog"), "{uri}");
    pagelog::register().unwrap();
    let c = Connection::open_with_flags(&uri, rw_flags()).unwrap();
    assert!(p.exists(), "the file exists under its exact name right after the open");
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES ('é');").unwrap();
    assert_eq!(d.names(), vec![E_ACUTE.to_vec()]);
    drop(c);
    // The same bytes given as a plain path open the same log.
    let c = open(&p);
    assert_eq!(version(&c), 2);
    assert_eq!(count(&c, "t"), 1);
}

#[test]
fn version_n_of_a_log_whose_name_is_not_utf8_opens_in_place_read_only() {
    let d = TempDir::new("names-version");
    let p = d.path_bytes(b"v\xff\xfe.db");
    let c = open(&p);
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES ('one'); INSERT INTO t VALUES ('two');").unwrap();
    let old = open_version(&p, 2);
    assert_eq!(rows_of_t(&old), vec!["one"]);
    assert_eq!(version(&c), 3);
    assert!(is_readonly(&old));
    assert_eq!(d.names(), vec![b"v\xff\xfe.db".to_vec()]);
}

#[test]
fn a_version_parameter_that_is_not_utf8_is_refused_with_its_bytes_shown() {
    let d = TempDir::new("names-badversion");
    let p = d.path_bytes(E_ACUTE);
    open(&p).execute_batch("CREATE TABLE t(x)").unwrap();
    let uri = format!("{}?version=2%FF", file_uri(&p));
    let e = open_uri(&uri, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI).unwrap_err();
    assert!(e.to_string().contains("unable to open"), "{e}");
    let msg = pagelog::sqlite::last_error().unwrap();
    assert!(msg.contains(r#"caf\xe9.db: version="2\xff" is not a version number"#), "{msg}");
}

#[test]
fn an_error_about_a_file_whose_name_is_not_utf8_shows_its_bytes_escaped() {
    let d = TempDir::new("names-message");
    let p = d.path_bytes(b"not-a-log-\xe9.db");
    std::fs::write(&p, vec![b'x'; 4096]).unwrap();
    let e = open_uri(&format!("{}?vfs=pagelog", file_uri(&p)), rw_flags()).unwrap_err();
    assert!(e.to_string().contains("file is not a database"), "{e}");
    let msg = pagelog::sqlite::last_error().unwrap();
    assert!(msg.contains(r"not-a-log-\xe9.db is not a pagelog log"), "{msg}");
    assert_eq!(std::fs::read(&p).unwrap(), vec![b'x'; 4096], "left unchanged");
}

#[test]
fn pagelog_log_lists_an_attached_database_whose_file_and_schema_names_are_not_utf8() {
    let d = TempDir::new("names-attach");
    let main = open(&d.path("main.db"));
    main.execute_batch("CREATE TABLE m(x)").unwrap();
    let other = d.path_bytes(E_ACUTE);
    let o = open(&other);
    o.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);").unwrap();
    drop(o);
    // The schema name is text whose bytes are "aux\xe9" (SQL strings are
    // UTF-8 in Rust, so it is built from a blob).
    let uri = format!("{}?vfs=pagelog", file_uri(&other));
    main.execute("ATTACH ?1 AS CAST(x'617578e9' AS TEXT)", [&uri]).unwrap();
    let versions = |schema_sql: &str| -> Vec<i64> {
        let sql = format!("SELECT version FROM pagelog_log({schema_sql}) ORDER BY version");
        let mut st = main.prepare(&sql).unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(versions("CAST(x'617578e9' AS TEXT)"), vec![1, 2, 3]);
    assert_eq!(versions("'main'"), vec![1]);
    // A schema that differs in that one byte is another (absent) database.
    let e = main
        .query_row("SELECT version FROM pagelog_log(CAST(x'617578e8' AS TEXT))", [], |r| r.get::<_, i64>(0))
        .unwrap_err()
        .to_string();
    assert!(e.contains(r#"database "aux\xe8" is not opened through the pagelog VFS"#), "{e}");
    assert_eq!(d.names(), vec![E_ACUTE.to_vec(), b"main.db".to_vec()]);
}

// ---- Python ------------------------------------------------------------------

fn python(dir: &Path, script: &str) -> String {
    let out = std::process::Command::new(python3())
        .arg("-c")
        .arg(script)
        .arg(extension_stem())
        .current_dir(dir)
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "stdout {so}\nstderr {}", String::from_utf8_lossy(&out.stderr));
    so
}

#[test]
fn python_opens_two_names_that_differ_in_a_byte_that_is_not_utf8_as_two_logs() {
    let d = TempDir::new("names-python");
    std::fs::create_dir(d.path("d")).unwrap();
    // The reproducer of issue #13, as it was reported.
    let script = r#"
import sqlite3, os, sys
b = sqlite3.connect(':memory:'); b.enable_load_extension(True); b.load_extension(sys.argv[1])
a = sqlite3.connect('file:d/caf%E9.db?vfs=pagelog', uri=True)
a.execute('create table a(x)'); a.commit()
c = sqlite3.connect('file:d/caf%E8.db?vfs=pagelog', uri=True)
print(c.execute('select name from sqlite_master').fetchall())
c.execute('create table c(y)'); c.commit()
print(a.execute('select name from sqlite_master').fetchall())
print(sorted(os.listdir(b'd')))
"#;
    let out = python(&d.0, script);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, vec!["[]", "[('a',)]", r"[b'caf\xe8.db', b'caf\xe9.db']"]);
    let sub = TempDir(d.path("d"));
    assert_eq!(sub.names(), vec![E_GRAVE.to_vec(), E_ACUTE.to_vec()]);
    assert_eq!(tables(&open(&sub.path_bytes(E_ACUTE))), vec!["a"]);
    assert_eq!(tables(&open(&sub.path_bytes(E_GRAVE))), vec!["c"]);
}

/// CPython's `test_open_with_undecodable_path` and `test_open_undecodable_uri`
/// (Lib/test/test_sqlite3/test_dbapi.py), with pagelog as the default VFS as
/// when that suite found the bug: the file exists at the exact path right
/// after `connect`.
#[test]
fn cpythons_undecodable_path_tests_pass_with_pagelog_as_the_default_vfs() {
    let d = TempDir::new("names-cpython");
    let script = r#"
import contextlib, os, sqlite3, sys, urllib.parse
b = sqlite3.connect(':memory:'); b.enable_load_extension(True)
b.execute("SELECT load_extension(?, 'sqlite3_pagelog_default_init')", (sys.argv[1],))
for name, as_uri in ((b'@test_tmp\xe7w\xf0', False), (b'@test_tmp\xe7w\xf1', True)):
    path = os.path.join(os.fsencode(os.getcwd()), name)
    if as_uri:
        cx = sqlite3.connect("file:" + urllib.parse.quote(path), uri=True)
    else:
        cx = sqlite3.connect(path)
    with contextlib.closing(cx):
        print(os.path.exists(path))
        cx.execute("create table test(id integer)")
        cx.commit()
print(sorted(os.listdir(b'.')))
"#;
    let out = python(&d.0, script);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, vec!["True", "True", r"[b'@test_tmp\xe7w\xf0', b'@test_tmp\xe7w\xf1']"]);
    // Both are pagelog logs holding the table.
    for name in [&b"@test_tmp\xe7w\xf0"[..], b"@test_tmp\xe7w\xf1"] {
        let p = d.path_bytes(name);
        assert_eq!(log_version(&p), 1);
        assert_eq!(tables(&open(&p)), vec!["test"]);
    }
}

// ---- the sqlite3 shell (reads raw bytes from stdin) --------------------------

#[test]
fn the_shell_opens_attaches_and_lists_names_that_are_not_utf8_and_shows_bad_pragma_values_escaped() {
    let d = TempDir::new("names-shell");
    let mut script = format!(".load {}\n", extension_stem()).into_bytes();
    script.extend_from_slice(
        b".open file:caf\xe9.db?vfs=pagelog\n\
          CREATE TABLE t(x); INSERT INTO t VALUES (1);\n\
          ATTACH 'file:caf\xe8.db?vfs=pagelog' AS \"aux\xe8\";\n\
          CREATE TABLE \"aux\xe8\".u(y);\n\
          SELECT count(*) FROM pagelog_log;\n\
          SELECT count(*) FROM pagelog_log('aux\xe8');\n\
          PRAGMA pagelog_spill_limit = '70000\xff';\n\
          PRAGMA pagelog_\xff;\n\
          PRAGMA pagelog_spill_limit;\n",
    );
    let out = run_shell_bytes(&d.0, &script);
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(so.lines().collect::<Vec<_>>(), vec!["2", "1", "33554432"], "stderr: {se}");
    assert!(se.contains(r#"pagelog_spill_limit takes a byte count >= 65536, not "70000\xff""#), "{se}");
    assert!(se.contains(r"unknown pragma pagelog_\xff;"), "{se}");
    assert_eq!(d.names(), vec![E_GRAVE.to_vec(), E_ACUTE.to_vec()]);
    assert_eq!(tables(&open(&d.path_bytes(E_ACUTE))), vec!["t"]);
    assert_eq!(tables(&open(&d.path_bytes(E_GRAVE))), vec!["u"]);
}

/// Temporary files past `memfile::MEM_LIMIT` (64 MiB) spill into an unlinked
/// file in `$TMPDIR`, whose name is bytes too.
#[test]
fn a_large_temporary_table_spills_into_a_tmpdir_whose_name_is_not_utf8() {
    use std::io::Write;
    let d = TempDir::new("names-tmpdir");
    let tmp = d.path_bytes(b"tmp\xe9");
    std::fs::create_dir(&tmp).unwrap();
    let script = format!(
        ".load {}\n.open file:a.db?vfs=pagelog\nPRAGMA temp_store = FILE;\nCREATE TEMP TABLE big(b);\n\
         PRAGMA temp.cache_size = 10;\n\
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 70)\n\
         INSERT INTO big SELECT randomblob(1048576) FROM c;\n\
         SELECT count(*), sum(length(b)) FROM big;\n",
        extension_stem()
    );
    let run = |tmpdir: &Path| {
        let mut child = std::process::Command::new(pagelog_e2e::sqlite3_shell())
            .arg("-batch")
            .current_dir(&d.0)
            .env("TMPDIR", tmpdir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(&tmp);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "70|73400320", "{}", String::from_utf8_lossy(&out.stderr));
    // The spill really goes to $TMPDIR: where there is none, the insert fails.
    let out = run(&d.path("absent"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("disk I/O error"), "{out:?}");
    assert_eq!(d.names(), vec![b"a.db".to_vec(), b"tmp\xe9".to_vec()], "nothing but the (empty) log");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the spill file is unlinked");
}

// ---- one file, many spellings: one log per process ---------------------------

/// The error code of a write through `c`, which must fail.
fn write_error(c: &Connection) -> rusqlite::ffi::ErrorCode {
    match c.execute("INSERT INTO t VALUES ('from a read-only connection')", []) {
        Err(rusqlite::Error::SqliteFailure(e, _)) => e.code,
        other => panic!("a write through a read-only connection gave {other:?}"),
    }
}

/// `a.db` (created when missing) and four other names of it: `./`,
/// `x/../`, a symlink, a hard link.
fn spellings(d: &TempDir) -> Vec<std::path::PathBuf> {
    let p = d.path("a.db");
    if !p.exists() {
        std::fs::File::create(&p).unwrap();
    }
    std::fs::create_dir(d.path("x")).unwrap();
    std::os::unix::fs::symlink(&p, d.path("link.db")).unwrap();
    std::fs::hard_link(&p, d.path("hard.db")).unwrap();
    vec![p, d.0.join(".").join("a.db"), d.0.join("x").join("..").join("a.db"), d.path("link.db"), d.path("hard.db")]
}

/// Pages a full scan of `t` handed out from the log's memory map. xFetch
/// maps only frames this process's `Log` has already checked, so a
/// connection's first scan maps pages only if it shares an earlier
/// connection's `Log`.
fn mapped_scan(c: &Connection) -> u64 {
    c.query_row("PRAGMA mmap_size = 268435456", [], |_| Ok(())).unwrap();
    let before = pagelog::sqlite::mapped_fetches();
    let n: i64 = c.query_row("SELECT sum(length(x)) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 200 * 1000);
    pagelog::sqlite::mapped_fetches() - before
}

#[test]
fn every_spelling_of_one_file_shares_one_in_memory_log() {
    let d = TempDir::new("names-share");
    let setup = open(&d.path("a.db"));
    setup
        .execute_batch(
            "CREATE TABLE t(x); WITH RECURSIVE s(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM s WHERE k < 200) \
             INSERT INTO t SELECT randomblob(1000) FROM s;",
        )
        .unwrap();
    drop(setup);
    let names = spellings(&d);
    let first = open(&names[0]);
    assert_eq!(mapped_scan(&first), 0, "a new Log has checked no frame yet");
    assert!(mapped_scan(&first) > 0, "its second scan reads through the map");
    for p in names.iter().skip(1) {
        let c = open(p);
        assert!(mapped_scan(&c) > 0, "{} shares the Log of {}", p.display(), names[0].display());
    }
    let ro = open_uri(
        &format!("{}?mode=ro", file_uri(&names[3])),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap();
    assert!(mapped_scan(&ro) > 0, "a read-only open after a writable one shares its Log");
}

#[test]
fn every_spelling_of_one_file_sees_each_others_commits_at_once() {
    let d = TempDir::new("names-spellings");
    open(&d.path("a.db")).execute_batch("CREATE TABLE t(x)").unwrap();
    let conns: Vec<Connection> = spellings(&d).iter().map(|p| open(p)).collect();
    for (i, c) in conns.iter().enumerate() {
        c.execute("INSERT INTO t VALUES (?1)", [format!("row {i}")]).unwrap();
        for (j, other) in conns.iter().enumerate() {
            assert_eq!(count(other, "t"), i as i64 + 1, "connection {j} after the commit of {i}");
            assert_eq!(version(other), i as u64 + 2);
        }
    }
    // The same file is behind every name.
    assert_eq!(log_version(&d.path("hard.db")), 6);
    let mut names = d.files();
    names.retain(|n| n != "x");
    assert_eq!(names, vec!["a.db", "hard.db", "link.db"]);
}

#[test]
fn a_read_only_first_open_does_not_keep_later_spellings_from_writing_or_seeing_commits() {
    let d = TempDir::new("names-ro-first");
    let setup = open(&d.path("a.db"));
    setup.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES ('v2');").unwrap();
    drop(setup);
    let names = spellings(&d);
    // First in this process: a read-only open (mode=ro) and a ?version=N open.
    let ro = open_uri(
        &format!("{}?mode=ro", file_uri(&names[3])),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap();
    let pinned = open_version(&names[4], 2);
    assert_eq!(rows_of_t(&ro), vec!["v2"]);
    // Then writers under other names.
    let w1 = open(&names[1]);
    let w2 = open(&names[2]);
    w1.execute("INSERT INTO t VALUES ('v3')", []).unwrap();
    assert_eq!(rows_of_t(&ro), vec!["v2", "v3"], "the read-only connection sees the commit at once");
    assert_eq!(rows_of_t(&w2), vec!["v2", "v3"]);
    w2.execute("INSERT INTO t VALUES ('v4')", []).unwrap();
    assert_eq!(rows_of_t(&w1), vec!["v2", "v3", "v4"]);
    assert_eq!(rows_of_t(&ro), vec!["v2", "v3", "v4"]);
    assert_eq!(version(&ro), 4);
    assert_eq!(rows_of_t(&pinned), vec!["v2"], "version=2 stays at version 2");
    // Read-only stays read-only, however the log is shared.
    assert!(is_readonly(&ro) && is_readonly(&pinned) && !is_readonly(&w1));
    assert_eq!(write_error(&ro), rusqlite::ffi::ErrorCode::ReadOnly);
    assert_eq!(write_error(&pinned), rusqlite::ffi::ErrorCode::ReadOnly);
    assert_eq!(rows_of_t(&w1), vec!["v2", "v3", "v4"]);
}

#[test]
fn read_only_and_version_n_opens_after_a_writer_are_still_read_only() {
    let d = TempDir::new("names-ro-after");
    let names = spellings(&d);
    let w = open(&names[0]);
    w.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES ('v2');").unwrap();
    // Opened after the writer, under other names: they share its log.
    let ro = open_uri(
        &format!("{}?mode=ro", file_uri(&names[3])),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap();
    let pinned = open_version(&names[4], 2);
    let pinned_rw = open_uri(&format!("{}?version=2", file_uri(&names[1])), rw_flags()).unwrap();
    assert!(is_readonly(&ro), "mode=ro");
    assert!(is_readonly(&pinned), "version=N with SQLITE_OPEN_READ_ONLY");
    assert!(is_readonly(&pinned_rw), "version=N is read-only even when opened read-write");
    for c in [&ro, &pinned, &pinned_rw] {
        assert_eq!(write_error(c), rusqlite::ffi::ErrorCode::ReadOnly);
    }
    w.execute("INSERT INTO t VALUES ('v3')", []).unwrap();
    assert_eq!(rows_of_t(&ro), vec!["v2", "v3"]);
    assert_eq!(rows_of_t(&pinned), vec!["v2"]);
    assert_eq!(rows_of_t(&pinned_rw), vec!["v2"]);
}
