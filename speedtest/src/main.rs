//! The `speedtest` command line: parse flags, run every configuration
//! round-robin, print the tables, write the JSON. See speedtest/README.md.
//! `--suite scale` runs `scale_suite.rs` (scale.rs, open_cost.rs,
//! growth.rs, retain.rs), `--suite concurrency` runs `concurrency.rs`;
//! `--worker` makes this process a worker (worker.rs).

mod concurrency;
mod growth;
mod open_cost;
mod open_f4;
mod retain;
mod scale;
mod scale_suite;
mod suite_flags;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use speedtest::config::Config;
use speedtest::measure::{cpu_model, filesystem_of, Filesystem};
use speedtest::probe::{self, ProbeOutcome};
use speedtest::report::{iso8601_utc, Meta, Report};
use speedtest::runner::{self, Mode, RunOpts, ShellOpts};
use speedtest::workload::{self, Scale, MAX_SCALE};

/// SQLite's tool/speedtest.tcl (1000 INSERTs, 25000 INSERTs in a transaction,
/// 100 SELECTs without an index, 100 SELECTs on a string comparison), run
/// against the pagelog VFS and stock SQLite journal modes side by side.
/// The defaults take about 2.5 minutes (release build, 2 cores, SSD);
/// `--runs 1` about a fifth of that.
#[derive(Parser, Debug)]
#[command(name = "speedtest", version)]
struct Cli {
    /// Configurations to compare, comma-separated, in column order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Config::ALL.to_vec())]
    configs: Vec<Config>,

    /// Repetitions of every configuration (interleaved round-robin).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,

    /// Multiply the row counts (1000 / 25000 / 3000 rows) by F, 0 < F <= 100.
    #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = parse_scale)]
    scale: f64,

    /// Also run speedtest.tcl's tests 5-15 (indexes, indexed SELECTs,
    /// UPDATEs, INSERT…SELECT, DELETEs, DROP TABLE).
    #[arg(long)]
    all_tests: bool,

    /// Directory for the database files (created if missing; our own
    /// speedtest-*.db files in it are overwritten and kept). Default: a
    /// fresh directory under ./target/ (else $TMPDIR or /tmp), removed at the end.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Keep the default temporary directory instead of removing it.
    #[arg(long)]
    keep: bool,

    /// Run the SQL through the stock `sqlite3` shell, one process per test,
    /// as speedtest.tcl did, instead of rusqlite's bundled SQLite in-process.
    #[arg(long)]
    shell: bool,

    /// The sqlite3 shell to use with --shell (and by --suite scale's `open` part).
    #[arg(long, value_name = "PATH", default_value = "sqlite3")]
    sqlite3: PathBuf,

    /// The pagelog loadable extension, for pagelog configurations with --shell
    /// (and for --suite scale's `open` part).
    #[arg(long, value_name = "PATH", default_value = "target/release/libpagelog.so")]
    extension: PathBuf,

    /// Write every sample as JSON to FILE ("-": stdout, tables then go to
    /// stderr), and a chart of the per-test times beside it (FILE with
    /// `.svg` in place of `.json`) unless --chart says otherwise.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Write a chart of the per-test times (SVG) to FILE [default: beside
    /// the --json FILE].
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,

    /// Do not count test 1's fsyncs under strace.
    #[arg(long)]
    no_fsync_probe: bool,

    /// Do not run `sync` before each test.
    #[arg(long)]
    no_sync: bool,

    /// Sleep this many milliseconds before each test (speedtest.tcl: 1000).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pause_ms: u64,

    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,

    /// Internal: run test 1 of CONFIG between strace markers (see probe.rs).
    #[arg(long, hide = true, value_enum, value_name = "CONFIG")]
    probe_child: Option<Config>,

    /// Which benchmark: `main` (speedtest.tcl's tests, the flags above) or
    /// `scale` (a large database and a long history; see README).
    #[arg(long, value_enum, default_value_t = Suite::Main)]
    suite: Suite,

    /// --suite scale: database size to build, e.g. 64MiB, 1GiB [default: 1GiB].
    #[arg(long, value_name = "SIZE", value_parser = scale::parse_size)]
    scale_size: Option<u64>,

    /// --suite scale: history length for the long-history measurements,
    /// compared with 100 versions [default: 100000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(scale::FEW_VERSIONS + 1..))]
    scale_versions: Option<u64>,

    /// --suite scale: commits made by a connection each (open, one UPDATE,
    /// close: what one process of the shell or a cron job does) on a copy of
    /// the one-transaction database, before its open is timed [default: 10000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    scale_processes: Option<u64>,

    #[command(flatten)]
    suites: suite_flags::SuiteFlags,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Suite {
    Main,
    Scale,
    /// Readers and writers as separate processes (issue 23).
    Concurrency,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Main => "main",
            Suite::Scale => "scale",
            Suite::Concurrency => "concurrency",
        }
    }
}

/// Flags that only one suite reads; giving one to another is an error.
/// (`--sqlite3` and `--extension` serve the main and scale suites, `--runs`
/// the main and concurrency suites, `--quick` scale and concurrency.)
const MAIN_ONLY: [&str; 9] =
    ["configs", "runs", "scale", "all_tests", "shell", "no_fsync_probe", "no_sync", "pause_ms", "chart"];
use suite_flags::{CONCURRENCY_ONLY, SCALE_ONLY};

fn foreign_flags(suite: Suite) -> Vec<&'static str> {
    let (main, scale, conc) = (MAIN_ONLY.iter(), SCALE_ONLY.iter(), CONCURRENCY_ONLY.iter());
    match suite {
        Suite::Main => scale.chain(conc).chain(&["quick"]).copied().collect(),
        Suite::Scale => main.chain(conc).copied().collect(),
        Suite::Concurrency => {
            main.filter(|f| **f != "runs").chain(scale).chain(&["sqlite3", "extension"]).copied().collect()
        }
    }
}

fn parse_scale(s: &str) -> Result<f64, String> {
    let f: f64 = s.trim().parse().map_err(|_| format!("not a number (expected 0 < F <= {MAX_SCALE})"))?;
    Scale::new(f).map(|sc| sc.factor)
}

fn main() -> ExitCode {
    // proc_cost.rs's helper, before anything else touches memory.
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == "--cost-child") {
        return ExitCode::from(speedtest::proc_cost::cost_child_main(args) as u8);
    }
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let check = || check_suite_flags(&matches, cli.suite.name(), &foreign_flags(cli.suite));
    let runs_given = matches.value_source("runs") == Some(ValueSource::CommandLine);
    let result = match (&cli.suites.worker, cli.suite) {
        (Some(spec), _) => speedtest::worker::Spec::decode(spec).and_then(|s| speedtest::worker::run_worker(&s)),
        (None, Suite::Main) => check().and_then(|()| run(cli)),
        (None, Suite::Scale) => check().and_then(|()| run_scale(cli)),
        (None, Suite::Concurrency) => check().and_then(|()| run_concurrency(cli, runs_given)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("speedtest: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_suite_flags(m: &ArgMatches, suite: &str, foreign: &[&str]) -> Result<(), String> {
    match foreign.iter().find(|id| m.value_source(id) == Some(ValueSource::CommandLine)) {
        Some(id) => Err(format!("--{} does not apply to --suite {suite}", id.replace('_', "-"))),
        None => Ok(()),
    }
}

fn register_pagelog(configs: &[Config]) -> Result<(), String> {
    let names: Vec<&str> = configs.iter().filter(|c| c.is_pagelog()).map(|c| c.name()).collect();
    if names.is_empty() {
        return Ok(());
    }
    pagelog::register().map_err(|e| {
        format!(
            "cannot register the pagelog VFS needed by {}: {e} \
             (to compare stock SQLite only: --configs delete-full,wal-full,wal-normal)",
            names.join(", ")
        )
    })
}

/// A fresh directory under ./target, else $TMPDIR, else /tmp.
fn fresh_temp_dir() -> Result<PathBuf, String> {
    let parent = if Path::new("target").is_dir() {
        PathBuf::from("target")
    } else {
        std::env::var_os("TMPDIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"))
    };
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let dir = parent.join(format!("speedtest-{secs}-{}", std::process::id()));
    fs::create_dir(&dir).map_err(|e| format!("create directory {}: {e}", dir.display()))?;
    Ok(dir)
}

fn shell_version(sqlite3: &Path) -> Result<String, String> {
    let out = Command::new(sqlite3)
        .arg("-version")
        .output()
        .map_err(|e| format!("--shell: cannot run {}: {e}", sqlite3.display()))?;
    if !out.status.success() {
        return Err(format!("--shell: `{} -version` failed: {}", sqlite3.display(), out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// `--dir`, or a fresh temporary directory (then `true`); canonical, with
/// its filesystem (warned about when it is memory).
fn work_dir(cli: &Cli) -> Result<(PathBuf, bool, Option<Filesystem>), String> {
    let (dir, temporary) = match &cli.dir {
        Some(d) => {
            fs::create_dir_all(d).map_err(|e| format!("create directory {}: {e}", d.display()))?;
            (d.clone(), false)
        }
        None => (fresh_temp_dir()?, true),
    };
    let dir = fs::canonicalize(&dir).map_err(|e| format!("directory {}: {e}", dir.display()))?;
    let filesystem = filesystem_of(&dir);
    if let Some(f) = filesystem.as_ref().filter(|f| f.is_memory()) {
        eprintln!(
            "speedtest: warning: {} is on {} (memory): fsync costs nothing there, \
             the numbers will not reflect a disk",
            dir.display(),
            f.fstype
        );
    }
    Ok((dir, temporary, filesystem))
}

/// Prints `table` on stdout and writes `json` to `--json` (to stdout with
/// `-`, the table then going to stderr).
fn emit(cli: &Cli, table: &str, json: impl FnOnce() -> serde_json::Value) -> Result<(), String> {
    let json_to_stdout = cli.json.as_deref() == Some(Path::new("-"));
    if json_to_stdout {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    if let Some(p) = &cli.json {
        let text = serde_json::to_string_pretty(&json()).map_err(|e| format!("encode JSON: {e}"))?;
        if json_to_stdout {
            println!("{text}");
        } else {
            fs::write(p, text + "\n").map_err(|e| format!("write {}: {e}", p.display()))?;
        }
    }
    Ok(())
}

/// `--suite scale`: see scale_suite.rs.
fn run_scale(cli: Cli) -> Result<(), String> {
    pagelog::register().map_err(|e| format!("cannot register the pagelog VFS: {e}"))?;
    let f = &cli.suites;
    let parts = f.parts();
    let extension = if parts.open || parts.open4 {
        fs::canonicalize(&cli.extension).map_err(|e| {
            format!(
                "--extension {}: {e} (build it with `cargo build --release -p pagelog`, \
                 or leave `open` out of --parts)",
                cli.extension.display()
            )
        })?
    } else {
        cli.extension.clone()
    };
    let (dir, temporary, _) = work_dir(&cli)?;
    let opts = scale::ScaleOpts {
        dir: dir.clone(),
        size: f.pick(cli.scale_size, 64 << 20, scale::DEFAULT_SIZE),
        versions: f.pick(cli.scale_versions, 1000, scale::DEFAULT_VERSIONS),
        processes: f.pick(cli.scale_processes, 100, scale::DEFAULT_PROCESSES),
        parts,
        pairs: f.pick(f.pairs, 21, 21) as usize,
        version_age: f.pick(f.version_age, 500, 5000),
        growth_commits: f.pick(f.growth_commits, 2000, 500_000),
        growth_sample: f.pick(f.growth_sample, 500, 10_000),
        retain: f.retain.clone(),
        open4_skip_format3: f.open4_skip_format3,
        sqlite3: cli.sqlite3.clone(),
        extension,
    };
    let exe = scale_suite::current_exe()?;
    let quiet = cli.quiet;
    let t0 = Instant::now();
    let progress = |msg: String| {
        if !quiet {
            eprintln!("[{:6.1} s] {msg}", t0.elapsed().as_secs_f64());
        }
    };
    let report =
        scale_suite::run(&opts, &exe, &progress).map_err(|e| format!("{e}\n(the files are in {})", dir.display()))?;
    emit(&cli, &report.render(), || report.to_json())?;
    if temporary && !cli.keep {
        fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    } else {
        progress(format!("speedtest: files kept in {}", dir.display()));
    }
    Ok(())
}

/// `--suite concurrency`: see concurrency.rs.
fn run_concurrency(cli: Cli, runs_given: bool) -> Result<(), String> {
    pagelog::register().map_err(|e| format!("cannot register the pagelog VFS: {e}"))?;
    let f = &cli.suites;
    let (dir, temporary, _) = work_dir(&cli)?;
    let opts = concurrency::ConcOpts {
        dir: dir.clone(),
        rounds: if runs_given { cli.runs } else { f.pick(None, 2, 5) },
        round_secs: f.pick(f.round_secs, 0.5, 3.0),
        only: f.workloads.clone(),
        exe: scale_suite::current_exe()?,
    };
    let quiet = cli.quiet;
    let t0 = Instant::now();
    let progress = |msg: String| {
        if !quiet {
            eprintln!("[{:6.1} s] {msg}", t0.elapsed().as_secs_f64());
        }
    };
    let (table, json) =
        concurrency::run(&opts, &progress).map_err(|e| format!("{e}\n(the files are in {})", dir.display()))?;
    emit(&cli, &table, || json)?;
    if temporary && !cli.keep {
        fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// `--chart`, else the `--json` file with `.svg` (none for `--json -`).
fn chart_path(cli: &Cli) -> Option<PathBuf> {
    cli.chart.clone().or_else(|| cli.json.as_ref().filter(|p| p.as_os_str() != "-").map(|p| p.with_extension("svg")))
}

/// Whether the run is the one the "about 2.5 minutes" was measured on.
fn is_default_workload(cli: &Cli) -> bool {
    cli.runs == 5 && cli.scale == 1.0 && !cli.all_tests && !cli.shell && cli.configs.len() == Config::ALL.len()
}

/// "40 s", "2.5 min".
fn fmt_duration(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.0} s")
    } else {
        format!("{:.1} min", secs / 60.0)
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let scale = Scale::new(cli.scale)?;

    if let Some(cfg) = cli.probe_child {
        let dir = cli.dir.ok_or_else(|| "--probe-child needs --dir".to_string())?;
        register_pagelog(&[cfg])?;
        let w = workload::generate(scale, false);
        return probe::run_probe_child(cfg, &w, &dir);
    }

    let mut configs: Vec<Config> = Vec::new();
    for c in &cli.configs {
        if configs.contains(c) {
            return Err(format!("--configs names {c} twice"));
        }
        configs.push(*c);
    }
    if configs.is_empty() {
        return Err("--configs is empty".into());
    }

    let (mode, sqlite_version, mode_detail) = if cli.shell {
        let version = shell_version(&cli.sqlite3)?;
        let mut extension = cli.extension.clone();
        if configs.iter().any(|c| c.is_pagelog()) {
            extension = fs::canonicalize(&cli.extension).map_err(|e| {
                format!(
                    "--extension {}: {e} (build it with `cargo build --release -p pagelog`, \
                     or leave pagelog out of --configs)",
                    cli.extension.display()
                )
            })?;
        }
        let detail = format!("{} shell, one process per test", cli.sqlite3.display());
        let sh = ShellOpts { sqlite3: cli.sqlite3.clone(), extension };
        (Mode::Shell(sh), version, detail)
    } else {
        register_pagelog(&configs)?;
        (Mode::InProcess, rusqlite::version().to_string(), "rusqlite bundled, in-process".to_string())
    };

    let (dir, temporary, filesystem) = work_dir(&cli)?;

    let w = workload::generate(scale, cli.all_tests);
    if let Mode::Shell(sh) = &mode {
        for &c in &configs {
            runner::write_shell_scripts(c, &w, &dir, sh)?;
        }
    }
    let opts = RunOpts {
        dir: dir.clone(),
        mode: mode.clone(),
        sync_before_test: !cli.no_sync,
        pause: Duration::from_millis(cli.pause_ms),
        filesystem: filesystem.clone(),
    };
    let progress = |msg: String| {
        if !cli.quiet {
            eprintln!("{msg}");
        }
    };
    progress(format!(
        "speedtest: {} configurations × {} runs, {} tests, in {}{}",
        configs.len(),
        cli.runs,
        w.tests.len(),
        dir.display(),
        if is_default_workload(&cli) {
            "; about 2.5 minutes (release build, 2 cores, SSD)".to_string()
        } else {
            "; how long it takes is estimated after the first round".to_string()
        }
    ));

    let started = Instant::now();
    let mut records = Vec::new();
    for run in 1..=cli.runs {
        if run == 2 {
            let round = started.elapsed().as_secs_f64();
            // The probe runs test 1 once more per configuration (under strace).
            let probe: f64 = if cli.no_fsync_probe {
                0.0
            } else {
                records.iter().filter_map(|r: &runner::RunRecord| r.tests.first().map(|t| t.seconds)).sum()
            };
            progress(format!(
                "round 1 took {round:.0} s: about {} to go ({} more round{}{})",
                fmt_duration(round * f64::from(cli.runs - 1) + probe),
                cli.runs - 1,
                if cli.runs == 2 { "" } else { "s" },
                if probe > 0.0 { ", then the fsync probe: test 1 once per configuration" } else { "" }
            ));
        }
        for &c in &configs {
            let t0 = Instant::now();
            let rec = runner::run_once(c, run, &w, &opts)
                .map_err(|e| format!("{e}\n(the files are in {})", dir.display()))?;
            let timed: f64 = rec.tests.iter().map(|t| t.seconds).sum();
            progress(format!(
                "run {run}/{} {c:<14} tests {timed:.3} s (wall {:.1} s)",
                cli.runs,
                t0.elapsed().as_secs_f64()
            ));
            records.push(rec);
        }
    }

    let mut probes = Vec::new();
    let strace = !cli.no_fsync_probe && probe::strace_available();
    for &c in &configs {
        let outcome = if cli.no_fsync_probe {
            ProbeOutcome::NotAvailable("--no-fsync-probe".into())
        } else if !strace {
            ProbeOutcome::NotAvailable("strace not found".into())
        } else {
            match probe::probe(c, &w, &dir, &mode) {
                Ok(s) => {
                    progress(format!(
                        "fsync probe {c:<14} {} fsync + {} fdatasync over {} commits",
                        s.fsync, s.fdatasync, s.commits
                    ));
                    ProbeOutcome::Counted(s)
                }
                Err(e) => {
                    eprintln!("speedtest: warning: {e}");
                    ProbeOutcome::NotAvailable("probe failed, see stderr".into())
                }
            }
        };
        probes.push((c, outcome));
    }

    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let report = Report {
        meta: Meta {
            sqlite_version,
            mode: if cli.shell { "shell" } else { "in-process" }.into(),
            mode_detail,
            dir: dir.clone(),
            filesystem,
            cpu: cpu_model(),
            date: iso8601_utc(now),
            runs: cli.runs,
            sync_before_test: !cli.no_sync,
            pause_ms: cli.pause_ms,
        },
        workload: &w,
        configs,
        records,
        probes,
    };

    emit(&cli, &report.render(), || report.to_json())?;
    if let Some(path) = chart_path(&cli) {
        let svg = speedtest::chart::svg(&report)?;
        fs::write(&path, svg).map_err(|e| format!("write {}: {e}", path.display()))?;
        progress(format!("speedtest: chart of the per-test times in {}", path.display()));
    }

    if temporary && !cli.keep {
        fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    } else {
        progress(format!("speedtest: files kept in {}", dir.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str]) -> Result<(), String> {
        let m = Cli::command().try_get_matches_from(args).map_err(|e| e.to_string())?;
        let cli = Cli::from_arg_matches(&m).map_err(|e| e.to_string())?;
        check_suite_flags(&m, cli.suite.name(), &foreign_flags(cli.suite))
    }

    #[test]
    fn each_suite_refuses_the_others_flags() {
        assert_eq!(check(&["speedtest", "--runs", "2", "--scale", "0.5"]), Ok(()));
        assert_eq!(
            check(&["speedtest", "--suite", "scale", "--scale-size", "64MiB", "--scale-versions", "500"]),
            Ok(())
        );
        assert_eq!(
            check(&["speedtest", "--suite", "scale", "--runs", "2"]),
            Err("--runs does not apply to --suite scale".into())
        );
        assert_eq!(
            check(&["speedtest", "--scale-size", "1GiB"]),
            Err("--scale-size does not apply to --suite main".into())
        );
        assert!(check(&["speedtest", "--suite", "scale", "--scale-versions", "100"]).is_err(), "must exceed 100");
        assert_eq!(check(&["speedtest", "--suite", "concurrency", "--runs", "3", "--quick"]), Ok(()));
        assert_eq!(
            check(&["speedtest", "--suite", "concurrency", "--pairs", "3"]),
            Err("--pairs does not apply to --suite concurrency".into())
        );
        assert_eq!(
            check(&["speedtest", "--suite", "scale", "--round-secs", "1"]),
            Err("--round-secs does not apply to --suite scale".into())
        );
        assert_eq!(check(&["speedtest", "--quick"]), Err("--quick does not apply to --suite main".into()));
    }
}
