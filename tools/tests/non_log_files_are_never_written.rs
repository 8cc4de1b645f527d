//! Every subcommand, pointed at a file that is not a pagelog log, fails and
//! leaves it byte for byte unchanged (and creates nothing beside it).

mod common;
use common::*;

fn non_logs(d: &TempDir) -> Vec<std::path::PathBuf> {
    let plain = d.path("plain.sqlite");
    let c = rusqlite::Connection::open(&plain).unwrap();
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES(1);").unwrap();
    drop(c);
    let junk = d.path("junk.bin");
    std::fs::write(&junk, (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>()).unwrap();
    let short = d.path("short.txt");
    std::fs::write(&short, b"hello").unwrap();
    vec![plain, junk, short]
}

#[test]
fn no_subcommand_writes_a_file_that_is_not_a_log() {
    let d = TempDir::new("non-log");
    for f in non_logs(&d) {
        let before = std::fs::read(&f).unwrap();
        let files = d.files();
        let out = d.path("out.sqlite");
        let other = d.path("new.db");
        let runs: Vec<Vec<std::ffi::OsString>> = vec![
            vec!["log".into(), f.clone().into()],
            vec!["log".into(), f.clone().into(), "--json".into()],
            vec!["info".into(), f.clone().into()],
            vec!["revert".into(), f.clone().into(), "--to".into(), "1".into()],
            vec!["export".into(), f.clone().into(), out.clone().into()],
            vec!["verify".into(), f.clone().into()],
            vec!["compact".into(), f.clone().into(), "--keep-last".into(), "1".into()],
            vec!["retain".into(), f.clone().into()],
            vec!["retain".into(), f.clone().into(), "10 versions".into(), "--now".into()],
            vec!["upgrade".into(), f.clone().into(), "--format".into(), "4".into()],
            // import: f as the target that exists, and (not SQLite) as the source.
            vec!["import".into(), d.path("plain.sqlite").into(), f.clone().into()],
        ];
        for args in runs {
            let r = pagelog(&args);
            assert_eq!(r.code, 1, "{args:?} must fail\n{}{}", r.stdout, r.stderr);
            assert!(r.stderr.starts_with("pagelog: ") || args[0] == "verify", "{args:?}: {}", r.stderr);
            assert_eq!(std::fs::read(&f).unwrap(), before, "{args:?} changed {}", f.display());
            assert_eq!(d.files(), files, "{args:?} created a file");
        }
        if !f.ends_with("plain.sqlite") {
            let r = pagelog([std::ffi::OsStr::new("import"), f.as_os_str(), other.as_os_str()]);
            assert_eq!(r.code, 1, "{}", r.stderr);
            assert_eq!(std::fs::read(&f).unwrap(), before);
            assert_eq!(d.files(), files);
        }
    }
}

#[test]
fn a_plain_sqlite_file_is_named_as_such() {
    let d = TempDir::new("non-log-msg");
    let plain = &non_logs(&d)[0];
    let r = pagelog([std::ffi::OsStr::new("log"), plain.as_os_str()]).expect_code(1);
    assert!(r.stderr.contains("plain SQLite database"), "{}", r.stderr);
    assert!(r.stderr.contains("pagelog import"), "{}", r.stderr);
    assert!(r.stderr.starts_with(&format!("pagelog: open log {}: ", plain.display())), "{}", r.stderr);
}
