//! Power loss through the whole stack: SQLite (rusqlite's bundled copy)
//! writes through the pagelog VFS, whose log does its I/O through a
//! [`SimDisk`] (`common/mod.rs`: unsynced writes kept, dropped or torn at
//! 512-byte sectors, in any order) registered with
//! `pagelog::registry::set_io_hook`.
//!
//! # Workloads
//! One per seed, on a new database: a page size of 512 to 65536 bytes,
//! `synchronous=FULL` (three seeds in four) or `NORMAL`, `mmap_size` set on
//! every third seed, a small page cache and a 64 KiB spill limit. Then 30
//! steps drawn from: autocommit inserts, transactions big enough to spill,
//! transactions rolled back after spilling, savepoints rolled back to,
//! updates and deletes, VACUUMs that change the page size, reverts to a
//! random older version (`Log::revert`, as `pagelog revert` does, while the
//! connection stays open), and transactions that change nothing.
//!
//! # Checks, after a power failure following *every* disk operation k
//! The crashed image is written to a file and opened through the VFS
//! (real I/O), then:
//! 1. `PRAGMA integrity_check` is `ok`;
//! 2. `PRAGMA pagelog_version` and the table's contents are exactly those of
//!    one committed version (the model records both after each commit);
//! 3. that version is no older than the newest commit made durable before
//!    the failure (every commit that had returned, under FULL; under NORMAL,
//!    every commit followed by a sync) and no newer than the commit in
//!    flight at k;
//! 4. one older version, chosen at random among those durable, opened in
//!    place (`?version=N`), holds exactly its recorded contents;
//! 5. the next write transaction commits, as the next version;
//! 6. power fails again right after it returned (only what was synced
//!    survives): the database reopens at that version, with its row, and
//!    passes `integrity_check`.
//!
//! Each point gets one random image by default (a tenth of them take the
//! extremes: everything unsynced reached the disk, or none of it); with
//! `PAGELOG_LONG=1`, ten times the seeds and three images a point.
//! `PAGELOG_CRASH_SEED=N` runs seed N only.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{long_mode, Dir, Op, Rng, SimDisk};
use pagelog::storage::LogFile;
use rusqlite::{Connection, OpenFlags};

const PAGE_SIZES: [u32; 6] = [512, 1024, 4096, 8192, 16384, 65536];
const STEPS: usize = 30;

/// One committed version, as the workload saw it.
#[derive(Clone, Debug)]
struct Commit {
    /// Disk operations completed when the commit returned.
    ops: usize,
    version: u64,
    contents: String,
}

#[derive(Default)]
struct Stats {
    seeds: u64,
    ops: u64,
    points: u64,
    images: u64,
    /// Images whose version was older than the newest commit made before
    /// the failure (unsynced commits lost, as allowed).
    lost_unsynced: u64,
    older_versions_checked: u64,
    steps: std::collections::BTreeMap<&'static str, u64>,
}

fn flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_URI
}

/// The table's contents as one string ("" before the table exists): row
/// count, sums, and two bytes from the middle of every blob, in rowid order.
fn contents(c: &Connection) -> rusqlite::Result<String> {
    let has_t: i64 = c.query_row("SELECT count(*) FROM sqlite_master WHERE name = 't'", [], |r| r.get(0))?;
    if has_t == 0 {
        return Ok(String::new());
    }
    c.query_row(
        "SELECT count(*) || ':' || ifnull(sum(k), 0) || ':' || ifnull(sum(length(v)), 0) || ':' || \
         ifnull(group_concat(hex(substr(v, 1 + length(v) / 2, 2)), ''), '') \
         FROM (SELECT k, v FROM t ORDER BY rowid)",
        [],
        |r| r.get(0),
    )
}

fn version(c: &Connection) -> u64 {
    let s: String = c.query_row("PRAGMA pagelog_version", [], |r| r.get(0)).unwrap();
    s.parse().unwrap()
}

struct Run {
    disk: Arc<SimDisk>,
    commits: Vec<Commit>,
    steps: Vec<String>,
    synchronous: &'static str,
}

/// Runs the workload of `seed` on a new database at `path`.
fn run_workload(path: &Path, seed: u64, stats: &mut Stats) -> Run {
    let disk = SimDisk::create(path, &[]);
    pagelog::registry::set_io_hook(path, Some(disk.clone() as Arc<dyn LogFile>));
    let mut rng = Rng::new(1000 + seed);
    let mut ps = PAGE_SIZES[(seed % PAGE_SIZES.len() as u64) as usize];
    let synchronous = if seed / 2 % 4 == 1 { "NORMAL" } else { "FULL" };
    let mmap = if seed % 3 == 0 { 1 << 24 } else { 0 };
    let mut commits = vec![Commit { ops: 0, version: 0, contents: String::new() }];
    let mut steps = vec![format!("page_size {ps}, synchronous {synchronous}, mmap_size {mmap}")];
    let c = Connection::open_with_flags_and_vfs(path, flags(), "pagelog").unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size = {ps}; PRAGMA synchronous = {synchronous}; PRAGMA mmap_size = {mmap};
         PRAGMA cache_size = 10; PRAGMA pagelog_spill_limit = 65536"
    ))
    .unwrap();
    let record = |c: &Connection, commits: &mut Vec<Commit>| {
        let v = version(c);
        if v != commits.last().unwrap().version {
            commits.push(Commit { ops: disk.op_count(), version: v, contents: contents(c).unwrap() });
        }
    };
    for sql in ["CREATE TABLE t(k INTEGER, v BLOB)", "CREATE INDEX t_k ON t(k)"] {
        c.execute_batch(sql).unwrap();
        record(&c, &mut commits);
    }
    let mut next_k = 1i64;
    let mut insert = |c: &Connection, n: usize, max_len: u64, rng: &mut Rng| {
        for _ in 0..n {
            c.execute("INSERT INTO t VALUES (?1, randomblob(?2))", [next_k, 1 + rng.below(max_len) as i64]).unwrap();
            next_k += 1;
        }
    };
    for _ in 0..STEPS {
        let before = commits.last().unwrap().version;
        let what: &'static str = match rng.below(100) {
            0..=29 => {
                insert(&c, 1, 3000, &mut rng);
                "insert"
            }
            30..=39 => {
                c.execute_batch("BEGIN").unwrap();
                insert(&c, 40 + rng.below(40) as usize, 2000, &mut rng);
                c.execute_batch("COMMIT").unwrap();
                "big transaction"
            }
            40..=46 => {
                c.execute_batch("BEGIN").unwrap();
                insert(&c, 60, 2000, &mut rng);
                c.execute_batch("UPDATE t SET v = randomblob(100) WHERE k % 2 = 0; ROLLBACK").unwrap();
                "rollback after spilling"
            }
            47..=53 => {
                c.execute_batch("BEGIN").unwrap();
                insert(&c, 2, 500, &mut rng);
                c.execute_batch("SAVEPOINT s").unwrap();
                insert(&c, 50, 2000, &mut rng);
                c.execute_batch("DELETE FROM t WHERE k % 5 = 0; ROLLBACK TO s; RELEASE s").unwrap();
                insert(&c, 1, 500, &mut rng);
                c.execute_batch("COMMIT").unwrap();
                "savepoint rolled back to"
            }
            54..=63 => {
                let m = 2 + rng.below(4) as i64;
                if rng.chance(1, 2) {
                    c.execute("DELETE FROM t WHERE k % ?1 = 0", [m]).unwrap();
                    "delete"
                } else {
                    c.execute("UPDATE t SET v = randomblob(length(v) / 2 + 1) WHERE k % ?1 = 1", [m]).unwrap();
                    "update"
                }
            }
            64..=71 => {
                ps = PAGE_SIZES[rng.below(PAGE_SIZES.len() as u64) as usize];
                c.execute_batch(&format!("PRAGMA page_size = {ps}; VACUUM")).unwrap();
                "vacuum"
            }
            72..=85 => {
                // A version that has the table (reverting to before it
                // would end the workload), other than the latest.
                let targets: Vec<&Commit> =
                    commits[..commits.len() - 1].iter().filter(|m| !m.contents.is_empty()).collect();
                if targets.is_empty() {
                    continue;
                }
                let target = targets[rng.below(targets.len() as u64) as usize];
                let target = target.clone();
                // Another program's `pagelog revert`, while this connection
                // stays open: its own Log on the same disk.
                let log =
                    pagelog::Log::open_with_io(path, pagelog::OpenOptions::default(), disk.clone() as Arc<dyn LogFile>)
                        .unwrap();
                let made = log.revert(target.version, Duration::from_secs(10)).unwrap();
                drop(log);
                let v = version(&c);
                assert_eq!(Some(v), made.map(|m| m.number), "seed {seed}: the connection sees the revert");
                let got = contents(&c).unwrap();
                assert_eq!(got, target.contents, "seed {seed}: revert to {} reads like it", target.version);
                steps.push(format!("revert to {} -> {v}", target.version));
                commits.push(Commit { ops: disk.op_count(), version: v, contents: got });
                *stats.steps.entry("revert").or_default() += 1;
                continue;
            }
            _ => {
                c.execute_batch("BEGIN; SELECT count(*) FROM t; COMMIT").unwrap();
                "nothing"
            }
        };
        record(&c, &mut commits);
        let after = commits.last().unwrap().version;
        steps.push(format!("{what} -> {after}"));
        if what == "nothing" || what == "rollback after spilling" {
            assert_eq!(before, after, "seed {seed}: {what} made no version");
        } else {
            // One commit a step, or the model would miss a version.
            assert!(after <= before + 1, "seed {seed}: {what} made versions {before} -> {after}");
        }
        *stats.steps.entry(what).or_default() += 1;
    }
    drop(c);
    pagelog::registry::set_io_hook(path, None);
    Run { disk, commits, steps, synchronous }
}

/// Simulates a power failure after every disk operation of the workload of
/// each seed in `seeds` and checks each image (see the module doc).
fn simulate(name: &str, seeds: impl Iterator<Item = u64>) -> Stats {
    pagelog::register().unwrap();
    let t0 = Instant::now();
    let mut stats = Stats::default();
    let images_per_point = if long_mode() { 3 } else { 1 };
    for seed in seeds {
        let dir = Dir::new(&format!("sqlite-{name}-{seed}"));
        let path = dir.0.join("s.db");
        let run = run_workload(&path, seed, &mut stats);
        let ops = run.disk.ops_since(0);
        // sync_end[k]: operations made durable by the last sync among the first k.
        let mut sync_end = vec![0usize; ops.len() + 1];
        for (i, (_, op)) in ops.iter().enumerate() {
            sync_end[i + 1] = if matches!(op, Op::Sync) { i + 1 } else { sync_end[i] };
        }
        let mut rng = Rng::new(77 + seed);
        let crashed = dir.0.join("crashed.db");
        for (k, &durable_ops) in sync_end.iter().enumerate() {
            for _ in 0..images_per_point {
                let image = run.disk.crash_image(&[], k, &mut rng);
                // The recovered database runs on a simulated disk too, for
                // the second power loss of check 6.
                let disk = SimDisk::create(&crashed, &image);
                pagelog::registry::set_io_hook(&crashed, Some(disk.clone() as Arc<dyn LogFile>));
                let checked = check_image(&crashed, k, durable_ops, &run, &mut rng, &mut stats);
                pagelog::registry::set_io_hook(&crashed, None);
                let checked = checked.and_then(|next| check_second_power_loss(&dir.0, &disk, next));
                if let Err(e) = checked {
                    let keep = std::env::temp_dir().join(format!("pagelog-crash-sim-sqlite-failure-{seed}-{k}"));
                    let _ = std::fs::write(&keep, &image);
                    panic!(
                        "seed {seed} ({}), power failure after disk operation {k} of {}: {e}\n  \
                         image kept in {}\n  steps:\n  {}\n  rerun: PAGELOG_CRASH_SEED={seed}",
                        run.synchronous,
                        ops.len(),
                        keep.display(),
                        run.steps.join("\n  ")
                    );
                }
                std::fs::remove_file(&crashed).unwrap();
                stats.images += 1;
            }
            stats.points += 1;
        }
        stats.seeds += 1;
        stats.ops += ops.len() as u64;
    }
    println!(
        "crash_sim_sqlite {name}: {} workloads, {} disk operations, {} crash points, {} images, \
         {} older versions read in place, {} images lost unsynced commits (allowed); steps {:?}; in {:.1} s",
        stats.seeds,
        stats.ops,
        stats.points,
        stats.images,
        stats.older_versions_checked,
        stats.lost_unsynced,
        stats.steps,
        t0.elapsed().as_secs_f64()
    );
    stats
}

/// Checks 1–5 of the module doc on the crashed image at `p`; returns the
/// version the next write made.
fn check_image(
    p: &Path,
    k: usize,
    durable_ops: usize,
    run: &Run,
    rng: &mut Rng,
    stats: &mut Stats,
) -> Result<u64, String> {
    let c = Connection::open_with_flags_and_vfs(p, flags(), "pagelog").map_err(|e| format!("open: {e}"))?;
    let ic: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| format!("integrity: {e}"))?;
    if ic != "ok" {
        return Err(format!("integrity_check: {ic}"));
    }
    let v = version(&c);
    let got = contents(&c).map_err(|e| format!("read: {e}"))?;
    let commits = &run.commits;
    // The newest commit made durable, and the commit in flight at k.
    let floor = commits.iter().rposition(|m| m.ops <= durable_ops).unwrap();
    let ceiling = commits.iter().position(|m| m.ops >= k).unwrap_or(commits.len() - 1);
    let Some(at) = (floor..=ceiling).find(|&i| commits[i].version == v) else {
        return Err(format!(
            "version {v} is not one committed between the durable version {} and the one in flight, {}",
            commits[floor].version, commits[ceiling].version
        ));
    };
    if got != commits[at].contents {
        return Err(format!("version {v} reads {got:?}, committed as {:?}", commits[at].contents));
    }
    if commits.iter().rposition(|m| m.ops <= k).is_some_and(|returned| at < returned) {
        stats.lost_unsynced += 1;
    }
    // An older durable version, read in place.
    if floor > 0 {
        let old = &commits[rng.below(floor as u64) as usize + 1];
        let uri = format!("file:{}?version={}", p.display(), old.version);
        let o = Connection::open_with_flags_and_vfs(
            &uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
            "pagelog",
        )
        .map_err(|e| format!("open version {}: {e}", old.version))?;
        let got = contents(&o).map_err(|e| format!("read version {}: {e}", old.version))?;
        if got != old.contents {
            return Err(format!("version {} reads {got:?}, committed as {:?}", old.version, old.contents));
        }
        stats.older_versions_checked += 1;
    }
    c.execute_batch("BEGIN; CREATE TABLE IF NOT EXISTS after(x); INSERT INTO after VALUES (1); COMMIT")
        .map_err(|e| format!("the next write failed: {e}"))?;
    if version(&c) != v + 1 {
        return Err(format!("the next write made version {}, not {}", version(&c), v + 1));
    }
    Ok(v + 1)
}

/// Check 6: power fails again right after the next write returned (only
/// what was synced survives): the database reopens at that version, with
/// its row, and passes `integrity_check`.
fn check_second_power_loss(dir: &Path, disk: &SimDisk, next: u64) -> Result<(), String> {
    let p = dir.join("second.db");
    std::fs::write(&p, &*disk.durable()).unwrap();
    let c = Connection::open_with_flags_and_vfs(&p, flags(), "pagelog").map_err(|e| format!("second open: {e}"))?;
    let ic: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| format!("{e}"))?;
    let rows: i64 = c.query_row("SELECT count(*) FROM after", [], |r| r.get(0)).map_err(|e| format!("{e}"))?;
    if ic != "ok" || version(&c) != next || rows < 1 {
        return Err(format!(
            "after a second power loss: integrity {ic}, version {} (the next write made {next}), {rows} rows",
            version(&c)
        ));
    }
    drop(c);
    std::fs::remove_file(&p).unwrap();
    Ok(())
}

fn seeds(part: u64, parts: u64) -> Box<dyn Iterator<Item = u64>> {
    if let Ok(s) = std::env::var("PAGELOG_CRASH_SEED") {
        let s: u64 = s.parse().expect("PAGELOG_CRASH_SEED=N");
        return Box::new((s % parts == part).then_some(s).into_iter());
    }
    let n = if long_mode() { 800 } else { 80 };
    Box::new((0..n).filter(move |s| s % parts == part))
}

// Two tests, so that the two halves of the seeds run on two threads.

#[test]
fn power_loss_after_every_disk_operation_through_sqlite_leaves_a_committed_version_even_seeds() {
    simulate("even", seeds(0, 2));
}

#[test]
fn power_loss_after_every_disk_operation_through_sqlite_leaves_a_committed_version_odd_seeds() {
    simulate("odd", seeds(1, 2));
}
