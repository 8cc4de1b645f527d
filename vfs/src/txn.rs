//! A write transaction's buffer: the pages SQLite wrote since the transaction
//! began, over the version it began on.
//!
//! Pages live in memory up to `spill_limit` bytes; beyond that they are
//! appended to the log past its end as a SPILL record (which no version
//! references until the COMMIT record that follows it), so a transaction of
//! any size runs in bounded memory. Rollback truncates the spill records away.
//!
//! The buffer is addressed by the transaction's page size. SQLite writes whole
//! pages; a write of another page size (VACUUM changing `page_size`) re-cuts
//! the whole image into the new size (`rechunk`), which costs one pass over
//! the database and happens at most a few times per such VACUUM.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Result;
use crate::format;
use crate::pagemap::Slot;
use crate::version::Version;

/// Where a transaction's spilled pages go: the log, past its end. The log
/// implements it (`commit.rs`); the buffer knows nothing else of the log.
pub trait SpillStore {
    /// Writes `pages` as one SPILL record at `offset` (past the log end) for
    /// a transaction on `base`; returns the record's end and the pages' slots.
    fn write_spill(
        &self,
        base: &Version,
        offset: u64,
        page_size: u32,
        pages: &[(u32, &[u8])],
    ) -> Result<(u64, Vec<Slot>)>;
    /// Reads back one spilled page image.
    fn read_spilled(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
}

/// Default bound on the memory a transaction's buffer holds before spilling.
pub const DEFAULT_SPILL_LIMIT: usize = 32 << 20;

pub(crate) enum Buf {
    Mem(Box<[u8]>),
    Spilled(Slot),
}

pub struct WriteTxn {
    base: Arc<Version>,
    page_size: u32,
    size: u64,
    pages: HashMap<u32, Buf>,
    mem_bytes: usize,
    /// The log end when the transaction began: its records go from here.
    start: u64,
    spill_end: u64,
    spill_limit: usize,
    alloc_at_begin: u64,
    /// The smallest size (in base pages) the transaction truncated to: base
    /// pages past it are gone, even if the database grows again.
    min_pages: u32,
    /// The commit the new one follows when it is not `base` (a format-4
    /// revert: its pages are `base`'s, the target's, and it follows the
    /// latest).
    follows: Option<Arc<Version>>,
}

impl WriteTxn {
    pub(crate) fn new(base: Arc<Version>, spill_limit: usize, start: u64, alloc_at_begin: u64) -> WriteTxn {
        WriteTxn {
            page_size: base.page_size,
            size: base.size_bytes(),
            start,
            spill_end: start,
            base,
            pages: HashMap::new(),
            mem_bytes: 0,
            spill_limit,
            alloc_at_begin,
            min_pages: u32::MAX,
            follows: None,
        }
    }

    /// A revert's transaction (format 4): on `target`'s pages, following
    /// `latest`, with page 1 set to `page1`.
    pub(crate) fn revert(
        target: Arc<Version>,
        latest: Arc<Version>,
        page1: Box<[u8]>,
        start: u64,
        alloc_at_begin: u64,
    ) -> WriteTxn {
        let mut t = WriteTxn::new(target, DEFAULT_SPILL_LIMIT, start, alloc_at_begin);
        t.follows = Some(latest);
        t.put(1, page1);
        t
    }

    /// The commit the new one follows: the base, or a revert's latest.
    pub(crate) fn follows(&self) -> &Arc<Version> {
        self.follows.as_ref().unwrap_or(&self.base)
    }

    /// The file length when the transaction began (see `Log::discard`).
    pub(crate) fn alloc_at_begin(&self) -> u64 {
        self.alloc_at_begin
    }

    pub fn set_spill_limit(&mut self, bytes: usize) {
        self.spill_limit = bytes;
    }

    pub fn base(&self) -> &Arc<Version> {
        &self.base
    }
    pub fn page_size(&self) -> u32 {
        self.page_size
    }
    /// Size of the database image in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn db_pages(&self) -> u32 {
        if self.page_size == 0 {
            0
        } else {
            self.size.div_ceil(self.page_size as u64) as u32
        }
    }
    /// The log end when the transaction began.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }
    pub(crate) fn spill_end(&self) -> u64 {
        self.spill_end
    }
    /// True when the transaction has written nothing.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty() && self.size == self.base.size_bytes()
    }

    /// Reads through the transaction: buffered pages, else the base version.
    /// Returns how many bytes exist; the rest of `buf` is zero-filled.
    pub fn read(&self, log: &dyn SpillStore, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let ps = self.page_size as u64;
        let mut done = 0usize;
        let mut tmp = Vec::new();
        while done < buf.len() {
            let off = offset + done as u64;
            if ps == 0 || off >= self.size {
                buf[done..].fill(0);
                return Ok(done);
            }
            let pgno = (off / ps) as u32 + 1;
            let in_page = (off % ps) as usize;
            let n = (ps as usize - in_page).min(buf.len() - done).min((self.size - off) as usize);
            let dst = &mut buf[done..done + n];
            match self.pages.get(&pgno) {
                Some(Buf::Mem(b)) => dst.copy_from_slice(&b[in_page..in_page + n]),
                Some(Buf::Spilled(s)) => {
                    tmp.resize(ps as usize, 0);
                    log.read_spilled(s.offset, &mut tmp)?;
                    dst.copy_from_slice(&tmp[in_page..in_page + n]);
                }
                None if self.page_size == self.base.page_size && pgno <= self.min_pages => {
                    self.base.read(off, dst)?;
                }
                None => dst.fill(0),
            }
            done += n;
        }
        Ok(done)
    }

    /// Applies a write of SQLite's.
    pub fn write(&mut self, log: &dyn SpillStore, offset: u64, data: &[u8]) -> Result<()> {
        let len = data.len() as u64;
        let page_shaped = format::valid_page_size(len as u32) && offset % len == 0;
        if self.page_size == 0 {
            self.page_size = if page_shaped { len as u32 } else { 4096 };
        } else if page_shaped && len != self.page_size as u64 {
            self.rechunk(log, len as u32)?;
        }
        let ps = self.page_size as u64;
        if len == ps && offset % ps == 0 {
            self.put(offset / ps + 1, data.into());
        } else {
            // A partial-page write: read, patch, put back, page by page.
            let mut done = 0u64;
            while done < len {
                let off = offset + done;
                let pgno = off / ps + 1;
                let in_page = off % ps;
                let n = (ps - in_page).min(len - done);
                let mut page = vec![0u8; ps as usize];
                self.read(log, (pgno - 1) * ps, &mut page)?;
                page[in_page as usize..(in_page + n) as usize]
                    .copy_from_slice(&data[done as usize..(done + n) as usize]);
                self.put(pgno, page.into());
                done += n;
            }
        }
        self.size = self.size.max(offset + len);
        if self.mem_bytes > self.spill_limit {
            self.spill(log)?;
        }
        Ok(())
    }

    fn put(&mut self, pgno: u64, page: Box<[u8]>) {
        let pgno = u32::try_from(pgno).expect("page number fits in u32");
        self.mem_bytes += page.len();
        if let Some(Buf::Mem(old)) = self.pages.insert(pgno, Buf::Mem(page)) {
            self.mem_bytes -= old.len();
        }
    }

    /// Sets the database size (SQLite's xTruncate).
    pub fn truncate(&mut self, size: u64) {
        self.size = size;
        if self.page_size == 0 {
            return;
        }
        let keep = self.db_pages();
        self.min_pages = self.min_pages.min(keep);
        let mut freed = 0;
        self.pages.retain(|&p, b| {
            let k = p <= keep;
            if !k {
                if let Buf::Mem(m) = b {
                    freed += m.len();
                }
            }
            k
        });
        self.mem_bytes -= freed;
    }

    /// Writes every in-memory page to a SPILL record past the log's end.
    fn spill(&mut self, log: &dyn SpillStore) -> Result<()> {
        let mut mem: Vec<(u32, Box<[u8]>)> = Vec::new();
        let pages = std::mem::take(&mut self.pages);
        for (p, b) in pages {
            match b {
                Buf::Mem(m) => mem.push((p, m)),
                s => {
                    self.pages.insert(p, s);
                }
            }
        }
        if mem.is_empty() {
            return Ok(());
        }
        mem.sort_unstable_by_key(|(p, _)| *p);
        let refs: Vec<(u32, &[u8])> = mem.iter().map(|(p, m)| (*p, &m[..])).collect();
        // A spill names the commit the transaction follows (a revert's: the
        // latest, not the target whose pages it holds).
        let (end, slots) = log.write_spill(self.follows(), self.spill_end, self.page_size, &refs)?;
        for ((p, _), s) in mem.iter().zip(slots) {
            self.pages.insert(*p, Buf::Spilled(s));
        }
        self.spill_end = end;
        self.mem_bytes = 0;
        Ok(())
    }

    /// Re-cuts the whole image into pages of `new_ps`.
    fn rechunk(&mut self, log: &dyn SpillStore, new_ps: u32) -> Result<()> {
        let size = self.size;
        let n = size.div_ceil(new_ps as u64);
        let mut fresh: HashMap<u32, Buf> = HashMap::new();
        let mut mem = 0usize;
        for i in 0..n {
            let mut page = vec![0u8; new_ps as usize];
            self.read(log, i * new_ps as u64, &mut page)?;
            mem += page.len();
            fresh.insert(i as u32 + 1, Buf::Mem(page.into()));
        }
        self.pages = fresh;
        self.mem_bytes = mem;
        self.page_size = new_ps;
        self.min_pages = u32::MAX;
        self.size = n * new_ps as u64;
        Ok(())
    }

    /// Before commit: the page size is whatever page 1's header says, when
    /// page 1 holds an SQLite header.
    pub(crate) fn settle_page_size(&mut self, log: &dyn SpillStore) -> Result<()> {
        if self.size < 100 || self.page_size == 0 {
            return Ok(());
        }
        let mut h = [0u8; 18];
        self.read(log, 0, &mut h)?;
        if &h[..16] != b"SQLite format 3\0" {
            return Ok(());
        }
        let raw = u16::from_be_bytes([h[16], h[17]]) as u32;
        let ps = if raw == 1 { 65536 } else { raw };
        if format::valid_page_size(ps) && ps != self.page_size {
            self.rechunk(log, ps)?;
        }
        Ok(())
    }

    /// Replaces the whole content with that of `target` (a revert): pages
    /// whose frame differs from the base become references to target's
    /// frames (no copy), page 1 becomes `page1`.
    pub(crate) fn become_version(&mut self, target: &Version, page1: Box<[u8]>) {
        self.pages.clear();
        self.mem_bytes = 0;
        self.page_size = target.page_size;
        self.size = target.size_bytes();
        let same = self.base.page_size == target.page_size;
        for p in 2..=target.db_pages() {
            let t = target.map.get(p).expect("page within target");
            if !same || self.base.map.get(p) != Some(t) {
                self.pages.insert(p, Buf::Spilled(t));
            }
        }
        self.put(1, page1);
    }

    /// Takes the buffered pages within `db_pages`, in page order.
    pub(crate) fn drain_pages(&mut self, db_pages: u32) -> Vec<(u32, Buf)> {
        // Base pages cut off by a truncate and not written since read as
        // zeros if the database grew back over them.
        if self.page_size == self.base.page_size {
            for p in self.min_pages.saturating_add(1)..=db_pages.min(self.base.db_pages()) {
                self.pages.entry(p).or_insert(Buf::Spilled(Slot::default()));
            }
        }
        let mut v: Vec<(u32, Buf)> = self.pages.drain().filter(|(p, _)| *p <= db_pages).collect();
        v.sort_unstable_by_key(|(p, _)| *p);
        self.mem_bytes = 0;
        v
    }
}
