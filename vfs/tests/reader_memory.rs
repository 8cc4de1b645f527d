//! A long-lived reader's memory (issue 21): what a process that opened a
//! log and read every page keeps of the log's memory map in its resident
//! set. Opening reads the records since the last full map (format 3) or
//! checkpoint (format 4) out of the map, and each page touched through a
//! shared map stays in the process's RSS (with the page cache's folio
//! around it) until given back; SQLite's page reads go through `pread`.
//! So after the open and a read of every page, the process holds at most a
//! few pages of the map, whatever the span of log the open walked. Counted
//! by the kernel's own accounting (`/proc/self/pagemap`: a page mapped in
//! this process), not by timing. Linux only.

#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use common::Dir;
use pagelog::{Durability, Log, OpenOptions};

const PS: usize = 4096;
const PAGES: u32 = 2_048;
/// One-page commits after the first: format 3 writes its next full map
/// after 256 (`max(pages / 64, 256)`), so the open walks ~140 of them
/// (~600 KiB of log); format 4 walks all of them.
const COMMITS: u32 = 400;
/// Pages of the log's maps a reader may keep: the page holding the walk's
/// end and a few more.
const KEPT_AT_MOST: usize = 8;

fn page(p: u32, g: u32) -> Vec<u8> {
    let mut b = vec![0u8; PS];
    for (i, run) in b.chunks_mut(64).enumerate() {
        run[0..4].copy_from_slice(&p.to_le_bytes());
        run[4..8].copy_from_slice(&g.to_le_bytes());
        run[8..12].copy_from_slice(&(i as u32).to_le_bytes());
    }
    b
}

fn write_log(path: &Path, format4: bool) {
    let log = Log::open(path, OpenOptions { create: true, format4, ..Default::default() }).unwrap();
    let t = Duration::from_secs(5);
    let commit = |pages: &mut dyn Iterator<Item = (u32, u32)>| {
        let _w = log.lock_writer(t).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 30);
        for (p, g) in pages {
            txn.write(&log, (p as u64 - 1) * PS as u64, &page(p, g)).unwrap();
        }
        log.commit(txn, Durability::Normal).unwrap().expect("a version");
    };
    commit(&mut (1..=PAGES).map(|p| (p, 0)));
    for i in 1..=COMMITS {
        commit(&mut std::iter::once((2 + i * 37 % (PAGES - 1), i)));
    }
}

/// Pages of `path`'s memory maps that are mapped in this process.
fn resident_pages_of(path: &Path) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut pagemap = std::fs::File::open("/proc/self/pagemap").unwrap();
    let page = 4096u64;
    let mut n = 0;
    for line in maps.lines().filter(|l| l.ends_with(&*path.to_string_lossy())) {
        let range = line.split_whitespace().next().unwrap();
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (u64::from_str_radix(a, 16).unwrap(), u64::from_str_radix(b, 16).unwrap());
        let mut entries = vec![0u8; ((b - a) / page * 8) as usize];
        pagemap.seek(SeekFrom::Start(a / page * 8)).unwrap();
        pagemap.read_exact(&mut entries).unwrap();
        // Bit 63: present (readable without privileges; the frame number
        // is zeroed for them, not this bit).
        n += entries.chunks_exact(8).filter(|e| u64::from_le_bytes((*e).try_into().unwrap()) >> 63 == 1).count();
    }
    n
}

fn a_reader_of_every_page_keeps_almost_none_of_the_map(format4: bool) {
    let dir = Dir::new(if format4 { "reader-memory-4" } else { "reader-memory-3" });
    let path = dir.0.join("r.db");
    write_log(&path, format4);
    let log = Log::open(&path, OpenOptions::default()).unwrap();
    let after_open = resident_pages_of(&path);
    let v = log.latest();
    let mut buf = vec![0u8; PS];
    for p in 1..=PAGES {
        v.read((p as u64 - 1) * PS as u64, &mut buf).unwrap();
        if p > 1 {
            assert_eq!(&buf[..4], &p.to_le_bytes(), "page {p}");
        }
    }
    let after_reads = resident_pages_of(&path);
    assert!(
        after_open <= KEPT_AT_MOST && after_reads <= KEPT_AT_MOST,
        "format {}: {after_open} pages of the log's maps resident after the open, {after_reads} after reading \
         every page (at most {KEPT_AT_MOST})",
        if format4 { 4 } else { 3 }
    );
}

#[test]
fn a_format_3_reader_of_every_page_keeps_almost_none_of_the_log_map() {
    a_reader_of_every_page_keeps_almost_none_of_the_map(false);
}

#[test]
fn a_format_4_reader_of_every_page_keeps_almost_none_of_the_log_map() {
    a_reader_of_every_page_keeps_almost_none_of_the_map(true);
}

/// Pages and one-page commits of the bounded-caches test: 256 leaves, four
/// inner nodes under the root, and a patch for each of 1,200 pages.
const BIG_PAGES: u32 = 4_096;
const PATCHED: u32 = 1_200;

/// A format-4 log of `BIG_PAGES` pages, then `PATCHED` one-page commits,
/// each changing 4 bytes in every 64 of another page (stored as a patch).
fn write_patched_log(path: &Path) {
    let log = Log::open(path, OpenOptions { create: true, format4: true, ..Default::default() }).unwrap();
    let t = Duration::from_secs(5);
    let commit = |pages: &mut dyn Iterator<Item = (u32, u32)>| {
        let _w = log.lock_writer(t).unwrap();
        let base = log.prepare_write().unwrap();
        let mut txn = log.begin(base, 1 << 30);
        for (p, g) in pages {
            txn.write(&log, (p as u64 - 1) * PS as u64, &page(p, g)).unwrap();
        }
        log.commit(txn, Durability::Off).unwrap().expect("a version");
    };
    commit(&mut (1..=BIG_PAGES).map(|p| (p, 0)));
    // 37 is prime to 4,095: each commit patches a page no other did.
    for i in 1..=PATCHED {
        commit(&mut std::iter::once((2 + i * 37 % (BIG_PAGES - 1), i)));
    }
}

/// What a long-lived reader remembers of the log (the leaf table, inner
/// index nodes, checked patches) stays within fixed bounds however many
/// leaves, nodes and patched pages it reads, so its memory does not grow
/// with the database (issue 21; at 16 GiB the tree has 262,144 leaves and
/// 4,161 inner nodes, and 100,000 one-row commits leave ~100,000 patches).
/// The bounds are lowered for the test (`Log::limit_remembered`) so that a
/// 16 MiB log exceeds each of them; every page still reads back as written.
#[test]
fn a_long_lived_reader_remembers_a_bounded_amount_of_the_log() {
    let dir = Dir::new("reader-memory-bounded");
    let path = dir.0.join("r.db");
    write_patched_log(&path);
    let log = Log::open(&path, OpenOptions::default()).unwrap();
    // 64 leaves (of 256), 2 inner nodes (of 5), 256 patches (of 1,200).
    let (leaves, inner, patches) = (64, 2, 256);
    log.limit_remembered(leaves, inner, patches);
    let v = log.latest();
    let mut buf = vec![0u8; PS];
    let patched: std::collections::HashMap<u32, u32> =
        (1..=PATCHED).map(|i| (2 + i * 37 % (BIG_PAGES - 1), i)).collect();
    // Twice over, so that what was forgotten is read and checked again.
    for round in 0..2 {
        for p in 1..=BIG_PAGES {
            v.read((p as u64 - 1) * PS as u64, &mut buf).unwrap();
            let g = patched.get(&p).copied().unwrap_or(0);
            assert_eq!(buf, page(p, g), "page {p}, round {round}");
        }
    }
    let r = log.remembered_bytes();
    // A leaf-table entry is 240 bytes; an inner node 1,032 bytes plus its
    // table bucket and key (under 100 bytes); a patch entry 16 bytes.
    let nodes_at_most = leaves * 240 + inner * (1_032 + 100) + 256;
    assert!(r.nodes <= nodes_at_most, "index nodes: {} bytes held, at most {nodes_at_most}", r.nodes);
    assert!(r.patches > 0, "the commits were stored as patches, and the reader checked them");
    assert!(r.patches <= patches * 16, "patches: {} bytes held, at most {}", r.patches, patches * 16);
    assert!(r.frame_tags <= 1 << 20, "frame tags: {} bytes", r.frame_tags);
}
