//! The on-disk format, byte for byte, as `vfs/FORMAT.md` specifies it.
//!
//! This module only encodes and decodes: it does no I/O and knows nothing of
//! SQLite. Every multi-byte integer is little-endian. Offsets are chained
//! constants so that this file can be read side by side with FORMAT.md.
//!
//! Invariants the encoders guarantee and the decoders check:
//! * every record starts at an 8-aligned file offset at or after [`FIRST_RECORD`];
//! * a record's payload region (its page images, then a format-3 COMMIT's
//!   patch area: see `patch.rs`) follows its metadata directly (format 1:
//!   at a 512-aligned file offset; a format-4 ALIGNED record: at a multiple
//!   of [`slot_align`], after a zero gap that counts as metadata);
//! * a record's trailer names the record's own start offset, so a copy of a
//!   trailer found anywhere else in the file never validates;
//! * every checksum is seeded with the log's salt (its creation id).

/// `PAGELOG\0`
pub const MAGIC: [u8; 8] = *b"PAGELOG\0";
/// The format this build creates logs in. It also reads [`FORMAT_V2`] (and
/// writes to such logs in that format: no patches) and [`FORMAT_V1`] (whose
/// logs it opens for reading only: see FORMAT.md's change log).
pub const FORMAT_VERSION: u32 = 3;
/// Format 4, in development (docs/format-4.md): CONTROL records, retention.
/// Written only to logs created with `OpenOptions::format4` (tests); a
/// release writes it by default once all of it has landed.
pub const FORMAT_V4: u32 = 4;
/// Format 2: no patches (the record header's bytes 6–7 are reserved).
pub const FORMAT_V2: u32 = 2;
/// The first format: no MARK records, page 1 stored whole. Readable, never
/// written to.
pub const FORMAT_V1: u32 = 1;

// ---- file header -------------------------------------------------------------
pub const HDR_MAGIC: usize = 0; // 8 bytes
pub const HDR_FORMAT: usize = HDR_MAGIC + 8; // u32
pub const HDR_SIZE_FIELD: usize = HDR_FORMAT + 4; // u32, = HEADER_SIZE
pub const HDR_PAGE_SIZE: usize = HDR_SIZE_FIELD + 4; // u32
pub const HDR_FLAGS: usize = HDR_PAGE_SIZE + 4; // u32, 0
pub const HDR_SALT: usize = HDR_FLAGS + 4; // u64
pub const HDR_CREATED: usize = HDR_SALT + 8; // u64, unix microseconds
pub const HDR_RESERVED: usize = HDR_CREATED + 8; // 20 bytes, zero
pub const HDR_CRC: usize = HDR_RESERVED + 20; // u32, crc32 of bytes 0..60
pub const HEADER_SIZE: usize = HDR_CRC + 4; // 64

/// The first record starts here; bytes HEADER_SIZE..FIRST_RECORD are zero.
pub const FIRST_RECORD: u64 = 512;
/// Format 1 put page images at file offsets that are multiples of this.
pub const PAYLOAD_ALIGN: u64 = 512;

/// What a frame offset must be a multiple of: 512 in format 1 (which padded
/// each payload region to it), 8 in format 2 (page images follow the
/// metadata directly).
pub fn frame_align(format: u32) -> u64 {
    if format == FORMAT_V1 {
        PAYLOAD_ALIGN
    } else {
        8
    }
}

/// The largest `db pages` a commit of a log of `file_len` bytes may state
/// (FORMAT.md, recovery step 3: file length / 512, integer division, +
/// 65536): every page of a database was written at least once, as a frame
/// of at least 512 bytes, so no real log comes near it; it keeps a damaged
/// or crafted record from making a page map larger than the file. The one
/// bound recovery, `verify` and the replication walk apply.
pub fn max_db_pages(file_len: u64) -> u64 {
    file_len / PAYLOAD_ALIGN + 65536
}

// ---- record header (every record) ---------------------------------------------
pub const REC_MAGIC: [u8; 4] = *b"PLRC";
pub const RH_MAGIC: usize = 0; // 4 bytes
pub const RH_KIND: usize = RH_MAGIC + 4; // u8
pub const RH_FLAGS: usize = RH_KIND + 1; // u8
/// u16: format 3, COMMIT only: the patch area's length in 8-byte words
/// (zero elsewhere; reserved in formats 1 and 2).
pub const RH_PATCH_WORDS: usize = RH_FLAGS + 1;
pub const RH_LENGTH: usize = RH_PATCH_WORDS + 2; // u64, whole record incl. trailer
pub const RH_VERSION: usize = RH_LENGTH + 8; // u64
pub const RH_PREV_COMMIT: usize = RH_VERSION + 8; // u64
pub const RH_PAGE_SIZE: usize = RH_PREV_COMMIT + 8; // u32
pub const RH_FRAMES: usize = RH_PAGE_SIZE + 4; // u32, page images stored in this record
pub const RH_PREV_CRC: usize = RH_FRAMES + 4; // u32, trailer crc of the prev commit (0 if none)
pub const RH_CRC: usize = RH_PREV_CRC + 4; // u32, crc32(salt || bytes 0..44)
pub const RECORD_HEADER_SIZE: usize = RH_CRC + 4; // 48

pub const KIND_SPILL: u8 = 1;
pub const KIND_COMMIT: u8 = 2;
/// A durability marker: written right after a sync, at the end of the commit
/// it names (by `version`, `prev commit`, `prev crc`), it says that commit
/// was durable. A header and a trailer, nothing else (format 2).
pub const KIND_MARK: u8 = 3;
/// The length of a MARK record.
pub const MARK_SIZE: u64 = (RECORD_HEADER_SIZE + TRAILER_SIZE) as u64;
/// Format 4: the log's control state — retention policy, reclaimed
/// boundary, oldest kept version, base tree (docs/format-4.md, "CONTROL
/// records"). Sits between commits as a SPILL does.
pub const KIND_CONTROL: u8 = 5;
/// CONTROL flag (format 4): written after a sync that covered the commit it
/// follows, so it claims that commit durable, as a MARK does. (A CONTROL
/// written with a full map's commit, before any sync, does not.)
pub const FLAG_CLAIM: u8 = 1;
/// Format 4: index-tree nodes written by one transaction (a checkpoint's
/// changed nodes), after an [`IndexInfo`]. Sits between commits as a SPILL
/// does (docs/format-4.md, "Checkpoints as index trees: the bytes").
pub const KIND_INDEX: u8 = 4;
/// Commit flag: the entry table is the whole page map, not a delta.
pub const FLAG_FULL_MAP: u8 = 1;
/// Commit flag (format 4 only, never with [`FLAG_FULL_MAP`]): a checkpoint,
/// whose [`CheckpointInfo`] (after its entry table) names the root of an
/// index tree holding its whole page map.
pub const FLAG_CHECKPOINT: u8 = 4;
/// Commit flag: the record and every frame it references were synced
/// before the file became visible under its name (`pagelog compact` writes
/// a new file, syncs it, then renames it). Recovery need not re-check the
/// frames of a sealed commit.
pub const FLAG_SEALED: u8 = 2;
/// Commit flag (format 4 only): ALIGNED, the record's page images start at
/// the first file offset at or after its metadata that is a multiple of
/// [`slot_align`]; the gap before them is zero bytes, covered by the
/// trailer crc as metadata. Only on a record with frames.
pub const FLAG_ALIGNED: u8 = 8;
/// Commit flag (format 4 only, on a delta: never with [`FLAG_FULL_MAP`] or
/// [`FLAG_CHECKPOINT`]): RECYCLED, every page image the commit's entries
/// name was written by its own transaction, some into recycled slots (dead
/// frame slots of the free list, before the record; FORMAT.md "Frames in
/// recycled slots"), so recovery checks them all, wherever they lie.
pub const FLAG_RECYCLED: u8 = 16;
/// SPILL flag (format 4 only): ALIGNED, as [`FLAG_ALIGNED`] for a COMMIT.
pub const FLAG_SPILL_ALIGNED: u8 = 1;
/// Commit flag (format 4 only, never with [`FLAG_FULL_MAP`] or
/// [`FLAG_CHECKPOINT`]): a summary, a delta whose entries are its version's
/// map relative to its checkpoint, with a [`SummaryInfo`] after its entry
/// table; the commits after it name it in `full map offset` (FORMAT.md,
/// "Summary commits"). Bit 4 is RECYCLED's (never with this one).
pub const FLAG_SUMMARY: u8 = 32;

/// The ALIGNED flag bit of a record of `kind` (0: the kind has none).
pub fn aligned_bit(kind: u8) -> u8 {
    match kind {
        KIND_COMMIT => FLAG_ALIGNED,
        KIND_SPILL => FLAG_SPILL_ALIGNED,
        _ => 0,
    }
}

/// Whether a record of `kind` with header flags `flags` is ALIGNED.
pub fn is_aligned(kind: u8, flags: u8) -> bool {
    flags & aligned_bit(kind) != 0
}

/// What an ALIGNED record's page images start at a file-offset multiple of
/// (a *slot*, docs/format-4.md): min(page size, 4096), a whole file-system
/// block at 4096 and above, several slots to a block below.
pub fn slot_align(page_size: u32) -> u64 {
    (page_size as u64).min(4096)
}

// ---- commit info (COMMIT records only, right after the header) ----------------
pub const CI_TIMESTAMP: usize = 0; // u64, unix microseconds
pub const CI_DB_PAGES: usize = CI_TIMESTAMP + 8; // u32
pub const CI_ENTRIES: usize = CI_DB_PAGES + 4; // u32
pub const CI_HORIZON_VERSION: usize = CI_ENTRIES + 4; // u64
pub const CI_HORIZON_OFFSET: usize = CI_HORIZON_VERSION + 8; // u64
pub const CI_FULL_MAP: usize = CI_HORIZON_OFFSET + 8; // u64
pub const CI_CHECKSUM: usize = CI_FULL_MAP + 8; // u64
pub const CI_HORIZON_CRC: usize = CI_CHECKSUM + 8; // u32, trailer crc of the horizon commit
/// u32: the SQLite change counter page 1 reads with in this version (format
/// 2; zero in format 1, where it was reserved).
pub const CI_PAGE1_COUNTER: usize = CI_HORIZON_CRC + 4;
pub const COMMIT_INFO_SIZE: usize = CI_PAGE1_COUNTER + 4; // 56

// ---- control info (format 4 CONTROL records, right after the header) ----------
pub const CTL_EPOCH: usize = 0; // u64
pub const CTL_KEEP_VERSIONS: usize = CTL_EPOCH + 8; // u64, 0: no such form
pub const CTL_KEEP_SECONDS: usize = CTL_KEEP_VERSIONS + 8; // u64
pub const CTL_KEEP_BYTES: usize = CTL_KEEP_SECONDS + 8; // u64
pub const CTL_BOUNDARY: usize = CTL_KEEP_BYTES + 8; // u64
pub const CTL_OLDEST_VERSION: usize = CTL_BOUNDARY + 8; // u64
/// u32: salted crc of the payload (a CONTROL record is not well-formed
/// until its payload is whole: a step's copies and tree nodes are trusted
/// only once they are all there).
pub const CTL_PAYLOAD_CRC: usize = CTL_OLDEST_VERSION + 8;
/// u32: the number of free-list entries after the straggler table
/// (`freelist.rs`; zero in logs written before the free list, where these
/// bytes were reserved and zero).
pub const CTL_FREE_ENTRIES: usize = CTL_PAYLOAD_CRC + 4;
pub const CTL_BASE_ROOT: usize = CTL_FREE_ENTRIES + 4; // u64
pub const CTL_BASE_CRC: usize = CTL_BASE_ROOT + 8; // u32
pub const CTL_BASE_DEPTH: usize = CTL_BASE_CRC + 4; // u8, then 3 reserved zero bytes
pub const CTL_OLDEST_TIMESTAMP: usize = CTL_BASE_DEPTH + 4; // u64
pub const CTL_OLDEST_COUNTER: usize = CTL_OLDEST_TIMESTAMP + 8; // u32
pub const CTL_STRAGGLERS: usize = CTL_OLDEST_COUNTER + 4; // u32
pub const CTL_PAYLOAD_BYTES: usize = CTL_STRAGGLERS + 4; // u64
pub const CONTROL_INFO_SIZE: usize = CTL_PAYLOAD_BYTES + 8; // 96
/// A straggler entry: old offset u64, new offset u64.
pub const STRAGGLER_SIZE: usize = 16;
/// A free-list entry: range offset u64, range length u32, flags u32.
pub const FREE_ENTRY_SIZE: usize = 16;
/// Free-list entry flag bit 0: the range is one whole frame slot.
pub const FREE_SLOT: u32 = 1;

/// The control-only fields that follow a CONTROL record's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ControlInfo {
    pub epoch: u64,
    pub keep_versions: u64,
    pub keep_seconds: u64,
    pub keep_bytes: u64,
    pub boundary: u64,
    pub oldest_version: u64,
    pub payload_crc: u32,
    pub base_root: u64,
    pub base_crc: u32,
    pub base_depth: u8,
    pub oldest_timestamp_us: u64,
    pub oldest_counter: u32,
    pub stragglers: u32,
    pub payload_bytes: u64,
    /// Free-list entries after the straggler table.
    pub free_entries: u32,
}

impl ControlInfo {
    pub fn encode(&self, out: &mut [u8]) {
        let b = &mut out[..CONTROL_INFO_SIZE];
        b.fill(0);
        put_u64(b, CTL_EPOCH, self.epoch);
        put_u64(b, CTL_KEEP_VERSIONS, self.keep_versions);
        put_u64(b, CTL_KEEP_SECONDS, self.keep_seconds);
        put_u64(b, CTL_KEEP_BYTES, self.keep_bytes);
        put_u64(b, CTL_BOUNDARY, self.boundary);
        put_u64(b, CTL_OLDEST_VERSION, self.oldest_version);
        put_u32(b, CTL_PAYLOAD_CRC, self.payload_crc);
        put_u32(b, CTL_FREE_ENTRIES, self.free_entries);
        put_u64(b, CTL_BASE_ROOT, self.base_root);
        put_u32(b, CTL_BASE_CRC, self.base_crc);
        b[CTL_BASE_DEPTH] = self.base_depth;
        put_u64(b, CTL_OLDEST_TIMESTAMP, self.oldest_timestamp_us);
        put_u32(b, CTL_OLDEST_COUNTER, self.oldest_counter);
        put_u32(b, CTL_STRAGGLERS, self.stragglers);
        put_u64(b, CTL_PAYLOAD_BYTES, self.payload_bytes);
    }

    /// Decodes and checks what the record alone can show: reserved bytes
    /// zero, the payload a whole number of words, a boundary at or after the
    /// first record and 8-aligned, a base root given whole or not at all,
    /// and at a multiple of 8, at least 512.
    /// `None`: not a valid control info.
    pub fn decode(b: &[u8]) -> Option<ControlInfo> {
        if b.len() < CONTROL_INFO_SIZE || b[CTL_BASE_DEPTH + 1..CTL_BASE_DEPTH + 4] != [0, 0, 0] {
            return None;
        }
        let c = ControlInfo {
            epoch: u64_at(b, CTL_EPOCH),
            keep_versions: u64_at(b, CTL_KEEP_VERSIONS),
            keep_seconds: u64_at(b, CTL_KEEP_SECONDS),
            keep_bytes: u64_at(b, CTL_KEEP_BYTES),
            boundary: u64_at(b, CTL_BOUNDARY),
            oldest_version: u64_at(b, CTL_OLDEST_VERSION),
            payload_crc: u32_at(b, CTL_PAYLOAD_CRC),
            base_root: u64_at(b, CTL_BASE_ROOT),
            base_crc: u32_at(b, CTL_BASE_CRC),
            base_depth: b[CTL_BASE_DEPTH],
            oldest_timestamp_us: u64_at(b, CTL_OLDEST_TIMESTAMP),
            oldest_counter: u32_at(b, CTL_OLDEST_COUNTER),
            stragglers: u32_at(b, CTL_STRAGGLERS),
            payload_bytes: u64_at(b, CTL_PAYLOAD_BYTES),
            free_entries: u32_at(b, CTL_FREE_ENTRIES),
        };
        let root_whole = (c.base_root == 0) == (c.base_depth == 0) && (c.base_root != 0 || c.base_crc == 0);
        // A root node lies where nodes can: 8-aligned, after the header.
        let root_placed = c.base_root == 0 || (c.base_root % 8 == 0 && c.base_root >= FIRST_RECORD);
        let ok = c.epoch >= 1
            && c.payload_bytes % 8 == 0
            && c.boundary >= FIRST_RECORD
            && c.boundary % 8 == 0
            && root_whole
            && root_placed;
        ok.then_some(c)
    }

    /// Bytes between the record header and the payload: the control info,
    /// the straggler table and the free list.
    pub fn meta_len(&self) -> u64 {
        CONTROL_INFO_SIZE as u64
            + self.stragglers as u64 * STRAGGLER_SIZE as u64
            + self.free_entries as u64 * FREE_ENTRY_SIZE as u64
    }
}

// ---- index info (format 4 INDEX records, right after the header) ---------------
pub const IX_PAYLOAD_BYTES: usize = 0; // u64, the nodes' length, a multiple of 8
pub const IX_PAYLOAD_CRC: usize = IX_PAYLOAD_BYTES + 8; // u32, salted crc of the nodes
pub const IX_RESERVED: usize = IX_PAYLOAD_CRC + 4; // u32, zero
pub const INDEX_INFO_SIZE: usize = IX_RESERVED + 4; // 16

/// The index-only fields that follow an INDEX record's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexInfo {
    pub payload_bytes: u64,
    pub payload_crc: u32,
}

impl IndexInfo {
    pub fn encode(&self, out: &mut [u8]) {
        let b = &mut out[..INDEX_INFO_SIZE];
        b.fill(0);
        put_u64(b, IX_PAYLOAD_BYTES, self.payload_bytes);
        put_u32(b, IX_PAYLOAD_CRC, self.payload_crc);
    }
    /// None: reserved bytes not zero, or a payload that is not whole nodes'
    /// worth of words (empty, or not a multiple of 8).
    pub fn decode(b: &[u8]) -> Option<IndexInfo> {
        if b.len() < INDEX_INFO_SIZE || u32_at(b, IX_RESERVED) != 0 {
            return None;
        }
        let i = IndexInfo { payload_bytes: u64_at(b, IX_PAYLOAD_BYTES), payload_crc: u32_at(b, IX_PAYLOAD_CRC) };
        (i.payload_bytes > 0 && i.payload_bytes % 8 == 0).then_some(i)
    }
}

/// An INDEX record's layout: header, index info, the nodes, the trailer.
pub fn index_layout(i: &IndexInfo) -> Layout {
    let meta = (RECORD_HEADER_SIZE + INDEX_INFO_SIZE) as u64;
    let end = meta.saturating_add(i.payload_bytes);
    Layout { meta_end: meta, payload_start: meta, patches_start: end, length: end.saturating_add(TRAILER_SIZE as u64) }
}

// ---- checkpoint info (format 4 checkpoint COMMITs, right after the entries) -----
pub const CK_ROOT: usize = 0; // u64, the index root node's offset (0: all zero pages)
pub const CK_ROOT_CRC: usize = CK_ROOT + 8; // u32
pub const CK_DEPTH: usize = CK_ROOT_CRC + 4; // u8, then 3 reserved zero bytes
pub const CK_INDEX: usize = CK_DEPTH + 4; // u64, this transaction's INDEX record (0: none)
pub const CK_INDEX_CRC: usize = CK_INDEX + 8; // u32, its trailer crc; then 4 reserved
pub const CK_CONTROL: usize = CK_INDEX_CRC + 8; // u64, the CONTROL record right before the COMMIT
pub const CK_CONTROL_CRC: usize = CK_CONTROL + 8; // u32, its trailer crc; then 4 reserved
pub const CHECKPOINT_INFO_SIZE: usize = CK_CONTROL_CRC + 8; // 48

/// What a checkpoint COMMIT names: its index tree's root, and the INDEX and
/// CONTROL records of its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckpointInfo {
    pub root: u64,
    pub root_crc: u32,
    pub depth: u8,
    pub index: u64,
    pub index_crc: u32,
    pub control: u64,
    pub control_crc: u32,
}

impl CheckpointInfo {
    pub fn encode(&self, out: &mut [u8]) {
        let b = &mut out[..CHECKPOINT_INFO_SIZE];
        b.fill(0);
        put_u64(b, CK_ROOT, self.root);
        put_u32(b, CK_ROOT_CRC, self.root_crc);
        b[CK_DEPTH] = self.depth;
        put_u64(b, CK_INDEX, self.index);
        put_u32(b, CK_INDEX_CRC, self.index_crc);
        put_u64(b, CK_CONTROL, self.control);
        put_u32(b, CK_CONTROL_CRC, self.control_crc);
    }
    /// None: reserved bytes not zero, a depth outside 1..=6, an offset of
    /// zero with a crc, or no CONTROL record.
    pub fn decode(b: &[u8]) -> Option<CheckpointInfo> {
        if b.len() < CHECKPOINT_INFO_SIZE
            || b[CK_DEPTH + 1..CK_DEPTH + 4] != [0; 3]
            || u32_at(b, CK_INDEX_CRC + 4) != 0
            || u32_at(b, CK_CONTROL_CRC + 4) != 0
        {
            return None;
        }
        let c = CheckpointInfo {
            root: u64_at(b, CK_ROOT),
            root_crc: u32_at(b, CK_ROOT_CRC),
            depth: b[CK_DEPTH],
            index: u64_at(b, CK_INDEX),
            index_crc: u32_at(b, CK_INDEX_CRC),
            control: u64_at(b, CK_CONTROL),
            control_crc: u32_at(b, CK_CONTROL_CRC),
        };
        let ok = (1..=6).contains(&c.depth)
            && (c.root != 0 || c.root_crc == 0)
            && (c.index != 0 || c.index_crc == 0)
            && c.control >= FIRST_RECORD;
        ok.then_some(c)
    }
}

// ---- summary info (format 4 summary COMMITs, right after the entries) ------------
pub const SM_CHECKPOINT: usize = 0; // u64, the checkpoint COMMIT the entries are relative to
pub const SM_CHECKPOINT_CRC: usize = SM_CHECKPOINT + 8; // u32, its trailer crc; then 4 reserved
pub const SM_CONTROL: usize = SM_CHECKPOINT_CRC + 8; // u64, the CONTROL record in force
pub const SM_CONTROL_CRC: usize = SM_CONTROL + 8; // u32, its trailer crc; then 4 reserved
pub const SUMMARY_INFO_SIZE: usize = SM_CONTROL_CRC + 8; // 32

/// What a summary COMMIT names: its checkpoint, and the CONTROL record whose
/// state is in force at it (FORMAT.md, "Summary commits").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SummaryInfo {
    pub checkpoint: u64,
    pub checkpoint_crc: u32,
    pub control: u64,
    pub control_crc: u32,
}

impl SummaryInfo {
    pub fn encode(&self, out: &mut [u8]) {
        let b = &mut out[..SUMMARY_INFO_SIZE];
        b.fill(0);
        put_u64(b, SM_CHECKPOINT, self.checkpoint);
        put_u32(b, SM_CHECKPOINT_CRC, self.checkpoint_crc);
        put_u64(b, SM_CONTROL, self.control);
        put_u32(b, SM_CONTROL_CRC, self.control_crc);
    }
    /// None: reserved bytes not zero, or an offset below the first record.
    pub fn decode(b: &[u8]) -> Option<SummaryInfo> {
        if b.len() < SUMMARY_INFO_SIZE || u32_at(b, SM_CHECKPOINT_CRC + 4) != 0 || u32_at(b, SM_CONTROL_CRC + 4) != 0 {
            return None;
        }
        let s = SummaryInfo {
            checkpoint: u64_at(b, SM_CHECKPOINT),
            checkpoint_crc: u32_at(b, SM_CHECKPOINT_CRC),
            control: u64_at(b, SM_CONTROL),
            control_crc: u32_at(b, SM_CONTROL_CRC),
        };
        (s.checkpoint >= FIRST_RECORD && s.control >= FIRST_RECORD).then_some(s)
    }
}

// ---- map entry -----------------------------------------------------------------
pub const ENTRY_SIZE: usize = 16; // pgno u32, crc u32, frame offset u64

// ---- trailer (every record, its last 16 bytes) ----------------------------------
pub const TRAILER_MAGIC: [u8; 4] = *b"PLTR";
pub const TR_RECORD_OFFSET: usize = 0; // u64
pub const TR_MAGIC: usize = TR_RECORD_OFFSET + 8; // 4 bytes
pub const TR_CRC: usize = TR_MAGIC + 4; // u32
pub const TRAILER_SIZE: usize = TR_CRC + 4; // 16

pub const MIN_PAGE_SIZE: u32 = 512;
pub const MAX_PAGE_SIZE: u32 = 65536;

pub fn valid_page_size(ps: u32) -> bool {
    (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&ps) && ps.is_power_of_two()
}

pub fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// crc32 of `salt || parts...`.
pub fn salted_crc(salt: u64, parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// crc32 of one page image, as stored in map entries.
pub fn frame_crc(page: &[u8]) -> u32 {
    crc32fast::hash(page)
}

/// The contribution of one page to a version's whole-database checksum:
/// a 64-bit mix of its page number and its frame crc. The checksum of a
/// version is the XOR of this over pages 1..=db_pages that have a frame.
pub fn page_hash(pgno: u32, crc: u32) -> u64 {
    let mut state = ((pgno as u64) << 32) | crc as u64;
    splitmix64(&mut state)
}

/// One step of splitmix64: advances `state` and returns the mixed value.
/// The checksum's mixer, and the seeded random stream of tests and benches.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// [`FORMAT_VERSION`] or [`FORMAT_V1`].
    pub format: u32,
    pub page_size: u32,
    pub salt: u64,
    pub created_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    TooShort,
    BadMagic,
    BadCrc { stored: u32, computed: u32 },
    UnsupportedFormat(u32),
    BadField(&'static str, u64),
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[HDR_MAGIC..HDR_MAGIC + 8].copy_from_slice(&MAGIC);
        put_u32(&mut b, HDR_FORMAT, self.format);
        put_u32(&mut b, HDR_SIZE_FIELD, HEADER_SIZE as u32);
        put_u32(&mut b, HDR_PAGE_SIZE, self.page_size);
        put_u32(&mut b, HDR_FLAGS, 0);
        put_u64(&mut b, HDR_SALT, self.salt);
        put_u64(&mut b, HDR_CREATED, self.created_us);
        let crc = crc32fast::hash(&b[..HDR_CRC]);
        put_u32(&mut b, HDR_CRC, crc);
        b
    }

    pub fn decode(b: &[u8]) -> Result<Header, HeaderError> {
        if b.len() < HEADER_SIZE {
            return Err(HeaderError::TooShort);
        }
        if b[HDR_MAGIC..HDR_MAGIC + 8] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let stored = u32_at(b, HDR_CRC);
        let computed = crc32fast::hash(&b[..HDR_CRC]);
        if stored != computed {
            return Err(HeaderError::BadCrc { stored, computed });
        }
        let fv = u32_at(b, HDR_FORMAT);
        if !(FORMAT_V1..=FORMAT_V4).contains(&fv) {
            return Err(HeaderError::UnsupportedFormat(fv));
        }
        let hs = u32_at(b, HDR_SIZE_FIELD);
        if hs as usize != HEADER_SIZE {
            return Err(HeaderError::BadField("header size", hs as u64));
        }
        let page_size = u32_at(b, HDR_PAGE_SIZE);
        if !valid_page_size(page_size) {
            return Err(HeaderError::BadField("page size", page_size as u64));
        }
        let flags = u32_at(b, HDR_FLAGS);
        if flags != 0 {
            return Err(HeaderError::BadField("flags", flags as u64));
        }
        if let Some(i) = b[HDR_RESERVED..HDR_CRC].iter().position(|&x| x != 0) {
            return Err(HeaderError::BadField("reserved byte", (HDR_RESERVED + i) as u64));
        }
        Ok(Header { format: fv, page_size, salt: u64_at(b, HDR_SALT), created_us: u64_at(b, HDR_CREATED) })
    }
}

/// The fixed part of every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: u8,
    pub flags: u8,
    pub length: u64,
    pub version: u64,
    pub prev_commit: u64,
    pub page_size: u32,
    pub frames: u32,
    /// The patch area's length in 8-byte words (format 3 COMMITs; else 0).
    pub patch_words: u16,
    /// Trailer crc of the commit at `prev_commit` (0 when there is none):
    /// links each record to the exact commit it follows.
    pub prev_crc: u32,
}

impl RecordHeader {
    pub fn encode(&self, salt: u64, out: &mut [u8]) {
        let b = &mut out[..RECORD_HEADER_SIZE];
        b.fill(0);
        b[RH_MAGIC..RH_MAGIC + 4].copy_from_slice(&REC_MAGIC);
        b[RH_KIND] = self.kind;
        b[RH_FLAGS] = self.flags;
        b[RH_PATCH_WORDS..RH_PATCH_WORDS + 2].copy_from_slice(&self.patch_words.to_le_bytes());
        put_u64(b, RH_LENGTH, self.length);
        put_u64(b, RH_VERSION, self.version);
        put_u64(b, RH_PREV_COMMIT, self.prev_commit);
        put_u32(b, RH_PAGE_SIZE, self.page_size);
        put_u32(b, RH_FRAMES, self.frames);
        put_u32(b, RH_PREV_CRC, self.prev_crc);
        let crc = salted_crc(salt, &[&b[..RH_CRC]]);
        put_u32(b, RH_CRC, crc);
    }

    /// Decodes and checks the header's own crc and field ranges; `None` when
    /// the bytes are not a valid record header.
    pub fn decode(salt: u64, b: &[u8]) -> Option<RecordHeader> {
        if b.len() < RECORD_HEADER_SIZE || b[RH_MAGIC..RH_MAGIC + 4] != REC_MAGIC {
            return None;
        }
        if u32_at(b, RH_CRC) != salted_crc(salt, &[&b[..RH_CRC]]) {
            return None;
        }
        let h = RecordHeader {
            kind: b[RH_KIND],
            flags: b[RH_FLAGS],
            length: u64_at(b, RH_LENGTH),
            version: u64_at(b, RH_VERSION),
            prev_commit: u64_at(b, RH_PREV_COMMIT),
            page_size: u32_at(b, RH_PAGE_SIZE),
            frames: u32_at(b, RH_FRAMES),
            patch_words: u16::from_le_bytes([b[RH_PATCH_WORDS], b[RH_PATCH_WORDS + 1]]),
            prev_crc: u32_at(b, RH_PREV_CRC),
        };
        // (A CONTROL is valid only in format 4: the reader, who knows the
        // file's format, checks that.)
        let kind_ok = h.kind == KIND_SPILL
            || h.kind == KIND_COMMIT
            || h.kind == KIND_MARK
            || h.kind == KIND_CONTROL
            || h.kind == KIND_INDEX;
        let map_flags = FLAG_FULL_MAP | FLAG_CHECKPOINT;
        // A summary is a delta: never with a full map or a checkpoint.
        let summary_ok = h.flags & FLAG_SUMMARY == 0 || (h.kind == KIND_COMMIT && h.flags & map_flags == 0);
        // (ALIGNED is valid only in format 4, and only with frames: the
        // reader, who knows the file's format, checks the format.)
        // RECYCLED likewise, and never with a summary (a summary repeats
        // entries naming older frames, which RECYCLED says it wrote itself).
        let recycled_ok = h.flags & FLAG_RECYCLED == 0
            || (h.kind == KIND_COMMIT && h.flags & map_flags == 0 && h.flags & FLAG_SUMMARY == 0);
        let flags_ok = h.flags
            & !(FLAG_FULL_MAP | FLAG_SEALED | FLAG_CHECKPOINT | FLAG_ALIGNED | FLAG_RECYCLED | FLAG_SUMMARY)
            == 0
            && h.flags & map_flags != map_flags
            && summary_ok
            && recycled_ok
            && (h.kind == KIND_COMMIT
                || h.flags == 0
                || (h.kind == KIND_CONTROL && h.flags == FLAG_CLAIM)
                || (h.kind == KIND_SPILL && h.flags == FLAG_SPILL_ALIGNED))
            && (h.frames > 0 || !is_aligned(h.kind, h.flags));
        // Only a COMMIT has a patch area (whether its format allows one is
        // for the reader, who knows the file's format, to check).
        let reserved_ok = h.patch_words == 0 || h.kind == KIND_COMMIT;
        if !kind_ok || !flags_ok || !reserved_ok || !valid_page_size(h.page_size) || h.length % 8 != 0 {
            return None;
        }
        if h.kind == KIND_MARK && (h.frames != 0 || h.length != MARK_SIZE || h.version == 0) {
            return None;
        }
        if h.length < h.min_length() {
            return None;
        }
        Some(h)
    }

    fn min_length(&self) -> u64 {
        let mut meta = RECORD_HEADER_SIZE as u64 + if self.kind == KIND_COMMIT { COMMIT_INFO_SIZE as u64 } else { 0 };
        if self.kind == KIND_COMMIT && self.flags & FLAG_CHECKPOINT != 0 {
            meta += CHECKPOINT_INFO_SIZE as u64;
        }
        if self.kind == KIND_COMMIT && self.flags & FLAG_SUMMARY != 0 {
            meta += SUMMARY_INFO_SIZE as u64;
        }
        meta + self.frames as u64 * self.page_size as u64 + self.patch_words as u64 * 8 + TRAILER_SIZE as u64
    }
}

/// The commit-only fields that follow the record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitInfo {
    pub timestamp_us: u64,
    pub db_pages: u32,
    pub entries: u32,
    pub horizon_version: u64,
    pub horizon_offset: u64,
    pub full_map_offset: u64,
    pub checksum: u64,
    pub horizon_crc: u32,
    /// Page 1's change counter in this version (format 2).
    pub page1_counter: u32,
}

impl CommitInfo {
    pub fn encode(&self, out: &mut [u8]) {
        let b = &mut out[..COMMIT_INFO_SIZE];
        put_u64(b, CI_TIMESTAMP, self.timestamp_us);
        put_u32(b, CI_DB_PAGES, self.db_pages);
        put_u32(b, CI_ENTRIES, self.entries);
        put_u64(b, CI_HORIZON_VERSION, self.horizon_version);
        put_u64(b, CI_HORIZON_OFFSET, self.horizon_offset);
        put_u64(b, CI_FULL_MAP, self.full_map_offset);
        put_u64(b, CI_CHECKSUM, self.checksum);
        put_u32(b, CI_HORIZON_CRC, self.horizon_crc);
        put_u32(b, CI_PAGE1_COUNTER, self.page1_counter);
    }
    pub fn decode(b: &[u8]) -> CommitInfo {
        CommitInfo {
            timestamp_us: u64_at(b, CI_TIMESTAMP),
            db_pages: u32_at(b, CI_DB_PAGES),
            entries: u32_at(b, CI_ENTRIES),
            horizon_version: u64_at(b, CI_HORIZON_VERSION),
            horizon_offset: u64_at(b, CI_HORIZON_OFFSET),
            full_map_offset: u64_at(b, CI_FULL_MAP),
            checksum: u64_at(b, CI_CHECKSUM),
            horizon_crc: u32_at(b, CI_HORIZON_CRC),
            page1_counter: u32_at(b, CI_PAGE1_COUNTER),
        }
    }
}

/// One page-map entry: page `pgno` of a version is the page image at file
/// offset `offset`, whose crc32 is `crc`. Offset 0 means "all zeros".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Entry {
    pub pgno: u32,
    pub crc: u32,
    pub offset: u64,
}

impl Entry {
    pub fn encode(&self, out: &mut [u8]) {
        put_u32(out, 0, self.pgno);
        put_u32(out, 4, self.crc);
        put_u64(out, 8, self.offset);
    }
    pub fn decode(b: &[u8]) -> Entry {
        Entry { pgno: u32_at(b, 0), crc: u32_at(b, 4), offset: u64_at(b, 8) }
    }
}

/// Where the parts of a record lie, relative to the record's start offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// End of header + commit info + entries (relative).
    pub meta_end: u64,
    /// Start of the page images (relative); equals `meta_end` when there are none.
    pub payload_start: u64,
    /// Start of the patch area (relative): the end of the page images.
    pub patches_start: u64,
    /// Total record length, trailer included.
    pub length: u64,
}

/// Computes a record's layout in a log of format `format`. `start` is the
/// absolute offset of the record: format 1 aligned page images in the file
/// (to 512), not in the record. Formats 2 and 3 put them right after the
/// metadata; format 3 COMMITs follow them with `patch_words` × 8 bytes of
/// patches.
pub fn layout(
    format: u32,
    start: u64,
    kind: u8,
    entries: u32,
    frames: u32,
    page_size: u32,
    patch_words: u16,
) -> Layout {
    layout_with_flags(format, start, kind, 0, entries, frames, page_size, patch_words)
}

/// [`layout`] of a record with header flags `flags`: a format-4 checkpoint
/// COMMIT ([`FLAG_CHECKPOINT`]) has its [`CheckpointInfo`] after its entries;
/// an ALIGNED record ([`is_aligned`], format 4) starts its page images at the
/// first file offset at or after its metadata that is a multiple of
/// [`slot_align`] (the gap is metadata: zero, under the trailer crc).
#[allow(clippy::too_many_arguments)]
pub fn layout_with_flags(
    format: u32,
    start: u64,
    kind: u8,
    flags: u8,
    entries: u32,
    frames: u32,
    page_size: u32,
    patch_words: u16,
) -> Layout {
    let mut meta = RECORD_HEADER_SIZE as u64;
    if kind == KIND_COMMIT {
        meta += COMMIT_INFO_SIZE as u64 + entries as u64 * ENTRY_SIZE as u64;
        if flags & FLAG_CHECKPOINT != 0 {
            meta += CHECKPOINT_INFO_SIZE as u64;
        }
        if flags & FLAG_SUMMARY != 0 {
            meta += SUMMARY_INFO_SIZE as u64;
        }
    }
    let to = if frames == 0 {
        1
    } else if format == FORMAT_V1 {
        PAYLOAD_ALIGN
    } else if format >= FORMAT_V4 && is_aligned(kind, flags) {
        slot_align(page_size)
    } else {
        1
    };
    let payload_start = align_up(start + meta, to) - start;
    let patches_start = payload_start + frames as u64 * page_size as u64;
    let length = patches_start + patch_words as u64 * 8 + TRAILER_SIZE as u64;
    debug_assert_eq!(length % 8, 0);
    Layout { meta_end: meta, payload_start, patches_start, length }
}

/// A CONTROL record's layout: its metadata (header, control info,
/// straggler table, free list), then `payload_bytes` of payload, then the trailer.
/// `patches_start` is the payload's end (a CONTROL has no patch area).
pub fn control_layout(c: &ControlInfo) -> Layout {
    let meta = RECORD_HEADER_SIZE as u64 + c.meta_len();
    let end = meta.saturating_add(c.payload_bytes);
    Layout { meta_end: meta, payload_start: meta, patches_start: end, length: end.saturating_add(TRAILER_SIZE as u64) }
}

/// Writes the trailer into the last TRAILER_SIZE bytes of `record_tail`, with
/// the crc over `meta` (the record's bytes before its payload region).
pub fn encode_trailer(salt: u64, record_offset: u64, meta: &[u8], out: &mut [u8]) {
    let t = &mut out[..TRAILER_SIZE];
    put_u64(t, TR_RECORD_OFFSET, record_offset);
    t[TR_MAGIC..TR_MAGIC + 4].copy_from_slice(&TRAILER_MAGIC);
    let crc = salted_crc(salt, &[meta, &t[..TR_CRC]]);
    put_u32(t, TR_CRC, crc);
}

/// Checks a trailer against the record's metadata bytes and its own position.
pub fn check_trailer(salt: u64, record_offset: u64, meta: &[u8], t: &[u8]) -> bool {
    t.len() >= TRAILER_SIZE
        && t[TR_MAGIC..TR_MAGIC + 4] == TRAILER_MAGIC
        && u64_at(t, TR_RECORD_OFFSET) == record_offset
        && u32_at(t, TR_CRC) == salted_crc(salt, &[meta, &t[..TR_CRC]])
}

/// The crc stored in a trailer (no checks).
pub fn trailer_crc(t: &[u8]) -> u32 {
    u32_at(t, TR_CRC)
}

/// Reads only the record offset a trailer claims (no checks).
pub fn trailer_record_offset(t: &[u8]) -> u64 {
    u64_at(t, TR_RECORD_OFFSET)
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_info_round_trips_and_its_layout_holds_the_straggler_table_and_payload() {
        let c = super::ControlInfo {
            epoch: 7,
            keep_versions: 1000,
            keep_seconds: 86_400,
            keep_bytes: 10 << 30,
            boundary: 1 << 20,
            oldest_version: 4242,
            payload_crc: 0x1234_5678,
            base_root: 3 << 20,
            base_crc: 0xdead_beef,
            base_depth: 4,
            oldest_timestamp_us: 1_796_000_000_000_000,
            oldest_counter: 99,
            stragglers: 3,
            payload_bytes: 4096 + 264,
            free_entries: 2,
        };
        let mut b = vec![0u8; super::CONTROL_INFO_SIZE];
        c.encode(&mut b);
        assert_eq!(super::ControlInfo::decode(&b), Some(c));
        assert_eq!(b[52..56], 2u32.to_le_bytes(), "free entries at control-info offset 52");
        let lay = super::control_layout(&c);
        // The straggler table, then the free list, then the payload.
        assert_eq!(lay.payload_start, (super::RECORD_HEADER_SIZE + super::CONTROL_INFO_SIZE + 48 + 32) as u64);
        assert_eq!(lay.length, lay.payload_start + 4096 + 264 + super::TRAILER_SIZE as u64);
        // What the record alone shows to be wrong.
        for (at, v) in [(super::CTL_BASE_DEPTH + 1, 1u8), (super::CTL_EPOCH, 0), (super::CTL_PAYLOAD_BYTES, 4)] {
            let mut bad = b.clone();
            if at == super::CTL_EPOCH {
                bad[at..at + 8].fill(0);
            } else {
                bad[at] = v;
            }
            assert_eq!(super::ControlInfo::decode(&bad), None, "byte {at}");
        }
        let mut no_root = c;
        (no_root.base_root, no_root.base_crc, no_root.base_depth) = (0, 0, 0);
        no_root.encode(&mut b);
        assert_eq!(super::ControlInfo::decode(&b), Some(no_root));
        no_root.base_depth = 2; // a depth without a root
        no_root.encode(&mut b);
        assert_eq!(super::ControlInfo::decode(&b), None);
        for root in [(3 << 20) + 4, 256] {
            let mut misplaced = c; // a root node not 8-aligned, or in the header block
            misplaced.base_root = root;
            misplaced.encode(&mut b);
            assert_eq!(super::ControlInfo::decode(&b), None, "root at {root}");
        }
    }

    use super::*;

    #[test]
    fn header_round_trips_and_rejects_a_flipped_bit() {
        let h = Header { format: FORMAT_VERSION, page_size: 4096, salt: 0x1234_5678_9abc_def0, created_us: 42 };
        let mut b = h.encode();
        assert_eq!(Header::decode(&b), Ok(h));
        b[HDR_PAGE_SIZE] ^= 1;
        assert!(matches!(Header::decode(&b), Err(HeaderError::BadCrc { .. })));
        assert_eq!(Header::decode(&b[..10]), Err(HeaderError::TooShort));
        assert_eq!(Header::decode(&[0u8; 64]), Err(HeaderError::BadMagic));
    }

    #[test]
    fn header_flags_and_reserved_bytes_must_be_zero() {
        let h = Header { format: FORMAT_VERSION, page_size: 4096, salt: 1, created_us: 2 };
        for at in [HDR_FLAGS, HDR_RESERVED, HDR_RESERVED + 19] {
            let mut b = h.encode();
            b[at] = 1;
            let crc = crc32fast::hash(&b[..HDR_CRC]);
            put_u32(&mut b, HDR_CRC, crc);
            assert!(matches!(Header::decode(&b), Err(HeaderError::BadField(..))), "byte {at}");
        }
        let v1 = Header { format: FORMAT_V1, ..h };
        assert_eq!(Header::decode(&v1.encode()), Ok(v1), "format 1 is still read");
        let mut b = h.encode();
        put_u32(&mut b, HDR_FORMAT, 5);
        let crc = crc32fast::hash(&b[..HDR_CRC]);
        put_u32(&mut b, HDR_CRC, crc);
        assert_eq!(Header::decode(&b), Err(HeaderError::UnsupportedFormat(5)));
        let v2 = Header { format: FORMAT_V2, ..h };
        assert_eq!(Header::decode(&v2.encode()), Ok(v2), "format 2 is still read");
    }

    #[test]
    fn a_mark_is_a_header_and_a_trailer_and_nothing_else() {
        let m = RecordHeader {
            kind: KIND_MARK,
            flags: 0,
            length: MARK_SIZE,
            version: 3,
            prev_commit: 512,
            page_size: 4096,
            frames: 0,
            patch_words: 0,
            prev_crc: 7,
        };
        let mut b = [0u8; RECORD_HEADER_SIZE];
        m.encode(5, &mut b);
        assert_eq!(RecordHeader::decode(5, &b), Some(m));
        assert_eq!(layout(FORMAT_VERSION, 600, KIND_MARK, 0, 0, 4096, 0).length, MARK_SIZE);
        for bad in [
            RecordHeader { frames: 1, ..m },
            RecordHeader { length: 72, ..m },
            RecordHeader { flags: 1, ..m },
            RecordHeader { patch_words: 1, length: 72, ..m },
        ] {
            bad.encode(5, &mut b);
            assert_eq!(RecordHeader::decode(5, &b), None, "{bad:?}");
        }
        m.encode(5, &mut b);
        b[RH_PATCH_WORDS] = 1;
        let crc = salted_crc(5, &[&b[..RH_CRC]]);
        put_u32(&mut b, RH_CRC, crc);
        assert_eq!(RecordHeader::decode(5, &b), None, "a MARK has no patch area");
    }

    #[test]
    fn record_header_round_trips_and_is_salted() {
        let h = RecordHeader {
            kind: KIND_COMMIT,
            flags: FLAG_FULL_MAP,
            length: 4096 + 512 + 24 + 16,
            version: 7,
            prev_commit: 512,
            page_size: 4096,
            frames: 1,
            patch_words: 3,
            prev_crc: 0xabcd,
        };
        let mut b = [0u8; RECORD_HEADER_SIZE];
        h.encode(99, &mut b);
        assert_eq!(RecordHeader::decode(99, &b), Some(h));
        assert_eq!(RecordHeader::decode(98, &b), None, "another log's salt must not validate");
        b[RH_VERSION] ^= 0x80;
        assert_eq!(RecordHeader::decode(99, &b), None);
    }

    #[test]
    fn commit_info_and_entry_round_trip() {
        let ci = CommitInfo {
            timestamp_us: 1,
            db_pages: 2,
            entries: 3,
            horizon_version: 4,
            horizon_offset: 5,
            full_map_offset: 6,
            checksum: 7,
            horizon_crc: 8,
            page1_counter: 9,
        };
        let mut b = [0u8; COMMIT_INFO_SIZE];
        ci.encode(&mut b);
        assert_eq!(CommitInfo::decode(&b), ci);
        let e = Entry { pgno: 9, crc: 0xdead_beef, offset: 1 << 40 };
        let mut eb = [0u8; ENTRY_SIZE];
        e.encode(&mut eb);
        assert_eq!(Entry::decode(&eb), e);
    }

    #[test]
    fn format_1_aligned_payloads_to_512_in_the_file_and_format_2_does_not_pad() {
        for start in [512u64, 520, 1000, 4096 + 8] {
            let l = layout(FORMAT_V1, start, KIND_COMMIT, 3, 2, 4096, 0);
            assert_eq!((start + l.payload_start) % PAYLOAD_ALIGN, 0);
            assert!(l.payload_start >= l.meta_end);
            assert_eq!(l.length, l.payload_start + 2 * 4096 + 16);
            let l = layout(FORMAT_VERSION, start, KIND_COMMIT, 3, 2, 4096, 5);
            assert_eq!(l.payload_start, l.meta_end);
            assert_eq!(l.patches_start, l.payload_start + 2 * 4096);
            assert_eq!(l.length, 48 + 56 + 3 * 16 + 2 * 4096 + 5 * 8 + 16);
        }
        let l = layout(FORMAT_V1, 512, KIND_COMMIT, 0, 0, 4096, 0);
        assert_eq!(l.payload_start, l.meta_end);
    }

    #[test]
    fn aligned_records_start_their_page_images_at_a_slot_in_the_file() {
        for ps in [512u32, 1024, 2048, 4096, 8192, 16384, 32768, 65536] {
            let a = slot_align(ps);
            assert_eq!(a, ps.min(4096) as u64);
            for start in [512u64, 520, 1000, 4096, 4096 + 8, 65536 - 104, 1 << 33] {
                for (kind, flag, entries) in [(KIND_COMMIT, FLAG_ALIGNED, 3), (KIND_SPILL, FLAG_SPILL_ALIGNED, 0)] {
                    let plain = layout_with_flags(FORMAT_V4, start, kind, 0, entries, 2, ps, 0);
                    let l = layout_with_flags(FORMAT_V4, start, kind, flag, entries, 2, ps, 0);
                    assert_eq!((start + l.payload_start) % a, 0, "ps {ps} start {start}");
                    assert_eq!(l.meta_end, plain.meta_end);
                    assert!(l.payload_start >= l.meta_end && l.payload_start < l.meta_end + a);
                    assert_eq!(l.patches_start, l.payload_start + 2 * ps as u64);
                    assert_eq!(l.length, l.payload_start + 2 * ps as u64 + TRAILER_SIZE as u64);
                    assert_eq!(l.length % 8, 0);
                    // Format 3 has no ALIGNED flag: the layout ignores it
                    // (and the reader refuses the record).
                    assert_eq!(layout_with_flags(FORMAT_VERSION, start, kind, flag, entries, 2, ps, 0), plain);
                }
            }
        }
        // A checkpoint's info is metadata too: the gap follows it.
        let l = layout_with_flags(FORMAT_V4, 512, KIND_COMMIT, FLAG_CHECKPOINT | FLAG_ALIGNED, 0, 40, 4096, 7);
        assert_eq!(l.meta_end, (RECORD_HEADER_SIZE + COMMIT_INFO_SIZE + CHECKPOINT_INFO_SIZE) as u64);
        assert_eq!(l.payload_start, 4096 - 512);
        assert_eq!(l.length, 4096 - 512 + 40 * 4096 + 7 * 8 + 16);
    }

    #[test]
    fn summary_is_commit_bit_5_never_with_a_map_and_its_info_is_counted_and_checked() {
        let h = RecordHeader {
            kind: KIND_COMMIT,
            flags: FLAG_SUMMARY,
            length: 4096,
            version: 9,
            prev_commit: 512,
            page_size: 4096,
            frames: 0,
            patch_words: 0,
            prev_crc: 7,
        };
        let mut b = vec![0u8; RECORD_HEADER_SIZE];
        for (ok, h) in [
            (true, h),
            (true, RecordHeader { flags: FLAG_SUMMARY | FLAG_SEALED, ..h }),
            (false, RecordHeader { flags: FLAG_SUMMARY | FLAG_CHECKPOINT, ..h }),
            (false, RecordHeader { flags: FLAG_SUMMARY | FLAG_FULL_MAP, ..h }),
            (false, RecordHeader { kind: KIND_SPILL, ..h }),
            (false, RecordHeader { kind: KIND_CONTROL, ..h }),
        ] {
            h.encode(5, &mut b);
            assert_eq!(RecordHeader::decode(5, &b).is_some(), ok, "{h:?}");
        }
        let plain = layout_with_flags(FORMAT_V4, 512, KIND_COMMIT, 0, 3, 1, 4096, 0);
        let sum = layout_with_flags(FORMAT_V4, 512, KIND_COMMIT, FLAG_SUMMARY, 3, 1, 4096, 0);
        assert_eq!(sum.meta_end, plain.meta_end + SUMMARY_INFO_SIZE as u64);
        let s = SummaryInfo { checkpoint: 4096, checkpoint_crc: 11, control: 1024, control_crc: 12 };
        let mut b = [0u8; SUMMARY_INFO_SIZE];
        s.encode(&mut b);
        assert_eq!(SummaryInfo::decode(&b), Some(s));
        for (at, v) in [(SM_CHECKPOINT_CRC + 4, 1u8), (SM_CONTROL_CRC + 4, 1)] {
            let mut x = b;
            x[at] = v;
            assert_eq!(SummaryInfo::decode(&x), None, "reserved byte {at}");
        }
        let mut x = b;
        x[SM_CONTROL..SM_CONTROL + 8].copy_from_slice(&100u64.to_le_bytes());
        assert_eq!(SummaryInfo::decode(&x), None, "a control link below the first record");
    }

    #[test]
    fn aligned_is_commit_bit_3_and_spill_bit_0_and_only_with_frames() {
        let h = RecordHeader {
            kind: KIND_COMMIT,
            flags: FLAG_ALIGNED,
            length: 1 << 20,
            version: 2,
            prev_commit: 512,
            page_size: 4096,
            frames: 1,
            patch_words: 0,
            prev_crc: 1,
        };
        let mut b = [0u8; RECORD_HEADER_SIZE];
        let ok = [
            h,
            RecordHeader { flags: FLAG_ALIGNED | FLAG_CHECKPOINT | FLAG_SEALED, ..h },
            RecordHeader { flags: FLAG_ALIGNED | FLAG_FULL_MAP, ..h },
            RecordHeader { kind: KIND_SPILL, flags: FLAG_SPILL_ALIGNED, ..h },
            // RECYCLED, on a delta (with frames or without).
            RecordHeader { flags: FLAG_ALIGNED | FLAG_RECYCLED, ..h },
            RecordHeader { flags: FLAG_RECYCLED, frames: 0, ..h },
        ];
        for good in ok {
            good.encode(5, &mut b);
            assert_eq!(RecordHeader::decode(5, &b), Some(good), "{good:?}");
        }
        for bad in [
            RecordHeader { frames: 0, ..h },
            RecordHeader { flags: 64, ..h },
            RecordHeader { flags: FLAG_RECYCLED | FLAG_SUMMARY, ..h },
            RecordHeader { flags: FLAG_RECYCLED | FLAG_CHECKPOINT, ..h },
            RecordHeader { flags: FLAG_RECYCLED | FLAG_FULL_MAP, ..h },
            RecordHeader { kind: KIND_SPILL, flags: FLAG_RECYCLED, ..h },
            RecordHeader { kind: KIND_SPILL, flags: FLAG_SPILL_ALIGNED, frames: 0, ..h },
            RecordHeader { kind: KIND_SPILL, flags: FLAG_ALIGNED, ..h },
            RecordHeader { kind: KIND_SPILL, flags: 2, ..h },
            RecordHeader { kind: KIND_INDEX, flags: 1, frames: 0, ..h },
        ] {
            bad.encode(5, &mut b);
            assert_eq!(RecordHeader::decode(5, &b), None, "{bad:?}");
        }
        assert!(is_aligned(KIND_COMMIT, FLAG_ALIGNED) && is_aligned(KIND_SPILL, FLAG_SPILL_ALIGNED));
        assert!(!is_aligned(KIND_COMMIT, FLAG_FULL_MAP) && !is_aligned(KIND_CONTROL, FLAG_CLAIM));
    }

    #[test]
    fn trailer_is_bound_to_its_position() {
        let meta = [1u8, 2, 3];
        let mut t = [0u8; TRAILER_SIZE];
        encode_trailer(5, 1024, &meta, &mut t);
        assert!(check_trailer(5, 1024, &meta, &t));
        assert!(!check_trailer(5, 2048, &meta, &t));
        assert!(!check_trailer(6, 1024, &meta, &t));
        assert!(!check_trailer(5, 1024, &[1, 2, 4], &t));
    }
}
