//! Readers never call a healthy log damaged, whatever part of a concurrent
//! append they see (issue 26).
//!
//! On Linux a `pread`, or a read of a mapped page, can observe another
//! process's `pwrite` half done: any prefix of it, and (as nothing orders
//! the copy) in principle any subset of its bytes. This test makes the
//! writer's every write go through [`TearingFile`], which, before doing the
//! write for real, exposes it in partial states and runs readers against
//! each one:
//! * byte by byte for writes of up to `BYTEWISE` bytes (commit records of
//!   small transactions, MARKs), and at every sector (512) and page (4096)
//!   boundary plus a few random points for larger ones;
//! * the write's end before its start (a trailer before its record), and
//!   its middle alone;
//! * each state is then undone (the old bytes and file length put back)
//!   before the next, so every state is "everything before this write, and
//!   part of this write".
//!
//! What every reader must see, in every state (never an error):
//! 1. a fresh [`Log::open`] recovers some version the writer committed, at
//!    least the newest one whose commit had returned before this write
//!    began (a MARK written after it does not change that), byte for byte;
//! 2. a long-lived reader's [`Log::refresh`] never goes back and reads the
//!    same;
//! 3. an older version through [`Log::version`] reads the same;
//! 4. [`Log::history`] lists every version (what `pagelog log` prints);
//! 5. [`Log::verify`] reports no damage (a half-written tail is a tail).
//!
//! The workload: whole-page and partial-page commits (patches), commits
//! that spill, rolled-back spilling transactions (whose clean-up writes are
//! torn too), reverts, truncation, under FULL and NORMAL (with
//! `sync_pending`, which appends a MARK).
//!
//! The header write that creates the log is not torn: the kernel makes a
//! file's new size visible only after copying the bytes that extend it, so a
//! reader sees a file of 0 bytes or the whole 512-byte header (and a file
//! shorter than 512 bytes that starts with the magic reads as empty).
//! By default a random fifth of the partial states is checked, on a few
//! seeds (about 15 s in a debug build); `PAGELOG_LONG=1` checks every state
//! of more seeds and steps (`SEED=N` runs seed N only; `TRACE_WRITES=1`
//! prints the writer's writes; `PAGELOG_SEEDS=N` with `PAGELOG_LONG=1` runs
//! N seeds of the long mode).

mod common;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{long_mode, Dir, Rng};
use pagelog::storage::LogFile;
use pagelog::{Durability, Log, OpenOptions, Version};

/// Writes up to this size are exposed one byte at a time (four, above 128).
const BYTEWISE: usize = 320;
/// Outside `PAGELOG_LONG`, one partial state in this many is checked (a
/// random sample; the long run checks all).
const SAMPLE: u64 = 5;

/// What the readers check against: every committed version's image.
#[derive(Default)]
struct Model {
    /// `images[v]`: version v's database, `ps[v]` its page size. The last
    /// one may be the commit being written (it becomes visible to readers
    /// once its record is whole, before its MARK and before it returns).
    images: Vec<Vec<u8>>,
    ps: Vec<u32>,
    /// Versions whose commit returned: a reader must see at least the last.
    returned: u64,
    /// Reader state carried from one check to the next.
    reader_seen: u64,
    states: u64,
    checks: u64,
}

/// A write in progress: `buf` going to `off` over `old` (what was there,
/// `old_len` the file length before). Bytes `lo..hi` of it are in the file.
struct Inflight {
    off: u64,
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    /// Bytes the write grows its visible part by at each read of a reader;
    /// 0: none, until `jump_after` reads have been made, then all of it
    /// (the copy finishing between two reads of a reader).
    step: usize,
    jump_after: usize,
    /// Grows towards the end (a prefix) or towards the start (the end first).
    forward: bool,
    /// The first and last bytes where the write differs from what was there.
    first_diff: usize,
    last_diff: usize,
}

impl Inflight {
    /// Readers may have seen the write whole (as they do once it is done).
    fn whole(&self) -> bool {
        self.lo <= self.first_diff && self.hi > self.last_diff
    }
}

/// The file, and the write that readers see progress as they read.
struct Shared {
    file: File,
    inflight: Mutex<Option<Inflight>>,
}

impl Shared {
    /// Makes `step` more bytes of the write in progress visible: called
    /// before every read a reader makes, so that its consecutive reads see
    /// the write at different stages, as a reader beside a real writer can.
    fn advance(&self) -> io::Result<()> {
        let mut g = self.inflight.lock().unwrap();
        let Some(w) = g.as_mut() else { return Ok(()) };
        let n = w.buf.len();
        let step = if w.step > 0 {
            w.step
        } else if w.jump_after == 0 {
            n
        } else {
            w.jump_after -= 1;
            0
        };
        let (lo, hi) = if w.forward { (w.lo, (w.hi + step).min(n)) } else { (w.lo.saturating_sub(step), w.hi) };
        if (lo, hi) != (w.lo, w.hi) {
            self.file.write_all_at(&w.buf[lo..hi], w.off + lo as u64)?;
            w.lo = lo;
            w.hi = hi;
        }
        Ok(())
    }
}

/// The writer's [`LogFile`]: before each write is done for real, it is
/// exposed to readers in partial states, growing while they read (see
/// [`Shared::advance`]); each state is undone before the next.
struct TearingFile {
    shared: Arc<Shared>,
    checker: Mutex<Option<Arc<Checker>>>,
    rng: Mutex<Rng>,
}

/// A reader's [`LogFile`]: every call first advances the write in progress.
struct ReaderFile(Arc<Shared>);

impl LogFile for ReaderFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.advance()?;
        self.0.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::Error::other("a reader never writes"))
    }
    fn len(&self) -> io::Result<u64> {
        self.0.advance()?;
        Ok(self.0.file.metadata()?.len())
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(io::Error::other("a reader never truncates"))
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

impl LogFile for TearingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.shared.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let file = &self.shared.file;
        if std::env::var("TRACE_WRITES").is_ok() {
            let kind = if buf.len() >= 5 && &buf[..4] == b"PLRC" { buf[4] } else { 0 };
            eprintln!("write {} bytes at {offset} kind {kind} (file {})", buf.len(), file.metadata()?.len());
        }
        let checker = self.checker.lock().unwrap().clone();
        if let Some(c) = checker.filter(|_| !std::thread::panicking()) {
            let keep = if long_mode() { 1 } else { SAMPLE };
            for (k0, step, jump_after, forward) in self.partial_states(buf.len()) {
                for who in [Who::Fresh, Who::LongLived] {
                    if self.rng.lock().unwrap().below(keep) != 0 {
                        continue;
                    }
                    self.check_state(&c, buf, offset, (k0, step, jump_after, forward), who)?;
                }
            }
        }
        file.write_all_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.shared.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.shared.file.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        Ok(()) // durability is not what this test is about
    }
}

impl TearingFile {
    /// Sets up one partial state of the write of `buf` at `offset`, has
    /// reader `who` check it, and undoes it.
    fn check_state(
        &self,
        c: &Checker,
        buf: &[u8],
        offset: u64,
        (k0, step, jump_after, forward): (usize, usize, usize, bool),
        who: Who,
    ) -> io::Result<()> {
        let file = &self.shared.file;
        c.ensure_reader(&self.shared);
        let old_len = file.metadata()?.len();
        let mut old = vec![0u8; buf.len()];
        let have = old_len.saturating_sub(offset).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut old[..have], offset)?;
        let Some(first_diff) = (0..buf.len()).find(|&i| old[i] != buf[i]) else { return Ok(()) };
        let last_diff = (0..buf.len()).rposition(|i| old[i] != buf[i]).unwrap();
        let (lo, hi) = if forward { (0, k0) } else { (buf.len() - k0, buf.len()) };
        file.write_all_at(&buf[lo..hi], offset + lo as u64)?;
        *self.shared.inflight.lock().unwrap() =
            Some(Inflight { off: offset, buf: buf.to_vec(), lo, hi, step, jump_after, forward, first_diff, last_diff });
        let what = format!(
            "{who:?} reader, write of {} bytes at {offset}, {k0} bytes visible from its {}, then {}",
            buf.len(),
            if forward { "start" } else { "end" },
            if step > 0 { format!("{step} more at each read") } else { format!("all after {jump_after} reads") }
        );
        c.check(&self.shared, &what, who);
        let seen_whole = self.shared.inflight.lock().unwrap().take().is_some_and(|w| w.whole());
        if seen_whole {
            // The state is undone below, as if the write had not happened:
            // a reader that saw it whole would then read a version that is
            // gone, which no real writer does.
            c.forget_reader();
        }
        file.write_all_at(&old[..have], offset)?;
        file.set_len(old_len)
    }

    /// The partial states of a write of `n` bytes to start readers on: (bytes
    /// visible at first, bytes more at each read, or all after how many
    /// reads, from the start or not).
    fn partial_states(&self, n: usize) -> Vec<(usize, usize, usize, bool)> {
        if n == 0 {
            return Vec::new();
        }
        let every = if n <= 128 { 1 } else { 4 };
        let mut cuts: Vec<usize> = if n <= BYTEWISE {
            (0..n - 1).step_by(every).collect()
        } else {
            let mut c: Vec<usize> = (0..n).filter(|k| k % 512 == 0 || k % 4096 == 0).collect();
            let mut rng = self.rng.lock().unwrap();
            for _ in 0..8 {
                c.push(rng.below(n as u64) as usize);
            }
            c.extend([8, 47, 48, 104, n - 16, n - 8, n - 1].into_iter().filter(|&k| k < n));
            c.retain(|&k| k < n);
            c
        };
        cuts.sort_unstable();
        cuts.dedup();
        let mut v = Vec::new();
        for &k in &cuts {
            for step in [1, 64] {
                v.push((k, step, 0, true));
            }
            for jump in 1..=8 {
                v.push((k, 0, jump, true));
            }
        }
        // The end before the start: a trailer visible before its record.
        for &k in cuts.iter().filter(|&&k| k % 8 == 0) {
            v.push((k, 16, 0, false));
            v.push((k, 0, 2, false));
        }
        v
    }
}

struct Checker {
    path: PathBuf,
    model: Mutex<Model>,
    /// A reader that stays open across writes (its view is refreshed).
    reader: Mutex<Option<Log>>,
}

impl Checker {
    /// Drops the long-lived reader; the next check opens a new one.
    fn forget_reader(&self) {
        *self.reader.lock().unwrap() = None;
        let mut m = self.model.lock().unwrap();
        m.reader_seen = m.returned;
    }

    /// Opens the long-lived reader if there is none (before a state is set
    /// up, so that its opening does not use up the state's reads).
    fn ensure_reader(&self, shared: &Arc<Shared>) {
        let mut reader = self.reader.lock().unwrap();
        if reader.is_none() {
            let ro = OpenOptions { read_only: true, ..Default::default() };
            *reader =
                Some(Log::open_with_io(&self.path, ro, Arc::new(ReaderFile(shared.clone()))).expect("reader opens"));
        }
    }

    fn check(&self, shared: &Arc<Shared>, what: &str, who: Who) {
        let mut m = self.model.lock().unwrap();
        m.states += 1;
        if who == Who::LongLived {
            let reader = self.reader.lock().unwrap();
            let r = reader.as_ref().expect("ensure_reader opened it");
            let rv = r.refresh().unwrap_or_else(|e| fail(what, format!("a long-lived reader's refresh got: {e}")));
            check_version(&m, &rv, "refresh").unwrap_or_else(|e| fail(what, e));
            if rv.number < m.reader_seen {
                fail::<()>(what, format!("a reader went back from version {} to {}", m.reader_seen, rv.number));
            }
            m.reader_seen = rv.number;
            m.checks += 1;
            return;
        }
        // A fresh open.
        let ro = OpenOptions { read_only: true, ..Default::default() };
        let fresh = Log::open_with_io(&self.path, ro, Arc::new(ReaderFile(shared.clone())))
            .unwrap_or_else(|e| fail(what, format!("a reader opening the log got: {e}")));
        let v = fresh.latest();
        check_version(&m, &v, "fresh open").unwrap_or_else(|e| fail(what, e));
        if v.number < m.returned {
            fail::<()>(
                what,
                format!("a fresh open recovered version {}, but version {} had returned", v.number, m.returned),
            );
        }
        // An older version, read in place (follows `prev commit` links).
        if v.number > 1 {
            let k = (m.states * 7919) % v.number;
            let old = fresh.version(k).unwrap_or_else(|e| fail(what, format!("version {k}: {e}")));
            check_version(&m, &old, "older version").unwrap_or_else(|e| fail(what, e));
        }
        // The history listing (`pagelog log`) and verify: sampled, as they
        // read everything.
        if m.states % 7 == 0 {
            let h = fresh.history().unwrap_or_else(|e| fail(what, format!("history: {e}")));
            let newest = h.iter().map(|c| c.version).max().unwrap_or(0);
            // The write may have progressed since the open: never less.
            if newest < v.number || newest as usize >= m.images.len() {
                fail::<()>(what, format!("history lists up to version {newest}, the reader recovered {}", v.number));
            }
            let rep = fresh.verify();
            if rep.damaged() {
                fail::<()>(what, format!("verify reports damage: {rep:?}"));
            }
        }
        m.checks += 1;
    }
}

/// Which reader a state is checked with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    /// A reader that opens the log in that state (recovery).
    Fresh,
    /// A reader that was open before and refreshes its view.
    LongLived,
}

fn fail<T>(what: &str, e: String) -> T {
    panic!("{what}: {e}")
}

/// A version equals what the writer committed as that version.
fn check_version(m: &Model, v: &Version, who: &str) -> Result<(), String> {
    let n = v.number as usize;
    let Some(img) = m.images.get(n) else {
        return Err(format!("{who}: version {n}, which was never committed (latest {})", m.images.len() - 1));
    };
    let mut all = vec![0u8; img.len() + 8];
    let got = v.read(0, &mut all).map_err(|e| format!("{who}: version {n}: read: {e}"))?;
    if got != img.len() || all[..got] != img[..] {
        return Err(format!("{who}: version {n} reads {got} bytes that differ from the {} committed", img.len()));
    }
    if img.is_empty() || v.page_size == m.ps[n] {
        Ok(())
    } else {
        Err(format!("{who}: version {n} has page size {}, expected {}", v.page_size, m.ps[n]))
    }
}

struct Workload<'a> {
    log: &'a Log,
    checker: &'a Arc<Checker>,
    rng: Rng,
    normal: bool,
}

impl Workload<'_> {
    fn latest_image(&self) -> (Vec<u8>, u32) {
        let m = self.checker.model.lock().unwrap();
        (m.images.last().unwrap().clone(), *m.ps.last().unwrap())
    }

    fn durability(&mut self) -> Durability {
        if self.normal && !self.rng.chance(1, 5) {
            Durability::Normal
        } else {
            Durability::Full
        }
    }

    /// One transaction: `pages` whole pages and `partial` small writes,
    /// with a spill limit of `spill` bytes; rolled back when `rollback`.
    fn txn(&mut self, pages: u32, partial: u32, spill: usize, rollback: bool) {
        let _w = self.log.lock_writer(Duration::from_secs(5)).unwrap();
        let base = self.log.prepare_write().unwrap();
        let (mut img, mut ps) = self.latest_image();
        if ps == 0 {
            ps = [512u32, 1024][self.rng.below(2) as usize];
        }
        let mut txn = self.log.begin(base, spill);
        let db_pages = (img.len() / ps as usize) as u32;
        for _ in 0..pages {
            let pgno = 1 + self.rng.below(db_pages as u64 + 2) as u32;
            let mut data = self.rng.bytes(ps as usize);
            data[0] = b'X'; // never an SQLite header (page 1 would be re-cut)
            let off = (pgno as u64 - 1) * ps as u64;
            txn.write(self.log, off, &data).unwrap();
            let end = off as usize + ps as usize;
            if img.len() < end {
                img.resize(end, 0);
            }
            img[off as usize..end].copy_from_slice(&data);
        }
        for _ in 0..partial {
            if img.len() < 200 {
                break;
            }
            let len = 1 + self.rng.below(40) as usize;
            let off = 1 + self.rng.below((img.len() - len - 1) as u64) as usize;
            let data = self.rng.bytes(len);
            txn.write(self.log, off as u64, &data).unwrap();
            img[off..off + len].copy_from_slice(&data);
        }
        if rollback {
            self.log.rollback(txn).unwrap();
            return;
        }
        let d = self.durability();
        self.pending(img, ps);
        let v = self.log.commit(txn, d).unwrap();
        self.returned(v.as_deref());
    }

    /// The image the commit about to be written makes.
    fn pending(&mut self, img: Vec<u8>, ps: u32) {
        let mut m = self.checker.model.lock().unwrap();
        m.images.push(img);
        m.ps.push(ps);
    }

    /// The commit returned `v` (None: it made no version).
    fn returned(&mut self, v: Option<&Version>) {
        let mut m = self.checker.model.lock().unwrap();
        match v {
            Some(v) => {
                assert_eq!(v.number as usize, m.images.len() - 1, "versions are numbered without gaps");
                m.returned = v.number;
            }
            None => {
                m.images.pop();
                m.ps.pop();
            }
        }
    }

    fn step(&mut self) {
        let n = self.checker.model.lock().unwrap().images.len() as u64 - 1;
        match self.rng.below(20) {
            0 if n >= 2 => {
                let to = 1 + self.rng.below(n - 1);
                // The target's image, with page 1's change counter (24) and
                // schema cookie (40) past both versions' and the
                // version-valid-for number (92) equal to the counter, as
                // `Log::revert` writes them.
                let (mut img, ps, cur) = {
                    let m = self.checker.model.lock().unwrap();
                    (m.images[to as usize].clone(), m.ps[to as usize], m.images.last().unwrap().clone())
                };
                if img.len() >= 100 && cur.len() >= 100 {
                    for at in [24usize, 40] {
                        let f = |b: &[u8]| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
                        let next = f(&cur).max(f(&img)).wrapping_add(1).to_be_bytes();
                        img[at..at + 4].copy_from_slice(&next);
                        if at == 24 {
                            img[92..96].copy_from_slice(&next);
                        }
                    }
                }
                self.pending(img, ps);
                let v = self.log.revert(to, Duration::from_secs(5)).unwrap();
                self.returned(v.as_deref());
            }
            1 => self.txn(6, 0, 2048, false), // spills
            2 => self.txn(6, 0, 2048, true),  // spills, then rolls back
            3 if self.normal => self.log.sync_pending().unwrap(),
            4..=11 => {
                let partial = 1 + self.rng.below(3) as u32;
                self.txn(0, partial, 1 << 20, false) // patches
            }
            _ => {
                let (pages, partial) = (1 + self.rng.below(2) as u32, self.rng.below(2) as u32);
                self.txn(pages, partial, 1 << 20, false)
            }
        }
    }
}

fn run(seed: u64, normal: bool, steps: usize) -> (u64, u64) {
    let dir = Dir::new(&format!("readers-beside-{seed}-{normal}"));
    let path = dir.0.join("torn.db");
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    let tearing = Arc::new(TearingFile {
        shared: Arc::new(Shared { file, inflight: Mutex::new(None) }),
        checker: Mutex::new(None),
        rng: Mutex::new(Rng::new(seed ^ 0xdead)),
    });
    let log = Log::open_with_io(&path, OpenOptions { create: true, ..Default::default() }, tearing.clone()).unwrap();
    let checker = Arc::new(Checker {
        path: path.clone(),
        model: Mutex::new(Model { images: vec![Vec::new()], ps: vec![0], ..Default::default() }),
        reader: Mutex::new(None),
    });
    let mut w = Workload { log: &log, checker: &checker, rng: Rng::new(seed), normal };
    // The first commit creates the header (not torn: see the module doc).
    w.txn(3, 0, 1 << 20, false);
    *tearing.checker.lock().unwrap() = Some(checker.clone());
    for _ in 0..steps {
        w.step();
    }
    drop(log); // closing syncs NORMAL commits and appends a MARK: torn too
    let m = checker.model.lock().unwrap();
    (m.states, m.checks)
}

fn seeds() -> (u64, usize) {
    let n: Option<u64> = std::env::var("PAGELOG_SEEDS").ok().and_then(|s| s.parse().ok());
    if let (true, Some(n)) = (long_mode(), n) {
        return (n, 120);
    }
    if long_mode() {
        (20, 120)
    } else {
        (2, 30)
    }
}

#[test]
fn readers_beside_a_full_writer_see_committed_versions_in_every_partial_state_of_its_writes() {
    let (seeds, steps) = seeds();
    let mut states = 0;
    let only: Option<u64> = std::env::var("SEED").ok().and_then(|s| s.parse().ok());
    for seed in (0..seeds).filter(|s| only.is_none_or(|o| o == *s)) {
        states += run(seed, false, steps).0;
    }
    eprintln!("FULL: {states} partial states checked");
    assert!(states > 1000, "too few partial states ({states}): the writes were not torn");
}

#[test]
fn readers_beside_a_normal_writer_see_committed_versions_in_every_partial_state_of_its_writes() {
    let (seeds, steps) = seeds();
    let mut states = 0;
    let only: Option<u64> = std::env::var("SEED").ok().and_then(|s| s.parse().ok());
    for seed in (100..100 + seeds).filter(|s| only.is_none_or(|o| o == *s)) {
        states += run(seed, true, steps).0;
    }
    eprintln!("NORMAL: {states} partial states checked");
    assert!(states > 1000, "too few partial states ({states}): the writes were not torn");
}
