//! Patches (format 3, FORMAT.md "Patches") through the log's Rust API: small
//! changes are stored as patches and read back exactly, in every version,
//! after reopening and after compaction; large changes and bulk transactions
//! store images; a format-2 log is written in format 2, without patches,
//! until `pagelog upgrade` (compaction keeping every version) rewrites it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pagelog::compact::{compact, Keep};
use pagelog::patch;
use pagelog::{Durability, Log, OpenOptions};

const PS: usize = 4096;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pagelog-patches-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d.join("a.log")
}

/// A page that is not an SQLite header, different for every seed.
fn page(seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut v: Vec<u8> = (0..PS).map(|_| pagelog::format::splitmix64(&mut s) as u8).collect();
    v[0] = b'F';
    v
}

/// Commits `pages` (pgno, bytes); returns the new version's number.
fn commit(log: &Log, pages: &[(u32, Vec<u8>)]) -> u64 {
    let _w = log.lock_writer(Duration::from_secs(5)).unwrap();
    let base = log.prepare_write().unwrap();
    let mut t = log.begin(base, 1 << 20);
    for (p, data) in pages {
        t.write(log, (*p as u64 - 1) * data.len() as u64, data).unwrap();
    }
    log.commit(t, Durability::Full).unwrap().unwrap().number
}

/// The pages of every version, as read.
fn all_versions(log: &Log) -> Vec<Vec<Vec<u8>>> {
    (1..=log.latest().number)
        .map(|n| {
            let v = log.version(n).unwrap();
            (1..=v.db_pages()).map(|p| v.page(p).unwrap().unwrap().to_vec()).collect()
        })
        .collect()
}

fn ro(p: &Path) -> Log {
    Log::open(p, OpenOptions { read_only: true, ..Default::default() }).unwrap()
}

/// Builds a log: 4 pages, then `edits` commits each changing 40 bytes of one
/// page, then one commit rewriting page 3 whole.
fn build(p: &Path, edits: usize) -> Vec<Vec<Vec<u8>>> {
    let log = Log::open(p, OpenOptions { create: true, ..Default::default() }).unwrap();
    let mut pages: Vec<Vec<u8>> = (1..=4).map(page).collect();
    commit(&log, &pages.iter().enumerate().map(|(i, d)| (i as u32 + 1, d.clone())).collect::<Vec<_>>());
    for k in 0..edits {
        let i = k % 3;
        let at = 7 + (k * 131) % (PS - 60);
        pages[i][at..at + 40].copy_from_slice(&page(1000 + k as u64)[..40]);
        commit(&log, &[(i as u32 + 1, pages[i].clone())]);
    }
    pages[2] = page(99);
    commit(&log, &[(3, pages[2].clone())]);
    all_versions(&log)
}

#[test]
fn small_changes_are_patches_that_read_back_exactly_in_every_version() {
    let p = tmp("small");
    let want = build(&p, 150);
    let log = ro(&p);
    assert_eq!(all_versions(&log), want, "every version reads back after reopening");
    let latest = log.latest();
    let mut patches = 0;
    let mut images = 0;
    for n in 2..=latest.number {
        let (v, w) = (log.version(n).unwrap(), log.version(n - 1).unwrap());
        for pg in 1..=v.db_pages() {
            let s = v.map.get(pg).unwrap();
            if Some(s) != w.map.get(pg) {
                if patch::is_patch(s.offset) {
                    patches += 1;
                } else {
                    images += 1;
                }
            }
        }
    }
    // 150 edits of 40 bytes, 50 to each page: cumulative patches stay under
    // the 724-byte bound for about 16 edits, then the page is stored whole
    // again; the whole rewrite of page 3 is an image.
    assert!(patches >= 120, "{patches} patches, {images} images");
    assert!(images >= 6, "{patches} patches, {images} images");
    let last = latest.map.get(3).unwrap();
    assert!(!patch::is_patch(last.offset), "a page rewritten whole is stored whole");
    let rep = log.verify();
    assert!(!rep.damaged() && rep.tail.as_ref().is_none_or(|t| t.zeros), "{rep:?}");
    // Bytes (up to the log end, not counting pre-allocated zeros): far
    // less than a page per one-page commit.
    let bytes = latest.end;
    assert!(bytes < 152 * PS as u64 / 4, "{bytes} bytes for 152 commits");
}

#[test]
fn compaction_keeps_patches_whose_base_it_keeps_and_every_kept_version_reads_the_same() {
    let p = tmp("compact");
    let want = build(&p, 150);
    let before = std::fs::metadata(&p).unwrap().len();
    let stats = compact(&p, Keep::Last(60), &mut |_, _| {}).unwrap();
    assert!(stats.rewritten);
    let log = ro(&p);
    let first = log.oldest_version().unwrap();
    assert_eq!(first, stats.first_kept);
    for n in first..=log.latest().number {
        let v = log.version(n).unwrap();
        let got: Vec<Vec<u8>> = (1..=v.db_pages()).map(|pg| v.page(pg).unwrap().unwrap().to_vec()).collect();
        assert_eq!(got, want[n as usize - 1], "version {n} after compaction");
    }
    let v = log.latest();
    let kept_patches = (first..=v.number)
        .flat_map(|n| {
            let v = log.version(n).unwrap();
            (1..=v.db_pages()).map(move |pg| v.map.get(pg).unwrap().offset).collect::<Vec<_>>()
        })
        .filter(|&o| patch::is_patch(o))
        .count();
    assert!(kept_patches > 0, "patches whose base was kept stay patches");
    let after = std::fs::metadata(&p).unwrap().len();
    assert!(after < before, "keeping half the versions shrinks the log: {before} -> {after}");
    assert!(!log.verify().damaged());
}

#[test]
fn a_format_2_log_is_written_in_format_2_until_upgraded() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/format2-base0-deltas.log");
    let p = tmp("format2");
    std::fs::copy(&corpus, &p).unwrap();
    let log = Log::open(&p, OpenOptions::default()).unwrap();
    assert_eq!(log.header().unwrap().unwrap().format, 2);
    let v = log.latest();
    let ps = v.page_size as usize;
    let mut p2 = v.page(2).unwrap().unwrap().to_vec();
    p2[10] ^= 0xFF; // a one-byte change: a patch in format 3
    let n = commit(&log, &[(2, p2.clone())]);
    let s = log.latest().map.get(2).unwrap();
    assert!(!patch::is_patch(s.offset), "no patch in a format-2 log");
    drop(log);
    let log = ro(&p);
    assert_eq!(log.header().unwrap().unwrap().format, 2, "the header is untouched");
    assert_eq!(log.latest().number, n);
    assert_eq!(log.latest().page(2).unwrap().unwrap().as_ref(), &p2[..]);
    assert!(!log.verify().damaged());
    let old = all_versions(&log);
    drop(log);

    // `pagelog upgrade`: compaction keeping every version, in format 3.
    compact(&p, Keep::All, &mut |_, _| {}).unwrap();
    let log = Log::open(&p, OpenOptions::default()).unwrap();
    assert_eq!(log.header().unwrap().unwrap().format, pagelog::format::FORMAT_VERSION);
    assert_eq!(all_versions(&log), old, "every version kept");
    p2[20] ^= 0xFF;
    commit(&log, &[(2, p2.clone())]);
    assert!(patch::is_patch(log.latest().map.get(2).unwrap().offset), "format 3: a patch");
    assert_eq!(ps, p2.len());
    drop(log);
    assert_eq!(ro(&p).latest().page(2).unwrap().unwrap().as_ref(), &p2[..]);
}

#[test]
fn a_transaction_of_more_than_64_pages_stores_images() {
    let p = tmp("bulk");
    let log = Log::open(&p, OpenOptions { create: true, ..Default::default() }).unwrap();
    let mut pages: Vec<(u32, Vec<u8>)> = (1..=80).map(|i| (i, page(i as u64))).collect();
    commit(&log, &pages);
    for (_, d) in &mut pages {
        d[100] ^= 1;
    }
    commit(&log, &pages);
    let v = log.latest();
    assert!((1..=80).all(|pg| !patch::is_patch(v.map.get(pg).unwrap().offset)));
    commit(
        &log,
        &pages[..64]
            .iter()
            .map(|(p, d)| {
                (*p, {
                    let mut d = d.clone();
                    d[200] ^= 1;
                    d
                })
            })
            .collect::<Vec<_>>(),
    );
    let v = log.latest();
    assert!((1..=64).all(|pg| patch::is_patch(v.map.get(pg).unwrap().offset)), "64 pages: patches");
}
