//! `speedtest --suite concurrency` (issue 23, item 4): readers and writers
//! as separate processes on one small database, pagelog against stock
//! SQLite (WAL) at the same `synchronous` level, in interleaved rounds.
//!
//! The database: `t(id INTEGER PRIMARY KEY, v BLOB)`, 10,000 rows of
//! 100-byte blobs, built once per VFS as a template and copied fresh before
//! every trial (so no trial inherits another's history). A trial runs W
//! writer and R reader processes (worker.rs: this binary again; writers do
//! `UPDATE t SET v = randomblob(100) WHERE id = ?`, readers `SELECT
//! length(v) FROM t WHERE id = ?`, random ids, each statement its own
//! transaction, `busy_timeout` 10 s), starts them together once all are
//! open, and stops them after `--round-secs`. Workloads: 1 writer + 2 and
//! + 8 readers at FULL and at NORMAL; 4 and 16 writers at FULL.
//!
//! Also 8 writers at FULL with `busy_timeout` 5 s (issue 23 item 3, fair
//! waiting: its BUSY failures, longest wait, and the slowest writer's share).
//!
//! Each of `--runs` rounds runs every workload on both sides, the order
//! flipping from one to the next, so load from elsewhere falls on both
//! alike. Reported per workload and metric: the median over rounds on each
//! side, and the per-round ratio pagelog ÷ stock, median (min–max).
//! Rates are summed over processes (each process's ops ÷ its own time);
//! latencies come from the merged histograms of one trial.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use speedtest::config::Config;
use speedtest::latency::Histogram;
use speedtest::measure::{cpu_model, db_files, filesystem_of, load_average, remove_db_files, sync_filesystems};
use speedtest::report::{iso8601_utc, markdown_table, stats};
use speedtest::runner;
use speedtest::worker::{Outcome, Role, Spec, Worker};

pub const ROWS: i64 = 10_000;
const BYTES: u32 = 100;
const BUSY_MS: u32 = 10_000;

pub struct ConcOpts {
    pub dir: PathBuf,
    pub rounds: u32,
    pub round_secs: f64,
    /// Workload name prefixes to run (`--workloads`); empty: all.
    pub only: Vec<String>,
    pub exe: PathBuf,
}

struct Workload {
    key: &'static str,
    writers: usize,
    readers: usize,
    full: bool,
    busy_ms: u32,
}

const WORKLOADS: [Workload; 7] = [
    Workload { key: "1w+2r FULL", writers: 1, readers: 2, full: true, busy_ms: BUSY_MS },
    Workload { key: "1w+2r NORMAL", writers: 1, readers: 2, full: false, busy_ms: BUSY_MS },
    Workload { key: "1w+8r FULL", writers: 1, readers: 8, full: true, busy_ms: BUSY_MS },
    Workload { key: "1w+8r NORMAL", writers: 1, readers: 8, full: false, busy_ms: BUSY_MS },
    Workload { key: "4w FULL", writers: 4, readers: 0, full: true, busy_ms: BUSY_MS },
    Workload { key: "16w FULL", writers: 16, readers: 0, full: true, busy_ms: BUSY_MS },
    Workload { key: "8w FULL busy 5s", writers: 8, readers: 0, full: true, busy_ms: 5_000 },
];

/// What one trial measured, summed over its processes.
#[derive(Default)]
struct Trial {
    readers: usize,
    writes: f64,
    reads: f64,
    busy: u64,
    /// Commits and the syncs made for them (pagelog counts its own).
    commits: u64,
    syncs: u64,
    /// Each writer's commits/s (a starved writer shows as a small share).
    writer_rates: Vec<f64>,
    wlat: Histogram,
    rlat: Histogram,
}

/// Metric names and how to read them from a trial; `None`: not applicable.
type Metric = (&'static str, fn(&Trial) -> Option<f64>);
const METRICS: [Metric; 9] = [
    ("writes/s (commits/s)", |t| Some(t.writes)),
    ("reads/s", |t| (t.readers > 0).then_some(t.reads)),
    ("write p50 ms", |t| t.wlat.quantile(0.5).map(|s| s * 1e3)),
    ("write p99 ms", |t| t.wlat.quantile(0.99).map(|s| s * 1e3)),
    ("longest write wait ms", |t| (t.wlat.n > 0).then_some(t.wlat.max * 1e3)),
    ("read p99 ms", |t| t.rlat.quantile(0.99).map(|s| s * 1e3)),
    ("SQLITE_BUSY failures", |t| Some(t.busy as f64)),
    ("syncs per commit (pagelog only)", |t| (t.syncs > 0 && t.commits > 0).then(|| t.syncs as f64 / t.commits as f64)),
    ("slowest writer ÷ mean writer", |t| {
        let n = t.writer_rates.len() as f64;
        let mean = t.writer_rates.iter().sum::<f64>() / n;
        (n > 1.0 && mean > 0.0).then(|| t.writer_rates.iter().copied().fold(f64::INFINITY, f64::min) / mean)
    }),
];

fn configs(full: bool) -> [Config; 2] {
    if full {
        [Config::PagelogFull, Config::WalFull]
    } else {
        [Config::PagelogNormal, Config::WalNormal]
    }
}

fn template(dir: &Path, cfg: Config) -> Result<PathBuf, String> {
    let path = dir.join(format!("conc-template-{}.db", if cfg.is_pagelog() { "pagelog" } else { "wal" }));
    remove_db_files(&path)?;
    let conn = runner::open(cfg, &path)?;
    runner::setup(&conn, cfg)?;
    let sql = format!(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL \
         SELECT i + 1 FROM n WHERE i < {ROWS}) INSERT INTO t SELECT i, randomblob({BYTES}) FROM n;"
    );
    conn.execute_batch(&sql).map_err(|e| format!("{cfg}: build: {e}"))?;
    conn.close().map_err(|(_, e)| format!("{cfg}: close: {e}"))?;
    Ok(path)
}

/// Copies the template (and any sidecar) to a fresh trial file.
fn fresh_copy(template: &Path, to: &Path) -> Result<(), String> {
    remove_db_files(to)?;
    let to_name = to.to_str().ok_or("non-UTF-8 path")?;
    for (suffix, p) in db_files(template)? {
        let dest = PathBuf::from(format!("{to_name}{suffix}"));
        std::fs::copy(&p, &dest).map_err(|e| format!("copy {} to {}: {e}", p.display(), dest.display()))?;
    }
    Ok(())
}

fn trial(opts: &ConcOpts, w: &Workload, cfg: Config, template: &Path, seed: u64) -> Result<Trial, String> {
    let db = opts.dir.join(format!("conc-{}.db", cfg.name()));
    fresh_copy(template, &db)?;
    sync_filesystems()?;
    let mut workers = Vec::new();
    for i in 0..w.writers + w.readers {
        let role = if i < w.writers { Role::Writer } else { Role::Reader };
        let spec = Spec {
            role,
            config: cfg,
            rows: ROWS,
            bytes: BYTES,
            seed: seed * 100 + i as u64,
            busy_ms: w.busy_ms,
            db: db.clone(),
        };
        workers.push((role, Worker::start(&opts.exe, &spec)?));
    }
    for (_, wk) in &mut workers {
        wk.go()?;
    }
    std::thread::sleep(Duration::from_secs_f64(opts.round_secs));
    for (_, wk) in &mut workers {
        wk.signal_stop()?;
    }
    let mut t = Trial { readers: w.readers, ..Default::default() };
    for (role, wk) in workers {
        let o: Outcome = wk.finish()?;
        t.busy += o.busy;
        t.syncs += o.syncs;
        match role {
            Role::Writer => {
                t.commits += o.ops;
                t.writes += o.rate();
                t.writer_rates.push(o.rate());
                t.wlat.merge(&o.lat);
            }
            Role::Reader => {
                t.reads += o.rate();
                t.rlat.merge(&o.lat);
            }
        }
    }
    remove_db_files(&db)?;
    Ok(t)
}

/// `[workload][round] -> (pagelog, stock)`.
type Results = Vec<Vec<(Trial, Trial)>>;

pub fn run(opts: &ConcOpts, progress: &dyn Fn(String)) -> Result<(String, Value), String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let load_start = load_average();
    let templates = [template(&opts.dir, Config::PagelogFull)?, template(&opts.dir, Config::WalFull)?];
    let mut results: Results = WORKLOADS.iter().map(|_| Vec::new()).collect();
    for round in 0..opts.rounds {
        progress(format!("concurrency: round {}/{}", round + 1, opts.rounds));
        for (wi, w) in WORKLOADS.iter().enumerate() {
            if !opts.only.is_empty() && !opts.only.iter().any(|o| w.key.starts_with(o.as_str())) {
                continue;
            }
            let cfgs = configs(w.full);
            let seed = round as u64 * 10 + wi as u64;
            let pl_first = (round as usize + wi) % 2 == 0;
            let t0 = Instant::now();
            let (pl, st) = if pl_first {
                let pl = trial(opts, w, cfgs[0], &templates[0], seed)?;
                (pl, trial(opts, w, cfgs[1], &templates[1], seed)?)
            } else {
                let st = trial(opts, w, cfgs[1], &templates[1], seed)?;
                (trial(opts, w, cfgs[0], &templates[0], seed)?, st)
            };
            progress(format!(
                "concurrency: {} {:.0} vs {:.0} writes/s, {:.0} vs {:.0} reads/s ({:.1} s)",
                w.key,
                pl.writes,
                st.writes,
                pl.reads,
                st.reads,
                t0.elapsed().as_secs_f64()
            ));
            results[wi].push((pl, st));
        }
    }
    for t in &templates {
        remove_db_files(t)?;
    }
    let header = format!(
        "speedtest --suite concurrency — readers and writers as separate processes (issue 23)\n\n\
         SQLite:      {} (rusqlite bundled, in each worker process)\n\
         Date:        {}\n\
         CPU:         {}\n\
         Machine:     {} cores; load average {load_start} at the start, {} at the end (1, 5, 15 min)\n\
         Directory:   {}{}\n\
         Workload:    {ROWS} rows of {BYTES}-byte blobs; writers UPDATE one row, readers SELECT one row, \
         random ids, autocommit, busy_timeout {BUSY_MS} ms (5,000 ms for 8w); {} rounds of {} s per workload and side\n",
        rusqlite::version(),
        iso8601_utc(now),
        cpu_model().unwrap_or_default(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        opts.dir.display(),
        filesystem_of(&opts.dir).map(|f| format!(" ({} on {})", f.fstype, f.device)).unwrap_or_default(),
        opts.rounds,
        opts.round_secs,
    );
    Ok(render(&header, &results, opts))
}

/// About three significant digits.
fn sig(x: f64) -> String {
    match x.abs() {
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 10.0 => format!("{x:.1}"),
        a if a >= 1.0 || a == 0.0 => format!("{x:.2}"),
        _ => format!("{x:.3}"),
    }
}

fn fmt_stats(xs: &[f64], suffix: &str) -> String {
    match stats(xs) {
        Some(s) if s.n > 1 => format!("{}{suffix} ({}–{})", sig(s.median), sig(s.min), sig(s.max)),
        Some(s) => format!("{}{suffix}", sig(s.median)),
        None => "n/a".into(),
    }
}

fn render(header: &str, results: &Results, opts: &ConcOpts) -> (String, Value) {
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    for (w, rounds) in WORKLOADS.iter().zip(results) {
        for (name, get) in METRICS {
            let pl: Vec<f64> = rounds.iter().filter_map(|(p, _)| get(p)).collect();
            let st: Vec<f64> = rounds.iter().filter_map(|(_, s)| get(s)).collect();
            if pl.is_empty() && st.is_empty() {
                continue;
            }
            let ratios: Vec<f64> = rounds
                .iter()
                .filter_map(|(p, s)| match (get(p), get(s)) {
                    (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                    _ => None,
                })
                .collect();
            rows.push(vec![
                w.key.to_string(),
                name.to_string(),
                fmt_stats(&pl, ""),
                fmt_stats(&st, ""),
                fmt_stats(&ratios, "×"),
            ]);
            json_rows.push(json!({
                "workload": w.key, "writers": w.writers, "readers": w.readers,
                "synchronous": if w.full { "FULL" } else { "NORMAL" },
                "metric": name, "pagelog": pl, "stock": st, "ratios": ratios,
            }));
        }
    }
    let head: Vec<String> = ["Workload", "Metric", "pagelog", "stock WAL", "pagelog ÷ stock, per round"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut out = header.to_string();
    let _ = writeln!(
        out,
        "\nMedian over rounds (min–max); ratios are per round, then their median (min–max). Latency \
         quantiles are histogram buckets (±9%); the longest wait is exact.\n"
    );
    out.push_str(&markdown_table(&head, &rows));
    let json = json!({
        "tool": "speedtest", "suite": "concurrency", "header": header,
        "params": { "rows": ROWS, "bytes": BYTES, "busy_ms": BUSY_MS, "rounds": opts.rounds, "round_secs": opts.round_secs },
        "rows": json_rows,
    });
    (out, json)
}
