//! The [`Mapping`]: the read-only window on the log file through which
//! versions read, and the checks it remembers (which frames, patches and
//! index-tree nodes this process has checked).
//!
//! # Invariants
//! 1. Only bytes below a committed end are read through the map (log
//!    invariant 1), so mapped reads never fault.
//! 2. A frame, patch or node is checked against the crc that names it on
//!    its first read in this process; a mismatch is `Error::Corrupt` (or
//!    `tree::Damage`) naming the offset, never wrong data.
//! 3. A first read goes through `pread`, not the map, so a file cut short
//!    by another program gives an error, not SIGBUS; only checked bytes are
//!    handed out as slices of the map. Index-tree nodes are never read
//!    through the map: the node cache holds the bytes it checked, so the
//!    memory nodes take is the cache's, not the map's (every node page
//!    touched through a map would stay in the process's RSS).
//! 4. What is remembered is bounded, whatever the size of the database or
//!    its history: the frame tags 1 MiB (`frame_tags.rs`: a slot a page up
//!    to 262,144 pages, then shared), the patch cache
//!    [`PATCHES_REMEMBERED`] entries (256 KiB), the node cache
//!    `leaves::MAX_LEAVES` leaves (3.75 MiB) and [`INNER_CACHED`] inner
//!    nodes (~1.2 MiB), or once the tree is larger than [`LARGE_TREE`]
//!    leaves half as many leaves (1.9 MiB) and [`INNER_CACHED_LARGE`]
//!    inner nodes (~2.2 MiB): ~6.3 MiB at most (`Log::remembered_bytes`
//!    counts it; issue 21's long-lived reader may hold stock SQLite's
//!    memory + 8 MiB, and the extension's own code takes ~1.2 of that).
//!    Nothing of the map stays resident for a reader after the open
//!    (`Mapping::give_back`), as SQLite's page reads go through pread
//!    (invariant 3).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use memmap2::{Mmap, MmapOptions};

use crate::error::{Error, Result};
use crate::format;
use crate::frame_tags::FrameTags;
use crate::leaves::LeafTable;
use crate::patch;
use crate::tree;

/// A read-only window on the file. It may be longer than the file: only
/// offsets below a committed end are ever read through it. It also remembers
/// which frames this process has checked, and against which crc (a 32-bit
/// tag of the frame, crc and page, by page number, `frame_tags.rs`), so every
/// frame is checked once, on its first read; a second map entry naming the
/// same frame with another crc (only a crafted log has one) is checked
/// again and fails.
pub struct Mapping {
    /// The file, for `read_frame` (pread).
    pub(crate) file: Option<Arc<File>>,
    pub(crate) mmap: Option<Mmap>,
    pub(crate) cap: u64,
    pub(crate) path: PathBuf,
    /// Shared by all mappings of one log: a remap copies nothing.
    pub(crate) verified: Arc<FrameTags>,
    /// The offset (plus one; 0 = none) of the first damage any read in this
    /// process found, shared by all mappings of one log: the log then
    /// refuses writes (`Log::prepare_write`).
    pub(crate) damage: Arc<AtomicU64>,
    /// Patches this process has checked (invariant 5): offset → the crc
    /// of the page it makes. Shared by all mappings of one log; bounded
    /// (invariant 4).
    pub(crate) patches: Arc<Mutex<PatchCache>>,
    /// Index-tree nodes this process has checked, with their bytes (format
    /// 4). Shared by all mappings of one log; bounded (invariant 4).
    pub(crate) nodes: Arc<Mutex<NodeCache>>,
}

/// Checked index-tree nodes: leaves in the leaf table (by leaf number,
/// `leaves.rs`), inner nodes by where each was read → the crc it was
/// checked against and its bytes (a multiplication for a hash: it is probed
/// once a tree level).
/// Inner nodes are boxed: held inline, the table's spare buckets (up to
/// half of it after a growth) would be memory too.
pub(crate) struct NodeCache {
    pub(crate) leaves: LeafTable,
    inner: HashMap<u64, (u32, Box<[u8]>), NodeHasher>,
    /// The keys of `inner`: when full, one is forgotten at random
    /// (forgetting everything at once, or the oldest, made reads that cycle
    /// through more nodes than the cache holds re-read nearly every one).
    inner_keys: Vec<u64>,
    /// xorshift state for picking what to forget.
    rng: u64,
    /// Inner nodes held at most: [`INNER_CACHED`], [`INNER_CACHED_LARGE`]
    /// once the tree is large, or what a test set.
    inner_limit: usize,
    /// The tree was found large (a leaf number of [`LARGE_TREE`] or more),
    /// or a test set the limits: the split between leaves and inner nodes
    /// is final.
    split_final: bool,
}

impl Default for NodeCache {
    fn default() -> Self {
        NodeCache {
            leaves: LeafTable::default(),
            inner: HashMap::default(),
            inner_keys: Vec::new(),
            rng: 0,
            inner_limit: INNER_CACHED,
            split_final: false,
        }
    }
}

type NodeHasher = std::hash::BuildHasherDefault<crate::overlay::PageHasher>;

/// How many checked inner nodes it holds at most while the leaf table may
/// have all of its `leaves::MAX_LEAVES` entries: 1,152 (~1.2 MiB with the
/// table), every inner node of a 4 GiB database's tree (1,041 at 4 KiB
/// pages) with room for some of an older tree's.
const INNER_CACHED: usize = 1_152;

/// Leaf numbers from which the tree is large: 65,536 leaves (1,048,576
/// pages, 4 GiB of 4 KiB pages). The leaf table then holds a quarter of
/// the leaves or less, and a lookup it misses descends through an inner
/// node on each level, the lowest of which (one per 64 leaves, 4,096 at
/// 16 GiB) outnumber [`INNER_CACHED`]. So the memory moves: the leaf table
/// is halved (8,192 entries, 1.9 MiB; at 16 GiB it held 6 % of the leaves
/// and now 3 %) and the inner nodes get [`INNER_CACHED_LARGE`]. Before,
/// both were at their larger size together (3.75 + 2.2 MiB), and a reader
/// of every page of a 16 GiB database was stock SQLite + 7.6–8.6 MiB,
/// over issue 21's + 8 MiB (+ 6.9–7.3 since); with the inner nodes alone
/// cut to 1,024, its random point SELECTs took ~5 % more CPU (each further
/// inner-node miss is a `pread` and a check).
const LARGE_TREE: u32 = 4 * crate::leaves::MAX_LEAVES as u32;

/// Inner nodes held at most once the tree is large: 2,048 (~2.2 MiB), half
/// of a 16 GiB tree's lowest level.
const INNER_CACHED_LARGE: usize = 2_048;

impl NodeCache {
    /// The bytes of the inner node read at `at`, if they were checked
    /// against `crc`.
    #[inline]
    pub(crate) fn inner(&self, at: u64, crc: u32) -> Option<&[u8]> {
        match self.inner.get(&at) {
            Some((c, b)) if *c == crc => Some(b),
            _ => None,
        }
    }

    /// The bytes of the node at (`level`, `first`) read at `at`, if they
    /// were checked against `crc`.
    fn get(&self, at: u64, crc: u32, level: u8, first: u32) -> Option<Vec<u8>> {
        if level == 0 {
            self.leaves.bytes(at, crc, first)
        } else {
            self.inner(at, crc).map(<[u8]>::to_vec)
        }
    }

    fn insert(&mut self, at: u64, crc: u32, level: u8, first: u32, b: &[u8]) {
        // A cache: forgetting only costs a read and a check.
        if level == 0 {
            if !self.split_final && first / tree::LEAF_SLOTS as u32 >= LARGE_TREE {
                self.split_final = true;
                self.leaves.shrink_to(crate::leaves::MAX_LEAVES / 2);
                self.inner_limit = INNER_CACHED_LARGE;
            }
            self.leaves.insert(at, crc, first, b);
            return;
        }
        // One goes before the new one comes in, so the table never holds
        // more than its bound (and never grows past it).
        if !self.inner.contains_key(&at) {
            match self.victim(self.inner_keys.len(), self.inner_limit) {
                Some(i) => self.inner.remove(&std::mem::replace(&mut self.inner_keys[i], at)),
                None => {
                    self.inner_keys.push(at);
                    None
                }
            };
        }
        self.inner.insert(at, (crc, b.into()));
    }

    /// Bytes held: the leaf table's allocation, and per inner node its
    /// boxed bytes, its table bucket and its key (estimated: the
    /// allocator's own overhead is not counted).
    pub(crate) fn allocated(&self) -> usize {
        let bucket = std::mem::size_of::<(u64, (u32, Box<[u8]>))>() + 1;
        self.leaves.allocated()
            + self.inner.capacity() * bucket
            + self.inner.values().map(|(_, b)| b.len()).sum::<usize>()
            + self.inner_keys.capacity() * 8
    }

    /// Smaller bounds, for tests (`Log::limit_remembered`); drops what is
    /// held.
    pub(crate) fn set_limits(&mut self, leaves: usize, inner: usize) {
        self.leaves = LeafTable::with_limit(leaves);
        self.inner = HashMap::default();
        self.inner_keys = Vec::new();
        self.inner_limit = inner.max(1);
        self.split_final = true;
    }

    /// Which of `len` keys to forget for a new one, if `len` reached `cap`.
    fn victim(&mut self, len: usize, cap: usize) -> Option<usize> {
        if len < cap {
            return None;
        }
        let mut x = self.rng | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        Some((x % len as u64) as usize)
    }
}

/// How many checked patches `Mapping::patches` remembers at most: 16,384
/// entries of 16 bytes, 256 KiB. A long-lived writer adds one a commit, and
/// a reader one per patched page it reads; past that they share entries.
/// (A hash map of up to 65,536 held ~2.1 MiB once a reader had read that
/// many patched pages: issue 21's long-lived reader after 100,000 one-row
/// commits.)
pub(crate) const PATCHES_REMEMBERED: usize = 1 << 14;

/// Checked patches, direct-mapped: the patch at `at` in entry
/// `hash(at) mod len`, holding `at` and the crc of the page it makes (0, 0:
/// empty; no patch lies at 0). A lookup matches only the exact offset and
/// crc, so a patch is never taken as checked because another shares its
/// entry; a newer patch in the entry only makes the older one checked
/// again on its next read. Allocated zeroed at the first insert (a log
/// whose readers meet no patch costs nothing), its memory pages touched as
/// entries are set: at most `limit × 16` bytes.
pub(crate) struct PatchCache {
    /// `at`, `crc` per entry, two words each.
    words: Vec<u64>,
    /// Entries when allocated: a power of two.
    limit: usize,
}

impl Default for PatchCache {
    fn default() -> Self {
        PatchCache { words: Vec::new(), limit: PATCHES_REMEMBERED }
    }
}

impl PatchCache {
    #[inline]
    fn index(&self, at: u64) -> usize {
        // Patches lie at 8-byte positions; a multiplication spreads them.
        let n = self.words.len() / 2;
        ((at >> 3).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & (n - 1)
    }

    /// Whether the patch at `at` was checked as making a page with crc `crc`.
    pub(crate) fn get(&self, at: u64, crc: u32) -> bool {
        if self.words.is_empty() || at == 0 {
            return false;
        }
        let i = self.index(at);
        self.words[2 * i] == at && self.words[2 * i + 1] == crc as u64
    }

    pub(crate) fn insert(&mut self, at: u64, crc: u32) {
        if at == 0 {
            return;
        }
        if self.words.is_empty() {
            self.words = vec![0u64; 2 * self.limit];
        }
        let i = self.index(at);
        self.words[2 * i] = at;
        self.words[2 * i + 1] = crc as u64;
    }

    /// Bytes allocated (at most `PATCHES_REMEMBERED × 16`).
    pub(crate) fn allocated(&self) -> usize {
        self.words.capacity() * 8
    }

    /// A smaller bound (a power of two, at least 1), for tests; drops what
    /// is held.
    pub(crate) fn set_limit(&mut self, entries: usize) {
        self.limit = entries.max(1).next_power_of_two();
        self.words = Vec::new();
    }
}

impl Mapping {
    pub(crate) fn new(file: &Arc<File>, path: &Path, min_len: u64, prev: Option<&Mapping>) -> std::io::Result<Mapping> {
        let cap = (min_len.saturating_mul(2)).max(64 << 20).next_multiple_of(1 << 20);
        // SAFETY: the map is read-only and we only read bytes below a committed
        // end, which (invariant 1) no process writes or truncates. Bytes past
        // the file's end are never touched, so no SIGBUS.
        let mmap = unsafe { MmapOptions::new().len(cap as usize).map(&**file)? };
        let verified = prev.map(|p| p.verified.clone()).unwrap_or_default();
        let damage = prev.map(|p| p.damage.clone()).unwrap_or_default();
        let patches = prev.map(|p| p.patches.clone()).unwrap_or_default();
        let nodes = prev.map(|p| p.nodes.clone()).unwrap_or_default();
        Ok(Mapping {
            file: Some(file.clone()),
            mmap: Some(mmap),
            cap,
            path: path.to_path_buf(),
            verified,
            damage,
            patches,
            nodes,
        })
    }

    pub(crate) fn empty(path: &Path) -> Mapping {
        Mapping {
            file: None,
            mmap: None,
            cap: 0,
            path: path.to_path_buf(),
            verified: Default::default(),
            damage: Default::default(),
            patches: Default::default(),
            nodes: Default::default(),
        }
    }

    #[inline]
    pub(crate) fn slice(&self, offset: u64, len: usize) -> &[u8] {
        debug_assert!(offset + len as u64 <= self.cap);
        let m = self.mmap.as_ref().expect("read through an empty mapping");
        &m[offset as usize..offset as usize + len]
    }

    /// Drops this process's resident pages of the map from the memory page
    /// holding `from` up to the one holding `to` (`MADV_DONTNEED`; the
    /// first may hold earlier bytes, which only fault in again if read,
    /// the last is kept for the bytes after `to`): for a walk that
    /// read records out of the map and is done with them. The pages stay in
    /// the page cache, and a later read through the map faults them in
    /// again, with the same bytes.
    pub(crate) fn give_back(&self, from: u64, to: u64) {
        const PAGE: u64 = 4096;
        let Some(m) = self.mmap.as_ref() else { return };
        let from = from / PAGE * PAGE;
        let to = (to / PAGE * PAGE).min(self.cap / PAGE * PAGE);
        if to > from {
            use memmap2::UncheckedAdvice;
            // SAFETY: the range lies inside the mapping, which is a shared,
            // read-only map of the log file: after MADV_DONTNEED its pages
            // read the file's bytes again from the page cache, the same bytes
            // any slice borrowed from it saw (no private copy is discarded).
            // The log below the committed end is never rewritten (a punched
            // hole drops the pages from every mapping anyway).
            let _ = unsafe { m.unchecked_advise_range(UncheckedAdvice::DontNeed, from as usize, (to - from) as usize) };
        }
    }

    /// Whether the frame of `len` bytes at `offset` was checked against
    /// `crc` as page `pgno`'s image, and is the last one checked for it.
    #[inline]
    pub(crate) fn is_verified(&self, pgno: u32, offset: u64, len: usize, crc: u32) -> bool {
        self.verified.is_checked(pgno, offset, len, crc)
    }

    /// Remembers that the frame of `len` bytes at `offset` holds page
    /// `pgno`'s image with crc `crc` (checked, or written by this process).
    pub(crate) fn mark_verified(&self, pgno: u32, offset: u64, len: usize, crc: u32) {
        self.verified.mark(pgno, offset, len, crc);
    }

    /// Copies `dst.len()` bytes from `in_page` on of the frame at `offset`
    /// with pread, checking the frame against `crc` on first use. This is
    /// SQLite's read path: pread, not the memory map, so that a file cut
    /// short by another program is an error here, where touching the map
    /// would raise SIGBUS and kill the host.
    pub(crate) fn read_frame(
        &self,
        offset: u64,
        len: usize,
        crc: u32,
        pgno: u32,
        in_page: usize,
        dst: &mut [u8],
    ) -> Result<()> {
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
        if self.is_verified(pgno, offset, len, crc) {
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
    pub(crate) fn read_patched(
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
        self.patches.lock().unwrap_or_else(|p| p.into_inner()).get(at, crc)
    }

    /// Remembers that the patch at `at` makes a page with crc `crc` (read
    /// and checked, or written by this process).
    pub(crate) fn mark_patch_checked(&self, at: u64, crc: u32) {
        // A cache: forgetting only costs a check.
        self.patches.lock().unwrap_or_else(|p| p.into_inner()).insert(at, crc);
    }

    /// The frame at `offset`, checked against `crc` on first use.
    #[inline]
    pub(crate) fn frame(&self, offset: u64, len: usize, crc: u32, pgno: u32) -> Result<&[u8]> {
        let data = self.slice(offset, len);
        if !self.is_verified(pgno, offset, len, crc) {
            self.check(offset, crc, pgno, data)?;
        }
        Ok(data)
    }

    /// The bytes of the index-tree node `ptr` names at (`level`, `first`),
    /// read at `at` (`ptr.offset`, or where the node was relocated to),
    /// which must end at or before `end` (a committed end): read with pread
    /// and checked (`tree::check`, as the node at `ptr.offset`) on its first
    /// read in this process, from the node cache afterwards (invariants
    /// 2, 3).
    /// Damage is `Error::Corrupt` naming the node's offset.
    pub(crate) fn node(&self, ptr: tree::Slot, at: u64, level: u8, first: u32, end: u64) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let len = tree::node_size(level);
        let corrupt = |d: tree::Damage| {
            self.note_damage(d.offset);
            Error::Corrupt { path: self.path.clone(), offset: d.offset, expected: d.expected, found: d.found }
        };
        let what = || format!("an index-tree node at level {level} for pages from {first} ({len} bytes)");
        let past = at.checked_add(len as u64).is_none_or(|e| e > end || e > self.cap);
        if past || at < format::FIRST_RECORD {
            let found = format!("an offset outside the committed log (which ends at {end})");
            return Err(corrupt(tree::Damage { offset: ptr.offset, expected: what(), found }));
        }
        if let Some(b) = self.nodes.lock().unwrap_or_else(|p| p.into_inner()).get(at, ptr.crc, level, first) {
            return Ok(b);
        }
        let file = self.file.as_ref().expect("read through an empty mapping");
        let mut b = vec![0u8; len];
        if let Err(e) = file.read_exact_at(&mut b, at) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                let found = "the end of the file (the committed log was truncated by another program)".into();
                return Err(corrupt(tree::Damage { offset: ptr.offset, expected: what(), found }));
            }
            return Err(Error::io(&self.path, "read", Some(at), e));
        }
        tree::check(&b, ptr.offset, ptr.crc, level, first).map_err(corrupt)?;
        self.nodes.lock().unwrap_or_else(|p| p.into_inner()).insert(at, ptr.crc, level, first, &b);
        Ok(b)
    }

    /// The node cache, locked: a lookup walks the levels it holds under one
    /// lock (`index::lookup`).
    pub(crate) fn node_cache(&self) -> std::sync::MutexGuard<'_, NodeCache> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note_damage(&self, offset: u64) {
        let _ = self.damage.compare_exchange(0, offset + 1, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Where a read in this process found the log damaged, if one did.
    pub(crate) fn damage_seen(&self) -> Option<u64> {
        self.damage.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Checks a frame's bytes against its crc and remembers that it passed.
    pub(crate) fn check(&self, offset: u64, crc: u32, pgno: u32, data: &[u8]) -> Result<()> {
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
        self.mark_verified(pgno, offset, data.len(), crc);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Mapping, NodeCache, PatchCache, INNER_CACHED, INNER_CACHED_LARGE, LARGE_TREE};
    use crate::leaves::MAX_LEAVES;
    use crate::tree;

    /// Invariant 2 under tags by page number: one page's entry naming a
    /// frame this process checked, with another crc, is checked again
    /// (and fails) on every read path and after a remap, and a frame is
    /// checked again at another page size.
    #[test]
    fn a_frame_named_again_with_another_crc_is_checked_again() {
        let dir = std::env::temp_dir().join(format!("pagelog-retag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let mut bytes = vec![7u8; 16384];
        bytes[8192..].fill(9);
        std::fs::write(&p, &bytes).unwrap();
        let f = std::sync::Arc::new(std::fs::File::open(&p).unwrap());
        let m = Mapping::new(&f, &p, 16384, None).unwrap();
        let good = crate::format::frame_crc(&bytes[4096..8192]);
        let mut buf = [0u8; 100];
        assert!(m.read_frame(4096, 4096, good, 3, 0, &mut buf).is_ok());
        assert!(m.is_verified(3, 4096, 4096, good));
        assert!(!m.is_verified(3, 4096, 4096, good ^ 1), "another crc");
        assert!(m.read_frame(4096, 4096, good ^ 1, 3, 0, &mut buf).is_err(), "pread path: checked again");
        assert!(m.frame(4096, 4096, good ^ 0x8000_0000, 3).is_err(), "map path: checked again");
        // The failed checks did not forget the good one.
        assert!(m.is_verified(3, 4096, 4096, good));
        // A remap shares the tags (nothing copied) and keeps the rule.
        let m2 = Mapping::new(&f, &p, 128 << 20, Some(&m)).unwrap();
        assert!(m2.is_verified(3, 4096, 4096, good), "a remap keeps what was checked");
        assert!(m2.frame(4096, 4096, good.rotate_left(7), 3).is_err());
        // The same offset as a 1 KiB page with the 4 KiB frame's crc: not
        // trusted (and wrong: those bytes have another crc).
        assert!(!m2.is_verified(3, 4096, 1024, good));
        assert!(m2.frame(4096, 1024, good, 3).is_err());
        let small = crate::format::frame_crc(&bytes[4096..5120]);
        assert!(m2.frame(4096, 1024, small, 3).is_ok());
        assert!(!m2.is_verified(3, 4096, 4096, good), "one tag a page: the 4 KiB frame is checked again");
        assert!(m2.frame(4096, 4096, good, 3).is_ok());
        // Page 3 re-pointed to another frame: checked on its first read.
        let other = crate::format::frame_crc(&bytes[8192..12288]);
        assert!(!m.is_verified(3, 8192, 4096, other));
        assert!(m.frame(8192, 4096, other ^ 4, 3).is_err());
        assert!(m.frame(8192, 4096, other, 3).is_ok());
        assert!(m2.is_verified(3, 8192, 4096, other), "seen through every mapping of the log");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_node_cache_hands_back_checked_bytes_and_stays_bounded() {
        let mut c = NodeCache::default();
        let mut leaf = Vec::new();
        let crc = tree::Node::empty(0, 16).encode_into(&mut leaf);
        c.insert(512, crc, 0, 16, &leaf);
        c.insert(4096, 9, 1, 1024, &[3u8; tree::INNER_SIZE]);
        assert_eq!(c.get(512, crc, 0, 16), Some(leaf.clone()));
        assert_eq!(c.get(512, crc ^ 1, 0, 16), None, "another crc is not the node checked");
        assert_eq!(c.get(512, crc, 1, 16), None, "a leaf is not an inner node");
        assert_eq!(c.get(4096, 9, 1, 1024), Some(vec![3u8; tree::INNER_SIZE]));
        for i in 0..3 * INNER_CACHED as u64 {
            c.insert((1 << 30) + i * 8, 1, 1, 1024, &[1u8; tree::INNER_SIZE]);
            assert!(c.inner.len() <= INNER_CACHED);
        }
        assert_eq!(c.inner_keys.len(), INNER_CACHED);
        let mut keys = c.inner_keys.clone();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), INNER_CACHED, "each cached node once");
        assert!(keys.iter().all(|k| c.inner.contains_key(k)));
    }

    fn leaf_bytes(first: u32) -> (Vec<u8>, u32) {
        let mut b = Vec::new();
        let crc = tree::Node::empty(0, first).encode_into(&mut b);
        (b, crc)
    }

    /// Invariant 4 past 4 GiB: the leaf table gives half of itself to the
    /// inner nodes once a leaf of a large tree is seen, never holding both
    /// at their larger size, so the node cache's memory has one bound
    /// whatever the tree's size.
    #[test]
    fn a_large_tree_moves_memory_from_the_leaf_table_to_inner_nodes() {
        let mut c = NodeCache::default();
        // Every leaf of a 1 GiB tree, then more inner nodes than it keeps.
        for n in 0..MAX_LEAVES as u32 {
            let (b, crc) = leaf_bytes(n * 16);
            c.insert(512 + n as u64 * 512, crc, 0, n * 16, &b);
        }
        for i in 0..2 * INNER_CACHED_LARGE as u64 {
            c.insert((1 << 30) + i * 2048, 1, 1, 0, &[1u8; tree::INNER_SIZE]);
        }
        assert_eq!(c.leaves.capacity(), MAX_LEAVES);
        assert_eq!(c.inner.len(), INNER_CACHED);
        let small_tree = c.allocated();
        // A leaf of a tree larger than 4 GiB of 4 KiB pages.
        let far = LARGE_TREE * 16;
        let (b, crc) = leaf_bytes(far);
        c.insert(1 << 20, crc, 0, far, &b);
        assert_eq!(c.get(1 << 20, crc, 0, far), Some(b), "the new leaf is held");
        assert_eq!(c.leaves.capacity(), MAX_LEAVES / 2);
        for n in 0..4 * MAX_LEAVES as u32 {
            let first = far + 16 + n * 16;
            let (b, crc) = leaf_bytes(first);
            c.insert((2 << 30) + n as u64 * 512, crc, 0, first, &b);
        }
        for i in 0..3 * INNER_CACHED_LARGE as u64 {
            c.insert((3 << 30) + i * 2048, 1, 1, 0, &[1u8; tree::INNER_SIZE]);
            assert!(c.inner.len() <= INNER_CACHED_LARGE);
        }
        assert_eq!(c.leaves.capacity(), MAX_LEAVES / 2, "the table stays halved");
        assert_eq!(c.inner.len(), INNER_CACHED_LARGE);
        let large_tree = c.allocated();
        // 240 bytes a leaf entry; an inner node's 1,032 bytes, its bucket
        // and key under 100 more.
        let bound = MAX_LEAVES * 240 + INNER_CACHED * 1_132;
        assert!(small_tree <= bound, "{small_tree} bytes before, bound {bound}");
        assert!(large_tree <= bound, "{large_tree} bytes after, bound {bound}");
        assert!(large_tree < MAX_LEAVES * 240 + INNER_CACHED_LARGE * 1_032, "never both at their larger size");
    }

    /// The patch cache hands back only the exact (offset, crc) it was given,
    /// and holds at most its limit.
    #[test]
    fn the_patch_cache_is_exact_and_bounded() {
        let mut p = PatchCache::default();
        assert!(!p.get(4096, 7), "empty");
        assert_eq!(p.allocated(), 0, "nothing allocated before the first patch");
        p.insert(4096, 7);
        assert!(p.get(4096, 7));
        assert!(!p.get(4096, 8), "another crc");
        assert!(!p.get(4104, 7), "another offset");
        for i in 0..100_000u64 {
            p.insert(8192 + i * 88, i as u32);
        }
        assert_eq!(p.allocated(), super::PATCHES_REMEMBERED * 16);
        let held = (0..100_000u64).filter(|&i| p.get(8192 + i * 88, i as u32)).count();
        assert!(held > 0 && held <= super::PATCHES_REMEMBERED, "{held} held");
        p.set_limit(100);
        p.insert(4096, 7);
        assert_eq!(p.allocated(), 128 * 16, "a limit is rounded up to a power of two");
    }
}
