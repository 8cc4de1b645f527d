//! The log: one log file per process, shared by every connection of the
//! process (see [`crate::registry`]). This file holds the [`Log`] type, its
//! state and the few primitives every path uses; the paths themselves live
//! in their own files:
//!
//! | file | concern |
//! |------|---------|
//! | `record.rs`   | read and check one record (each field from the bytes its crc checked), find the last one |
//! | `recovery.rs` | open a file, find its latest version, follow other processes' commits, read any version |
//! | `control.rs`, `reclaim.rs` | format 4 (in development): the control state, retention steps |
//! | `version.rs`  | the read path: a version's page map (format 3's in memory, format 4's a tree and an overlay) |
//! | `tail.rs`     | the bytes past the log end one refresh reads at once |
//! | `mapping.rs`  | the memory map, and the frame, patch and node checks it remembers |
//! | `index.rs`, `overlay.rs` | format 4: a version's map read from its checkpoint's tree, the overlay in front |
//! | `commit.rs`   | the write path: spills, commit records, durability markers, syncs, revert |
//! | `commit4.rs`, `checkpoint.rs` | format 4: a commit's tail, when a checkpoint is due and its INDEX record |
//! | `registry.rs` | one `Log` per file per process |
//! | `shm.rs`, `group.rs` | the shared visibility words; group commit (a FULL commit syncs after WRITER is released) |
//!
//! Nothing here knows SQLite.
//!
//! # Terms
//! * *end* of a version: the offset just past its COMMIT record.
//! * *log end* (`State::log_end`): where the next record goes; the end of the
//!   latest version, or past the durability marker that follows it.
//! * *durable*: synced. A record may *claim* a commit durable (a COMMIT's
//!   horizon, a MARK); a writer only writes true claims (FORMAT.md).
//!
//! # Invariants
//! 1. Bytes below the log end are never written again; the file never
//!    shrinks below it. Memory-mapped reads therefore only touch bytes below
//!    the published committed end, and never fault.
//! 2. Records past the log end are read with `pread`, never through the map:
//!    a writer may truncate them at any moment (rollback, crash clean-up).
//! 3. Only the holder of the WRITER lock (see `lock.rs`) appends or truncates.
//! 4. Versions are numbered 1, 2, 3 … without gaps; version 0 is empty.
//! 5. `State::horizon` only ever names a commit that is durable.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::control::Control;
use crate::error::{Error, Result};
use crate::format::{self, CheckpointInfo, CommitInfo, ControlInfo, Header, RecordHeader, SummaryInfo};
use crate::patch;
use crate::storage::LogFile;
use crate::version::Mapping;
pub use crate::version::Version;

/// Reads at least this long are made with pread, not copied out of the
/// map: a copy out of the map leaves every page it touched mapped in the
/// process (its RSS) until given back, on top of the copy (a format-3 full
/// map's record at 1 GiB: 4 MiB twice at the open's peak; issue 21).
const MAPPED_READ_MAX: usize = 64 << 10;

/// How a commit is made durable; mirrors `PRAGMA synchronous` in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// One fdatasync per commit; a commit that returned survives power loss.
    Full,
    /// Synced at most [`crate::commit::NORMAL_SYNC_INTERVAL`] apart; a power loss may lose the
    /// latest commits but never consistency.
    Normal,
    /// Never synced.
    Off,
}

/// Bytes a log handle holds to remember what it checked of the log
/// ([`Log::remembered_bytes`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    /// Index-tree nodes: the leaf table and the inner nodes (format 4).
    pub nodes: usize,
    /// Checked patches.
    pub patches: usize,
    /// Frame-check tags (`frame_tags.rs`, 1 MiB at most).
    pub frame_tags: usize,
}

/// How a log file is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Create the file (empty) if it does not exist.
    pub create: bool,
    /// Open without write access.
    pub read_only: bool,
    /// Never pre-allocate: the file only ever grows by appends (for storage
    /// that can only append). Syncs then also persist the new file size.
    pub append_only: bool,
    /// Create a new log in format 4 (in development: CONTROL records and
    /// retention, docs/format-4.md). Tests only until it is complete.
    #[doc(hidden)]
    pub format4: bool,
    /// Never write a frame into a recycled slot (format 4 under a policy,
    /// `slots.rs`): every listed range is punched as before recycling.
    /// Tests only (those that measure the bounded release of punches).
    #[doc(hidden)]
    pub no_recycling: bool,
}

/// A result that is either the thing, or where and why the log's bytes
/// break a rule of the format: (offset, expected, found).
pub(crate) type Bad<T> = std::result::Result<T, (u64, String, String)>;

/// One parsed, checked record.
#[derive(Debug, Clone)]
pub(crate) struct Rec {
    pub(crate) offset: u64,
    pub(crate) h: RecordHeader,
    pub(crate) info: CommitInfo,
    /// A CONTROL record's control info (format 4); default for the others.
    pub(crate) control: ControlInfo,
    /// A checkpoint COMMIT's checkpoint info (format 4); default for the
    /// others.
    pub(crate) ckpt: CheckpointInfo,
    /// A summary COMMIT's summary info (format 4); default for the others.
    pub(crate) sum: SummaryInfo,
    pub(crate) payload_start: u64,
    /// The trailer's crc: what the next record names as `prev_crc`.
    pub(crate) crc: u32,
    /// The record's metadata (header, commit info, entries) exactly as read
    /// when its trailer crc was checked: the only bytes its fields come from.
    pub(crate) meta: Arc<Vec<u8>>,
}

impl Rec {
    pub(crate) fn end(&self) -> u64 {
        self.offset + self.h.length
    }
    /// Where the record's page images end and its patch area starts.
    pub(crate) fn patches_start(&self) -> u64 {
        self.offset + self.payload_start + self.h.frames as u64 * self.h.page_size as u64
    }
    /// The end of the payload region: of the patch area, before the trailer.
    pub(crate) fn payload_end(&self) -> u64 {
        self.end() - format::TRAILER_SIZE as u64
    }
    pub(crate) fn is_commit(&self) -> bool {
        self.h.kind == format::KIND_COMMIT
    }
    pub(crate) fn is_control(&self) -> bool {
        self.h.kind == format::KIND_CONTROL
    }
    pub(crate) fn is_full(&self) -> bool {
        self.h.flags & format::FLAG_FULL_MAP != 0
    }
    /// A format-4 checkpoint: its map is an index tree (plus no overlay).
    pub(crate) fn is_checkpoint(&self) -> bool {
        self.is_commit() && self.h.flags & format::FLAG_CHECKPOINT != 0
    }
    /// A commit whose map stands alone: a full map or a checkpoint (it
    /// has a tree or a whole map; a chain of page sizes and a log's first
    /// commit start here). Not a summary: see [`Rec::is_map_commit`].
    pub(crate) fn is_map(&self) -> bool {
        self.is_full() || self.is_checkpoint()
    }
    /// A format-4 summary: a delta whose entries are its map relative to
    /// its checkpoint (FORMAT.md, "Summary commits").
    pub(crate) fn is_summary(&self) -> bool {
        self.is_commit() && self.h.flags & format::FLAG_SUMMARY != 0
    }
    /// A commit later deltas name in `full map offset`: a full map, a
    /// checkpoint or a summary.
    pub(crate) fn is_map_commit(&self) -> bool {
        self.is_map() || self.is_summary()
    }
    pub(crate) fn is_index(&self) -> bool {
        self.h.kind == format::KIND_INDEX
    }
    pub(crate) fn link(&self) -> Link {
        Link { version: self.h.version, offset: self.offset, crc: self.crc }
    }
    /// The commit this record follows (a MARK: the commit it names). For a
    /// SPILL or COMMIT the version is this record's version − 1.
    pub(crate) fn prev_link(&self) -> Link {
        let version = if self.h.kind == format::KIND_MARK { self.h.version } else { self.h.version.wrapping_sub(1) };
        Link { version, offset: self.h.prev_commit, crc: self.h.prev_crc }
    }
    /// The commit a COMMIT record claims durable.
    pub(crate) fn horizon(&self) -> Link {
        Link { version: self.info.horizon_version, offset: self.info.horizon_offset, crc: self.info.horizon_crc }
    }
}

/// Names one commit exactly: records refer to the commit they follow, and
/// to their horizon, by all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Link {
    pub(crate) version: u64,
    /// 0 for version 0 (no commit record).
    pub(crate) offset: u64,
    pub(crate) crc: u32,
}

pub(crate) struct State {
    pub(crate) header: Option<Header>,
    pub(crate) mapping: Arc<Mapping>,
    pub(crate) latest: Arc<Version>,
    pub(crate) horizon: Link,
    /// Where the next record goes: the latest version's end, or past the
    /// MARK that follows it.
    pub(crate) log_end: u64,
    /// File length as far as this process knows: the log plus pre-allocated
    /// zeros. Only a hint (where to pre-allocate, what a rollback restores):
    /// a commit written past the real length just extends the file.
    pub(crate) alloc_end: u64,
    /// `alloc_end` was read from the file, or set by this process's own
    /// writes, and no other process has appended since: a writer need not
    /// stat the file again.
    pub(crate) alloc_exact: bool,
    pub(crate) full_map_offset: u64,
    pub(crate) entries_since_full: u64,
    pub(crate) commits_since_full: u64,
    /// This handle committed since it opened the log (format 4's writer
    /// checkpoints sooner at a handle's first commit: `checkpoint.rs`).
    pub(crate) committed_here: bool,
    pub(crate) last_sync: Instant,
    pub(crate) unsynced: bool,
    /// Bytes appended since the last sync (see `NORMAL_SYNC_BYTES`).
    pub(crate) unsynced_bytes: u64,
    /// A connection of this process is writing a commit record right now.
    pub(crate) committing: bool,
    /// The log's control state (format 4; `Control::none()` before).
    pub(crate) control: Arc<Control>,
    /// The log end when an automatic step of this process last found
    /// nothing to free (0: none since; `reclaim_if_due`).
    pub(crate) reclaim_looked_at: u64,
    /// Free-list entries this process punched that the control state still
    /// lists (sorted; `retire_step.rs` invariant 3): a later release skips
    /// them, and the next step drops them from its list.
    pub(crate) punched: Vec<crate::freelist::FreeRange>,
    /// The offset of the CONTROL record whose list `punched` was last
    /// pruned against (another state's list may have dropped some).
    pub(crate) punched_for: u64,
    /// Recycling (`slots.rs`): the slots this process released into its
    /// pool, indexed by offset and by the version when each joined.
    pub(crate) pool: crate::slots::Pool,
    /// Entries of the list `punched_for` names that this process put in
    /// its pool (sorted): a later release does not pool them again.
    pub(crate) pooled: Vec<crate::freelist::FreeRange>,
    /// The image offsets named by the commits after the control state's
    /// record (`slots.rs` invariant 4).
    pub(crate) named: crate::slots::Named,
    /// The log end before which no release between steps is tried again
    /// (a reader held an older epoch; `reclaim_if_due`).
    pub(crate) trickle_after: u64,
    /// The log's shared words (`shm.rs`), once mapped; None: without them
    /// (not tried yet, format 4, or not to be had: `group.rs` invariant 5).
    pub(crate) shm: Option<Arc<crate::shm::Shm>>,
    pub(crate) shm_tried: bool,
    /// The version readers get while `pending` is not empty (`group.rs`).
    pub(crate) visible: Option<Arc<Version>>,
    /// Commits after `visible`, up to `latest`, not yet visible (a sync
    /// has not covered them): `group.rs` invariant 4.
    pub(crate) pending: std::collections::VecDeque<crate::group::Pend>,
}

pub struct Log {
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<File>,
    pub(crate) io: Arc<dyn LogFile>,
    pub(crate) read_only: bool,
    pub(crate) append_only: bool,
    /// Recycling dead slots is allowed (`slots.rs`; `OpenOptions::no_recycling`).
    pub(crate) recycle: bool,
    /// The format a new log is created in.
    pub(crate) new_format: u32,
    pub(crate) state: Mutex<State>,
    /// The file's format version (0 until a header is read or written):
    /// how records are laid out, and whether page 1's counters are derived.
    pub(crate) format: AtomicU32,
    /// The memory map and the committed end `read_vec` may read below.
    pub(crate) committed: Mutex<(Arc<Mapping>, u64)>,
    /// Taken by the thread of this process that syncs for a group
    /// (`group.rs`): the SYNC byte lock is the log's description's, which
    /// all its threads share.
    pub(crate) sync_gate: Mutex<()>,
    /// The slots of the checkpoints reclamation steps walked last
    /// (`reclaim.rs`, `checkpoint_slots`), by (record offset, record crc,
    /// root offset, root crc): the kept checkpoints are walked by every
    /// step, and their trees do not change (the record crc is salted: a
    /// new file never matches).
    pub(crate) ck_slots: Mutex<Vec<(CkKey, Arc<Vec<crate::format::Entry>>)>>,
}

/// A checkpoint's identity for `Log::ck_slots`.
pub(crate) type CkKey = (u64, u32, u64, u32);

pub(crate) fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_us());
    h.write_u32(std::process::id());
    h.finish()
}
impl Log {
    /// Opens the file without reading it: no header check, no recovery (the
    /// first `refresh` recovers). `verify::verify_file` walks a log whose
    /// recovery may fail.
    pub(crate) fn open_unrecovered(path: &Path, opts: OpenOptions) -> Result<Log> {
        let mut oo = std::fs::OpenOptions::new();
        oo.read(true);
        if !opts.read_only {
            oo.write(true).create(opts.create);
        }
        // O_NOATIME: the per-transaction read at the log end would otherwise
        // make every read after a write dirty the inode (relatime updates
        // atime once mtime is newer), a journal transaction per commit. Only
        // the file's owner may ask for it; anyone else opens without.
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            let mut noatime = oo.clone();
            noatime.custom_flags(libc::O_NOATIME);
            match noatime.open(path) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => oo.open(path),
                r => r,
            }
        };
        let file = file.map_err(|e| Error::io(path, "open", None, e))?;
        let file = Arc::new(file);
        let io: Arc<dyn LogFile> = file.clone();
        let log = Log {
            path: path.to_path_buf(),
            file,
            io,
            read_only: opts.read_only,
            append_only: opts.append_only,
            recycle: !opts.no_recycling,
            new_format: if opts.format4 { format::FORMAT_V4 } else { format::FORMAT_VERSION },
            committed: Mutex::new((Arc::new(Mapping::empty(path)), 0)),
            format: AtomicU32::new(0),
            state: Mutex::new(State {
                header: None,
                mapping: Arc::new(Mapping::empty(path)),
                latest: Arc::new(Version::empty(0, Arc::new(Mapping::empty(path)))),
                horizon: Link::default(),
                log_end: format::FIRST_RECORD,
                alloc_end: 0,
                alloc_exact: false,
                full_map_offset: 0,
                entries_since_full: 0,
                commits_since_full: 0,
                committed_here: false,
                last_sync: Instant::now(),
                unsynced: false,
                unsynced_bytes: 0,
                committing: false,
                control: Arc::new(Control::none()),
                reclaim_looked_at: 0,
                punched: Vec::new(),
                punched_for: 0,
                pool: Default::default(),
                pooled: Vec::new(),
                named: Default::default(),
                trickle_after: 0,
                shm: None,
                shm_tried: false,
                visible: None,
                pending: Default::default(),
            }),
            sync_gate: Mutex::new(()),
            ck_slots: Mutex::new(Vec::new()),
        };
        Ok(log)
    }

    /// The format of the file's header as last read or written.
    pub(crate) fn format(&self) -> u32 {
        self.format.load(Ordering::Relaxed)
    }

    /// Versions of this log derive page 1's change counter from their
    /// number (format 2; see `version.rs`).
    pub(crate) fn derive_page1(&self) -> bool {
        self.format() >= format::FORMAT_V2
    }

    /// Whether commits to this log may store patches (format 3).
    pub(crate) fn writes_patches(&self) -> bool {
        self.format() >= format::FORMAT_VERSION
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The underlying file (for locks).
    pub fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state as it was before
        // the failed operation (we only assign at the end), so poisoning is
        // not a reason to refuse further work.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes this handle holds to remember what it checked of the log
    /// (`mapping.rs` invariant 4): the leaf table, the inner index nodes,
    /// the checked patches and the frame tags, shared by every mapping of
    /// the log. Bounded whatever the size of the database or its history.
    /// For tests and measurements (issue 21: a long-lived reader's memory).
    #[doc(hidden)]
    pub fn remembered_bytes(&self) -> Remembered {
        let m = self.lock().mapping.clone();
        let nodes = m.nodes.lock().unwrap_or_else(|p| p.into_inner()).allocated();
        let patches = m.patches.lock().unwrap_or_else(|p| p.into_inner()).allocated();
        Remembered { nodes, patches, frame_tags: m.verified.allocated() }
    }

    /// Lowers what this handle remembers (leaf-table entries, inner nodes,
    /// checked patches; each rounded up to a power of two where the cache
    /// needs one), so that a test's small log exceeds the bounds; drops
    /// what is held. For tests only: the bounds of a real handle are the
    /// constants of `mapping.rs` and `leaves.rs`.
    #[doc(hidden)]
    pub fn limit_remembered(&self, leaves: usize, inner: usize, patches: usize) {
        let m = self.lock().mapping.clone();
        m.nodes.lock().unwrap_or_else(|p| p.into_inner()).set_limits(leaves, inner);
        m.patches.lock().unwrap_or_else(|p| p.into_inner()).set_limit(patches);
    }

    /// The latest version this process knows of that readers may see (no
    /// file access): commits still being synced are not (`group.rs`).
    pub fn latest(&self) -> Arc<Version> {
        let mut st = self.lock();
        self.visible_version(&mut st)
    }

    /// The number of the newest version this process knows of, commits
    /// still being synced included (no file access): a write transaction
    /// whose snapshot is older can never commit (`sqlite/file.rs`).
    pub(crate) fn newest_known(&self) -> u64 {
        self.lock().latest.number
    }

    pub(crate) fn file_len(&self) -> Result<u64> {
        self.io.len().map_err(|e| Error::io(&self.path, "stat", None, e))
    }

    /// Fails, as `refresh` does, when the file is shorter than `end` (a
    /// version's end): another program truncated the committed log.
    pub(crate) fn check_len(&self, end: u64) -> Result<()> {
        self.check_not_truncated(self.file_len()?, end)
    }

    pub(crate) fn check_not_truncated(&self, len: u64, end: u64) -> Result<()> {
        if len < end {
            return Err(self.corrupt(
                len,
                format!("a file of at least {end} bytes (committed end)"),
                format!("{len} bytes: the log was truncated"),
            ));
        }
        Ok(())
    }

    /// `len` bytes at `offset`: committed bytes shorter than
    /// [`MAPPED_READ_MAX`] copied out of the map, longer ones with pread,
    /// the rest as [`Log::read_into`] reads them.
    pub(crate) fn read_vec(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let (map, end) = self.committed.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let committed = offset.saturating_add(len as u64) <= end;
        if committed && len < MAPPED_READ_MAX {
            // One copy out of the map, no zeroing first.
            return Ok(map.slice(offset, len).to_vec());
        }
        let mut v = vec![0u8; len];
        if !committed {
            self.read_into(offset, &mut v)?;
            return Ok(v);
        }
        match self.io.read_at(&mut v, offset) {
            Ok(()) => Ok(v),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(self.corrupt(
                offset,
                format!("{len} committed bytes (the log ends at {end})"),
                "the end of the file: the log was truncated by another program",
            )),
            Err(e) => Err(Error::io(&self.path, "read", Some(offset), e)),
        }
    }

    /// The stored page a map entry of page size `ps` names: the frame, or
    /// the page its patch makes (FORMAT.md, "Patches"), not checked against
    /// the entry's crc. `area_end`: the end of the patch area the patch must
    /// lie in, when the caller knows it. Ok(Err(offset, expected, found)):
    /// the patch breaks a rule of the format.
    pub(crate) fn entry_page(&self, entry_offset: u64, ps: u32, area_end: Option<u64>) -> Result<Bad<Vec<u8>>> {
        if !patch::is_patch(entry_offset) {
            return Ok(Ok(self.read_vec(entry_offset, ps as usize)?));
        }
        Ok(match self.patch_at(patch::position(entry_offset), ps, area_end)? {
            Ok((b, p)) => Ok(self.make_page(&b, &p, ps)?),
            Err(bad) => Err(bad),
        })
    }

    /// The bytes of the patch at `at` and what they say, checked against
    /// the format's rules (see `entry_page`).
    pub(crate) fn patch_at(&self, at: u64, ps: u32, area_end: Option<u64>) -> Result<Bad<(Vec<u8>, patch::Patch)>> {
        let limit = match area_end {
            Some(end) => end,
            None => self.file_len()?,
        };
        let head = self.read_vec(at, patch::HEADER.min(limit.saturating_sub(at) as usize))?;
        let len = patch::stated_size(&head).unwrap_or(0).min(limit.saturating_sub(at) as usize);
        let b = self.read_vec(at, len)?;
        Ok(match patch::parse(&b, at, ps) {
            Ok(p) => Ok((b, p)),
            Err(e) => Err((at, "a patch".into(), e)),
        })
    }

    /// The page the patch `p` (whose bytes are `b`) makes from its base.
    pub(crate) fn make_page(&self, b: &[u8], p: &patch::Patch, ps: u32) -> Result<Vec<u8>> {
        let mut page = self.read_vec(p.base, ps as usize)?;
        p.apply(b, &mut page);
        Ok(page)
    }

    /// Fills `buf` with the log's bytes at `offset` (see `read_vec`).
    pub(crate) fn read_into(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        // Below the committed end, bytes never change and the file never
        // shrinks: copy them from the memory map (no system call). Above it,
        // pread: a writer may truncate what lies there at any moment.
        let (map, end) = self.committed.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if offset.saturating_add(buf.len() as u64) <= end {
            buf.copy_from_slice(map.slice(offset, buf.len()));
            return Ok(());
        }
        // Inside a refresh: the bytes past the end it read at once (tail.rs).
        if self.read_tail(offset, buf) {
            return Ok(());
        }
        match self.io.read_at(buf, offset) {
            Ok(()) => Ok(()),
            // Past the committed end, the file may end (or be cut by a writer
            // discarding its transaction) at any moment: bytes that are not
            // there read as zeros, which never form a record.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                buf.fill(0);
                Ok(())
            }
            Err(e) => Err(Error::io(&self.path, "read", Some(offset), e)),
        }
    }

    /// Records that everything below `end` is committed and covered by
    /// `st.mapping` (see `read_vec`).
    pub(crate) fn publish(&self, st: &State, end: u64) {
        debug_assert!(st.mapping.cap >= end);
        *self.committed.lock().unwrap_or_else(|p| p.into_inner()) = (st.mapping.clone(), end);
    }

    pub(crate) fn corrupt(&self, offset: u64, expected: impl Into<String>, found: impl Into<String>) -> Error {
        Error::Corrupt { path: self.path.clone(), offset, expected: expected.into(), found: found.into() }
    }
    pub(crate) fn mapping_covering(&self, st: &mut State, end: u64) -> Result<Arc<Mapping>> {
        if st.mapping.cap < end {
            st.mapping = Arc::new(
                Mapping::new(&self.file, &self.path, end, Some(&st.mapping))
                    .map_err(|e| Error::io(&self.path, "mmap", None, e))?,
            );
        }
        Ok(st.mapping.clone())
    }
}
