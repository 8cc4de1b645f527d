//! Worker processes: the speedtest binary re-executed with the hidden
//! `--worker SPEC` flag becomes one reader or writer on one database, so
//! that benchmarks can run readers and writers as separate processes
//! (issues 20 and 23) with a start and stop they control.
//!
//! Protocol, one line each way at a time: the worker opens the database,
//! warms up (readers: 1000 untimed reads), prints `ready`; the parent
//! writes `go`; the worker runs operations until the parent writes another
//! line or closes its stdin, then prints one JSON line: `ops`, `secs` (from
//! go to stop), `busy` (operations that failed with SQLITE_BUSY and were
//! not counted in `ops`), `lat` (a [`Histogram`] of the counted operations).
//! Any other SQLite error ends the worker with status 1 and the error on
//! stderr; the parent reports it.
//!
//! SPEC is `key=value` pairs joined by `;`, the database path last (it may
//! hold `;`): `role=reader;config=wal-full;rows=10000;bytes=100;seed=1;busy_ms=10000;db=PATH`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use rusqlite::ErrorCode;
use serde_json::{json, Value};

use crate::config::Config;
use crate::latency::Histogram;
use crate::runner::{self, exec_statement};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `SELECT v FROM t WHERE id = ?`, random id, each its own transaction.
    Reader,
    /// `UPDATE t SET v = randomblob(bytes) WHERE id = ?`, autocommit.
    Writer,
}

/// One worker's job.
#[derive(Clone, Debug)]
pub struct Spec {
    pub role: Role,
    pub config: Config,
    pub rows: i64,
    /// Blob size the writer writes.
    pub bytes: u32,
    pub seed: u64,
    pub busy_ms: u32,
    pub db: PathBuf,
}

impl Spec {
    pub fn encode(&self) -> String {
        let role = if self.role == Role::Reader { "reader" } else { "writer" };
        format!(
            "role={role};config={};rows={};bytes={};seed={};busy_ms={};db={}",
            self.config.name(),
            self.rows,
            self.bytes,
            self.seed,
            self.busy_ms,
            self.db.display()
        )
    }

    pub fn decode(s: &str) -> Result<Spec, String> {
        let (head, db) = s.split_once(";db=").ok_or("worker spec without db=")?;
        let mut spec =
            Spec { role: Role::Reader, config: Config::WalFull, rows: 0, bytes: 0, seed: 0, busy_ms: 0, db: db.into() };
        for kv in head.split(';') {
            let (k, v) = kv.split_once('=').ok_or_else(|| format!("worker spec: {kv:?} is not key=value"))?;
            let num = || v.parse::<u64>().map_err(|_| format!("worker spec: {k}={v:?} is not a number"));
            match k {
                "role" if v == "reader" => spec.role = Role::Reader,
                "role" if v == "writer" => spec.role = Role::Writer,
                "config" => spec.config = Config::from_str(v, false)?,
                "rows" => spec.rows = num()? as i64,
                "bytes" => spec.bytes = num()? as u32,
                "seed" => spec.seed = num()?,
                "busy_ms" => spec.busy_ms = num()? as u32,
                _ => return Err(format!("worker spec: unknown {kv:?}")),
            }
        }
        if spec.rows < 1 {
            return Err("worker spec: rows must be at least 1".into());
        }
        Ok(spec)
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// The worker's side: runs `spec` under the protocol above, on stdin/stdout.
pub fn run_worker(spec: &Spec) -> Result<(), String> {
    let cfg = spec.config;
    if cfg.is_pagelog() {
        pagelog::register().map_err(|e| format!("register pagelog: {e}"))?;
    }
    let conn = runner::open(cfg, &spec.db)?;
    exec_statement(&conn, &cfg.per_connection_sql()).map_err(|e| format!("{cfg}: {e}"))?;
    conn.busy_timeout(Duration::from_millis(spec.busy_ms as u64)).map_err(|e| format!("{cfg}: busy_timeout: {e}"))?;
    let sql = match spec.role {
        Role::Reader => "SELECT length(v) FROM t WHERE id = ?1".to_string(),
        Role::Writer => format!("UPDATE t SET v = randomblob({}) WHERE id = ?1", spec.bytes),
    };
    let mut stmt = conn.prepare(&sql).map_err(|e| format!("{cfg}: {e}"))?;
    let mut state = spec.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut op = || -> rusqlite::Result<()> {
        let id = (pagelog::format::splitmix64(&mut state) % spec.rows as u64) as i64 + 1;
        match spec.role {
            Role::Reader => stmt.query_row([id], |r| r.get::<_, i64>(0)).map(drop),
            Role::Writer => stmt.execute([id]).map(drop),
        }
    };
    if spec.role == Role::Reader {
        for _ in 0..1000 {
            op().map_err(|e| format!("{cfg}: warm-up read: {e}"))?;
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").and_then(|()| out.flush()).map_err(|e| format!("stdout: {e}"))?;
    // The stdin lock is released before the stop thread takes it.
    let go = std::io::stdin().lock().lines().next();
    match go {
        Some(Ok(l)) if l == "go" => {}
        _ => return Ok(()), // the parent gave up before starting
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::stdin().lock().lines().next();
        flag.store(true, Ordering::Relaxed);
    });
    let (mut hist, mut busy) = (Histogram::default(), 0u64);
    // pagelog's own count of its fdatasyncs in this process (0 for stock).
    let syncs0 = pagelog::sync_count();
    let t0 = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        match op() {
            Ok(()) => hist.record(t.elapsed()),
            Err(e) if is_busy(&e) => busy += 1,
            Err(e) => return Err(format!("{cfg} {:?}: {e}", spec.role)),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let syncs = pagelog::sync_count() - syncs0;
    let line = json!({ "ops": hist.n, "secs": secs, "busy": busy, "syncs": syncs, "lat": hist.to_json() });
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|e| format!("stdout: {e}"))
}

/// What one worker reported.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub ops: u64,
    pub secs: f64,
    pub busy: u64,
    /// Log syncs pagelog made in the worker's process while it ran (0 for
    /// stock SQLite, whose syncs are not counted).
    pub syncs: u64,
    pub lat: Histogram,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// The parent's handle on one worker process.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    what: String,
}

impl Worker {
    /// Starts `exe --worker SPEC` and waits for its `ready`.
    pub fn start(exe: &Path, spec: &Spec) -> Result<Worker, String> {
        let what = format!("{:?} worker on {}", spec.role, spec.config);
        let mut child = Command::new(exe)
            .arg("--worker")
            .arg(spec.encode())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start {what}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout pipe")?);
        let mut w = Worker { child, stdin, stdout, what };
        match w.line()?.as_str() {
            "ready" => Ok(w),
            other => Err(w.failed(&format!("expected `ready`, got {other:?}"))),
        }
    }

    fn line(&mut self) -> Result<String, String> {
        let mut s = String::new();
        self.stdout.read_line(&mut s).map_err(|e| format!("{}: read: {e}", self.what))?;
        if s.is_empty() {
            return Err(self.failed("exited early"));
        }
        Ok(s.trim_end().to_string())
    }

    /// The worker's stderr and status, after it ended.
    fn failed(&mut self, msg: &str) -> String {
        drop(self.stdin.take());
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        format!("{}: {msg} ({status}): {}", self.what, err.trim())
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        let w = self.stdin.as_mut().ok_or("stdin closed")?;
        match writeln!(w, "{line}").and_then(|()| w.flush()) {
            Ok(()) => Ok(()),
            // A worker that is gone said why on its stderr.
            Err(e) => Err(self.failed(&format!("write: {e}"))),
        }
    }

    pub fn go(&mut self) -> Result<(), String> {
        self.send("go")
    }

    /// Tells the worker to stop; [`Worker::finish`] collects its report.
    /// (Stopping every worker first, then collecting, keeps one that waits
    /// on a lock from delaying the others' stop.)
    pub fn signal_stop(&mut self) -> Result<(), String> {
        self.send("stop")
    }

    /// Tells the worker to stop and returns what it reported.
    pub fn stop(mut self) -> Result<Outcome, String> {
        self.signal_stop()?;
        self.finish()
    }

    /// Waits for the report of a worker told to stop.
    pub fn finish(mut self) -> Result<Outcome, String> {
        let line = self.line()?;
        let v: Value = serde_json::from_str(&line).map_err(|e| self.failed(&format!("bad report {line:?}: {e}")))?;
        let _ = self.child.wait();
        let num = |k: &str| v[k].as_u64().ok_or_else(|| format!("report without {k}: {line}"));
        Ok(Outcome {
            ops: num("ops")?,
            busy: num("busy")?,
            syncs: v["syncs"].as_u64().unwrap_or(0),
            secs: v["secs"].as_f64().ok_or("report without secs")?,
            lat: Histogram::from_json(&v["lat"])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_with_odd_paths() {
        let s = Spec {
            role: Role::Writer,
            config: Config::PagelogNormal,
            rows: 10_000,
            bytes: 100,
            seed: 7,
            busy_ms: 5000,
            db: PathBuf::from("/a;b=c/x.db"),
        };
        let d = Spec::decode(&s.encode()).unwrap();
        assert_eq!(
            (d.role, d.config, d.rows, d.bytes, d.seed, d.busy_ms),
            (Role::Writer, s.config, 10_000, 100, 7, 5000)
        );
        assert_eq!(d.db, s.db);
        assert!(Spec::decode("role=reader;rows=1").is_err());
        assert!(Spec::decode("role=x;rows=1;db=/a").is_err());
    }
}
