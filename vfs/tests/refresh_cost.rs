//! What a reader pays when commits land (issue 23): `Log::refresh` reads
//! the file a number of times that does not grow with the number of small
//! commits it walks, and finds nothing to read when nothing was appended.
//!
//! The reader's log goes through [`Counting`], which counts the reads that
//! reach the file (the memory map's are free and uncounted). Before the
//! tail window (vfs/src/tail.rs) a refresh made about five reads per
//! one-page commit it walked (header, metadata, trailer, the frame, the next
//! header); now one read holds the first 16 KiB of new records and each
//! further 16 KiB costs one more.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pagelog::storage::LogFile;
use pagelog::{Durability, Log, OpenOptions};

/// The file, counting reads.
struct Counting {
    file: File,
    reads: AtomicU64,
}

impl LogFile for Counting {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.file.read_at(buf, offset)
    }
    fn read_upto(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.file.read_upto(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        LogFile::len(&self.file)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        LogFile::set_len(&self.file, len)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync()
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pagelog-refresh-cost-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d.join("a.log")
}

/// One commit of page `pgno` (1 KiB pages) filled with `fill`.
fn commit(log: &Log, pgno: u64, fill: u8, level: Durability) {
    let _w = log.lock_writer(Duration::from_secs(1)).unwrap();
    let base = log.prepare_write().unwrap();
    let mut t = log.begin(base, 1 << 20);
    t.write(log, (pgno - 1) * 1024, &[fill; 1024]).unwrap();
    log.commit(t, level).unwrap().unwrap();
}

fn reads_to_follow(level: Durability) -> Vec<(u64, u64)> {
    let p = tmp(&format!("{level:?}"));
    let writer = Log::open(&p, OpenOptions { create: true, ..Default::default() }).unwrap();
    for pg in 1..=8 {
        commit(&writer, pg, pg as u8, level);
    }
    let io = Arc::new(Counting { file: File::open(&p).unwrap(), reads: AtomicU64::new(0) });
    let reader =
        Log::open_with_io(&p, OpenOptions { read_only: true, ..Default::default() }, io.clone() as Arc<dyn LogFile>)
            .unwrap();
    assert_eq!(reader.refresh().unwrap().number, 8);
    let mut out = Vec::new();
    let mut fill = 100u8;
    for k in [0u64, 1, 1, 5, 10, 40] {
        for i in 0..k {
            fill = fill.wrapping_add(1);
            commit(&writer, 2 + i % 6, fill, level);
        }
        let before = io.reads.load(Ordering::Relaxed);
        let v = reader.refresh().unwrap();
        let reads = io.reads.load(Ordering::Relaxed) - before;
        // The reader follows exactly, and reads what the writer wrote.
        let w = writer.latest();
        assert_eq!(v.number, w.number);
        for pg in 1..=8 {
            assert_eq!(v.page(pg).unwrap(), w.page(pg).unwrap(), "page {pg} at version {}", v.number);
        }
        out.push((k, reads));
    }
    let _ = std::fs::remove_dir_all(p.parent().unwrap());
    out
}

fn check(level: Durability) {
    let got = reads_to_follow(level);
    println!("{level:?}: (commits walked, reads) {got:?}");
    for &(k, reads) in &got {
        // Each one-page commit is about 1.2 KiB of log (a MARK after it
        // under FULL): 40 of them fill three or four 16 KiB windows.
        let bound = match k {
            0 => 1, // the first look only: nothing appended
            _ => 2 + (k * 1300).div_ceil(16 << 10),
        };
        assert!(reads <= bound, "{level:?}: walking {k} commits took {reads} reads (at most {bound}): {got:?}");
    }
}

#[test]
fn a_refresh_reads_the_file_about_once_whatever_the_number_of_small_commits_it_walks_full() {
    check(Durability::Full);
}

#[test]
fn a_refresh_reads_the_file_about_once_whatever_the_number_of_small_commits_it_walks_normal() {
    check(Durability::Normal);
}
