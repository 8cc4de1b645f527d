//! Recovery: opening a log file and finding its latest version, following
//! the commits other processes append, and reading any older version.
//!
//! The rules are FORMAT.md's "Recovery" section; this file follows them step
//! by step.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{self, CommitInfo, Entry, Header, HeaderError, RecordHeader};
use crate::log::{Link, Log, OpenOptions, Rec, State};
use crate::pagemap::PageMap;
use crate::storage::LogFile;
use crate::version::{Mapping, Version};

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
}

#[cfg(test)]
mod tests {
    use super::last_nonzero;

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
