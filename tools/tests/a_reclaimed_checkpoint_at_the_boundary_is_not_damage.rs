//! D19 (tests/spec_reader/README.md): a step puts `B` at the COMMIT record
//! before the oldest kept version's checkpoint, and when that commit is a
//! checkpoint itself (here version 1's, the first commit of the log), its
//! transaction's INDEX and CONTROL records lie below `B`, freed with its
//! version. The reading tools' forward read from `B` used to call that
//! reclaimed checkpoint damaged ("expected the INDEX record of this
//! checkpoint's transaction at 512"), while `verify` called the log clean.
//! The log is the second reader's case file, written by pagelog's own
//! writer (a load, a policy of 20 versions, 30 one-page commits, one step).

mod common;

use common::*;

#[test]
fn the_tools_read_a_log_whose_boundary_is_a_reclaimed_checkpoint_without_calling_it_damage() {
    let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/spec_reader/cases/f4-boundary-at-the-first-checkpoint-its-index-and-control-below.log");
    let d = TempDir::new("d19");
    let db = d.path("app.db");
    std::fs::copy(&case, &db).unwrap();
    let r = pagelog(["verify".as_ref(), db.as_os_str()]).expect_code(0);
    assert!(r.stdout.contains("0 invalid"), "{}", r.stdout);
    let r = pagelog(["info".as_ref(), db.as_os_str()]).expect_code(0);
    assert!(!r.stdout.contains("damage") && !r.stderr.contains("damage"), "{}\n{}", r.stdout, r.stderr);
    let r = pagelog(["log".as_ref(), db.as_os_str(), "--json".as_ref()]).expect_code(0);
    assert!(!r.stderr.contains("damaged"), "{}", r.stderr);
    let listed: Vec<u64> = r.json().as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(listed.iter().min(), Some(&6), "{listed:?}");
    assert_eq!(listed.iter().max(), Some(&31), "{listed:?}");
}
