//! `Log::version(n)` while another `Log` on the same file reclaims (format
//! 4, in development; issue 20): the answer is version `n` or
//! `Error::Reclaimed`, never damage.
//!
//! Opening an old version walks commit records back from the latest and
//! reads `n`'s full map and deltas, holding no epoch lock (a `?version=N`
//! connection does this when SQLite opens it, before its first read
//! transaction takes one). A step in another process may free and punch
//! those records mid-walk; the walk then read zeros and reported the log
//! corrupt ("expected a commit record on the way to version N, found
//! none", found by `retention_under_kill.rs` through a `?version=N`
//! reader). Every punch follows a CONTROL record of a newer epoch, so the
//! walk is now made again when the epoch moved, and says `Reclaimed`.
//!
//! A second bug of the same kind: a `Log` whose view ends in a region a
//! step punched (it held no epoch lock: an idle connection while the writer
//! ran ahead by more than the policy keeps) found zeros where its last
//! record's trailer was, took that for "nothing appended", and served its
//! stale latest version, whose pages are freed, for ever ("a patch ...
//! base 0" through SQLite). `refresh` now recovers afresh when the end of
//! its view is gone; the second test shows it deterministically.
//!
//! Here one thread commits and reclaims as fast as it can under a policy of
//! two versions while another asks for the oldest kept versions through
//! its own `Log` (its own file description: the writer's punch does not
//! see it as a reader). Runs 5 s by default; `PAGELOG_STRESS_SECS=N` or
//! `PAGELOG_LONG=1` (60 s) for longer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pagelog::retention::Policy;
use pagelog::{Durability, Error, Log, OpenOptions};
use pagelog_e2e::{stress_seconds, TempDir};

const PS: usize = 1024;
const PAGES: usize = 16;
const T: Duration = Duration::from_secs(5);

#[test]
fn opening_an_old_version_while_another_log_reclaims_gives_it_or_reclaimed_never_damage() {
    let d = TempDir::new("retain-version-race");
    let p = d.path("race.db");
    let w = Log::open(&p, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let commit = |i: usize| {
        let _g = w.lock_writer(T).unwrap();
        let base = w.prepare_write().unwrap();
        let mut txn = w.begin(base, 1 << 20);
        if i == 0 {
            let mut img = vec![b'X'; PAGES * PS];
            img[0..16].copy_from_slice(b"not SQLite here\0");
            txn.write(&w, 0, &img).unwrap();
        } else {
            let page = vec![(i % 251) as u8; PS];
            txn.write(&w, ((1 + i % (PAGES - 1)) * PS) as u64, &page).unwrap();
        }
        w.commit(txn, Durability::Normal).unwrap().expect("a version");
    };
    commit(0);
    w.set_retention(Policy::parse("2 versions").unwrap(), T).unwrap();
    let secs = stress_seconds(5.0);
    let stop = AtomicBool::new(false);
    let (commits, asked, reclaimed) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let r = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).unwrap();
            let (mut asked, mut reclaimed) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let latest = r.refresh().unwrap().number;
                let oldest = r.oldest_kept().unwrap_or(1);
                for n in oldest..=latest.min(oldest + 3) {
                    match r.version(n) {
                        Ok(v) => assert_eq!(v.number, n),
                        Err(Error::Reclaimed { oldest: o, .. }) => {
                            assert!(o > n, "version {n} refused as reclaimed, naming oldest {o}");
                            reclaimed += 1;
                        }
                        Err(e) => {
                            let mut at = String::new();
                            if let Error::Corrupt { offset, .. } = &e {
                                use std::os::unix::fs::FileExt;
                                let mut b = [0u8; 32];
                                let f = std::fs::File::open(&p).unwrap();
                                let _ = f.read_exact_at(&mut b, *offset);
                                at = format!("; bytes there now {b:02x?}");
                            }
                            let fresh = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).unwrap();
                            panic!(
                                "version {n} (oldest kept {oldest}, latest {latest}): {e}{at}; this log now: oldest {:?} \
                                 latest {}; a fresh open: oldest {:?} latest {}",
                                r.oldest_kept(),
                                r.latest().number,
                                fresh.oldest_kept(),
                                fresh.latest().number
                            )
                        }
                    }
                    asked += 1;
                }
            }
            (asked, reclaimed)
        });
        let start = Instant::now();
        let mut i = 1;
        while start.elapsed().as_secs_f64() < secs && !reader.is_finished() {
            commit(i);
            w.reclaim(1 << 30, T).unwrap();
            i += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let (asked, reclaimed) = reader.join().unwrap();
        (i, asked, reclaimed)
    });
    eprintln!("{commits} commits with a step after each; {asked} versions asked for, {reclaimed} refused as reclaimed");
    assert!(w.oldest_kept().is_some_and(|o| o > 1), "nothing was reclaimed: the test proves nothing");
}

/// A reader `Log` left behind by more than the policy keeps, its view's end
/// punched, sees the latest version at its next refresh and reads it.
#[test]
fn a_log_whose_view_was_reclaimed_catches_up_at_its_next_refresh() {
    let d = TempDir::new("retain-stale-view");
    let p = d.path("stale.db");
    let w = Log::open(&p, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let commit = |i: usize| {
        let _g = w.lock_writer(T).unwrap();
        let base = w.prepare_write().unwrap();
        let mut txn = w.begin(base, 1 << 20);
        let page = vec![(i % 251) as u8; PS];
        txn.write(&w, ((i % PAGES) * PS) as u64, &page).unwrap();
        w.commit(txn, Durability::Normal).unwrap().expect("a version");
    };
    for i in 0..PAGES {
        commit(i);
    }
    w.set_retention(Policy::parse("2 versions").unwrap(), T).unwrap();
    let r = Log::open(&p, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let behind = r.refresh().unwrap().number;
    // Past two full maps (every 256 commits), then every step there is.
    for i in PAGES..PAGES + 600 {
        commit(i);
    }
    while w.reclaim(1 << 30, T).unwrap().appended > 0 {}
    let oldest = w.oldest_kept().expect("steps ran");
    assert!(oldest > behind + 1, "the reader's view ({behind}) was not reclaimed (oldest kept {oldest})");
    let latest = w.latest().number;
    let v = r.refresh().unwrap();
    assert_eq!(v.number, latest, "a reader left behind a reclamation kept its stale view of version {behind}");
    assert_eq!(r.oldest_kept(), Some(oldest));
    let mut buf = vec![0u8; v.size_bytes() as usize];
    v.read(0, &mut buf).unwrap();
    let mut want = vec![0u8; PAGES * PS];
    for i in 0..PAGES + 600 {
        want[(i % PAGES) * PS..(i % PAGES + 1) * PS].fill((i % 251) as u8);
    }
    assert!(buf == want, "the latest version reads other bytes through the reader");
}
