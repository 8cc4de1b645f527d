//! `--suite scale`, part `open` (issue 21, item 2): what a **new process**
//! pays to open the database and run one point query, pagelog against stock
//! SQLite (WAL) on the same rows.
//!
//! The process is the stock `sqlite3` shell (`--sqlite3`, Debian's
//! /usr/bin/sqlite3) running `SELECT length(v) FROM t WHERE id=777777`
//! (a smaller id when the table is smaller); for pagelog the script first
//! `.load`s `--extension` and `.open`s `file:…?vfs=pagelog`, for stock the
//! file is named on the command line. Its cost is the child's own `rusage`
//! from `wait4`, through a small helper process (see proc_cost.rs): CPU time (user + system) and peak RSS.
//! Every measurement is `--pairs` pairs (default 21) of whole processes,
//! pagelog and stock alternating and the order flipping every pair, so that
//! load from elsewhere falls on both alike; reported as medians, and the
//! per-pair ratio (CPU) and difference (RSS) with their spread.
//!
//! Database states, in order, on one pair of files (`open-pagelog.db`,
//! `open-wal.db`, 1,000,000 rows of 1000-byte blobs per GiB of `--scale-size`):
//! (a) the rows bulk-loaded in one transaction; (b) then `--scale-processes`
//! single-row UPDATEs, each by a `sqlite3` process of its own; (c) then
//! `--scale-versions` single-row UPDATEs by one connection. Every commit is
//! at synchronous=NORMAL, on both sides alike, pagelog and stock running at
//! the same time (two threads), so that machine load falls on both. Then
//! pagelog alone: `?version=N` of the version `--version-age` commits old
//! against the latest, paired the same way (target ≤ 2×).
//!
//! The files are left for growth.rs, which continues from state (c).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use speedtest::measure::sync_filesystems;
use speedtest::proc_cost::{self, Cost};
use speedtest::runner::uri_path;

use crate::scale::{
    build, human_bytes, open_conn, pagelog_version, Cell, Rng, Row, ScaleOpts, ScaleReport, Target, PAGELOG, ROW_BYTES,
    STOCK, UPDATE_SQL,
};

/// The pair of databases this part measures (and growth.rs continues).
pub struct Dbs {
    pub pl: PathBuf,
    pub st: PathBuf,
    pub rows: i64,
    pub page_size: u32,
}

/// Issue 21's databases: 1,000,000 rows per GiB (16 GiB: 16,000,000).
pub fn rows_for(size: u64) -> i64 {
    ((size as f64 / (1u64 << 30) as f64) * 1e6).round().max(1000.0) as i64
}

/// The row the query reads: issue 21's 777777 if the table has it.
pub fn query_id(rows: i64) -> i64 {
    if rows >= 777_777 {
        777_777
    } else {
        rows * 7 / 9 + 1
    }
}

/// Builds both databases, each in one transaction, and reports how long.
pub fn build_pair(opts: &ScaleOpts, progress: &dyn Fn(String), report: &mut ScaleReport) -> Result<Dbs, String> {
    let rows = rows_for(opts.size);
    let (pl, st) = (opts.dir.join("open-pagelog.db"), opts.dir.join("open-wal.db"));
    progress(format!("open: {rows} rows in one transaction through pagelog ({})", pl.display()));
    let b_pl = build(PAGELOG, &pl, opts.size, Some(rows), rows)?;
    sync_filesystems()?;
    progress(format!("open: built in {:.1} s; the same through stock SQLite (WAL)", b_pl.secs));
    let b_st = build(STOCK, &st, opts.size, Some(rows), rows)?;
    sync_filesystems()?;
    let mib_s = |secs: f64| b_pl.db_bytes as f64 / (1u64 << 20) as f64 / secs;
    report.rows.push(Row {
        key: "open_build",
        label: format!("(a) build: {rows} rows of {ROW_BYTES} B in one transaction ({})", human_bytes(b_pl.db_bytes)),
        pagelog: Some(Cell::Secs(vec![b_pl.secs])),
        stock: Some(Cell::Secs(vec![b_st.secs])),
        note: format!("synchronous=NORMAL, close included; {:.0} vs {:.0} MiB/s", mib_s(b_pl.secs), mib_s(b_st.secs)),
    });
    Ok(Dbs { pl, st, rows, page_size: b_pl.page_size })
}

/// The stock shell and the extension it loads.
pub(crate) struct Shell<'a> {
    /// This binary: proc_cost.rs's helper.
    pub helper: &'a Path,
    pub sqlite3: &'a Path,
    pub ext: String,
}

impl Shell<'_> {
    /// `sqlite3` with `sql` after the opening lines; `version` opens that
    /// version of a pagelog database.
    pub(crate) fn run(
        &self,
        pagelog: bool,
        path: &Path,
        version: Option<u64>,
        sql: &str,
    ) -> Result<proc_cost::Finished, String> {
        let mut args: Vec<&OsStr> = ["-bail", "-batch", "-init", "/dev/null"].map(OsStr::new).to_vec();
        let mut script = String::new();
        if pagelog {
            let v = version.map(|v| format!("&version={v}")).unwrap_or_default();
            script = format!(".load \"{}\"\n.open \"file:{}?vfs=pagelog{v}\"\n", self.ext, uri_path(path));
        } else {
            args.push(path.as_os_str());
        }
        script.push_str(sql);
        let f = proc_cost::run(self.helper, self.sqlite3, &args, script.as_bytes())?;
        if f.code != Some(0) || !f.stderr.is_empty() {
            return Err(format!("sqlite3 on {} exited {:?}: {}", path.display(), f.code, f.stderr.trim()));
        }
        Ok(f)
    }

    /// One new process: open, one point query; its cost.
    pub(crate) fn open_query(&self, pagelog: bool, path: &Path, version: Option<u64>, id: i64) -> Result<Cost, String> {
        let f = self.run(pagelog, path, version, &format!("SELECT length(v) FROM t WHERE id={id};\n"))?;
        if f.stdout.trim() != ROW_BYTES.to_string() {
            return Err(format!("sqlite3 on {}: row {id} read {:?}, expected {ROW_BYTES}", path.display(), f.stdout));
        }
        Ok(f.cost)
    }
}

/// `pairs` pairs of `a` and `b`, alternating which goes first.
fn paired(
    pairs: usize,
    mut a: impl FnMut() -> Result<Cost, String>,
    mut b: impl FnMut() -> Result<Cost, String>,
) -> Result<(Vec<Cost>, Vec<Cost>), String> {
    let (mut xa, mut xb) = (Vec::new(), Vec::new());
    for i in 0..pairs {
        if i % 2 == 0 {
            xa.push(a()?);
            xb.push(b()?);
        } else {
            xb.push(b()?);
            xa.push(a()?);
        }
    }
    Ok((xa, xb))
}

fn cpu_secs(c: &[Cost]) -> Vec<f64> {
    c.iter().map(|c| c.cpu).collect()
}

fn rss_mib(c: &[Cost]) -> Vec<f64> {
    c.iter().map(|c| c.max_rss as f64 / (1 << 20) as f64).collect()
}

fn median_of(xs: &[f64]) -> Option<f64> {
    crate::scale::median(xs)
}

/// Rows and targets for one database state: CPU and RSS, both sides, and
/// the per-pair ratio and difference.
pub(crate) fn push_state(report: &mut ScaleReport, keys: [&'static str; 3], what: &str, pl: &[Cost], st: &[Cost]) {
    let ratios: Vec<f64> = pl.iter().zip(st).filter(|(_, s)| s.cpu > 0.0).map(|(p, s)| p.cpu / s.cpu).collect();
    let diffs: Vec<f64> = rss_mib(pl).iter().zip(rss_mib(st)).map(|(p, s)| p - s).collect();
    let wall = |c: &[Cost]| median_of(&c.iter().map(|c| c.wall * 1e3).collect::<Vec<_>>()).unwrap_or(0.0);
    report.rows.push(Row {
        key: keys[0],
        label: format!("{what}: new sqlite3 process, open + one point SELECT, CPU (user+sys)"),
        pagelog: Some(Cell::Secs(cpu_secs(pl))),
        stock: Some(Cell::Secs(cpu_secs(st))),
        note: format!("median wall {:.1} vs {:.1} ms; pagelog includes `.load`", wall(pl), wall(st)),
    });
    report.rows.push(Row {
        key: keys[1],
        label: format!("{what}: same processes, peak RSS (ru_maxrss)"),
        pagelog: Some(Cell::Mib(rss_mib(pl))),
        stock: Some(Cell::Mib(rss_mib(st))),
        note: String::new(),
    });
    report.rows.push(Row {
        key: keys[2],
        label: format!("{what}: per pair, pagelog ÷ stock CPU; pagelog − stock RSS (MiB)"),
        pagelog: Some(Cell::Ratios(ratios.clone())),
        stock: Some(Cell::Mib(diffs.clone())),
        note: "median (min–max) over the pairs".into(),
    });
    let r = median_of(&ratios);
    let d = median_of(&diffs);
    report.targets.push(Target {
        name: "open + point query in a new process (issue 21)",
        goal: format!("{what}: CPU ≤ 1.5 × stock WAL, peak RSS ≤ stock + 8 MiB"),
        measured: format!(
            "{}, {}",
            r.map_or("n/a".into(), |r| format!("{r:.2}×")),
            d.map_or("n/a".into(), |d| format!("{d:+.1} MiB"))
        ),
        met: r.zip(d).map(|(r, d)| r <= 1.5 && d <= 8.0),
    });
}

/// `count` single-row UPDATEs on each side at once, each by a `sqlite3`
/// process of its own (synchronous=NORMAL); returns each side's seconds.
fn process_commits(shell: &Shell, dbs: &Dbs, count: u64) -> Result<(f64, f64), String> {
    let side = |pagelog: bool, path: &Path| -> Result<f64, String> {
        let mut rng = Rng(11);
        let t0 = Instant::now();
        for _ in 0..count {
            let id = rng.id(dbs.rows);
            let sql =
                format!("PRAGMA synchronous=NORMAL;\nUPDATE t SET v = randomblob({ROW_BYTES}) WHERE id = {id};\n");
            shell.run(pagelog, path, None, &sql)?;
        }
        Ok(t0.elapsed().as_secs_f64())
    };
    std::thread::scope(|s| {
        let h = s.spawn(|| side(false, &dbs.st));
        let pl = side(true, &dbs.pl);
        let st = h.join().map_err(|_| "stock commit thread panicked".to_string())?;
        Ok((pl?, st?))
    })
}

/// `count` single-row UPDATEs on each side at once, each side by one
/// connection (synchronous=NORMAL); returns each side's seconds.
fn one_process_commits(dbs: &Dbs, count: u64) -> Result<(f64, f64), String> {
    let side = |cfg, path: &Path| -> Result<f64, String> {
        let conn = open_conn(cfg, path)?;
        let mut stmt = conn.prepare(UPDATE_SQL).map_err(|e| format!("{cfg}: {e}"))?;
        let mut rng = Rng(12);
        let t0 = Instant::now();
        for _ in 0..count {
            let id = rng.id(dbs.rows);
            stmt.execute([id]).map_err(|e| format!("{cfg}: update row {id}: {e}"))?;
        }
        Ok(t0.elapsed().as_secs_f64())
    };
    std::thread::scope(|s| {
        let h = s.spawn(|| side(STOCK, &dbs.st));
        let pl = side(PAGELOG, &dbs.pl);
        let st = h.join().map_err(|_| "stock commit thread panicked".to_string())?;
        Ok((pl?, st?))
    })
}

fn rate_row(key: &'static str, label: String, n: u64, (pl, st): (f64, f64)) -> Row {
    Row {
        key,
        label,
        pagelog: Some(Cell::Rate { ops: n, secs: pl }),
        stock: Some(Cell::Rate { ops: n, secs: st }),
        note: "synchronous=NORMAL; both sides at the same time".into(),
    }
}

/// Measures states (a), (b), (c) and `?version=N` on `dbs` (state (a)).
pub fn run(
    opts: &ScaleOpts,
    dbs: &Dbs,
    exe: &Path,
    progress: &dyn Fn(String),
    report: &mut ScaleReport,
) -> Result<(), String> {
    let ext = opts.extension.to_str().ok_or("the extension path is not UTF-8")?;
    // The full file name: `.load` tries it first, so no failed dlopen is timed.
    let shell = Shell { helper: exe, sqlite3: &opts.sqlite3, ext: ext.to_string() };
    let id = query_id(dbs.rows);
    let measure = |report: &mut ScaleReport, keys, what: &str| -> Result<(), String> {
        progress(format!("open: {} pairs of new processes, {what}", opts.pairs));
        sync_filesystems()?;
        let (pl, st) = paired(
            opts.pairs,
            || shell.open_query(true, &dbs.pl, None, id),
            || shell.open_query(false, &dbs.st, None, id),
        )?;
        push_state(report, keys, what, &pl, &st);
        Ok(())
    };
    measure(report, ["open_cpu_a", "open_rss_a", "open_pair_a"], "(a) bulk load in one transaction")?;

    let n = opts.processes;
    progress(format!("open: {n} single-row commits, a sqlite3 process each, both sides at once"));
    let secs = process_commits(&shell, dbs, n)?;
    report.rows.push(rate_row(
        "open_commits_b",
        format!("(b) {n} single-row commits, a sqlite3 process each"),
        n,
        secs,
    ));
    measure(report, ["open_cpu_b", "open_rss_b", "open_pair_b"], &format!("(b) then {n} one-commit processes"))?;

    let m = opts.versions;
    progress(format!("open: {m} single-row commits by one connection, both sides at once"));
    let secs = one_process_commits(dbs, m)?;
    report.rows.push(rate_row("open_commits_c", format!("(c) {m} single-row commits by one connection"), m, secs));
    measure(report, ["open_cpu_c", "open_rss_c", "open_pair_c"], &format!("(c) then {m} commits in one process"))?;

    let latest = pagelog_version(&open_conn(PAGELOG, &dbs.pl)?)?;
    let age = opts.version_age;
    if latest <= age {
        report.todo.push(format!("?version=N: the log has {latest} versions, fewer than --version-age {age}"));
        return Ok(());
    }
    let old = latest - age;
    progress(format!("open: {} pairs, ?version={old} against the latest ({latest})", opts.pairs));
    let (vo, vl) = paired(
        opts.pairs,
        || shell.open_query(true, &dbs.pl, Some(old), id),
        || shell.open_query(true, &dbs.pl, None, id),
    )?;
    let ratios: Vec<f64> = vo.iter().zip(&vl).filter(|(_, l)| l.cpu > 0.0).map(|(o, l)| o.cpu / l.cpu).collect();
    report.rows.push(Row {
        key: "open_version_old",
        label: format!("(c) ?version={old} ({age} commits old), new process: CPU; per pair ÷ latest"),
        pagelog: Some(Cell::Secs(cpu_secs(&vo))),
        stock: Some(Cell::Ratios(ratios.clone())),
        note: format!("the stock column here is the per-pair ratio to opening the latest (version {latest})"),
    });
    report.rows.push(Row {
        key: "open_version_latest",
        label: format!("(c) latest (version {latest}), the same pairs: CPU; peak RSS old vs latest"),
        pagelog: Some(Cell::Secs(cpu_secs(&vl))),
        stock: Some(Cell::Mib(rss_mib(&vo).iter().zip(rss_mib(&vl)).map(|(o, l)| o - l).collect())),
        note: "stock column: RSS of the old version minus the latest, per pair".into(),
    });
    let r = median_of(&ratios);
    report.targets.push(Target {
        name: "?version=N of a version 5,000 commits old (issue 21)",
        goal: format!("≤ 2 × opening the latest (CPU, new process, {age} commits old)"),
        measured: r.map_or("n/a".into(), |r| format!("{r:.2}×")),
        met: r.map(|r| r <= 2.0),
    });
    Ok(())
}
