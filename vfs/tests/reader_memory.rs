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
