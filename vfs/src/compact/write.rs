//! Writing a compacted log ([`write_compacted`]): versions `K..=latest` of
//! an old log, front to back, into a new file, as [`super`] procedures it.
//!
//! Version K is written as a FULL_MAP commit (format 4: a checkpoint) (prev
//! commit 0) whose frames are copies; each later version keeps its record
//! kind (delta or full map) with its entries re-pointed at copied frames,
//! copying the frames it needs that are not yet in the new file. A page
//! stored as a patch (format 3) keeps its patch, its base re-pointed, when
//! its base image was copied for an earlier kept version, and is copied as
//! the page it makes otherwise (its base was dropped).
//!
//! Invariants:
//! - version numbers, timestamps, page maps and checksums are unchanged;
//! - every frame copied is checked against its crc first, so damage is
//!   never laundered into a clean-looking log;
//! - each commit's horizon is its predecessor (the whole file is synced
//!   before it is renamed into place);
//! - the new file is written front to back, once; nothing is read back
//!   from it but the format-4 tree nodes kept in memory.
//!
//! Format 4 has no full map: each version is written as the delta a live
//! writer would have written (a full map of the old log becomes its
//! difference from the version before), and a checkpoint (INDEX, CONTROL,
//! COMMIT with CHECKPOINT) goes exactly where a live writer puts one
//! (`checkpoint::due_after`), built by the writer's own code
//! (`checkpoint::place`, `checkpoint::head`); its CONTROL record holds the
//! new log's control state: epoch 1, boundary 512, the first kept version
//! as the oldest, the policy. The tree's nodes are kept in memory between
//! checkpoints (about 16 bytes a page, as a page map).

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::{self, CommitInfo, ControlInfo, Entry, Header, RecordHeader};
use crate::history::Prev;
use crate::log::{Link, Log, Version};
use crate::patch;
use crate::storage::LogFile;

fn random_salt(seed: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(seed);
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// Writes the compacted log (versions `first..=latest`) to `file` in format
/// `target`; returns the number of frames copied.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_compacted(
    log: &Log,
    file: &dyn LogFile,
    tmp: &Path,
    chunk: usize,
    first: u64,
    latest: &Version,
    target: u32,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64> {
    let policy = log.retention();
    let old_header = log.header()?.ok_or_else(|| log.corrupt(0, "a log header", "none"))?;
    let old_salt = old_header.salt;
    let base = log.version(first)?;
    let estimate = base.size_bytes() + (latest.end - base.end);
    let chunk = chunk.max(1);
    let mut out = Writer {
        file,
        buf: Vec::with_capacity(chunk),
        chunk,
        tmp,
        pos: 0,
        salt: random_salt(old_salt),
        moved: HashMap::new(),
        copied: 0,
        estimate,
        format: target,
        // The new log's control state (format 4): nothing freed yet.
        control: ControlInfo {
            epoch: 1,
            boundary: format::FIRST_RECORD,
            oldest_version: first,
            keep_versions: policy.versions.unwrap_or(0),
            keep_seconds: policy.age_secs.unwrap_or(0),
            keep_bytes: policy.bytes.unwrap_or(0),
            ..Default::default()
        },
        f4: None,
        nodes: Nodes::default(),
        cur: Vec::new(),
        cur_ps: 0,
    };
    let header =
        Header { format: target, page_size: base.page_size, salt: out.salt, created_us: old_header.created_us };
    let mut hb = vec![0u8; format::FIRST_RECORD as usize];
    hb[..format::HEADER_SIZE].copy_from_slice(&header.encode());
    out.put(&hb)?;

    // The first kept version, as a full map.
    let rec = log
        .read_record(old_salt, base.commit_offset, latest.end)?
        .ok_or_else(|| log.corrupt(base.commit_offset, format!("the commit of version {first}"), "none"))?;
    let spec = Spec {
        version: first,
        full: true,
        checkpoint: true,
        page_size: base.page_size,
        info: CommitInfo {
            timestamp_us: base.timestamp_us,
            db_pages: base.db_pages(),
            entries: 0,
            horizon_version: 0,
            horizon_offset: 0,
            full_map_offset: 0,
            checksum: base.checksum,
            horizon_crc: 0,
            page1_counter: base.counter,
        },
    };
    let entries = out.delta(base.map.try_entries()?, true, base.db_pages(), base.page_size);
    let mut prev = out.commit(log, &spec, &entries, Prev::NONE, 0, progress)?;
    let mut last_full = prev.offset;

    // The later versions, record by record.
    let mut pos = rec.end();
    while pos < latest.end {
        let rec = log
            .read_record(old_salt, pos, latest.end)?
            .ok_or_else(|| log.corrupt(pos, format!("a record after version {}", prev.version), "none"))?;
        pos = rec.end();
        if !rec.is_commit() {
            continue;
        }
        if Some(rec.h.version) != prev.version.checked_add(1) {
            return Err(log.corrupt(
                rec.offset,
                format!("version {}", prev.version.saturating_add(1)),
                rec.h.version.to_string(),
            ));
        }
        // A format-4 checkpoint's entries are its own pages; its map (the
        // one a full map of the new log gives) is its tree.
        let entries =
            if rec.is_checkpoint() { log.version(rec.h.version)?.map.try_entries()? } else { log.read_entries(&rec)? };
        let mut info = rec.info;
        info.horizon_version = prev.version;
        info.horizon_offset = prev.offset;
        info.horizon_crc = prev.crc;
        let spec = Spec {
            version: rec.h.version,
            full: rec.is_map(),
            checkpoint: rec.is_checkpoint(),
            page_size: rec.h.page_size,
            info,
        };
        // A summary's entries repeat slots the new log already holds: only
        // its changes are written (the new log's writer makes its own).
        let entries = out.delta(entries, spec.full || rec.is_summary(), info.db_pages, spec.page_size);
        prev = out.commit(log, &spec, &entries, prev, last_full, progress)?;
        if rec.is_map() {
            last_full = prev.offset;
        }
    }
    if prev.version != latest.number {
        return Err(log.corrupt(latest.commit_offset, format!("version {}", latest.number), prev.version.to_string()));
    }
    out.flush()?;
    Ok(out.copied)
}

/// What to write for one commit (entries and frames come separately).
struct Spec {
    version: u64,
    full: bool,
    /// Format 4: the old log has a checkpoint here, which a live writer
    /// may write where its rule does not (a revert): the new log has one too.
    checkpoint: bool,
    page_size: u32,
    info: CommitInfo,
}

/// Writes the new file front to back, as `std::io::BufWriter` would: writes
/// smaller than `chunk` are collected into one of at most `chunk` bytes,
/// larger ones go through as they are.
struct Writer<'a> {
    file: &'a dyn LogFile,
    /// Bytes put but not yet written: they start at `pos - buf.len()`.
    buf: Vec<u8>,
    chunk: usize,
    tmp: &'a Path,
    /// Bytes put so far: where the next one goes.
    pos: u64,
    salt: u64,
    /// Old frame offset → offset of its copy in the new file.
    moved: HashMap<u64, u64>,
    copied: u64,
    estimate: u64,
    /// The format written.
    format: u32,
    /// Format 4: the CONTROL info written before every checkpoint.
    control: ControlInfo,
    /// Format 4: the newest checkpoint written and what follows it, as a
    /// live writer's latest version holds them (`checkpoint::Since`).
    f4: Option<F4>,
    /// Format 4: the nodes of that checkpoint's tree, by offset (read back
    /// when the next checkpoint changes the tree; pruned to the tree's own
    /// after each checkpoint, so about 16 bytes a page, as a page map).
    nodes: Nodes,
    /// Format 4: the page map (old offset, crc) of the version written
    /// last, to turn a full map of the old log into the delta a live
    /// writer would have written; and its page size.
    cur: Vec<(u64, u32)>,
    cur_ps: u32,
}

/// The newest checkpoint of the new log and the commits after it.
struct F4 {
    root: Option<crate::tree::Root>,
    overlay: crate::overlay::Overlay,
    commits: u64,
    pages: u32,
    /// The checkpoint COMMIT's offset, which deltas name.
    offset: u64,
    page_size: u32,
}

impl F4 {
    fn since(&self) -> crate::checkpoint::Since<'_> {
        crate::checkpoint::Since { root: self.root, overlay: &self.overlay, commits: self.commits, pages: self.pages }
    }
}

/// Index-tree nodes written to the new log, by offset.
#[derive(Default)]
struct Nodes(HashMap<u64, Vec<u8>>);

impl crate::tree::NodeSource for Nodes {
    fn node_bytes(&self, offset: u64, len: usize) -> Option<&[u8]> {
        self.0.get(&offset).filter(|b| b.len() == len).map(|b| &b[..])
    }
}

impl Nodes {
    /// Keeps only the nodes of the tree at `root`.
    fn keep_tree(&mut self, root: crate::tree::Root) {
        let mut keep = HashMap::new();
        let mut stack = vec![(root.offset, root.depth.saturating_sub(1))];
        while let Some((at, level)) = stack.pop() {
            let Some(b) = self.0.remove(&at) else { continue };
            if level > 0 {
                for i in 0..crate::tree::INNER_SLOTS {
                    let c = crate::tree::slot_at(&b, i);
                    if c.offset != 0 {
                        stack.push((c.offset, level - 1));
                    }
                }
            }
            keep.insert(at, b);
        }
        self.0 = keep;
    }
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        if self.buf.len() + b.len() > self.chunk {
            self.flush()?;
        }
        if b.len() >= self.chunk {
            self.file.write_at(b, self.pos).map_err(|e| Error::io(self.tmp, "write", Some(self.pos), e))?;
        } else {
            self.buf.extend_from_slice(b);
        }
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Writes out what is buffered.
    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            let at = self.pos - self.buf.len() as u64;
            self.file.write_at(&self.buf, at).map_err(|e| Error::io(self.tmp, "write", Some(at), e))?;
            self.buf.clear();
        }
        Ok(())
    }

    /// The patch entry `e` names: its bytes and what they say.
    fn read_patch(&self, log: &Log, e: &Entry, spec: &Spec) -> Result<(Vec<u8>, patch::Patch)> {
        log.patch_at(patch::position(e.offset), spec.page_size, None)?.map_err(|(at, expected, found)| {
            log.corrupt(at, format!("{expected} (page {} of version {})", e.pgno, spec.version), found)
        })
    }

    /// The page patch `p` (bytes `bytes`, named by `e`) makes, checked
    /// against `e`'s crc: nothing damaged is copied.
    fn made_page(&self, log: &Log, e: &Entry, spec: &Spec, bytes: &[u8], p: &patch::Patch) -> Result<Vec<u8>> {
        let at = patch::position(e.offset);
        let page = log.make_page(bytes, p, spec.page_size)?;
        let crc = format::frame_crc(&page);
        if crc != e.crc {
            return Err(log.corrupt(
                at,
                format!("a patch making crc {:#010x} (page {} of version {})", e.crc, e.pgno, spec.version),
                format!("crc {crc:#010x}"),
            ));
        }
        Ok(page)
    }

    /// Format 4: the entries a live writer would have written for a
    /// version of `db_pages` pages whose map (`whole`) or delta is
    /// `entries`: those that differ from the version written before (every
    /// one after a page-size change). Other formats: `entries` as they are
    /// (a full map stays a full map).
    fn delta(&mut self, entries: Vec<Entry>, whole: bool, db_pages: u32, page_size: u32) -> Vec<Entry> {
        if self.format < format::FORMAT_V4 {
            return entries;
        }
        if page_size != self.cur_ps {
            self.cur.clear();
            self.cur_ps = page_size;
        }
        // Pages past a truncation read as zeros if the database grows again.
        self.cur.resize(db_pages as usize + 1, (0, 0));
        let mut out = Vec::with_capacity(if whole { 0 } else { entries.len() });
        for e in entries {
            let Some(c) = self.cur.get_mut(e.pgno as usize).filter(|_| e.pgno != 0) else { continue };
            if whole && *c == (e.offset, e.crc) {
                continue;
            }
            *c = (e.offset, e.crc);
            out.push(e);
        }
        out
    }

    /// Writes one COMMIT record whose entries are `entries` (old offsets),
    /// copying into its payload every frame not yet in the new file. In
    /// format 4 `entries` is the version's delta, and the commit is a
    /// checkpoint (INDEX, CONTROL, COMMIT) exactly where a live writer
    /// writes one (`checkpoint::due_after`), built by the same code
    /// (`checkpoint::place`, `checkpoint::head`); format 4 has no full map.
    fn commit(
        &mut self,
        log: &Log,
        spec: &Spec,
        entries: &[Entry],
        prev: Prev,
        last_full: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Prev> {
        let ps = spec.page_size as u64;
        let f4 = self.format >= format::FORMAT_V4;
        let same_ps = self.f4.as_ref().is_some_and(|f| f.page_size == spec.page_size);
        let checkpoint = f4
            && (spec.checkpoint
                || crate::checkpoint::due_after(
                    self.f4.as_ref().map(|f| f.since()).as_ref(),
                    same_ps,
                    entries.iter().map(|e| e.pgno),
                ));
        let full = spec.full && !f4;
        // Frames to copy, in entry order, each once. A page stored as a
        // patch keeps its patch (its base field re-pointed) when its base
        // image is already in the new file; otherwise it is copied as the
        // page it makes, an image.
        let mut copy: Vec<&Entry> = Vec::new();
        let mut area: Vec<u8> = Vec::new();
        let mut new_here: HashMap<u64, std::result::Result<usize, usize>> = HashMap::new();
        for e in entries {
            if e.offset == 0 || self.moved.contains_key(&e.offset) || new_here.contains_key(&e.offset) {
                continue;
            }
            if patch::is_patch(e.offset) {
                let (bytes, p) = self.read_patch(log, e, spec)?;
                if let Some(&base) = self.moved.get(&p.base) {
                    self.made_page(log, e, spec, &bytes, &p)?; // checked before it is copied
                    new_here.insert(e.offset, Err(area.len()));
                    area.extend_from_slice(&base.to_le_bytes());
                    area.extend_from_slice(&bytes[8..]);
                    self.copied += 1;
                    continue;
                }
            }
            new_here.insert(e.offset, Ok(copy.len()));
            copy.push(e);
        }
        let n_table = if checkpoint { 0 } else { entries.len() as u32 };
        let (n_copy, words) = (copy.len() as u32, (area.len() / 8) as u16);
        let fmt = self.format;
        // Format 4: a record of many frames is ALIGNED, as a live writer's.
        let aligned = crate::commit4::aligned_flag(fmt, format::KIND_COMMIT, n_copy, spec.page_size, false);
        let flags = aligned
            | if checkpoint {
                format::FLAG_CHECKPOINT
            } else if full {
                format::FLAG_FULL_MAP
            } else {
                0
            };
        let lay_at = |o: u64| {
            format::layout_with_flags(fmt, o, format::KIND_COMMIT, flags, n_table, n_copy, spec.page_size, words)
        };
        // Where a frame of the old log is in the new one, for a COMMIT at `o`.
        let prior: HashMap<u64, u64> = entries
            .iter()
            .filter(|e| e.offset != 0 && !new_here.contains_key(&e.offset))
            .map(|e| (e.offset, self.moved[&e.offset]))
            .collect();
        let new_at = |o: u64, old: u64| -> u64 {
            let lay = lay_at(o);
            match new_here.get(&old) {
                _ if old == 0 => 0,
                Some(Ok(i)) => o + lay.payload_start + *i as u64 * ps,
                Some(Err(a)) => (o + lay.patches_start + *a as u64) | patch::PATCH_TAG,
                None => prior[&old],
            }
        };
        // Format 4: a checkpoint's INDEX and CONTROL records go first.
        let follows = Link { version: spec.version - 1, offset: prev.offset, crc: prev.crc };
        let mut ck = None;
        if checkpoint {
            let index_at = self.pos;
            let slots_at = |o: u64| -> Vec<(u32, crate::pagemap::Slot)> {
                entries
                    .iter()
                    .map(|e| (e.pgno, crate::pagemap::Slot { offset: new_at(o, e.offset), crc: e.crc }))
                    .collect()
            };
            let since = self.f4.as_ref().filter(|_| same_ps);
            let changes_at = |o: u64| -> Result<std::collections::BTreeMap<u32, crate::tree::Slot>> {
                let slots = slots_at(o);
                Ok(match since {
                    Some(f) => crate::checkpoint::changes_since(&f.since(), &slots, spec.info.db_pages),
                    None => {
                        slots.iter().map(|&(p, s)| (p, crate::tree::Slot { offset: s.offset, crc: s.crc })).collect()
                    }
                })
            };
            let (salt, cinfo) = (self.salt, self.control);
            let control = |at: u64| {
                crate::reclaim::control_record(salt, at, follows, spec.page_size, &cinfo, &[], &[], &[], false)
            };
            let tmp = self.tmp;
            let corrupt = |d: crate::tree::Damage| Error::Corrupt {
                path: tmp.to_path_buf(),
                offset: d.offset,
                expected: d.expected,
                found: d.found,
            };
            let planned = crate::checkpoint::place(
                &corrupt,
                &self.nodes,
                since.and_then(|f| f.root),
                &changes_at,
                index_at,
                spec.info.db_pages,
                &control,
            )?;
            let (head, info) = crate::checkpoint::head(
                self.salt,
                index_at,
                follows,
                spec.page_size,
                &planned.nodes,
                planned.root,
                &planned.control,
                planned.offset,
            );
            self.put(&head)?;
            if let Ok(list) = crate::tree::list_nodes(&planned.nodes, index_at + crate::checkpoint::INDEX_META) {
                let base = index_at + crate::checkpoint::INDEX_META;
                for n in list {
                    let len = crate::tree::node_size(n.level);
                    let at = (n.offset - base) as usize;
                    self.nodes.0.insert(n.offset, planned.nodes[at..at + len].to_vec());
                }
            }
            self.nodes.keep_tree(planned.root);
            ck = Some((info, planned.root));
        }
        let offset = self.pos;
        let lay = lay_at(offset);
        for old in new_here.keys() {
            let new = new_at(offset, *old);
            self.moved.insert(*old, new);
        }
        let map_offset = match (&self.f4, checkpoint) {
            (_, true) => offset,
            (Some(f), false) if f4 => f.offset,
            _ if full => offset,
            _ => last_full,
        };
        if f4 {
            let new_entries: Vec<Entry> =
                entries.iter().map(|e| Entry { pgno: e.pgno, crc: e.crc, offset: new_at(offset, e.offset) }).collect();
            match (ck, self.f4.as_mut()) {
                (Some((_, root)), _) => {
                    self.f4 = Some(F4 {
                        root: Some(root),
                        overlay: crate::overlay::Overlay::new(spec.info.db_pages),
                        commits: 0,
                        pages: spec.info.db_pages,
                        offset,
                        page_size: spec.page_size,
                    })
                }
                (None, Some(f)) => {
                    f.overlay.apply(f.pages, spec.info.db_pages, &new_entries);
                    f.pages = spec.info.db_pages;
                    f.commits += 1;
                }
                (None, None) => unreachable!("a format-4 log starts with a checkpoint"),
            }
        }
        let mut info = spec.info;
        info.entries = n_table;
        info.full_map_offset = map_offset;
        let mut meta = vec![0u8; lay.payload_start as usize];
        RecordHeader {
            kind: format::KIND_COMMIT,
            // Sealed: the compacted file is synced before it is renamed into
            // place, so recovery need not re-check these frames.
            flags: format::FLAG_SEALED | flags,
            length: lay.length,
            version: spec.version,
            prev_commit: prev.offset,
            prev_crc: prev.crc,
            page_size: spec.page_size,
            frames: n_copy,
            patch_words: words,
        }
        .encode(self.salt, &mut meta);
        info.encode(&mut meta[format::RECORD_HEADER_SIZE..]);
        let eb = format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE;
        if let Some((ck, _)) = ck {
            ck.encode(&mut meta[eb..]);
        } else {
            for (i, e) in entries.iter().enumerate() {
                let offset = if e.offset == 0 { 0 } else { self.moved[&e.offset] };
                Entry { pgno: e.pgno, crc: e.crc, offset }.encode(&mut meta[eb + i * format::ENTRY_SIZE..]);
            }
        }
        let mut trailer = [0u8; format::TRAILER_SIZE];
        format::encode_trailer(self.salt, offset, &meta, &mut trailer);
        self.put(&meta)?;

        // The frames, read in runs of adjacent old offsets, each checked.
        let mut i = 0;
        while i < copy.len() {
            let mut j = i + 1;
            if patch::is_patch(copy[i].offset) {
                // Its base is not in the new file: the page it makes.
                let e = copy[i];
                let (bytes, p) = self.read_patch(log, e, spec)?;
                let page = self.made_page(log, e, spec, &bytes, &p)?;
                self.put(&page)?;
                self.copied += 1;
                i = j;
                continue;
            }
            while j < copy.len()
                && !patch::is_patch(copy[j].offset)
                && copy[j].offset == copy[j - 1].offset + ps
                && (j - i) as u64 * ps < (4 << 20)
            {
                j += 1;
            }
            let buf = log.read_vec(copy[i].offset, ((j - i) as u64 * ps) as usize)?;
            for (k, page) in buf.chunks_exact(ps as usize).enumerate() {
                let e = copy[i + k];
                let crc = format::frame_crc(page);
                if crc != e.crc {
                    return Err(log.corrupt(
                        e.offset,
                        format!("a frame with crc {:#010x} (page {} of version {})", e.crc, e.pgno, spec.version),
                        format!("crc {crc:#010x}"),
                    ));
                }
            }
            self.put(&buf)?;
            self.copied += (j - i) as u64;
            i = j;
            progress(self.pos, self.estimate.max(self.pos));
        }
        self.put(&area)?;
        self.put(&trailer)?;
        debug_assert_eq!(self.pos, offset + lay.length);
        Ok(Prev { version: spec.version, offset, crc: format::trailer_crc(&trailer) })
    }
}
