//! `pagelog replicate DB s3://BUCKET/PREFIX`: ships the log's durable,
//! checked commits to object storage (crate `pagelog-replica`, `ship.rs`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pagelog::EscapedName;
use pagelog_replica::ship::{Options, Replicator, Status};
use pagelog_replica::Error;
use serde_json::json;

use crate::cli::{plural, size, CmdResult};
use crate::remote::{connect, fail, parse_bytes, parse_duration, Backoff};

/// Replicate a log to S3-compatible object storage, continuously.
///
/// Ships the log's committed, durable bytes as immutable objects cut at
/// commit boundaries, every record and frame checked first; resumes where
/// the bucket ends. Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
/// AWS_ENDPOINT_URL, AWS_REGION. Prints the replicated version and the lag
/// (a progress line on a terminal, a line per change otherwise, JSON lines
/// with --json). Runs until stopped, or with --once until what is durable
/// now is shipped.
#[derive(clap::Args)]
pub struct Args {
    /// The pagelog database (log file)
    db: PathBuf,
    /// Where to: s3://BUCKET/PREFIX
    dest: std::ffi::OsString,
    /// Ship what is durable now, then exit
    #[arg(long)]
    once: bool,
    /// How often to look for new commits
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// Cut a segment once it holds this many bytes (at the next commit boundary)
    #[arg(long, value_name = "BYTES", default_value = "16M", value_parser = parse_bytes)]
    max_segment: u64,
    /// Delete generations replaced (by a compaction) longer ago than DURATION
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    retain: Option<Duration>,
    /// Print one JSON object per line
    #[arg(long)]
    json: bool,
}

fn report(s: &Status, json_out: bool, terminal: bool, last: bool) {
    if json_out {
        let v = json!({
            "version": s.version,
            "latest": s.latest,
            "lag_versions": s.latest.saturating_sub(s.version),
            "lag_bytes": s.lag_bytes,
            "lag_seconds": s.lag_us as f64 / 1e6,
            "generation": s.generation,
            "segments_uploaded": s.segments,
            "bytes_uploaded": s.bytes,
            "retries": s.retries,
            "overlapping_removed": s.removed,
        });
        println!("{v}");
        return;
    }
    let mut line = format!(
        "replicated version {} of {} (lag {}, {}, {:.1} s); uploaded {}, {}",
        s.version,
        s.latest,
        plural(s.latest.saturating_sub(s.version), "version"),
        size(s.lag_bytes),
        s.lag_us as f64 / 1e6,
        plural(s.segments, "segment"),
        size(s.bytes)
    );
    if s.removed > 0 {
        line += &format!("; removed {} whose bytes it had compared", plural(s.removed, "overlapping segment"));
    }
    if terminal {
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\r{line}\x1b[K");
        if last {
            let _ = writeln!(e);
        }
        let _ = e.flush();
    } else {
        println!("{line}");
    }
}

pub fn run(a: Args) -> CmdResult {
    let store = connect(&a.dest)?;
    let what = format!("replicate {} to {}", a.db.escaped(), store.loc);
    let opts =
        Options { max_segment: a.max_segment, retain_us: a.retain.map(|d| d.as_micros() as u64), ..Default::default() };
    let mut r = Replicator::new(store, &a.db, opts);
    let terminal = std::io::stderr().is_terminal() && !a.json;
    if terminal {
        // A long catch-up (a large log's first upload) shows each segment.
        r.on_segment(Box::new(|s: &Status| {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\rreplicating: version {} shipped, {} uploaded\x1b[K", s.version, size(s.bytes));
            let _ = e.flush();
        }));
    }
    let mut shown: Option<(u64, u64)> = None;
    let mut backoff = Backoff::new();
    loop {
        let started = Instant::now();
        match r.pass() {
            Ok(s) => {
                backoff.reset();
                if a.once {
                    report(&s, a.json, terminal, true);
                    return Ok(0);
                }
                if shown != Some((s.version, s.latest)) || terminal {
                    report(&s, a.json, terminal, false);
                    shown = Some((s.version, s.latest));
                }
            }
            // The store is down or unreachable past the request retries:
            // keep trying (the log keeps growing; nothing is lost).
            Err(Error::Store(msg)) if !a.once => {
                backoff.wait(&what, &msg, r.store());
                continue;
            }
            Err(e) => return Err(fail(&what, e)),
        }
        if let Some(rest) = a.interval.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}
