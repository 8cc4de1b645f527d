//! Group commit and the visible end: a FULL commit is appended under
//! WRITER, which is released before its sync; one `fdatasync` then makes
//! every commit appended so far durable, and no other connection sees a
//! commit before a sync covered it. The shared words are `shm.rs`'s;
//! design, guarantees and fallback: docs/group-commit.md.
//!
//! # Terms
//! * *pending*: a commit appended (its record whole in the file) whose end
//!   is above the shared `visible` word.
//! * *visible version*: what a read transaction gets (`Log::refresh`): the
//!   newest version whose record ends at or below `visible`.
//! * *latest*: `State::latest`, the log's real end (`Log::refresh_latest`),
//!   on which a writer holding WRITER builds.
//!
//! # Invariants
//! 1. `visible` covers a FULL commit only after a sync that began after
//!    the commit's write returned (`Log::await_synced` raises it to what
//!    `appended` said before its sync, or to an end it read itself).
//! 2. A NORMAL or OFF commit raises `visible` to its own end only once
//!    everything before it is visible (else it first waits for a sync
//!    covering its predecessor): it never exposes a pending FULL commit.
//! 3. No commit returns (`Log::finish_commit`) before `visible` covers
//!    it, and under FULL before `synced` does: a writer that built on
//!    pending commits returns only once they are durable too.
//! 4. In a process, `State::pending` holds the commits after
//!    `State::visible` up to `State::latest`, in order, the last one
//!    `State::latest` itself ([`Pend`]); it is empty exactly when
//!    `State::visible` is None (the latest is visible). (Inside
//!    `Log::follow` commits are pushed before the latest is set.)
//! 5. Without the shared words (`State::shm` None) nothing here is used:
//!    commits sync under WRITER and every version is visible at once.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::control::Control;
use crate::error::{Error, Result};
use crate::format::Entry;
use crate::lock::{self, Mode, SYNC};
use crate::log::{Link, Log, Rec, State};
use crate::recovery::advance;
use crate::shm::Shm;
use crate::version::{Mapping, Version};

/// A commit waiting in `State::pending` for `visible` to reach it.
pub(crate) enum Pend {
    /// A version already: the latest, or a commit of this process.
    Made(Arc<Version>),
    /// What a walk read of another process's commit; made into a version
    /// only if `visible` stops at it (`Log::visible_version`). At 16
    /// writers a refresh walks ~15 commits, most of them pending, and a
    /// version of each cost a copy of the 8 KiB map chunk its pages are in.
    Read(Box<ReadCommit>),
}

/// A walked commit: its record, its entries, and the map and control
/// state its version reads through.
pub(crate) struct ReadCommit {
    pub(crate) rec: Rec,
    pub(crate) entries: Vec<Entry>,
    pub(crate) mapping: Arc<Mapping>,
    pub(crate) control: Arc<Control>,
}

impl Pend {
    fn end(&self) -> u64 {
        match self {
            Pend::Made(v) => v.end,
            Pend::Read(c) => c.rec.end(),
        }
    }
}

/// What a commit appended under WRITER still waits for once WRITER is
/// released (see [`Log::finish_commit`]).
pub(crate) enum Wait {
    /// Nothing: durable or visible already (or no shared words).
    Nothing,
    /// A sync covering `end` (FULL, or NORMAL's periodic sync).
    Durable { end: u64 },
    /// NORMAL or OFF behind a pending commit: a sync covering `prev_end`,
    /// then `visible` raised to `end`.
    Behind { prev_end: u64, end: u64 },
}

/// A commit appended but not yet returned.
pub struct Pending {
    pub(crate) version: Arc<Version>,
    pub(crate) link: Link,
    pub(crate) wait: Wait,
    pub(crate) shm: Option<Arc<Shm>>,
}

impl Pending {
    /// Whether [`Log::finish_commit`] may wait: release WRITER first.
    pub fn waits(&self) -> bool {
        !matches!(self.wait, Wait::Nothing)
    }
}

impl Log {
    /// Waits until a sync covered `end`, syncing for the whole group when
    /// no sync in flight will: one `fdatasync` under the SYNC byte covers
    /// every commit whose write returned before it began. True: this
    /// thread ran that sync.
    ///
    /// A thread that finds a sync in flight sleeps on the shared sync bell
    /// (`shm.rs`), which the syncer rings once `synced` rose and SYNC is
    /// free again: every waiter of the group returns at once, and one of
    /// those the sync did not cover becomes the next syncer. (Before the
    /// bell they queued on the SYNC lock itself, `F_OFD_SETLKW`, and took
    /// it one after another just to read `synced`: a covered commit queued
    /// behind an uncovered one waited out a whole second sync.)
    pub(crate) fn await_synced(&self, shm: &Shm, end: u64) -> Result<bool> {
        let fd = self.file.as_fd();
        loop {
            if shm.synced_end() >= end {
                return Ok(false);
            }
            // Read before looking at SYNC (shm.rs invariant 5): a sync that
            // ends after this moves the bell, and the sleep below returns.
            let seen = shm.sync_bell();
            // One thread of this process at a time (the OFD lock below is
            // the log's own description's, shared by its threads); a thread
            // that finds the gate taken sleeps as if SYNC were.
            if let Some(gate) = self.try_sync_gate() {
                if lock::try_lock(fd, SYNC, Mode::Exclusive).map_err(|e| Error::io(&self.path, "lock", None, e))? {
                    let r = (|| {
                        if shm.synced_end() >= end {
                            return Ok(false);
                        }
                        // Every commit record below `to` was written before this sync.
                        let to = shm.appended().load(Ordering::Acquire).max(end);
                        self.io.sync().map_err(|e| Error::io(&self.path, "sync", None, e))?;
                        shm.raise_synced(to);
                        Ok(true)
                    })();
                    let _ = lock::unlock(fd, SYNC);
                    drop(gate);
                    // Once SYNC and the gate are free, so that a waiter this
                    // sync did not cover can sync at once; also after a
                    // failed sync: its waiters look again, one syncs itself.
                    shm.ring_synced();
                    return r;
                }
            }
            shm.sleep_synced(seen);
        }
    }

    /// The shared words, if this process has them.
    pub(crate) fn shm(&self) -> Option<Arc<Shm>> {
        self.lock().shm.clone()
    }

    /// WRITER was just unlocked, on any description of this log: rings the
    /// writer bell for a waiter asleep on it (`sqlite/fair.rs`). Call it
    /// without this log's state locked.
    pub(crate) fn writer_released(&self) {
        if let Some(shm) = self.shm() {
            shm.ring_writer();
        }
    }

    /// This process's sync gate, if no other thread of it holds it.
    fn try_sync_gate(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        match self.sync_gate.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Completes a commit [`Log::commit_appended`] made: waits for what it
    /// needs (invariant 3), then shows it to this process's readers.
    /// On a failed sync the commit stays in the log, its durability
    /// unknown (as SQLite's after a failed fsync); it becomes visible when
    /// a later sync covers it.
    pub fn finish_commit(&self, p: Pending) -> Result<Arc<Version>> {
        let Some(shm) = &p.shm else { return Ok(p.version) };
        let durable = match p.wait {
            Wait::Nothing => false,
            Wait::Durable { end } => {
                if self.await_synced(shm, end)? {
                    self.mark_if_idle(shm);
                }
                true
            }
            Wait::Behind { prev_end, end } => {
                if shm.visible_end() < prev_end {
                    self.await_synced(shm, prev_end)?;
                }
                shm.visible().fetch_max(end, Ordering::AcqRel);
                false
            }
        };
        let mut st = self.lock();
        if durable {
            if st.horizon.version < p.link.version {
                st.horizon = p.link;
            }
            st.last_sync = Instant::now();
            st.unsynced_bytes = 0;
        }
        self.visible_version(&mut st);
        Ok(p.version)
    }

    /// After a sync this thread ran: writes the MARK that claims the log's
    /// latest commit durable (FORMAT.md), if WRITER is free at once and
    /// nothing follows that commit. Else a later commit's horizon carries
    /// the claim (or the MARK of the next idle sync, or of the last close).
    /// Without it, recovery re-checks the frames of the commits after the
    /// last claim, and a damaged one would be taken for a torn write.
    fn mark_if_idle(&self, shm: &Shm) {
        let fd = self.file.as_fd();
        // A commit already appended past what is synced: the log's latest
        // commit is one no sync has covered yet, so no MARK may name it
        // (FORMAT.md, "MARK records": a MARK directly follows the commit it
        // names, after a sync that covered it), and one naming an earlier
        // commit may not be written behind it; the later commits' horizons,
        // or the sync that covers them, carry the claim. Looking first
        // saves what finding that under WRITER cost (issue 23, with several
        // writers most syncs): a try of WRITER, a probe of the log end, the
        // unlock and a ring of the writer bell that woke a waiter for
        // nothing. (A sync that raised `synced` past it meanwhile is run by
        // a syncer that comes here itself.)
        if shm.appended().load(Ordering::Acquire) > shm.synced_end() {
            return;
        }
        if self.read_only || !lock::try_lock(fd, lock::WRITER, Mode::Exclusive).unwrap_or(false) {
            return;
        }
        let _ = (|| -> Result<()> {
            let mut st = self.lock();
            self.catch_up(&mut st)?;
            let latest = st.latest.clone();
            if latest.number == 0 || st.log_end != latest.end || shm.synced_end() < latest.end {
                return Ok(());
            }
            let Some(h) = st.header else { return Ok(()) };
            let link = Link { version: latest.number, offset: latest.commit_offset, crc: latest.commit_crc };
            drop(st);
            // Under WRITER: nobody appends meanwhile, in any process.
            self.write_mark(h.salt, link, latest.page_size, latest.end)?;
            let mut st = self.lock();
            if st.latest.number == link.version && st.log_end == latest.end {
                st.log_end = latest.end + crate::format::MARK_SIZE;
                st.alloc_end = st.alloc_end.max(st.log_end);
                if st.horizon.version < link.version {
                    st.horizon = link;
                }
            }
            Ok(())
        })();
        let _ = lock::unlock(fd, lock::WRITER);
        self.writer_released();
    }

    /// Makes `v` (the next commit after `st.latest`) the latest; with the
    /// shared words, a version above `visible` waits in `st.pending`.
    pub(crate) fn set_latest(&self, st: &mut State, v: Arc<Version>) {
        if let Some(shm) = &st.shm {
            if v.end > shm.visible_end() {
                if st.pending.is_empty() {
                    st.visible = Some(st.latest.clone());
                }
                st.pending.push_back(Pend::Made(v.clone()));
            } else {
                st.pending.clear();
                st.visible = None;
            }
        }
        st.latest = v;
    }

    /// Queues a commit another process appended after `st.latest`, not
    /// yet visible (`Log::follow`, which then sets a later one latest).
    pub(crate) fn push_read(&self, st: &mut State, c: Box<ReadCommit>) {
        if st.pending.is_empty() {
            st.visible = Some(st.latest.clone());
        }
        st.pending.push_back(Pend::Read(c));
    }

    /// The version a read transaction starting now may see: the newest
    /// whose record ends at or below `visible` (one atomic load). When
    /// `visible` stopped at a commit only read so far, its version is made
    /// here from the last one's map: one map copy per move of `visible`.
    pub(crate) fn visible_version(&self, st: &mut State) -> Arc<Version> {
        let Some(shm) = &st.shm else { return st.latest.clone() };
        if st.pending.is_empty() {
            return st.latest.clone();
        }
        let w = shm.visible_end();
        // The newest version passed, or the map of the newest commit
        // passed after it.
        let mut made: Option<Arc<Version>> = None;
        let mut read: Option<(crate::version::Pages, Box<ReadCommit>)> = None;
        while st.pending.front().is_some_and(|p| p.end() <= w) {
            match st.pending.pop_front().expect("looked at") {
                Pend::Made(v) => {
                    made = Some(v);
                    read = None;
                }
                Pend::Read(c) => {
                    let mut map = match read.take() {
                        Some((m, _)) => m,
                        None => {
                            made.as_ref().or(st.visible.as_ref()).expect("pending commits follow a version").map.clone()
                        }
                    };
                    advance(&mut map, &c.rec, &c.entries, &c.mapping);
                    read = Some((map, c));
                }
            }
        }
        if st.pending.is_empty() {
            st.visible = None;
            return st.latest.clone();
        }
        if let Some((map, c)) = read {
            st.visible = Some(Arc::new(self.make_version(&c.rec, map, c.mapping.clone(), c.control.clone())));
        } else if made.is_some() {
            st.visible = made;
        }
        st.visible.clone().expect("pending versions follow a visible one")
    }

    /// Maps the log's shared words once its header is known (format 3 and
    /// before; format 4's retention steps keep syncing under WRITER). The
    /// first process to use them starts them from the log's end, synced.
    /// Any failure: do without (invariant 5).
    pub(crate) fn attach_shm(&self, st: &mut State) {
        st.shm_tried = true;
        let Some(h) = st.header else { return };
        if h.format >= crate::format::FORMAT_V4 {
            return;
        }
        let writable = !self.read_only;
        let shm = crate::shm::attach(&self.file, writable, h.salt, || {
            // Alone: this view goes to the log's end, which is then synced
            // (it may hold commits a killed process never synced) unless
            // the log claims it durable already (FORMAT.md: a claim is
            // written only after the sync; OFF's promise nothing).
            self.follow(st).map_err(|e| std::io::Error::other(e.to_string()))?;
            if st.horizon.version < st.latest.number {
                self.io.sync()?;
            }
            Ok(st.latest.end)
        });
        let Ok(shm) = shm else { return };
        let shm = Arc::new(shm);
        st.pending.clear();
        st.visible = None;
        // Joined while a commit this view holds is pending: the view
        // starts again from the visible end (the walk of the next refresh
        // adds what follows as pending), as invariant 4 needs the latest
        // visible here. Failing that, do without (and recover again).
        let visible = shm.visible_end();
        if st.latest.end > visible && self.recover_below(st, visible).is_err() {
            crate::shm::detach(&self.file, Arc::into_inner(shm).expect("not shared yet"));
            let _ = self.recover_below(st, u64::MAX);
            return;
        }
        st.shm = Some(shm);
    }
}
