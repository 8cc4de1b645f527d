//! File names are bytes: every subcommand opens, writes and renames exactly
//! the name it was given, also when that name is not UTF-8, and shows it in
//! messages with its other bytes as `\xNN`.

mod common;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use common::*;

fn arg(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

#[test]
fn log_info_verify_revert_export_import_and_compact_work_on_a_log_whose_name_is_not_utf8() {
    let d = TempDir::new("cli-names");
    // Two logs whose names differ only in a byte that is not UTF-8.
    let db = d.path_bytes(b"caf\xe9.db");
    let sibling = d.path_bytes(b"caf\xe8.db");
    drop(make_log(&db, 5));
    drop(make_log(&sibling, 2));
    let sibling_bytes = std::fs::read(&sibling).unwrap();

    assert_eq!(versions(&db), vec![5, 4, 3, 2, 1]);
    assert_eq!(versions(&sibling), vec![2, 1]);
    let r = pagelog([arg(b"log"), db.as_os_str()]).ok();
    assert_eq!(r.stdout.lines().count(), 6, "a header and five versions:\n{}", r.stdout);

    let info = pagelog([arg(b"info"), db.as_os_str(), arg(b"--json")]).ok().json();
    assert!(info["file"].as_str().unwrap().ends_with(r"/caf\xe9.db"), "{info}");

    let r = pagelog([arg(b"verify"), db.as_os_str()]).ok();
    assert!(r.stdout.contains("5 ok, 0 invalid"), "{}", r.stdout);

    // revert appends version 6 equal to version 2.
    pagelog([arg(b"revert"), db.as_os_str(), arg(b"--to"), arg(b"2")]).ok();
    assert_eq!(versions(&db)[0], 6);
    assert_eq!(rows(&open(&db), "SELECT id FROM t ORDER BY id"), vec!["2"]);

    // export writes exactly the name given, through a temporary file beside it.
    let out = d.path_bytes(b"out\xff.sqlite");
    pagelog([arg(b"export"), db.as_os_str(), out.as_os_str(), arg(b"--version"), arg(b"4")]).ok();
    assert_eq!(sqlite3(&out, "SELECT group_concat(id) FROM t").trim(), "2,3,4");

    // import makes a new log under exactly the name given.
    let imported = d.path_bytes(b"imp\xfe.db");
    pagelog([arg(b"import"), out.as_os_str(), imported.as_os_str()]).ok();
    assert_eq!(versions(&imported), vec![1]);
    assert_eq!(rows(&open(&imported), "SELECT count(*) FROM t"), vec!["3"]);

    // compact writes DB.compact-tmp and renames it over exactly DB.
    let r = pagelog([arg(b"compact"), db.as_os_str(), arg(b"--keep-last"), arg(b"1")]).ok();
    assert!(r.stdout.contains(r"caf\xe9.db: kept versions 6 to 6"), "{}", r.stdout);
    assert_eq!(versions(&db), vec![6]);
    assert_eq!(rows(&open(&db), "SELECT id FROM t ORDER BY id"), vec!["2"]);

    // Nothing else was created (no temporary file left, no name with U+FFFD),
    // and the sibling is untouched.
    assert_eq!(
        d.names(),
        vec![b"caf\xe8.db".to_vec(), b"caf\xe9.db".to_vec(), b"imp\xfe.db".to_vec(), b"out\xff.sqlite".to_vec()]
    );
    assert_eq!(std::fs::read(&sibling).unwrap(), sibling_bytes);
    assert_eq!(versions(&sibling), vec![2, 1]);
}

#[test]
fn a_missing_log_whose_name_is_not_utf8_is_named_with_its_bytes_escaped() {
    let d = TempDir::new("cli-names-missing");
    let db = d.path_bytes(b"missing\xe7.db");
    let r = pagelog([arg(b"log"), db.as_os_str()]).expect_code(1);
    assert!(r.stderr.contains(r"open log ") && r.stderr.contains(r"/missing\xe7.db: "), "{}", r.stderr);
    assert!(d.names().is_empty(), "log never creates a file");
}
