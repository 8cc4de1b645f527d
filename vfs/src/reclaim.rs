//! Retention (format 4, in development; docs/format-4.md): the policy a log
//! keeps, stored in CONTROL records, and the reclamation step that frees the
//! oldest part of the log in place.
//!
//! # A step (docs/format-4.md, "One reclamation step")
//! Under the WRITER lock: take the oldest version the policy keeps, `Vo`;
//! choose the new boundary `B'` (never past the commit before `Vo`'s full
//! map's transaction, never inside a transaction before its COMMIT record);
//! leave in place every page image `Vo` reaches in `[B, B')` that is a frame
//! of an ALIGNED record (invariant 7), and copy every other item `Vo`
//! reaches there (a patch together with its base) into a new CONTROL record
//! with the base tree's changed nodes, and every straggler there (an item a
//! kept revert names that `Vo` does not share, and the base a kept patch
//! names that `Vo`'s page does not lead to) with the new straggler table;
//! list `[B, B')` but for the frames left in place, and the frames that
//! died, in its free list; sync it; then release the last step's list and
//! punch below everything the new state reads, once no reader holds an
//! older epoch.
//!
//! # Invariants
//! 1. A CONTROL record that moves `B` is synced before any byte below `B`
//!    is punched: a crash before the sync leaves a torn record that
//!    recovery ignores, with nothing freed.
//! 2. Step `k` frees by lists and by one punch. Its CONTROL record lists
//!    `[B_{k−1}, B_k)` but for the frames left in place (runs of at least
//!    512 bytes), the frames its retirement walk found dead, and a frame
//!    left in place whose page's patch it relocated with a copy of it; the
//!    next step that frees something releases that list, at most 64 calls'
//!    worth, and the commits after it the rest (`retire_step.rs` invariant
//!    3: once no reader holds an epoch below `k`), so the
//!    region a step passed stays allocated until then: the reserve a step
//!    on a full disk releases first (it then has room for its own record);
//!    a step asked for (`Log::reclaim`) that finds nothing to free releases
//!    it too. The one punch is `[512, min(B_{k−1}, L_{k−1}, L_k))`, `L_j`
//!    the lowest frame state `j` reads in place, when no other open file
//!    description holds an epoch lock below `k` (`lock::held_in`): no reader
//!    of state `k` or later reads there, and a reader of an older epoch may.
//!    `L_{k−1}` keeps the punch within what the durable record `k − 1`
//!    frees: were record `k` lost, state `k − 1` still reads its frames
//!    (those step `k` copied as stragglers or with a patch among them).
//!    The step holds the PUNCH lock byte exclusively from before that
//!    look until its punch returned (see 6).
//! 3. The base tree and the straggler table name only items at or after
//!    the boundary, a patch's base included (`control.rs` invariants 2 and
//!    4): a patch moves when its base does.
//! 4. Every reference a kept version can reach resolves after the step as
//!    before it (docs/format-4.md, INV-1): references `Vo` holds through the
//!    base tree, every other one below `B'` through the straggler table
//!    (`straggler_keys` says which), so a revert never holds the boundary.
//!    A straggler is copied and checked at the page size of the kept
//!    commit that names it (a revert's target may have another than `Vo`).
//! 5. Phase 1: costs O(database pages) of CPU per step (the writer's page
//!    map of `Vo`), plus O(entries of the kept commits) for the stragglers;
//!    the I/O is the items copied and the base tree's paths.
//! 6. A reader that takes an epoch lock after a step looked for readers
//!    does not refresh before that step's punch returned (`epochs.rs`, "A
//!    lock taken while a step punches"): mid-punch, its view's last bytes
//!    may still read while the records after them already read as zeros,
//!    and the refresh would take its stale view for the latest (R10).
//! 7. Read in place (`control.rs` invariant 6): a page image of `Vo` in
//!    `[B, B')` that is a frame of an ALIGNED record (`Vo`'s page size) is
//!    neither copied nor named by the base tree: the step sets the page's
//!    base-tree slot to zero, and an item read in place since an earlier
//!    step keeps it zero. Patches are still copied (with their base, which
//!    may be a frame read in place: that frame then dies, invariant 2), and
//!    so are stragglers and index nodes. A frame left in place dies when
//!    `Vo` passes the commit that replaced it: the retirement walk lists it
//!    then (`retire_step.rs` invariant 1). The state's frames in place count
//!    in the size form (`bytes_in_use`).
//! 8. Recycling (`slots.rs` invariants 4 and 7): a step's list is the
//!    previous one less what was punched and less the slots recycled since
//!    its record, plus what it found. In `[B, B')`, a whole frame of the
//!    log's page size at a slot boundary whose offset no kept version
//!    names (`retire_step.rs` invariant 5) is listed as a SLOT range and
//!    recycled; the runs between hold metadata and the frames still named
//!    (a base or straggler the step copied), and only those holding a
//!    whole 4 KiB block are listed (punched); the others free no block,
//!    and `[512, x)` takes them. The frame below `B` that a patch of `Vo`
//!    in `[B, B')` has as its base dies with its copy, but kept patches
//!    still name it: it is listed as a run (punched), never a slot. A held commit's
//!    frame in a recycled slot below `B` stays in place (no straggler copy)
//!    while the new base tree holds no slot for its page, and every punch
//!    of `[512, x)` stays below the lowest such frame of the held commits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::control::{Control, MapSource};
use crate::error::{Error, Result};
use crate::format::{self, ControlInfo, RecordHeader};
use crate::freelist::{self, FreeRange};
use crate::log::{now_us, Link, Log, Rec, State};
use crate::pagemap::{PageMap, Slot};
use crate::patch;
use crate::retention::Policy;
use crate::tree;

/// A straggler key's page, crc (None: a patch's base) and page size (that of
/// the kept commit naming it).
type StragglerKey = (u32, Option<u32>, u32);

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
/// `stragglers` set from the arguments), the straggler table `table`
/// (sorted), the free list `free` (a valid list, `freelist.rs`) and
/// `payload`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn control_record(
    salt: u64,
    at: u64,
    prev: Link,
    page_size: u32,
    info: &ControlInfo,
    table: &[(u64, u64)],
    free: &[FreeRange],
    payload: &[u8],
    claim: bool,
) -> Vec<u8> {
    debug_assert_eq!(payload.len() % 8, 0);
    debug_assert!(table.windows(2).all(|w| w[0].0 < w[1].0));
    debug_assert!(free.windows(2).all(|w| w[0].end() <= w[1].offset));
    let payload_crc = format::salted_crc(salt, &[payload]);
    let stragglers = table.len() as u32;
    let free_entries = free.len() as u32;
    let info = ControlInfo { payload_bytes: payload.len() as u64, stragglers, free_entries, payload_crc, ..*info };
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
    let mut tb = crate::control::encode_table(table);
    tb.extend_from_slice(&freelist::encode(free));
    let t0 = format::RECORD_HEADER_SIZE + format::CONTROL_INFO_SIZE;
    buf[t0..t0 + tb.len()].copy_from_slice(&tb);
    let ps = lay.payload_start as usize;
    buf[ps..ps + payload.len()].copy_from_slice(payload);
    let (meta, rest) = buf.split_at_mut(ps);
    let tl = rest.len();
    format::encode_trailer(salt, at, meta, &mut rest[tl - format::TRAILER_SIZE..]);
    buf
}

/// The bytes a log holds once what lies below its boundary `b` is punched,
/// when it ends at `end` and its control state reads `in_place` bytes in
/// place below `b` (`control.rs` invariant 6): the header, those frames and
/// everything from `b` on. What the size form measures (the file's blocks,
/// `st_blocks`, come to this plus the pre-allocated tail, at most
/// `commit::PREALLOC_MAX`, the reserve: the region the last step freed, at
/// most about one step, and the dead frames listed and not yet released).
pub fn bytes_in_use(b: u64, end: u64, in_place: u64) -> u64 {
    format::FIRST_RECORD + in_place + end.saturating_sub(b.max(format::FIRST_RECORD))
}

/// The size form's oldest kept version (docs/format-4.md, "The policy"):
/// of `commits` (newest first, from the latest back to the oldest kept),
/// the oldest whose boundary — the start of the commit before its full
/// map's transaction — frees enough of the log (boundary `b`, end `end`)
/// for it to fit in `budget`; the oldest kept when it fits already, and
/// the latest version's full map's when nothing less does (the latest is
/// never dropped). Each step measures again: what a step relocates is
/// counted by the next, which advances further when the log still does
/// not fit.
fn size_form_oldest(commits: &[Rec], b: u64, end: u64, in_place: u64, budget: u64) -> u64 {
    let oldest = commits.last().map_or(0, |r| r.h.version);
    let in_use = bytes_in_use(b, end, in_place);
    if in_use <= budget {
        return oldest;
    }
    let need = b.saturating_add(in_use - budget);
    commits
        .iter()
        .rev()
        .filter(|r| r.is_map() && r.h.prev_commit.max(format::FIRST_RECORD) >= need)
        .map(|r| r.h.version)
        .next()
        .unwrap_or_else(|| commits.first().map_or(0, |r| r.h.version))
}

/// The free-list entries of `[b, bp)`, a region a step frees, but for the
/// frames `in_place` (each `ps` bytes) that stay: each frame of `slots` (a
/// dead whole frame no kept version names, at a slot boundary) as a SLOT
/// range, and runs around them: runs of fewer than 512 bytes are not
/// listed (the list's rule; they stay allocated, and are never read),
/// longer ones are cut at 1 GiB (a range's length is a u32). With `slots`,
/// a run that holds no whole 4 KiB block is not listed either: its slots
/// are recycled, not punched, so no punch ever frees its blocks, and a
/// call for it would only zero bytes nobody reads (`[512, x)`, the step's
/// bulk punch, takes them once nothing below stays).
fn passed_runs(b: u64, bp: u64, in_place: &HashSet<u64>, ps: u64, slots: &[u64]) -> Vec<FreeRange> {
    const BLOCK: u64 = 4096;
    let whole_blocks_only = !slots.is_empty();
    let mut out = Vec::new();
    let push = |mut from: u64, to: u64, out: &mut Vec<FreeRange>| {
        if whole_blocks_only && from.next_multiple_of(BLOCK) + BLOCK > to {
            return;
        }
        while to.saturating_sub(from) >= format::FIRST_RECORD {
            let n = (to - from).min(1 << 30);
            out.push(FreeRange::run(from, n as u32));
            from += n;
        }
    };
    // The frames that stay (false) and those listed as slots (true).
    let mut cuts: Vec<(u64, bool)> = in_place.iter().filter(|&&x| x >= b && x < bp).map(|&x| (x, false)).collect();
    cuts.extend(slots.iter().filter(|&&x| x >= b && x + ps <= bp && !in_place.contains(&x)).map(|&x| (x, true)));
    cuts.sort_unstable();
    let mut at = b;
    for (x, slot) in cuts {
        if x < at {
            continue;
        }
        push(at, x, &mut out);
        if slot {
            out.push(FreeRange::slot(x, ps as u32));
        }
        at = x + ps;
    }
    push(at, bp, &mut out);
    out
}

/// `n` bytes, in the largest binary unit that keeps one decimal.
pub(crate) fn human(n: u64) -> String {
    match [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")].into_iter().find(|(u, _)| n >= *u) {
        Some((u, name)) if n % u == 0 => format!("{} {name}", n / u),
        Some((u, name)) => format!("{:.1} {name}", n as f64 / u as f64),
        None => format!("{n} bytes"),
    }
}

/// An automatic step is due only when it could free this much (and an
/// eighth of what lies above the boundary; `Log::reclaim_if_due`).
pub const AUTO_MIN_GROWTH: u64 = 1 << 20;
/// How much one automatic step frees at most: a commit waits for at most one.
pub const AUTO_STEP_BYTES: u64 = 4 << 20;
/// The smallest step a full disk retries with (a step still frees at least
/// one record).
pub const MIN_STEP_BYTES: u64 = 16 << 10;

/// The most freeing calls (`fallocate(PUNCH_HOLE)`) a step's release makes
/// (`retire_step.rs` invariant 3): each costs about a millisecond beside a
/// writer on a `discard` mount, so this bounds the pause of the commit that
/// runs the step. What is left stays listed for the next step.
pub const RELEASE_MAX_PUNCHES: usize = 64;
/// Between steps, a commit whose control state lists more than twice
/// [`RELEASE_MAX_PUNCHES`] entries not yet punched makes at most this many
/// freeing calls (`reclaim_if_due`), so that the list, and the blocks it
/// holds, stays bounded when steps list more than a bounded release frees.
pub const RELEASE_TRICKLE_PUNCHES: usize = 4;
/// Below this much free space on the log's file system, a writer whose log
/// has no pre-allocated tail left takes a step after every commit.
pub const DISK_LOW: u64 = 16 << 20;

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
    /// How many times its CONTROL record did not fit on the disk and it
    /// retried with half the size.
    pub shrunk: u32,
}

impl Log {
    /// The control state's free list (`freelist.rs`) less what this process
    /// punched of it already (the next step drops that): its entries, and
    /// the bytes they hold.
    pub fn listed_free(&self) -> (usize, u64) {
        let st = self.lock();
        let l = st.control.free().iter().filter(|r| st.punched.binary_search(r).is_err());
        l.fold((0, 0), |(n, b), r| (n + 1, b + r.length as u64))
    }

    /// The log's retention policy (`all` before format 4 or before one is set).
    pub fn retention(&self) -> Policy {
        self.lock().control.policy()
    }

    /// The bytes the log holds once its freed region is punched: the header
    /// and everything from its boundary on (what a size budget measures;
    /// the file's blocks add its pre-allocated tail). Before format 4 or
    /// any reclamation, the log's length.
    /// Frames a step left in place below the boundary count (a log whose
    /// oldest kept version cannot be read counts none of them).
    pub fn bytes_in_use(&self) -> u64 {
        let (c, end) = {
            let st = self.lock();
            (st.control.clone(), st.log_end)
        };
        let in_place = self.in_place_items(&c).map_or(0, |x| x.1);
        bytes_in_use(c.boundary(), end, in_place)
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
            let live = latest.size_bytes();
            if b < live {
                return Err(Error::Unsupported(format!(
                    "{}: a size budget of {} is below the live database, {} ({live} bytes, version {}): it could \
                     only be met by dropping the latest version, which is never done; give at least {} and room \
                     for the versions to keep",
                    self.path.display(),
                    human(b),
                    human(live),
                    latest.number,
                    human(live.next_multiple_of(1 << 20)),
                )));
            }
        }
        let mut st = self.lock();
        let mut info = control_as_of(&st.control, latest.number);
        info.keep_versions = policy.versions.unwrap_or(0);
        info.keep_seconds = policy.age_secs.unwrap_or(0);
        info.keep_bytes = policy.bytes.unwrap_or(0);
        let control = st.control.clone();
        // The list as it stands: without the slots recycled since its record
        // (`slots.rs` invariant 4).
        let free = self.list_without_recycled(&mut st, control.free())?;
        self.append_control(&mut st, info, &control, control.table(), &free, Vec::new())?;
        Ok(())
    }

    /// Appends a CONTROL record with `info` after the latest commit (a sync
    /// before it, so that it may claim that commit durable, and one after),
    /// and makes it the log's state. `old`: the state it follows (its base
    /// tree is kept when `info` names the same root); `table`: the new
    /// straggler table; `free`: the new free list; `payload`: the relocated
    /// items followed by the base tree's new nodes.
    fn append_control(
        &self,
        st: &mut State,
        info: ControlInfo,
        old: &Control,
        table: &[(u64, u64)],
        free: &[FreeRange],
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
        let rec = control_record(salt, at, prev, latest.page_size, &info, table, free, &payload, true);
        if let Err(e) = self.io.write_at(&rec, at) {
            // A full disk (or a failed write) may have left part of it: put
            // back what was there, pre-allocated zeros and the file's
            // length, so that nothing but the log's own bytes lies past its
            // end. Best effort: recovery ignores a torn record anyway.
            let keep = st.alloc_end.max(at);
            let mut z = at;
            while z < (at + rec.len() as u64).min(keep) {
                let n = ((at + rec.len() as u64).min(keep) - z).min(crate::storage::ZEROS.len() as u64);
                if self.io.write_at(&crate::storage::ZEROS[..n as usize], z).is_err() {
                    break;
                }
                z += n;
            }
            if self.file_len().is_ok_and(|l| l > keep) {
                let _ = self.io.set_len(keep);
            }
            return Err(Error::io(&self.path, "write control", Some(at), e));
        }
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
        let free_entries = free.len() as u32;
        let info = ControlInfo { payload_bytes: payload.len() as u64, stragglers, free_entries, payload_crc, ..info };
        let control = if info.base_root == old.info.base_root && table == old.table() && free == old.free() {
            old.copied(at, crc, info)
        } else {
            let mut tb = crate::control::encode_table(table);
            tb.extend_from_slice(&freelist::encode(free));
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
        self.reclaim_held(max_bytes, true)
    }

    /// After a commit by a connection that still holds the WRITER lock: one
    /// bounded step when it is due, as `wal_autocheckpoint` is for WAL.
    ///
    /// Due is decided from the log's state alone, so that a process that
    /// commits once (a shell command, a cron job) steps exactly as often as
    /// one that commits all day, instead of stepping at its first commit
    /// every time: when the policy drops something by every form
    /// ([`Policy::exceeded`], from the control state's oldest version and
    /// its time) and a step could free at least an eighth of what lies
    /// above the boundary, and at least [`AUTO_MIN_GROWTH`] (what lies
    /// below the latest checkpoint, past which no step moves the boundary,
    /// bounds what it could free). A step that then frees nothing (the
    /// oldest kept version's checkpoint still lies before the boundary)
    /// holds this process back until the log grew that much again. A log
    /// with no pre-allocated tail left on a disk that is filling up
    /// (pre-allocation gives up when it does not fit) steps at once, while
    /// its record still fits.
    pub fn reclaim_if_due(&self) -> Result<Option<Reclaimed>> {
        if self.format() < format::FORMAT_V4 {
            return Ok(None); // no policy before format 4: not even the state lock
        }
        let control = self.lock().control.clone();
        if control.policy().is_all() {
            return Ok(None);
        }
        // Measured outside the state lock (it reads a version).
        let in_place = match control.policy().bytes {
            Some(_) => self.in_place_items(&control)?.1,
            None => 0,
        };
        {
            let st = self.lock();
            let policy = st.control.policy();
            if policy.is_all() {
                return Ok(None);
            }
            let in_place = if Arc::ptr_eq(&st.control, &control) { in_place } else { 0 };
            let (b, end) = (st.control.boundary(), st.log_end);
            let (oldest, oldest_us) = if st.control.redirects() {
                (st.control.info.oldest_version, st.control.info.oldest_timestamp_us)
            } else {
                (1, 0)
            };
            let every = (end.saturating_sub(b) / 8).max(AUTO_MIN_GROWTH);
            let freeable = st.full_map_offset.saturating_sub(b);
            let idle = st.reclaim_looked_at != 0 && end < st.reclaim_looked_at.saturating_add(every);
            let due = (!idle
                && freeable >= every
                && policy.exceeded(oldest, oldest_us, st.latest.number, now_us(), bytes_in_use(b, end, in_place)))
                || (st.alloc_end <= st.log_end && self.disk_low());
            if !due {
                // Between steps: a few freeing calls when the list runs long
                // (`retire_step.rs` invariant 3), unless a reader held an
                // older epoch at the last try and the log has not grown by
                // a step's size since.
                // What this process punched counts only against the list
                // it was last pruned to: a step (ours or another process's)
                // or a checkpoint's copy makes a new list, which the next
                // release prunes it to.
                // So does what it pooled (`slots.rs`): a pooled slot waits
                // for a commit, not for a punch.
                let punched = if st.punched_for == st.control.offset { st.punched.len() + st.pooled.len() } else { 0 };
                let pending = st.control.free().len().saturating_sub(punched);
                let now = st.latest.number;
                let stale = st.pool.any_stale(now);
                let trickle = pending > 2 * RELEASE_MAX_PUNCHES && end >= st.trickle_after;
                drop(st);
                if stale {
                    self.punch_stale_slots(false, RELEASE_TRICKLE_PUNCHES)?;
                }
                if trickle {
                    let (_, held) = self.release_some(&control, RELEASE_TRICKLE_PUNCHES, true)?;
                    if held {
                        let mut st = self.lock();
                        st.trickle_after = st.log_end + AUTO_MIN_GROWTH;
                    }
                }
                return Ok(None);
            }
        }
        let r = self.reclaim_held(AUTO_STEP_BYTES, false);
        if let Ok(done) = &r {
            let mut st = self.lock();
            st.reclaim_looked_at = if done.freed == 0 { st.log_end } else { 0 };
        }
        r.map(Some)
    }

    /// After a commit failed for lack of space (`Error::is_disk_full`), by a
    /// connection that still holds the WRITER lock: one step, whatever the
    /// log's growth, so that the next commit finds the space the policy
    /// frees (the failed commit left the log as it was). None: no policy.
    pub fn reclaim_after_disk_full(&self) -> Result<Option<Reclaimed>> {
        if self.format() < format::FORMAT_V4 || self.retention().is_all() {
            return Ok(None);
        }
        self.lock().reclaim_looked_at = 0;
        let mut r = self.reclaim_held(AUTO_STEP_BYTES, false)?;
        // The commit needs room now: the reserve goes too (the region the
        // last step freed), when no reader still reads it.
        let c = self.lock().control.clone();
        if c.epoch() > 0 {
            r.punched = r.punched.max(self.give_back(&c)?);
        }
        Ok(Some(r))
    }

    /// Whether the log's file system has less than [`DISK_LOW`] free.
    fn disk_low(&self) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: fstatvfs(2) on a descriptor the Log owns, into a zeroed
        // struct it fills; no memory is kept.
        let free = unsafe {
            let mut s: libc::statvfs = std::mem::zeroed();
            (libc::fstatvfs(self.file.as_raw_fd(), &mut s) == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
        };
        free.is_some_and(|f| f < DISK_LOW)
    }

    /// One step; the caller holds the WRITER lock and refreshed the log. A
    /// step whose CONTROL record does not fit on the disk punches what
    /// earlier steps freed (when no reader holds it) and retries, halving
    /// its size, down to [`MIN_STEP_BYTES`]: a smaller step copies less.
    fn reclaim_held(&self, max_bytes: u64, explicit: bool) -> Result<Reclaimed> {
        let mut max = max_bytes;
        let mut shrunk = 0;
        loop {
            match self.step(max, explicit) {
                Ok(r) => return Ok(Reclaimed { shrunk, ..r }),
                Err(e) if e.is_disk_full() && max > MIN_STEP_BYTES => {
                    let c = self.lock().control.clone();
                    if c.epoch() > 0 {
                        // The reserve: the region the last step freed.
                        self.give_back(&c)?;
                    }
                    max /= 2;
                    shrunk += 1;
                }
                r => return r,
            }
        }
    }

    /// One step of at most about `max_bytes` (see `reclaim_held`).
    fn step(&self, max_bytes: u64, explicit: bool) -> Result<Reclaimed> {
        let latest = self.latest();
        let policy = self.retention();
        if policy.is_all() || latest.number == 0 {
            return Ok(Reclaimed { oldest: self.oldest_kept().unwrap_or(1), ..Default::default() });
        }
        let current = self.lock().control.clone();
        // What the state reads in place (outside the state lock: it reads a
        // version): its bytes for the size form, its lowest frame for the
        // punch (invariant 2).
        let (old_low, in_place_bytes) = self.in_place_items(&current)?;
        let st = self.lock();
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
        // The lowest frame below `B` a held version other than the oldest
        // reads in place (a frame a commit wrote into a recycled slot:
        // `slots.rs` invariant 7): the punch stays below it, as below the
        // old state's own frames in place (were this step's record lost).
        let kept_low = self.held_in_place_low(&commits, &old)?;
        let first = commits.last().expect("the latest").h.version;
        let ts = |v: u64| commits.get((latest.number - v) as usize).map_or(0, |r| r.info.timestamp_us);
        let in_place_bytes = if policy.bytes.is_some() { in_place_bytes } else { 0 };
        let by_size = || size_form_oldest(&commits, b, len, in_place_bytes, policy.bytes.unwrap_or(u64::MAX));
        let vo = policy.oldest_kept_within(first, latest.number, now_us(), ts, by_size).max(oldest_now);
        let vo_rec = commits[(latest.number - vo) as usize].clone();

        // 2. The new boundary: the start of the commit before Vo's full map's
        //    transaction (everything from there on stays).
        // A summary's checkpoint (FORMAT.md, "Summary commits": `B` moves
        // only to a checkpoint's transaction start).
        let named = match self.read_record(salt, vo_rec.info.full_map_offset, len)? {
            Some(s) if s.is_summary() => self.read_record(salt, s.sum.checkpoint, len)?,
            r => r,
        };
        let full = match named {
            Some(r) if r.is_commit() && r.is_map() => r,
            _ => {
                return Err(self.corrupt(
                    vo_rec.info.full_map_offset,
                    "the full map of the oldest kept version",
                    "none",
                ))
            }
        };
        let target = full.h.prev_commit.max(format::FIRST_RECORD);
        if target <= b {
            drop(st);
            return self.nothing_to_free(&old, explicit);
        }
        // Vo's page map, as it reads (through the current base tree).
        let (vo_map, _, _) = self.build_map(salt, len, &vo_rec, &old)?;
        // 3. Round down to a transaction's start (after a COMMIT, a MARK or
        //    a step's CONTROL record), or a COMMIT record's start (its
        //    transaction's first records go: the oldest kept version's
        //    checkpoint's predecessor, whose commit that checkpoint names),
        //    within the step's size, but past one transaction at least.
        //    Never inside a transaction before its commit: the boundary
        //    would leave a checkpoint that its INDEX record no longer
        //    precedes (`verify` from `B` refused it).
        let mut bp = b;
        let mut pos = b;
        // The page-image areas of the ALIGNED records walked: their live
        // frames stay in place (invariant 7).
        let mut aligned: Vec<(u64, u64, u32)> = Vec::new();
        let mut frame_areas: Vec<(u64, u64, u32)> = Vec::new();
        while pos < target && (pos - b < max_bytes || bp == b) {
            let Some(r) = self.read_record(salt, pos, len)? else {
                return Err(self.corrupt(pos, "a record (the log above the reclaimed boundary)", "none"));
            };
            if r.end() > target {
                break;
            }
            if r.h.frames > 0 && format::is_aligned(r.h.kind, r.h.flags) {
                aligned.push((r.offset + r.payload_start, r.patches_start(), r.h.page_size));
            }
            if r.h.frames > 0 && (r.h.kind == format::KIND_COMMIT || r.h.kind == format::KIND_SPILL) {
                frame_areas.push((r.offset + r.payload_start, r.patches_start(), r.h.page_size));
            }
            if r.is_commit() && pos > bp {
                bp = pos;
            }
            pos = r.end();
            let claims = r.is_control() && r.h.flags & format::FLAG_CLAIM != 0;
            if r.is_commit() || r.h.kind == format::KIND_MARK || claims {
                bp = pos;
            }
        }
        if pos == target {
            bp = target; // the commit before Vo's checkpoint starts there
        }
        if bp <= b {
            drop(st);
            return self.nothing_to_free(&old, explicit);
        }
        // Release the list the last step made (`retire_step.rs`), outside
        // the state lock (it may wait for the PUNCH byte), and only in a
        // step that frees something: that list holds the region the last
        // step passed, the reserve a step on a full disk gives back first
        // (`reclaim_held`). The WRITER lock keeps the state as read.
        drop(st);
        let released = self.release_listed(&old, RELEASE_MAX_PUNCHES, true)?;
        let mut st = self.lock();
        debug_assert!(st.control.offset == old.offset && st.log_end == len);

        let ps = vo_rec.h.page_size as usize;
        let db_pages = vo_rec.info.db_pages;
        // 4. The references the base tree cannot redirect (stragglers):
        //    their number sizes the record's table, before any copy.
        let keys = self.straggler_keys(&commits[..(latest.number - vo) as usize], &vo_map, ps as u32, &old, bp)?;

        // 5. Which pages move, and their copies.
        // The straggler table sits before the payload: the item keys, and
        // the nodes below `B'` of every kept checkpoint's tree (Vo's and the
        // later ones, a revert's included), counted first.
        let kept_cks: Vec<&Rec> = std::iter::once(&full)
            .chain(commits[..(latest.number - vo) as usize].iter().filter(|r| r.is_checkpoint()))
            .collect();
        let nodes = self.kept_nodes(&kept_cks, &old, bp)?;
        // Vo's page images in `[B, B')` that are frames of ALIGNED records
        // stay where they are (invariant 7): no copy, no base-tree slot.
        let in_place: HashSet<u64> = {
            let frame_of_aligned = |x: u64| {
                let i = aligned.partition_point(|&(s, _, _)| s <= x);
                i > 0 && {
                    let (s, e, aps) = aligned[i - 1];
                    aps == ps as u32 && x < bp && (x - s) % ps as u64 == 0 && x + ps as u64 <= e
                }
            };
            (1..=db_pages)
                .filter_map(|p| vo_map.get(p))
                .map(|s| s.offset)
                .filter(|&o| o != 0 && !patch::is_patch(o) && o >= b && o < bp && frame_of_aligned(o))
                .filter(|&o| crate::control::in_place(o, ps as u32))
                .collect()
        };
        // The free list: what the retired commits leave dead past `B'` (and
        // frames left in place below it), what the last list held that the
        // release did not punch, and `[B, B')` but for the frames that stay.
        // The whole frames of the log's page size at slot boundaries in
        // `[B, B')` (COMMIT and SPILL records), but for those that stay in
        // place: the walk keeps those that no kept version names, which
        // are then listed as SLOT ranges and recycled (invariant 8).
        let passed_frames: Vec<u64> = {
            let a = format::slot_align(ps as u32);
            let mut v = Vec::new();
            let recycling = self.recycle && !policy.is_all() && self.format() >= format::FORMAT_V4;
            for &(s, e, aps) in frame_areas.iter().filter(|_| recycling) {
                if aps != ps as u32 {
                    continue;
                }
                let mut x = s;
                while x + ps as u64 <= e && x < bp {
                    if x % a == 0 && x >= b && !in_place.contains(&x) {
                        v.push(x);
                    }
                    x += ps as u64;
                }
            }
            v
        };
        let (mut found, passed_slots) =
            self.retired_ranges(salt, len, &commits, vo, &vo_map, &old, bp, &passed_frames)?;
        // A frame read in place below `B` that is the base of Vo's patch in
        // `[B, B')`: the patch moves with a copy of it (invariant 3), and
        // the page's base-tree slot leads every later patch of the page to
        // that copy, so the frame dies here.
        for p in 1..=db_pages {
            let Some(s) = vo_map.get(p).filter(|s| patch::is_patch(s.offset)) else { continue };
            let q = patch::position(s.offset);
            if q < b || q >= bp {
                continue;
            }
            let named = patch::base_of(&self.read_vec(q, 8)?).expect("8 bytes");
            // Its bytes die, but not its offset: kept patches still name
            // it as their base (resolved through the base tree from now
            // on), so it is listed as a run and punched, never recycled: a
            // recycled slot's offset names another page's frame, and a
            // later straggler key for this base (the straggler table is
            // keyed by offset alone) would redirect that frame to this
            // base's copy, or the base to that frame.
            if named < b && old.reads_in_place(p, named, ps as u32) && old.base(p, named, ps as u32) == Some(named) {
                found.push(FreeRange::run(named, ps as u32));
            }
        }
        found.sort_unstable_by_key(|r| r.offset);
        let inr_frame = |x: u64| x >= b && x + ps as u64 <= bp;
        // The frames held commits after `Vo` wrote into recycled slots in
        // `[B, B')` stay too (invariant 8): no version the step keeps reads
        // them through `Vo`'s map, so `in_place` misses them, but the
        // versions of those commits read them in place once `B'` passes
        // them. Listed with the region's runs, a release punched a live
        // frame (the torn reverts test, seed 204: page 32 read as zeros).
        let mut stay = in_place.clone();
        for r in commits[..(latest.number - vo) as usize].iter() {
            if r.is_commit() && r.h.flags & format::FLAG_RECYCLED != 0 {
                for e in self.read_entries(r)? {
                    if e.offset != 0 && !patch::is_patch(e.offset) && inr_frame(e.offset) {
                        stay.insert(e.offset);
                    }
                }
            }
        }
        let passed = passed_runs(b, bp, &stay, ps as u64, &passed_slots);
        // L_k = L_{k−1} − punched − the slots a commit after L_{k−1}'s
        // record recycled (`slots.rs` invariant 4) + what this step found.
        let kept_list = self.list_without_recycled(&mut st, &freelist::without(old.free(), &released))?;
        let free = freelist::union(&freelist::union(&kept_list, &found), &passed);
        let meta = (format::RECORD_HEADER_SIZE + format::CONTROL_INFO_SIZE) as u64
            + (keys.len() + nodes.len()) as u64 * format::STRAGGLER_SIZE as u64
            + free.len() as u64 * format::FREE_ENTRY_SIZE as u64;
        let at = st.log_end;
        let payload_at = at + meta;
        let mut payload: Vec<u8> = Vec::new();
        let mut changes: BTreeMap<u32, tree::Slot> = BTreeMap::new();
        let inr = |x: u64| x >= b && x < bp;
        let mut relocated = 0u64;
        // The lowest item the new state reads in place (`bp`: none).
        let mut low = in_place.iter().copied().min().unwrap_or(bp);
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
                let x = old.base(p, named, ps as u32).unwrap_or(named);
                if x < b {
                    low = low.min(x); // a base read in place (or already relocated)
                }
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
                } else if x >= bp && old.base_tree_base(p) != Some(x) {
                    // The base lies past the new boundary already, but the
                    // base tree does not lead there (the straggler table
                    // did): it must from now on.
                    let img = self.read_vec(x, ps)?;
                    changes.insert(p, tree::Slot { offset: x, crc: format::frame_crc(&img) });
                }
                continue;
            }
            if in_place.contains(&orig.offset) {
                // Stays where it is: the page leaves the base tree.
                if in_base {
                    changes.insert(p, tree::Slot::ZERO);
                }
                continue;
            }
            let eff = old
                .slot(p, orig, ps as u32)
                .ok_or_else(|| self.corrupt(orig.offset, format!("a copy of page {p} in the base tree"), "none"))?;
            if patch::position(eff.offset) < b {
                // Read in place since an earlier step (`control.rs` invariant
                // 6): no base-tree slot, and none now.
                low = low.min(eff.offset);
                continue;
            }
            let (item, named_base) = if patch::is_patch(eff.offset) {
                let q = patch::position(eff.offset);
                let named = patch::base_of(&self.read_vec(q, 8)?).expect("8 bytes");
                (q, Some(old.base(p, named, ps as u32).unwrap_or(named)))
            } else {
                (eff.offset, None)
            };
            let moves = inr(item) || named_base.is_some_and(inr);
            if !moves {
                // Already redirected (the item lies below `B`) to a copy the
                // new boundary leaves alone: any item in `[B, B')` that Vo
                // reaches moves. A copy the straggler table held (Vo now
                // shares a revert's entry, which leaves the table) goes into
                // the base tree.
                if old.base_slots().get(&p) != Some(&eff) {
                    changes.insert(p, tree::Slot { offset: eff.offset, crc: eff.crc });
                }
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
        // The stragglers' copies, and the new table.
        let mut stragglers = Vec::with_capacity(keys.len());
        for (&key, &(p, crc, kps)) in &keys {
            // The page size of the kept commit that names it: a revert's
            // target may have another than Vo's (a VACUUM between them).
            let ps = kps as usize;
            let loc = match crc {
                Some(crc) => old.slot(p, Slot { offset: key, crc }, kps).map(|s| s.offset),
                None => old.base(p, key, kps),
            };
            // At or after `B`, or read in place below it (a frame an earlier
            // step kept for the oldest kept version of then, which a kept
            // revert still names): either way it moves when it lies below
            // the new boundary.
            let loc = loc.filter(|&l| patch::position(l) >= b || old.reads_in_place(p, l, kps)).ok_or_else(|| {
                self.corrupt(key, format!("a copy of page {p}'s item at {key} (a straggler)"), "none")
            })?;
            // A frame a kept commit wrote into a recycled slot below `B`
            // (`slots.rs` invariant 7): read in place, not copied, while
            // the new base tree holds no slot for its page (a slot there
            // would redirect it); the punch stays below it.
            if crc.is_some()
                && loc < b
                && old.reads_in_place(p, loc, kps)
                && changes.get(&p).is_none_or(|s| s.offset == 0)
            {
                low = low.min(loc);
                continue;
            }
            let mut copy = |bytes: &[u8], payload: &mut Vec<u8>| -> u64 {
                relocated += 1;
                let o = payload_at + payload.len() as u64;
                payload.extend_from_slice(bytes);
                payload.resize(payload.len().next_multiple_of(8), 0);
                o
            };
            // A patch moves with its base: a copy that stays names a base
            // at or after the new boundary (control.rs invariant 4).
            let base_moves = || -> Result<bool> {
                let named = patch::base_of(&self.read_vec(patch::position(loc), 8)?).expect("8 bytes");
                Ok(old.base(p, named, kps).is_some_and(|x| x < bp))
            };
            let new = if !patch::is_patch(loc) && loc >= bp
                || patch::is_patch(loc) && patch::position(loc) >= bp && !base_moves()?
            {
                loc
            } else if !patch::is_patch(loc) {
                let img = self.read_vec(loc, ps)?;
                if crc.is_some_and(|c| c != format::frame_crc(&img)) {
                    return Err(self.corrupt(loc, format!("frame crc {:#010x} (page {p})", crc.unwrap()), "another"));
                }
                match copies.get(&loc) {
                    Some(&o) => o,
                    None => {
                        let o = copy(&img, &mut payload);
                        copies.insert(loc, o);
                        o
                    }
                }
            } else {
                let q = patch::position(loc);
                let (mut pb, parsed) = match self.patch_at(q, ps as u32, None)? {
                    Ok(x) => x,
                    Err((o, e, f)) => return Err(self.corrupt(o, e, f)),
                };
                let base =
                    old.base(p, parsed.base, kps).filter(|&x| x >= b || old.reads_in_place(p, x, kps)).ok_or_else(
                        || self.corrupt(q, format!("a copy of the base of page {p}'s patch (a straggler)"), "none"),
                    )?;
                let img = self.read_vec(base, ps)?;
                let mut page = img.clone();
                parsed.apply(&pb, &mut page);
                let want = crc.expect("a patch key comes from a map entry");
                if format::frame_crc(&page) != want {
                    return Err(self.corrupt(q, format!("a patch of page {p} making crc {want:#010x}"), "another"));
                }
                let nb = if base < bp {
                    match copies.get(&base) {
                        Some(&o) => o,
                        None => {
                            let o = copy(&img, &mut payload);
                            copies.insert(base, o);
                            o
                        }
                    }
                } else {
                    base
                };
                pb[..8].copy_from_slice(&nb.to_le_bytes());
                copy(&pb, &mut payload) | patch::PATCH_TAG
            };
            stragglers.push((key, patch::position(new))); // the tag is the key's
        }

        // Format 4: the nodes of the kept checkpoints' trees in `[B, B')`
        // are copied byte for byte and join the table; those below `B` keep
        // their entries (`control.rs` invariant 4).
        stragglers.extend(self.relocate_nodes(&nodes, &old, b, bp, payload_at, &mut payload)?);
        stragglers.sort_unstable();
        stragglers.dedup();
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

        // 6. The CONTROL record, synced; then the state.
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
        // The payload was placed after a table of every key; the keys left
        // in place (recycled frames below `B`, `slots.rs` invariant 7) are
        // not in it, so zeros fill their room: every item stays where its
        // reference says (the payload is read only through references).
        let actual = (format::RECORD_HEADER_SIZE + format::CONTROL_INFO_SIZE) as u64
            + stragglers.len() as u64 * format::STRAGGLER_SIZE as u64
            + free.len() as u64 * format::FREE_ENTRY_SIZE as u64;
        debug_assert!(actual <= meta);
        if actual < meta {
            payload.splice(0..0, std::iter::repeat_n(0u8, (meta - actual) as usize));
        }
        let end = self.append_control(&mut st, info, &old, &stragglers, &free, payload)?;
        let epoch = info.epoch;
        drop(st);

        // 7. Punch what no reader can still read directly: below the
        //    region earlier steps freed and below every frame the new state
        //    reads in place, once every reader holds the new epoch. The
        //    region this step freed, `[B, B')`, is listed (but for its frames
        //    in place) and released by the next step: the reserve a step on
        //    a full disk punches to make room for its own record
        //    (`reclaim_held`); so are the frames left in place once dead.
        // Below the old state's lowest frame too: the punch then frees only
        // what the previous record, durable already, says is free, as if this
        // step's record were lost (`torn_reverts_and_steps_…` tears it after
        // the step: a frame this step copied, a straggler, stays where the
        // old state reads it).
        let punched = self.punch_freed(epoch, b.min(low).min(old_low).min(kept_low))?;
        Ok(Reclaimed { oldest: vo, boundary: bp, freed: bp - b, relocated, appended: end - at, punched, shrunk: 0 })
    }

    /// The straggler keys of a step that moves the boundary from `old`'s to
    /// `bp`, with `vo_map` the new oldest kept version's map and `kept` the
    /// commits after it: every reference below `bp` that a kept version can
    /// reach and the new base tree (which holds `Vo`'s items) cannot
    /// redirect, by the page it is of and, for a map entry, its crc (None:
    /// a patch's base). They are
    /// * the kept commits' map entries below `bp` that `Vo`'s map does not
    ///   hold (a revert's entries: the only entries naming older items),
    /// * the base a kept patch names, when it lies below `bp` and is not
    ///   `Vo`'s image (or base) of the page — always for a patch that is a
    ///   straggler itself, whose copy then names the base's copy, and whose
    ///   base the table maps back to what kept patches name.
    fn straggler_keys(
        &self,
        kept: &[Rec],
        vo_map: &PageMap,
        vo_ps: u32,
        old: &Control,
        bp: u64,
    ) -> Result<BTreeMap<u64, StragglerKey>> {
        let b = old.boundary();
        // A copy the table holds -> what references name.
        let back: HashMap<u64, u64> = old.table().iter().map(|&(o, n)| (n, o)).collect();
        let named = |loc: u64| -> Result<u64> {
            Ok(patch::base_of(&self.read_vec(patch::position(loc), 8)?).expect("8 bytes"))
        };
        let lost = |p: u32, at: u64| self.corrupt(at, format!("a copy of page {p}'s item at {at}"), "none");
        // Where the image lies now that the new base tree will resolve a
        // base of page p below `bp` to (Vo's item, or its patch's base);
        // None when it will resolve none (Vo reads the page, and its base,
        // at or after `bp`: the page leaves the base tree).
        let vo_base = |p: u32| -> Result<Option<u64>> {
            let Some(s) = vo_map.get(p).filter(|s| s.offset != 0) else { return Ok(None) };
            if patch::position(s.offset) >= bp {
                if !patch::is_patch(s.offset) {
                    return Ok(None);
                }
                let n = named(s.offset)?;
                return Ok(if n >= bp { None } else { old.base(p, n, vo_ps) });
            }
            let eff = old.slot(p, s, vo_ps).ok_or_else(|| lost(p, s.offset))?;
            Ok(if patch::is_patch(eff.offset) { old.base(p, named(eff.offset)?, vo_ps) } else { Some(eff.offset) })
        };
        let mut keys = BTreeMap::new();
        let mut seen = HashSet::new();
        for r in kept {
            for e in self.kept_entries(r, old)? {
                if e.offset == 0 || !seen.insert(e.offset) || vo_map.get(e.pgno).is_some_and(|s| s.offset == e.offset) {
                    continue;
                }
                let pos = patch::position(e.offset);
                let is_key = pos < bp;
                if is_key {
                    keys.insert(e.offset, (e.pgno, Some(e.crc), r.h.page_size));
                }
                if !patch::is_patch(e.offset) {
                    continue;
                }
                let (base, always) = if pos >= b {
                    (named(e.offset)?, is_key)
                } else {
                    let loc = old
                        .slot(e.pgno, Slot { offset: e.offset, crc: e.crc }, r.h.page_size)
                        .ok_or_else(|| lost(e.pgno, pos))?;
                    let n = named(loc.offset)?;
                    (back.get(&n).copied().unwrap_or(n), true)
                };
                let same_as_vo = || -> Result<bool> {
                    Ok(
                        matches!((old.base(e.pgno, base, r.h.page_size), vo_base(e.pgno)?), (Some(x), Some(y)) if x == y),
                    )
                };
                if base < bp && (always || !same_as_vo()?) {
                    keys.entry(base).or_insert((e.pgno, None, r.h.page_size));
                }
            }
        }
        Ok(keys)
    }

    /// The map entries of kept commit `r` that may name older items: its
    /// entry table (a delta or a full map), or a checkpoint's tree slots
    /// (read under `old`): a revert's checkpoint names its target's items.
    pub(crate) fn kept_entries(&self, r: &Rec, old: &Control) -> Result<Vec<format::Entry>> {
        if r.is_checkpoint() {
            self.checkpoint_slots(r, old)
        } else {
            self.read_entries(r)
        }
    }

    /// The nodes below `bp` of the trees of checkpoints `cks` (read under
    /// `old`; a node two trees share once), with their bytes: what the
    /// straggler table must list after a step to `bp`. A revert's
    /// checkpoint shares nodes with its target's tree, which may be older
    /// than the oldest kept version's.
    fn kept_nodes(&self, cks: &[&Rec], old: &Control, bp: u64) -> Result<BTreeMap<u64, Vec<u8>>> {
        let mut nodes = BTreeMap::new();
        for ck in cks {
            self.walk_checkpoint(ck, old, &mut |v| {
                if v.offset < bp {
                    nodes.entry(v.offset).or_insert_with(|| v.bytes.to_vec());
                }
            })?;
        }
        Ok(nodes)
    }

    /// Copies the nodes of `nodes` in `[b, bp)` to `payload` (which starts
    /// at file offset `payload_at`); returns their straggler entries: those
    /// copies, and `old`'s entries for the nodes below `b` — copied again
    /// when that copy lies in an earlier CONTROL record this step frees (a
    /// table entry must lead at or after the new boundary: readers refuse
    /// one that does not, and the log no longer opened).
    fn relocate_nodes(
        &self,
        nodes: &BTreeMap<u64, Vec<u8>>,
        old: &Control,
        b: u64,
        bp: u64,
        payload_at: u64,
        payload: &mut Vec<u8>,
    ) -> Result<Vec<(u64, u64)>> {
        let mut table: Vec<(u64, u64)> = Vec::with_capacity(nodes.len());
        for (&at, bytes) in nodes {
            if at < b {
                let Some(copy) = old.moved_to(at) else {
                    return Err(self.corrupt(
                        at,
                        "an index-tree node below the boundary in the straggler table",
                        "none",
                    ));
                };
                if copy >= bp {
                    table.push((at, copy));
                } else {
                    table.push((at, payload_at + payload.len() as u64));
                    payload.extend_from_slice(bytes);
                }
            } else {
                table.push((at, payload_at + payload.len() as u64));
                payload.extend_from_slice(bytes);
            }
        }
        Ok(table)
    }

    /// Every non-zero slot of checkpoint `ck`'s tree as map entries, its
    /// nodes read as a version under `old` reads them. Kept for the
    /// checkpoints walked last (`Log::ck_slots`): every step walks the kept
    /// checkpoints' trees (O(database pages) each), several times, and a
    /// tree never changes (its root's crc covers it, node by node).
    fn checkpoint_slots(&self, ck: &Rec, old: &Control) -> Result<Vec<format::Entry>> {
        // Every kept checkpoint, at the intervals a policy keeps: at
        // 32 MiB (a checkpoint every 256 commits) "1000 versions" keeps
        // 5-8 of 8,192 slots each; at 1 GiB, 1-2 of 262,144. A cache of
        // fewer than a step walks would miss every time (walked in turn).
        const KEEP_ENTRIES: usize = 1 << 20;
        let key = (ck.offset, ck.crc, ck.ckpt.root, ck.ckpt.root_crc);
        {
            let mut c = self.ck_slots.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = c.iter().position(|(k, _)| *k == key) {
                let hit = c.remove(i);
                let v = hit.1.to_vec();
                c.push(hit); // the most recent last
                return Ok(v);
            }
        }
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
        let mut c = self.ck_slots.lock().unwrap_or_else(|p| p.into_inner());
        c.push((key, Arc::new(out.clone())));
        // The least recently used go first, beyond KEEP_ENTRIES entries
        // (16 MiB; the last one walked is kept whatever its size).
        while c.len() > 1 && c.iter().map(|(_, v)| v.len()).sum::<usize>() > KEEP_ENTRIES {
            c.remove(0);
        }
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

    /// A step that finds nothing to free. Asked for (`Log::reclaim`, not an
    /// automatic step), it gives back the reserve (the region the last step
    /// freed, kept for a step on a full disk) when no reader holds an older
    /// epoch, so that a run of steps until nothing is left (`pagelog retain
    /// --now`, `compact`) ends with every freed byte punched.
    fn nothing_to_free(&self, old: &Control, explicit: bool) -> Result<Reclaimed> {
        let b = old.boundary();
        let punched = if explicit && old.epoch() > 0 && old.redirects() {
            // Other processes' idle connections let old epochs go within a
            // few ticks (`epochs.rs`): a step asked for waits that long.
            crate::epochs::wait_for_idle_release(&self.path, old.epoch(), crate::epochs::ASKED_STEP_WAIT);
            self.give_back(old)?
        } else {
            0
        };
        Ok(Reclaimed { oldest: old.info.oldest_version.max(1), boundary: b, punched, ..Default::default() })
    }

    /// Gives back everything control state `c` freed, when no reader holds
    /// an older epoch: its whole free list (the region its step freed
    /// included: the reserve), and everything below its boundary and below
    /// every frame it reads in place. Returns the end of the region punched
    /// from 512 (0: none).
    fn give_back(&self, c: &Control) -> Result<u64> {
        self.release_listed(c, usize::MAX, false)?;
        // The pool too (`slots.rs` invariant 6): everything freed is given
        // back, recycled or not.
        self.punch_stale_slots(true, usize::MAX)?;
        let low = self.in_place_low(c)?;
        // And never a frame a held version wrote into a recycled slot
        // below `B` (`slots.rs` invariant 7).
        let held = self.held_commits(c)?;
        let kept_low = match &held {
            Some(commits) => self.held_in_place_low(commits, c)?,
            None => format::FIRST_RECORD,
        };
        self.punch_freed(c.epoch(), c.boundary().min(low).min(kept_low))
    }

    /// What the log's control state reads in place below its boundary
    /// (`control.rs` invariant 6): the lowest frame's offset (the boundary
    /// when none) and the bytes of those frames. Walks the oldest kept
    /// version's map (once per state and process).
    pub fn in_place_frames(&self) -> Result<(u64, u64)> {
        let c = self.lock().control.clone();
        self.in_place_items(&c)
    }

    /// The lowest offset below `B` at which control state `c` reads an item
    /// in place (`control.rs` invariant 6), or `B` when it reads none there.
    pub fn in_place_low(&self, c: &Control) -> Result<u64> {
        Ok(self.in_place_items(c)?.0)
    }

    /// What control state `c` reads in place below `B` (`control.rs`
    /// invariant 6): the lowest item's offset (`B`: none) and the bytes of
    /// those items. They are the oldest kept version's page images below
    /// `B` that nothing redirects, and the bases below `B` of its patches
    /// (later kept versions reach nothing else below `B` but through the
    /// straggler table). Costs a walk of that version's map, once per state
    /// and process (kept with the state). The caller holds no state lock.
    pub(crate) fn in_place_items(&self, c: &Control) -> Result<(u64, u64)> {
        if let Some(&x) = c.in_place.get() {
            return Ok(x);
        }
        let b = c.boundary();
        if !c.redirects() {
            return Ok((b, 0));
        }
        let v = self.version(c.info.oldest_version.max(1))?;
        let (map, ps) = (v.whole_map()?, v.page_size);
        let mut items: HashSet<u64> = HashSet::new();
        for p in 1..=map.pages() {
            let Some(s) = map.get(p).filter(|s| s.offset != 0) else { continue };
            let pos = patch::position(s.offset);
            if pos < b {
                if c.reads_in_place(p, s.offset, ps) {
                    items.insert(pos);
                }
            } else if patch::is_patch(s.offset) {
                let base = patch::base_of(&self.read_vec(pos, 8)?).expect("8 bytes");
                if base < b && c.reads_in_place(p, base, ps) {
                    items.insert(base);
                }
            }
        }
        let x = (items.iter().copied().min().unwrap_or(b), items.len() as u64 * ps as u64);
        let _ = c.in_place.set(x);
        Ok(x)
    }

    /// Punches `[512, to)` when no reader holds an epoch below `epoch` (whose
    /// state reads nothing there). Returns `to` when it punched (0: nothing).
    fn punch_freed(&self, epoch: u64, to: u64) -> Result<u64> {
        // A description of our own: locks on the log's shared one would not
        // conflict with the check. Writable: PUNCH is taken exclusively.
        let probe = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, "open", None, e))?;
        // Idle connections of this process keep an old epoch's lock only
        // until a step wants it (`epochs.rs`).
        crate::epochs::release_idle_below(&probe, epoch);
        use std::os::fd::AsFd;
        // PUNCH from before the look for readers until the punch returned
        // (invariant 6): a reader that locks an epoch after the look waits
        // for it before it refreshes. Readers hold it only for an instant.
        // Dropped with `probe`.
        crate::lock::lock_wait(probe.as_fd(), crate::lock::PUNCH, crate::lock::Mode::Exclusive)
            .map_err(|e| Error::io(&self.path, "lock", None, e))?;
        let held = |below: u64| {
            crate::lock::held_in(probe.as_fd(), crate::lock::EPOCH_BASE, below)
                .map_err(|e| Error::io(&self.path, "lock", None, e))
        };
        if held(epoch)? || to <= format::FIRST_RECORD {
            return Ok(0);
        }
        self.io
            .punch_hole(format::FIRST_RECORD, to - format::FIRST_RECORD)
            .map_err(|e| Error::io(&self.path, "punch a hole", Some(format::FIRST_RECORD), e))?;
        Ok(to)
    }
}
