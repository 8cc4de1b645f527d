//! The write path: a transaction's spill records, its commit record, the
//! sync that makes it durable, and revert.
//!
//! # Invariants
//! 1. Only the holder of the WRITER lock calls anything here that writes.
//! 2. A commit record is written in one `write_at`, after every frame it
//!    references; under `Durability::Full` the sync follows before the
//!    commit returns.
//! 3. Bytes past the log end that a failed or rolled-back transaction wrote
//!    are put back as they were (zeros where space was pre-allocated, the
//!    file length it had) before the WRITER lock is released.
//! 4. A page is stored as a patch (format 3 only) against an image the base
//!    version's entry for it names (directly, or as its patch's base), never
//!    against another patch; the entry's crc is the whole new page's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::commit4::{Commit4, Place};
use crate::error::{Error, Result};
use crate::format::{self, CommitInfo, Entry, Header, RecordHeader};
use crate::group::{Pending, Wait};
use crate::log::{now_us, random_u64, Durability, Link, Log, State};
use crate::pagemap::{PageMap, Slot};
use crate::storage::ZEROS;
use crate::txn::{Buf, SpillStore, WriteTxn};
use crate::version::{Mapping, Pages, Version};

/// Under `Durability::Normal`, a commit syncs the log when the last sync is
/// older than this. Closing the last connection to a log syncs it too.
pub const NORMAL_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// A full page map is written when the delta entries since the last one
/// exceed max(database pages, this) ...
pub const FULL_MAP_MIN_ENTRIES: u64 = 4096;
/// ... or when the commits since the last one reach max(database pages / 64,
/// 256). Opening replays at most that many commits after reading one full
/// map (16 bytes a page): replaying them costs about as much as reading it,
/// so opening costs the same whatever the length of history. The price is
/// at most 16 × 64 = 1 KiB of full map per commit.
pub const FULL_MAP_PAGES_PER_COMMIT: u64 = 64;
pub const FULL_MAP_MIN_COMMITS: u64 = 256;
/// Under `Durability::Normal`, a commit also syncs when the log has grown by
/// this much since the last sync, so recovery never re-reads more than this
/// (plus one commit's metadata) whatever the transactions' sizes.
pub const NORMAL_SYNC_BYTES: u64 = 16 << 20;
/// Under `Durability::Off` nothing is synced, but a transaction of at least
/// this many bytes is followed by a MARK, so that recovery need not re-read
/// it (Off's horizon is the writer's own last commit, synced or not).
pub const OFF_MARK_BYTES: u64 = 1 << 20;
/// Pre-allocation grows the file by an eighth of its size, within these
/// bounds, to a multiple of PREALLOC_MIN: a small database stays small (a
/// log under 64 KiB is a 64 KiB file).
pub const PREALLOC_MIN: u64 = 64 << 10;
pub const PREALLOC_MAX: u64 = 4 << 20;
/// A transaction that changed at most this many pages stores a changed page
/// as a patch when that is small; larger ones (bulk loads) store images
/// without comparing them.
pub const PATCH_MAX_PAGES: usize = 64;
impl Log {
    /// Called by a connection that just took the WRITER lock: refreshes, and
    /// removes what a crashed writer left past the end. Returns the latest.
    pub fn prepare_write(&self) -> Result<Arc<Version>> {
        if self.read_only {
            return Err(Error::ReadOnly { path: self.path.clone(), reason: "the log file is open read-only".into() });
        }
        let latest = self.refresh_latest()?;
        let mut st = self.lock();
        if let Some(h) = st.header.filter(|h| h.format == format::FORMAT_V1) {
            return Err(Error::ReadOnly {
                path: self.path.clone(),
                reason: format!(
                    "the log is in format {} (this build reads it but writes only formats {} and {}); \
                     `pagelog upgrade {}` rewrites it in format {}, keeping every version",
                    h.format,
                    format::FORMAT_V2,
                    format::FORMAT_VERSION,
                    self.path.display(),
                    format::FORMAT_VERSION
                ),
            });
        }
        // Bytes past the end (pre-allocated zeros, or debris of a crashed
        // writer) are overwritten by the next append; records there can never
        // chain onto a new commit, whose trailer crc they do not name.
        if let Some(at) = st.mapping.damage_seen() {
            return Err(self.corrupt(
                at,
                "an undamaged log (a write to a damaged log is refused; `pagelog verify` names all damage)",
                "a frame that failed its check on an earlier read",
            ));
        }
        if !st.alloc_exact {
            st.alloc_end = self.file_len()?;
            st.alloc_exact = true;
        }
        Ok(latest)
    }

    /// Starts a write transaction on `base` (which must be the latest).
    pub fn begin(&self, base: Arc<Version>, spill_limit: usize) -> WriteTxn {
        let st = self.lock();
        let start = if base.number == st.latest.number { st.log_end.max(base.end) } else { base.end };
        WriteTxn::new(base, spill_limit, start, st.alloc_end)
    }

    fn ensure_header(&self, st: &mut State, page_size: u32, durability: Durability) -> Result<u64> {
        if let Some(h) = st.header {
            return Ok(h.salt);
        }
        let h = Header { format: self.new_format, page_size, salt: random_u64(), created_us: now_us() };
        let mut buf = vec![0u8; format::FIRST_RECORD as usize];
        buf[..format::HEADER_SIZE].copy_from_slice(&h.encode());
        self.io.set_len(0).map_err(|e| Error::io(&self.path, "truncate", Some(0), e))?;
        self.io.write_at(&buf, 0).map_err(|e| Error::io(&self.path, "write header", Some(0), e))?;
        st.log_end = format::FIRST_RECORD;
        if durability != Durability::Off {
            self.io.sync().map_err(|e| Error::io(&self.path, "sync", None, e))?;
        }
        st.header = Some(h);
        self.format.store(h.format, std::sync::atomic::Ordering::Relaxed);
        st.mapping = Arc::new(
            Mapping::new(&self.file, &self.path, format::FIRST_RECORD, None)
                .map_err(|e| Error::io(&self.path, "mmap", None, e))?,
        );
        Ok(h.salt)
    }

    /// Discards a transaction: removes its spill records from the file.
    pub fn rollback(&self, txn: WriteTxn) -> Result<()> {
        if txn.spill_end() > txn.start() {
            let mut st = self.lock();
            self.discard(&mut st, txn.spill_end(), txn.alloc_at_begin())?;
        }
        Ok(())
    }

    /// Puts the bytes an abandoned transaction wrote past the end back as
    /// they were: zeros where the file had pre-allocated space, and the file
    /// length it had before the transaction.
    fn discard(&self, st: &mut State, txn_end: u64, alloc_before: u64) -> Result<()> {
        // Never below the committed end (only an empty log goes back to 0 bytes).
        let floor = if st.latest.number > 0 { st.log_end } else { 0 };
        let alloc_before = alloc_before.max(floor);
        let start = st.log_end;
        let zero_to = txn_end.min(alloc_before);
        let at = start;
        if zero_to > at {
            self.write_zeros(at, zero_to - at).map_err(|e| Error::io(&self.path, "write", Some(at), e))?;
        }
        if self.file_len()? > alloc_before {
            self.io.set_len(alloc_before).map_err(|e| Error::io(&self.path, "truncate", Some(alloc_before), e))?;
        }
        st.alloc_end = alloc_before;
        if alloc_before == 0 {
            st.header = None; // the log was empty before this transaction
        }
        Ok(())
    }

    /// Makes `txn` the next version. Ok(None) when it changed nothing (no
    /// version is created). On error the log is left at the previous
    /// version. The caller holds WRITER throughout, so this commit syncs
    /// under it as before (and, with the shared words, then raises them:
    /// `group.rs`); connections use [`Log::commit_appended`] instead.
    pub fn commit(&self, txn: WriteTxn, durability: Durability) -> Result<Option<Arc<Version>>> {
        match self.append_commit(txn, durability, false)? {
            Some(p) => self.finish_commit(p).map(Some),
            None => Ok(None),
        }
    }

    /// The part of [`Log::commit`] that needs WRITER: appends the commit
    /// and makes it this process's latest. With the shared words
    /// (`group.rs`) a FULL commit is not synced here: the caller may
    /// release WRITER, then must call [`Log::finish_commit`], which waits
    /// for a sync covering it (one for every commit appended meanwhile)
    /// and is what makes it visible. A failed sync then leaves the commit
    /// in the log, its durability unknown. Without the shared words the
    /// commit is synced here, under WRITER, as [`Log::commit`] does.
    pub fn commit_appended(&self, txn: WriteTxn, durability: Durability) -> Result<Option<Pending>> {
        self.append_commit(txn, durability, true)
    }

    fn append_commit(&self, mut txn: WriteTxn, durability: Durability, group: bool) -> Result<Option<Pending>> {
        if self.read_only {
            return Err(Error::ReadOnly { path: self.path.clone(), reason: "the log file is open read-only".into() });
        }
        txn.settle_page_size(self)?;
        let mut st = self.lock();
        let base = txn.follows().clone();
        if st.latest.number != base.number {
            return Err(Error::Busy {
                path: self.path.clone(),
                reason: format!(
                    "transaction began on version {} but the log is at version {}",
                    base.number, st.latest.number
                ),
            });
        }
        let mut prepared = match self.prepare_commit(&mut st, &mut txn, durability) {
            Ok(Some(p)) => p,
            other => {
                // Nothing to commit, or it failed: leave nothing of this
                // transaction in the file.
                let end = self.file_len().unwrap_or(u64::MAX);
                let _ = self.discard(&mut st, end, txn.alloc_at_begin());
                return other.map(|_| None);
            }
        };
        // Group commit: the sync (and the MARK that says so) moves out of
        // the append; a later commit's horizon carries the claim instead.
        let shm = st.shm.clone();
        if shm.is_some() && group && prepared.sync {
            prepared.sync = false;
            prepared.mark = false;
            prepared.durable_wait = true;
        }
        // The writer lock keeps other writers out; `committing` keeps this
        // process's readers from picking up the record before it is done.
        st.committing = true;
        drop(st);
        let written = self.write_prepared(&prepared);
        let mut st = self.lock();
        st.committing = false;
        match written {
            Ok((alloc_end, marked)) => {
                let (link, end, durable_wait, sync) =
                    (prepared.link, prepared.end, prepared.durable_wait, prepared.sync);
                let wait = match &shm {
                    None => Wait::Nothing,
                    Some(shm) => {
                        shm.appended().fetch_max(end, std::sync::atomic::Ordering::AcqRel);
                        if durable_wait {
                            Wait::Durable { end }
                        } else if sync {
                            // Synced here, under WRITER (`Log::commit`).
                            shm.raise_synced(end);
                            Wait::Nothing
                        } else if shm.visible_end() >= base.end {
                            // Nothing before it pending: visible at once.
                            shm.visible().fetch_max(end, std::sync::atomic::Ordering::AcqRel);
                            Wait::Nothing
                        } else {
                            Wait::Behind { prev_end: base.end, end }
                        }
                    }
                };
                let version = self.install(&mut st, prepared, alloc_end, marked)?;
                Ok(Some(Pending { version, link, wait, shm }))
            }
            Err(e) => {
                let end = self.file_len().unwrap_or(u64::MAX);
                let _ = self.discard(&mut st, end.max(prepared.end), txn.alloc_at_begin());
                // The slots it took are dead still (no commit names them):
                // back into the pool.
                let now = st.latest.number;
                for (o, d) in &prepared.slot_writes {
                    st.pool.insert(*o, d.len() as u32, now);
                }
                Err(e)
            }
        }
    }

    /// Works out the commit record of `txn` under the state lock: the
    /// changed pages, the page map, the checksum, and the record's bytes.
    /// Ok(None): the transaction changed nothing.
    fn prepare_commit(&self, st: &mut State, txn: &mut WriteTxn, durability: Durability) -> Result<Option<Prepared>> {
        let mut base = txn.base().clone();
        // The commit this one follows: the base, but for a format-4 revert,
        // whose pages are the target's (its base) and which follows the
        // latest, as a checkpoint.
        let mut chain = txn.follows().clone();
        let reverting = !Arc::ptr_eq(&chain, &base);
        // Format 4: a reclamation step since the transaction's snapshot was
        // taken (another process's, or another `Log`'s: SQLite's read began
        // before it) gave the same version a new control state. Patches
        // name their bases as the base version resolves them, and one named
        // through the old state may lie in the region the step freed, where
        // the new state resolves it by page (to another image after a
        // revert) and recovery fails its check (issue 20, R6).
        if !reverting && base.number == st.latest.number && !Arc::ptr_eq(&base.control, &st.latest.control) {
            base = st.latest.clone();
            chain = base.clone();
        }
        let page_size = txn.page_size();
        let db_pages = txn.db_pages();
        let same_ps = page_size == base.page_size;

        // The pages this transaction really changed, in page order.
        enum Src {
            Mem(usize),
            At(Slot),
        }
        let mut changed: Vec<(u32, Src)> = Vec::new();
        let mut inline: Vec<Box<[u8]>> = Vec::new();
        // The crc of each page of `inline`: its map entry's.
        let mut crcs: Vec<u32> = Vec::new();
        for (pgno, data) in txn.drain_pages(db_pages) {
            match data {
                Buf::Mem(v) => {
                    // Unchanged pages are dropped. A different crc proves a
                    // change without reading the old page (a patch would
                    // take two reads to make).
                    let crc = format::frame_crc(&v);
                    let unchanged = match if same_ps { base.map_slot(pgno)? } else { None } {
                        None => false,
                        Some(s) if s.offset == 0 => v.iter().all(|&b| b == 0),
                        Some(s) => s.crc == crc && base.page(pgno)?.as_deref() == Some(&v[..]),
                    };
                    if unchanged {
                        continue;
                    }
                    // Page 1 whose only change is SQLite's change counter:
                    // the new version derives it from its number.
                    if pgno == 1 && same_ps && self.derive_page1() {
                        if let Some(old) = base.page(1)? {
                            if crate::version::page1_same_but_counters(&old, &v) {
                                continue;
                            }
                        }
                    }
                    changed.push((pgno, Src::Mem(inline.len())));
                    inline.push(v);
                    crcs.push(crc);
                }
                Buf::Spilled(slot) => {
                    if same_ps && base.map_slot(pgno)?.map(|s| s.crc) == Some(slot.crc) {
                        let mut v = vec![0u8; page_size as usize];
                        if slot.offset != 0 {
                            self.read_spilled(slot.offset, &mut v)?;
                        }
                        if base.page(pgno)?.as_deref() == Some(&v[..]) {
                            continue;
                        }
                    }
                    changed.push((pgno, Src::At(slot)));
                }
            }
        }
        if changed.is_empty() && db_pages == base.db_pages() && (same_ps || db_pages == 0) {
            return Ok(None);
        }
        // Page 1's change counter in the new version: what the transaction
        // wrote there when it stores page 1, else the base's plus one (what
        // SQLite wrote, the page being dropped above for only that change).
        let counter = match changed.first() {
            Some((1, Src::Mem(i))) => crate::version::page1_counter(&inline[*i]),
            Some((1, Src::At(s))) if s.offset != 0 => {
                let mut h = vec![0u8; page_size as usize];
                self.read_spilled(s.offset, &mut h)?;
                crate::version::page1_counter(&h)
            }
            _ => None,
        }
        .unwrap_or(chain.counter.wrapping_add(1));

        let salt = self.ensure_header(st, page_size, durability)?;
        let mut offset = txn.spill_end().max(format::FIRST_RECORD);
        let version = chain.number + 1;
        let delta_pages = changed.len() as u64;
        // Format 4 writes a checkpoint where format 3 writes a full map.
        let f4 = self.format() >= format::FORMAT_V4;
        let full = if f4 {
            reverting
                || crate::checkpoint::due(
                    &base.map,
                    base.number,
                    same_ps,
                    !st.committed_here,
                    changed.iter().map(|(p, _)| *p),
                )
        } else {
            base.number == 0
                || !same_ps
                || st.entries_since_full + delta_pages > (db_pages as u64).max(FULL_MAP_MIN_ENTRIES)
                || st.commits_since_full + 1 >= (db_pages as u64 / FULL_MAP_PAGES_PER_COMMIT).max(FULL_MAP_MIN_COMMITS)
        };
        // Format 4: a delta far enough from its map commit lists its whole
        // difference from the checkpoint (a summary, `checkpoint.rs`).
        let summary = if f4 && !full {
            crate::checkpoint::summary_due(&base.map, db_pages, st.control.offset, changed.iter().map(|(p, _)| *p))
        } else {
            None
        };
        // A format-4 checkpoint has no entry table: its tree is its map.
        let n_entries = match (full, f4) {
            (true, false) => db_pages,
            (true, true) => 0,
            (false, _) => summary.unwrap_or(changed.len()) as u32,
        };
        // Format 4: a checkpoint's transaction carries the control state
        // right before its commit record, where a reader of it finds it;
        // its INDEX record (placed once its length is known) goes first.
        let index_at = offset;
        let control = if full && f4 {
            let info = crate::reclaim::control_as_of(&st.control, version);
            Some(info)
        } else {
            None
        };

        // Small transactions store a changed page as a patch against its
        // image when that is small (FORMAT.md, "Patches": writer policy).
        // Where each in-memory page goes: Ok(image index) or Err(offset
        // in the patch area).
        let mut place: Vec<Place> = Vec::with_capacity(inline.len());
        let mut area: Vec<u8> = Vec::new();
        let patching = self.writes_patches() && same_ps && inline.len() <= PATCH_MAX_PAGES;
        let limit = crate::patch::write_limit(page_size);
        let mut images = 0usize;
        for (pgno, src) in &changed {
            let Src::Mem(i) = src else { continue };
            let mut spot = None;
            if patching {
                if let Some((at, img)) = base.patch_base(*pgno)? {
                    if let Some(r) = crate::patch::diff(&img, &inline[*i], limit) {
                        spot = Some(area.len());
                        crate::patch::encode(at, &r, &inline[*i], &mut area);
                    }
                }
            }
            debug_assert_eq!(place.len(), *i);
            place.push(match spot {
                Some(a) => Place::Patch(a),
                None => {
                    images += 1;
                    Place::Frame(images - 1)
                }
            });
        }
        debug_assert!(area.len() <= PATCH_MAX_PAGES * limit && area.len() / 8 <= u16::MAX as usize);
        let patch_words = (area.len() / 8) as u16;
        let policy = !st.control.policy().is_all();
        // Recycling (`slots.rs`; FORMAT.md, "Frames in recycled slots"):
        // under a policy, a small delta's whole images go into dead slots
        // of this process's pool, checked against the log as it is now;
        // the rest stay in the record. Not a checkpoint, a revert, a SPILL
        // or a page-size change, nor a summary (its repeated entries name
        // older frames, which RECYCLED would say it wrote: FORMAT.md,
        // "Summary commits"); never without a policy (append-only).
        let mut recycled = false;
        if f4
            && summary.is_none()
            && policy
            && self.recycle
            && !full
            && !reverting
            && same_ps
            && images > 0
            && (images as u32) < crate::commit4::ALIGN_MIN_FRAMES
            && !st.pool.is_empty()
        {
            // The page of each in-memory image, in `place` order.
            let mut page_of = vec![0u32; place.len()];
            for (pgno, src) in &changed {
                if let Src::Mem(i) = src {
                    page_of[*i] = *pgno;
                }
            }
            let want: Vec<u32> =
                place.iter().zip(&page_of).filter(|(p, _)| matches!(p, Place::Frame(_))).map(|(_, &g)| g).collect();
            let got = self.take_slots(st, &want, page_size)?;
            if got.iter().any(|s| s.is_some()) {
                let mut it = got.into_iter();
                let mut k = 0usize;
                for p in place.iter_mut() {
                    if let Place::Frame(_) = p {
                        *p = match it.next().flatten() {
                            Some(o) => Place::Slot(o),
                            None => {
                                k += 1;
                                Place::Frame(k - 1)
                            }
                        };
                    }
                }
                images = k;
                recycled = true;
            }
        }
        let aligned =
            crate::commit4::aligned_flag(self.format(), format::KIND_COMMIT, images as u32, page_size, policy);
        let flags = aligned
            | if summary.is_some() { format::FLAG_SUMMARY } else { 0 }
            | if recycled { format::FLAG_RECYCLED } else { 0 }
            | match (full, f4) {
                (false, _) => 0,
                (true, false) => format::FLAG_FULL_MAP,
                (true, true) => format::FLAG_CHECKPOINT,
            };
        let lay_at = |offset: u64| {
            format::layout_with_flags(
                self.format(),
                offset,
                format::KIND_COMMIT,
                flags,
                n_entries,
                images as u32,
                page_size,
                patch_words,
            )
        };
        // Slots of the changed pages, for the commit record at `offset`.
        let slots_at = |offset: u64| -> Vec<(u32, Slot)> {
            let lay = lay_at(offset);
            let mut new_slots: Vec<(u32, Slot)> = Vec::with_capacity(changed.len());
            for (pgno, src) in &changed {
                let slot = match src {
                    Src::Mem(i) => Slot {
                        offset: match place[*i] {
                            Place::Frame(k) => offset + lay.payload_start + k as u64 * page_size as u64,
                            Place::Patch(a) => (offset + lay.patches_start + a as u64) | crate::patch::PATCH_TAG,
                            Place::Slot(o) => o,
                        },
                        crc: crcs[*i],
                    },
                    Src::At(s) => *s,
                };
                new_slots.push((*pgno, slot));
            }
            new_slots
        };
        // A checkpoint: its tree's new nodes (in an INDEX record first),
        // then its CONTROL record, then the commit (`checkpoint.rs`).
        let prev_link = Link { version: chain.number, offset: chain.commit_offset, crc: chain.commit_crc };
        let mut index: Option<(Vec<u8>, crate::tree::Root)> = None;
        let mut control_rec: Option<(format::ControlInfo, Vec<u8>)> = None;
        let mut control_free = None;
        if let Some(mut info) = control {
            // The copy repeats the list without the slots recycled since
            // its record (`slots.rs` invariant 4).
            let state = st.control.clone();
            let free = self.list_without_recycled(st, state.free())?;
            info.free_entries = free.len() as u32;
            let c = crate::checkpoint::Plan { salt, prev: prev_link, index_at, page_size, same_ps, db_pages, info };
            let planned = self.plan_checkpoint(st, &base, &c, &slots_at, &free)?;
            control_free = (free.len() != state.free().len()).then_some(free);
            offset = planned.offset;
            control_rec = Some((info, planned.control));
            index = Some((planned.nodes, planned.root));
        }
        let lay = lay_at(offset);
        let new_slots = slots_at(offset);
        if f4 {
            return self.finish_commit4(
                st,
                txn,
                Commit4 {
                    base: &base,
                    chain: &chain,
                    salt,
                    version,
                    offset,
                    index_at,
                    index,
                    control: control_rec,
                    control_free,
                    new_slots,
                    lay,
                    lay_entries: n_entries,
                    flags,
                    db_pages,
                    page_size,
                    counter,
                    images: &inline,
                    place: &place,
                    area: &area,
                    patch_words,
                    image_count: images,
                },
                durability,
            );
        }

        // The new checksum.
        let mut map = if same_ps { base.whole_map()? } else { PageMap::new() };
        let mut checksum = if same_ps { base.checksum } else { 0 };
        if same_ps {
            for p in (db_pages + 1)..=base.db_pages() {
                let s = map.get(p).unwrap();
                if s.offset != 0 {
                    checksum ^= format::page_hash(p, s.crc);
                }
            }
        }
        map.set_pages(db_pages);
        for (pgno, slot) in &new_slots {
            if let Some(old) = map.get(*pgno) {
                if old.offset != 0 {
                    checksum ^= format::page_hash(*pgno, old.crc);
                }
            }
            if slot.offset != 0 {
                checksum ^= format::page_hash(*pgno, slot.crc); // zero pages contribute nothing
            }
            map.set(*pgno, *slot);
        }
        let entries: Vec<Entry> = if full {
            map.entries()
        } else {
            new_slots.iter().map(|(p, s)| Entry { pgno: *p, crc: s.crc, offset: s.offset }).collect()
        };

        let info = CommitInfo {
            timestamp_us: now_us(),
            db_pages,
            entries: n_entries,
            horizon_version: st.horizon.version,
            horizon_offset: st.horizon.offset,
            horizon_crc: st.horizon.crc,
            full_map_offset: if full { offset } else { st.full_map_offset },
            checksum,
            page1_counter: counter,
        };
        let mut buf = vec![0u8; lay.length as usize];
        RecordHeader {
            kind: format::KIND_COMMIT,
            flags: if full { format::FLAG_FULL_MAP } else { 0 },
            length: lay.length,
            version,
            prev_commit: base.commit_offset,
            prev_crc: base.commit_crc,
            page_size,
            frames: images as u32,
            patch_words,
        }
        .encode(salt, &mut buf);
        info.encode(&mut buf[format::RECORD_HEADER_SIZE..]);
        let eb = format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE;
        for (i, e) in entries.iter().enumerate() {
            e.encode(&mut buf[eb + i * format::ENTRY_SIZE..]);
        }
        for (data, place) in inline.iter().zip(&place) {
            if let Place::Frame(k) = place {
                let at = lay.payload_start as usize + k * page_size as usize;
                buf[at..at + page_size as usize].copy_from_slice(data);
            }
        }
        let pa = lay.patches_start as usize;
        buf[pa..pa + area.len()].copy_from_slice(&area);
        let (meta, rest) = buf.split_at_mut(lay.payload_start as usize);
        let tl = rest.len();
        format::encode_trailer(salt, offset, meta, &mut rest[tl - format::TRAILER_SIZE..]);
        let commit_crc = format::trailer_crc(&rest[tl - format::TRAILER_SIZE..]);
        let link = Link { version, offset, crc: commit_crc };

        let end = offset + lay.length;
        let txn_bytes = end - txn.start();
        let (write_at, control) = (offset, None);
        let (sync, mark) = self.sync_and_mark(st, durability, txn_bytes);
        Ok(Some(Prepared {
            buf,
            write_at,
            control,
            control_free: None,
            slot_writes: Vec::new(),
            offset,
            end,
            link,
            full,
            n_entries,
            new_slots,
            map: Pages::Full(map),
            checksum,
            timestamp_us: info.timestamp_us,
            page_size,
            alloc_end: st.alloc_end,
            salt,
            counter,
            sync,
            mark,
            durable_wait: false,
            txn_bytes,
            durability,
        }))
    }

    /// Whether a commit of `txn_bytes` syncs, and whether a MARK follows it.
    pub(crate) fn sync_and_mark(&self, st: &State, durability: Durability, txn_bytes: u64) -> (bool, bool) {
        let sync = match durability {
            Durability::Full => true,
            Durability::Normal => {
                st.last_sync.elapsed() >= NORMAL_SYNC_INTERVAL || st.unsynced_bytes + txn_bytes >= NORMAL_SYNC_BYTES
            }
            Durability::Off => false,
        };
        // A MARK follows every sync; under Off, large transactions too.
        let mark = sync || (durability == Durability::Off && txn_bytes >= OFF_MARK_BYTES);
        (sync, mark)
    }

    /// Writes a prepared commit (and pre-allocated space), syncs it if it
    /// must, then writes the MARK that says so: the I/O, done without the
    /// state lock so that other connections of this process can go on
    /// reading. Returns the new length of pre-allocated space and whether
    /// the MARK was written.
    fn write_prepared(&self, p: &Prepared) -> Result<(u64, bool)> {
        let need = p.end + if p.mark { format::MARK_SIZE } else { 0 };
        let mut alloc_end = p.alloc_end.max(need);
        if need > p.alloc_end && (p.sync || p.durable_wait || p.durability == Durability::Normal) && !self.append_only {
            // Pre-allocate: zeros written (and synced with this commit, or
            // with the next sync under NORMAL) now make the syncs of the
            // next commits cheaper, as they no longer change the file's
            // size, and their writes cheaper, as they land on blocks the
            // file already has (appending past the end costs the kernel a
            // block reservation and the zeroing of a new page: 20,000
            // one-row NORMAL commits through the shell took 0.40 s of system
            // time appending, 0.26 s with pre-allocation). Recovery skips
            // zeros past the end.
            // Not under OFF, which promises nothing and should cost nothing.
            // They go first: if they cannot be written, nothing of the
            // commit is in the file yet.
            // When the disk cannot hold them, the commit goes on without:
            // pre-allocation must never be why a commit that fits fails.
            // The file ends on a multiple of PREALLOC_MIN: a small log is one
            // 64 KiB block, not 64 KiB past its first commit's end.
            let chunk = (p.end / 8).clamp(PREALLOC_MIN, PREALLOC_MAX);
            let to = (need + chunk - PREALLOC_MIN).next_multiple_of(PREALLOC_MIN);
            match self.write_zeros(p.end, to - p.end) {
                Ok(()) => alloc_end = to,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) => {
                    let keep = p.alloc_end.max(p.write_at);
                    self.io.set_len(keep).map_err(|e| Error::io(&self.path, "truncate", Some(keep), e))?;
                }
                Err(e) => return Err(Error::io(&self.path, "write", Some(p.end), e)),
            }
        }
        // Frames into recycled slots first (`slots.rs` invariant 5): the
        // record that names them after.
        for (at, data) in &p.slot_writes {
            self.io.write_at(data, *at).map_err(|e| Error::io(&self.path, "write a recycled slot", Some(*at), e))?;
        }
        self.io.write_at(&p.buf, p.write_at).map_err(|e| Error::io(&self.path, "write commit", Some(p.offset), e))?;
        if p.sync {
            self.io.sync().map_err(|e| Error::io(&self.path, "sync", None, e))?;
        }
        // The commit is made (and, if synced, durable) whatever happens to
        // its MARK: without it, recovery re-checks the commit's frames.
        let marked = p.mark && self.write_mark(p.salt, p.link, p.page_size, p.end).is_ok();
        Ok((alloc_end, marked))
    }

    fn write_zeros(&self, mut at: u64, len: u64) -> std::io::Result<()> {
        let end = at + len;
        while at < end {
            let n = (end - at).min(ZEROS.len() as u64) as usize;
            self.io.write_at(&ZEROS[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }

    /// Writes a MARK naming commit `link` (of page size `page_size`) at
    /// `end`, the end of its record: the claim that it is durable. Written
    /// only after a sync that covered the commit (under Off: see
    /// `OFF_MARK_BYTES`), never synced itself: if it is lost, recovery
    /// re-checks the commit's frames instead.
    pub(crate) fn write_mark(&self, salt: u64, link: Link, page_size: u32, end: u64) -> Result<()> {
        let mut buf = [0u8; format::MARK_SIZE as usize];
        RecordHeader {
            kind: format::KIND_MARK,
            flags: 0,
            length: format::MARK_SIZE,
            version: link.version,
            prev_commit: link.offset,
            page_size,
            frames: 0,
            patch_words: 0,
            prev_crc: link.crc,
        }
        .encode(salt, &mut buf);
        let (meta, t) = buf.split_at_mut(format::RECORD_HEADER_SIZE);
        format::encode_trailer(salt, end, meta, t);
        self.io.write_at(&buf, end).map_err(|e| Error::io(&self.path, "write mark", Some(end), e))
    }

    /// Makes a written commit the latest version of this process's view.
    fn install(&self, st: &mut State, p: Prepared, alloc_end: u64, marked: bool) -> Result<Arc<Version>> {
        st.alloc_end = st.alloc_end.max(alloc_end);
        if p.sync {
            st.last_sync = Instant::now();
            st.unsynced = false;
            st.unsynced_bytes = 0;
            st.horizon = p.link;
        } else {
            st.unsynced = p.durability == Durability::Normal;
            st.unsynced_bytes += p.txn_bytes;
            if p.durability == Durability::Off {
                st.horizon = p.link;
            }
        }
        st.log_end = if marked { p.end + format::MARK_SIZE } else { p.end };
        if let Some((at, crc, info)) = p.control {
            st.control = Arc::new(match p.control_free {
                Some(free) => st.control.copied_with_free(at, crc, info, free),
                None => st.control.copied(at, crc, info),
            });
        }
        st.committed_here = true;
        if p.full {
            st.full_map_offset = p.offset;
            st.entries_since_full = 0;
            st.commits_since_full = 0;
        } else {
            st.entries_since_full += p.n_entries as u64;
            st.commits_since_full += 1;
        }
        let mapping = self.mapping_covering(st, st.log_end)?;
        self.publish(st, st.log_end);
        let mut map = p.map;
        if let Pages::Tree(t) = &mut map {
            t.mapping = mapping.clone();
        }
        for (pgno, slot) in &p.new_slots {
            if slot.offset >= p.offset {
                // Written by us just now.
                if crate::patch::is_patch(slot.offset) {
                    mapping.mark_patch_checked(crate::patch::position(slot.offset), slot.crc);
                } else {
                    mapping.mark_verified(*pgno, slot.offset, p.page_size as usize, slot.crc);
                }
            }
        }
        let v = Arc::new(Version {
            number: p.link.version,
            page_size: p.page_size,
            map,
            commit_offset: p.offset,
            commit_crc: p.link.crc,
            end: p.end,
            timestamp_us: p.timestamp_us,
            checksum: p.checksum,
            mapping,
            counter: p.counter,
            derive_page1: self.derive_page1(),
            page1: Default::default(),
            control: st.control.clone(),
        });
        self.set_latest(st, v.clone());
        Ok(v)
    }

    /// Takes the WRITER lock on this log's own file description, polling
    /// until `timeout`; it is released when the guard drops. Tools use it;
    /// connections lock through their own descriptors (see `sqlite::file`).
    pub fn lock_writer(&self, timeout: Duration) -> Result<WriterGuard<'_>> {
        use std::os::fd::AsFd;
        if self.read_only {
            return Err(Error::ReadOnly { path: self.path.clone(), reason: "the log file is open read-only".into() });
        }
        let start = Instant::now();
        loop {
            match crate::lock::try_lock(self.file.as_fd(), crate::lock::WRITER, crate::lock::Mode::Exclusive) {
                Ok(true) => return Ok(WriterGuard { log: self }),
                Ok(false) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(5)),
                Ok(false) => {
                    return Err(Error::Busy {
                        path: self.path.clone(),
                        reason: format!("another connection is writing; gave up after {} ms", timeout.as_millis()),
                    })
                }
                Err(e) => return Err(Error::io(&self.path, "lock", None, e)),
            }
        }
    }

    /// Makes version `to` the latest by appending a new version whose
    /// contents equal it (history is kept). Costs a comparison of the two
    /// page maps, a read of `to`'s pages the latest does not share (a
    /// damaged `to` is refused: `revert_target.rs`) and one new page:
    /// unchanged pages reference version `to`'s frames. Page 1's file change counter and schema cookie become larger
    /// than any value before, so connections that cached pages or schema
    /// notice the change. Ok(None) when `to` is already the latest.
    pub fn revert(&self, to: u64, timeout: Duration) -> Result<Option<Arc<Version>>> {
        let _w = self.lock_writer(timeout)?;
        let latest = self.prepare_write()?;
        let target = self.version(to)?;
        if target.number == latest.number {
            return Ok(None);
        }
        self.check_revert_target(&target, &latest)?; // a damaged target would become the latest
        let f4 = self.format() >= format::FORMAT_V4;
        let mut txn = self.begin(latest.clone(), crate::txn::DEFAULT_SPILL_LIMIT);
        if target.db_pages() == 0 {
            txn.truncate(0);
        } else {
            let mut page1 = target.page(1)?.expect("page 1 exists").to_vec();
            let mut cur = [0u8; 100];
            latest.read(0, &mut cur)?;
            for at in [24usize, 40] {
                let field = |b: &[u8]| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
                let next = field(&cur).max(field(&page1)).wrapping_add(1);
                page1[at..at + 4].copy_from_slice(&next.to_be_bytes());
                if at == 24 {
                    // "version-valid-for": the in-header size is valid for this counter.
                    page1[92..96].copy_from_slice(&next.to_be_bytes());
                }
            }
            if f4 {
                // A checkpoint whose tree is the target's with its overlay
                // and the new page 1 applied: constant in the database's
                // size (no page-by-page comparison of the two maps).
                let (start, alloc) = (txn.start(), txn.alloc_at_begin());
                txn = WriteTxn::revert(target.clone(), latest.clone(), page1.into(), start, alloc);
            } else {
                txn.become_version(&target, page1.into());
            }
        }
        self.commit(txn, Durability::Full)
    }

    /// Syncs the log if commits made under `Durability::Normal` are not yet
    /// durable (called when the last connection closes), and says so with a
    /// MARK after the latest commit when no other connection is writing,
    /// so that the next process to open the log need not re-read them.
    pub fn sync_pending(&self) -> Result<()> {
        if !self.lock().unsynced {
            return Ok(());
        }
        use std::os::fd::AsFd;
        let writer = !self.read_only
            && crate::lock::try_lock(self.file.as_fd(), crate::lock::WRITER, crate::lock::Mode::Exclusive)
                .unwrap_or(false);
        let result = (|| {
            if writer {
                self.refresh_latest()?; // the MARK must follow the file's latest commit
            }
            let mut st = self.lock();
            self.io.sync().map_err(|e| Error::io(&self.path, "sync", None, e))?;
            // Every commit this view holds is whole in the file: now durable.
            if let Some(shm) = st.shm.clone() {
                shm.raise_synced(st.latest.end);
                self.visible_version(&mut st);
            }
            st.unsynced = false;
            st.unsynced_bytes = 0;
            st.last_sync = Instant::now();
            let latest = st.latest.clone();
            let link = Link { version: latest.number, offset: latest.commit_offset, crc: latest.commit_crc };
            st.horizon = link;
            if writer && link.version > 0 && st.log_end == latest.end {
                let (ps, end) = (latest.page_size, latest.end);
                let salt = st.header.expect("a log with a commit has a header").salt;
                drop(st);
                if self.write_mark(salt, link, ps, end).is_ok() {
                    let mut st = self.lock();
                    if st.latest.number == link.version {
                        st.log_end = end + format::MARK_SIZE;
                        st.alloc_end = st.alloc_end.max(st.log_end);
                    }
                }
            }
            Ok(())
        })();
        if writer {
            let _ = crate::lock::unlock(self.file.as_fd(), crate::lock::WRITER);
            self.writer_released();
        }
        result
    }
}

impl SpillStore for Log {
    /// Writes `pages` as a SPILL record at `offset`; returns their slots.
    fn write_spill(
        &self,
        txn_base: &Version,
        offset: u64,
        page_size: u32,
        pages: &[(u32, &[u8])],
    ) -> Result<(u64, Vec<Slot>)> {
        let mut st = self.lock();
        let salt = self.ensure_header(&mut st, page_size, Durability::Full)?;
        let offset = offset.max(format::FIRST_RECORD);
        let (kind, frames) = (format::KIND_SPILL, pages.len() as u32);
        let flags = crate::commit4::aligned_flag(self.format(), kind, frames, page_size, !st.control.policy().is_all());
        let lay = format::layout_with_flags(self.format(), offset, kind, flags, 0, frames, page_size, 0);
        let mut buf = vec![0u8; lay.length as usize];
        RecordHeader {
            kind,
            flags,
            length: lay.length,
            version: txn_base.number + 1,
            prev_commit: txn_base.commit_offset,
            prev_crc: txn_base.commit_crc,
            page_size,
            frames: pages.len() as u32,
            patch_words: 0,
        }
        .encode(salt, &mut buf);
        let mut slots = Vec::with_capacity(pages.len());
        for (i, (_, data)) in pages.iter().enumerate() {
            let at = lay.payload_start as usize + i * page_size as usize;
            buf[at..at + page_size as usize].copy_from_slice(data);
            slots.push(Slot { offset: offset + at as u64, crc: format::frame_crc(data) });
        }
        let t = buf.len() - format::TRAILER_SIZE;
        let (meta, rest) = buf.split_at_mut(lay.payload_start as usize);
        let tl = rest.len();
        format::encode_trailer(salt, offset, meta, &mut rest[tl - format::TRAILER_SIZE..]);
        debug_assert_eq!(t, lay.payload_start as usize + tl - format::TRAILER_SIZE);
        self.io.write_at(&buf, offset).map_err(|e| Error::io(&self.path, "write spill", Some(offset), e))?;
        st.alloc_end = st.alloc_end.max(offset + lay.length);
        Ok((offset + lay.length, slots))
    }

    /// Reads a page image this transaction spilled (past the log's end).
    fn read_spilled(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.io.read_at(buf, offset).map_err(|e| Error::io(&self.path, "read spilled page", Some(offset), e))
    }
}

/// A commit worked out under the state lock, to be written without it.
pub(crate) struct Prepared {
    /// The bytes written at `write_at`: a CONTROL record (format 4, before
    /// a full map), then the commit record at `offset`.
    pub(crate) buf: Vec<u8>,
    pub(crate) write_at: u64,
    /// The CONTROL record written with the commit: offset, crc, info.
    pub(crate) control: Option<(u64, u32, format::ControlInfo)>,
    /// That CONTROL record's free list, when it is not the state's
    /// (`slots.rs` invariant 4).
    pub(crate) control_free: Option<Vec<crate::freelist::FreeRange>>,
    /// Page images written into recycled slots before the record
    /// (`slots.rs` invariant 5): offset, bytes.
    pub(crate) slot_writes: Vec<(u64, Vec<u8>)>,
    pub(crate) offset: u64,
    pub(crate) end: u64,
    pub(crate) link: Link,
    pub(crate) full: bool,
    pub(crate) n_entries: u32,
    pub(crate) new_slots: Vec<(u32, Slot)>,
    pub(crate) map: Pages,
    pub(crate) checksum: u64,
    pub(crate) timestamp_us: u64,
    pub(crate) page_size: u32,
    pub(crate) alloc_end: u64,
    /// The log's salt, for the MARK.
    pub(crate) salt: u64,
    /// Page 1's change counter in the new version.
    pub(crate) counter: u32,
    pub(crate) sync: bool,
    /// Write a MARK after the record (and the sync).
    pub(crate) mark: bool,
    /// Group commit: the sync is `Log::finish_commit`'s (`group.rs`).
    pub(crate) durable_wait: bool,
    /// Bytes of the transaction: its spills and this record.
    pub(crate) txn_bytes: u64,
    pub(crate) durability: Durability,
}
impl Drop for Log {
    fn drop(&mut self) {
        // Commits made under synchronous=NORMAL become durable when the last
        // connection of the process closes the log.
        let _ = self.sync_pending();
        if let Some(shm) = self.lock().shm.take().and_then(Arc::into_inner) {
            crate::shm::detach(&self.file, shm);
        }
    }
}

/// Holds the WRITER lock of a log (see [`Log::lock_writer`]).
pub struct WriterGuard<'a> {
    log: &'a Log,
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsFd;
        let _ = crate::lock::unlock(self.log.file.as_fd(), crate::lock::WRITER);
        self.log.writer_released();
    }
}
