//! Read in place (format 4; FORMAT.md, "The boundary"; docs/format-4.md,
//! "Punching dead frames in place", step 3 without recycling): when a step
//! moves the boundary `B` past a live frame of an ALIGNED record, the frame
//! stays where it is, and readers read it there, instead of the step
//! copying it into its CONTROL record.
//!
//! Checked with real files: no page is copied by the steps of a policy's
//! steady state, the CONTROL records stay small, every kept version reads
//! back exactly (the writer's handle, a fresh open, `verify`), a frame left
//! in place is punched once it dies (its bytes gone from the file), and a
//! frame read in place that is punched while a held version still reaches
//! it is damage naming its offset, never a page of zeros.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Dir, Rng};
use pagelog::retention::Policy;
use pagelog::{Durability, Error, Log, OpenOptions};

const PS: usize = 4096;
const PAGES: usize = 64;
/// Commits write only pages 1..=HOT: the load's other pages stay as it wrote
/// them, live in every version.
const HOT: u64 = 8;
const T: Duration = Duration::from_secs(5);

struct Model {
    images: Vec<Vec<u8>>,
    rng: Rng,
}

fn marker(page: usize, v: usize) -> Vec<u8> {
    format!("IN-PLACE-{page:04}-{v:07}-").into_bytes()
}

impl Model {
    /// One commit writing `page` whole (the first: the load, every page),
    /// each page image carrying a marker of its page and version.
    fn commit_page(&mut self, log: &Log, page: usize) -> u64 {
        let v = self.images.len();
        let mut img = self.images.last().cloned().unwrap_or_default();
        let _w = log.lock_writer(T).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 20);
        if img.is_empty() {
            img = vec![b'X'; PAGES * PS];
            for p in 0..PAGES {
                let m = marker(p + 1, v);
                img[p * PS + 100..p * PS + 100 + m.len()].copy_from_slice(&m);
            }
            txn.write(log, 0, &img).unwrap();
        } else {
            let mut d = self.rng.bytes(PS);
            d[0] = b'X';
            let m = marker(page, v);
            d[100..100 + m.len()].copy_from_slice(&m);
            txn.write(log, ((page - 1) * PS) as u64, &d).unwrap();
            img[(page - 1) * PS..page * PS].copy_from_slice(&d);
        }
        let got = log.commit(txn, Durability::Normal).unwrap().expect("a version");
        assert_eq!(got.number as usize, v);
        self.images.push(img);
        got.number
    }

    fn commit(&mut self, log: &Log) -> u64 {
        let p = 1 + self.rng.below(HOT) as usize;
        self.commit_page(log, p)
    }

    fn check_kept(&self, log: &Log, path: &Path) {
        common::check_kept(&self.images, log, path);
    }
}

/// Where `m` first lies in the file (None: nowhere).
fn position(path: &Path, m: &[u8]) -> Option<u64> {
    let b = std::fs::read(path).unwrap();
    b.windows(m.len()).position(|w| w == m).map(|x| x as u64)
}

/// A log loaded with PAGES pages in one (ALIGNED) record, a policy of 20
/// versions, and `commits` one-page commits of the hot pages with a step
/// every 10. Returns the pages the steps copied and the bytes of their
/// CONTROL records, with the bytes committed meanwhile.
///
/// Without recycling (`no_recycling`): what is measured is what a step
/// copies of frames left in place. With it, a frame a kept commit (not the
/// oldest) wrote into a recycled slot is copied once when the boundary
/// passes it, as a straggler (4 pages in this run; `slots.rs`).
fn setup(dir: &Dir, seed: u64, commits: usize) -> (Log, std::path::PathBuf, Model, u64, u64, u64) {
    let path = dir.0.join("r.db");
    let opts = OpenOptions { create: true, format4: true, no_recycling: true, ..Default::default() };
    let log = Log::open(&path, opts).unwrap();
    let mut m = Model { images: vec![Vec::new()], rng: Rng::new(seed) };
    m.commit_page(&log, 0);
    log.set_retention(Policy::parse("20 versions").unwrap(), T).unwrap();
    let start = log.latest().end;
    let (mut relocated, mut control) = (0, 0);
    for i in 0..commits {
        m.commit(&log);
        if i % 10 == 9 {
            let r = log.reclaim(64 << 10, T).unwrap();
            relocated += r.relocated;
            control += r.appended;
        }
    }
    let committed = log.latest().end - start - control;
    (log, path, m, relocated, control, committed)
}

#[test]
fn live_frames_of_aligned_records_stay_in_place_below_the_boundary_and_are_punched_once_dead() {
    let dir = Dir::new("in-place");
    let (log, path, mut m, relocated, control, committed) = setup(&dir, 7, 600);
    let b = log.retention_state().boundary;
    let vo = log.oldest_kept().expect("reclaimed") as usize;
    println!(
        "pages copied by the steps: {relocated}; CONTROL bytes {control} for {committed} bytes committed ({:.3} per \
         byte); boundary {b}, oldest kept {vo}",
        control as f64 / committed as f64
    );
    assert!(b > (PAGES * PS) as u64, "the boundary passed the load: {b}");
    // The load's cold pages and every hot frame live at a step stayed where
    // they were: nothing was copied.
    assert_eq!(relocated, 0, "pages copied by the steps");
    assert!(control * 20 < committed, "CONTROL records {control} bytes for {committed} committed");
    // A cold page is read below B, where the load wrote it.
    let cold = position(&path, &marker(40, 1)).expect("the load's page 40");
    assert!(cold < b, "page 40 of the load lies below B ({cold}, {b})");
    m.check_kept(&log, &path);

    // Page 40 is rewritten; once its old frame leaves the kept versions, a
    // step lists it and the next releases it: its bytes leave the file.
    let v = m.commit_page(&log, 40);
    for i in 0..60 {
        m.commit(&log);
        if i % 10 == 9 {
            log.reclaim(64 << 10, T).unwrap();
        }
    }
    assert!(log.oldest_kept().unwrap() > v, "the old frame's last version is reclaimed");
    log.reclaim(64 << 10, T).unwrap();
    log.reclaim(64 << 10, T).unwrap();
    assert_eq!(position(&path, &marker(40, 1)), None, "the dead frame left in place was punched");
    assert!(position(&path, &marker(41, 1)).is_some_and(|x| x < log.retention_state().boundary));
    m.check_kept(&log, &path);
    // What the size form counts: the frames held in place below B too.
    let st = log.retention_state();
    assert!(
        log.bytes_in_use() >= 512 + (log.latest().end - st.boundary) + (PAGES - 1 - HOT as usize) as u64 * 4096 - 4096
    );
}

#[test]
fn a_frame_read_in_place_that_was_punched_is_damage_naming_its_offset() {
    let dir = Dir::new("in-place-damage");
    let (log, path, m, _, _, _) = setup(&dir, 11, 300);
    let b = log.retention_state().boundary;
    let cold = position(&path, &marker(50, 1)).expect("the load's page 50") / PS as u64 * PS as u64;
    assert!(cold < b, "page 50 of the load lies below B");
    drop(log);
    // A hole where a held version's page lies: damage, not zeros.
    {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        // SAFETY: fallocate(2) on a descriptor this test owns.
        let rc = unsafe {
            libc::fallocate(
                f.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                cold as libc::off_t,
                PS as libc::off_t,
            )
        };
        assert_eq!(rc, 0);
    }
    let log = Log::open(&path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let latest = m.images.len() as u64 - 1;
    let v = log.version(latest).unwrap();
    let mut page = vec![0u8; PS];
    match v.read(49 * PS as u64, &mut page) {
        Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, cold),
        other => panic!("a punched frame read in place: {other:?}"),
    }
    let rep = log.verify();
    let p = rep.damage().expect("verify calls it damage");
    assert_eq!(p.offset, cold, "{p}");
}
