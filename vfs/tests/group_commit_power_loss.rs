//! Power loss with interleaved group commits (`src/group.rs`).
//!
//! Two writers (two `Log` handles on one [`SimDisk`]: two open file
//! descriptions sharing one page cache, as two processes do) interleave
//! FULL commits the way group commit lets them: A appends and releases
//! WRITER, B appends behind A's pending commit, then each waits for a sync
//! in some order, one sync often covering both. A reader (a third handle)
//! refreshes between steps. Then power fails after every operation the
//! disk saw, with random subsets of the unsynced writes kept, dropped or
//! torn (`common::crash_image`), and each image is recovered:
//! 1. no returned commit is lost: recovery reaches at least the newest
//!    version whose `finish_commit` had returned before the failure;
//! 2. no version was visible before its sync: recovery reaches at least
//!    the newest version the reader had been given before the failure;
//! 3. the recovered version's pages are exactly what was committed as it.
//!
//! `PAGELOG_LONG=1` runs more seeds and steps.

mod common;

use std::time::Duration;

use common::{long_mode, Dir, Rng, SimDisk};
use pagelog::group::Pending;
use pagelog::{Durability, Log, OpenOptions};

const PS: usize = 4096;
const PAGES: u64 = 3;

/// What happened, as the disk's operation count when it happened.
#[derive(Default)]
struct Events {
    /// (ops done, version) when a commit returned.
    returned: Vec<(usize, u64)>,
    /// (ops done, version) when the reader was given a version.
    seen: Vec<(usize, u64)>,
}

fn append(log: &Log, images: &mut Vec<Vec<u8>>, rng: &mut Rng) -> Pending {
    let _w = log.lock_writer(Duration::from_secs(10)).unwrap();
    let base = log.prepare_write().unwrap();
    let mut img = images[base.number as usize].clone();
    let mut t = log.begin(base.clone(), 1 << 20);
    let tag = (base.number + 1) as u8;
    for pg in 0..PAGES {
        if pg == 0 || base.number == 0 || rng.chance(1, 2) {
            let page = vec![tag ^ pg as u8; PS];
            t.write(log, pg * PS as u64, &page).unwrap();
            img[pg as usize * PS..(pg as usize + 1) * PS].copy_from_slice(&page);
        }
    }
    let p = log.commit_appended(t, Durability::Full).unwrap().unwrap();
    assert_eq!(images.len() as u64, base.number + 1);
    images.push(img);
    p // WRITER is released here, before the sync
}

fn run(seed: u64, steps: usize) -> usize {
    let dir = Dir::new("group-power");
    let p = dir.0.join("a.log");
    let disk = SimDisk::create(&p, &[]);
    let open = || Log::open_with_io(&p, OpenOptions { create: true, ..Default::default() }, disk.clone()).unwrap();
    let (a, b, reader) = (open(), open(), open());
    let mut rng = Rng::new(seed);
    let mut images = vec![vec![0u8; 0]];
    // Version 1: every page (the log's first commit, synced under WRITER).
    images[0] = vec![0u8; PAGES as usize * PS];
    {
        let p1 = append(&a, &mut images, &mut rng);
        a.finish_commit(p1).unwrap();
    }
    let first_op = disk.op_count();
    let mut ev = Events::default();
    let writers = [&a, &b];
    let mut pending: [Option<Pending>; 2] = [None, None];
    for _ in 0..steps {
        let w = rng.below(2) as usize;
        match pending[w].take() {
            None => pending[w] = Some(append(writers[w], &mut images, &mut rng)),
            Some(pd) => {
                let v = writers[w].finish_commit(pd).unwrap().number;
                ev.returned.push((disk.op_count(), v));
            }
        }
        if rng.chance(1, 2) {
            let v = reader.refresh().unwrap().number;
            ev.seen.push((disk.op_count(), v));
        }
    }
    for (w, pd) in pending.iter_mut().enumerate() {
        if let Some(pd) = pd.take() {
            let v = writers[w].finish_commit(pd).unwrap().number;
            ev.returned.push((disk.op_count(), v));
        }
    }
    let last_op = disk.op_count();
    let mut checked = 0;
    let q = dir.0.join("crashed.log");
    for k in first_op..=last_op {
        let must = |xs: &[(usize, u64)]| xs.iter().filter(|(at, _)| *at <= k).map(|(_, v)| *v).max().unwrap_or(1);
        let (returned, seen) = (must(&ev.returned), must(&ev.seen));
        for _ in 0..2 {
            let img = disk.crash_image(&[], k, &mut rng);
            std::fs::write(&q, &img).unwrap();
            let log = Log::open(&q, OpenOptions::default())
                .unwrap_or_else(|e| panic!("seed {seed}, crash after op {k}: recovery failed: {e}"));
            let v = log.refresh().unwrap();
            let what = format!("seed {seed}, crash after op {k} of {last_op}");
            assert!(v.number >= returned, "{what}: recovered version {}, but {returned} had returned", v.number);
            assert!(v.number >= seen, "{what}: recovered version {}, but a reader had seen {seen}", v.number);
            let want = &images[v.number as usize];
            for pg in 1..=PAGES as u32 {
                let got = v.page(pg).unwrap().unwrap();
                let at = (pg as usize - 1) * PS;
                assert!(got[..] == want[at..at + PS], "{what}: version {} page {pg} differs", v.number);
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn interleaved_group_commits_lose_no_returned_commit_and_show_none_before_its_sync() {
    let (seeds, steps) = if long_mode() { (40, 60) } else { (8, 24) };
    let mut images = 0;
    for seed in 1..=seeds {
        images += run(seed, steps);
    }
    println!("{images} crash images recovered");
}
