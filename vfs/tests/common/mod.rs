//! The simulated disk shared by the power-loss simulations (`crash_sim.rs`:
//! the log alone; `crash_sim_sqlite.rs`: SQLite through the VFS).
//!
//! # The disk model (FORMAT.md, "Durability")
//! [`SimDisk`] is a [`LogFile`] that models a disk behind a page cache. Every
//! write and truncation goes through to the real file at once (the log's
//! memory map must see it), and is also recorded; [`SimDisk`] keeps the
//! *durable image*: the bytes, and the file length, as of the last `sync`.
//! When power fails after the k-th operation (write, set_len or sync), what
//! the disk holds is the durable image plus some of the operations issued
//! since that sync, applied in a random order, each one
//! * kept whole,
//! * dropped, or
//! * torn: each 512-byte sector it touches (at absolute file offsets) holds
//!   either the old or the new bytes. Sectors wholly past the durable file
//!   length (and past the header, offset 512) may also come back as garbage:
//!   blocks allocated but never written, as ext4 `data=writeback` can show.
//!   FORMAT.md's model does not have garbage; records are crc-checked, so it
//!   costs nothing to cover. A garbage *header* would make the file "not a
//!   log" (nothing was committed yet, so nothing would be lost): not covered.
//!
//! Truncations are kept or dropped. Sectors are atomic: a torn sector never
//! damages the bytes around the write (the "powersafe overwrite" property,
//! which FORMAT.md assumes; see tests/RELIABILITY.md).
//!
//! A workload runs once; the disk records every operation, so the image for
//! every crash point k is built afterwards from the durable image as of the
//! last sync before k and the operations between it and k. That is the same
//! as failing the k-th operation, at a fraction of the cost.

#![allow(dead_code)] // each test binary uses its own part

pub mod held_sync;
pub mod shm_objects;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pagelog::format;
use pagelog::storage::LogFile;

pub const SECTOR: u64 = 512;

// ---- a small deterministic random generator ----------------------------------

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_F42D_4C95_7F2D)
    }
    pub fn next(&mut self) -> u64 {
        pagelog::format::splitmix64(&mut self.0)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability num/den.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let x = self.next().to_le_bytes();
            c.copy_from_slice(&x[..c.len()]);
        }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
}

pub fn long_mode() -> bool {
    std::env::var("PAGELOG_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

// ---- the simulated disk -------------------------------------------------------

#[derive(Clone)]
pub enum Op {
    Write { off: u64, data: Arc<[u8]> },
    SetLen(u64),
    Sync,
}

pub struct DiskState {
    /// The file as this process sees it (the page cache).
    pub cache: Vec<u8>,
    /// The file as of the last sync, length included.
    durable: Arc<Vec<u8>>,
    /// Every operation, in order.
    ops: Vec<Op>,
    /// `durable_after[i]`: the durable image once `ops[i]` completed.
    durable_after: Vec<Arc<Vec<u8>>>,
}

/// A [`LogFile`] that writes through to a real file and models what a power
/// failure would leave of it (see the module documentation).
pub struct SimDisk {
    file: File,
    st: Mutex<DiskState>,
}

impl SimDisk {
    /// A disk holding `image`, all of it durable, in a file at `path`.
    pub fn create(path: &Path, image: &[u8]) -> Arc<SimDisk> {
        std::fs::write(path, image).unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        let durable = Arc::new(image.to_vec());
        Arc::new(SimDisk {
            file,
            st: Mutex::new(DiskState { cache: image.to_vec(), durable, ops: Vec::new(), durable_after: Vec::new() }),
        })
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, DiskState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn op_count(&self) -> usize {
        self.state().ops.len()
    }

    pub fn durable(&self) -> Arc<Vec<u8>> {
        self.state().durable.clone()
    }

    /// The operations from `from` on (their index, and the op).
    pub fn ops_since(&self, from: usize) -> Vec<(usize, Op)> {
        let st = self.state();
        st.ops[from..].iter().cloned().enumerate().map(|(i, o)| (from + i, o)).collect()
    }

    /// The index of the first write from operation `from` on that covers the
    /// byte at `offset` (a commit's record: the operation after which a crash
    /// may keep that commit).
    pub fn write_covering(&self, from: usize, offset: u64) -> usize {
        let st = self.state();
        st.ops[from..]
            .iter()
            .position(|o| matches!(o, Op::Write { off, data } if *off <= offset && offset < off + data.len() as u64))
            .map(|i| from + i)
            .expect("a write covers the offset")
    }

    /// What the disk may hold when power fails right after the first `k`
    /// operations completed (k = 0: before any).
    pub fn crash_image(&self, initial: &[u8], k: usize, rng: &mut Rng) -> Vec<u8> {
        let st = self.state();
        let durable: &[u8] = if k == 0 { initial } else { &st.durable_after[k - 1] };
        let first_pending = st.ops[..k].iter().rposition(|o| matches!(o, Op::Sync)).map_or(0, |i| i + 1);
        let pending = &st.ops[first_pending..k];
        crash_image(durable, pending, rng)
    }
}

/// Applies a random subset of `pending` to `durable` (see the module doc).
pub fn crash_image(durable: &[u8], pending: &[Op], rng: &mut Rng) -> Vec<u8> {
    let mut img = durable.to_vec();
    let durable_len = durable.len() as u64;
    // A few images take the extremes: everything reached the disk in order,
    // or nothing did.
    match rng.below(10) {
        0 => {
            for op in pending {
                apply_whole(&mut img, op);
            }
            return img;
        }
        1 => return img,
        _ => {}
    }
    let mut order: Vec<usize> = (0..pending.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for i in order {
        let op = &pending[i];
        match rng.below(10) {
            0..=3 => apply_whole(&mut img, op),
            4..=6 => {} // dropped
            _ => match op {
                Op::Write { off, data } => {
                    // Torn: each sector the write touches is old or new (or,
                    // past the durable length, garbage).
                    let end = off + data.len() as u64;
                    let mut s = off - off % SECTOR;
                    while s < end {
                        let a = s.max(*off);
                        let b = (s + SECTOR).min(end);
                        let fate = rng.below(8);
                        if fate < 4 {
                            put(&mut img, a, &data[(a - off) as usize..(b - off) as usize]);
                        } else if fate == 4 && s >= durable_len.max(format::FIRST_RECORD) {
                            let g = rng.bytes((b - a) as usize);
                            put(&mut img, a, &g);
                        }
                        s += SECTOR;
                    }
                }
                Op::SetLen(_) => {} // a truncation is kept or dropped, not torn
                Op::Sync => unreachable!("no sync among pending operations"),
            },
        }
    }
    img
}

pub fn put(img: &mut Vec<u8>, off: u64, data: &[u8]) {
    let end = off as usize + data.len();
    set_len(img, end.max(img.len()));
    img[off as usize..end].copy_from_slice(data);
}

/// `Vec::resize` with zeros, without its byte-by-byte loop (debug builds).
pub fn set_len(img: &mut Vec<u8>, len: usize) {
    if len <= img.len() {
        img.truncate(len);
    } else {
        img.extend_from_slice(&vec![0u8; len - img.len()]);
    }
}

pub fn apply_whole(img: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { off, data } => put(img, *off, data),
        Op::SetLen(n) => set_len(img, *n as usize),
        Op::Sync => {}
    }
}

impl LogFile for SimDisk {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.state();
        self.file.write_all_at(buf, offset)?;
        put(&mut st.cache, offset, buf);
        st.ops.push(Op::Write { off: offset, data: buf.into() });
        let d = st.durable.clone();
        st.durable_after.push(d);
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.state();
        self.file.set_len(len)?;
        set_len(&mut st.cache, len as usize);
        st.ops.push(Op::SetLen(len));
        let d = st.durable.clone();
        st.durable_after.push(d);
        Ok(())
    }
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        // As a write of zeros: kept, dropped or torn at a power loss like one.
        let end = (offset + len).min(self.len()?);
        if end > offset {
            self.write_at(&vec![0u8; (end - offset) as usize], offset)?;
        }
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        // No fdatasync: the model decides what is durable.
        let mut st = self.state();
        st.durable = Arc::new(st.cache.clone());
        st.ops.push(Op::Sync);
        let d = st.durable.clone();
        st.durable_after.push(d);
        Ok(())
    }
}

// ---- scratch directories -------------------------------------------------------

/// A scratch directory, removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    /// Under /dev/shm when there is one (a tmpfs: thousands of small files
    /// are written), else the temporary directory.
    pub fn new(name: &str) -> Dir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() && std::fs::metadata(shm).is_ok_and(|m| !m.permissions().readonly()) {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let n = N.fetch_add(1, Ordering::Relaxed);
        let d = base.join(format!("pagelog-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes `path` a format-4 log whose first version is the database stock
/// SQLite builds by running `setup` on a plain file beside it (while format
/// 4 is in development only the log API creates such a log; SQLite, given
/// an empty file, would make it format 3).
pub fn format4_from_sqlite(path: &Path, setup: &str) {
    let plain = path.with_extension("plain");
    let c = rusqlite::Connection::open(&plain).unwrap();
    c.execute_batch(setup).unwrap();
    drop(c);
    let bytes = std::fs::read(&plain).unwrap();
    std::fs::remove_file(&plain).unwrap();
    let opts = pagelog::OpenOptions { create: true, format4: true, ..Default::default() };
    let log = pagelog::Log::open(path, opts).unwrap();
    let _g = log.lock_writer(std::time::Duration::from_secs(5)).unwrap();
    let base = log.prepare_write().unwrap();
    let mut txn = log.begin(base, 1 << 20);
    txn.write(&log, 0, &bytes).unwrap();
    log.commit(txn, pagelog::Durability::Full).unwrap().expect("version 1");
}

/// Every version `log` still keeps, read through `log` and through a fresh
/// read-only open of `path`, is exactly what was committed (`images[n]`:
/// version n's whole database), the fresh open's latest is the last image,
/// and `verify` finds no damage.
pub fn check_kept(images: &[Vec<u8>], log: &pagelog::Log, path: &Path) {
    use pagelog::{Log, OpenOptions};
    let latest = images.len() as u64 - 1;
    let fresh = Log::open(path, OpenOptions { read_only: true, ..Default::default() }).unwrap();
    assert_eq!(fresh.latest().number, latest);
    let oldest = log.oldest_kept().unwrap_or(1);
    for n in oldest..=latest {
        for (who, l) in [("the writer", log), ("a fresh open", &fresh)] {
            let v = l.version(n).unwrap();
            let want = &images[n as usize];
            let mut got = vec![0u8; want.len()];
            v.read(0, &mut got).unwrap_or_else(|e| panic!("{who}: version {n}: {e}"));
            assert!(got == *want, "{who}: version {n} (oldest kept {oldest}) differs from what was committed");
        }
    }
    let rep = fresh.verify();
    assert!(!rep.damaged(), "verify: {rep:?}");
}
