//! `pagelog follow s3://BUCKET/PREFIX REPLICA`: a local read-only replica
//! kept current (crate `pagelog-replica`, `fetch.rs`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pagelog::EscapedName;
use pagelog_replica::fetch::Follower;
use pagelog_replica::{now_us, Error};
use serde_json::json;

use crate::cli::CmdResult;
use crate::remote::{connect, fail, parse_duration, Backoff};

/// Keep a local read-only replica of a replicated log current.
///
/// Creates REPLICA from the newest replicated version if it does not exist,
/// then appends new segments as they appear (each checked, written and
/// synced), so that processes reading REPLICA through pagelog see new
/// versions at their next transaction. While it runs, it holds REPLICA's
/// write lock: open the replica with ?mode=ro (local writes get SQLITE_BUSY).
#[derive(clap::Args)]
pub struct Args {
    /// Where from: s3://BUCKET/PREFIX
    src: OsString,
    /// The local replica (a pagelog log)
    replica: PathBuf,
    /// How often to look for new segments
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// Catch up once, then exit
    #[arg(long)]
    once: bool,
    /// Print one JSON object per line
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> CmdResult {
    let store = connect(&a.src)?;
    let what = format!("follow {} into {}", store.loc, a.replica.escaped());
    let mut f = Follower::new(store, &a.replica);
    let mut shown = None;
    let mut backoff = Backoff::new();
    loop {
        let started = Instant::now();
        match f.pass() {
            Ok(s) => {
                backoff.reset();
                if shown != Some(s.version) || a.once {
                    let lag = now_us().saturating_sub(s.timestamp_us) as f64 / 1e6;
                    if a.json {
                        let v = json!({"version": s.version, "generation": s.generation, "segments": s.segments,
                            "bytes": s.bytes, "rebuilt": s.rebuilt, "since_commit_seconds": lag});
                        println!("{v}");
                    } else {
                        println!(
                            "replica at version {} ({} s after its commit)",
                            s.version,
                            (lag * 10.0).round() / 10.0
                        );
                    }
                    shown = Some(s.version);
                }
                if a.once {
                    return Ok(0);
                }
            }
            Err(Error::Store(msg)) if !a.once => {
                backoff.wait(&what, &msg, f.store());
                continue;
            }
            Err(e) => return Err(fail(&what, e)),
        }
        if let Some(rest) = a.interval.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}
