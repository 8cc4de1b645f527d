//! `--suite scale`, part `open4` (issue 21, item 2, after format 4): the
//! `open` part's measurements on three databases of the same rows side by
//! side — a **format-4** log, a **format-3** log and stock SQLite (WAL) —
//! plus the read path's cost in a long-lived process (format 4 against 3).
//!
//! Files `open4-f4.db` (created as retain.rs does: a first commit through
//! the log API with `OpenOptions::format4`, then SQLite), `open4-f3.db`
//! and `open4-wal.db`, each bulk-loaded in one transaction (state (a)),
//! then `--scale-processes` single-row UPDATEs each by a `sqlite3` process
//! of its own (b), then `--scale-versions` by one connection (c); the three
//! sides commit at the same time (three threads), so load falls on all.
//! After each state, `--pairs` rounds of whole `sqlite3` processes, one per
//! side, their order rotating through all six permutations; per round the
//! ratio to stock's CPU and the difference to stock's peak RSS (as
//! open_cost.rs). Then, per format, `?version=N` (`--version-age` old)
//! against the latest, paired. Last, point SELECTs (`SELECT v FROM t WHERE
//! id=?`, random ids, SQLite's default cache) in one long-lived connection
//! per side, in interleaved slices; the rate is per **CPU second of the
//! reading thread** (`CLOCK_THREAD_CPUTIME_ID`), which load from other processes
//! moves far less than wall time; the per-slice ratio format 4 ÷ format 3
//! (target ≥ 0.95: no regression beyond 5 %).
//!
//! `--open4-skip-format3` leaves the format-3 side out (no file, no
//! processes, no rows; the point SELECTs then report format 4 ÷ stock
//! only): at 16 GiB its log would be 16 GiB more disk, and each of its
//! one-commit processes reads a 64 MiB full map.

use std::path::{Path, PathBuf};
use std::time::Instant;

use speedtest::measure::sync_filesystems;
use speedtest::proc_cost::Cost;

use crate::open_cost::{push_state, query_id, rows_for, Shell};
use crate::scale::{
    build, human_bytes, median, open_conn, pagelog_version, Cell, Rng, Row, ScaleOpts, ScaleReport, Target, PAGELOG,
    ROW_BYTES, SELECT_SQL, STOCK, UPDATE_SQL,
};

/// The three databases, in the order of [`SIDES`].
struct Files {
    paths: [PathBuf; 3],
    rows: i64,
    /// `--open4-skip-format3`: side 1 is left out.
    skip_f3: bool,
}

impl Files {
    /// The sides measured: all three, or format 4 and stock.
    fn sides(&self) -> &'static [usize] {
        if self.skip_f3 {
            &[0, 2]
        } else {
            &[0, 1, 2]
        }
    }
}

/// Format 4, format 3, stock: whether each is pagelog.
const SIDES: [(&str, bool); 3] = [("format 4", true), ("format 3", true), ("stock WAL", false)];

/// This thread's CPU time so far, seconds (`CLOCK_THREAD_CPUTIME_ID`: the
/// scheduler's nanoseconds, not `getrusage`'s ticks).
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, exclusive pointer for the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn build_all(opts: &ScaleOpts, progress: &dyn Fn(String), report: &mut ScaleReport) -> Result<Files, String> {
    let rows = rows_for(opts.size);
    let paths = ["open4-f4.db", "open4-f3.db", "open4-wal.db"].map(|n| opts.dir.join(n));
    let mut secs = Vec::new();
    let mut bytes = 0;
    for (i, (name, _)) in SIDES.iter().enumerate() {
        if i == 1 && opts.open4_skip_format3 {
            secs.push(f64::NAN);
            continue;
        }
        progress(format!("open4: {rows} rows in one transaction, {name} ({})", paths[i].display()));
        let b = match i {
            0 => crate::retain::build_format4(opts, &paths[i], rows)?,
            1 => build(PAGELOG, &paths[i], opts.size, Some(rows), rows)?,
            _ => build(STOCK, &paths[i], opts.size, Some(rows), rows)?,
        };
        sync_filesystems()?;
        progress(format!("open4: built in {:.1} s", b.secs));
        secs.push(b.secs);
        bytes = b.db_bytes;
    }
    report.rows.push(Row {
        key: "open4_build",
        label: format!("(a) build, {rows} rows of {ROW_BYTES} B in one transaction ({}): format 4", human_bytes(bytes)),
        pagelog: Some(Cell::Secs(vec![secs[0]])),
        stock: Some(Cell::Secs(vec![secs[2]])),
        note: if opts.open4_skip_format3 {
            "synchronous=NORMAL, close included; format 3 not built (--open4-skip-format3)".into()
        } else {
            format!("synchronous=NORMAL, close included; format 3 took {:.1} s", secs[1])
        },
    });
    Ok(Files { paths, rows, skip_f3: opts.open4_skip_format3 })
}

/// `rounds` rounds of one process per side in `sides`, the order rotating
/// through all six permutations (with two sides: A B, B A, …).
fn rounds(
    rounds: usize,
    sides: &[usize],
    mut one: impl FnMut(usize) -> Result<Cost, String>,
) -> Result<[Vec<Cost>; 3], String> {
    const ORDERS: [[usize; 3]; 6] = [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1], [2, 0, 1], [1, 0, 2]];
    let mut out: [Vec<Cost>; 3] = Default::default();
    for r in 0..rounds {
        for &s in ORDERS[r % 6].iter().filter(|s| sides.contains(s)) {
            out[s].push(one(s)?);
        }
    }
    Ok(out)
}

/// Runs `f(side)` on the sides in `sides` at once (a thread each); a side
/// left out gets NaN.
fn on_all(sides: &[usize], f: impl Fn(usize) -> Result<f64, String> + Sync) -> Result<[f64; 3], String> {
    std::thread::scope(|s| {
        let f = &f;
        let hs: Vec<_> = sides.iter().map(|&i| (i, s.spawn(move || f(i)))).collect();
        let mut out = [f64::NAN; 3];
        for (i, h) in hs {
            out[i] = h.join().map_err(|_| format!("{} commit thread panicked", SIDES[i].0))??;
        }
        Ok(out)
    })
}

fn commits_row(key: &'static str, label: String, n: u64, secs: [f64; 3]) -> Row {
    Row {
        key,
        label,
        pagelog: Some(Cell::Rate { ops: n, secs: secs[0] }),
        stock: Some(Cell::Rate { ops: n, secs: secs[2] }),
        note: if secs[1].is_nan() {
            "pagelog column: format 4; format 3 not run; synchronous=NORMAL, both at the same time".into()
        } else {
            format!(
                "pagelog column: format 4; format 3 {:.0} commits/s; synchronous=NORMAL, the three at the same time",
                n as f64 / secs[1].max(1e-9)
            )
        },
    }
}

pub fn run(opts: &ScaleOpts, exe: &Path, progress: &dyn Fn(String), report: &mut ScaleReport) -> Result<(), String> {
    let f = build_all(opts, progress, report)?;
    if report.rows_in_table == 0 {
        report.rows_in_table = f.rows;
        report.page_size = 4096;
    }
    let ext = opts.extension.to_str().ok_or("the extension path is not UTF-8")?;
    let shell = Shell { helper: exe, sqlite3: &opts.sqlite3, ext: ext.to_string() };
    let id = query_id(f.rows);
    let measure = |report: &mut ScaleReport, keys: [[&'static str; 3]; 2], what: &str| -> Result<(), String> {
        progress(format!("open4: {} rounds of three new processes, {what}", opts.pairs));
        sync_filesystems()?;
        let [f4, f3, st] = rounds(opts.pairs, f.sides(), |s| shell.open_query(SIDES[s].1, &f.paths[s], None, id))?;
        push_state(report, keys[0], &format!("{what}, format 4"), &f4, &st);
        if !f.skip_f3 {
            push_state(report, keys[1], &format!("{what}, format 3"), &f3, &st);
        }
        Ok(())
    };
    measure(
        report,
        [["open4_cpu_a", "open4_rss_a", "open4_pair_a"], ["open4_f3_cpu_a", "open4_f3_rss_a", "open4_f3_pair_a"]],
        "(a) bulk load in one transaction",
    )?;

    let n = opts.processes;
    progress(format!("open4: {n} single-row commits, a sqlite3 process each, three sides at once"));
    let secs = on_all(f.sides(), |s| {
        let mut rng = Rng(11);
        let t0 = Instant::now();
        for _ in 0..n {
            let sql = format!(
                "PRAGMA synchronous=NORMAL;\nUPDATE t SET v = randomblob({ROW_BYTES}) WHERE id = {};\n",
                rng.id(f.rows)
            );
            shell.run(SIDES[s].1, &f.paths[s], None, &sql)?;
        }
        Ok(t0.elapsed().as_secs_f64())
    })?;
    report.rows.push(commits_row(
        "open4_commits_b",
        format!("(b) {n} single-row commits, a sqlite3 process each"),
        n,
        secs,
    ));
    measure(
        report,
        [["open4_cpu_b", "open4_rss_b", "open4_pair_b"], ["open4_f3_cpu_b", "open4_f3_rss_b", "open4_f3_pair_b"]],
        &format!("(b) then {n} one-commit processes"),
    )?;

    let m = opts.versions;
    progress(format!("open4: {m} single-row commits by one connection, three sides at once"));
    let secs = on_all(f.sides(), |s| {
        let cfg = if SIDES[s].1 { PAGELOG } else { STOCK };
        let conn = open_conn(cfg, &f.paths[s])?;
        let mut stmt = conn.prepare(UPDATE_SQL).map_err(|e| format!("{}: {e}", SIDES[s].0))?;
        let mut rng = Rng(12);
        let t0 = Instant::now();
        for _ in 0..m {
            let id = rng.id(f.rows);
            stmt.execute([id]).map_err(|e| format!("{}: update row {id}: {e}", SIDES[s].0))?;
        }
        Ok(t0.elapsed().as_secs_f64())
    })?;
    report.rows.push(commits_row("open4_commits_c", format!("(c) {m} single-row commits by one connection"), m, secs));
    measure(
        report,
        [["open4_cpu_c", "open4_rss_c", "open4_pair_c"], ["open4_f3_cpu_c", "open4_f3_rss_c", "open4_f3_pair_c"]],
        &format!("(c) then {m} commits in one process"),
    )?;

    for (s, keys) in
        [(0, ["open4_version_old", "open4_version_latest"]), (1, ["open4_f3_version_old", "open4_f3_version_latest"])]
    {
        if !f.sides().contains(&s) {
            continue;
        }
        version_pairs(opts, &shell, &f.paths[s], SIDES[s].0, keys, id, progress, report)?;
    }
    point_selects(opts, &f, progress, report)
}

/// `?version=N` (`--version-age` old) against the latest, paired.
#[allow(clippy::too_many_arguments)]
fn version_pairs(
    opts: &ScaleOpts,
    shell: &Shell,
    path: &Path,
    name: &str,
    keys: [&'static str; 2],
    id: i64,
    progress: &dyn Fn(String),
    report: &mut ScaleReport,
) -> Result<(), String> {
    let latest = pagelog_version(&open_conn(PAGELOG, path)?)?;
    let age = opts.version_age;
    if latest <= age {
        report.todo.push(format!("{name} ?version=N: the log has {latest} versions, fewer than --version-age {age}"));
        return Ok(());
    }
    let old = latest - age;
    progress(format!("open4: {} pairs, {name}, ?version={old} against the latest ({latest})", opts.pairs));
    let (mut vo, mut vl) = (Vec::new(), Vec::new());
    for i in 0..opts.pairs {
        let mut o = || shell.open_query(true, path, Some(old), id).map(|c| vo.push(c));
        if i % 2 == 0 {
            o()?;
            vl.push(shell.open_query(true, path, None, id)?);
        } else {
            vl.push(shell.open_query(true, path, None, id)?);
            o()?;
        }
    }
    let ratios: Vec<f64> = vo.iter().zip(&vl).filter(|(_, l)| l.cpu > 0.0).map(|(o, l)| o.cpu / l.cpu).collect();
    let mib = |c: &Cost| c.max_rss as f64 / (1 << 20) as f64;
    report.rows.push(Row {
        key: keys[0],
        label: format!("{name}: ?version={old} ({age} commits old), new process: CPU; per pair ÷ latest"),
        pagelog: Some(Cell::Secs(vo.iter().map(|c| c.cpu).collect())),
        stock: Some(Cell::Ratios(ratios.clone())),
        note: format!("the stock column here is the per-pair ratio to opening the latest (version {latest})"),
    });
    report.rows.push(Row {
        key: keys[1],
        label: format!("{name}: latest (version {latest}), the same pairs: CPU; peak RSS old − latest"),
        pagelog: Some(Cell::Secs(vl.iter().map(|c| c.cpu).collect())),
        stock: Some(Cell::Mib(vo.iter().zip(&vl).map(|(o, l)| mib(o) - mib(l)).collect())),
        note: "stock column: RSS of the old version minus the latest, per pair".into(),
    });
    let r = median(&ratios);
    report.targets.push(Target {
        name: "?version=N of a version 5,000 commits old (issue 21)",
        goal: format!("{name}: ≤ 2 × opening the latest (CPU, new process, {age} commits old)"),
        measured: r.map_or("n/a".into(), |r| format!("{r:.2}×")),
        met: r.map(|r| r <= 2.0),
    });
    Ok(())
}

/// Slices of point SELECTs per side and reads per slice.
const SLICES: usize = 12;

/// Point SELECTs in one long-lived connection per side, interleaved
/// slices; rates per CPU second of this thread.
fn point_selects(
    opts: &ScaleOpts,
    f: &Files,
    progress: &dyn Fn(String),
    report: &mut ScaleReport,
) -> Result<(), String> {
    let reads: u64 = if opts.size < (32 << 20) { 1_000 } else { 20_000 };
    progress(format!("open4: point SELECTs, {SLICES} interleaved slices of {reads} per side, one connection each"));
    let sides = f.sides();
    // A side left out opens nothing: its slot holds an in-memory connection
    // that no slice reads.
    let conns = (0..3)
        .map(|s| match sides.contains(&s) {
            true => open_conn(if SIDES[s].1 { PAGELOG } else { STOCK }, &f.paths[s]),
            false => rusqlite::Connection::open_in_memory().map_err(|e| e.to_string()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmts = conns
        .iter()
        .enumerate()
        .map(|(s, c)| match sides.contains(&s) {
            true => c.prepare(SELECT_SQL).map_err(|e| format!("{}: {e}", SIDES[s].0)),
            false => c.prepare("SELECT ?1").map_err(|e| e.to_string()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut slice = |s: usize, seed: u64| -> Result<f64, String> {
        let mut rng = Rng(seed);
        let c0 = thread_cpu();
        for _ in 0..reads {
            let id = rng.id(f.rows);
            let n: usize = stmts[s]
                .query_row([id], |r| r.get_ref(0).map(|v| v.as_blob().map_or(0, |b| b.len())))
                .map_err(|e| format!("{}: select row {id}: {e}", SIDES[s].0))?;
            if n != ROW_BYTES as usize {
                return Err(format!("{}: row {id} has {n} bytes", SIDES[s].0));
            }
        }
        Ok(reads as f64 / (thread_cpu() - c0).max(1e-6))
    };
    // One warm-up slice each (the connection's cache and the OS page cache).
    for &s in sides {
        slice(s, 99)?;
    }
    let mut rates: [Vec<f64>; 3] = Default::default();
    let orders = [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1], [2, 0, 1], [1, 0, 2]];
    for k in 0..SLICES {
        for &s in orders[k % 6].iter().filter(|s| sides.contains(s)) {
            rates[s].push(slice(s, 100 + k as u64)?);
        }
    }
    let ratio = |a: usize, b: usize| -> Vec<f64> { rates[a].iter().zip(&rates[b]).map(|(x, y)| x / y).collect() };
    let (r43, r4s) = (ratio(0, 1), ratio(0, 2));
    let secs = |r: &[f64]| r.iter().map(|r| 1.0 / r).collect::<Vec<_>>();
    if f.skip_f3 {
        report.rows.push(Row {
            key: "open4_select_f4_stock",
            label: format!(
                "(c) point SELECTs, long-lived connection: CPU s per read, format 4 vs stock WAL ({SLICES} slices of {reads})"
            ),
            pagelog: Some(Cell::Secs(secs(&rates[0]))),
            stock: Some(Cell::Secs(secs(&rates[2]))),
            note: "format 3 not run (--open4-skip-format3); per CPU second of the reading thread, default cache_size"
                .into(),
        });
        report.rows.push(Row {
            key: "open4_select_ratio",
            label: "(c) point SELECTs per CPU second, per slice: format 4 ÷ stock".into(),
            pagelog: Some(Cell::Ratios(r4s)),
            stock: None,
            note: "no format-3 side, so no format 4 ÷ format 3 target".into(),
        });
        return Ok(());
    }
    report.rows.push(Row {
        key: "open4_select_f4_f3",
        label: format!("(c) point SELECTs, long-lived connection: CPU s per read, format 4 vs format 3 ({SLICES} slices of {reads})"),
        pagelog: Some(Cell::Secs(secs(&rates[0]))),
        stock: Some(Cell::Secs(secs(&rates[1]))),
        note: "stock column: format 3 here; per CPU second of the reading thread, default cache_size".into(),
    });
    report.rows.push(Row {
        key: "open4_select_ratio",
        label: "(c) point SELECTs per CPU second, per slice: format 4 ÷ format 3; format 4 ÷ stock".into(),
        pagelog: Some(Cell::Ratios(r43.clone())),
        stock: Some(Cell::Ratios(r4s)),
        note: format!(
            "stock WAL reads {}",
            median(&secs(&rates[2])).map_or("n/a".into(), |s| format!("{:.1} µs", s * 1e6))
        ),
    });
    let r = median(&r43);
    report.targets.push(Target {
        name: "point SELECTs in a long-lived process (issue 21)",
        goal: "format 4 ≥ 0.95 × format 3 (rate per CPU second, per slice)".into(),
        measured: r.map_or("n/a".into(), |r| format!("{r:.3}×")),
        met: r.map(|r| r >= 0.95),
    });
    Ok(())
}
