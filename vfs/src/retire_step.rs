//! The log side of the retirement step (format 4; docs/format-4.md, "The
//! step, its I/O, and when things are freed", steps 2 and 5, without
//! recycling): reading what `retire::dead_items` needs for the commits a
//! step retires, turning the dead frames into free-list ranges, and
//! releasing (punching) the ranges of a durable list.
//!
//! # Invariants
//! 1. A range is listed only for a frame (never a patch, a node or
//!    metadata) at or after the step's new boundary `B'`, or below the old
//!    boundary `B` where a step left it in place (`control.rs` invariant 6),
//!    that no version the step keeps reaches: not `Vo'`'s map (any page's
//!    slot, or its patch's base), not an entry of a kept commit (a revert's
//!    included) or its patch's base, not what the control state names.
//!    `[B, B')` the step lists itself (`reclaim.rs`: runs around the frames
//!    that stay in place). It lies whole in the page-image
//!    area of a COMMIT or SPILL record (read from `B'` on), at a frame's
//!    place: a patch's base may be a copy inside a CONTROL record's payload,
//!    which that record's crc covers. When in doubt — items of a page size
//!    the latest commit does not have, a base that cannot be read — the
//!    step lists less.
//! 2. `release_listed` punches the ranges of the list of a CONTROL record
//!    that is durable (every step's record is synced before the step
//!    returns; a checkpoint's CONTROL copy repeats a list a synced step
//!    record made), and only while no open file description holds an
//!    epoch lock below that record's epoch: a reader of an older epoch may
//!    read versions that reach them. It holds the PUNCH lock byte from
//!    before that look until its punches returned (`reclaim.rs` invariant
//!    6). A range it punched leaves the next list; a crash before that
//!    record leaves it listed, and punching it again is harmless.
//! 3. A release is bounded: a step that frees something punches the
//!    previous list from its lowest offset on, in at most
//!    `reclaim::RELEASE_MAX_PUNCHES` calls, a run of touching entries (a
//!    dead slot beside the metadata run around it, say) as one call; the
//!    rest stays listed, and the step's own list repeats it. So a commit
//!    that runs a step waits for at most that many freeing calls (about a
//!    millisecond each beside a writer on a `discard` mount), where a whole
//!    release took up to about a thousand for a 4 MiB step of one-row
//!    commits. A step of one-row commits at 4 KiB pages lists about two
//!    ranges per commit, far more than 64, so between steps a commit whose
//!    state lists more than twice the bound not yet punched makes up to
//!    `reclaim::RELEASE_TRICKLE_PUNCHES` calls (`Log::reclaim_if_due`):
//!    the list, and the blocks it holds, stay bounded, and the freeing
//!    calls are spread over the commits instead of falling on one. The
//!    process remembers the entries it punched (`State::punched`, pruned
//!    to what the list still holds) so that no release punches them
//!    again, and the next step leaves them all out of its list. A step
//!    that finds nothing to free, asked for (`retain --now`), and a step on
//!    a full disk release the whole list (`Log::give_back`).
//! 4. Recycling (`slots.rs`): under a policy a release puts the SLOT
//!    entries of the log's page size into the process's pool instead of
//!    punching them (no call; same conditions as a punch, invariant 2),
//!    once per entry (`State::pooled`), and punches the rest as above. A
//!    release never punches or pools a SLOT entry that a commit after the
//!    list's record names (recycled since: `Log::recycled_since`, read
//!    from the log), whatever any process's pool says: it is live.
//! 5. Names, not bytes (recycling the frames of `[B, B')`): a frame of
//!    the region a step passes is listed as a SLOT range only when no
//!    version the step keeps names its offset — as an entry, as a patch's
//!    base, or as what the control state names — not merely when no kept
//!    version reads its bytes (a base or straggler copied into the step's
//!    record is read at its copy, but kept patches and entries still name
//!    the original offset, and the straggler table is keyed by offset
//!    alone). A recycled slot's offset becomes the name of another page's
//!    frame: were the old name still in use, a later step's straggler key
//!    for it would redirect one page's reads to the other's image
//!    (`retention.rs`'s reverts test read a wrong page when every dead
//!    frame of the region was listed). The rest of the region stays in
//!    runs, punched.

use std::collections::HashSet;

use crate::control::Control;
use crate::error::{Error, Result};
use crate::format;
use crate::freelist::FreeRange;
use crate::log::{Log, Rec};
use crate::pagemap::PageMap;
use crate::patch;
use crate::retire;

impl Log {
    /// The free-list ranges of the frames that retiring the commits from
    /// `commits`' oldest (exclusive) to version `vo` (inclusive) leaves
    /// dead, for a step to boundary `bp` under control state `old`.
    /// `commits`: newest first, from the latest back; `vo_map`: `vo`'s map
    /// (offsets as entries hold them).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn retired_ranges(
        &self,
        salt: u64,
        len: u64,
        commits: &[Rec],
        vo: u64,
        vo_map: &PageMap,
        old: &Control,
        bp: u64,
        passed: &[u64],
    ) -> Result<(Vec<FreeRange>, Vec<u64>)> {
        // Only the newest commits of one page size: a page-size change
        // starts a new map, and items of the older size are not listed
        // (invariant 1).
        let Some(latest) = commits.first() else { return Ok((Vec::new(), Vec::new())) };
        let ps = latest.h.page_size;
        let same = commits.iter().take_while(|r| r.h.page_size == ps).count();
        let commits = &commits[..same];
        let first = commits.last().expect("the latest");
        let (v0, vl) = (first.h.version, latest.h.version);
        if vo <= v0 || vo > vl || commits.len() as u64 != vl - v0 + 1 {
            return Ok((Vec::new(), Vec::new()));
        }
        let b = old.boundary();
        let at = |v: u64| &commits[(vl - v) as usize];
        // A patch's base, read where the patch lies; below `B` the patch is
        // read through redirects and its base lies below `B` too (a base is
        // written before its patches), so below every range listed.
        let base_of = |s: u64| -> Option<u64> {
            if !patch::is_patch(s) || patch::position(s) < b {
                return None;
            }
            self.read_vec(patch::position(s), 8).ok().and_then(|h| patch::base_of(&h))
        };
        // What the step keeps: Vo's map, the kept commits' entries, the
        // control state's items (invariant 1).
        let mut kept: HashSet<u64> = HashSet::new();
        let keep = |x: u64, kept: &mut HashSet<u64>| {
            if x != 0 {
                kept.insert(x);
                if let Some(base) = base_of(x) {
                    kept.insert(base);
                }
            }
        };
        for p in 1..=vo_map.pages() {
            if let Some(s) = vo_map.get(p) {
                keep(s.offset, &mut kept);
            }
        }
        for v in vo + 1..=vl {
            for e in self.kept_entries(at(v), old)? {
                keep(e.offset, &mut kept);
            }
        }
        for (&p, s) in old.base_slots() {
            keep(s.offset, &mut kept);
            if let Some(x) = old.base_tree_base(p) {
                kept.insert(x);
            }
        }
        for &(o, n) in old.table() {
            kept.insert(o);
            kept.insert(n);
        }
        // The retired commits' changes, and the map they start from.
        let (before, _, _) = self.build_map(salt, len, first, old)?;
        let mut retired: Vec<Vec<(u32, u64)>> = Vec::with_capacity((vo - v0) as usize);
        for v in v0 + 1..=vo {
            retired.push(self.kept_entries(at(v), old)?.iter().map(|e| (e.pgno, e.offset)).collect());
        }
        let dead = retire::dead_items(&|p| before.get(p).map(|s| s.offset), &retired, &base_of, &|x| kept.contains(&x));
        let a = format::slot_align(ps);
        // Only whole frames of COMMIT and SPILL records: a base a patch
        // names may be a copy in a CONTROL record's payload (a writer names
        // the image where it reads it), which its record's crc covers.
        let areas = self.frame_areas(salt, bp, len, ps)?;
        let is_frame = |x: u64| {
            let i = areas.partition_point(|&(s, _)| s <= x);
            i > 0 && {
                let (s, e) = areas[i - 1];
                (x - s) % ps as u64 == 0 && x + ps as u64 <= e
            }
        };
        // Below `B`, a dead frame that a step left in place (`control.rs`
        // invariant 6): listed too, or it would never be punched (`[B, B')`
        // the step lists itself, as runs around the frames that stay).
        let was_in_place = |x: u64| x < b && old.moved_to(x).is_none() && crate::control::in_place(x, ps);
        let ranges = dead
            .into_iter()
            .filter(|&x| !patch::is_patch(x) && (x >= bp && is_frame(x) || was_in_place(x)))
            .map(|x| if x % a == 0 { FreeRange::slot(x, ps) } else { FreeRange::run(x, ps) })
            .collect();
        // The frames of `[B, B')` that no kept version names (invariant 5):
        // not even as a patch's base or an entry that a base-tree slot or
        // the straggler table redirects to a copy. Only those may be
        // recycled: a recycled slot's offset becomes the name of another
        // page's frame, and a name still in use would then resolve to the
        // wrong image (the straggler table is keyed by offset alone).
        let nameless =
            passed.iter().copied().filter(|&x| x >= b && x < bp && x % a == 0 && !kept.contains(&x)).collect();
        Ok((ranges, nameless))
    }

    /// The page-image areas `[start, end)` of the COMMIT and SPILL records
    /// of `ps`-byte pages from `from` (a record's start) to `len`, sorted.
    fn frame_areas(&self, salt: u64, from: u64, len: u64, ps: u32) -> Result<Vec<(u64, u64)>> {
        let mut areas = Vec::new();
        let mut pos = from;
        while pos < len {
            let Some(r) = self.read_record(salt, pos, len)? else { break };
            let frames = r.h.kind == format::KIND_COMMIT || r.h.kind == format::KIND_SPILL;
            if frames && r.h.frames > 0 && r.h.page_size == ps {
                areas.push((r.offset + r.payload_start, r.patches_start()));
            }
            pos = r.end();
        }
        Ok(areas)
    }

    /// Punches `c`'s free list from its lowest offset on, a run of
    /// touching entries as one call, in at most `max` calls (invariant 3),
    /// when no reader holds an epoch below `c`'s (invariant 2); runs whose
    /// entries this process punched already (`State::punched`) are
    /// skipped. With `recycle`, under a policy, SLOT entries of the log's
    /// page size join this process's pool instead (invariant 4; no call),
    /// on the same conditions. Returns every entry of `c`'s list punched
    /// so far, by this release or an earlier one of this process (empty:
    /// none, or a reader still may read them); the rest stay listed.
    pub(crate) fn release_listed(&self, c: &Control, max: usize, recycle: bool) -> Result<Vec<FreeRange>> {
        Ok(self.release_some(c, max, recycle)?.0)
    }

    /// `release_listed`, and whether a reader held an older epoch (nothing
    /// new was punched then).
    pub(crate) fn release_some(&self, c: &Control, max: usize, recycle: bool) -> Result<(Vec<FreeRange>, bool)> {
        let already = |list: &[FreeRange], done: &[FreeRange]| -> Vec<FreeRange> {
            list.iter().copied().filter(|r| done.binary_search(r).is_ok()).collect()
        };
        if c.free().is_empty() || c.offset == 0 {
            return Ok((Vec::new(), false));
        }
        // What this process punched (or pooled) of the list already,
        // forgetting what the list no longer holds.
        // The slots a commit after `c`'s record recycled are live: neither
        // punched nor pooled (`slots.rs` invariant 4). Read from the log;
        // for a list that is not the state's (none today), every slot.
        let (done_before, pooled_before, page_size, recycled) = {
            let mut st = self.lock();
            let before = already(c.free(), &st.punched);
            let pooled = already(c.free(), &st.pooled);
            st.punched = before.clone();
            st.pooled = pooled.clone();
            st.punched_for = c.offset;
            let recycled = if (st.control.offset, st.control.crc) == (c.offset, c.crc) {
                self.recycled_since(&mut st, c.free())?
            } else {
                c.free().iter().copied().filter(|r| r.is_slot()).collect()
            };
            (before, pooled, st.latest.page_size, recycled)
        };
        let live = |r: &FreeRange| recycled.binary_search(r).is_ok();
        let recycle = recycle && self.recycle && !c.policy().is_all() && self.format() >= format::FORMAT_V4;
        let poolable = |r: &FreeRange| recycle && r.is_slot() && r.length == page_size;
        let to_pool: Vec<FreeRange> = c
            .free()
            .iter()
            .copied()
            .filter(|r| poolable(r) && !live(r) && pooled_before.binary_search(r).is_err())
            .collect();
        let rest: Vec<FreeRange> = c.free().iter().copied().filter(|r| !poolable(r) && !live(r)).collect();
        let todo: Vec<(u64, u64, usize, usize)> = {
            let mut i = 0;
            let mut out = Vec::new();
            for (start, end, n) in crate::freelist::touching_runs(&rest) {
                if rest[i..i + n].iter().any(|r| done_before.binary_search(r).is_err()) {
                    out.push((start, end, i, n));
                }
                i += n;
            }
            out
        };
        if (todo.is_empty() || max == 0) && to_pool.is_empty() {
            return Ok((done_before, false));
        }
        let epoch = c.epoch();
        let probe = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, "open", None, e))?;
        crate::epochs::release_idle_below(&probe, epoch);
        use std::os::fd::AsFd;
        crate::lock::lock_wait(probe.as_fd(), crate::lock::PUNCH, crate::lock::Mode::Exclusive)
            .map_err(|e| Error::io(&self.path, "lock", None, e))?;
        let held = crate::lock::held_in(probe.as_fd(), crate::lock::EPOCH_BASE, epoch)
            .map_err(|e| Error::io(&self.path, "lock", None, e))?;
        if held {
            return Ok((done_before, true));
        }
        if !to_pool.is_empty() {
            let mut st = self.lock();
            let now = st.latest.number;
            for r in &to_pool {
                st.pool.insert(r.offset, r.length, now);
            }
            st.pooled.extend_from_slice(&to_pool);
            st.pooled.sort_unstable();
            st.pooled.dedup();
        }
        let mut done = done_before;
        for &(start, end, i, n) in todo.iter().take(max) {
            self.io
                .punch_hole(start, end - start)
                .map_err(|e| Error::io(&self.path, "punch a hole", Some(start), e))?;
            done.extend_from_slice(&rest[i..i + n]);
        }
        done.sort_unstable();
        done.dedup();
        let mut st = self.lock();
        st.punched = done.clone();
        st.punched_for = c.offset;
        Ok((done, false))
    }
}
