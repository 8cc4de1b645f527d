//! The log: open and recover a log file, read versions, append commits.
//!
//! Nothing here knows SQLite. One [`Log`] exists per log file per process and
//! is shared by every connection of the process (see `sqlite::vfs`).
//!
//! # Terms
//! * *end*: the offset just past the last valid COMMIT record. Everything a
//!   version references lies below its end; bytes past the log's end are an
//!   open transaction's spill records or garbage left by a crash.
//! * *horizon*: the newest commit known to be durable when a commit was
//!   written. Recovery re-checks every frame of the commits after it.
//!
//! # Invariants
//! 1. Bytes below `end` are never written again; the file never shrinks
//!    below `end`. Memory-mapped reads therefore only touch bytes below the
//!    reading version's end, and never fault.
//! 2. Records past `end` are read with `pread`, never through the map: a
//!    writer may truncate them at any moment (rollback, crash clean-up).
//! 3. Only the holder of the WRITER lock (see `lock.rs`) appends or truncates.
//! 4. Versions are numbered 1, 2, 3 … without gaps; version 0 is empty.
//!
//! # Recovery (`Log::open`)
//! 1. Find the last record whose header and trailer check out, scanning back
//!    from the end of the file in 8-byte steps (one step when the file ends
//!    cleanly). A SPILL record there leads to the commit it follows.
//! 2. From that commit's horizon, scan forward, checking every record and the
//!    crc of every frame each commit wrote; stop at the first failure. The last
//!    commit that passed is the latest version.
//! 3. Build its page map from its last full map plus the deltas after it.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memmap2::{Mmap, MmapOptions};

use crate::error::{Error, Result};
use crate::format::{self, CommitInfo, Entry, Header, HeaderError, RecordHeader};
use crate::pagemap::{PageMap, Slot};
use crate::storage::LogFile;
use crate::txn::{Buf, WriteTxn};

/// How a commit is made durable; mirrors `PRAGMA synchronous` in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// One fdatasync per commit; a commit that returned survives power loss.
    Full,
    /// Synced at most [`NORMAL_SYNC_INTERVAL`] apart; a power loss may lose the
    /// latest commits but never consistency.
    Normal,
    /// Never synced.
    Off,
}

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

/// Index of the last non-zero byte of `b`. Pre-allocated tails are megabytes
/// of zeros, so whole blocks are compared against a block of zeros first
/// (a `memcmp`, fast in debug builds too), then the last non-zero block is
/// searched byte by byte.
fn last_nonzero(b: &[u8]) -> Option<usize> {
    const BLOCK: usize = 4096;
    static ZEROS: [u8; BLOCK] = [0; BLOCK];
    let mut end = b.len();
    let tail = end % BLOCK;
    if tail != 0 && b[end - tail..] == ZEROS[..tail] {
        end -= tail;
    }
    while end >= BLOCK && b[end - BLOCK..end] == ZEROS[..] {
        end -= BLOCK;
    }
    b[..end].iter().rposition(|&x| x != 0)
}

/// A bound on `db pages` that no real log exceeds: every page of a database
/// was written at least once, as a frame of at least 512 bytes. It keeps a
/// crafted record from making the page map larger than the file.
fn max_db_pages(file_len: u64) -> u64 {
    file_len / format::PAYLOAD_ALIGN + 65536
}

/// Pre-allocation grows the file by an eighth of its size, within these bounds.
pub const PREALLOC_MIN: u64 = 1 << 20;
pub const PREALLOC_MAX: u64 = 4 << 20;

/// A read-only window on the file. It may be longer than the file: only
/// offsets below a committed end are ever read through it. It also remembers
/// which frames this process has checked, and against which crc (a 16-bit
/// tag of it per 512-byte unit, 0 = not checked), so every frame is checked
/// once, on its first read; a second map entry naming the same frame with
/// another crc (only a crafted log has one) is checked again and fails.
pub struct Mapping {
    /// The file, for `read_frame` (pread).
    file: Option<Arc<File>>,
    mmap: Option<Mmap>,
    cap: u64,
    path: PathBuf,
    verified: Box<[AtomicU16]>,
}

/// The tag of a frame crc in `Mapping::verified`: never 0.
#[inline]
fn crc_tag(crc: u32) -> u16 {
    (crc % 65535) as u16 + 1
}

impl Mapping {
    fn new(file: &Arc<File>, path: &Path, min_len: u64, prev: Option<&Mapping>) -> std::io::Result<Mapping> {
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
        Ok(Mapping { file: Some(file.clone()), mmap: Some(mmap), cap, path: path.to_path_buf(), verified })
    }

    fn empty(path: &Path) -> Mapping {
        Mapping { file: None, mmap: None, cap: 0, path: path.to_path_buf(), verified: Box::new([]) }
    }

    #[inline]
    fn slice(&self, offset: u64, len: usize) -> &[u8] {
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

    /// The frame at `offset`, checked against `crc` on first use.
    #[inline]
    fn frame(&self, offset: u64, len: usize, crc: u32, pgno: u32) -> Result<&[u8]> {
        let data = self.slice(offset, len);
        if !self.is_verified(offset, crc) {
            self.check(offset, crc, pgno, data)?;
        }
        Ok(data)
    }

    /// Checks a frame's bytes against its crc and remembers that it passed.
    fn check(&self, offset: u64, crc: u32, pgno: u32, data: &[u8]) -> Result<()> {
        let found = format::frame_crc(data);
        if found != crc {
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
    mapping: Arc<Mapping>,
}

impl Version {
    /// Version 0: the empty database.
    fn empty(page_size: u32, mapping: Arc<Mapping>) -> Version {
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
        }
    }

    pub fn db_pages(&self) -> u32 {
        self.map.pages()
    }

    pub fn size_bytes(&self) -> u64 {
        self.map.pages() as u64 * self.page_size as u64
    }

    /// The image of page `pgno`, or None past the end of the database. The
    /// first read of a frame in this process checks its crc: a mismatch is
    /// an error naming the offset, never wrong data.
    #[inline]
    pub fn page(&self, pgno: u32) -> Result<Option<&[u8]>> {
        let Some(slot) = self.map.get(pgno) else { return Ok(None) };
        let ps = self.page_size as usize;
        if slot.offset == 0 {
            return Ok(Some(&ZEROS[..ps]));
        }
        self.mapping.frame(slot.offset, ps, slot.crc, pgno).map(Some)
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
        let slot = self.map.get(pgno)?;
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
            let slot = self.map.get(pgno).expect("page within size");
            if slot.offset == 0 {
                buf[done..done + n].fill(0);
            } else {
                self.mapping.read_frame(slot.offset, ps as usize, slot.crc, pgno, in_page, &mut buf[done..done + n])?;
            }
            done += n;
        }
        Ok(done)
    }
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
}

/// One parsed, checked record.
#[derive(Debug, Clone)]
pub(crate) struct Rec {
    pub(crate) offset: u64,
    pub(crate) h: RecordHeader,
    pub(crate) info: CommitInfo,
    pub(crate) payload_start: u64,
    /// The trailer's crc: what the next record names as `prev_crc`.
    pub(crate) crc: u32,
}

impl Rec {
    pub(crate) fn end(&self) -> u64 {
        self.offset + self.h.length
    }
    pub(crate) fn is_commit(&self) -> bool {
        self.h.kind == format::KIND_COMMIT
    }
    pub(crate) fn is_full(&self) -> bool {
        self.h.flags & format::FLAG_FULL_MAP != 0
    }
    pub(crate) fn link(&self) -> Link {
        Link { version: self.h.version, offset: self.offset, crc: self.crc }
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
    header: Option<Header>,
    mapping: Arc<Mapping>,
    latest: Arc<Version>,
    horizon: Link,
    /// File length as far as this process knows: the log plus pre-allocated zeros.
    alloc_end: u64,
    full_map_offset: u64,
    entries_since_full: u64,
    commits_since_full: u64,
    last_sync: Instant,
    unsynced: bool,
    /// A connection of this process is writing a commit record right now.
    committing: bool,
}

pub struct Log {
    path: PathBuf,
    file: Arc<File>,
    io: Arc<dyn LogFile>,
    read_only: bool,
    append_only: bool,
    state: Mutex<State>,
    /// The memory map and the committed end `read_vec` may read below.
    committed: Mutex<(Arc<Mapping>, u64)>,
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_us());
    h.write_u32(std::process::id());
    h.finish()
}

impl Log {
    /// Opens (and recovers) the log at `path`. A missing file is created only
    /// with `opts.create`; a 0-byte file is an empty database; anything that is
    /// not a pagelog log is refused and left untouched.
    pub fn open(path: &Path, opts: OpenOptions) -> Result<Log> {
        let log = Log::open_unrecovered(path, opts)?;
        {
            let mut st = log.lock();
            log.recover(&mut st)?;
        }
        Ok(log)
    }

    /// Like [`Log::open`], but every read and write of the log goes through
    /// `io` (the memory map still maps `path`). For tests that inject faults
    /// or model a disk cache: `io` must show its writes in the file at `path`.
    pub fn open_with_io(path: &Path, opts: OpenOptions, io: Arc<dyn LogFile>) -> Result<Log> {
        let mut log = Log::open_unrecovered(path, opts)?;
        log.io = io;
        {
            let mut st = log.lock();
            log.recover(&mut st)?;
        }
        Ok(log)
    }

    /// Opens the file without reading it: no header check, no recovery (the
    /// first `refresh` recovers). `history::verify_file` walks a log whose
    /// recovery may fail.
    pub(crate) fn open_unrecovered(path: &Path, opts: OpenOptions) -> Result<Log> {
        let mut oo = std::fs::OpenOptions::new();
        oo.read(true);
        if !opts.read_only {
            oo.write(true).create(opts.create);
        }
        let file = oo.open(path).map_err(|e| Error::io(path, "open", None, e))?;
        let file = Arc::new(file);
        let io: Arc<dyn LogFile> = file.clone();
        let log = Log {
            path: path.to_path_buf(),
            file,
            io,
            read_only: opts.read_only,
            append_only: opts.append_only,
            committed: Mutex::new((Arc::new(Mapping::empty(path)), 0)),
            state: Mutex::new(State {
                header: None,
                mapping: Arc::new(Mapping::empty(path)),
                latest: Arc::new(Version::empty(0, Arc::new(Mapping::empty(path)))),
                horizon: Link::default(),
                alloc_end: 0,
                full_map_offset: 0,
                entries_since_full: 0,
                commits_since_full: 0,
                last_sync: Instant::now(),
                unsynced: false,
                committing: false,
            }),
        };
        Ok(log)
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

    /// The latest version this process knows of (no file access).
    pub fn latest(&self) -> Arc<Version> {
        self.lock().latest.clone()
    }

    pub(crate) fn file_len(&self) -> Result<u64> {
        self.io.len().map_err(|e| Error::io(&self.path, "stat", None, e))
    }

    /// Fails, as `refresh` does, when the file is shorter than `end` (a
    /// version's end): another program truncated the committed log.
    pub(crate) fn check_len(&self, end: u64) -> Result<()> {
        self.check_not_truncated(self.file_len()?, end)
    }

    fn check_not_truncated(&self, len: u64, end: u64) -> Result<()> {
        if len < end {
            return Err(self.corrupt(
                len,
                format!("a file of at least {end} bytes (committed end)"),
                format!("{len} bytes: the log was truncated"),
            ));
        }
        Ok(())
    }

    pub(crate) fn read_vec(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        // Below the committed end, bytes never change and the file never
        // shrinks: copy them from the memory map (no system call). Above it,
        // pread: a writer may truncate what lies there at any moment.
        let (map, end) = self.committed.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if offset.saturating_add(len as u64) <= end {
            return Ok(map.slice(offset, len).to_vec());
        }
        let mut v = vec![0u8; len];
        match self.io.read_at(&mut v, offset) {
            Ok(()) => Ok(v),
            // Past the committed end, the file may end (or be cut by a writer
            // discarding its transaction) at any moment: bytes that are not
            // there read as zeros, which never form a record.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                v.fill(0);
                Ok(v)
            }
            Err(e) => Err(Error::io(&self.path, "read", Some(offset), e)),
        }
    }

    /// Records that everything below `end` is committed and covered by
    /// `st.mapping` (see `read_vec`).
    fn publish(&self, st: &State, end: u64) {
        debug_assert!(st.mapping.cap >= end);
        *self.committed.lock().unwrap_or_else(|p| p.into_inner()) = (st.mapping.clone(), end);
    }

    pub(crate) fn corrupt(&self, offset: u64, expected: impl Into<String>, found: impl Into<String>) -> Error {
        Error::Corrupt { path: self.path.clone(), offset, expected: expected.into(), found: found.into() }
    }

    /// Reads the header, if the file has one. Ok(None): an empty log.
    pub(crate) fn read_header(&self, len: u64) -> Result<Option<Header>> {
        if len == 0 {
            return Ok(None);
        }
        let n = len.min(format::HEADER_SIZE as u64) as usize;
        let b = self.read_vec(0, n)?;
        match Header::decode(&b) {
            Ok(h) => Ok(Some(h)),
            Err(e) => {
                // A header torn by a crash while the log was being created
                // (one 512-byte write, synced before any record): nothing was
                // ever committed, so the log is empty.
                let magic_prefix = b.len() >= 4 && b[..b.len().min(8)] == format::MAGIC[..b.len().min(8)];
                if magic_prefix && len < format::FIRST_RECORD {
                    return Ok(None);
                }
                let reason = if b.starts_with(b"SQLite format 3\0") {
                    "it is a plain SQLite database; `pagelog import` converts it".to_string()
                } else {
                    match e {
                        HeaderError::TooShort => format!("{len} bytes is too short for a pagelog header"),
                        HeaderError::BadMagic => "it does not start with the pagelog magic \"PAGELOG\\0\"".into(),
                        HeaderError::BadCrc { stored, computed } => {
                            return Err(self.corrupt(
                                format::HDR_CRC as u64,
                                format!("header crc {computed:#010x}"),
                                format!("{stored:#010x}"),
                            ))
                        }
                        HeaderError::UnsupportedFormat(v) => {
                            format!("format version {v}; this build reads version {}", format::FORMAT_VERSION)
                        }
                        HeaderError::BadField(f, v) => format!("header field {f} has invalid value {v}"),
                    }
                };
                Err(Error::NotALog { path: self.path.clone(), reason })
            }
        }
    }

    /// Reads and checks the record at `offset` (header, commit info, trailer
    /// crc over all metadata). None: no valid record there.
    pub(crate) fn read_record(&self, salt: u64, offset: u64, len: u64) -> Result<Option<Rec>> {
        if offset % 8 != 0 || offset < format::FIRST_RECORD || offset + format::RECORD_HEADER_SIZE as u64 > len {
            return Ok(None);
        }
        let hb = self.read_vec(offset, format::RECORD_HEADER_SIZE)?;
        let Some(h) = RecordHeader::decode(salt, &hb) else { return Ok(None) };
        if offset.saturating_add(h.length) > len {
            return Ok(None);
        }
        let mut info = CommitInfo::default();
        if h.kind == format::KIND_COMMIT {
            let ib = self.read_vec(offset + format::RECORD_HEADER_SIZE as u64, format::COMMIT_INFO_SIZE)?;
            info = CommitInfo::decode(&ib);
        }
        let lay = format::layout(offset, h.kind, info.entries, h.frames, h.page_size);
        if lay.length != h.length {
            return Ok(None);
        }
        let meta = self.read_vec(offset, lay.payload_start as usize)?;
        let t = self.read_vec(offset + h.length - format::TRAILER_SIZE as u64, format::TRAILER_SIZE)?;
        if !format::check_trailer(salt, offset, &meta, &t) {
            return Ok(None);
        }
        let crc = format::trailer_crc(&t);
        Ok(Some(Rec { offset, h, info, payload_start: lay.payload_start, crc }))
    }

    pub(crate) fn read_entries(&self, rec: &Rec) -> Result<Vec<Entry>> {
        let n = rec.info.entries as usize;
        let start = rec.offset + (format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE) as u64;
        let b = self.read_vec(start, n * format::ENTRY_SIZE)?;
        Ok(b.chunks_exact(format::ENTRY_SIZE).map(Entry::decode).collect())
    }

    /// Checks a commit's entries for structure and, for frames written by its
    /// own transaction (offset >= txn_start), their crc. Err(description).
    pub(crate) fn check_commit(
        &self,
        rec: &Rec,
        entries: &[Entry],
        txn_start: u64,
    ) -> Result<Option<(u64, String, String)>> {
        let ps = rec.h.page_size as u64;
        let payload_end = rec.offset + rec.payload_start + rec.h.frames as u64 * ps;
        let mut prev = 0u32;
        for (i, e) in entries.iter().enumerate() {
            let at =
                rec.offset + (format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE + i * format::ENTRY_SIZE) as u64;
            if e.pgno <= prev || e.pgno > rec.info.db_pages {
                return Ok(Some((
                    at,
                    format!("page number in {}..={}", prev + 1, rec.info.db_pages),
                    e.pgno.to_string(),
                )));
            }
            if rec.is_full() && e.pgno != i as u32 + 1 {
                return Ok(Some((at, format!("full map entry for page {}", i + 1), e.pgno.to_string())));
            }
            prev = e.pgno;
            if e.offset == 0 {
                continue;
            }
            if e.offset < format::FIRST_RECORD
                || e.offset % format::PAYLOAD_ALIGN != 0
                || e.offset.saturating_add(ps) > payload_end
            {
                return Ok(Some((at, format!("frame offset below {payload_end}"), e.offset.to_string())));
            }
            if e.offset >= txn_start {
                let page = self.read_vec(e.offset, ps as usize)?;
                let crc = format::frame_crc(&page);
                if crc != e.crc {
                    return Ok(Some((
                        e.offset,
                        format!("frame crc {:#010x} (page {})", e.crc, e.pgno),
                        format!("{crc:#010x}"),
                    )));
                }
            }
        }
        if rec.is_full() && entries.len() as u32 != rec.info.db_pages {
            return Ok(Some((
                rec.offset,
                format!("{} full map entries", rec.info.db_pages),
                entries.len().to_string(),
            )));
        }
        Ok(None)
    }

    /// Scans forward from `pos` (just after commit `prev`), checking records
    /// and new frames, and returns the valid commits found in order with
    /// their entries. Stops at the first record that does not check out or
    /// does not follow `prev` exactly, or after the commit at `stop_after`.
    pub(crate) fn scan_forward(
        &self,
        salt: u64,
        len: u64,
        mut pos: u64,
        mut prev: Link,
        stop_after: Option<u64>,
    ) -> Result<Vec<(Rec, Vec<Entry>)>> {
        let mut out = Vec::new();
        let mut txn_start = pos;
        while let Some(rec) = self.read_record(salt, pos, len)? {
            // The first commit of a file may carry any version (a compacted
            // log starts where its oldest kept version is); it must then be a
            // full map.
            let first = prev.offset == 0;
            let version_ok =
                if first { rec.h.version >= 1 } else { Some(rec.h.version) == prev.version.checked_add(1) };
            if !version_ok
                || rec.h.prev_commit != prev.offset
                || rec.h.prev_crc != prev.crc
                || (first && rec.is_commit() && !rec.is_full())
            {
                break;
            }
            if rec.is_commit() {
                if rec.info.db_pages as u64 > max_db_pages(len) {
                    break;
                }
                let entries = self.read_entries(&rec)?;
                if self.check_commit(&rec, &entries, txn_start)?.is_some() {
                    break;
                }
                prev = rec.link();
                pos = rec.end();
                txn_start = pos;
                let done = stop_after == Some(rec.offset);
                out.push((rec, entries));
                if done {
                    break;
                }
            } else {
                pos = rec.end();
            }
        }
        Ok(out)
    }

    /// Finds the last record ending at or below `below` (at 8-aligned
    /// positions, scanning back) whose header and trailer check out.
    pub(crate) fn find_last_record(&self, salt: u64, len: u64, below: u64) -> Result<Option<Rec>> {
        let mut end = below.min(len) - below.min(len) % 8;
        const WINDOW: u64 = 1 << 20;
        while end >= format::FIRST_RECORD + format::TRAILER_SIZE as u64 {
            let lo = end.saturating_sub(WINDOW).max(format::FIRST_RECORD);
            let buf = self.read_vec(lo, (end - lo) as usize)?;
            // A trailer's last 8 bytes hold its magic, so a record never ends
            // inside trailing zeros (pre-allocated space): skip them a word
            // at a time.
            let Some(nz) = last_nonzero(&buf) else {
                if lo == format::FIRST_RECORD {
                    break;
                }
                end = lo;
                continue;
            };
            let mut e = end.min(format::align_up(lo + nz as u64 + 1, 8));
            while e >= lo + format::TRAILER_SIZE as u64 {
                let t = &buf[(e - format::TRAILER_SIZE as u64 - lo) as usize..(e - lo) as usize];
                if t[format::TR_MAGIC..format::TR_MAGIC + 4] == format::TRAILER_MAGIC {
                    let ro = format::trailer_record_offset(t);
                    if ro < e {
                        if let Some(rec) = self.read_record(salt, ro, len)? {
                            if rec.end() == e {
                                return Ok(Some(rec));
                            }
                        }
                    }
                }
                e -= 8;
            }
            if lo == format::FIRST_RECORD {
                break;
            }
            end = e;
        }
        Ok(None)
    }

    fn recover(&self, st: &mut State) -> Result<()> {
        let len = self.file_len()?;
        st.alloc_end = len;
        let Some(header) = self.read_header(len)? else { return Ok(()) };
        if len < format::FIRST_RECORD {
            // Header written, padding not (a crash during creation): empty.
            return Ok(());
        }
        st.header = Some(header);
        let salt = header.salt;
        let mapping = Arc::new(
            Mapping::new(&self.file, &self.path, len, Some(&st.mapping))
                .map_err(|e| Error::io(&self.path, "mmap", None, e))?,
        );
        st.mapping = mapping;
        // Candidates come from the back of the file. A record past the real
        // end (debris of a crashed or rolled-back transaction) may name
        // commits that newer data has overwritten: such a candidate does not
        // resolve and the scan goes on further back.
        let mut below = len;
        // The skipped commit that claims the newest durable horizon.
        let mut skipped: Option<Rec> = None;
        loop {
            let Some(last) = self.find_last_record(salt, len, below)? else {
                return self.no_damage_beyond(0, skipped);
            };
            match self.resolve(salt, len, &last)? {
                Some(None) => return self.no_damage_beyond(0, skipped),
                Some(Some(latest)) => {
                    self.no_damage_beyond(latest.h.version, skipped)?;
                    self.load_version(st, salt, len, &latest)?;
                    return Ok(());
                }
                None => {
                    below = last.offset;
                    if last.is_commit()
                        && skipped.as_ref().is_none_or(|s| s.info.horizon_version < last.info.horizon_version)
                    {
                        skipped = Some(last);
                    }
                }
            }
        }
    }

    /// A commit that did not resolve is debris unless it claims that a
    /// version newer than the latest readable one was durable (its horizon):
    /// then committed history is damaged, which must not pass silently.
    /// (Unsynced commits may be lost in any order, so versions alone say
    /// nothing: a lost version 2 may leave version 3's records behind.)
    fn no_damage_beyond(&self, latest: u64, skipped: Option<Rec>) -> Result<()> {
        match skipped {
            Some(r) if r.info.horizon_version > latest => Err(self.corrupt(
                r.offset,
                format!(
                    "version {} (synced before the commit of version {} was written)",
                    r.info.horizon_version, r.h.version
                ),
                format!("history that ends at version {latest}"),
            )),
            _ => Ok(()),
        }
    }

    /// From the last well-formed record, finds the latest valid commit:
    /// Some(Some(commit)), Some(None) for version 0, None when the record
    /// names commits that are not there (debris).
    fn resolve(&self, salt: u64, len: u64, last: &Rec) -> Result<Option<Option<Rec>>> {
        let candidate = if last.is_commit() {
            last.clone()
        } else if last.h.prev_commit == 0 {
            return Ok(Some(None));
        } else {
            match self.read_record(salt, last.h.prev_commit, len)? {
                Some(r)
                    if r.is_commit()
                        && r.crc == last.h.prev_crc
                        && r.h.version.checked_add(1) == Some(last.h.version) =>
                {
                    r
                }
                _ => return Ok(None),
            }
        };
        if candidate.h.flags & format::FLAG_SEALED != 0 {
            // Written by compaction into a file synced before it was renamed
            // into place: durable with all its frames.
            return Ok(Some(Some(candidate)));
        }
        // Everything after the candidate's horizon is checked again.
        let h = Link {
            version: candidate.info.horizon_version,
            offset: candidate.info.horizon_offset,
            crc: candidate.info.horizon_crc,
        };
        let (start, horizon) = if h.offset == 0 {
            (format::FIRST_RECORD, None)
        } else {
            match self.read_record(salt, h.offset, len)? {
                Some(r) if r.is_commit() && r.link() == h => (r.end(), Some(r)),
                _ => return Ok(None),
            }
        };
        // Do not stop at the candidate: debris of a killed transaction can
        // be the last record while newer commits lie before it.
        let found = self.scan_forward(salt, len, start, h, None)?;
        Ok(Some(found.into_iter().next_back().map(|(r, _)| r).or(horizon)))
    }

    /// Checks a commit's entries for structure only (no frame crcs): what
    /// building a page map from it relies on. A record can pass its crcs and
    /// still be nonsense only if crafted; it must give an error, not a panic
    /// or an allocation larger than the file.
    fn check_map_structure(&self, rec: &Rec, entries: &[Entry], len: u64) -> Result<()> {
        if rec.info.db_pages as u64 > max_db_pages(len) {
            return Err(self.corrupt(
                rec.offset,
                format!("at most {} database pages for a {len}-byte log", max_db_pages(len)),
                rec.info.db_pages.to_string(),
            ));
        }
        match self.check_commit(rec, entries, u64::MAX)? {
            None => Ok(()),
            Some((offset, expected, found)) => Err(self.corrupt(offset, expected, found)),
        }
    }

    /// Builds the page map of commit `rec` from its last full map plus the
    /// deltas after it; also returns the delta entries since that full map.
    /// Also returns the delta entries and commits since that full map.
    pub(crate) fn build_map(&self, salt: u64, len: u64, rec: &Rec) -> Result<(PageMap, u64, u64)> {
        let fo = rec.info.full_map_offset;
        let full = match self.read_record(salt, fo, len)? {
            Some(r) if r.is_commit() && r.is_full() && r.h.version <= rec.h.version => r,
            _ => {
                return Err(self.corrupt(
                    fo,
                    format!("full page map (named by commit {} at {})", rec.h.version, rec.offset),
                    "no valid full-map commit",
                ))
            }
        };
        let mut map = PageMap::new();
        let entries = self.read_entries(&full)?;
        self.check_map_structure(&full, &entries, len)?;
        map.apply(full.info.db_pages, &entries);
        let mut since = 0u64;
        let mut commits = 0u64;
        let mut pos = full.end();
        let mut last = full.clone();
        while last.offset != rec.offset {
            let r = self.read_record(salt, pos, len)?.ok_or_else(|| {
                self.corrupt(pos, format!("a record between versions {} and {}", last.h.version, rec.h.version), "none")
            })?;
            if r.is_commit() {
                if Some(r.h.version) != last.h.version.checked_add(1) {
                    return Err(self.corrupt(
                        pos,
                        format!("version {}", last.h.version.saturating_add(1)),
                        r.h.version.to_string(),
                    ));
                }
                let entries = self.read_entries(&r)?;
                self.check_map_structure(&r, &entries, len)?;
                if r.is_full() {
                    map = PageMap::new();
                    since = 0;
                    commits = 0;
                } else {
                    since += entries.len() as u64;
                    commits += 1;
                }
                map.apply(r.info.db_pages, &entries);
                last = r.clone();
            }
            pos = r.end();
        }
        Ok((map, since, commits))
    }

    /// Installs commit `rec` as the latest version.
    fn load_version(&self, st: &mut State, salt: u64, len: u64, rec: &Rec) -> Result<()> {
        // rec passed recovery: everything below its end is committed.
        self.mapping_covering(st, rec.end())?;
        self.publish(st, rec.end());
        let (map, since, commits) = self.build_map(salt, len, rec)?;
        st.commits_since_full = commits;
        st.full_map_offset = rec.info.full_map_offset;
        st.entries_since_full = since;
        // What this process read may still be only in the page cache: the
        // commits of another process running synchronous=NORMAL. Only what
        // the log itself says was synced is known durable (a sealed commit
        // was, with everything before it); the next sync of ours makes the
        // rest durable too (fdatasync flushes every process's writes).
        st.horizon = if rec.h.flags & format::FLAG_SEALED != 0 {
            rec.link()
        } else {
            Link { version: rec.info.horizon_version, offset: rec.info.horizon_offset, crc: rec.info.horizon_crc }
        };
        let mapping = self.mapping_covering(st, rec.end())?;
        st.latest = Arc::new(self.make_version(rec, map, mapping));
        Ok(())
    }

    pub(crate) fn make_version(&self, rec: &Rec, map: PageMap, mapping: Arc<Mapping>) -> Version {
        Version {
            number: rec.h.version,
            page_size: rec.h.page_size,
            map,
            commit_offset: rec.offset,
            commit_crc: rec.crc,
            end: rec.end(),
            timestamp_us: rec.info.timestamp_us,
            checksum: rec.info.checksum,
            mapping,
        }
    }

    /// Version `n` of the log, read in place (no copy).
    pub fn version(&self, n: u64) -> Result<Arc<Version>> {
        let latest = self.refresh()?;
        if n == latest.number {
            return Ok(latest);
        }
        if n > latest.number {
            return Err(Error::NoSuchVersion { path: self.path.clone(), version: n, latest: latest.number });
        }
        let mut st = self.lock();
        let mapping = st.mapping.clone();
        if n == 0 {
            return Ok(Arc::new(Version::empty(latest.page_size, mapping)));
        }
        let salt = st.header.expect("a log with versions has a header").salt;
        let len = latest.end;
        let mut off = latest.commit_offset;
        let mut want_crc = latest.commit_crc;
        let rec = loop {
            let r = match self.read_record(salt, off, len)? {
                Some(r) if r.is_commit() && r.crc == want_crc => r,
                _ => return Err(self.corrupt(off, format!("a commit record on the way to version {n}"), "none")),
            };
            if r.h.version == n {
                break r;
            }
            if r.h.prev_commit == 0 && r.h.version > n {
                // The oldest version kept in this (compacted) file is newer than n.
                return Err(Error::NoSuchVersion { path: self.path.clone(), version: n, latest: latest.number });
            }
            if r.h.version < n || r.h.prev_commit >= off {
                return Err(self.corrupt(
                    off,
                    format!("a commit before version {} at an offset below {off}", r.h.version),
                    format!("version {} naming offset {}", r.h.version, r.h.prev_commit),
                ));
            }
            off = r.h.prev_commit;
            want_crc = r.h.prev_crc;
        };
        let (map, _, _) = self.build_map(salt, len, &rec)?;
        let mapping = self.mapping_covering(&mut st, rec.end())?;
        Ok(Arc::new(self.make_version(&rec, map, mapping)))
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

    /// Brings this process's view up to date with commits other processes
    /// appended, and returns the latest version. Cheap when nothing changed.
    pub fn refresh(&self) -> Result<Arc<Version>> {
        let mut st = self.lock();
        let len = self.file_len()?;
        let end = st.latest.end;
        if st.header.is_none() {
            if len == 0 {
                return Ok(st.latest.clone());
            }
            self.recover(&mut st)?;
            return Ok(st.latest.clone());
        }
        self.check_not_truncated(len, end)?;
        if st.committing || len < end + (format::RECORD_HEADER_SIZE + format::TRAILER_SIZE) as u64 {
            return Ok(st.latest.clone());
        }
        let salt = st.header.unwrap().salt;
        let prev = Link { version: st.latest.number, offset: st.latest.commit_offset, crc: st.latest.commit_crc };
        let found = self.scan_forward(salt, len, end, prev, None)?;
        if found.is_empty() {
            return Ok(st.latest.clone());
        }
        let mut map = st.latest.map.clone();
        let mut since = st.entries_since_full;
        let mut commits = st.commits_since_full;
        let mut checksum = st.latest.checksum;
        for (r, entries) in &found {
            if r.is_full() {
                map = PageMap::new();
                since = 0;
                commits = 0;
                st.full_map_offset = r.offset;
            } else {
                since += entries.len() as u64;
                commits += 1;
            }
            map.apply(r.info.db_pages, entries);
            checksum = r.info.checksum;
            if r.info.horizon_version > st.horizon.version {
                st.horizon =
                    Link { version: r.info.horizon_version, offset: r.info.horizon_offset, crc: r.info.horizon_crc };
            }
        }
        let (r, _) = found.last().unwrap();
        st.entries_since_full = since;
        st.commits_since_full = commits;
        let mapping = self.mapping_covering(&mut st, r.end())?;
        self.publish(&st, r.end());
        st.latest = Arc::new(Version {
            number: r.h.version,
            page_size: r.h.page_size,
            map,
            commit_offset: r.offset,
            commit_crc: r.crc,
            end: r.end(),
            timestamp_us: r.info.timestamp_us,
            checksum,
            mapping,
        });
        Ok(st.latest.clone())
    }

    /// Called by a connection that just took the WRITER lock: refreshes, and
    /// removes what a crashed writer left past the end. Returns the latest.
    pub fn prepare_write(&self) -> Result<Arc<Version>> {
        if self.read_only {
            return Err(Error::ReadOnly { path: self.path.clone(), reason: "the log file is open read-only".into() });
        }
        let latest = self.refresh()?;
        let mut st = self.lock();
        // Bytes past the end (pre-allocated zeros, or debris of a crashed
        // writer) are overwritten by the next append; records there can never
        // chain onto a new commit, whose trailer crc they do not name.
        st.alloc_end = self.file_len()?;
        Ok(latest)
    }

    /// Starts a write transaction on `base` (which must be the latest).
    pub fn begin(&self, base: Arc<Version>, spill_limit: usize) -> WriteTxn {
        let alloc = self.lock().alloc_end;
        WriteTxn::new(base, spill_limit, alloc)
    }

    fn ensure_header(&self, st: &mut State, page_size: u32, durability: Durability) -> Result<u64> {
        if let Some(h) = st.header {
            return Ok(h.salt);
        }
        let h = Header { page_size, salt: random_u64(), created_us: now_us() };
        let mut buf = vec![0u8; format::FIRST_RECORD as usize];
        buf[..format::HEADER_SIZE].copy_from_slice(&h.encode());
        self.io.set_len(0).map_err(|e| Error::io(&self.path, "truncate", Some(0), e))?;
        self.io.write_at(&buf, 0).map_err(|e| Error::io(&self.path, "write header", Some(0), e))?;
        if durability != Durability::Off {
            self.io.sync().map_err(|e| Error::io(&self.path, "sync", None, e))?;
        }
        st.header = Some(h);
        st.mapping = Arc::new(
            Mapping::new(&self.file, &self.path, format::FIRST_RECORD, None)
                .map_err(|e| Error::io(&self.path, "mmap", None, e))?,
        );
        Ok(h.salt)
    }

    /// Writes `pages` as a SPILL record at `offset`; returns their slots.
    pub(crate) fn write_spill(
        &self,
        txn_base: &Version,
        offset: u64,
        page_size: u32,
        pages: &[(u32, &[u8])],
    ) -> Result<(u64, Vec<Slot>)> {
        let mut st = self.lock();
        let salt = self.ensure_header(&mut st, page_size, Durability::Full)?;
        let offset = offset.max(format::FIRST_RECORD);
        let lay = format::layout(offset, format::KIND_SPILL, 0, pages.len() as u32, page_size);
        let mut buf = vec![0u8; lay.length as usize];
        RecordHeader {
            kind: format::KIND_SPILL,
            flags: 0,
            length: lay.length,
            version: txn_base.number + 1,
            prev_commit: txn_base.commit_offset,
            prev_crc: txn_base.commit_crc,
            page_size,
            frames: pages.len() as u32,
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
    pub(crate) fn read_spilled(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.io.read_at(buf, offset).map_err(|e| Error::io(&self.path, "read spilled page", Some(offset), e))
    }

    /// Discards a transaction: removes its spill records from the file.
    pub fn rollback(&self, txn: WriteTxn) -> Result<()> {
        if txn.spill_end() > txn.base().end {
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
        let floor = if st.latest.number > 0 { st.latest.end } else { 0 };
        let alloc_before = alloc_before.max(floor);
        let start = st.latest.end;
        let zero_to = txn_end.min(alloc_before);
        let mut at = start;
        let zeros = vec![0u8; 1 << 20];
        while at < zero_to {
            let n = (zero_to - at).min(zeros.len() as u64) as usize;
            self.io.write_at(&zeros[..n], at).map_err(|e| Error::io(&self.path, "write", Some(at), e))?;
            at += n as u64;
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
    /// version is created). On error the log is left at the previous version.
    pub fn commit(&self, mut txn: WriteTxn, durability: Durability) -> Result<Option<Arc<Version>>> {
        if self.read_only {
            return Err(Error::ReadOnly { path: self.path.clone(), reason: "the log file is open read-only".into() });
        }
        txn.settle_page_size(self)?;
        let mut st = self.lock();
        let base = txn.base().clone();
        if st.latest.number != base.number {
            return Err(Error::Busy {
                path: self.path.clone(),
                reason: format!(
                    "transaction began on version {} but the log is at version {}",
                    base.number, st.latest.number
                ),
            });
        }
        let prepared = match self.prepare_commit(&mut st, &mut txn, durability) {
            Ok(Some(p)) => p,
            other => {
                // Nothing to commit, or it failed: leave nothing of this
                // transaction in the file.
                let end = self.file_len().unwrap_or(u64::MAX);
                let _ = self.discard(&mut st, end, txn.alloc_at_begin());
                return other.map(|_| None);
            }
        };
        // The writer lock keeps other writers out; `committing` keeps this
        // process's readers from picking up the record before it is done.
        st.committing = true;
        drop(st);
        let written = self.write_prepared(&prepared);
        let mut st = self.lock();
        st.committing = false;
        match written {
            Ok(alloc_end) => self.install(&mut st, prepared, alloc_end).map(Some),
            Err(e) => {
                let end = self.file_len().unwrap_or(u64::MAX);
                let _ = self.discard(&mut st, end.max(prepared.end), txn.alloc_at_begin());
                Err(e)
            }
        }
    }

    /// Works out the commit record of `txn` under the state lock: the
    /// changed pages, the page map, the checksum, and the record's bytes.
    /// Ok(None): the transaction changed nothing.
    fn prepare_commit(&self, st: &mut State, txn: &mut WriteTxn, durability: Durability) -> Result<Option<Prepared>> {
        let base = txn.base().clone();
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
        for (pgno, data) in txn.drain_pages(db_pages) {
            match data {
                Buf::Mem(v) => {
                    if same_ps && base.page(pgno)? == Some(&v[..]) {
                        continue;
                    }
                    changed.push((pgno, Src::Mem(inline.len())));
                    inline.push(v);
                }
                Buf::Spilled(slot) => {
                    if same_ps && base.map.get(pgno).map(|s| s.crc) == Some(slot.crc) {
                        let mut v = vec![0u8; page_size as usize];
                        if slot.offset != 0 {
                            self.read_spilled(slot.offset, &mut v)?;
                        }
                        if base.page(pgno)? == Some(&v[..]) {
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

        let salt = self.ensure_header(st, page_size, durability)?;
        let offset = txn.spill_end().max(format::FIRST_RECORD);
        let version = base.number + 1;
        let delta_pages = changed.len() as u64;
        let full = base.number == 0
            || !same_ps
            || st.entries_since_full + delta_pages > (db_pages as u64).max(FULL_MAP_MIN_ENTRIES)
            || st.commits_since_full + 1 >= (db_pages as u64 / FULL_MAP_PAGES_PER_COMMIT).max(FULL_MAP_MIN_COMMITS);
        let n_entries = if full { db_pages } else { changed.len() as u32 };
        let lay = format::layout(offset, format::KIND_COMMIT, n_entries, inline.len() as u32, page_size);

        // Slots of the changed pages, and the new checksum.
        let mut new_slots: Vec<(u32, Slot)> = Vec::with_capacity(changed.len());
        for (pgno, src) in &changed {
            let slot = match src {
                Src::Mem(i) => Slot {
                    offset: offset + lay.payload_start + *i as u64 * page_size as u64,
                    crc: format::frame_crc(&inline[*i]),
                },
                Src::At(s) => *s,
            };
            new_slots.push((*pgno, slot));
        }
        let mut map = if same_ps { base.map.clone() } else { PageMap::new() };
        let mut checksum = if same_ps { base.checksum } else { 0 };
        if same_ps {
            for p in (db_pages + 1)..=base.db_pages() {
                let s = base.map.get(p).unwrap();
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
            frames: inline.len() as u32,
        }
        .encode(salt, &mut buf);
        info.encode(&mut buf[format::RECORD_HEADER_SIZE..]);
        let eb = format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE;
        for (i, e) in entries.iter().enumerate() {
            e.encode(&mut buf[eb + i * format::ENTRY_SIZE..]);
        }
        for (i, data) in inline.iter().enumerate() {
            let at = lay.payload_start as usize + i * page_size as usize;
            buf[at..at + page_size as usize].copy_from_slice(data);
        }
        let (meta, rest) = buf.split_at_mut(lay.payload_start as usize);
        let tl = rest.len();
        format::encode_trailer(salt, offset, meta, &mut rest[tl - format::TRAILER_SIZE..]);
        let commit_crc = format::trailer_crc(&rest[tl - format::TRAILER_SIZE..]);
        let link = Link { version, offset, crc: commit_crc };

        let end = offset + lay.length;
        let sync = match durability {
            Durability::Full => true,
            Durability::Normal => st.last_sync.elapsed() >= NORMAL_SYNC_INTERVAL,
            Durability::Off => false,
        };
        Ok(Some(Prepared {
            buf,
            offset,
            end,
            link,
            full,
            n_entries,
            new_slots,
            map,
            checksum,
            timestamp_us: info.timestamp_us,
            page_size,
            alloc_end: st.alloc_end,
            sync,
            durability,
        }))
    }

    /// Writes a prepared commit (and pre-allocated space), and syncs it if
    /// it must: the I/O, done without the state lock so that other
    /// connections of this process can go on reading. Returns the new
    /// length of pre-allocated space.
    fn write_prepared(&self, p: &Prepared) -> Result<u64> {
        let mut alloc_end = p.alloc_end.max(p.end);
        if p.end > p.alloc_end && !self.append_only {
            // Pre-allocate: zeros written (and synced with this commit) now
            // make the syncs of the next commits cheaper, as they no longer
            // change the file's size. Recovery skips zeros past the end.
            // They go first: if they cannot be written, nothing of the
            // commit is in the file yet.
            // When the disk cannot hold them, the commit goes on without:
            // pre-allocation must never be why a commit that fits fails.
            let chunk = (p.end / 8).clamp(PREALLOC_MIN, PREALLOC_MAX).next_multiple_of(4096);
            let zeros = vec![0u8; chunk as usize];
            match self.io.write_at(&zeros, p.end) {
                Ok(()) => alloc_end = p.end + chunk,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) => {
                    let keep = p.alloc_end.max(p.offset);
                    self.io.set_len(keep).map_err(|e| Error::io(&self.path, "truncate", Some(keep), e))?;
                }
                Err(e) => return Err(Error::io(&self.path, "write", Some(p.end), e)),
            }
        }
        self.io.write_at(&p.buf, p.offset).map_err(|e| Error::io(&self.path, "write commit", Some(p.offset), e))?;
        if p.sync {
            self.io.sync().map_err(|e| Error::io(&self.path, "sync", None, e))?;
        }
        Ok(alloc_end)
    }

    /// Makes a written commit the latest version of this process's view.
    fn install(&self, st: &mut State, p: Prepared, alloc_end: u64) -> Result<Arc<Version>> {
        st.alloc_end = st.alloc_end.max(alloc_end);
        if p.sync {
            st.last_sync = Instant::now();
            st.unsynced = false;
            st.horizon = p.link;
        } else {
            st.unsynced = p.durability == Durability::Normal;
            if p.durability == Durability::Off {
                st.horizon = p.link;
            }
        }
        if p.full {
            st.full_map_offset = p.offset;
            st.entries_since_full = 0;
            st.commits_since_full = 0;
        } else {
            st.entries_since_full += p.n_entries as u64;
            st.commits_since_full += 1;
        }
        let mapping = self.mapping_covering(st, p.end)?;
        self.publish(st, p.end);
        for (_, slot) in &p.new_slots {
            if slot.offset >= p.offset {
                mapping.mark_verified(slot.offset, slot.crc); // written by us just now
            }
        }
        st.latest = Arc::new(Version {
            number: p.link.version,
            page_size: p.page_size,
            map: p.map,
            commit_offset: p.offset,
            commit_crc: p.link.crc,
            end: p.end,
            timestamp_us: p.timestamp_us,
            checksum: p.checksum,
            mapping,
        });
        Ok(st.latest.clone())
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
    /// page maps and one new page: unchanged pages reference version `to`'s
    /// frames. Page 1's file change counter and schema cookie become larger
    /// than any value before, so connections that cached pages or schema
    /// notice the change. Ok(None) when `to` is already the latest.
    pub fn revert(&self, to: u64, timeout: Duration) -> Result<Option<Arc<Version>>> {
        let _w = self.lock_writer(timeout)?;
        let latest = self.prepare_write()?;
        let target = self.version(to)?;
        if target.number == latest.number {
            return Ok(None);
        }
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
            txn.become_version(&target, page1.into());
        }
        self.commit(txn, Durability::Full)
    }

    /// Syncs the log if commits made under `Durability::Normal` are not yet
    /// durable (called when the last connection closes).
    pub fn sync_pending(&self) -> Result<()> {
        let mut st = self.lock();
        if st.unsynced {
            self.io.sync().map_err(|e| Error::io(&self.path, "sync", None, e))?;
            st.unsynced = false;
            st.last_sync = Instant::now();
            st.horizon = Link { version: st.latest.number, offset: st.latest.commit_offset, crc: st.latest.commit_crc };
        }
        Ok(())
    }
}

/// A commit worked out under the state lock, to be written without it.
struct Prepared {
    buf: Vec<u8>,
    offset: u64,
    end: u64,
    link: Link,
    full: bool,
    n_entries: u32,
    new_slots: Vec<(u32, Slot)>,
    map: PageMap,
    checksum: u64,
    timestamp_us: u64,
    page_size: u32,
    alloc_end: u64,
    sync: bool,
    durability: Durability,
}

/// Test hooks: reads and writes of the log at a path go through the
/// `LogFile` registered for it.
type IoHooks = Mutex<Vec<(PathBuf, Arc<dyn LogFile>)>>;
static IO_HOOKS: IoHooks = Mutex::new(Vec::new());

/// For tests that simulate power loss through SQLite: from now on, the log
/// the VFS opens at `path` does its I/O through `io` (None: through the real
/// file again). Each path has its own hook, so simulations can run in
/// parallel threads. Not for production use.
#[doc(hidden)]
pub fn set_io_hook(path: &Path, io: Option<Arc<dyn LogFile>>) {
    let mut hooks = IO_HOOKS.lock().unwrap_or_else(|p| p.into_inner());
    hooks.retain(|(p, _)| p != path);
    if let Some(io) = io {
        hooks.push((path.to_path_buf(), io));
    }
}

fn io_hook(path: &Path) -> Option<Arc<dyn LogFile>> {
    let hooks = IO_HOOKS.lock().unwrap_or_else(|p| p.into_inner());
    hooks.iter().find(|(p, _)| p == path).map(|(_, io)| io.clone())
}

/// Process-wide registry: one `Log` per file (by device and inode), shared
/// by all connections of the process.
pub(crate) fn shared_log(path: &Path, opts: OpenOptions) -> Result<Arc<Log>> {
    use std::os::unix::fs::MetadataExt;
    use std::sync::{OnceLock, Weak};
    type Registry = Mutex<HashMap<(u64, u64), Weak<Log>>>;
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let reg = REGISTRY.get_or_init(Default::default);
    let mut reg = reg.lock().unwrap_or_else(|p| p.into_inner());
    reg.retain(|_, w| w.strong_count() > 0);
    if let Ok(md) = std::fs::metadata(path) {
        if let Some(log) = reg.get(&(md.dev(), md.ino())).and_then(|w| w.upgrade()) {
            if log.read_only && !opts.read_only {
                // fall through: open a writable instance of its own
            } else {
                return Ok(log);
            }
        }
    }
    let io = io_hook(path);
    let log = Arc::new(match io {
        Some(io) => Log::open_with_io(path, opts, io)?,
        None => Log::open(path, opts)?,
    });
    let md = log.file.metadata().map_err(|e| Error::io(path, "stat", None, e))?;
    reg.insert((md.dev(), md.ino()), Arc::downgrade(&log));
    Ok(log)
}

impl Drop for Log {
    fn drop(&mut self) {
        // Commits made under synchronous=NORMAL become durable when the last
        // connection of the process closes the log.
        let _ = self.sync_pending();
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
    }
}

#[cfg(test)]
mod tests {
    use super::last_nonzero;

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

    #[test]
    fn last_nonzero_finds_the_last_nonzero_byte() {
        assert_eq!(last_nonzero(&[]), None);
        assert_eq!(last_nonzero(&[0; 100]), None);
        assert_eq!(last_nonzero(&[0; 3 * 4096 + 5]), None);
        for len in [1usize, 7, 8, 9, 64, 100, 4095, 4096, 4097, 3 * 4096 + 5] {
            let near_edges = |at: &usize| len < 200 || at % 4096 < 2 || at % 4096 > 4093 || at % 61 == 0;
            for at in (0..len).filter(near_edges) {
                let mut b = vec![0u8; len];
                b[at] = 1;
                if at > 0 {
                    b[0] = 2;
                }
                assert_eq!(last_nonzero(&b), Some(at), "len {len} at {at}");
            }
        }
    }
}
