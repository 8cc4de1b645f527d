//! The read path: a committed [`Version`] — a page map over the memory map —
//! and the [`Mapping`] it reads through.
//!
//! # Invariants
//! 1. A version only reads frames below its own end, which no process writes
//!    or truncates (log invariant 1), so mapped reads never fault.
//! 2. Every frame is checked against its map entry's crc on its first read in
//!    this process (`Mapping::verified` remembers, per page number, a 32-bit
//!    tag of the frame and the crc it was checked against: `frame_tags.rs`);
//!    a mismatch is `Error::Corrupt` naming the offset and page, never
//!    wrong data.
//! 3. A first read goes through `pread`, not the map, so a file cut short by
//!    another program gives an error, not SIGBUS; only checked frames are
//!    handed out as slices of the map (`page_if_checked`).
//! 4. Page 1's file change counter (bytes 24–27) and version-valid-for
//!    number (92–95) read as the counter its commit records (format 2;
//!    `Version::counter`): the base version's plus one, as SQLite would have
//!    written it. A commit that changed only them stores no page-1 image,
//!    and every version still shows other processes' SQLite a new counter
//!    (cache invalidation). The stored frame and its crc are SQLite's bytes;
//!    the patch is applied on read, to an SQLite header only, and to
//!    valid-for only where the stored page had it equal to its counter (else
//!    SQLite would trust a stale in-header size). Page 1 is therefore never
//!    handed out from the map.
//! 5. A page stored as a patch (format 3) is made on every read from its
//!    base image and the patch, never handed out from the map. Its first
//!    read in this process goes through `pread` (two: the patch, its base)
//!    and checks the page against the entry's crc; `Mapping::patches`
//!    remembers the patch and crc. SQLite's reads (`Version::read`) always
//!    `pread` a patched page (unchecked after the first time, as a checked
//!    image is); `Version::page` (page 1, the tools, the writer) makes a
//!    checked one from the map, as it reads images. Patches are not marked
//!    in `Mapping::verified`, which is for images only.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use crate::control::Control;
use crate::error::{Error, Result};
use crate::format;
use crate::format::Entry;
use crate::index::TreeMap;
use crate::pagemap::{PageMap, Slot};
use crate::patch;

pub use crate::mapping::Mapping;

static ZEROS: [u8; format::MAX_PAGE_SIZE as usize] = [0; format::MAX_PAGE_SIZE as usize];

/// A version's page map: format 3's whole map in memory, or format 4's
/// checkpoint tree read where it lies with an overlay in front (`index.rs`).
#[derive(Debug, Clone)]
pub enum Pages {
    Full(PageMap),
    Tree(TreeMap),
}

impl Default for Pages {
    fn default() -> Pages {
        Pages::Full(PageMap::new())
    }
}

impl Pages {
    /// Number of pages in the database.
    #[inline]
    pub fn pages(&self) -> u32 {
        match self {
            Pages::Full(m) => m.pages(),
            Pages::Tree(t) => t.pages,
        }
    }

    /// Page `pgno`'s slot, None past the end of the database; for comparing
    /// versions' maps. A damaged tree node also gives None: reading the page
    /// through the version reports the damage ([`Pages::try_get`]).
    #[inline]
    pub fn get(&self, pgno: u32) -> Option<Slot> {
        match self {
            Pages::Full(m) => m.get(pgno),
            Pages::Tree(t) => t.get(pgno).ok().flatten(),
        }
    }

    /// Page `pgno`'s slot; damage of a tree node is `Error::Corrupt` naming
    /// the node's offset.
    #[inline]
    pub fn try_get(&self, pgno: u32) -> Result<Option<Slot>> {
        match self {
            Pages::Full(m) => Ok(m.get(pgno)),
            Pages::Tree(t) => t.get(pgno),
        }
    }

    /// The whole map (a tree is walked: O(database pages); nodes below a
    /// boundary are not redirected: a version's `whole_map` does that).
    pub fn try_entries(&self) -> Result<Vec<Entry>> {
        match self {
            Pages::Full(m) => Ok(m.entries()),
            Pages::Tree(t) => Ok(t.to_page_map(crate::control::none_ref(), &t.mapping)?.entries()),
        }
    }

    /// The whole map in memory, a tree's nodes read as a version under
    /// `control` reads them through `mapping` (O(database pages)).
    pub fn to_page_map(&self, control: &Control, mapping: &Mapping) -> Result<PageMap> {
        match self {
            Pages::Full(m) => Ok(m.clone()),
            Pages::Tree(t) => t.to_page_map(control, mapping),
        }
    }
}

/// One committed version: immutable, cheap to hold (a reader's snapshot).
pub struct Version {
    pub number: u64,
    /// Page size; 0 for an empty version 0 of a log that has none yet.
    pub page_size: u32,
    pub map: Pages,
    /// Offset of the COMMIT record that made this version (0 for version 0).
    pub commit_offset: u64,
    /// That record's trailer crc (0 for version 0).
    pub commit_crc: u32,
    /// End of the log as of this version.
    pub end: u64,
    pub timestamp_us: u64,
    pub checksum: u64,
    pub(crate) mapping: Arc<Mapping>,
    /// The change counter page 1 reads with (invariant 4; format 2).
    pub counter: u32,
    /// Patch page 1's counters with `counter` (invariant 4).
    pub(crate) derive_page1: bool,
    /// Page 1 as read (patched), made on its first read.
    pub(crate) page1: OnceLock<Box<[u8]>>,
    /// The log's control state when this version was read: references
    /// below its boundary are redirected through its base tree (format 4).
    pub(crate) control: Arc<Control>,
}

/// The SQLite header's file change counter and version-valid-for number.
const CHANGE_COUNTER: usize = 24;
const VALID_FOR: usize = 92;

/// The change counter of an SQLite page 1 (None: not an SQLite header).
pub fn page1_counter(page: &[u8]) -> Option<u32> {
    (page.len() >= 100 && page.starts_with(b"SQLite format 3\0"))
        .then(|| u32::from_be_bytes(page[CHANGE_COUNTER..CHANGE_COUNTER + 4].try_into().unwrap()))
}

/// Page 1 as a version with change counter `counter` reads: `stored` with
/// the change counter set to it, and version-valid-for too where it
/// equalled the stored counter. Anything that is not an SQLite header is
/// returned as it is.
pub fn page1_as_read(stored: &[u8], counter: u32) -> Box<[u8]> {
    let mut p: Box<[u8]> = stored.into();
    if p.len() >= 100 && p.starts_with(b"SQLite format 3\0") {
        let n = counter.to_be_bytes();
        if p[CHANGE_COUNTER..CHANGE_COUNTER + 4] == p[VALID_FOR..VALID_FOR + 4] {
            p[VALID_FOR..VALID_FOR + 4].copy_from_slice(&n);
        }
        p[CHANGE_COUNTER..CHANGE_COUNTER + 4].copy_from_slice(&n);
    }
    p
}

/// True when two page-1 images differ in nothing but the bytes a version
/// derives (invariant 4): storing `new` over `old` would change nothing.
pub fn page1_same_but_counters(old: &[u8], new: &[u8]) -> bool {
    old.len() == new.len()
        && new.len() >= 100
        && new.starts_with(b"SQLite format 3\0")
        && old[..CHANGE_COUNTER] == new[..CHANGE_COUNTER]
        && old[CHANGE_COUNTER + 4..VALID_FOR] == new[CHANGE_COUNTER + 4..VALID_FOR]
        && old[VALID_FOR + 4..] == new[VALID_FOR + 4..]
}

impl Version {
    /// Version 0: the empty database.
    pub(crate) fn empty(page_size: u32, mapping: Arc<Mapping>) -> Version {
        Version {
            number: 0,
            page_size,
            map: Pages::default(),
            commit_offset: 0,
            commit_crc: 0,
            end: format::FIRST_RECORD,
            timestamp_us: 0,
            checksum: 0,
            mapping,
            counter: 0,
            derive_page1: false,
            page1: OnceLock::new(),
            control: Arc::new(Control::none()),
        }
    }

    pub fn db_pages(&self) -> u32 {
        self.map.pages()
    }

    /// The same version read under another control state (a CONTROL record
    /// appended after its commit).
    pub(crate) fn with_control(&self, control: Arc<Control>, mapping: Arc<Mapping>) -> Version {
        Version {
            number: self.number,
            page_size: self.page_size,
            map: self.map.clone(),
            commit_offset: self.commit_offset,
            commit_crc: self.commit_crc,
            end: self.end,
            timestamp_us: self.timestamp_us,
            checksum: self.checksum,
            mapping,
            counter: self.counter,
            derive_page1: self.derive_page1,
            page1: OnceLock::new(),
            control,
        }
    }

    /// Page `pgno`'s map slot, as its map holds it (format 4: an index
    /// node below the boundary read at its copy; the slot not redirected).
    #[inline]
    pub(crate) fn map_slot(&self, pgno: u32) -> Result<Option<Slot>> {
        match &self.map {
            Pages::Full(m) => Ok(m.get(pgno)),
            Pages::Tree(t) => t.get_in(pgno, &self.control, &self.mapping),
        }
    }

    /// The whole page map in memory (format 4: its tree walked, O(database
    /// pages): for the reclaimer and a writer's checkpoint from nothing).
    pub(crate) fn whole_map(&self) -> Result<PageMap> {
        self.map.to_page_map(&self.control, &self.mapping)
    }

    /// Page `pgno`'s slot as it reads: redirected when it lies below the
    /// control state's boundary (format 4; `control.rs` invariant 1).
    #[inline]
    fn slot(&self, pgno: u32) -> Result<Option<Slot>> {
        let Some(s) = self.map_slot(pgno)? else { return Ok(None) };
        if !self.control.redirects() {
            return Ok(Some(s));
        }
        match self.control.slot(pgno, s, self.page_size) {
            Some(r) => Ok(Some(r)),
            None => Err(Error::Corrupt {
                path: self.mapping.path.clone(),
                offset: crate::patch::position(s.offset),
                expected: format!(
                    "a copy of page {pgno} (crc {:#010x}) in the base tree, or a frame read in place: the page lies in \
                     the region freed below {}",
                    s.crc,
                    self.control.boundary()
                ),
                found: "none".into(),
            }),
        }
    }

    /// Where a patch of page `pgno` naming base image `base` reads it from.
    #[inline]
    fn base_of(&self, pgno: u32, base: u64) -> u64 {
        self.control.base(pgno, base, self.page_size).unwrap_or(base)
    }

    pub fn size_bytes(&self) -> u64 {
        self.map.pages() as u64 * self.page_size as u64
    }

    /// The image of page `pgno`, or None past the end of the database. The
    /// first read of a frame in this process checks its crc: a mismatch is
    /// an error naming the offset, never wrong data. A page stored as a
    /// patch is made (and checked) on each call.
    #[inline]
    pub fn page(&self, pgno: u32) -> Result<Option<Cow<'_, [u8]>>> {
        if pgno == 1 && self.derive_page1 {
            if let Some(p) = self.page1.get() {
                return Ok(Some(Cow::Borrowed(p)));
            }
        }
        // Page 1 as SQLite reads it (`Version::read`) is read with pread, not
        // through the map: every reader reads it, and one page touched
        // through the map puts the folio of page cache around it in the
        // process's RSS (2 MiB seen for a format-3 reader at 1 GiB; issue 21).
        let stored = if pgno == 1 && self.derive_page1 { self.stored_page_copied(1)? } else { self.stored_page(pgno)? };
        let Some(stored) = stored else { return Ok(None) };
        if pgno == 1 && self.derive_page1 && self.map_slot(1)?.is_some_and(|s| s.offset != 0) {
            return Ok(Some(Cow::Borrowed(self.page1.get_or_init(|| page1_as_read(&stored, self.counter)))));
        }
        Ok(Some(stored))
    }

    /// Page `pgno` as stored: its frame, or the page its patch makes;
    /// page 1 without its derived counters (invariant 4).
    fn stored_page(&self, pgno: u32) -> Result<Option<Cow<'_, [u8]>>> {
        let Some(slot) = self.slot(pgno)? else { return Ok(None) };
        let ps = self.page_size as usize;
        if slot.offset == 0 {
            return Ok(Some(Cow::Borrowed(&ZEROS[..ps])));
        }
        if patch::is_patch(slot.offset) {
            let mut page = vec![0u8; ps];
            let fix = |b| self.base_of(pgno, b);
            self.mapping.read_patched(patch::position(slot.offset), slot.crc, pgno, &mut page, true, &fix)?;
            return Ok(Some(Cow::Owned(page)));
        }
        Ok(Some(Cow::Borrowed(self.mapping.frame(slot.offset, ps, slot.crc, pgno)?)))
    }

    /// [`Version::stored_page`], read with pread into a copy (checked as
    /// `Version::read` checks), never through the map.
    fn stored_page_copied(&self, pgno: u32) -> Result<Option<Cow<'_, [u8]>>> {
        let Some(slot) = self.slot(pgno)? else { return Ok(None) };
        let ps = self.page_size as usize;
        if slot.offset == 0 {
            return Ok(Some(Cow::Borrowed(&ZEROS[..ps])));
        }
        let mut page = vec![0u8; ps];
        if patch::is_patch(slot.offset) {
            let fix = |b| self.base_of(pgno, b);
            self.mapping.read_patched(patch::position(slot.offset), slot.crc, pgno, &mut page, false, &fix)?;
        } else {
            self.mapping.read_frame(slot.offset, ps, slot.crc, pgno, 0, &mut page)?;
        }
        Ok(Some(Cow::Owned(page)))
    }

    /// What a commit changing page `pgno` can store a patch against: the
    /// offset of the image the page's frame or patch is (or is based on),
    /// and that image's bytes. None: the page has no image (past the end,
    /// or a zero page). The image of a patch's base is not checked on its
    /// own (it has no crc of its own here): a patch made against it gives
    /// back the new page whatever its bytes are, and the new entry's crc is
    /// the new page's.
    pub(crate) fn patch_base(&self, pgno: u32) -> Result<Option<(u64, Cow<'_, [u8]>)>> {
        let Some(Slot { offset, crc }) = self.slot(pgno)? else { return Ok(None) };
        let ps = self.page_size as usize;
        if offset == 0 {
            return Ok(None);
        }
        if !patch::is_patch(offset) {
            return Ok(Some((offset, Cow::Borrowed(self.mapping.frame(offset, ps, crc, pgno)?))));
        }
        // Through the map, as `Mapping::frame` reads: the writer calls this
        // right after `Log::refresh` checked that the file holds the log.
        let at = patch::position(offset);
        let named = patch::base_of(self.mapping.slice(at, 8)).expect("8 bytes");
        if !patch::base_ok(named, at, ps as u32) {
            return Ok(None); // damaged: store the page whole
        }
        let base = self.base_of(pgno, named);
        Ok(Some((base, Cow::Borrowed(self.mapping.slice(base, ps)))))
    }

    /// The image of page `pgno` as a slice of the memory map, only if this
    /// process already checked its frame against the map entry's crc (a read
    /// through [`Version::read`], or its own commit); None otherwise, and
    /// past the end of the database. Never touches the mapped bytes: that is
    /// left to the caller, so a file that another program cut short below an
    /// unchecked frame cannot fault here. A checked frame was in the file
    /// when it was checked, and `Log::refresh` checks at the start of every
    /// transaction that the file still holds the committed log; a truncation
    /// after that still faults whoever reads the slice.
    #[inline]
    pub fn page_if_checked(&self, pgno: u32) -> Option<&[u8]> {
        if pgno == 1 && self.derive_page1 {
            return None; // patched on read: never a slice of the map
        }
        let slot = self.slot(pgno).ok()??;
        if patch::is_patch(slot.offset) {
            return None; // made on read (invariant 5)
        }
        let ps = self.page_size as usize;
        if slot.offset == 0 {
            return Some(&ZEROS[..ps]);
        }
        self.mapping.is_verified(pgno, slot.offset, ps, slot.crc).then(|| self.mapping.slice(slot.offset, ps))
    }

    /// Copies `buf.len()` bytes at `offset` of the database image; returns how
    /// many bytes existed (the rest of `buf` is zero-filled).
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let ps = self.page_size as u64;
        let size = self.size_bytes();
        let mut done = 0usize;
        while done < buf.len() {
            let off = offset + done as u64;
            if off >= size || ps == 0 {
                buf[done..].fill(0);
                return Ok(done);
            }
            let pgno = (off / ps) as u32 + 1;
            let in_page = (off % ps) as usize;
            let n = (ps as usize - in_page).min(buf.len() - done);
            let slot = self.slot(pgno)?.expect("page within size");
            if pgno == 1 && self.derive_page1 && slot.offset != 0 {
                let p = self.page(1)?.expect("page 1 within size");
                buf[done..done + n].copy_from_slice(&p[in_page..in_page + n]);
            } else if slot.offset == 0 {
                buf[done..done + n].fill(0);
            } else if patch::is_patch(slot.offset) {
                let at = patch::position(slot.offset);
                if n == ps as usize {
                    // A whole page (SQLite's reads): made in place.
                    let fix = |b| self.base_of(pgno, b);
                    self.mapping.read_patched(at, slot.crc, pgno, &mut buf[done..done + n], false, &fix)?;
                } else {
                    let fix = |b| self.base_of(pgno, b);
                    let mut page = vec![0u8; ps as usize];
                    self.mapping.read_patched(at, slot.crc, pgno, &mut page, false, &fix)?;
                    buf[done..done + n].copy_from_slice(&page[in_page..in_page + n]);
                }
            } else {
                self.mapping.read_frame(slot.offset, ps as usize, slot.crc, pgno, in_page, &mut buf[done..done + n])?;
            }
            done += n;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_frame_checked_under_one_crc_is_checked_again_under_another() {
        let dir = std::env::temp_dir().join(format!("pagelog-tag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, vec![7u8; 4096]).unwrap();
        let f = std::sync::Arc::new(std::fs::File::open(&p).unwrap());
        let m = super::Mapping::new(&f, &p, 4096, None).unwrap();
        let good = crate::format::frame_crc(&[7u8; 1024]);
        assert!(m.frame(1024, 1024, good, 1).is_ok());
        assert!(m.frame(1024, 1024, good, 1).is_ok(), "cached");
        assert!(m.frame(1024, 1024, good ^ 1, 2).is_err(), "another crc for the same frame is checked, not trusted");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
