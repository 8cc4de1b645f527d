//! `--suite scale`, part `retain` (issue 20, item 4): history within a
//! budget at steady state, a format-4 log with a retention policy against
//! the same log without one.
//!
//! Two format-4 logs of the suite's rows (`--scale-size`: 1,000,000 rows of
//! 1000-byte blobs per GiB, 4 KiB pages), bulk-loaded in one transaction as
//! open_cost.rs's state (a): `retain-none.db` is created with
//! `Log::open(.., OpenOptions { create: true, format4: true, .. })` (format
//! 4 is not reachable otherwise yet), filled through SQLite, and copied to
//! `retain-policy.db`, which then gets `PRAGMA pagelog_retain='POLICY'`
//! (`--retain`, default `1000 versions`); first a size budget below the
//! database is tried there, which must be refused. Then growth.rs's loop on
//! both: a long-lived writer (this process, one connection each,
//! synchronous=NORMAL, as the growth part) makes `--growth-commits`
//! single-row UPDATEs (the same rows on both: one seed), in chunks of
//! `--growth-sample` commits alternating between the two logs (the order
//! flipping each chunk), a reader process running point SELECTs during each
//! chunk; after each chunk `st_blocks × 512` (what `du` reports) and, from a
//! read-only `Log::open`, the latest version, its size and the oldest kept
//! version. The writer's SQLite commit runs the reclamation steps itself
//! (`reclaim_if_due`), so the policy's cost is in its commit latency.
//!
//! Steady-state ratio, per sample: blocks ÷ (the latest version's size + K ×
//! the bytes one version adds to the log without a policy), K the versions
//! the policy keeps (its `N versions`, at most the versions made so far; for
//! other forms the versions the log holds). The bytes per version come from
//! the run without a policy at the same sample (log end growth ÷ commits),
//! full page maps included: what keeping K versions costs in this format.
//!
//! Targets (issue 20): ratio ≤ 1.25 at every sample; commits/s ≥ 0.8 × and
//! the reader's SELECTs/s ≥ 0.9 × the run without a policy (per-chunk
//! ratios, median); a budget below the live database refused.

use std::path::Path;
use std::time::Duration;

use pagelog::retention::Policy;
use pagelog::{Durability, Log, OpenOptions};
use speedtest::measure::{load_average, remove_db_files, sync_filesystems};

use crate::growth::{chunk_ratios, per_commit, ratio_note, Series};
use crate::open_cost::rows_for;
use crate::scale::{fill, human_bytes, median, Built, Cell, Row, ScaleOpts, ScaleReport, Target, PAGELOG};

/// The policy when `--retain` is not given: issue 20's.
pub const DEFAULT_POLICY: &str = "1000 versions";

/// The issue's run: 1 GiB, 500,000 commits.
const ISSUE_SIZE: u64 = 1 << 30;
const ISSUE_COMMITS: u64 = 500_000;

/// What a read-only open of a log says after a chunk.
#[derive(Clone, Copy, Debug)]
struct Probe {
    latest: u64,
    /// The latest version's size (pages × page size).
    live: u64,
    /// The log's end (bytes appended so far, holes included).
    end: u64,
    /// The oldest version the log still holds (None: nothing reclaimed).
    oldest: Option<u64>,
}

fn probe(path: &Path) -> Result<Probe, String> {
    let log = Log::open(path, OpenOptions { read_only: true, ..Default::default() })
        .map_err(|e| format!("open {} read-only: {e}", path.display()))?;
    let v = log.latest();
    Ok(Probe { latest: v.number, live: v.size_bytes(), end: v.end, oldest: log.oldest_kept() })
}

/// A series and its probes (one per curve point).
struct Run {
    s: Series,
    probes: Vec<Probe>,
}

/// A new format-4 log at `path` holding `rows` rows, in one transaction.
/// A log takes its format at its first commit, so the log API makes that
/// one: an empty database of stock SQLite (page 1 only, 4 KiB pages).
pub(crate) fn build_format4(opts: &ScaleOpts, path: &Path, rows: i64) -> Result<Built, String> {
    remove_db_files(path)?;
    let plain = path.with_extension("plain");
    let _ = std::fs::remove_file(&plain);
    let c = rusqlite::Connection::open(&plain).map_err(|e| format!("{}: {e}", plain.display()))?;
    c.execute_batch("PRAGMA page_size=4096; PRAGMA user_version=1;")
        .map_err(|e| format!("{}: {e}", plain.display()))?;
    drop(c);
    let page1 = std::fs::read(&plain).map_err(|e| format!("read {}: {e}", plain.display()))?;
    let _ = std::fs::remove_file(&plain);
    let err = |e: pagelog::Error| format!("create {} in format 4: {e}", path.display());
    let log = Log::open(path, OpenOptions { create: true, format4: true, ..Default::default() }).map_err(err)?;
    {
        let _w = log.lock_writer(Duration::from_secs(10)).map_err(err)?;
        let base = log.prepare_write().map_err(err)?;
        let mut txn = log.begin(base, 1 << 20);
        txn.write(&log, 0, &page1).map_err(err)?;
        log.commit(txn, Durability::Full).map_err(err)?;
    }
    drop(log);
    fill(PAGELOG, path, opts.size, Some(rows), rows)
}

/// Tries a size budget below the live database: `Ok(message)` when refused
/// (as it must be), `Err(..)` when accepted (the policy is then put back to
/// `all`).
fn budget_refusal(s: &Series, live: u64) -> Result<String, String> {
    let mib = ((live / 2) >> 20).max(1);
    let sql = format!("PRAGMA pagelog_retain='{mib} MiB'");
    match s.conn.execute_batch(&sql) {
        Err(e) => Ok(format!("`{sql}` on a {} database: {e}", human_bytes(live))),
        Ok(()) => {
            let _ = s.conn.execute_batch("PRAGMA pagelog_retain='all'");
            Err(format!("`{sql}` on a {} database was ACCEPTED", human_bytes(live)))
        }
    }
}

/// Runs the part: builds the pair, sets the policy, runs the loop, reports.
pub fn run(opts: &ScaleOpts, exe: &Path, progress: &dyn Fn(String), report: &mut ScaleReport) -> Result<(), String> {
    let policy_text = opts.retain.clone().unwrap_or_else(|| DEFAULT_POLICY.into());
    let policy = Policy::parse(&policy_text).map_err(|e| format!("--retain {policy_text:?}: {e}"))?;
    let rows = rows_for(opts.size);
    let (none_path, pol_path) = (opts.dir.join("retain-none.db"), opts.dir.join("retain-policy.db"));
    progress(format!("retain: {rows} rows in one transaction into a format-4 log ({})", none_path.display()));
    let b = build_format4(opts, &none_path, rows)?;
    remove_db_files(&pol_path)?;
    std::fs::copy(&none_path, &pol_path)
        .map_err(|e| format!("copy {} to {}: {e}", none_path.display(), pol_path.display()))?;
    report.rows.push(Row {
        key: "retain_build",
        label: format!("retain: {rows} rows in one transaction into a format-4 log ({})", human_bytes(b.db_bytes)),
        pagelog: Some(Cell::Secs(vec![b.secs])),
        stock: None,
        note: "synchronous=NORMAL; then copied, and the copy given the policy".into(),
    });
    if report.rows_in_table == 0 {
        (report.rows_in_table, report.page_size) = (rows, b.page_size);
    }

    // The same seed on both: the same rows are updated in the same order.
    let none = Series::new("format 4, no policy".into(), PAGELOG, none_path.clone(), 41)?;
    let pol = Series::new(format!("format 4, retain={policy_text}"), PAGELOG, pol_path.clone(), 41)?;
    let refusal = budget_refusal(&pol, probe(&pol_path)?.live);
    let sql = format!("PRAGMA pagelog_retain='{}'", policy_text.replace('\'', "''"));
    pol.conn.execute_batch(&sql).map_err(|e| format!("{}: `{sql}`: {e}", pol.name))?;
    let mut runs = [Run { probes: vec![probe(&none_path)?], s: none }, Run { probes: vec![probe(&pol_path)?], s: pol }];

    sync_filesystems()?;
    let (k, s) = (opts.growth_commits, opts.growth_sample.max(1));
    let chunks = k.div_ceil(s);
    for c in 0..chunks {
        let n = s.min(k - c * s);
        if c % 10 == 0 {
            let p = runs[1].probes.last().expect("a probe");
            progress(format!(
                "retain: chunk {}/{chunks} ({n} commits each); with the policy: {} on disk, oldest kept {:?} of {}; \
                 load average {}",
                c + 1,
                human_bytes(runs[1].s.curve.last().map_or(0, |x| x.1)),
                p.oldest,
                p.latest,
                load_average()
            ));
        }
        for j in 0..2 {
            let r = &mut runs[(j + c as usize) % 2];
            r.s.chunk(exe, rows, n, c + 1)?;
            r.probes.push(probe(&r.s.path)?);
        }
    }
    push_rows(opts, report, &policy_text, &policy, &runs, refusal);
    for r in runs {
        let path = r.s.path.clone();
        drop(r);
        remove_db_files(&path)?;
    }
    Ok(())
}

/// Per sample: (commits, blocks, needed), needed = live + K × bytes per
/// version of the run without a policy.
fn steady_state(policy: &Policy, none: &Run, pol: &Run) -> Vec<(u64, u64, f64)> {
    let first = pol.probes[0].latest;
    let (c0, e0) = (none.probes[0].latest, none.probes[0].end);
    let mut out = Vec::new();
    for (i, (&(commits, blocks), p)) in pol.s.curve.iter().zip(&pol.probes).enumerate() {
        let n = &none.probes[i.min(none.probes.len() - 1)];
        let per_version = if n.latest > c0 { (n.end - e0) as f64 / (n.latest - c0) as f64 } else { 0.0 };
        let made = p.latest - first + 1; // versions since the policy was set, the first included
        let kept = match policy.versions {
            Some(v) => v.min(made),
            None => p.latest - p.oldest.unwrap_or(1) + 1,
        };
        out.push((commits, blocks, p.live as f64 + kept as f64 * per_version));
    }
    out
}

fn push_rows(
    opts: &ScaleOpts,
    report: &mut ScaleReport,
    policy_text: &str,
    policy: &Policy,
    runs: &[Run; 2],
    refusal: Result<String, String>,
) {
    let (k, s) = (opts.growth_commits, opts.growth_sample);
    let (none, pol) = (&runs[0], &runs[1]);
    let (cr, rr) = chunk_ratios(&pol.s, &none.s);
    let ss = steady_state(policy, none, pol);
    let ratios: Vec<f64> = ss.iter().map(|&(_, b, n)| b as f64 / n).collect();
    let worst = ss.iter().zip(&ratios).max_by(|a, b| a.1.total_cmp(b.1)).map(|(x, r)| (x.0, *r));
    let none_ratio = {
        let z = none.s.curve.last().copied().unwrap_or_default();
        let p = none.probes.last().expect("a probe");
        z.1 as f64 / p.live.max(1) as f64
    };
    let last = pol.probes.last().copied().expect("a probe");
    // Bytes appended to the log per commit: with a policy they include the
    // relocated copies and the base tree's nodes (the cleaning's writes).
    let appended = |r: &Run| {
        let (a, z) = (r.probes[0], r.probes.last().copied().expect("a probe"));
        (z.end - a.end) as f64 / (z.latest - a.latest).max(1) as f64
    };
    let (app_pol, app_none) = (appended(pol), appended(none));
    let rows = &mut report.rows;
    for (key, r) in [("retain_blocks_policy", pol), ("retain_blocks_none", none)] {
        rows.push(Row {
            key,
            label: format!(
                "retain: disk blocks in use (st_blocks × 512), {}, {k} single-row UPDATEs sampled every {s}",
                r.s.name
            ),
            pagelog: Some(Cell::Curve(r.s.curve.clone())),
            stock: None,
            note: format!("{:.0} bytes per commit, start to final", per_commit(&r.s)),
        });
    }
    rows.push(Row {
        key: "retain_log_end",
        label: format!("retain: log end (bytes appended, holes included), with retain={policy_text}"),
        pagelog: Some(Cell::Curve(pol.s.curve.iter().zip(&pol.probes).map(|(c, p)| (c.0, p.end)).collect())),
        stock: None,
        note: format!(
            "{app_pol:.0} bytes appended per commit, no policy {app_none:.0}: write amplification {:.2}×; \
             latest version {}, oldest kept {}",
            app_pol / app_none.max(1.0),
            last.latest,
            last.oldest.map_or("none reclaimed yet".into(), |o| o.to_string())
        ),
    });
    rows.push(Row {
        key: "retain_ratio",
        label: format!("retain: blocks ÷ (live database + the kept versions' bytes), retain={policy_text}, per sample"),
        pagelog: Some(Cell::Ratios(ratios.clone())),
        stock: None,
        note: format!(
            "max at {} commits; without a policy the blocks end at {none_ratio:.2}× the live database",
            worst.map_or(0, |w| w.0)
        ),
    });
    rows.push(Row {
        key: "retain_commits_policy",
        label: format!(
            "retain: the long-lived writer's commits (synchronous=NORMAL; its reclamation steps included), \
             retain={policy_text}"
        ),
        pagelog: Some(Cell::Rate { ops: pol.s.lat.n, secs: pol.s.commit_secs }),
        stock: None,
        note: ratio_note("÷ no policy", &cr),
    });
    rows.push(Row {
        key: "retain_commits_none",
        label: "retain: the long-lived writer's commits, format 4, no policy".into(),
        pagelog: Some(Cell::Rate { ops: none.s.lat.n, secs: none.s.commit_secs }),
        stock: None,
        note: String::new(),
    });
    for (key, r) in [("retain_latency_policy", pol), ("retain_latency_none", none)] {
        rows.push(Row {
            key,
            label: format!("retain: commit latency, {}", r.s.name),
            pagelog: Some(Cell::Latency(r.s.lat.clone())),
            stock: None,
            note: String::new(),
        });
    }
    rows.push(Row {
        key: "retain_reads_policy",
        label: format!("retain: a reader process's point SELECTs during the commits, retain={policy_text}"),
        pagelog: Some(Cell::Rate { ops: pol.s.reads, secs: pol.s.read_secs }),
        stock: None,
        note: ratio_note("÷ no policy", &rr),
    });
    rows.push(Row {
        key: "retain_reads_none",
        label: "retain: a reader process's point SELECTs, format 4, no policy".into(),
        pagelog: Some(Cell::Rate { ops: none.s.reads, secs: none.s.read_secs }),
        stock: None,
        note: String::new(),
    });
    rows.push(Row {
        key: "retain_budget_refused",
        label: "retain: a size budget below the live database".into(),
        pagelog: Some(Cell::Missing(match &refusal {
            Ok(m) => format!("refused: {m}"),
            Err(m) => m.clone(),
        })),
        stock: None,
        note: String::new(),
    });

    let full = opts.size >= ISSUE_SIZE && k >= ISSUE_COMMITS;
    if !full {
        report.todo.push(format!(
            "retain: issue 20's steady state is 1 GiB and ≥ {ISSUE_COMMITS} commits; this run had {} and {k}",
            human_bytes(opts.size)
        ));
    }
    let (cm, rm) = (median(&cr), median(&rr));
    // The targets are on the whole run: a median over chunks hides the
    // chunks a policy makes slow (a run of steps), which a user waits for.
    let rate = |ops: u64, secs: f64| (secs > 0.0).then(|| ops as f64 / secs);
    let whole = |a: Option<f64>, b: Option<f64>| a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b);
    let c = whole(rate(pol.s.lat.n, pol.s.commit_secs), rate(none.s.lat.n, none.s.commit_secs));
    let rd = whole(rate(pol.s.reads, pol.s.read_secs), rate(none.s.reads, none.s.read_secs));
    let shown = |x: Option<f64>, m: Option<f64>| match (x, m) {
        (Some(x), Some(m)) => format!("{x:.2}× over the whole run (per-chunk median {m:.2}×)"),
        (Some(x), None) => format!("{x:.2}× over the whole run"),
        _ => "n/a".into(),
    };
    let targets = &mut report.targets;
    targets.push(Target {
        name: "steady state within the policy's bytes (issue 20)",
        goal: "disk blocks ≤ 1.25 × (live + kept versions' bytes) at every sample".into(),
        measured: worst.map_or("n/a".into(), |(at, r)| format!("max {r:.2}× (at {at} commits)")),
        met: worst.filter(|_| full).map(|(_, r)| r <= 1.25),
    });
    targets.push(Target {
        name: "commits while reclaiming (issue 20)",
        goal: "commits/s ≥ 0.8 × without a policy".into(),
        measured: shown(c, cm),
        met: c.map(|c| c >= 0.8),
    });
    targets.push(Target {
        name: "reads while reclaiming (issue 20)",
        goal: "a reader's point SELECTs/s ≥ 0.9 × without a policy".into(),
        measured: shown(rd, rm),
        met: rd.map(|r| r >= 0.9),
    });
    targets.push(Target {
        name: "a budget below the live database (issue 20)",
        goal: "refused with a clear message".into(),
        measured: if refusal.is_ok() { "refused".into() } else { "accepted".into() },
        met: Some(refusal.is_ok()),
    });
}
