//! docs/format-4.md: a reverted-to version must be kept. On a log whose
//! retention policy reclaimed old versions, `pagelog revert --to N` below
//! the oldest kept version Vo is refused naming Vo (not called damage, not
//! "removed by compaction"), and a revert to Vo itself works and reads back
//! exactly what Vo held.

mod common;
mod retained;

use common::*;
use retained::*;

#[test]
fn revert_below_the_oldest_kept_is_refused_and_to_it_works() {
    let d = TempDir::new("reclaimed-revert");
    let db = d.path("app.db");
    make_format4_log(&db, 300, 1500);
    let before = version_hashes(&db);
    let vo = reclaim(&db, "100 versions", 256 << 10);
    let latest = 1501u64;

    for n in [1, vo - 1] {
        let r = pagelog(["revert".as_ref(), db.as_os_str(), "--to".as_ref(), n.to_string().as_ref()]).expect_code(1);
        assert!(r.stderr.contains(&format!("version {n} is no longer kept")), "{}", r.stderr);
        assert!(r.stderr.contains(&format!("keeps versions {vo} to {latest}")), "{}", r.stderr);
        assert!(!r.stderr.contains("compaction") && !r.stderr.contains("damaged"), "{}", r.stderr);
    }
    assert_eq!(versions(&db)[0], latest, "a refused revert wrote nothing");

    let r = pagelog(["revert".as_ref(), db.as_os_str(), "--to".as_ref(), vo.to_string().as_ref()]).ok();
    assert_eq!(r.stdout.trim(), (latest + 1).to_string());
    let out = d.path("out.db");
    let a = export(&db, latest + 1, &out);
    let b = export(&db, vo, &out);
    assert_eq!(hash(&b), before[&vo]);
    // Same rows; page 1's counters differ by design (revert bumps them).
    assert_eq!(a.len(), b.len());
    assert_eq!(&a[100..], &b[100..]);
    pagelog(["verify".as_ref(), db.as_os_str()]).ok();
}
