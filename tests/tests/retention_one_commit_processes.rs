//! The automatic step's trigger under processes that commit once each
//! (format 4, in development; docs/format-4.md, "What remains").
//!
//! A writer's commits take a reclamation step when one is due. The trigger
//! used to count the log's growth since its own process last looked, from
//! zero: every process stepped at its first commit, so a log written by
//! one-commit processes (a shell command, a cron job) took a step per
//! commit, moving the boundary a commit or two each time (simulated: 15.8×
//! write amplification against 7.4×). It now decides from the log's state
//! alone. Checked here through the stock `sqlite3` shell, one process per
//! commit, each a VACUUM to another page size (a checkpoint: the boundary
//! can move past every one of them, as far as the policy lets it): the
//! steps stay within what the log's growth pays for, and the policy is
//! still enforced.

use std::time::Duration;

use pagelog::reclaim::AUTO_MIN_GROWTH;
use pagelog::retention::Policy;
use pagelog::{Log, OpenOptions};
use pagelog_e2e::{extension_stem, run_shell, TempDir};

const T: Duration = Duration::from_secs(5);

/// (epoch, boundary, end of the log, oldest kept, latest) as a fresh open
/// sees them.
fn state(p: &std::path::Path) -> (u64, u64, u64, Option<u64>, u64) {
    let log = Log::open(p, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let r = log.retention_state();
    let b = r.boundary.max(512);
    (r.epoch, r.boundary, log.bytes_in_use() - 512 + b, log.oldest_kept(), log.latest().number)
}

#[test]
fn one_commit_processes_step_as_often_as_their_growth_pays_for_and_still_keep_the_policy() {
    let d = TempDir::new("retain-one-commit");
    let p = d.path("app.db");
    // About 20 kB of rows: each commit (a whole VACUUM) writes that much.
    pagelog_e2e::format4_from_sqlite(
        &p,
        "PRAGMA page_size=1024; CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 20)
         INSERT INTO t SELECT i, randomblob(900) FROM n;",
    );
    Log::open(&p, OpenOptions::default()).unwrap().set_retention(Policy::parse("3 versions").unwrap(), T).unwrap();
    let (epoch0, _, end0, _, latest0) = state(&p);

    let processes = 150;
    for i in 0..processes {
        let ps = [2048, 1024][i % 2];
        let script =
            format!(".load {}\n.open file:app.db?vfs=pagelog\nPRAGMA page_size={ps}; VACUUM;\n", extension_stem());
        let out = run_shell(&d.0, &script);
        assert!(out.status.success() && out.stderr.is_empty(), "sqlite3: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (epoch1, b1, end1, oldest1, latest1) = state(&p);
    assert_eq!(latest1, latest0 + processes as u64, "one version per process");
    // A step is due once it could free AUTO_MIN_GROWTH; after one, what
    // the policy keeps (three versions of about 25 kB) stays: so a step
    // per half of AUTO_MIN_GROWTH grown at the most. Stepping at every
    // process's first commit took one per process.
    let steps = epoch1 - epoch0;
    let grown = end1 - end0;
    let paid = grown / (AUTO_MIN_GROWTH / 2) + 1;
    assert!(
        steps <= paid,
        "{processes} one-commit processes took {steps} steps for {grown} bytes of growth (at most {paid})"
    );
    // The policy is enforced all the same: versions dropped, and no more
    // above the boundary than one trigger's worth past what it keeps.
    let oldest1 = oldest1.expect("versions were reclaimed");
    assert!(steps > 0 && oldest1 > latest0 + 1, "{steps} steps, oldest kept {oldest1} of {latest1}");
    assert!(end1 - b1 < 2 * AUTO_MIN_GROWTH, "{} bytes above the boundary", end1 - b1);
    let c = pagelog_e2e::open_version(&p, latest1 - 2);
    assert_eq!(pagelog_e2e::count(&c, "t"), 20);
}
