//! `--suite scale`, part `growth` (issue 20, item 4): steady-state disk
//! growth under single-row UPDATEs, with a reader process beside the
//! writer: format 3 against stock WAL, the "before" curve of retention
//! (retain.rs runs the same loop on format-4 logs with and without a
//! policy).
//!
//! On open_cost.rs's databases (left in state (c)): a long-lived writer
//! (this process, one connection per database, synchronous=NORMAL) makes
//! `--growth-commits` single-row UPDATEs of the suite's rows to each
//! database, in chunks of `--growth-sample` commits that alternate between
//! the databases (the order rotating each chunk), so load from elsewhere
//! falls on all alike. During each chunk a reader process (worker.rs: point
//! SELECTs by random id, each its own transaction) runs on the same
//! database. After each chunk the disk blocks in use are sampled:
//! `st_blocks × 512` of the database's files (for stock the db and its
//! `-wal`; `-shm` excluded), what `du` reports.
//!
//! Reported per series: the curve (start, max, final), commits/s and commit
//! latency (p50/p99/max), the reader's SELECTs/s; and per chunk the ratio to
//! stock, median and spread.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::Connection;
use speedtest::config::Config;
use speedtest::latency::Histogram;
use speedtest::measure::{db_sizes, sync_filesystems};
use speedtest::worker::{Role, Spec, Worker};

use crate::open_cost::Dbs;
use crate::scale::{open_conn, Cell, Rng, Row, ScaleOpts, ScaleReport, PAGELOG, STOCK, UPDATE_SQL};

/// One database written to and sampled (also retain.rs's).
pub(crate) struct Series {
    pub name: String,
    cfg: Config,
    pub path: PathBuf,
    pub conn: Connection,
    rng: Rng,
    pub lat: Histogram,
    pub commit_secs: f64,
    /// (commits so far, disk blocks in use) after each chunk.
    pub curve: Vec<(u64, u64)>,
    pub reads: u64,
    pub read_secs: f64,
    /// Per chunk: commits/s and the reader's SELECTs/s.
    pub chunk_rates: Vec<(f64, f64)>,
}

/// Disk blocks in use by the database's files, `-shm` excluded.
pub(crate) fn blocks_bytes(path: &Path) -> Result<u64, String> {
    Ok(db_sizes(path)?.files.iter().filter(|f| f.suffix != "-shm").map(|f| f.allocated).sum())
}

impl Series {
    pub fn new(name: String, cfg: Config, path: PathBuf, seed: u64) -> Result<Series, String> {
        let conn = open_conn(cfg, &path)?;
        let start = blocks_bytes(&path)?;
        Ok(Series {
            name,
            cfg,
            path,
            conn,
            rng: Rng(seed),
            lat: Histogram::default(),
            commit_secs: 0.0,
            curve: vec![(0, start)],
            reads: 0,
            read_secs: 0.0,
            chunk_rates: Vec::new(),
        })
    }

    /// `n` commits with a reader process running; then one sample.
    pub fn chunk(&mut self, exe: &Path, rows: i64, n: u64, seed: u64) -> Result<(), String> {
        let spec =
            Spec { role: Role::Reader, config: self.cfg, rows, bytes: 0, seed, busy_ms: 10_000, db: self.path.clone() };
        let mut reader = Worker::start(exe, &spec)?;
        reader.go()?;
        let t0 = Instant::now();
        for _ in 0..n {
            let id = self.rng.id(rows);
            let t = Instant::now();
            let mut stmt = self.conn.prepare_cached(UPDATE_SQL).map_err(|e| format!("{}: {e}", self.name))?;
            stmt.execute([id]).map_err(|e| format!("{}: update row {id}: {e}", self.name))?;
            self.lat.record(t.elapsed());
        }
        let secs = t0.elapsed().as_secs_f64();
        let r = reader.stop()?;
        self.commit_secs += secs;
        self.reads += r.ops;
        self.read_secs += r.secs;
        self.chunk_rates.push((n as f64 / secs, r.rate()));
        let done = self.curve.last().map_or(0, |c| c.0) + n;
        self.curve.push((done, blocks_bytes(&self.path)?));
        Ok(())
    }
}

/// Per-chunk ratios of `a` to `b`: (commits/s, SELECTs/s).
pub(crate) fn chunk_ratios(a: &Series, b: &Series) -> (Vec<f64>, Vec<f64>) {
    let pairs = a.chunk_rates.iter().zip(&b.chunk_rates);
    let c = pairs.clone().filter(|(_, y)| y.0 > 0.0).map(|(x, y)| x.0 / y.0).collect();
    let r = pairs.filter(|(_, y)| y.1 > 0.0).map(|(x, y)| x.1 / y.1).collect();
    (c, r)
}

pub(crate) fn ratio_note(what: &str, xs: &[f64]) -> String {
    format!("{what}, per chunk: {}", Cell::Ratios(xs.to_vec()).render())
}

/// Runs the growth part on `dbs`; `exe` is this binary (for the reader).
pub fn run(
    opts: &ScaleOpts,
    dbs: &Dbs,
    exe: &Path,
    progress: &dyn Fn(String),
    report: &mut ScaleReport,
) -> Result<(), String> {
    let (k, s) = (opts.growth_commits, opts.growth_sample.max(1));
    let mut series = vec![
        Series::new("pagelog".into(), PAGELOG, dbs.pl.clone(), 31)?,
        Series::new("stock".into(), STOCK, dbs.st.clone(), 31)?,
    ];
    sync_filesystems()?;
    let chunks = k.div_ceil(s);
    for c in 0..chunks {
        let n = s.min(k - c * s);
        if c % 10 == 0 {
            progress(format!("growth: chunk {}/{chunks} ({n} commits each, {} databases)", c + 1, series.len()));
        }
        for j in 0..series.len() {
            let i = (j + c as usize) % series.len();
            series[i].chunk(exe, dbs.rows, n, c + 1)?;
        }
    }
    push_rows(opts, report, &series);
    Ok(())
}

/// Bytes per commit from the first sample of `x`'s curve to its last.
pub(crate) fn per_commit(x: &Series) -> f64 {
    let (a, z) = (x.curve[0], x.curve.last().copied().unwrap_or(x.curve[0]));
    (z.1 as f64 - a.1 as f64) / z.0.max(1) as f64
}

fn push_rows(opts: &ScaleOpts, report: &mut ScaleReport, series: &[Series]) {
    let (k, s) = (opts.growth_commits, opts.growth_sample);
    let (pl, st) = (&series[0], &series[1]);
    let (cr, rr) = chunk_ratios(pl, st);
    let rows = &mut report.rows;
    rows.push(Row {
        key: "growth_blocks",
        label: format!("growth: disk blocks in use (st_blocks × 512) over {k} single-row UPDATEs, sampled every {s}"),
        pagelog: Some(Cell::Curve(pl.curve.clone())),
        stock: Some(Cell::Curve(st.curve.clone())),
        note: format!("{:.0} vs {:.0} bytes per commit, start to final", per_commit(pl), per_commit(st)),
    });
    rows.push(Row {
        key: "growth_commits",
        label: "growth: the long-lived writer's commits (synchronous=NORMAL)".into(),
        pagelog: Some(Cell::Rate { ops: pl.lat.n, secs: pl.commit_secs }),
        stock: Some(Cell::Rate { ops: st.lat.n, secs: st.commit_secs }),
        note: ratio_note("pagelog ÷ stock", &cr),
    });
    rows.push(Row {
        key: "growth_latency",
        label: "growth: commit latency".into(),
        pagelog: Some(Cell::Latency(pl.lat.clone())),
        stock: Some(Cell::Latency(st.lat.clone())),
        note: String::new(),
    });
    rows.push(Row {
        key: "growth_reads",
        label: "growth: point SELECTs by a reader process during the commits".into(),
        pagelog: Some(Cell::Rate { ops: pl.reads, secs: pl.read_secs }),
        stock: Some(Cell::Rate { ops: st.reads, secs: st.read_secs }),
        note: ratio_note("pagelog ÷ stock", &rr),
    });
}
