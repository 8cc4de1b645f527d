//! `--suite scale`: which parts run (`--parts`), in what order, into one
//! report. The parts are scale.rs's own steps (`classic`, issue 4),
//! open_cost.rs (`open`, issue 21), growth.rs (`growth`, issue 20) and
//! open_f4.rs (`open4`, issue 21 on format 4 beside 3 and stock; builds its
//! own three databases), retain.rs (`retain`, issue 20); `open` and `growth` share one pair of
//! databases, built here once; `retain` builds its own (format 4).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use speedtest::measure::{cpu_model, filesystem_of, load_average};
use speedtest::report::iso8601_utc;

use crate::scale::{self, ScaleOpts, ScaleReport};
use crate::{growth, open_cost, open_f4, retain};

fn empty_report(opts: &ScaleOpts) -> ScaleReport {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    ScaleReport {
        sqlite_version: rusqlite::version().to_string(),
        date: iso8601_utc(now),
        machine: String::new(),
        cpu: cpu_model(),
        dir: opts.dir.clone(),
        filesystem: filesystem_of(&opts.dir),
        opts: opts.clone(),
        rows_in_table: 0,
        page_size: 0,
        rows: Vec::new(),
        targets: Vec::new(),
        todo: Vec::new(),
    }
}

/// Runs the selected parts; `exe` is this binary, for worker processes.
pub fn run(opts: &ScaleOpts, exe: &Path, progress: &dyn Fn(String)) -> Result<ScaleReport, String> {
    let load_start = load_average();
    let mut report = if opts.parts.classic { scale::run_classic(opts, progress)? } else { empty_report(opts) };
    if opts.parts.open || opts.parts.growth {
        let dbs = open_cost::build_pair(opts, progress, &mut report)?;
        if !opts.parts.classic {
            report.rows_in_table = dbs.rows;
            report.page_size = dbs.page_size;
        }
        if opts.parts.open {
            open_cost::run(opts, &dbs, exe, progress, &mut report)?;
        } else {
            report.todo.push("part `open` not run: growth starts from the bulk-loaded state (a)".into());
        }
        if opts.parts.growth {
            growth::run(opts, &dbs, exe, progress, &mut report)?;
        }
    }
    if opts.parts.open4 {
        open_f4::run(opts, exe, progress, &mut report)?;
    }
    if opts.parts.retain {
        retain::run(opts, exe, progress, &mut report)?;
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    report.machine =
        format!("{cores} cores; load average {load_start} at the start, {} at the end (1, 5, 15 min)", load_average());
    Ok(report)
}

/// This binary, for re-executing it as a worker.
pub fn current_exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))
}
