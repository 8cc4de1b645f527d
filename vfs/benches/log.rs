//! Log-level benchmarks: no SQLite in the timed part.
//!
//! * `read/page`: `Version::page` of a random page of a 10,000-page version
//!   (a map lookup and the crc-checked-once bit; no copy);
//! * `read/read_4k`: `Version::read` of one random 4 KiB page into a buffer;
//! * `commit/off/N`: a write transaction of N random pages (1, 10, 1000) of a
//!   10,000-page database, `begin` + `write` + `commit` under
//!   `Durability::Off` (CPU and page-cache cost, no sync);
//! * `commit/full/1`: the same for one page under `Durability::Full` (one
//!   fdatasync per commit);
//! * `open/latest/V`: `Log::open` + `latest()` of a log of V versions (100,
//!   10,000, 100,000), each changing 1–3 pages of a 256-page database;
//! * `open/version_middle/V`: `Log::version(V / 2)` on that log, opened once;
//! * `revert/latest-1/100000`: `Log::revert` of a 100,000-page database to
//!   the version before the latest, which differs in 3 pages (`revert`
//!   always commits with `Durability::Full`: one fdatasync is included), on
//!   a log of fewer than a hundred versions with one full map (it is
//!   replaced by a fresh copy every 64 reverts): the cost without a history
//!   to replay (`speedtest --suite scale` measures it with one).
//!
//! Fixtures are built once per benchmark, outside the timed part, in a
//! directory under cargo's `CARGO_TARGET_TMPDIR`, and removed afterwards;
//! a benchmark that a filter excludes builds nothing. Under `cargo test`
//! (no `--bench` argument) criterion runs every benchmark once and the
//! fixtures are small: see [`Sizes`].

use std::cell::OnceCell;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pagelog::txn::DEFAULT_SPILL_LIMIT;
use pagelog::{Durability, Log, OpenOptions, Version};

/// Page size of every fixture.
const PS: usize = 4096;
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// `cargo bench` passes `--bench`; `cargo test` does not, and criterion then
/// runs each benchmark once.
fn quick() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// Fixture sizes: the real ones, or small ones for `cargo test`.
struct Sizes {
    read_pages: u32,
    commit_db_pages: u32,
    commit_pages: [u32; 3],
    open_versions: [u64; 3],
    open_db_pages: u32,
    revert_db_pages: u32,
    /// A commit benchmark starts over on a fresh log past this file size.
    commit_reset_bytes: u64,
}

fn sizes() -> Sizes {
    if quick() {
        Sizes {
            read_pages: 100,
            commit_db_pages: 100,
            commit_pages: [1, 10, 50],
            open_versions: [10, 100, 1000],
            open_db_pages: 64,
            revert_db_pages: 1000,
            commit_reset_bytes: 64 << 20,
        }
    } else {
        Sizes {
            read_pages: 10_000,
            commit_db_pages: 10_000,
            commit_pages: [1, 10, 1000],
            open_versions: [100, 10_000, 100_000],
            open_db_pages: 256,
            revert_db_pages: 100_000,
            commit_reset_bytes: 1 << 30,
        }
    }
}

/// splitmix64: a fast, seedable stream for page numbers and page bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        pagelog::format::splitmix64(&mut self.0)
    }

    /// A page number in 1..=pages.
    fn pgno(&mut self, pages: u32) -> u32 {
        (self.next() % pages as u64) as u32 + 1
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }

    /// `n` distinct page numbers in 1..=pages (partial Fisher–Yates).
    fn distinct(&mut self, all: &mut [u32], n: usize) -> Vec<u32> {
        for i in 0..n {
            let j = i + (self.next() % (all.len() - i) as u64) as usize;
            all.swap(i, j);
        }
        all[..n].to_vec()
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes pages through a transaction on the latest version and commits.
/// Each page's first 12 bytes are overwritten with `stamp` and its number,
/// so every written page differs from what it was.
struct Writer {
    page: Vec<u8>,
    stamp: u64,
}

impl Writer {
    fn new(seed: u64) -> Writer {
        let mut page = vec![0u8; PS];
        Rng(seed).fill(&mut page);
        Writer { page, stamp: seed << 32 }
    }

    fn commit(&mut self, log: &Log, pages: &[u32], durability: Durability) -> Arc<Version> {
        let mut txn = log.begin(log.latest(), DEFAULT_SPILL_LIMIT);
        for &p in pages {
            self.stamp += 1;
            self.page[..8].copy_from_slice(&self.stamp.to_le_bytes());
            self.page[8..12].copy_from_slice(&p.to_le_bytes());
            txn.write(log, (p as u64 - 1) * PS as u64, &self.page).unwrap();
        }
        log.commit(txn, durability).unwrap().expect("the pages changed")
    }
}

fn create_log(path: &Path) -> Log {
    Log::open(path, OpenOptions { create: true, ..Default::default() }).unwrap()
}

fn open_read_only(path: &Path) -> Log {
    Log::open(path, OpenOptions { read_only: true, ..Default::default() }).unwrap()
}

/// A log whose version 1 holds `pages` pages (written in one transaction,
/// spilling past `DEFAULT_SPILL_LIMIT`).
fn build_db(path: &Path, pages: u32, w: &mut Writer) {
    let log = create_log(path);
    let _g = log.lock_writer(LOCK_TIMEOUT).unwrap();
    log.prepare_write().unwrap();
    let all: Vec<u32> = (1..=pages).collect();
    let v = w.commit(&log, &all, Durability::Off);
    assert_eq!((v.number, v.db_pages()), (1, pages));
}

// ---- reads ------------------------------------------------------------------

struct ReadFixture {
    _dir: TempDir,
    _log: Log,
    version: Arc<Version>,
    pages: u32,
}

fn read_fixture(pages: u32) -> ReadFixture {
    let dir = TempDir::new("read");
    let path = dir.path("read.log");
    build_db(&path, pages, &mut Writer::new(1));
    // A reader's own open: every frame is crc-checked on its first read in
    // a process, so read each once before timing.
    let log = open_read_only(&path);
    let version = log.latest();
    let mut buf = vec![0u8; PS];
    for p in 1..=pages {
        version.read((p as u64 - 1) * PS as u64, &mut buf).unwrap();
    }
    ReadFixture { _dir: dir, _log: log, version, pages }
}

fn bench_read(c: &mut Criterion) {
    let pages = sizes().read_pages;
    let fx: OnceCell<ReadFixture> = OnceCell::new();
    let mut g = c.benchmark_group("read");
    g.bench_function(BenchmarkId::new("page", pages), |b| {
        let f = fx.get_or_init(|| read_fixture(pages));
        let mut rng = Rng(7);
        b.iter(|| black_box(f.version.page(rng.pgno(f.pages)).unwrap()));
    });
    g.throughput(Throughput::Bytes(PS as u64));
    g.bench_function(BenchmarkId::new("read_4k", pages), |b| {
        let f = fx.get_or_init(|| read_fixture(pages));
        let mut rng = Rng(7);
        let mut buf = vec![0u8; PS];
        b.iter(|| {
            let p = rng.pgno(f.pages);
            f.version.read((p as u64 - 1) * PS as u64, &mut buf).unwrap();
            black_box(&buf);
        });
    });
    g.finish();
}

// ---- commits ----------------------------------------------------------------

struct CommitFixture {
    dir: TempDir,
    log: Log,
    writer: Writer,
    all: Vec<u32>,
    rng: Rng,
}

fn commit_fixture(db_pages: u32) -> CommitFixture {
    let dir = TempDir::new("commit");
    let path = dir.path("commit.log");
    let mut writer = Writer::new(2);
    build_db(&path, db_pages, &mut writer);
    let log = create_log(&path);
    CommitFixture { dir, log, writer, all: (1..=db_pages).collect(), rng: Rng(3) }
}

fn bench_commit(c: &mut Criterion) {
    let s = sizes();
    let mut fx: Option<CommitFixture> = None;
    let mut g = c.benchmark_group("commit");
    let cases = s.commit_pages.iter().map(|&n| ("off", n, Durability::Off)).chain([("full", 1, Durability::Full)]);
    for (name, n, durability) in cases {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
            b.iter_custom(|iters| {
                // The log only grows: start over on a fresh one now and then
                // (untimed), so the file stays within the page cache.
                if fx.as_ref().is_some_and(|f| f.log.latest().end > s.commit_reset_bytes) {
                    fx = None;
                }
                let f = fx.get_or_insert_with(|| commit_fixture(s.commit_db_pages));
                let _g = f.log.lock_writer(LOCK_TIMEOUT).unwrap();
                f.log.prepare_write().unwrap();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let pages = f.rng.distinct(&mut f.all, n as usize);
                    let t = Instant::now();
                    black_box(f.writer.commit(&f.log, &pages, durability));
                    total += t.elapsed();
                }
                total
            });
        });
    }
    g.finish();
    drop(fx.map(|f| f.dir));
}

// ---- opening ----------------------------------------------------------------

struct OpenFixture {
    _dir: TempDir,
    path: PathBuf,
    versions: u64,
}

/// A log of `versions` versions: version 1 writes `db_pages` pages, each
/// later one changes 1–3 random pages.
fn open_fixture(versions: u64, db_pages: u32) -> OpenFixture {
    let dir = TempDir::new(&format!("open-{versions}"));
    let path = dir.path("open.log");
    let mut w = Writer::new(4);
    build_db(&path, db_pages, &mut w);
    {
        let log = create_log(&path);
        let _g = log.lock_writer(LOCK_TIMEOUT).unwrap();
        log.prepare_write().unwrap();
        let mut rng = Rng(5);
        let mut all: Vec<u32> = (1..=db_pages).collect();
        for _ in 2..=versions {
            let n = 1 + (rng.next() % 3) as usize;
            let pages = rng.distinct(&mut all, n);
            w.commit(&log, &pages, Durability::Off);
        }
        assert_eq!(log.latest().number, versions);
    }
    OpenFixture { _dir: dir, path, versions }
}

fn bench_open(c: &mut Criterion) {
    let s = sizes();
    let mut fx: Option<OpenFixture> = None;
    let mut g = c.benchmark_group("open");
    g.sample_size(20);
    for &versions in &s.open_versions {
        let fixture = |fx: &mut Option<OpenFixture>| {
            if fx.as_ref().is_none_or(|f| f.versions != versions) {
                *fx = None; // remove the previous log first
                let t = Instant::now();
                *fx = Some(open_fixture(versions, s.open_db_pages));
                if !quick() {
                    eprintln!("(open: built a log of {versions} versions in {:.1} s)", t.elapsed().as_secs_f64());
                }
            }
            fx.as_ref().unwrap().path.clone()
        };
        g.bench_with_input(BenchmarkId::new("latest", versions), &versions, |b, &versions| {
            let path = fixture(&mut fx);
            assert_eq!(open_read_only(&path).latest().number, versions);
            b.iter_with_large_drop(|| {
                let log = open_read_only(&path);
                black_box(log.latest());
                log
            });
        });
        g.bench_with_input(BenchmarkId::new("version_middle", versions), &versions, |b, &versions| {
            let path = fixture(&mut fx);
            let log = open_read_only(&path);
            b.iter_with_large_drop(|| log.version(versions / 2).unwrap());
        });
    }
    g.finish();
}

// ---- revert -----------------------------------------------------------------

/// Reverts made on a copy before it is replaced by a fresh one.
const REVERTS_PER_COPY: u64 = 64;

struct RevertFixture {
    _dir: TempDir,
    template: PathBuf,
    path: PathBuf,
    log: Option<Log>,
    reverts: u64,
}

impl RevertFixture {
    /// Version 1: `db_pages` pages; version 2 changes 3 of them.
    fn new(db_pages: u32) -> RevertFixture {
        let dir = TempDir::new("revert");
        let template = dir.path("template.log");
        let mut w = Writer::new(6);
        build_db(&template, db_pages, &mut w);
        {
            let log = create_log(&template);
            let _g = log.lock_writer(LOCK_TIMEOUT).unwrap();
            log.prepare_write().unwrap();
            w.commit(&log, &[2, db_pages / 2, db_pages], Durability::Off);
        }
        let path = dir.path("revert.log");
        RevertFixture { _dir: dir, template, path, log: None, reverts: REVERTS_PER_COPY }
    }

    /// The log to revert in: every revert appends a version that the next
    /// one's map rebuild replays, so after a few dozen the log is replaced
    /// by a fresh copy of the two-version template (untimed).
    fn log(&mut self) -> &Log {
        if self.reverts >= REVERTS_PER_COPY {
            self.log = None;
            std::fs::copy(&self.template, &self.path).unwrap();
            self.log = Some(create_log(&self.path));
            self.reverts = 0;
        }
        self.log.as_ref().unwrap()
    }
}

fn bench_revert(c: &mut Criterion) {
    let pages = sizes().revert_db_pages;
    let mut fx: Option<RevertFixture> = None;
    let mut g = c.benchmark_group("revert");
    g.bench_function(BenchmarkId::new("latest-1", pages), |b| {
        let f = fx.get_or_insert_with(|| RevertFixture::new(pages));
        // Each revert appends a version equal to the one before the latest:
        // the two alternate, differing in 3 pages and page 1.
        b.iter_custom(|iters| {
            let log = f.log();
            let t = Instant::now();
            for _ in 0..iters {
                let to = log.latest().number - 1;
                black_box(log.revert(to, LOCK_TIMEOUT).unwrap().expect("a new version"));
            }
            let elapsed = t.elapsed();
            f.reverts += iters;
            elapsed
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_read, bench_commit, bench_open, bench_revert
}
criterion_main!(benches);
