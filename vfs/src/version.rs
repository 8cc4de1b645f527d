//! The read path: a committed [`Version`] — a page map over the memory map —
//! and the [`Mapping`] it reads through.
//!
//! # Invariants
//! 1. A version only reads frames below its own end, which no process writes
//!    or truncates (log invariant 1), so mapped reads never fault.
//! 2. Every frame is checked against its map entry's crc on its first read in
//!    this process (`Mapping::verified` remembers a 16-bit tag of the crc it
//!    was checked against); a mismatch is `Error::Corrupt` naming the offset
//!    and page, never wrong data.
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
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use memmap2::{Mmap, MmapOptions};

use crate::control::Control;
use crate::error::{Error, Result};
use crate::format;
use crate::pagemap::{PageMap, Slot};
use crate::patch;

/// A read-only window on the file. It may be longer than the file: only
/// offsets below a committed end are ever read through it. It also remembers
/// which frames this process has checked, and against which crc (a 16-bit
/// tag of it per 512-byte unit, 0 = not checked), so every frame is checked
/// once, on its first read; a second map entry naming the same frame with
/// another crc (only a crafted log has one) is checked again and fails.
pub struct Mapping {
    /// The file, for `read_frame` (pread).
    pub(crate) file: Option<Arc<File>>,
    pub(crate) mmap: Option<Mmap>,
    pub(crate) cap: u64,
    pub(crate) path: PathBuf,
    pub(crate) verified: Box<[AtomicU16]>,
    /// The offset (plus one; 0 = none) of the first damage any read in this
    /// process found, shared by all mappings of one log: the log then
    /// refuses writes (`Log::prepare_write`).
    pub(crate) damage: Arc<AtomicU64>,
    /// Patches this process has checked (invariant 5): offset → the crc
    /// of the page it makes. Shared by all mappings of one log.
    pub(crate) patches: Arc<Mutex<HashMap<u64, u32>>>,
}

/// How many checked patches `Mapping::patches` remembers at most (about
/// 3 MiB): a long-lived writer adds one a commit.
const PATCHES_REMEMBERED: usize = 1 << 16;

/// The tag of a frame crc in `Mapping::verified`: never 0.
#[inline]
fn crc_tag(crc: u32) -> u16 {
    (crc % 65535) as u16 + 1
}

impl Mapping {
    pub(crate) fn new(file: &Arc<File>, path: &Path, min_len: u64, prev: Option<&Mapping>) -> std::io::Result<Mapping> {
        let cap = (min_len.saturating_mul(2)).max(64 << 20).next_multiple_of(1 << 20);
        // SAFETY: the map is read-only and we only read bytes below a committed
        // end, which (invariant 1) no process writes or truncates. Bytes past
        // the file's end are never touched, so no SIGBUS.
        let mmap = unsafe { MmapOptions::new().len(cap as usize).map(&**file)? };
        let units = (cap / format::PAYLOAD_ALIGN) as usize;
        // Zeroed memory from the allocator (calloc: pages are only touched
        // when a frame is checked), viewed as atomics.
        let zeros: Box<[u16]> = vec![0u16; units].into_boxed_slice();
        // SAFETY: AtomicU16 has the same size, alignment and bit validity as
        // u16 (std docs), so a boxed slice of one is a boxed slice of the other.
        let verified: Box<[AtomicU16]> = unsafe { Box::from_raw(Box::into_raw(zeros) as *mut [AtomicU16]) };
        if let Some(p) = prev {
            for (a, b) in verified.iter().zip(p.verified.iter()) {
                a.store(b.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        let damage = prev.map(|p| p.damage.clone()).unwrap_or_default();
        let patches = prev.map(|p| p.patches.clone()).unwrap_or_default();
        Ok(Mapping {
            file: Some(file.clone()),
            mmap: Some(mmap),
            cap,
            path: path.to_path_buf(),
            verified,
            damage,
            patches,
        })
    }

    pub(crate) fn empty(path: &Path) -> Mapping {
        Mapping {
            file: None,
            mmap: None,
            cap: 0,
            path: path.to_path_buf(),
            verified: Box::new([]),
            damage: Default::default(),
            patches: Default::default(),
        }
    }

    #[inline]
    pub(crate) fn slice(&self, offset: u64, len: usize) -> &[u8] {
        debug_assert!(offset + len as u64 <= self.cap);
        let m = self.mmap.as_ref().expect("read through an empty mapping");
        &m[offset as usize..offset as usize + len]
    }

    #[inline]
    fn is_verified(&self, offset: u64, crc: u32) -> bool {
        let unit = (offset / format::PAYLOAD_ALIGN) as usize;
        self.verified.get(unit).is_some_and(|x| x.load(Ordering::Relaxed) == crc_tag(crc))
    }

    pub(crate) fn mark_verified(&self, offset: u64, crc: u32) {
        let unit = (offset / format::PAYLOAD_ALIGN) as usize;
        if let Some(x) = self.verified.get(unit) {
            x.store(crc_tag(crc), Ordering::Relaxed);
        }
    }

    /// Copies `dst.len()` bytes from `in_page` on of the frame at `offset`
    /// with pread, checking the frame against `crc` on first use. This is
    /// SQLite's read path: pread, not the memory map, so that a file cut
    /// short by another program is an error here, where touching the map
    /// would raise SIGBUS and kill the host.
    fn read_frame(&self, offset: u64, len: usize, crc: u32, pgno: u32, in_page: usize, dst: &mut [u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let file = self.file.as_ref().expect("read through an empty mapping");
        let pread = |buf: &mut [u8], at: u64| {
            file.read_exact_at(buf, at).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    self.note_damage(at);
                    Error::Corrupt {
                        path: self.path.clone(),
                        offset: at,
                        expected: format!(
                            "a frame of page {pgno} (the committed log was truncated by another program)"
                        ),
                        found: "the end of the file".into(),
                    }
                } else {
                    Error::io(&self.path, "read", Some(at), e)
                }
            })
        };
        if self.is_verified(offset, crc) {
            return pread(dst, offset + in_page as u64);
        }
        let mut page = vec![0u8; len];
        pread(&mut page, offset)?;
        self.check(offset, crc, pgno, &page)?;
        dst.copy_from_slice(&page[in_page..in_page + dst.len()]);
        Ok(())
    }

    /// Makes the page the patch at `at` (a map entry's offset − 1) makes,
    /// into `page` (page size bytes), and checks it against `crc`: at most
    /// two preads, one of the base image into `page`, one of the patch.
    /// `map_ok`: a patch checked before may be read from the map (as
    /// `Mapping::frame` reads); SQLite's reads (`Version::read`) always
    /// `pread`, so that a file another program cut short is an error there.
    /// `fix`: where the base a patch names is read (format 4 redirects a
    /// base below the boundary: `Version::base_of`).
    fn read_patched(
        &self,
        at: u64,
        crc: u32,
        pgno: u32,
        page: &mut [u8],
        map_ok: bool,
        fix: &dyn Fn(u64) -> u64,
    ) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let checked = self.patch_checked(at, crc);
        if checked && map_ok {
            // Checked before: both lie in the file (invariant 5).
            let b = self.slice(at, patch::stated_size(self.slice(at, patch::HEADER)).expect("16 bytes"));
            let p = patch::parse(b, at, page.len() as u32).expect("a checked patch");
            page.copy_from_slice(self.slice(fix(p.base), page.len()));
            p.apply(b, page);
            return Ok(());
        }
        let file = self.file.as_ref().expect("read through an empty mapping");
        let bad = |found: String| {
            self.note_damage(at);
            Error::Corrupt {
                path: self.path.clone(),
                offset: at,
                expected: format!("a patch of page {pgno} making crc {crc:#010x}"),
                found,
            }
        };
        // Read as much as a page: a patch pagelog writes is smaller. The file
        // may end sooner (a patch near the end of the log).
        let read_upto = |buf: &mut [u8], from: u64| -> Result<usize> {
            let mut got = 0;
            while got < buf.len() {
                match file.read_at(&mut buf[got..], from + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io(&self.path, "read", Some(from + got as u64), e)),
                }
            }
            Ok(got)
        };
        // Bytes a committed version reads are never truncated by pagelog:
        // running out of them means another program cut the file.
        let truncated = |end: u64| {
            self.note_damage(end);
            Error::Corrupt {
                path: self.path.clone(),
                offset: end,
                expected: format!("a patch of page {pgno} (the committed log was truncated by another program)"),
                found: "the end of the file".into(),
            }
        };
        let mut b = vec![0u8; page.len()];
        let got = read_upto(&mut b, at)?;
        b.truncate(got);
        let want = patch::stated_size(&b).unwrap_or(patch::HEADER);
        if want > patch::MAX_SIZE {
            return Err(bad(format!("a patch header saying it is over {} bytes long", patch::MAX_SIZE)));
        }
        if want > b.len() && got == page.len() {
            b.resize(want, 0);
            let more = read_upto(&mut b[got..], at + got as u64)?;
            b.truncate(got + more);
        }
        if want > b.len() {
            return Err(truncated(at + b.len() as u64));
        }
        let p = patch::parse(&b, at, page.len() as u32).map_err(|e| bad(format!("a patch breaking a rule: {e}")))?;
        let base = fix(p.base);
        let n = read_upto(page, base)?;
        if n != page.len() {
            return Err(truncated(base + n as u64));
        }
        p.apply(&b, page);
        if checked {
            return Ok(());
        }
        let found = format::frame_crc(page);
        if found != crc {
            return Err(bad(format!("a page with crc {found:#010x} (base image at {base})")));
        }
        self.mark_patch_checked(at, crc);
        Ok(())
    }

    fn patch_checked(&self, at: u64, crc: u32) -> bool {
        self.patches.lock().unwrap_or_else(|p| p.into_inner()).get(&at) == Some(&crc)
    }

    /// Remembers that the patch at `at` makes a page with crc `crc` (read
    /// and checked, or written by this process).
    pub(crate) fn mark_patch_checked(&self, at: u64, crc: u32) {
        let mut m = self.patches.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= PATCHES_REMEMBERED {
            m.clear(); // a cache: forgetting only costs a check
        }
        m.insert(at, crc);
    }

    /// The frame at `offset`, checked against `crc` on first use.
    #[inline]
    fn frame(&self, offset: u64, len: usize, crc: u32, pgno: u32) -> Result<&[u8]> {
        let data = self.slice(offset, len);
        if !self.is_verified(offset, crc) {
            self.check(offset, crc, pgno, data)?;
        }
        Ok(data)
    }

    fn note_damage(&self, offset: u64) {
        let _ = self.damage.compare_exchange(0, offset + 1, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Where a read in this process found the log damaged, if one did.
    pub(crate) fn damage_seen(&self) -> Option<u64> {
        self.damage.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Checks a frame's bytes against its crc and remembers that it passed.
    fn check(&self, offset: u64, crc: u32, pgno: u32, data: &[u8]) -> Result<()> {
        let found = format::frame_crc(data);
        if found != crc {
            self.note_damage(offset);
            return Err(Error::Corrupt {
                path: self.path.clone(),
                offset,
                expected: format!("a frame of page {pgno} with crc {crc:#010x}"),
                found: format!("crc {found:#010x}"),
            });
        }
        self.mark_verified(offset, crc);
        Ok(())
    }
}

static ZEROS: [u8; format::MAX_PAGE_SIZE as usize] = [0; format::MAX_PAGE_SIZE as usize];

/// One committed version: immutable, cheap to hold (a reader's snapshot).
pub struct Version {
    pub number: u64,
    /// Page size; 0 for an empty version 0 of a log that has none yet.
    pub page_size: u32,
    pub map: PageMap,
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
            map: PageMap::new(),
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

    /// Page `pgno`'s slot as it reads: redirected when it lies below the
    /// control state's boundary (format 4; `control.rs` invariant 1).
    #[inline]
    fn slot(&self, pgno: u32) -> Result<Option<Slot>> {
        let Some(s) = self.map.get(pgno) else { return Ok(None) };
        if !self.control.redirects() {
            return Ok(Some(s));
        }
        match self.control.slot(pgno, s) {
            Some(r) => Ok(Some(r)),
            None => Err(Error::Corrupt {
                path: self.mapping.path.clone(),
                offset: crate::patch::position(s.offset),
                expected: format!(
                    "a copy of page {pgno} (crc {:#010x}) in the base tree: the page lies in the region freed below {}",
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
        self.control.base(pgno, base).unwrap_or(base)
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
        let Some(stored) = self.stored_page(pgno)? else { return Ok(None) };
        if pgno == 1 && self.derive_page1 && self.map.get(1).is_some_and(|s| s.offset != 0) {
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
        self.mapping.is_verified(slot.offset, slot.crc).then(|| self.mapping.slice(slot.offset, ps))
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
