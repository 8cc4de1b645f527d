//! What the replica subcommands share: connecting to `s3://BUCKET/PREFIX`,
//! turning replica errors into failures, durations, and `pagelog log` /
//! `pagelog info` of a bucket.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use pagelog_replica::{Catalog, Error, Location, Store};
use serde_json::json;

use crate::cli::{diag, size, CmdResult, Failure};
use crate::time::format_us;

/// True when a path argument is an `s3://` address.
pub fn is_s3(arg: &OsStr) -> bool {
    arg.as_bytes().starts_with(b"s3://")
}

/// A replica error as a failure of `what`.
pub fn fail(what: impl std::fmt::Display, e: Error) -> Failure {
    match e {
        Error::Log(le) => Failure::new(what, crate::cli::describe(&le)),
        other => Failure::new(what, other),
    }
}

/// Waits between passes of `replicate` and `follow` while the store is down
/// or unreachable past the request retries: 1 s, doubling up to 8 s, back
/// to 1 s after a pass that reached it. While it waits it probes the store
/// once a second with one cheap request, and ends the wait as soon as the
/// store answers: catching up after an outage does not wait for the
/// backoff to run out.
pub struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(8);
    const PROBE: Duration = Duration::from_secs(1);

    pub fn new() -> Backoff {
        Backoff(Self::FIRST)
    }

    /// A pass reached the store.
    pub fn reset(&mut self) {
        self.0 = Self::FIRST;
    }

    /// Says on stderr that `what` failed with `msg`, and waits (see above).
    pub fn wait(&mut self, what: &str, msg: &str, store: &Store) {
        diag!("pagelog: {what}: {msg}; retrying in {} s", self.0.as_secs());
        let until = std::time::Instant::now() + self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Self::PROBE));
            if store.probe().is_ok() {
                return;
            }
        }
    }
}

/// Connects to the store named by an `s3://` argument (credentials from the
/// environment).
pub fn connect(arg: &OsStr) -> Result<Store, Failure> {
    let s = arg.to_string_lossy();
    let loc = Location::parse(&s).map_err(|e| fail(&s, e))?;
    Store::from_env(loc).map_err(|e| fail(&s, e))
}

/// Parses `1s`, `500ms`, `2m`, `24h`, `7d` or plain seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?} (use e.g. 500ms, 1s, 2m, 24h, 7d)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("invalid duration {s:?}: unit {unit:?} (use ms, s, m, h or d)")),
    };
    if !secs.is_finite() || !(0.0..=1e10).contains(&secs) {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a byte count: `16777216`, `64k`, `16M`, `1G` (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_lowercase() {
                'k' => 1u64 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                _ => return Err(format!("invalid size {s:?} (use e.g. 65536, 64k, 16M, 1G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?} (use e.g. 65536, 64k, 16M, 1G)"))?;
    n.checked_mul(mul).filter(|&b| b >= 1).ok_or_else(|| format!("invalid size {s:?}"))
}

fn catalog(store: &Store) -> Result<Catalog, Failure> {
    // The store's error names the listing ("list BUCKET/PREFIX: …").
    pagelog_replica::catalog(store).map_err(|e| fail(&store.loc, e))
}

/// `pagelog log s3://…`: the segments of each generation, newest first.
pub fn log(arg: &OsStr, json_out: bool, limit: Option<usize>) -> CmdResult {
    let store = connect(arg)?;
    let cat = catalog(&store)?;
    if json_out {
        let mut rows = Vec::new();
        for g in cat.generations.iter().rev() {
            for s in g.segments.iter().rev() {
                rows.push(json!({
                    "generation": g.dir(),
                    "object": store.loc.key(&format!("{}/{}", g.dir(), s.name())),
                    "start": s.start,
                    "end": s.end,
                    "bytes": s.size,
                    "first_version": s.first,
                    "last_version": s.last,
                    "first_time": format_us(s.first_us, 6),
                    "last_time": format_us(s.last_us, 6),
                }));
            }
        }
        rows.truncate(limit.unwrap_or(usize::MAX));
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
        return Ok(0);
    }
    println!("{:>17}  {:<24}  {:>12}  {:>14}  generation", "versions", "last commit (UTC)", "bytes", "log offset");
    let mut shown = 0;
    'outer: for g in cat.generations.iter().rev() {
        for s in g.segments.iter().rev() {
            if limit.is_some_and(|l| shown >= l) {
                break 'outer;
            }
            println!(
                "{:>17}  {:<24}  {:>12}  {:>14}  {}",
                format!("{}..{}", s.first, s.last),
                format_us(s.last_us, 3),
                s.size,
                s.start,
                g.dir()
            );
            shown += 1;
        }
    }
    for f in &cat.foreign {
        diag!("pagelog: warning: {f} is not part of a pagelog replica");
    }
    for g in &cat.generations {
        let chain = g.chain(|s| store.loc.key(&format!("{}/{}", g.dir(), s.name())));
        if let Some(b) = &chain.broken {
            diag!("pagelog: warning: {}: {b}; versions up to {} restore", g.dir(), chain.last);
        }
        if chain.overlaps > 0 {
            diag!(
                "pagelog: note: {}: {} segment(s) overlap the ones before them (the same bytes shipped again \
                 after a lost answer); readers compare the shared bytes; `pagelog replicate --once` from the \
                 primary removes them",
                g.dir(),
                chain.overlaps
            );
        }
    }
    diag!("restore version N: pagelog restore {} out.db --version N", store.loc);
    Ok(0)
}

/// `pagelog info s3://…`: generations, versions, sizes and times.
pub fn info(arg: &OsStr, json_out: bool) -> CmdResult {
    let store = connect(arg)?;
    let cat = catalog(&store)?;
    let gens: Vec<_> = cat
        .generations
        .iter()
        .map(|g| {
            json!({
                "generation": g.dir(),
                "started": format_us(g.created_us, 6),
                "salt": format!("{:016x}", g.salt),
                "segments": g.segments.len(),
                "bytes": g.bytes(),
                "first_version": g.first_version(),
                "last_version": g.last_version(),
                "first_time": g.segments.first().map(|s| format_us(s.first_us, 6)),
                "last_time": g.segments.last().map(|s| format_us(s.last_us, 6)),
                "complete": g.check_chain(|s| s.name()).is_ok(),
                "overlapping_segments": g.chain(|s| s.name()).overlaps,
                "restorable_up_to": g.chain(|s| s.name()).last,
            })
        })
        .collect();
    if json_out {
        let v = json!({
            "location": store.loc.to_string(),
            "generations": gens,
            "latest_version": cat.newest().map_or(0, |g| g.last_version()),
            "leases": cat.leases,
            "foreign_objects": cat.foreign,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(0);
    }
    let row = |k: &str, v: String| println!("{k:<14}{v}");
    row("location", store.loc.to_string());
    match cat.newest() {
        None => row("replica", "none (no generation)".into()),
        Some(n) => {
            row(
                "latest",
                format!("version {}  {}", n.last_version(), format_us(n.segments.last().map_or(0, |s| s.last_us), 3)),
            );
            row("generations", cat.generations.len().to_string());
        }
    }
    for g in cat.generations.iter().rev() {
        let chain = g.chain(|s| s.name());
        let broken = match (&chain.broken, chain.overlaps) {
            (Some(e), _) => format!(
                "\n{:14}INCOMPLETE: {e}; versions up to {} restore (`pagelog restore --version N`)",
                "", chain.last
            ),
            (None, 0) => String::new(),
            (None, n) => format!(
                "\n{:14}{n} segment(s) overlap the ones before them (the same bytes shipped again after a lost \
                 answer): readers compare the shared bytes and read one history; `pagelog replicate --once` \
                 from the primary removes them",
                ""
            ),
        };
        row(
            "generation",
            format!(
                "{}  versions {}..{}  {} segments  {} ({})  started {}{broken}",
                g.dir(),
                g.first_version(),
                g.last_version(),
                g.segments.len(),
                g.bytes(),
                size(g.bytes()),
                format_us(g.created_us, 3)
            ),
        );
    }
    if !cat.foreign.is_empty() {
        row("foreign", format!("{} object(s) not part of a replica: {}", cat.foreign.len(), cat.foreign.join(", ")));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse_with_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_bytes("64k").unwrap(), 65536);
        assert_eq!(parse_bytes("16M").unwrap(), 16 << 20);
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("12q").is_err());
    }
}
