//! The main database file as SQLite sees it: reads come from a version of
//! the log, writes go to a transaction buffer, and SQLite's commit becomes a
//! new version.
//!
//! # Locks
//! pagelog gives each transaction a snapshot, as WAL mode does: readers never
//! block the writer and the writer never blocks readers.
//!
//! | SQLite lock            | pagelog state        | taken in / what happens                          |
//! |------------------------|----------------------|--------------------------------------------------|
//! | NONE                   | `State::Idle`        | `unlock(NONE)`                                   |
//! | SHARED                 | `State::Read(v)`     | `lock(SHARED)`: `Log::refresh`, snapshot = latest |
//! | RESERVED               | `State::Write{..}`   | `lock(RESERVED)`: take the WRITER byte lock (or the one the busy handler's sleep took for it, fair.rs); BUSY if another connection holds it or waited longer for it, BUSY (as WAL's BUSY_SNAPSHOT) if the snapshot is no longer the latest |
//! | PENDING, EXCLUSIVE     | `State::Write{..}`   | granted at once: readers hold snapshots           |
//!
//! # Commit
//! SQLite sends `SQLITE_FCNTL_COMMIT_PHASETWO` exactly when it commits (after
//! its journal is finalised, before unlocking); `file_control` then calls
//! `Log::commit`. Dropping below RESERVED without it — a ROLLBACK, even one
//! that replayed spilled pages — discards the buffer: no version is made.
//!
//! Group commit (`crate::group`): `Log::commit_appended` appends under
//! WRITER; if the commit still waits for a sync (FULL, with the shared
//! words) WRITER is released at once, so that the next writer appends
//! behind it, and `Log::finish_commit` then waits for the one sync that
//! covers both. SQLite's following `xUnlock` finds WRITER already given
//! back (`writer_released`). A connection whose busy handler's sleep took
//! WRITER for it reads the log's real end (`Log::refresh_latest`), commits
//! still being synced included: its own commit returns only after them.
//!
//! # A log deleted or renamed away
//! A write transaction (RESERVED) first checks that the name the connection
//! opened still leads to its file (device and inode, as os_unix.c does for
//! `SQLITE_FCNTL_HAS_MOVED`, which is answered the same way); if not, it is
//! refused with `SQLITE_READONLY_DBMOVED` rather than committed to a file
//! nobody can open again. Reads go on from the open file.
//!
//! # Durability
//! The level is `PRAGMA synchronous` as seen through `SQLITE_FCNTL_PRAGMA`
//! (SQLite's default, FULL, until told otherwise). A transaction during which
//! SQLite never called xSync is committed without sync (synchronous=OFF).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;

use libsqlite3_sys as ffi;

use super::fair::Waiter;
use super::vfs::{guard, Handle};
use super::{api, report, set_last_error};
use crate::epochs::EpochHold;
use crate::error::Error;
use crate::lock;
use crate::log::{Durability, Log, OpenOptions, Version};
use crate::name::EscapedName;
use crate::registry::shared_log;
use crate::txn::{WriteTxn, DEFAULT_SPILL_LIMIT};

enum State {
    Idle,
    Read(Arc<Version>),
    Write { snap: Arc<Version>, txn: WriteTxn, level: c_int },
}

pub(crate) struct MainDb {
    log: Arc<Log>,
    /// This connection's own open file description, which holds its locks.
    lockfd: Arc<File>,
    /// Its place among connections waiting for the WRITER lock.
    waiter: Arc<Waiter>,
    /// The name this connection opened, and the (device, inode) it named
    /// then: a write transaction is refused once the name no longer leads
    /// to that file (see `moved`).
    path: std::path::PathBuf,
    file_id: (u64, u64),
    state: State,
    /// Set when opened with `?version=N`: every transaction reads version N.
    pinned: Option<Arc<Version>>,
    /// The epoch lock this connection holds for its read transactions
    /// (format 4: a reclamation step does not punch what its snapshot may
    /// read), kept between them while it is current (`crate::epochs`).
    epoch: EpochHold,
    /// This connection may not write (`mode=ro`, `version=N`, or a file it
    /// could only open read-only), whether or not its shared log can.
    read_only: bool,
    sync_pragma: Option<Durability>,
    synced_in_txn: bool,
    /// A group commit released WRITER before its sync; the write state
    /// that SQLite unlocks next holds nothing (see `commit`).
    writer_released: bool,
    /// Keeps the version alive whose pages xFetch handed out.
    fetch_pin: Option<Arc<Version>>,
    /// Bytes a write transaction buffers in memory before spilling to the log.
    spill_limit: usize,
    /// `PRAGMA mmap_size` (SQLITE_FCNTL_MMAP_SIZE): xFetch hands out pages
    /// lying wholly below it.
    mmap_limit: i64,
}

impl MainDb {
    /// Opens the log at `path` (the exact bytes SQLite named) with the
    /// `version` URI parameter's bytes, if any; returns the file and whether
    /// it is read-only.
    pub(crate) fn open(path: &Path, flags: c_int, version: Option<&[u8]>) -> Result<(MainDb, bool), c_int> {
        let name = path.escaped();
        let want_ro = flags & ffi::SQLITE_OPEN_READONLY != 0;
        let create = flags & ffi::SQLITE_OPEN_CREATE != 0;
        let pinned_n = match version {
            None => None,
            Some(v) => match std::str::from_utf8(v).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                Some(n) => Some(n),
                None => {
                    set_last_error(format!("{name}: version={:?} is not a version number", v.escaped()));
                    return Err(ffi::SQLITE_CANTOPEN);
                }
            },
        };
        let ro = want_ro || pinned_n.is_some();
        let os_error = |e: &Error| match e {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        };
        let log = match shared_log(path, OpenOptions { create: create && !ro, read_only: ro, ..Default::default() }) {
            Ok(l) => l,
            Err(first @ Error::Io { .. }) if !ro && matches!(os_error(&first), Some(libc::EACCES | libc::EROFS)) => {
                // Not writable: a file that exists is opened read-only. One
                // that does not (creating it was refused) is reported by the
                // refusal, not by the retry's "No such file or directory".
                match shared_log(path, OpenOptions { create: false, read_only: true, ..Default::default() }) {
                    Ok(l) => l,
                    Err(e) if os_error(&e) == Some(libc::ENOENT) => return Err(report(&first)),
                    Err(e) => return Err(report(&e)),
                }
            }
            Err(e) => return Err(report(&e)),
        };
        // Read-only when asked (mode=ro, version=N) or when only a read-only
        // open succeeded. The log may be shared with writable connections
        // (another spelling of the file opened first): it does not decide.
        let ro = ro || log.is_read_only();
        let lockfd = std::fs::OpenOptions::new()
            .read(true)
            .write(!ro)
            .open(path)
            .map_err(|e| report(&Error::io(path, "open", None, e)))?;
        match lock::try_lock(lockfd.as_fd(), lock::OPEN, lock::Mode::Shared) {
            Ok(true) => {}
            Ok(false) => {
                set_last_error(format!("{name}: the log is being compacted; try again"));
                return Err(ffi::SQLITE_BUSY);
            }
            Err(e) => return Err(report(&Error::io(path, "lock", None, e))),
        }
        // `pagelog compact` replaces the file by rename while holding OPEN
        // exclusively. Had it done so between our open and our lock, we would
        // hold a file nobody will see again: check that the path, our lock
        // descriptor and the shared log are all the same file.
        // Device and inode only, not std's metadata (see stat.rs).
        let stat_err = |e| report(&Error::io(path, "stat", None, e));
        let here = crate::stat::identity(path).map_err(stat_err)?;
        let ours = crate::stat::identity_of(&lockfd).map_err(stat_err)?;
        let logs = crate::stat::identity_of(log.file()).map_err(stat_err)?;
        if here != ours || ours != logs {
            set_last_error(format!("{name}: the log was replaced (compacted) while opening; open it again"));
            return Err(ffi::SQLITE_BUSY);
        }
        let pinned = match pinned_n {
            None => None,
            Some(n) => Some(log.version(n).map_err(|e| report(&e))?),
        };
        let lockfd = Arc::new(lockfd);
        let db = MainDb {
            waiter: Waiter::new(lockfd.clone(), log.clone()),
            log,
            epoch: EpochHold::new(lockfd.clone(), ours),
            lockfd,
            path: path.to_path_buf(),
            file_id: ours,
            state: State::Idle,
            pinned,
            read_only: ro,
            sync_pragma: None,
            synced_in_txn: false,
            writer_released: false,
            fetch_pin: None,
            spill_limit: DEFAULT_SPILL_LIMIT,
            mmap_limit: 0,
        };
        Ok((db, ro))
    }

    /// Whether the name this connection opened no longer leads to its file:
    /// the log was deleted, or renamed away (and perhaps another file put
    /// in its place). Commits would then go to a file nobody can open by
    /// that name, so writes are refused, as stock SQLite refuses them
    /// (SQLITE_READONLY_DBMOVED; os_unix.c compares inodes the same way).
    fn moved(&self) -> bool {
        // Device and inode only: asking for the timestamps too (std's
        // metadata) would make this commit dirty the inode (see stat.rs).
        crate::stat::identity(&self.path).map_or(true, |id| id != self.file_id)
    }

    pub(crate) fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The version reads see right now.
    pub(crate) fn current(&self) -> Result<Arc<Version>, Error> {
        match &self.state {
            State::Read(v) => Ok(v.clone()),
            State::Write { snap, .. } => Ok(snap.clone()),
            State::Idle => match &self.pinned {
                Some(v) => Ok(v.clone()),
                None => self.log.refresh(),
            },
        }
    }

    fn read(&self, buf: &mut [u8], offset: u64) -> c_int {
        let r = match &self.state {
            State::Read(v) => v.read(offset, buf),
            State::Write { txn, .. } => txn.read(&*self.log, offset, buf),
            State::Idle => self.current().and_then(|v| v.read(offset, buf)),
        };
        let n = match r {
            Ok(n) => n,
            Err(e) => return report(&e),
        };
        if n < buf.len() {
            ffi::SQLITE_IOERR_SHORT_READ
        } else {
            ffi::SQLITE_OK
        }
    }

    fn write(&mut self, buf: &[u8], offset: u64) -> c_int {
        match &mut self.state {
            State::Write { txn, .. } => match txn.write(&*self.log, offset, buf) {
                Ok(()) => ffi::SQLITE_OK,
                Err(e) => report(&e),
            },
            _ => {
                set_last_error(format!(
                    "{}: write outside a write transaction (pagelog does not support nolock=1)",
                    self.log.path().escaped()
                ));
                ffi::SQLITE_IOERR_WRITE
            }
        }
    }

    fn lock(&mut self, level: c_int) -> c_int {
        match (&self.state, level) {
            (State::Idle, ffi::SQLITE_LOCK_SHARED) => {
                let v = match self.snapshot() {
                    Ok(v) => v,
                    Err(e) => {
                        self.drop_epoch(); // no transaction began
                        return report(&e);
                    }
                };
                self.fetch_pin = None;
                self.state = State::Read(v);
                ffi::SQLITE_OK
            }
            (State::Read(snap), l) if l > ffi::SQLITE_LOCK_SHARED => {
                if let Some(p) = &self.pinned {
                    set_last_error(format!(
                        "{}: opened at version {} (version=N is read-only)",
                        self.log.path().escaped(),
                        p.number
                    ));
                    return ffi::SQLITE_READONLY;
                }
                if self.read_only {
                    set_last_error(format!("{}: the log is open read-only", self.log.path().escaped()));
                    return ffi::SQLITE_READONLY;
                }
                // Already stale (the refresh at SHARED walked past the
                // snapshot it gave: commits still being synced, or another
                // connection of this process committed since): answer at
                // once, without taking WRITER only to give it back. Under
                // group commit at FULL this is most write transactions of a
                // busy writer (4 writers: 0.9 per commit), and the take and
                // release cost 3 `fcntl`, a `statx`, a probe of the log end
                // and a wake of the waiter the release rang, who then found
                // WRITER taken again by this connection's retry.
                if self.log.newest_known() != snap.number {
                    return self.stale(snap.number);
                }
                if self.moved() {
                    set_last_error(format!(
                        "{}: the log was deleted or renamed after this connection opened it; a write would be \
                         lost, so it is refused: open the database again by its current name",
                        self.path.escaped()
                    ));
                    return ffi::SQLITE_READONLY_DBMOVED;
                }
                match self.waiter.acquire() {
                    Ok(true) => {}
                    Ok(false) => {
                        self.waiter.busy();
                        return ffi::SQLITE_BUSY;
                    }
                    Err(e) => return report(&Error::io(self.log.path(), "lock", None, e)),
                }
                self.writer_released = false;
                let latest = match self.log.prepare_write() {
                    Ok(v) => v,
                    Err(e) => {
                        self.release_writer();
                        return report(&e);
                    }
                };
                if latest.number != snap.number {
                    self.release_writer();
                    return self.stale(snap.number);
                }
                let snap = snap.clone();
                let txn = self.log.begin(snap.clone(), self.spill_limit);
                self.synced_in_txn = false;
                self.state = State::Write { snap, txn, level: l };
                ffi::SQLITE_OK
            }
            (State::Write { .. }, l) => {
                if let State::Write { level, .. } = &mut self.state {
                    *level = (*level).max(l);
                }
                ffi::SQLITE_OK
            }
            (State::Read(_), _) => ffi::SQLITE_OK,
            (State::Idle, _) => {
                set_last_error("pagelog: lock above SHARED requested without SHARED".into());
                ffi::SQLITE_IOERR_LOCK
            }
        }
    }

    /// `lock(RESERVED)` on a snapshot older than the log's latest: the
    /// transaction can never commit. SQLite's retry (after the busy
    /// handler's sleep, fair.rs) opens a fresh one.
    fn stale(&self, read: u64) -> c_int {
        self.waiter.busy();
        set_last_error(format!(
            "{}: this transaction reads version {} but version {} has been committed since; roll back and retry",
            self.log.path().escaped(),
            read,
            self.log.newest_known()
        ));
        ffi::SQLITE_BUSY_SNAPSHOT
    }

    fn release_writer(&self) {
        if !self.writer_released {
            let _ = lock::unlock(self.lockfd.as_fd(), lock::WRITER);
            self.log.writer_released();
        }
    }

    fn unlock(&mut self, level: c_int) -> c_int {
        let mut rc = ffi::SQLITE_OK;
        if level < ffi::SQLITE_LOCK_RESERVED && !matches!(self.state, State::Write { .. }) {
            self.waiter.drop_carried();
        }
        if level < ffi::SQLITE_LOCK_RESERVED {
            if let State::Write { .. } = &self.state {
                let State::Write { snap, txn, .. } = std::mem::replace(&mut self.state, State::Idle) else {
                    unreachable!()
                };
                if let Err(e) = self.log.rollback(txn) {
                    rc = report(&e);
                }
                self.release_writer();
                self.writer_released = false;
                self.state = State::Read(snap);
            }
        }
        if level == ffi::SQLITE_LOCK_NONE {
            self.state = State::Idle;
            self.drop_epoch();
        }
        rc
    }

    /// The version a read transaction starting now reads, with the epoch
    /// lock of its control state held (format 4). The lock is taken before
    /// the snapshot and the snapshot's epoch checked against it: a step that
    /// moved the boundary after the lock was taken is seen by the refresh,
    /// and one that checked for readers before it never punches what this
    /// snapshot reads.
    fn snapshot(&mut self) -> Result<Arc<Version>, Error> {
        if let Some(p) = self.pinned.as_ref().filter(|p| p.number == 0) {
            // Version 0, the empty database, reads no byte of the log: no
            // length to check (an empty file is a log at version 0), no
            // epoch to hold, and it is never reclaimed (FORMAT.md). Its
            // control state is none, so the epoch loop below would never
            // see it match the latest's.
            return Ok(p.clone());
        }
        if self.log.format() < crate::format::FORMAT_V4 {
            // No epochs before format 4: the read path costs what it did
            // (one refresh; a pinned version only the truncation check).
            // A connection whose busy handler's sleep took WRITER for it
            // (fair.rs) is a writer: it reads the log's real end, commits
            // still being synced included, and its commit returns only
            // once a sync covered them too (group.rs).
            return match &self.pinned {
                Some(p) => self.log.check_len(p.end).map(|()| p.clone()),
                None if self.waiter.carries() => self.log.refresh_latest(),
                None => self.log.refresh(),
            };
        }
        loop {
            let epoch = self.log.latest().control.epoch();
            self.hold_epoch(epoch)?;
            let v = match &self.pinned {
                Some(p) => {
                    // No refresh for a pinned version, so check here what
                    // refresh checks: that no other program cut the file
                    // below the frames this version reads (xFetch hands
                    // out pointers to frames checked earlier).
                    self.log.check_len(p.end)?;
                    if self.log.refresh()?.control.epoch() != p.control.epoch() {
                        // Reclaimed since it was read: read it again through
                        // the new base tree (or learn that it is gone).
                        let again = self.log.version(p.number)?;
                        self.pinned = Some(again);
                    }
                    self.pinned.clone().expect("pinned")
                }
                None => self.log.refresh()?,
            };
            if v.control.epoch() == epoch {
                return Ok(v);
            }
        }
    }

    /// Holds `epoch`'s lock from now to the transaction's end (no system
    /// call when this connection kept it since an earlier transaction).
    fn hold_epoch(&mut self, epoch: u64) -> Result<(), Error> {
        self.epoch.begin(epoch).map_err(|e| Error::io(self.log.path(), "lock", None, e))
    }

    /// The read transaction ended: the lock is kept while it may serve the
    /// next one (`crate::epochs` says when it goes).
    fn drop_epoch(&mut self) {
        self.epoch.end();
    }

    fn check_reserved(&self) -> bool {
        if let State::Write { .. } = self.state {
            return true;
        }
        if self.read_only || self.waiter.carries() {
            // Carried: this connection holds WRITER for its retry, nobody else.
            return false;
        }
        match lock::try_lock(self.lockfd.as_fd(), lock::WRITER, lock::Mode::Exclusive) {
            Ok(true) => {
                self.release_writer();
                false
            }
            _ => true,
        }
    }

    fn commit(&mut self) -> c_int {
        let State::Write { snap, txn, level } = std::mem::replace(&mut self.state, State::Idle) else {
            return ffi::SQLITE_OK;
        };
        // SQLite syncs the database file at commit unless synchronous=OFF.
        // A pragma that said OFF while SQLite still synced was refused by
        // SQLite (`PRAGMA synchronous` inside a transaction is an error), so
        // SQLite's level is not OFF: commit at FULL, never below what it asked.
        let durability = match (self.synced_in_txn, self.sync_pragma) {
            (false, _) => Durability::Off,
            (true, Some(Durability::Off) | None) => Durability::Full,
            (true, Some(level)) => level,
        };
        // Group commit: the append under WRITER, then, WRITER released so
        // that the next writer appends behind it, the wait for the sync
        // that covers it (group.rs). Format 4 (retention steps below)
        // and a process without the shared words never wait here.
        let done = match self.log.commit_appended(txn, durability) {
            Ok(Some(p)) => {
                if p.waits() {
                    self.release_writer();
                    self.writer_released = true;
                }
                self.log.finish_commit(p).map(Some)
            }
            other => other.map(|_| None),
        };
        let (rc, snap) = match done {
            Ok(Some(v)) => {
                // Retention (format 4): a bounded step now and then, while
                // this connection still holds the WRITER lock. A failure
                // leaves the commit made; it is reported to the error log.
                // A step gives the version a new control state.
                match self.log.reclaim_if_due() {
                    Ok(None) => (ffi::SQLITE_OK, v),
                    Ok(Some(_)) => (ffi::SQLITE_OK, self.log.latest()),
                    Err(e) => {
                        set_last_error(format!("pagelog: reclamation after a commit failed: {e}"));
                        (ffi::SQLITE_OK, self.log.latest())
                    }
                }
            }
            Ok(None) => (ffi::SQLITE_OK, snap),
            Err(e) if e.is_disk_full() => {
                // The log is as it was. Under a retention policy, a step
                // (its own record fitting, or retried smaller) frees what
                // the policy drops, so that the next commit has room; the
                // next transaction reads through the step's control state.
                let rc = report(&e);
                match self.log.reclaim_after_disk_full() {
                    Ok(Some(_)) => (rc, self.log.latest()),
                    Ok(None) => (rc, snap),
                    Err(e2) => {
                        set_last_error(format!("{e} (and reclamation to make room failed: {e2})"));
                        (rc, self.log.latest())
                    }
                }
            }
            Err(e) => (report(&e), snap),
        };
        self.synced_in_txn = false;
        let txn = self.log.begin(snap.clone(), self.spill_limit);
        self.state = State::Write { snap, txn, level };
        rc
    }

    /// Answers `SQLITE_FCNTL_PRAGMA`. `Ok(None)`: not ours, let SQLite handle it.
    /// Name and value are SQLite's bytes, which need not be UTF-8: they are
    /// compared as bytes, a `pagelog_*` value that is not a number is refused
    /// with its bytes escaped, and anything else goes back to SQLite as it was.
    fn pragma(&mut self, name: &[u8], value: Option<&[u8]>) -> Result<Option<String>, (c_int, String)> {
        let name = name.to_ascii_lowercase();
        let value_lc = value.map(|v| unquote(v).to_ascii_lowercase());
        match (name.as_slice(), value_lc.as_deref()) {
            (b"pagelog_version", None) => {
                let v = self.current().map_err(|e| (super::error_code(&e), e.to_string()))?;
                Ok(Some(v.number.to_string()))
            }
            (b"pagelog_version", Some(_)) => {
                Err((ffi::SQLITE_ERROR, "pagelog_version is read-only; use `pagelog revert` to go back".into()))
            }
            (b"pagelog_spill_limit", None) => Ok(Some(self.spill_limit.to_string())),
            (b"pagelog_spill_limit", Some(v)) => {
                match std::str::from_utf8(v).ok().and_then(|s| s.parse::<usize>().ok()) {
                    Some(n) if n >= 65536 => {
                        self.spill_limit = n;
                        if let State::Write { txn, .. } = &mut self.state {
                            txn.set_spill_limit(n);
                        }
                        Ok(Some(n.to_string()))
                    }
                    _ => Err((
                        ffi::SQLITE_ERROR,
                        format!("pagelog_spill_limit takes a byte count >= 65536, not {:?}", v.escaped()),
                    )),
                }
            }
            (b"pagelog_retain", None) => Ok(Some(self.log.retention().to_string())),
            (b"pagelog_retain", Some(_)) => {
                let text = std::str::from_utf8(unquote(value.unwrap_or_default()))
                    .map_err(|_| (ffi::SQLITE_ERROR, "pagelog_retain takes text".to_string()))?;
                let policy = crate::retention::Policy::parse(text).map_err(|e| (ffi::SQLITE_ERROR, e))?;
                if !matches!(self.state, State::Idle | State::Read(_)) || self.read_only {
                    return Err((
                        ffi::SQLITE_ERROR,
                        "pagelog_retain is set outside a write transaction, on a writable connection".into(),
                    ));
                }
                self.log
                    .set_retention(policy, std::time::Duration::from_secs(5))
                    .map_err(|e| (super::error_code(&e), e.to_string()))?;
                Ok(Some(policy.to_string()))
            }
            (n, _) if n.starts_with(b"pagelog_") => Err((
                ffi::SQLITE_ERROR,
                format!(
                    "unknown pragma {}; pagelog knows pagelog_version, pagelog_spill_limit and pagelog_retain",
                    n.escaped()
                ),
            )),
            // journal_mode=WAL goes to SQLite, which finds no xShmMap and,
            // by its rule "if the journal mode could not be changed, the
            // original journal mode is returned", answers the mode in force
            // without an error. Apps that ask for WAL at startup thus run
            // unchanged: pagelog already gives what they want of WAL
            // (readers never block the writer, one sync per commit).
            (b"journal_mode", Some(b"off")) => Err((
                ffi::SQLITE_ERROR,
                "pagelog: journal_mode=OFF is refused: without a journal SQLite cannot undo a statement \
                 that fails inside a transaction, nor ROLLBACK TO a savepoint, and the next COMMIT would \
                 store the half-done change. It would save nothing: pagelog keeps journals in memory, \
                 never on disk; use journal_mode=MEMORY (or keep the default)"
                    .into(),
            )),
            (b"locking_mode", Some(b"exclusive")) => Err((
                ffi::SQLITE_ERROR,
                "pagelog: locking_mode=EXCLUSIVE is not supported: pagelog's readers hold snapshots \
                 and would never see other connections' commits"
                    .into(),
            )),
            (b"synchronous", Some(v)) => {
                self.sync_pragma = match v {
                    b"0" | b"off" => Some(Durability::Off),
                    b"1" | b"normal" => Some(Durability::Normal),
                    b"2" | b"full" | b"3" | b"extra" => Some(Durability::Full),
                    _ => self.sync_pragma,
                };
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    fn file_size(&self) -> Result<u64, Error> {
        match &self.state {
            State::Write { txn, .. } => Ok(txn.size()),
            _ => Ok(self.current()?.size_bytes()),
        }
    }
}

/// A pragma value without surrounding white space and quotes.
fn unquote(v: &[u8]) -> &[u8] {
    let quote = |b: &u8| *b == b'\'' || *b == b'"';
    let v = v.trim_ascii();
    let start = v.iter().position(|b| !quote(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !quote(b)).map_or(start, |i| i + 1);
    &v[start..end]
}

fn db<'a>(f: *mut ffi::sqlite3_file) -> &'a mut MainDb {
    // SAFETY: SQLite passes back the file we opened; inner is the MainDb we
    // boxed in x_open and stays valid until x_close. SQLite serialises calls
    // on one file (a connection is used by one thread at a time).
    unsafe { &mut *((*(f as *mut Handle)).inner as *mut MainDb) }
}

unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
    guard(|| {
        let h = f as *mut Handle;
        // SAFETY: inner is the Box<MainDb> from x_open; we take it back once.
        let mut db = unsafe { Box::from_raw((*h).inner as *mut MainDb) };
        // SAFETY: as above; nulled so a second close cannot double-free.
        unsafe { (*h).inner = std::ptr::null_mut() };
        db.unlock(ffi::SQLITE_LOCK_NONE);
        db.waiter.forget();
        drop(db);
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_read(f: *mut ffi::sqlite3_file, buf: *mut c_void, amt: c_int, off: ffi::sqlite3_int64) -> c_int {
    guard(|| {
        // SAFETY: SQLite passes a buffer of amt writable bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, amt as usize) };
        db(f).read(buf, off as u64)
    })
}

unsafe extern "C" fn x_write(
    f: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    guard(|| {
        // SAFETY: SQLite passes a buffer of amt readable bytes.
        let buf = unsafe { std::slice::from_raw_parts(buf as *const u8, amt as usize) };
        db(f).write(buf, off as u64)
    })
}

unsafe extern "C" fn x_truncate(f: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    guard(|| match &mut db(f).state {
        State::Write { txn, .. } => {
            txn.truncate(size as u64);
            ffi::SQLITE_OK
        }
        _ => ffi::SQLITE_IOERR_TRUNCATE,
    })
}

unsafe extern "C" fn x_sync(f: *mut ffi::sqlite3_file, _flags: c_int) -> c_int {
    guard(|| {
        // The sync happens at commit; here we only learn that SQLite wants one.
        db(f).synced_in_txn = true;
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_file_size(f: *mut ffi::sqlite3_file, out: *mut ffi::sqlite3_int64) -> c_int {
    guard(|| match db(f).file_size() {
        Ok(n) => {
            // SAFETY: out is SQLite's out-pointer.
            unsafe { *out = n as i64 };
            ffi::SQLITE_OK
        }
        Err(e) => report(&e),
    })
}

unsafe extern "C" fn x_lock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    guard(|| db(f).lock(level))
}

unsafe extern "C" fn x_unlock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    guard(|| db(f).unlock(level))
}

unsafe extern "C" fn x_check_reserved_lock(f: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    guard(|| {
        let r = db(f).check_reserved();
        // SAFETY: out is SQLite's out-pointer.
        unsafe { *out = r as c_int };
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_file_control(f: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    guard(|| {
        let d = db(f);
        match op {
            ffi::SQLITE_FCNTL_COMMIT_PHASETWO => d.commit(),
            ffi::SQLITE_FCNTL_PRAGMA => {
                let a = arg as *mut *mut c_char;
                // SAFETY: for FCNTL_PRAGMA, arg is char*[3]: [0] our result
                // out-pointer, [1] the pragma name, [2] its argument or null,
                // both NUL-terminated and valid for this call.
                let (name, value) = unsafe {
                    let n = CStr::from_ptr(*a.add(1)).to_bytes();
                    let v = *a.add(2);
                    (n, if v.is_null() { None } else { Some(CStr::from_ptr(v).to_bytes()) })
                };
                match d.pragma(name, value) {
                    Ok(None) => ffi::SQLITE_NOTFOUND,
                    Ok(Some(s)) => {
                        // SAFETY: [0] takes a string from sqlite3_malloc.
                        unsafe { *a = api().c_string(&s) };
                        ffi::SQLITE_OK
                    }
                    Err((rc, msg)) => {
                        // SAFETY: as above.
                        unsafe { *a = api().c_string(&msg) };
                        rc
                    }
                }
            }
            ffi::SQLITE_FCNTL_VFSNAME => {
                // SAFETY: arg is a char** that takes a sqlite3_malloc'd string.
                unsafe { *(arg as *mut *mut c_char) = api().c_string(super::VFS_NAME) };
                ffi::SQLITE_OK
            }
            ffi::SQLITE_FCNTL_HAS_MOVED => {
                // Inside a write transaction the answer is the one its
                // RESERVED lock just checked (SQLite asks when it opens the
                // transaction's journal): one stat per transaction, as
                // os_unix.c makes, not two.
                let moved = if matches!(d.state, State::Write { .. }) { false } else { d.moved() };
                // SAFETY: arg is an int*.
                unsafe { *(arg as *mut c_int) = moved as c_int };
                ffi::SQLITE_OK
            }
            ffi::SQLITE_FCNTL_MMAP_SIZE => {
                // SAFETY: arg is an i64*: in, the new limit (negative: only
                // query); out, the previous limit. As in os_unix.c.
                unsafe {
                    let new = *(arg as *mut i64);
                    *(arg as *mut i64) = d.mmap_limit;
                    if new >= 0 {
                        d.mmap_limit = new;
                    }
                }
                ffi::SQLITE_OK
            }
            ffi::SQLITE_FCNTL_SIZE_HINT | ffi::SQLITE_FCNTL_CHUNK_SIZE => ffi::SQLITE_OK,
            _ => ffi::SQLITE_NOTFOUND,
        }
    })
}

unsafe extern "C" fn x_sector_size(_f: *mut ffi::sqlite3_file) -> c_int {
    4096
}

unsafe extern "C" fn x_device_characteristics(_f: *mut ffi::sqlite3_file) -> c_int {
    // POWERSAFE_OVERWRITE: a write to one page never damages another, because
    // writes go to the transaction buffer and reach the log only as new frames.
    ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE
}

thread_local! {
    static MAPPED_FETCHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many pages xFetch handed to SQLite as pointers into the memory map on
/// this thread (for tests: with `PRAGMA mmap_size` set, a page whose frame
/// this process has checked is read through the map, not copied).
#[doc(hidden)]
pub fn mapped_fetches() -> u64 {
    MAPPED_FETCHES.with(|n| n.get())
}

/// SQLite's memory-mapped read (`PRAGMA mmap_size` > 0): a pointer to the
/// page, or null, after which SQLite reads the page with xRead instead.
/// Only pages whose frames this process has already checked are handed out:
/// checking a frame through the map would fault (SIGBUS) if another program
/// had cut the file short below it, where xRead's pread reports
/// SQLITE_CORRUPT. The first read of a frame therefore goes through xRead,
/// which checks it; the next xFetch of that page gets the pointer.
unsafe extern "C" fn x_fetch(
    f: *mut ffi::sqlite3_file,
    off: ffi::sqlite3_int64,
    amt: c_int,
    pp: *mut *mut c_void,
) -> c_int {
    guard(|| {
        let d = db(f);
        let mut p: *mut c_void = std::ptr::null_mut();
        if let State::Read(v) = &d.state {
            let ps = v.page_size as i64;
            if ps > 0
                && amt as i64 == ps
                && off >= 0
                && off % ps == 0
                && off / ps < u32::MAX as i64
                && off + ps <= d.mmap_limit
            {
                if let Some(page) = v.page_if_checked((off / ps) as u32 + 1) {
                    // SQLite only reads through fetched pointers; the page
                    // stays mapped while fetch_pin holds its version.
                    p = page.as_ptr() as *mut c_void;
                    if !d.fetch_pin.as_ref().is_some_and(|pin| Arc::ptr_eq(pin, v)) {
                        d.fetch_pin = Some(v.clone());
                    }
                    MAPPED_FETCHES.with(|n| n.set(n.get() + 1));
                }
            }
        }
        // SAFETY: pp is SQLite's out-pointer; null means "use xRead".
        unsafe { *pp = p };
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_unfetch(_f: *mut ffi::sqlite3_file, _off: ffi::sqlite3_int64, _p: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    // No shared memory: SQLite keeps the journal mode in force when asked
    // for WAL (see `pragma`).
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

pub(crate) fn methods() -> *const ffi::sqlite3_io_methods {
    &METHODS
}
