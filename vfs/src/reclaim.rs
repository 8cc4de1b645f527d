//! Retention (format 4, in development; docs/format-4.md): the policy a log
//! keeps, stored in CONTROL records, and the reclamation step that frees the
//! oldest part of the log in place.
//!
//! # A step (docs/format-4.md, "One reclamation step")
//! Under the WRITER lock: take the oldest version the policy keeps, `Vo`;
//! choose the new boundary `B'` (never past the commit before `Vo`'s full
//! map's transaction, never past a revert's entry that `Vo` does not share);
//! copy every item `Vo` reaches in `[B, B')` (a patch together with its
//! base) into a new CONTROL record with the base tree's changed nodes;
//! sync it; then punch the freed region once no reader holds an older epoch.
//!
//! # Invariants
//! 1. A CONTROL record that moves `B` is synced before any byte below `B`
//!    is punched: a crash before the sync leaves a torn record that
//!    recovery ignores, with nothing freed.
//! 2. Punching `[512, B_k)` waits until no other open file description
//!    holds an epoch lock below `k` (`lock::held_in`): a reader of an older
//!    epoch may read that region directly.
//! 3. The base tree names only items at or after the boundary, a patch's
//!    base included (`control.rs` invariant 2).
//! 4. Phase 1: costs O(database pages) of CPU per step (the writer's page
//!    map of `Vo`); the I/O is the items copied and the base tree's paths.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::control::{Control, MapSource};
use crate::error::{Error, Result};
use crate::format::{self, ControlInfo, RecordHeader};
use crate::log::{now_us, Link, Log, Rec, State};
use crate::patch;
use crate::retention::Policy;
use crate::tree;

/// The info a CONTROL record copied before a full map carries: the log's
/// state, or the first state of a format-4 log whose first full map is at
/// `version`.
pub(crate) fn control_as_of(c: &Control, version: u64) -> ControlInfo {
    if c.offset != 0 {
        return c.info;
    }
    ControlInfo { epoch: 1, boundary: format::FIRST_RECORD, oldest_version: version, ..Default::default() }
}

/// The bytes of a CONTROL record at `at`, following commit `prev` (whose
/// page size is `page_size`), with `info` (its `payload_bytes` and
/// `stragglers` set from the arguments), the straggler table `table` and
/// `payload`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn control_record(
    salt: u64,
    at: u64,
    prev: Link,
    page_size: u32,
    info: &ControlInfo,
    table: &[(u64, u64)],
    payload: &[u8],
    claim: bool,
) -> Vec<u8> {
    debug_assert_eq!(payload.len() % 8, 0);
    let payload_crc = format::salted_crc(salt, &[payload]);
    let stragglers = table.len() as u32;
    let info = ControlInfo { payload_bytes: payload.len() as u64, stragglers, payload_crc, ..*info };
    let lay = format::control_layout(&info);
    let mut buf = vec![0u8; lay.length as usize];
    RecordHeader {
        kind: format::KIND_CONTROL,
        flags: if claim { format::FLAG_CLAIM } else { 0 },
        length: lay.length,
        version: prev.version + 1,
        prev_commit: prev.offset,
        page_size,
        frames: 0,
        patch_words: 0,
        prev_crc: prev.crc,
    }
    .encode(salt, &mut buf);
    info.encode(&mut buf[format::RECORD_HEADER_SIZE..]);
    let tb = crate::control::encode_table(table);
    let t0 = format::RECORD_HEADER_SIZE + format::CONTROL_INFO_SIZE;
    buf[t0..t0 + tb.len()].copy_from_slice(&tb);
    let ps = lay.payload_start as usize;
    buf[ps..ps + payload.len()].copy_from_slice(payload);
    let (meta, rest) = buf.split_at_mut(ps);
    let tl = rest.len();
    format::encode_trailer(salt, at, meta, &mut rest[tl - format::TRAILER_SIZE..]);
    buf
}

/// A writer looks for something to reclaim after the log grew this much.
pub const AUTO_MIN_GROWTH: u64 = 1 << 20;
/// How much one automatic step frees at most: a commit waits for at most one.
pub const AUTO_STEP_BYTES: u64 = 4 << 20;

/// What one reclamation step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reclaimed {
    /// The oldest version kept after the step.
    pub oldest: u64,
    /// The boundary after the step: bytes below it are freed.
    pub boundary: u64,
    /// Bytes the step freed (`B' − B`).
    pub freed: u64,
    /// Pages it copied past the boundary.
    pub relocated: u64,
    /// Bytes of the CONTROL record it appended (0: it did nothing).
    pub appended: u64,
    /// The region it punched, `[512, punched)` (0: none).
    pub punched: u64,
}

impl Log {
    /// The log's retention policy (`all` before format 4 or before one is set).
    pub fn retention(&self) -> Policy {
        self.lock().control.policy()
    }

    /// The oldest version the log still holds (format 4: the oldest the
    /// retention policy kept; else the first commit's).
    pub fn oldest_kept(&self) -> Option<u64> {
        let st = self.lock();
        (st.control.redirects()).then_some(st.control.info.oldest_version)
    }

    /// Sets the log's retention policy: appends a CONTROL record holding it
    /// and syncs it, so that every process and tool honours it. Format 4
    /// only. A size budget below the database's size is refused.
    pub fn set_retention(&self, policy: Policy, timeout: Duration) -> Result<()> {
        let _w = self.lock_writer(timeout)?;
        let latest = self.prepare_write()?;
        if self.format() < format::FORMAT_V4 {
            return Err(Error::Unsupported(format!(
                "{}: a retention policy needs a log in format 4 (this log is in format {})",
                self.path.display(),
                self.format()
            )));
        }
        if latest.number == 0 {
            return Err(Error::Unsupported(format!(
                "{}: the log is empty; set a retention policy after its first commit",
                self.path.display()
            )));
        }
        if let Some(b) = policy.bytes {
            if b < latest.size_bytes() {
                return Err(Error::Unsupported(format!(
                    "{}: a budget of {b} bytes is below the database's own size ({} bytes): it could only be met \
                     by dropping the latest version, which is never done",
                    self.path.display(),
                    latest.size_bytes()
                )));
            }
        }
        let mut st = self.lock();
        let mut info = control_as_of(&st.control, latest.number);
        info.keep_versions = policy.versions.unwrap_or(0);
        info.keep_seconds = policy.age_secs.unwrap_or(0);
        info.keep_bytes = policy.bytes.unwrap_or(0);
        let control = st.control.clone();
        self.append_control(&mut st, info, &control, control.table(), Vec::new())?;
        Ok(())
    }

    /// Appends a CONTROL record with `info` after the latest commit (a sync
    /// before it, so that it may claim that commit durable, and one after),
    /// and makes it the log's state. `old`: the state it follows (its base
    /// tree is kept when `info` names the same root); `payload`: the
    /// relocated items followed by the base tree's new nodes.
    fn append_control(
        &self,
        st: &mut State,
        info: ControlInfo,
        old: &Control,
        table: &[(u64, u64)],
        payload: Vec<u8>,
    ) -> Result<u64> {
        let salt = st.header.expect("a log with a commit has a header").salt;
        let latest = st.latest.clone();
        let at = st.log_end;
        let prev = Link { version: latest.number, offset: latest.commit_offset, crc: latest.commit_crc };
        // Sync first: the record claims the latest commit durable (FLAG_CLAIM),
        // so that no claim a later commit makes can name a commit this or a
        // later step frees (a horizon lags under synchronous=NORMAL).
        self.io.sync().map_err(|e| Error::io(&self.path, "sync", None, e))?;
        let rec = control_record(salt, at, prev, latest.page_size, &info, table, &payload, true);
        self.io.write_at(&rec, at).map_err(|e| Error::io(&self.path, "write control", Some(at), e))?;
        self.io.sync().map_err(|e| Error::io(&self.path, "sync", None, e))?;
        st.horizon = prev;
        st.unsynced = false;
        st.unsynced_bytes = 0;
        st.last_sync = std::time::Instant::now();
        let end = at + rec.len() as u64;
        st.log_end = end;
        st.alloc_end = st.alloc_end.max(end);
        let mapping = self.mapping_covering(st, end)?;
        self.publish(st, end);
        let crc = format::trailer_crc(&rec[rec.len() - format::TRAILER_SIZE..]);
        let payload_crc = format::salted_crc(salt, &[&payload]);
        let stragglers = table.len() as u32;
        let info = ControlInfo { payload_bytes: payload.len() as u64, stragglers, payload_crc, ..info };
        let control = if info.base_root == old.info.base_root && table == old.table() {
            old.copied(at, crc, info)
        } else {
            let tb = crate::control::encode_table(table);
            Control::load(at, crc, info, &tb, &mapping, end.min(mapping.cap))
                .map_err(|d| self.corrupt(d.offset, d.expected, d.found))?
        };
        st.control = Arc::new(control);
        st.latest = Arc::new(latest.with_control(st.control.clone(), mapping));
        Ok(end)
    }

    /// One reclamation step (see the module documentation), freeing at most
    /// about `max_bytes` of the log's oldest part. Does nothing under the
    /// policy `all`, or when nothing can be freed.
    pub fn reclaim(&self, max_bytes: u64, timeout: Duration) -> Result<Reclaimed> {
        let _w = self.lock_writer(timeout)?;
        self.prepare_write()?;
        self.reclaim_held(max_bytes)
    }

    /// After a commit by a connection that still holds the WRITER lock: one
    /// bounded step when the policy has something to drop and the log grew
    /// by enough since the last look (an eighth of what lies above the
    /// boundary, at least 1 MiB), as `wal_autocheckpoint` does for WAL.
    pub fn reclaim_if_due(&self) -> Result<Option<Reclaimed>> {
        if self.format() < format::FORMAT_V4 {
            return Ok(None); // no policy before format 4: not even the state lock
        }
        {
            let mut st = self.lock();
            if st.control.policy().is_all() {
                return Ok(None);
            }
            let grown = st.log_end.saturating_sub(st.reclaim_looked_at);
            if grown < (st.log_end.saturating_sub(st.control.boundary()) / 8).max(AUTO_MIN_GROWTH) {
                return Ok(None);
            }
            st.reclaim_looked_at = st.log_end;
        }
        self.reclaim_held(AUTO_STEP_BYTES).map(Some)
    }

    /// One step; the caller holds the WRITER lock and refreshed the log.
    fn reclaim_held(&self, max_bytes: u64) -> Result<Reclaimed> {
        let latest = self.latest();
        let policy = self.retention();
        if policy.is_all() || latest.number == 0 {
            return Ok(Reclaimed { oldest: self.oldest_kept().unwrap_or(1), ..Default::default() });
        }
        let mut st = self.lock();
        let salt = st.header.expect("a log with a commit has a header").salt;
        let len = st.log_end;
        let old = st.control.clone();
        let b = old.boundary();

        // 1. The commits from the latest back to the oldest kept one.
        let oldest_now = old.info.oldest_version.max(1);
        let mut commits: Vec<Rec> = Vec::new(); // newest first
        let (mut off, mut crc) = (latest.commit_offset, latest.commit_crc);
        loop {
            let r = match self.read_record(salt, off, len)? {
                Some(r) if r.is_commit() && r.crc == crc => r,
                _ => {
                    return Err(self.corrupt(off, "a commit record on the way back to the oldest kept version", "none"))
                }
            };
            let (v, prev, prev_crc) = (r.h.version, r.h.prev_commit, r.h.prev_crc);
            commits.push(r);
            if v <= oldest_now || prev == 0 || prev < b {
                break;
            }
            (off, crc) = (prev, prev_crc);
        }
        let first = commits.last().expect("the latest").h.version;
        let ts = |v: u64| commits.get((latest.number - v) as usize).map_or(0, |r| r.info.timestamp_us);
        let vo = policy.oldest_kept(first, latest.number, now_us(), ts).max(oldest_now);
        let vo_rec = commits[(latest.number - vo) as usize].clone();

        // 2. The new boundary: the start of the commit before Vo's full map's
        //    transaction (everything from there on stays).
        let full = match self.read_record(salt, vo_rec.info.full_map_offset, len)? {
            Some(r) if r.is_commit() && r.is_map() => r,
            _ => {
                return Err(self.corrupt(
                    vo_rec.info.full_map_offset,
                    "the full map of the oldest kept version",
                    "none",
                ))
            }
        };
        let mut target = full.h.prev_commit.max(format::FIRST_RECORD);
        if target <= b {
            return Ok(Reclaimed { oldest: old.info.oldest_version.max(1), boundary: b, ..Default::default() });
        }
        // Vo's page map, as it reads (through the current base tree).
        let (vo_map, _, _) = self.build_map(salt, len, &vo_rec, &old)?;
        // Kept reverts' entries that Vo does not share pin the boundary below
        // them, and so do the bases their patches name when those are not
        // Vo's base of the page: the base tree leads a base below `B` to Vo's
        // image only (a revert to `T` copies `T`'s patch, whose base a
        // version between `T` and the revert may have replaced; freeing it
        // broke the revert). Phase 1's stand-in for the straggler table.
        let named = |loc: u64| -> Result<u64> {
            Ok(patch::base_of(&self.read_vec(patch::position(loc), 8)?).expect("8 bytes"))
        };
        // Where a base of page p below `B` resolves to for Vo (None: Vo has no image of p).
        let vo_base = |p: u32| -> Result<Option<u64>> {
            let Some(s) = vo_map.get(p).filter(|s| s.offset != 0) else { return Ok(None) };
            let Some(eff) = old.slot(p, s) else { return Ok(None) };
            if !patch::is_patch(eff.offset) {
                return Ok(Some(eff.offset));
            }
            let n = named(eff.offset)?;
            Ok(Some(old.base(p, n).unwrap_or(n)))
        };
        for r in commits.iter().take((latest.number - vo) as usize) {
            if r.is_full() {
                continue; // format 3's full maps (a format-4 revert is a checkpoint)
            }
            // A format-4 checkpoint has no entry table: its tree's slots
            // (a revert's checkpoint may name old items too).
            let entries = if r.is_checkpoint() { self.checkpoint_slots(r, &old)? } else { self.read_entries(r)? };
            for e in entries {
                let pos = patch::position(e.offset);
                let shared = vo_map.get(e.pgno).is_some_and(|s| s.offset == e.offset);
                if e.offset == 0 || shared {
                    continue;
                }
                if pos < target {
                    target = target.min(pos);
                }
                if patch::is_patch(e.offset) && pos >= b {
                    let base = named(e.offset)?;
                    if base < target && Some(old.base(e.pgno, base).unwrap_or(base)) != vo_base(e.pgno)? {
                        target = target.min(base);
                    }
                }
            }
        }
        // 3. Round down to a record start, within the step's size.
        let mut bp = b;
        let mut pos = b;
        while pos < target && pos - b < max_bytes {
            let Some(r) = self.read_record(salt, pos, len)? else {
                return Err(self.corrupt(pos, "a record (the log above the reclaimed boundary)", "none"));
            };
            if r.end() > target {
                break;
            }
            pos = r.end();
            bp = pos;
        }
        if bp <= b {
            return Ok(Reclaimed { oldest: old.info.oldest_version.max(1), boundary: b, ..Default::default() });
        }

        // 4. Which pages move, and their copies.
        let ps = vo_rec.h.page_size as usize;
        let db_pages = vo_rec.info.db_pages;
        // The straggler table sits before the payload; its length is the
        // number of Vo's checkpoint's nodes below `B'` (counted first).
        let kept_nodes = self.nodes_below(&full, &old, bp)?;
        let meta = (format::RECORD_HEADER_SIZE + format::CONTROL_INFO_SIZE) as u64
            + kept_nodes * format::STRAGGLER_SIZE as u64;
        let at = st.log_end;
        let payload_at = at + meta;
        let mut payload: Vec<u8> = Vec::new();
        let mut changes: BTreeMap<u32, tree::Slot> = BTreeMap::new();
        let inr = |x: u64| x >= b && x < bp;
        let mut relocated = 0u64;
        let mut copies: HashMap<u64, u64> = HashMap::new(); // item → its copy
        for p in 1..=db_pages {
            let orig = vo_map.get(p).expect("within the map");
            let in_base = old.base_slots().contains_key(&p);
            if orig.offset == 0 {
                if in_base {
                    changes.insert(p, tree::Slot::ZERO); // no longer redirected
                }
                continue;
            }
            if patch::position(orig.offset) >= bp {
                // Vo reads the page at or after the new boundary; only the
                // base of its patch (which later patches share) may lie below.
                let named = if patch::is_patch(orig.offset) {
                    patch::base_of(&self.read_vec(patch::position(orig.offset), 8)?).expect("8 bytes")
                } else {
                    u64::MAX
                };
                if named >= bp {
                    if in_base {
                        changes.insert(p, tree::Slot::ZERO);
                    }
                    continue;
                }
                let x = old.base(p, named).unwrap_or(named);
                if inr(x) {
                    let q = patch::position(orig.offset);
                    let (pb, parsed) = match self.patch_at(q, ps as u32, None)? {
                        Ok(v) => v,
                        Err((o, e, f)) => return Err(self.corrupt(o, e, f)),
                    };
                    let img = self.read_vec(x, ps)?;
                    let mut page = img.clone();
                    parsed.apply(&pb, &mut page);
                    if format::frame_crc(&page) != orig.crc {
                        return Err(self.corrupt(
                            q,
                            format!("a patch of page {p} making crc {:#010x}", orig.crc),
                            "another",
                        ));
                    }
                    let o = payload_at + payload.len() as u64;
                    payload.extend_from_slice(&img);
                    payload.resize(payload.len().next_multiple_of(8), 0);
                    changes.insert(p, tree::Slot { offset: o, crc: format::frame_crc(&img) });
                    relocated += 1;
                }
                continue;
            }
            let eff = old
                .slot(p, orig)
                .ok_or_else(|| self.corrupt(orig.offset, format!("a copy of page {p} in the base tree"), "none"))?;
            let (item, named_base) = if patch::is_patch(eff.offset) {
                let q = patch::position(eff.offset);
                let named = patch::base_of(&self.read_vec(q, 8)?).expect("8 bytes");
                (q, Some(old.base(p, named).unwrap_or(named)))
            } else {
                (eff.offset, None)
            };
            let moves = inr(item) || named_base.is_some_and(inr);
            if !moves {
                // Already redirected (the item lies below `B`, in the base
                // tree) to a copy the new boundary leaves alone: any item in
                // `[B, B')` that Vo reaches moves.
                continue;
            }
            let copy = |bytes: &[u8], payload: &mut Vec<u8>| -> u64 {
                let o = payload_at + payload.len() as u64;
                payload.extend_from_slice(bytes);
                payload.resize(payload.len().next_multiple_of(8), 0);
                o
            };
            let new = match named_base {
                None => {
                    let img = self.read_vec(item, ps)?;
                    if format::frame_crc(&img) != eff.crc {
                        return Err(self.corrupt(item, format!("frame crc {:#010x} (page {p})", eff.crc), "another"));
                    }
                    let o = *copies.entry(item).or_insert_with(|| copy(&img, &mut payload));
                    tree::Slot { offset: o, crc: eff.crc }
                }
                Some(base) => {
                    let (mut pb, parsed) = match self.patch_at(item, ps as u32, None)? {
                        Ok(x) => x,
                        Err((o, e, f)) => return Err(self.corrupt(o, e, f)),
                    };
                    let img = self.read_vec(base, ps)?;
                    let mut page = img.clone();
                    parsed.apply(&pb, &mut page);
                    if format::frame_crc(&page) != eff.crc {
                        return Err(self.corrupt(
                            item,
                            format!("a patch of page {p} making crc {:#010x}", eff.crc),
                            "another",
                        ));
                    }
                    let nb = *copies.entry(base).or_insert_with(|| copy(&img, &mut payload));
                    pb[..8].copy_from_slice(&nb.to_le_bytes());
                    let nq = copy(&pb, &mut payload);
                    tree::Slot { offset: nq | patch::PATCH_TAG, crc: eff.crc }
                }
            };
            relocated += 1;
            changes.insert(p, new);
        }
        // Format 4: the nodes of Vo's checkpoint tree in `[B, B')` are
        // copied byte for byte and listed in the straggler table; those
        // below `B` keep their entries (`control.rs` invariant 4). Every
        // node a later kept checkpoint shares from before `B'` is one of
        // them: a tree shares a node only with the tree it was made from.
        let table = self.relocate_nodes(&full, &old, b, bp, payload_at, &mut payload)?;
        // The base tree's new nodes, after the copies.
        let nodes_at = payload_at + payload.len() as u64;
        let src = MapSource { map: &st.mapping, end: st.log_end.min(st.mapping.cap) };
        let old_root = (old.info.base_root != 0).then_some(tree::Root {
            offset: old.info.base_root,
            crc: old.info.base_crc,
            depth: old.info.base_depth,
        });
        let up = tree::update(&src, old_root, &changes, db_pages, nodes_at)
            .map_err(|d| self.corrupt(d.offset, d.expected, d.found))?;
        payload.extend_from_slice(&up.nodes);
        payload.resize(payload.len().next_multiple_of(8), 0);

        // 5. The CONTROL record, synced; then the state.
        let info = ControlInfo {
            epoch: old.info.epoch + 1,
            boundary: bp,
            oldest_version: vo,
            base_root: up.root.offset,
            base_crc: up.root.crc,
            base_depth: if up.root.offset == 0 { 0 } else { up.root.depth },
            oldest_timestamp_us: vo_rec.info.timestamp_us,
            oldest_counter: vo_rec.info.page1_counter,
            ..old.info
        };
        let end = self.append_control(&mut st, info, &old, &table, payload)?;
        let epoch = info.epoch;
        drop(st);

        // 6. Punch what no reader can still read directly.
        let punched = self.punch_freed(epoch, bp, b)?;
        Ok(Reclaimed { oldest: vo, boundary: bp, freed: bp - b, relocated, appended: end - at, punched })
    }

    /// How many nodes of checkpoint `ck`'s tree (read under `old`) lie
    /// below `bp`: the straggler table's length after a step to `bp`.
    fn nodes_below(&self, ck: &Rec, old: &Control, bp: u64) -> Result<u64> {
        let mut n = 0u64;
        self.walk_checkpoint(ck, old, &mut |v| n += (v.offset < bp) as u64)?;
        Ok(n)
    }

    /// Copies the nodes of checkpoint `ck`'s tree in `[b, bp)` to `payload`
    /// (which starts at file offset `payload_at`); returns the new straggler
    /// table: those copies, and `old`'s entries for the nodes below `b`.
    fn relocate_nodes(
        &self,
        ck: &Rec,
        old: &Control,
        b: u64,
        bp: u64,
        payload_at: u64,
        payload: &mut Vec<u8>,
    ) -> Result<Vec<(u64, u64)>> {
        let mut table: Vec<(u64, u64)> = Vec::new();
        let mut missing = None;
        self.walk_checkpoint(ck, old, &mut |v| {
            if v.offset < b {
                match old.moved_to(v.offset) {
                    Some(at) if at >= bp => table.push((v.offset, at)),
                    // Its copy lies in an earlier CONTROL record that this
                    // step frees: copy it again (a table entry must lead at
                    // or after the new boundary; readers refuse one that
                    // does not, and the log no longer opened).
                    Some(_) => {
                        table.push((v.offset, payload_at + payload.len() as u64));
                        payload.extend_from_slice(v.bytes);
                    }
                    None => missing = Some(v.offset),
                }
            } else if v.offset < bp {
                table.push((v.offset, payload_at + payload.len() as u64));
                payload.extend_from_slice(v.bytes);
            }
        })?;
        if let Some(at) = missing {
            return Err(self.corrupt(at, "an index-tree node below the boundary in the straggler table", "none"));
        }
        table.sort_unstable();
        table.dedup();
        Ok(table)
    }

    /// Every non-zero slot of checkpoint `ck`'s tree as map entries, its
    /// nodes read as a version under `old` reads them.
    fn checkpoint_slots(&self, ck: &Rec, old: &Control) -> Result<Vec<format::Entry>> {
        let mut out = Vec::new();
        self.walk_checkpoint(ck, old, &mut |v| {
            if v.level == 0 {
                for i in 0..tree::LEAF_SLOTS {
                    let s = tree::slot_at(v.bytes, i);
                    if !s.is_zero() {
                        out.push(format::Entry { pgno: v.first + i as u32, crc: s.crc, offset: s.offset });
                    }
                }
            }
        })?;
        Ok(out)
    }

    /// Every node of checkpoint `ck`'s tree, read as a version under `old`
    /// reads it (format 4; nothing for a full map).
    fn walk_checkpoint(&self, ck: &Rec, old: &Control, f: &mut dyn FnMut(&crate::index::Visit)) -> Result<()> {
        if !ck.is_checkpoint() || ck.ckpt.root == 0 {
            return Ok(());
        }
        let mapping = self.committed.lock().unwrap_or_else(|p| p.into_inner()).0.clone();
        let root = tree::Root { offset: ck.ckpt.root, crc: ck.ckpt.root_crc, depth: ck.ckpt.depth };
        crate::index::walk(&mapping, ck.offset, old, root, f)
    }

    /// Punches `[512, bp)` when no reader holds an epoch below `epoch`, else
    /// `[512, b)` when none holds one below `epoch − 1`. Returns the end of
    /// what it punched (0: nothing).
    fn punch_freed(&self, epoch: u64, bp: u64, b: u64) -> Result<u64> {
        // A description of our own: locks on the log's shared one would not
        // conflict with the check.
        let probe = std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, "open", None, e))?;
        use std::os::fd::AsFd;
        let held = |below: u64| {
            crate::lock::held_in(probe.as_fd(), crate::lock::EPOCH_BASE, below)
                .map_err(|e| Error::io(&self.path, "lock", None, e))
        };
        let to = if !held(epoch)? {
            bp
        } else if epoch > 1 && !held(epoch - 1)? {
            b
        } else {
            return Ok(0);
        };
        if to <= format::FIRST_RECORD {
            return Ok(0);
        }
        self.io
            .punch_hole(format::FIRST_RECORD, to - format::FIRST_RECORD)
            .map_err(|e| Error::io(&self.path, "punch a hole", Some(format::FIRST_RECORD), e))?;
        Ok(to)
    }
}
