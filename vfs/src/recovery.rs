//! Recovery: opening a log file and finding its latest version, following
//! the commits other processes append, and reading any older version.
//!
//! The rules are FORMAT.md's "Recovery" section; this file follows them step
//! by step. Reading and checking one record is `record.rs`.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{self, Entry};
use crate::group::{Pend, ReadCommit};
use crate::log::{Link, Log, OpenOptions, Rec, State};

/// One commit a forward walk passed: its record and entries, where its
/// transaction's records start, and the log end after it (past the MARK
/// that follows it, if one does).
pub(crate) struct Walk {
    pub(crate) rec: Rec,
    pub(crate) entries: Vec<Entry>,
    pub(crate) txn_start: u64,
    pub(crate) log_end: u64,
}

/// What [`Log::scan_forward`] found.
pub(crate) struct Walked {
    /// The valid commits after the start, in order.
    pub(crate) commits: Vec<Walk>,
    /// Where the next record goes.
    pub(crate) log_end: u64,
    /// The newest commit known durable: the start's claim, raised by every
    /// MARK and horizon the walked records carry.
    pub(crate) durable: Link,
    /// The last CONTROL record the walk passed (format 4): part of the log,
    /// so the log end is past it.
    pub(crate) control: Option<Rec>,
}
use crate::control::Control;
use crate::index::TreeMap;
use crate::pagemap::PageMap;
use crate::storage::LogFile;
use crate::version::{Mapping, Pages, Version};

/// The map after commit `r` (whose entries are `entries`) when `map` was its
/// predecessor's: a full map or a checkpoint replaces it, a delta is
/// applied to it (format 4: to the overlay; the tree's nodes are read
/// through `mapping` when looked up).
pub(crate) fn advance(map: &mut Pages, r: &Rec, entries: &[Entry], mapping: &Arc<Mapping>) {
    if r.is_checkpoint() {
        let root = crate::tree::Root { offset: r.ckpt.root, crc: r.ckpt.root_crc, depth: r.ckpt.depth };
        *map = Pages::Tree(TreeMap::checkpoint(r.info.db_pages, Some(root), r.offset, r.crc, mapping.clone(), r.end()));
        return;
    }
    // A summary naming the checkpoint this map is built on starts the map
    // again from it (FORMAT.md, "A summary met on the path"); any other is
    // a delta (the same map on an undamaged log).
    if r.is_summary() {
        if let Pages::Tree(t) = map {
            if (t.checkpoint, t.ckpt_crc) == (r.sum.checkpoint, r.sum.checkpoint_crc) {
                let commits = t.commits + 1;
                t.summary(r.info.db_pages, entries, commits, r.offset, mapping.clone(), r.end());
                return;
            }
        }
    }
    if r.is_full() {
        *map = Pages::Full(PageMap::new());
    }
    match map {
        Pages::Full(m) => m.apply(r.info.db_pages, entries),
        Pages::Tree(t) => t.apply(r.info.db_pages, entries, mapping.clone(), r.end()),
    }
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
            if st.header.is_some() {
                log.attach_shm(&mut st);
            }
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
            if st.header.is_some() {
                log.attach_shm(&mut st);
            }
        }
        Ok(log)
    }

    /// FORMAT.md recovery step 3: walks forward from `pos`, the log end just
    /// after commit `prev` (whose COMMIT record ends at `prev_end`), record
    /// by record, while each record follows the last commit exactly. Every
    /// record's structure is checked; the frames of the commits the walked
    /// records do not claim durable are checked too, and the walk ends
    /// before the first such commit whose frames are not all there.
    /// `durable` is the newest commit known durable before the walk.
    /// `whole`: an end below which the write of every record returned (the
    /// shared `appended` and `synced` words, `shm.rs`; 0 when there are
    /// none, as in recovery): commits ending at or below it are not
    /// frame-checked either (below).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn scan_forward(
        &self,
        salt: u64,
        len: u64,
        mut pos: u64,
        from: (Link, u32),
        prev_end: u64,
        durable: Link,
        whole: u64,
    ) -> Result<Walked> {
        // The commit the walk follows, and its page size (0: none).
        let (mut prev, mut prev_ps) = from;
        let mut w = Walked { commits: Vec::new(), log_end: pos, durable, control: None };
        let mut controls: Vec<Rec> = Vec::new();
        let start = prev;
        let mut commit_end = prev_end;
        let mut txn_start = pos;
        // The INDEX record the walk passed since the last commit.
        let mut index: Option<(u64, u32)> = None;
        while let Some(rec) = self.read_record(salt, pos, len)? {
            if rec.h.kind == format::KIND_MARK {
                // A MARK follows the commit it names directly, once.
                if prev.offset == 0 || pos != commit_end || rec.prev_link() != prev {
                    break;
                }
                if prev.version > w.durable.version {
                    w.durable = prev;
                }
                pos = rec.end();
                txn_start = pos;
                w.log_end = pos;
                if let Some(c) = w.commits.last_mut() {
                    c.log_end = pos;
                }
                continue;
            }
            // The first commit of a file may carry any version (a compacted
            // log starts where its oldest kept version is); it must then be a
            // full map.
            let first = prev.offset == 0;
            let version_ok =
                if first { rec.h.version >= 1 } else { Some(rec.h.version) == prev.version.checked_add(1) };
            if !version_ok
                || rec.h.prev_commit != prev.offset
                || rec.h.prev_crc != prev.crc
                || (first && rec.is_commit() && !rec.is_map())
            {
                break;
            }
            if rec.is_control() {
                // Part of the log (format 4): the next record goes after it.
                // One written after a sync claims the commit it follows
                // durable, and a later transaction's records start after
                // it; one without the claim is a copy inside a checkpoint's
                // (or full map's) transaction, whose spills and INDEX record
                // came before it.
                let claim = rec.h.flags & format::FLAG_CLAIM != 0;
                if claim && prev.offset != 0 && prev.version > w.durable.version {
                    w.durable = prev;
                }
                pos = rec.end();
                // A copy moves the end only with its commit: a later walk
                // from here would not know the transaction it belongs to,
                // and would refuse the checkpoint that names it for ever (a
                // reader stuck on an old epoch while steps free its pages).
                if claim {
                    txn_start = pos;
                    w.log_end = pos;
                    if let Some(c) = w.commits.last_mut() {
                        c.log_end = pos;
                    }
                }
                controls.push(rec);
                continue;
            }
            if !rec.is_commit() {
                if rec.is_index() {
                    index = Some((rec.offset, rec.crc));
                }
                pos = rec.end();
                continue;
            }
            if rec.info.db_pages as u64 > format::max_db_pages(len) {
                break;
            }
            // A checkpoint names the INDEX and CONTROL records of its own
            // transaction, which the walk just passed (format 4).
            if rec.is_checkpoint() {
                let named_index = (rec.ckpt.index != 0).then_some((rec.ckpt.index, rec.ckpt.index_crc));
                let named_control = Some((rec.ckpt.control, rec.ckpt.control_crc));
                let passed_control = controls.last().filter(|c| c.end() == rec.offset).map(|c| (c.offset, c.crc));
                if named_index.is_some_and(|n| Some(n) != index) || named_control != passed_control {
                    break;
                }
            }
            index = None;
            // A delta keeps its predecessor's page size (its map is made of
            // the predecessor's frames): one that does not is not valid.
            if !rec.is_map() && prev.offset != 0 && rec.h.page_size != prev_ps {
                break;
            }
            let entries = self.read_entries(&rec)?;
            if self.check_commit(&rec, &entries, u64::MAX)?.is_some() {
                break;
            }
            let claim = if rec.h.flags & format::FLAG_SEALED != 0 { rec.link() } else { rec.horizon() };
            // A horizon names an earlier commit; one naming a later version
            // than its own is not taken (verify reports it).
            if claim != Link::default() && claim.version <= rec.h.version {
                // A claim at or after the commit the walk started from must
                // name exactly that commit, this one or one the walk passed:
                // a claim of durability that names no such commit is damage,
                // never a reason to trust (or drop) what follows. (Claims of
                // older commits name history this walk did not read.)
                if claim.version >= start.version {
                    let named = if claim.version == rec.h.version {
                        rec.link()
                    } else if claim.version == start.version {
                        start
                    } else {
                        let i = w.commits.first().map_or(u64::MAX, |c| claim.version.wrapping_sub(c.rec.h.version));
                        w.commits.get(i as usize).map_or(Link::default(), |c| c.rec.link())
                    };
                    if named != claim {
                        return Err(self.corrupt(
                            claim.offset,
                            format!(
                                "the commit of version {} (crc {:#010x}), which the record at {} says was made durable",
                                claim.version, claim.crc, rec.offset
                            ),
                            "no such commit: committed history is damaged",
                        ));
                    }
                }
                if claim.version > w.durable.version {
                    w.durable = claim;
                }
            }
            prev = rec.link();
            prev_ps = rec.h.page_size;
            pos = rec.end();
            commit_end = pos;
            w.commits.push(Walk { rec, entries, txn_start, log_end: pos });
            txn_start = pos;
            w.log_end = pos;
        }
        // Commits claimed durable are not re-read: their frames are checked
        // on first read. The others may be an unfinished transaction.
        //
        // Nor are commits ending at or below `whole` (a refresh beside group
        // commit: issue 23, where every process walked every other writer's
        // commit right after its append and crc'd its frames). The check
        // exists for two cases (FORMAT.md, "Recovery" step 4 and "Readers
        // beside a writer"): a transaction a crash or power loss cut short,
        // and a record whose metadata is whole while its frames are still
        // being written. Neither can end below `whole`:
        // * `appended` is raised only after the write of the commit record
        //   (and of every record of its transaction before it, all under
        //   WRITER, in order) returned, never for a write that failed or a
        //   commit removed again (`commit.rs`, `append_commit`), so every
        //   byte below it is in the page cache, which every read (pread or
        //   the map) sees whole; a process killed mid-write never raised
        //   it. Its not being synced yet is `visible`'s business (such a
        //   commit stays pending, `group.rs`), not the frame check's.
        // * `synced` is raised only after a sync that began after those
        //   writes returned (`group.rs` invariant 1): the same, and durable,
        //   which is what a MARK claims.
        // So such a commit is taken as a claimed one is: its frames are
        // checked on first read, and a damaged one is damage, never a write
        // in progress. The words say nothing after a power loss (the object
        // is in tmpfs, and a first user resets it from the log, `shm.rs`
        // invariants 1 and 3), so recovery passes 0. The claim itself
        // (`durable`, this process's horizon) is not raised here: this
        // process did not read it from a record.
        let unchecked = w.commits.iter().position(|c| c.rec.h.version > w.durable.version && c.rec.end() > whole);
        if let Some(first) = unchecked {
            for i in first..w.commits.len() {
                let c = &w.commits[i];
                if self.check_unclaimed_commit(&c.rec, &c.entries, c.txn_start)?.is_some() {
                    w.log_end = if i == 0 { w.commits[0].txn_start } else { w.commits[i - 1].log_end };
                    w.commits.truncate(i);
                    break;
                }
            }
        }
        // The last CONTROL record the kept log holds: one written after a
        // sync (CLAIM), or the copy a kept checkpoint's (or full map's)
        // transaction carries right before its commit. A copy whose commit
        // was cut off above, or never written (a log whose first
        // transaction was torn has no control state), is not part of it.
        let kept = |c: &Rec| c.h.flags & format::FLAG_CLAIM != 0 || w.commits.iter().any(|k| k.rec.offset == c.end());
        w.control = controls.into_iter().rfind(|c| c.end() <= w.log_end && kept(c));
        Ok(w)
    }

    /// Recovers the log into `st`; on failure `st` stays unrecovered (no
    /// header), so the next `refresh` tries again instead of walking on from
    /// a half-built state.
    fn recover(&self, st: &mut State) -> Result<()> {
        self.recover_below(st, u64::MAX)
    }

    /// [`Log::recover`] of the log's first `cap` bytes only (`group.rs`:
    /// a view that must not take commits past the visible end).
    pub(crate) fn recover_below(&self, st: &mut State, cap: u64) -> Result<()> {
        let r = self.recover_into(st, cap);
        if r.is_err() {
            st.header = None;
            st.log_end = format::FIRST_RECORD;
            st.horizon = Link::default();
        }
        r
    }

    /// Recovery proper: from the commit the last record claims durable.
    /// (Reading what a damaged log still holds is `salvage`'s.)
    fn recover_into(&self, st: &mut State, cap: u64) -> Result<()> {
        let file_len = self.file_len()?;
        let len = file_len.min(cap);
        st.alloc_end = file_len;
        st.alloc_exact = len == file_len;
        let Some(header) = self.read_header(len)? else { return Ok(()) };
        if len < format::FIRST_RECORD {
            // Header written, padding not (a crash during creation): empty.
            return Ok(());
        }
        st.header = Some(header);
        st.log_end = format::FIRST_RECORD;
        let salt = header.salt;
        let mapping = Arc::new(
            Mapping::new(&self.file, &self.path, len, Some(&st.mapping))
                .map_err(|e| Error::io(&self.path, "mmap", None, e))?,
        );
        st.mapping = mapping;
        let start = self.durable_start(salt, len)?;
        let (prev, ps, pos) = match &start {
            Some(r) => (r.link(), r.h.page_size, r.end()),
            None => (Link::default(), 0, format::FIRST_RECORD),
        };
        let w = self.scan_forward(salt, len, pos, (prev, ps), pos, prev, 0)?;
        let log_end = w.log_end;
        let durable = w.durable;
        let walked_control = w.control;
        let r = match w.commits.into_iter().next_back().map(|c| c.rec).or(start) {
            Some(latest) => self.load_version(st, salt, len, &latest, log_end, durable, walked_control),
            None => Ok(()),
        };
        // What recovery read out of the map (the last records, a checkpoint's
        // CONTROL and INDEX records, the walk) leaves the process's RSS: each
        // page touched maps the page-cache folio around it, and SQLite's
        // reads after the open go through pread, so a long-lived reader
        // would keep them for nothing (issue 21). One call over the whole
        // map; its untouched stretches cost nothing.
        st.mapping.give_back(0, st.mapping.cap);
        r
    }

    /// FORMAT.md recovery step 2: the commit that the last well-formed
    /// record of the file claims durable (None: version 0). A MARK claims
    /// the commit it names, a COMMIT its horizon (a SEALED one itself), a
    /// SPILL what the commit it follows claims; a SPILL that follows no
    /// commit is debris of a crash or rollback, and the search goes on
    /// before it. A claimed commit that is not there is damage: the record
    /// was written after that commit was synced.
    fn durable_start(&self, salt: u64, len: u64) -> Result<Option<Rec>> {
        let mut below = len;
        loop {
            let Some(last) = self.find_last_record(salt, len, below)? else { return Ok(None) };
            // A SPILL (or INDEX, or CONTROL copy) as the last record: the
            // commit it names claims its horizon. Such a record may be the
            // debris of a transaction that never committed, left past the
            // end and partly overwritten by later commits: it may name an
            // old commit whose horizon a step has freed since (format 4).
            let mut named_by_debris = false;
            let (claim, by) = match last.h.kind {
                format::KIND_MARK => (last.prev_link(), last.offset),
                format::KIND_CONTROL if last.h.flags & format::FLAG_CLAIM != 0 => (last.prev_link(), last.offset),
                format::KIND_COMMIT if last.h.flags & format::FLAG_SEALED != 0 => return Ok(Some(last)),
                format::KIND_COMMIT => (last.horizon(), last.offset),
                _ if last.h.prev_commit == 0 => return Ok(None),
                _ => match self.read_record(salt, last.h.prev_commit, len)? {
                    Some(p) if p.is_commit() && p.link() == last.prev_link() => {
                        // A MARK right after it (the SPILL came later) claims it.
                        let marked = match self.read_record(salt, p.end(), len)? {
                            Some(m) => m.h.kind == format::KIND_MARK && m.prev_link() == p.link(),
                            None => false,
                        };
                        if marked || p.h.flags & format::FLAG_SEALED != 0 {
                            return Ok(Some(p));
                        }
                        named_by_debris = true;
                        (p.horizon(), p.offset)
                    }
                    _ => {
                        below = last.offset;
                        continue;
                    }
                },
            };
            // No claim is (0, 0, 0). A claim of a version at offset 0, or of
            // version 0 at another offset, names no commit: the read below
            // finds none there, and that is damage.
            if claim == Link::default() {
                return Ok(None);
            }
            return match self.read_record(salt, claim.offset, len)? {
                Some(r) if r.is_commit() && r.link() == claim => Ok(Some(r)),
                // Look further back (the record before it says what the
                // log claims; damage there is still found and named).
                _ if named_by_debris && self.format() >= format::FORMAT_V4 => {
                    below = last.offset;
                    continue;
                }
                _ => Err(self.corrupt(
                    claim.offset,
                    format!(
                        "the commit of version {} (crc {:#010x}), which the record at {by} says was made durable",
                        claim.version, claim.crc
                    ),
                    "no such commit: committed history is damaged",
                )),
            };
        }
    }

    /// Builds the page map of commit `rec` whole in memory, from its last
    /// full map plus the deltas after it (format 4: its checkpoint's tree
    /// walked, plus the overlay: O(database pages), for the reclaimer).
    /// Also returns the delta entries and commits since that full map.
    /// `control`: the log's control state (its straggler table relocates
    /// nodes below the boundary).
    pub(crate) fn build_map(&self, salt: u64, len: u64, rec: &Rec, control: &Control) -> Result<(PageMap, u64, u64)> {
        let mapping = self.committed.lock().unwrap_or_else(|p| p.into_inner()).0.clone();
        let ((map, since, commits), _) = self.build_map_and_control(salt, len, rec, &mapping)?;
        Ok((map.to_page_map(control, &mapping)?, since, commits))
    }

    /// [`Log::build_map`], and the newest CONTROL record (format 4) among
    /// the one right before the full map's commit and those after it, up to
    /// `rec`: the control state as of `rec` (None: the log has none yet).
    /// Format 4: the version's map is its checkpoint's tree, read where it
    /// lies through `mapping` (which covers `rec`), and an overlay.
    pub(crate) fn build_map_and_control(
        &self,
        salt: u64,
        len: u64,
        rec: &Rec,
        mapping: &Arc<Mapping>,
    ) -> Result<((Pages, u64, u64), Option<Rec>)> {
        let fo = rec.info.full_map_offset;
        // The map commit the walk starts from: a summary is its own
        // (FORMAT.md, "Step 5, from a summary").
        let named = if rec.is_summary() { Some(rec.clone()) } else { self.read_record(salt, fo, len)? };
        let mut map = Pages::default();
        let (full, mut control) = match named {
            Some(s) if s.is_summary() && s.h.version <= rec.h.version && s.offset <= rec.offset => {
                match self.summary_start(salt, len, &s, mapping)? {
                    Ok((m, c)) => {
                        map = m;
                        (s, Some(c))
                    }
                    // A summary whose links do not check out: the map is
                    // built from the checkpoint its chain names, through it.
                    Err(ck) => {
                        let entries = self.read_entries(&ck)?;
                        self.check_map_structure(&ck, &entries, len)?;
                        advance(&mut map, &ck, &entries, mapping);
                        let c = self.control_before(salt, len, &ck)?;
                        (ck, c)
                    }
                }
            }
            Some(r) if r.is_commit() && r.is_map() && r.h.version <= rec.h.version => {
                let entries = self.read_entries(&r)?;
                self.check_map_structure(&r, &entries, len)?;
                advance(&mut map, &r, &entries, mapping);
                let c = self.control_before(salt, len, &r)?;
                (r, c)
            }
            _ => {
                return Err(self.corrupt(
                    fo,
                    format!("full page map (named by commit {} at {})", rec.h.version, rec.offset),
                    "no valid full-map commit",
                ))
            }
        };
        let mut since = 0u64;
        let mut commits = 0u64;
        let mut pos = full.end();
        let mut last = full.clone();
        let mut pending: Option<Rec> = None;
        // The log read for the map leaves the RSS as the walk goes
        // (`overlay::release_read`), from the full map's record on: in
        // format 3 that record holds an entry per page (4 MiB at 1 GiB) and
        // the walk up to 2,048 commits, all of it mapped page by page (issue
        // 21: 14 MiB of a format-3 reader's RSS at 1 GiB). Nothing keeps a
        // slice of it: records are copied out (`Log::read_vec`).
        let mut released = full.offset;
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
                if !r.is_map() && r.h.page_size != last.h.page_size {
                    // Its map is its predecessor's frames, of that size.
                    return Err(self.corrupt(
                        pos + format::RH_PAGE_SIZE as u64,
                        format!("page size {} (a delta keeps its predecessor's)", last.h.page_size),
                        r.h.page_size.to_string(),
                    ));
                }
                let entries = self.read_entries(&r)?;
                self.check_map_structure(&r, &entries, len)?;
                if r.is_map() {
                    since = 0;
                    commits = 0;
                } else {
                    since += entries.len() as u64;
                    commits += 1;
                }
                advance(&mut map, &r, &entries, mapping);
                last = r.clone();
            }
            // A CONTROL copy counts once the commit of its transaction
            // follows it (a torn transaction's copy does not).
            if r.is_commit() && pending.as_ref().is_some_and(|c: &Rec| c.end() == r.offset) {
                control = pending.take();
            }
            if r.is_control() {
                if r.h.flags & format::FLAG_CLAIM != 0 {
                    control = Some(r.clone());
                } else {
                    pending = Some(r.clone());
                }
            }
            pos = r.end();
            released = crate::overlay::release_read(mapping, released, pos);
        }
        crate::overlay::release_rest(mapping, released, pos);
        Ok(((map, since, commits), control))
    }

    /// The map and control state of summary `s` (FORMAT.md, "Step 5, from
    /// a summary"): its checkpoint's tree with its entries, and the CONTROL
    /// record it names, once [`Log::summary_links`] check out. Err: they do
    /// not, and the checkpoint its chain names, to build the map from
    /// instead (through the summary); no such checkpoint is damage at `s`.
    #[allow(clippy::type_complexity)]
    fn summary_start(
        &self,
        salt: u64,
        len: u64,
        s: &Rec,
        mapping: &Arc<Mapping>,
    ) -> Result<std::result::Result<(Pages, Rec), Rec>> {
        let links = self.summary_links(salt, len, s)?;
        // The links were read through the map, between the checkpoint (its
        // CONTROL record before it) and the summary, far from where the
        // walk goes on: each page fault there mapped the page cache around
        // it (~200 KiB), which the walk's own giving back (`overlay::
        // release_read`, from the summary on) does not reach. Given back
        // now, as the walk from a checkpoint did (issue 21: the open's peak
        // RSS).
        mapping.give_back(s.sum.checkpoint.min(s.offset).saturating_sub(256 << 10), s.offset);
        match links {
            Ok((c, k)) => {
                let entries = self.read_entries(s)?;
                self.check_map_structure(s, &entries, len)?;
                let mut map = Pages::default();
                advance(&mut map, &c, &[], mapping);
                if let Pages::Tree(t) = &mut map {
                    t.summary(s.info.db_pages, &entries, s.h.version - c.h.version, s.offset, mapping.clone(), s.end());
                }
                Ok(Ok((map, k)))
            }
            Err(Some(ck)) => Ok(Err(ck)),
            Err(None) => Err(self.corrupt(
                s.offset,
                format!(
                    "a summary (version {}) naming its chain's checkpoint and a CONTROL record after it",
                    s.h.version
                ),
                format!(
                    "checkpoint {} (crc {:#010x}), control {} (crc {:#010x})",
                    s.sum.checkpoint, s.sum.checkpoint_crc, s.sum.control, s.sum.control_crc
                ),
            )),
        }
    }

    /// Summary `s`'s links (FORMAT.md, "Step 5, from a summary", 1–3): Ok
    /// with its checkpoint and the CONTROL record it names when they check
    /// out and the checkpoint is its chain's; else Err with the checkpoint
    /// its chain names (from the commit before it), if that is one.
    #[allow(clippy::type_complexity)]
    pub(crate) fn summary_links(
        &self,
        salt: u64,
        len: u64,
        s: &Rec,
    ) -> Result<std::result::Result<(Rec, Rec), Option<Rec>>> {
        let sum = s.sum;
        let ck = self
            .read_record(salt, sum.checkpoint, len)?
            .filter(|c| c.is_checkpoint() && c.crc == sum.checkpoint_crc && c.h.version < s.h.version);
        let control = match &ck {
            Some(c) => self
                .read_record(salt, sum.control, len)?
                .filter(|k| k.is_control() && k.crc == sum.control_crc && k.offset >= c.ckpt.control),
            None => None,
        };
        // The commit before it, and the checkpoint its chain leads to.
        let prev = self
            .read_record(salt, s.h.prev_commit, len)?
            .filter(|p| p.is_commit() && p.crc == s.h.prev_crc && p.h.version.checked_add(1) == Some(s.h.version));
        let chain = match &prev {
            Some(p) if p.is_checkpoint() => Some((p.offset, p.crc)),
            Some(p) => match self.read_record(salt, p.info.full_map_offset, len)? {
                Some(m) if m.is_checkpoint() && m.offset < p.offset => Some((m.offset, m.crc)),
                Some(m) if m.is_summary() && m.offset < p.offset => Some((m.sum.checkpoint, m.sum.checkpoint_crc)),
                _ => None,
            },
            None => None,
        };
        if let (Some(c), Some(k)) = (&ck, control) {
            if chain == Some((c.offset, c.crc)) {
                return Ok(Ok((c.clone(), k)));
            }
        }
        let fallback = match chain {
            Some((at, crc)) => self
                .read_record(salt, at, len)?
                .filter(|c| c.is_checkpoint() && c.crc == crc && c.h.version < s.h.version && c.offset < s.offset),
            None => None,
        };
        Ok(Err(fallback))
    }

    /// The CONTROL record that ends right where commit `c` starts and
    /// follows the same commit (format 4 writes one before every full map,
    /// in the same transaction). None before format 4.
    fn control_before(&self, salt: u64, len: u64, c: &Rec) -> Result<Option<Rec>> {
        if self.format() < format::FORMAT_V4 || !c.is_map() {
            return Ok(None);
        }
        let t = c.offset.saturating_sub(format::TRAILER_SIZE as u64);
        if t < format::FIRST_RECORD {
            return Err(self.corrupt(c.offset, "the CONTROL record of this full map's transaction", "none"));
        }
        let ro = format::trailer_record_offset(&self.read_vec(t, format::TRAILER_SIZE)?);
        match self.read_record(salt, ro, len)? {
            Some(r)
                if r.is_control()
                    && r.end() == c.offset
                    && r.prev_link() == c.prev_link()
                    && (!c.is_checkpoint() || (r.offset, r.crc) == (c.ckpt.control, c.ckpt.control_crc)) =>
            {
                Ok(Some(r))
            }
            _ => Err(self.corrupt(
                c.offset,
                "the CONTROL record of this full map's transaction right before it (format 4)",
                "none",
            )),
        }
    }

    /// Installs commit `rec` as the latest version; the log goes on to
    /// `log_end`, and `durable` is the newest commit known durable.
    #[allow(clippy::too_many_arguments)]
    fn load_version(
        &self,
        st: &mut State,
        salt: u64,
        len: u64,
        rec: &Rec,
        log_end: u64,
        durable: Link,
        walked_control: Option<Rec>,
    ) -> Result<()> {
        // rec passed recovery: everything below the log end is committed.
        let mapping = self.mapping_covering(st, log_end)?;
        self.publish(st, log_end);
        let ((map, since, commits), control) = self.build_map_and_control(salt, len, rec, &mapping)?;
        // The control state: the newest CONTROL record of the log (format 4).
        if let Some(c) = [control, walked_control].into_iter().flatten().max_by_key(|c| c.offset) {
            self.install_control(st, &c, log_end)?;
        }
        st.commits_since_full = commits;
        // The checkpoint (a summary's is not where the log can be freed to).
        st.full_map_offset = match &map {
            Pages::Tree(t) => t.checkpoint,
            Pages::Full(_) => rec.info.full_map_offset,
        };
        st.entries_since_full = since;
        // Only what the log claims durable is: what this process read may
        // still be only in the page cache (another process's commits under
        // synchronous=NORMAL). The next sync of ours makes the rest durable
        // too (fdatasync flushes every process's writes).
        st.horizon = durable;
        st.log_end = log_end;
        let mapping = self.mapping_covering(st, log_end)?;
        st.latest = Arc::new(self.make_version(rec, map, mapping, st.control.clone()));
        Ok(())
    }

    /// Makes CONTROL record `c` the log's control state (its base tree read
    /// from the log, all of it below `log_end`).
    pub(crate) fn install_control(&self, st: &mut State, c: &Rec, log_end: u64) -> Result<()> {
        if st.control.offset == c.offset && st.control.crc == c.crc {
            return Ok(());
        }
        let mapping = self.mapping_covering(st, log_end)?;
        let src_end = log_end.min(mapping.cap);
        let table = &c.meta[format::RECORD_HEADER_SIZE + format::CONTROL_INFO_SIZE..];
        let control = Control::load(c.offset, c.crc, c.control, table, &mapping, src_end)
            .map_err(|d| self.corrupt(d.offset, d.expected, d.found))?;
        st.control = Arc::new(control);
        Ok(())
    }

    pub(crate) fn make_version(&self, rec: &Rec, map: Pages, mapping: Arc<Mapping>, control: Arc<Control>) -> Version {
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
            counter: rec.info.page1_counter,
            derive_page1: self.derive_page1(),
            page1: Default::default(),
            control,
        }
    }

    /// Version `n` of the log, read in place (no copy).
    ///
    /// Format 4: the walk back to `n` holds no epoch lock, so a step in
    /// another process may free and punch the records it walks (a region
    /// above the boundary it refreshed to) while it reads them. Every punch
    /// follows a CONTROL record of a newer epoch, so a walk that met damage
    /// while the epoch moved is made again, under the new control state:
    /// it then reads `n` or learns that `n` was reclaimed.
    pub fn version(&self, n: u64) -> Result<Arc<Version>> {
        loop {
            let latest = self.refresh()?;
            match self.version_from(n, &latest) {
                Err(e @ Error::Corrupt { .. }) => {
                    if self.refresh()?.control.epoch() == latest.control.epoch() {
                        return Err(e);
                    }
                }
                r => return r,
            }
        }
    }

    fn version_from(&self, n: u64, latest: &Arc<Version>) -> Result<Arc<Version>> {
        let latest = latest.clone();
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
        if st.control.redirects() && n < st.control.info.oldest_version {
            let oldest = st.control.info.oldest_version;
            return Err(Error::Reclaimed { path: self.path.clone(), version: n, oldest, latest: latest.number });
        }
        let salt = st.header.expect("a log with versions has a header").salt;
        let len = latest.end;
        let rec = self.find_commit(salt, len, &latest, n)?;
        // Redirected pages lie in CONTROL records after the version's end.
        let cover = rec.end().max(st.log_end);
        let mapping = self.mapping_covering(&mut st, cover)?;
        let ((map, _, _), _) = self.build_map_and_control(salt, len, &rec, &mapping)?;
        Ok(Arc::new(self.make_version(&rec, map, mapping, st.control.clone())))
    }

    /// The commit of version `n` (below the latest), found from the latest
    /// checkpoint to checkpoint: a commit names its checkpoint (or full
    /// map) in `full map offset`, and a checkpoint's `prev commit` is the
    /// commit before it, which names the checkpoint before; so a version
    /// `k` checkpoints back costs 2 `k` record reads, then at most half a
    /// checkpoint interval (≤ 1,024 commits in format 4) inside it: forward
    /// from its checkpoint or back from the commit after it, whichever is
    /// nearer (forward when the walk back meets damage: FORMAT.md defines
    /// the commit as the one on the path forward, so a version is not
    /// hidden by damage after it that this shortcut happened to cross).
    /// Every record reached is checked as the walk back along `prev commit`
    /// links checked it: a commit, of the version expected,
    /// at a lower offset, its crc the one its successor names (a checkpoint
    /// reached through `full map offset` is checked as `build_map_and_control`
    /// checks it: a map of a version not after its namer's).
    fn find_commit(&self, salt: u64, len: u64, latest: &Version, n: u64) -> Result<Rec> {
        let at = |off: u64, want_crc: Option<u32>, version: u64| -> Result<Rec> {
            match self.read_record(salt, off, len)? {
                Some(r) if r.is_commit() && want_crc.is_none_or(|c| r.crc == c) && r.h.version == version => Ok(r),
                _ => {
                    Err(self.corrupt(off, format!("the commit of version {version} on the way to version {n}"), "none"))
                }
            }
        };
        let mut r = at(latest.commit_offset, Some(latest.commit_crc), latest.number)?;
        loop {
            if r.h.version == n {
                return Ok(r);
            }
            // Its checkpoint (itself when it is one).
            let fo = r.info.full_map_offset;
            // (A summary is a map commit: its own, as a checkpoint is.)
            let ck = if r.is_map_commit() {
                r.clone()
            } else {
                match self.read_record(salt, fo, len)? {
                    Some(c) if c.is_map_commit() && c.h.version < r.h.version && fo < r.offset => c,
                    _ => {
                        return Err(self.corrupt(
                            fo,
                            format!("full page map (named by commit {} at {})", r.h.version, r.offset),
                            "no valid full-map commit",
                        ))
                    }
                }
            };
            // A later commit names its map commit by offset only: where the
            // search goes on from the map commit (or reads it), the record
            // right after it must name it, crc included, as the `prev commit`
            // chain from the latest would (FORMAT.md, "Finding an older
            // version"). A map commit whose bytes changed and whose crc was
            // recomputed is then not taken for the one the chain passes.
            let follows = |ck: &Rec| -> Result<()> {
                if ck.offset == r.offset {
                    return Ok(());
                }
                match self.read_record(salt, ck.end(), len)? {
                    Some(x) if x.h.prev_commit == ck.offset && x.h.prev_crc == ck.crc => Ok(()),
                    _ => Err(self.corrupt(
                        ck.end(),
                        format!("a record naming the full page map of version {} at {}", ck.h.version, ck.offset),
                        "none",
                    )),
                }
            };
            follows(&ck)?;
            if ck.h.version == n {
                return Ok(ck);
            }
            if ck.h.version < n {
                // Inside this interval. FORMAT.md: `n` is the commit of that
                // version on step 5's path from the map commit, which building
                // its map walks anyway. Nearer the interval's end, `prev
                // commit` links back from `r` reach the same commit sooner;
                // where they meet damage (a commit after `n` not well-formed)
                // the path may still be whole up to `n`, and `n` intact.
                if n - ck.h.version > r.h.version - n {
                    match self.walk_back(salt, len, r.clone(), n) {
                        Err(Error::Corrupt { .. }) => {}
                        found => return found,
                    }
                }
                return self.forward_to(salt, len, &ck, &r, n);
            }
            if ck.h.prev_commit == 0 {
                // The oldest version kept in this (compacted) file is newer than n.
                return Err(Error::NoSuchVersion { path: self.path.clone(), version: n, latest: latest.number });
            }
            if ck.h.prev_commit >= ck.offset {
                return Err(self.corrupt(
                    ck.offset,
                    format!("a commit before version {} at an offset below {}", ck.h.version, ck.offset),
                    format!("version {} naming offset {}", ck.h.version, ck.h.prev_commit),
                ));
            }
            r = at(ck.h.prev_commit, Some(ck.h.prev_crc), ck.h.version - 1)?;
        }
    }

    /// The commit of version `n` reached from `r` by `prev commit` links.
    fn walk_back(&self, salt: u64, len: u64, mut r: Rec, n: u64) -> Result<Rec> {
        loop {
            if r.h.version == n {
                return Ok(r);
            }
            if r.h.prev_commit == 0 || r.h.version < n || r.h.prev_commit >= r.offset {
                return Err(self.corrupt(
                    r.offset,
                    format!("a commit before version {} at an offset below {}", r.h.version, r.offset),
                    format!("version {} naming offset {}", r.h.version, r.h.prev_commit),
                ));
            }
            let (off, want_crc) = (r.h.prev_commit, r.h.prev_crc);
            r = match self.read_record(salt, off, len)? {
                Some(p) if p.is_commit() && p.crc == want_crc && p.h.version + 1 == r.h.version => p,
                _ => return Err(self.corrupt(off, format!("a commit record on the way to version {n}"), "none")),
            };
        }
    }

    /// The commit of version `n` reached from checkpoint `ck` by reading
    /// forward, record by record, as `build_map_and_control` then reads
    /// (each commit the successor of the one before), never past `end_at`,
    /// a later commit of the same interval.
    fn forward_to(&self, salt: u64, len: u64, ck: &Rec, end_at: &Rec, n: u64) -> Result<Rec> {
        let mut pos = ck.end();
        let mut last = ck.h.version;
        while pos < end_at.offset {
            let r = self.read_record(salt, pos, len)?.ok_or_else(|| {
                self.corrupt(pos, format!("a record between versions {last} and {}", end_at.h.version), "none")
            })?;
            if r.is_commit() {
                // A FULL_MAP met here starts the map again (step 5), as when
                // the map is built from `ck` to a commit found walking back.
                if r.h.version != last + 1 {
                    return Err(self.corrupt(
                        pos,
                        format!("the delta of version {}", last + 1),
                        r.h.version.to_string(),
                    ));
                }
                if r.h.version == n {
                    return Ok(r);
                }
                last = r.h.version;
            }
            pos = r.end();
        }
        Err(self.corrupt(pos, format!("the commit of version {n} after version {last}"), "none"))
    }

    /// The version commit `rec` makes, read in place without a refresh: its
    /// page map built from its full map (step 5, the bound on `db pages`
    /// that of the file's length). For a commit a walk over a damaged log
    /// found (`salvage`), which `version`'s walk back from the latest may
    /// not reach.
    pub(crate) fn version_of(&self, salt: u64, rec: &Rec) -> Result<Arc<Version>> {
        let len = self.file_len()?;
        let mapping = self.mapping_covering(&mut self.lock(), rec.end())?;
        let ((map, _, _), _) = self.build_map_and_control(salt, len, rec, &mapping)?;
        let st = self.lock();
        Ok(Arc::new(self.make_version(rec, map, mapping, st.control.clone())))
    }

    /// One pread instead of a stat and a pread per transaction (the common
    /// case, and the only system call of a read transaction): true when the
    /// file still ends at, or holds only zeros for a record header after,
    /// `log_end`, and so holds no record this process has not seen. Reading
    /// from 8 bytes before `log_end` proves, by getting at least those 8,
    /// that the file was not cut below the committed end (what `refresh`'s
    /// stat checks otherwise). Any other answer takes the full path (stat,
    /// truncation check, walk).
    ///
    /// Format 4: `Freed` when the 8 bytes before `log_end`, the end of a
    /// record's trailer (its magic and crc), are no longer there: a step in
    /// another process freed (punched) the region this view ends in while
    /// this process held no epoch lock. Walking on from `log_end` would find
    /// zeros there and stop, leaving the view stale forever (and its pages
    /// freed): the caller recovers afresh instead.
    fn nothing_appended(&self, log_end: u64) -> Result<Appended> {
        let mut probe = [0u8; 8 + format::RECORD_HEADER_SIZE];
        let n = self
            .io
            .read_upto(&mut probe, log_end - 8)
            .map_err(|e| Error::io(&self.path, "read", Some(log_end - 8), e))?;
        if self.format() >= format::FORMAT_V4
            && log_end > format::FIRST_RECORD
            && n >= 8
            && probe[..4] != format::TRAILER_MAGIC
        {
            return Ok(Appended::Freed);
        }
        Ok(if n == 8 || (n == probe.len() && probe[8..].iter().all(|&b| b == 0)) {
            Appended::Nothing
        } else {
            Appended::Maybe
        })
    }

    /// Brings this process's view up to date with commits other processes
    /// appended, and returns the version a read transaction may see: the
    /// latest whose commit is visible (`group.rs`: under FULL, durable).
    /// Cheap when nothing changed.
    pub fn refresh(&self) -> Result<Arc<Version>> {
        self.refresh_as(false)
    }

    /// Like [`Log::refresh`], but returns the log's real latest version,
    /// commits still being synced included: for a connection holding (or
    /// about to hold) WRITER, whose commit must follow the log's end. It
    /// returns only once a sync covered those too (`Log::finish_commit`).
    pub fn refresh_latest(&self) -> Result<Arc<Version>> {
        self.refresh_as(true)
    }

    fn refresh_as(&self, writer: bool) -> Result<Arc<Version>> {
        let mut st = self.lock();
        self.catch_up(&mut st)?;
        if !st.shm_tried && st.header.is_some() {
            // Joining may take the view back to the visible end: walk on
            // from there (what follows is pending).
            self.attach_shm(&mut st);
            self.catch_up(&mut st)?;
        }
        Ok(if writer { st.latest.clone() } else { self.visible_version(&mut st) })
    }

    /// Walks what was appended after this view's end, if anything.
    pub(crate) fn catch_up(&self, st: &mut State) -> Result<()> {
        if st.header.is_some() && !st.committing {
            // With the shared words, a commit whose write returned past this
            // view's end is known without the probe (at N writers most
            // refreshes find one): walk at once. `follow` still checks the
            // file's length against the view, the probe's other use.
            let known =
                st.shm.as_ref().is_some_and(|s| s.appended().load(std::sync::atomic::Ordering::Acquire) > st.log_end);
            let looked = if known { Appended::Maybe } else { self.nothing_appended(st.log_end)? };
            match looked {
                Appended::Nothing => return Ok(()),
                Appended::Maybe => {
                    // Something follows: walk it from one read (tail.rs).
                    let at = st.log_end;
                    return self.with_tail(at, || self.follow(st)).map(|_| ());
                }
                Appended::Freed => {
                    // Reclaimed past this view (format 4): recover afresh.
                    return self.recover(st);
                }
            }
        }
        self.follow(st).map(|_| ())
    }

    /// `refresh` past its first look: recovers a view that has none, or
    /// walks the records appended after the view's end.
    pub(crate) fn follow(&self, st: &mut State) -> Result<Arc<Version>> {
        let len = self.file_len()?;
        let end = st.latest.end;
        if st.header.is_none() {
            if len == 0 {
                return Ok(st.latest.clone());
            }
            self.recover(st)?;
            return Ok(st.latest.clone());
        }
        self.check_not_truncated(len, end)?;
        if st.committing || len < st.log_end + format::MARK_SIZE {
            return Ok(st.latest.clone());
        }
        st.alloc_exact = false; // another process may have written past the end
        let salt = st.header.unwrap().salt;
        let prev = Link { version: st.latest.number, offset: st.latest.commit_offset, crc: st.latest.commit_crc };
        // Loaded before the walk: whatever it then reads below this end was
        // written by a write that returned (scan_forward).
        let whole =
            st.shm.as_ref().map_or(0, |s| s.appended().load(std::sync::atomic::Ordering::Acquire).max(s.synced_end()));
        let w = self.scan_forward(salt, len, st.log_end, (prev, st.latest.page_size), end, st.horizon, whole)?;
        st.horizon = w.durable;
        if w.log_end != st.log_end {
            st.log_end = w.log_end;
            self.mapping_covering(st, w.log_end)?;
            self.publish(st, w.log_end);
        }
        if let Some(c) = &w.control {
            self.install_control(st, c, w.log_end)?;
        }
        if w.commits.is_empty() {
            if !Arc::ptr_eq(&st.latest.control, &st.control) {
                st.latest = Arc::new(st.latest.with_control(st.control.clone(), st.mapping.clone()));
            }
            return Ok(st.latest.clone());
        }
        let mapping = self.mapping_covering(st, w.log_end)?;
        let mut map = st.latest.map.clone();
        let mut since = st.entries_since_full;
        let mut commits = st.commits_since_full;
        // With the shared words, every commit past `visible` waits in
        // `st.pending` (readers reach them as syncs cover them): the last
        // as the latest version, the others only as what this walk read of
        // them, made into a version when `visible` reaches them (one map
        // copy per move of `visible`, `Log::visible_version`, where a
        // version per commit cost an 8 KiB map chunk each: issue 23). The
        // last commit at or below `visible` is a version too, since the
        // pending ones are made from its map. Without the words, only the
        // last.
        let visible = st.shm.as_ref().map(|s| s.visible_end());
        let ends: Vec<u64> = w.commits.iter().map(|c| c.rec.end()).collect();
        let n = ends.len();
        let mut made: Vec<Pend> = Vec::new();
        for (i, Walk { rec: r, entries, .. }) in w.commits.into_iter().enumerate() {
            if r.is_map() {
                since = 0;
                commits = 0;
                st.full_map_offset = r.offset;
            } else {
                since += entries.len() as u64;
                commits += 1;
            }
            advance(&mut map, &r, &entries, &mapping);
            let last = i + 1 == n;
            match visible {
                Some(v) if !last && r.end() > v => made.push(Pend::Read(Box::new(ReadCommit {
                    rec: r,
                    entries,
                    mapping: mapping.clone(),
                    control: st.control.clone(),
                }))),
                Some(v) if !last && ends[i + 1] <= v => {}
                None if !last => {}
                _ => made.push(Pend::Made(Arc::new(self.make_version(
                    &r,
                    map.clone(),
                    mapping.clone(),
                    st.control.clone(),
                )))),
            }
        }
        st.entries_since_full = since;
        st.commits_since_full = commits;
        for p in made {
            match p {
                Pend::Made(v) => self.set_latest(st, v),
                Pend::Read(c) => self.push_read(st, c),
            }
        }
        Ok(st.latest.clone())
    }
}

/// What [`Log::refresh`]'s first look at the end of its view found.
enum Appended {
    /// Nothing after the view's end.
    Nothing,
    /// Perhaps something: walk on.
    Maybe,
    /// The view's own last bytes are gone: reclaimed past it (format 4).
    Freed,
}
