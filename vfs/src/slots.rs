//! Recycling dead slots (format 4, issue 20; docs/format-4.md, "Punching
//! dead frames in place", rule 3; FORMAT.md, "Frames in recycled slots"):
//! the writer process's pool of released SLOT ranges, the slots a delta
//! takes from it, and the slots named since a CONTROL record, which every
//! list and every checkpoint's CONTROL copy leaves out.
//!
//! # Invariants
//! 1. Only under a retention policy: a log without one is strictly
//!    append-only (`commit.rs` takes no slot, a release pools nothing).
//! 2. A process's pool holds only slots it released itself
//!    (`retire_step.rs` invariant 2: the listing record durable, no reader
//!    on an epoch below it, under the PUNCH lock), of the page size the
//!    log has now; a new process starts with an empty pool. A slot leaves
//!    the pool when taken, when punched, or when it is no longer safe.
//! 3. A slot is taken (`take_slots`, under the WRITER lock, after the
//!    refresh that caught up on every other process's commits) only when,
//!    checked against the log as it is now: it is a SLOT entry of the
//!    current control state's list; it lies at or after the current `B`,
//!    or below it for a page the state reads in place there
//!    (`Control::reads_in_place`: no base-tree slot for the page, which
//!    would redirect the reference, and no straggler entry for the
//!    offset); no commit after the current CONTROL record names it (`slots_named`, read from the log: another
//!    process's commit may have recycled it since that record, or since
//!    the list before it, which the current list then left out, see 4).
//!    So a slot named by any commit after the list it came from is never
//!    taken twice, whichever process recycled it, whatever its pool says.
//! 4. "Recycled since", from the log: the image offsets named by the
//!    commits after a CONTROL record (`slots_named`, a walk of their entry
//!    tables, cached per record and extended to the log end). Every
//!    CONTROL record a writer appends after state `k − 1` lists
//!    `L_{k−1}` minus what it punched, minus the SLOT entries named by a
//!    commit after `L_{k−1}`'s record (`recycled_since`), plus what a step
//!    found dead; a checkpoint's CONTROL copy of the list too. A recycled
//!    slot is live until a step finds it dead again: no later list may
//!    name it meanwhile, or its release would pool or punch a live frame.
//! 5. A frame goes into a slot by the log's storage write path (the same
//!    `LogFile` the crash simulation wraps), before the COMMIT record that
//!    names it (`write_prepared`); the commit is RECYCLED, and recovery
//!    checks every image such a commit names when no claim covers it
//!    (`record.rs`, `check_unclaimed_commit`). A commit lost after a slot
//!    was written leaves garbage in a slot that is still listed.
//! 7. A frame recycled below `B` is read in place by every version that
//!    names it (FORMAT.md, "The boundary": no redirect for its page or
//!    offset). A step keeps it so: a held commit's entry naming one is not
//!    copied as a straggler while the new base tree holds no slot for its
//!    page (else it is copied, as any straggler), and every punch of
//!    `[512, x)` (a step's, `give_back`'s) stays below the lowest such
//!    frame of the held commits (`held_in_place_low`), and below the old
//!    state's, were the step's record lost.
//! 6. Forgetting: a pooled slot unused for [`STALE_COMMITS`] commits is
//!    punched ([`Log::punch_stale_slots`], with the pooled slots that
//!    touch it as one call, at most `reclaim::RELEASE_TRICKLE_PUNCHES`
//!    calls at a time; each slot checked as invariant 3 checks a slot to
//!    take, and out of the pool before the call), and `retain
//!    --now` / `compact` (`Log::give_back`) punch the whole pool; a
//!    punched slot counts as punched for the next list.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::control::Control;
use crate::error::{Error, Result};
use crate::format;
use crate::freelist::FreeRange;
use crate::log::{Log, State};
use crate::patch;

/// A pooled slot unused for this many commits is punched (invariant 6):
/// the checkpoint interval's upper bound (FORMAT.md, "Writing
/// checkpoints"), so a dead frame is overwritten or punched within the
/// policy's window, a checkpoint interval and one release.
pub(crate) const STALE_COMMITS: u64 = 2048;

/// The writer process's pool of released slots (invariant 2), indexed
/// by offset (taking, highest first) and by the commit at which each
/// joined (forgetting, invariant 6), so that neither a commit's take nor
/// its look for stale slots walks the whole pool.
#[derive(Default)]
pub(crate) struct Pool {
    /// offset → (length, the latest version when it joined).
    by_offset: BTreeMap<u64, (u32, u64)>,
    /// (the latest version when it joined, offset).
    by_age: BTreeSet<(u64, u64)>,
}

impl Pool {
    pub(crate) fn is_empty(&self) -> bool {
        self.by_offset.is_empty()
    }

    /// Puts slot `off` of `len` bytes in the pool as of version `at`; a
    /// slot already there keeps its age.
    pub(crate) fn insert(&mut self, off: u64, len: u32, at: u64) {
        if let std::collections::btree_map::Entry::Vacant(v) = self.by_offset.entry(off) {
            v.insert((len, at));
            self.by_age.insert((at, off));
        }
    }

    pub(crate) fn get(&self, off: u64) -> Option<(u32, u64)> {
        self.by_offset.get(&off).copied()
    }

    /// The pooled slot that ends exactly at `off`, (offset, length).
    fn ending_at(&self, off: u64) -> Option<(u64, u32)> {
        let (&p, &(l, _)) = self.by_offset.range(..off).next_back()?;
        (p + l as u64 == off).then_some((p, l))
    }

    pub(crate) fn remove(&mut self, off: u64) -> Option<(u32, u64)> {
        let x = self.by_offset.remove(&off)?;
        self.by_age.remove(&(x.1, off));
        Some(x)
    }

    /// The slots, (offset, length), highest offset first.
    fn iter_rev(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.by_offset.iter().rev().map(|(&o, &(l, _))| (o, l))
    }

    /// Whether a slot joined at or before version `now − STALE_COMMITS`.
    pub(crate) fn any_stale(&self, now: u64) -> bool {
        self.by_age.first().is_some_and(|&(at, _)| now.saturating_sub(at) >= STALE_COMMITS)
    }

    /// Up to `max` slots (offset, length), oldest first: those unused for
    /// [`STALE_COMMITS`] commits at version `now`, or all with `all`.
    fn stale(&self, now: u64, all: bool, max: usize) -> Vec<(u64, u32)> {
        self.by_age
            .iter()
            .take_while(|&&(at, _)| all || now.saturating_sub(at) >= STALE_COMMITS)
            .take(max)
            .map(|&(_, o)| (o, self.by_offset[&o].0))
            .collect()
    }
}

/// Whether `c`'s list still holds slot `off` of `len` bytes as a SLOT
/// range and no commit after `c`'s record names it (`named`, from
/// [`Log::slots_named`]): the checks of invariant 3 that every use of a
/// pooled slot makes against the log as it is now, whatever the pool
/// says (another process, or handle, that released the same list may have
/// recycled it since).
fn still_free(c: &Control, named: &HashSet<u64>, off: u64, len: u32) -> bool {
    let free = c.free();
    let listed = free.binary_search_by_key(&off, |r| r.offset).is_ok_and(|i| {
        let r = free[i];
        r.is_slot() && r.length == len
    });
    listed && !named.contains(&off)
}

/// At most this many usable slots that fit none of a delta's pages (below
/// `B`, for a page the state does not read in place) are looked at per
/// take, so that a pool of such slots costs a commit no walk of it.
const TAKE_LOOK_AHEAD: usize = 64;

/// What `slots_named` caches in the state: the image offsets named by the
/// commits after the CONTROL record `for_` (offset, crc), walked up to
/// `upto`.
#[derive(Default)]
pub(crate) struct Named {
    pub(crate) set: HashSet<u64>,
    pub(crate) for_: (u64, u32),
    pub(crate) upto: u64,
}

impl Log {
    /// Brings `st.named` up to date: the image offsets the commits after
    /// the current CONTROL record name, up to the log end (invariant 4).
    pub(crate) fn slots_named(&self, st: &mut State) -> Result<()> {
        let c = st.control.clone();
        if c.offset == 0 {
            st.named = Named::default();
            return Ok(());
        }
        // From the record itself, by the lengths the records state (not the
        // in-memory info's: a checkpoint's copy keeps its source's payload
        // size there).
        if st.named.for_ != (c.offset, c.crc) || st.named.upto < c.offset {
            st.named = Named { set: HashSet::new(), for_: (c.offset, c.crc), upto: c.offset };
        }
        let Some(h) = st.header else { return Ok(()) };
        let len = st.log_end;
        let mut pos = st.named.upto;
        while pos < len {
            let Some(r) = self.read_record(h.salt, pos, len)? else {
                return Err(self.corrupt(pos, "a record (the log after the control state's record)", "none"));
            };
            if r.is_commit() && !r.is_checkpoint() {
                for e in self.read_entries(&r)? {
                    if e.offset != 0 && !patch::is_patch(e.offset) {
                        st.named.set.insert(e.offset);
                    }
                }
            }
            pos = r.end();
        }
        st.named.upto = pos.max(st.named.upto);
        Ok(())
    }

    /// The SLOT entries of `list` (the current control state's, or a list
    /// made from it) that a commit after the current CONTROL record names:
    /// recycled since, so the next list leaves them out (invariant 4).
    pub(crate) fn recycled_since(&self, st: &mut State, list: &[FreeRange]) -> Result<Vec<FreeRange>> {
        if list.iter().all(|r| !r.is_slot()) {
            return Ok(Vec::new());
        }
        self.slots_named(st)?;
        Ok(list.iter().copied().filter(|r| r.is_slot() && st.named.set.contains(&r.offset)).collect())
    }

    /// `list` without the slots recycled since the current CONTROL record.
    pub(crate) fn list_without_recycled(&self, st: &mut State, list: &[FreeRange]) -> Result<Vec<FreeRange>> {
        let gone = self.recycled_since(st, list)?;
        Ok(crate::freelist::without(list, &gone))
    }

    /// A slot from the pool for each page of `pages` (None: none fits),
    /// highest offset first, each checked against the log as it is now
    /// (invariant 3); slots that fail a check leave the pool. Highest
    /// first: a frame recycled at or after `B` is passed by the boundary
    /// later, and when a kept version other than the oldest still names it
    /// then, the step copies it as a straggler (`reclaim.rs`); lowest first
    /// copied 87 pages in `in_place.rs`'s 600 commits, highest first 4.
    pub(crate) fn take_slots(&self, st: &mut State, pages: &[u32], page_size: u32) -> Result<Vec<Option<u64>>> {
        let mut out = vec![None; pages.len()];
        if pages.is_empty() || st.pool.is_empty() {
            return Ok(out);
        }
        self.slots_named(st)?;
        let c = st.control.clone();
        let b = c.boundary();
        let end = st.log_end;
        // The pool is walked from its highest slot down only as far as the
        // pages need: each slot checked as it is reached (invariant 3); a
        // slot that fails leaves the pool; one that may be taken but fits
        // no page yet (below `B`) waits in `spare` for the next page. So
        // each page gets the highest usable slot that fits it, as a check
        // of the whole pool first would give, without walking the rest
        // (slots not reached are checked when they are, or when punched).
        let mut unused = Vec::new();
        let mut spare: Vec<u64> = Vec::new(); // usable, highest first
        let mut taken = Vec::new();
        let mut looked = 0usize;
        {
            let (pool, named) = (&st.pool, &st.named.set);
            let mut walk = pool.iter_rev();
            // Below `B`, only for a page the state reads there in place: no
            // base-tree slot, no straggler entry (invariant 3).
            for (i, &p) in pages.iter().enumerate() {
                let fits = |o: u64| o >= b || c.reads_in_place(p, o, page_size);
                if let Some(k) = spare.iter().position(|&o| fits(o)) {
                    out[i] = Some(spare.remove(k));
                    continue;
                }
                while looked < TAKE_LOOK_AHEAD {
                    let Some((off, len)) = walk.next() else { break };
                    let usable = len == page_size
                        && off + len as u64 <= end
                        && off % format::slot_align(page_size) == 0
                        && still_free(&c, named, off, len);
                    if !usable {
                        unused.push(off);
                    } else if fits(off) {
                        out[i] = Some(off);
                        break;
                    } else {
                        spare.push(off);
                        looked += 1;
                    }
                }
            }
        }
        taken.extend(out.iter().flatten().copied());
        for &off in taken.iter().chain(&unused) {
            st.pool.remove(off);
        }
        // A slot that left the pool unused is released like any listed
        // range again: the next release punches it if its list still holds
        // it, or it would stay listed for ever.
        if !unused.is_empty() {
            unused.sort_unstable();
            st.pooled.retain(|r| unused.binary_search(&r.offset).is_err());
        }
        Ok(out)
    }

    /// Punches the pooled slots unused for [`STALE_COMMITS`] commits (all
    /// of them with `all`), at most `max` calls, under the PUNCH lock
    /// (invariant 6). Each punched slot the current list holds counts as
    /// punched (`State::punched`), so the next list leaves it out.
    pub(crate) fn punch_stale_slots(&self, all: bool, max: usize) -> Result<usize> {
        let todo: Vec<(u64, u32)> = {
            let st = self.lock();
            st.pool.stale(st.latest.number, all, max)
        };
        if todo.is_empty() {
            return Ok(0);
        }
        let probe = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, "open", None, e))?;
        use std::os::fd::AsFd;
        crate::lock::lock_wait(probe.as_fd(), crate::lock::PUNCH, crate::lock::Mode::Exclusive)
            .map_err(|e| Error::io(&self.path, "lock", None, e))?;
        // A pooled slot was released with no reader below its list's
        // epoch, and epochs only grow: no reader can reach it now.
        // Each stale slot goes with the pooled slots that touch it (dead
        // frames side by side), checked the same way, as one call.
        let mut n = 0;
        for &(o, _) in &todo {
            let (start, end, run) = {
                // Checked as `take_slots` checks a slot (invariant 3): the
                // current list still holds it and no commit after the
                // current CONTROL record names it. Another process (or
                // handle) that released the same list may have recycled
                // it: its pool is its own, and only the log says so.
                // Without this, `give_back` punched a live frame of a held
                // version (retention.rs's torn reverts test, seed 204).
                let mut st = self.lock();
                let Some((l, _)) = st.pool.get(o) else { continue }; // taken or punched meanwhile
                self.slots_named(&mut st)?;
                let ok = |st: &State, o: u64, l: u32| still_free(&st.control, &st.named.set, o, l);
                if !ok(&st, o, l) {
                    st.pool.remove(o);
                    continue;
                }
                let mut run = vec![(o, l)];
                let (mut start, mut end) = (o, o + l as u64);
                while let Some((p, pl)) = st.pool.ending_at(start).filter(|&(p, pl)| ok(&st, p, pl)) {
                    run.push((p, pl));
                    start = p;
                }
                while let Some(nl) = st.pool.get(end).map(|x| x.0).filter(|&nl| ok(&st, end, nl)) {
                    run.push((end, nl));
                    end += nl as u64;
                }
                // Out of the pool before the call: nothing takes them now.
                for &(p, _) in &run {
                    st.pool.remove(p);
                }
                (start, end, run)
            };
            self.io
                .punch_hole(start, end - start)
                .map_err(|e| Error::io(&self.path, "punch a hole", Some(start), e))?;
            n += 1;
            let mut st = self.lock();
            for (p, l) in run {
                let r = FreeRange::slot(p, l);
                if st.control.free().binary_search(&r).is_ok() && st.punched_for == st.control.offset {
                    if let Err(i) = st.punched.binary_search(&r) {
                        st.punched.insert(i, r);
                    }
                }
            }
            if n >= max {
                break;
            }
        }
        Ok(n)
    }

    /// The lowest offset below `c`'s boundary at which an entry of one of
    /// `commits` (the held commits, newest first, back to the oldest held)
    /// but the oldest names an image `c` reads in place (`u64::MAX`:
    /// none): frames written into recycled slots below `B` (invariant 7).
    /// A punch of `[512, x)` stays below it.
    pub(crate) fn held_in_place_low(&self, commits: &[crate::log::Rec], c: &Control) -> Result<u64> {
        let b = c.boundary();
        let mut low = u64::MAX;
        // Not the oldest held commit: its map's frames in place are the
        // state's own (`in_place_low`), and a checkpoint's entries are read
        // against the map before it, whose nodes may be freed.
        for r in &commits[..commits.len().saturating_sub(1)] {
            for e in self.kept_entries(r, c)? {
                if e.offset != 0 && e.offset < b && c.reads_in_place(e.pgno, e.offset, r.h.page_size) {
                    low = low.min(e.offset);
                }
            }
        }
        Ok(low)
    }

    /// The held commits of control state `c` (the latest's back to the
    /// oldest held), newest first; None when the chain does not read
    /// (then nothing below `B` may be punched on their account).
    pub(crate) fn held_commits(&self, c: &Control) -> Result<Option<Vec<crate::log::Rec>>> {
        let (salt, len, latest) = {
            let st = self.lock();
            (st.header.map(|h| h.salt), st.log_end, st.latest.clone())
        };
        let Some(salt) = salt else { return Ok(Some(Vec::new())) };
        let b = c.boundary();
        let oldest = c.info.oldest_version.max(1);
        let mut out = Vec::new();
        let (mut off, mut crc) = (latest.commit_offset, latest.commit_crc);
        while off != 0 {
            let Some(r) = self.read_record(salt, off, len)?.filter(|r| r.is_commit() && r.crc == crc) else {
                return Ok(None);
            };
            let (v, prev, prev_crc) = (r.h.version, r.h.prev_commit, r.h.prev_crc);
            out.push(r);
            if v <= oldest || prev == 0 || prev < b {
                break;
            }
            (off, crc) = (prev, prev_crc);
        }
        Ok(Some(out))
    }
}
