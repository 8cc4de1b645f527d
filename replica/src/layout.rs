//! Object names of a replica (see `replica/LAYOUT.md`).
//!
//! ```text
//! PREFIX/gen-<started µs, 20 digits>-<salt, 16 hex>/
//!        seg-<start>-<end>-<first version>-<last version>-<first time µs>-<last time µs>
//! ```
//! (every number 20 decimal digits, zero-padded, so that names sort as
//! numbers). A generation is one log file (one salt); its segments are the
//! file's bytes `[start, end)`, cut at commit boundaries, back to back from
//! offset 0. A generation started from a log whose retention had freed its
//! bytes `[512, from)` (format 4) has a `head-<from>-<first>` object instead
//! of those bytes: the log's 512-byte header, followed by the log's bytes
//! `[from − (size − 512), from)` (the frames its state reads in place below
//! `from`, and what lies between them; none when the object is 512 bytes);
//! its segments follow on from `from`, and it restores versions `first` and
//! later (a restore leaves a hole where the other freed bytes were, as the
//! primary has).
//!
//! A segment holding a RECYCLED commit (format 4: page images written into
//! dead frame slots before the commit, FORMAT.md "Frames in recycled
//! slots") whose images lie below the segment's start carries them after
//! its log bytes: `seg-…-<last time µs>-<recycled bytes>` (a seventh
//! number; the object is `end − start` log bytes and then that many bytes of
//! [`Recycled`] items, see [`Recycled::encode`]). A reader writes them at
//! their offsets after the segment's bytes, in commit order, and only those
//! of the versions it restores.

use std::collections::BTreeMap;

use crate::store::Object;

/// One generation: one log file, identified by its header's salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// When the replicator started the generation, microseconds since the
    /// Unix epoch (generations sort by it).
    pub created_us: u64,
    pub salt: u64,
    /// In key order, which is offset order.
    pub segments: Vec<Segment>,
    /// The generation starts after bytes its log had freed (see above).
    pub head: Option<Head>,
}

/// The `head-<from>-<first>` object of a generation started past freed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Where the log's bytes in the generation go on after its header.
    pub from: u64,
    /// The oldest version the generation restores.
    pub first: u64,
    /// The object's size as listed: 512 (a header) and the bytes below
    /// `from` it holds (see [`Head::low`]).
    pub size: u64,
}

/// The size of a `head-` object: a log header.
pub const HEAD_SIZE: u64 = 512;

impl Head {
    /// Where the bytes after the header go: `[low, from)`.
    pub fn low(&self) -> u64 {
        self.from - (self.size - HEAD_SIZE)
    }

    /// Whether the listed size can be a header and bytes below `from`.
    pub fn size_ok(&self) -> bool {
        self.size >= HEAD_SIZE && self.size - HEAD_SIZE <= self.from - HEAD_SIZE
    }

    pub fn name(&self) -> String {
        format!("head-{:020}-{:020}", self.from, self.first)
    }

    fn parse(s: &str, size: u64) -> Option<Head> {
        let (a, b) = s.strip_prefix("head-")?.split_once('-')?;
        let ok = |p: &str| p.len() == 20 && p.bytes().all(|b| b.is_ascii_digit());
        (ok(a) && ok(b)).then_some(())?;
        let h = Head { from: a.parse().ok()?, first: b.parse().ok()?, size };
        (h.from > HEAD_SIZE && h.first >= 1).then_some(h)
    }
}

/// One immutable object: bytes `[start, end)` of a generation's log,
/// holding the commits of versions `first..=last` (whole records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: u64,
    pub end: u64,
    pub first: u64,
    pub last: u64,
    pub first_us: u64,
    pub last_us: u64,
    /// The object's size as listed.
    pub size: u64,
    /// Bytes of recycled page images after the log bytes (0: none, and the
    /// name has six numbers, as every segment had before recycling).
    pub recycled: u64,
}

/// A page image that a RECYCLED commit of a segment wrote into a recycled
/// slot below the segment's start (so not among the segment's log bytes,
/// which hold what the slot held before). Encoded in the object after the
/// log bytes as a 32-byte head — `PLRY`, the image's length (u32), the
/// commit's version (u64), the image's log offset (u64), its crc32 (u32),
/// zero (u32), all little-endian — and the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recycled {
    pub version: u64,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// The head of an encoded [`Recycled`] item.
pub const RECYCLED_HEAD: usize = 32;
const RECYCLED_MAGIC: &[u8; 4] = b"PLRY";

impl Recycled {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(RECYCLED_MAGIC);
        out.extend_from_slice(&(self.bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&crc32(&self.bytes).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.bytes);
    }

    /// The items of a segment's recycled bytes, each checked (magic, length,
    /// crc, lying below `start`, versions not decreasing); Err says which
    /// byte of them is wrong.
    pub fn decode_all(b: &[u8], start: u64) -> Result<Vec<Recycled>, String> {
        let mut out: Vec<Recycled> = Vec::new();
        let mut at = 0usize;
        while at < b.len() {
            let head =
                b.get(at..at + RECYCLED_HEAD).ok_or_else(|| format!("a recycled image's head cut at byte {at}"))?;
            let len = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
            let version = u64::from_le_bytes(head[8..16].try_into().unwrap());
            let offset = u64::from_le_bytes(head[16..24].try_into().unwrap());
            let crc = u32::from_le_bytes(head[24..28].try_into().unwrap());
            let bytes = b.get(at + RECYCLED_HEAD..at + RECYCLED_HEAD + len);
            let ok = &head[..4] == RECYCLED_MAGIC
                && head[28..32] == [0; 4]
                && len > 0
                && offset.checked_add(len as u64).is_some_and(|e| e <= start)
                && out.last().is_none_or(|r| r.version <= version)
                && bytes.is_some_and(|x| crc32(x) == crc);
            if !ok {
                return Err(format!(
                    "the recycled image at byte {at} of them (version {version}, log offset {offset}, {len} bytes) \
                     does not check out"
                ));
            }
            out.push(Recycled { version, offset, bytes: bytes.expect("checked").to_vec() });
            at += RECYCLED_HEAD + len;
        }
        Ok(out)
    }
}

fn crc32(b: &[u8]) -> u32 {
    crc32fast::hash(b)
}

impl Generation {
    pub fn name(created_us: u64, salt: u64) -> String {
        format!("gen-{created_us:020}-{salt:016x}")
    }

    pub fn dir(&self) -> String {
        Generation::name(self.created_us, self.salt)
    }

    fn parse(s: &str) -> Option<(u64, u64)> {
        let rest = s.strip_prefix("gen-")?;
        let (c, salt) = rest.split_once('-')?;
        if c.len() != 20 || salt.len() != 16 || !c.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if !salt.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        Some((c.parse().ok()?, u64::from_str_radix(salt, 16).ok()?))
    }

    /// The newest version the generation holds (0: none).
    pub fn last_version(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.last)
    }

    pub fn first_version(&self) -> u64 {
        let first = self.segments.first().map_or(0, |s| s.first);
        self.head.map_or(first, |h| h.first.max(first))
    }

    /// Where the segments start: 0, or the head's `from`.
    pub fn start(&self) -> u64 {
        self.head.map_or(0, |h| h.from)
    }

    pub fn bytes(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.end)
    }

    /// How the segments make one log, from offset 0 (see [`Chain`]).
    /// `key_of` names objects in the reasons given.
    pub fn chain(&self, key_of: impl Fn(&Segment) -> String) -> Chain {
        let mut c = Chain { start: self.start(), end: self.start(), ..Chain::default() };
        if let Some(h) = self.head.filter(|h| !h.size_ok()) {
            c.broken = Some(format!(
                "object {}/{} is {} bytes, not a {HEAD_SIZE}-byte log header and at most the bytes below where \
                 its generation starts: truncated or altered",
                self.dir(),
                h.name(),
                h.size
            ));
            return c;
        }
        let mut last: Option<u64> = None;
        for s in &self.segments {
            let broken = if s.size != s.end - s.start + s.recycled {
                Some(format!(
                    "object {} is {} bytes, its name says {} (bytes {}..{} of the log): truncated or altered",
                    key_of(s),
                    s.size,
                    s.end - s.start + s.recycled,
                    s.start,
                    s.end
                ))
            } else if s.start > c.end {
                Some(format!("object for bytes {}..{} is missing (next is {})", c.end, s.start, key_of(s)))
            } else if s.start == c.end && last.is_some_and(|l| s.first != l + 1) {
                Some(format!(
                    "object {} starts at version {}, but the one before it ends at version {}",
                    key_of(s),
                    s.first,
                    last.unwrap_or(0)
                ))
            } else if s.start < c.end && (s.end > c.end) != (s.last > last.unwrap_or(0)) {
                Some(format!(
                    "object {} (bytes {}..{}, versions {}..{}) overlaps the objects before it (bytes ..{}, \
                     versions ..{}), and its versions do not fit its bytes",
                    key_of(s),
                    s.start,
                    s.end,
                    s.first,
                    s.last,
                    c.end,
                    last.unwrap_or(0)
                ))
            } else {
                None
            };
            if let Some(b) = broken {
                c.broken = Some(b);
                break;
            }
            if s.start < c.end {
                c.overlaps += 1;
            }
            c.segments.push(*s);
            if s.end > c.end {
                c.end = s.end;
                last = Some(s.last);
            }
        }
        c.last = last.unwrap_or(0);
        c
    }

    /// Checks that the segments make one log from offset 0 (overlaps
    /// allowed: their bytes are compared when they are read); Err says
    /// where it breaks.
    pub fn check_chain(&self, key_of: impl Fn(&Segment) -> String) -> Result<(), String> {
        match self.chain(key_of).broken {
            Some(b) => Err(b),
            None => Ok(()),
        }
    }
}

/// What a generation's segments make, read in key (offset) order from
/// offset 0: each segment starts at or before the end of the bytes before
/// it. One that starts before that end **overlaps**: a writer that did not
/// learn whether an upload landed (its answer lost) shipped those bytes
/// again in a longer segment. The log is append-only, so shared bytes must
/// be equal; readers compare them byte for byte and call a difference
/// damage. A gap, an object whose size is not what its name says, or
/// versions that do not follow on end the chain: `broken` says why, and
/// `segments` is the usable prefix before it.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// The usable segments, in offset order (overlapping ones included).
    pub segments: Vec<Segment>,
    /// Where they start: 0, or a head's `from` (bytes `[512, from)` freed).
    pub start: u64,
    /// Bytes `[0, end)` of the log are covered.
    pub end: u64,
    /// The newest version they hold.
    pub last: u64,
    /// Segments that start before the end of the bytes before them.
    pub overlaps: usize,
    /// Why the chain stops before the generation's last segment.
    pub broken: Option<String>,
}

impl Chain {
    /// The segments to read for a log up to version `n`'s commit: those
    /// before the first one holding it, and it (None: past the chain).
    pub fn upto_version(&self, n: u64) -> Option<&[Segment]> {
        let i = self.segments.iter().position(|s| s.last >= n)?;
        Some(&self.segments[..=i])
    }

    /// A sub-chain without overlaps from 0 to `end` (each segment starting
    /// where the one before it ends), when there is one: the segments to
    /// keep when the others are redundant copies of their bytes.
    pub fn clean_cover(&self) -> Option<Vec<Segment>> {
        // Reachable ends, each with the segment reaching it and that
        // segment's index in `segments`; segments are in start order.
        let mut reach: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, s) in self.segments.iter().enumerate() {
            if (s.start == self.start || reach.contains_key(&s.start)) && !reach.contains_key(&s.end) {
                reach.insert(s.end, i);
            }
        }
        let mut path = Vec::new();
        let mut at = self.end;
        while at > self.start {
            let s = self.segments[*reach.get(&at)?];
            path.push(s);
            at = s.start;
        }
        path.reverse();
        Some(path)
    }
}

impl Segment {
    pub fn name(&self) -> String {
        let six = format!(
            "seg-{:020}-{:020}-{:020}-{:020}-{:020}-{:020}",
            self.start, self.end, self.first, self.last, self.first_us, self.last_us
        );
        match self.recycled {
            0 => six,
            r => format!("{six}-{r:020}"),
        }
    }

    /// The log bytes' length (the object may hold recycled images after them).
    pub fn log_bytes(&self) -> u64 {
        self.end - self.start
    }

    fn parse(s: &str, size: u64) -> Option<Segment> {
        let rest = s.strip_prefix("seg-")?;
        let parts: Vec<&str> = rest.split('-').collect();
        if !(6..=7).contains(&parts.len())
            || parts.iter().any(|p| p.len() != 20 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let n: Vec<u64> = parts.iter().map(|p| p.parse().ok()).collect::<Option<_>>()?;
        let recycled = n.get(6).copied().unwrap_or(0);
        let seg =
            Segment { start: n[0], end: n[1], first: n[2], last: n[3], first_us: n[4], last_us: n[5], size, recycled };
        let named_ok = parts.len() == 6 || recycled >= RECYCLED_HEAD as u64;
        (seg.start < seg.end && seg.first <= seg.last && seg.first >= 1 && named_ok).then_some(seg)
    }
}

/// What a prefix holds: generations in creation order, and any object that
/// is not part of a replica (named, so that restore can refuse it).
#[derive(Debug, Default)]
pub struct Catalog {
    pub generations: Vec<Generation>,
    pub foreign: Vec<String>,
    /// Epochs of the lease objects (`lease-<epoch>`), see `ship.rs`.
    pub leases: Vec<u64>,
}

/// Lease objects are named `lease-<epoch, 20 digits>` under the prefix.
pub const LEASE: &str = "lease-";

pub fn lease_name(epoch: u64) -> String {
    format!("{LEASE}{epoch:020}")
}

impl Catalog {
    /// Sorts listed objects (keys relative to the prefix's `dir`).
    pub fn from_objects(dir: &str, objects: &[Object]) -> Catalog {
        let mut gens: BTreeMap<(u64, u64), Generation> = BTreeMap::new();
        let mut cat = Catalog::default();
        for o in objects {
            let Some(rel) = o.key.strip_prefix(dir) else {
                cat.foreign.push(o.key.clone());
                continue;
            };
            if let Some(e) = rel.strip_prefix(LEASE).and_then(|e| e.parse::<u64>().ok()) {
                cat.leases.push(e);
                continue;
            }
            let Some(((created_us, salt), name)) =
                rel.split_once('/').and_then(|(g, s)| Some((Generation::parse(g)?, s)))
            else {
                cat.foreign.push(o.key.clone());
                continue;
            };
            let new = || Generation { created_us, salt, segments: Vec::new(), head: None };
            if let Some(seg) = Segment::parse(name, o.size) {
                gens.entry((created_us, salt)).or_insert_with(new).segments.push(seg);
            } else if let Some(h) = Head::parse(name, o.size) {
                let g = gens.entry((created_us, salt)).or_insert_with(new);
                match g.head {
                    None => g.head = Some(h),
                    Some(_) => cat.foreign.push(o.key.clone()),
                }
            } else {
                cat.foreign.push(o.key.clone());
            }
        }
        cat.generations = gens.into_values().collect();
        for g in &mut cat.generations {
            g.segments.sort_by_key(|s| (s.start, s.end));
        }
        cat
    }

    pub fn newest(&self) -> Option<&Generation> {
        self.generations.last()
    }

    pub fn by_salt(&self, salt: u64) -> Option<&Generation> {
        self.generations.iter().find(|g| g.salt == salt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, size: u64) -> Object {
        Object { key: key.into(), size }
    }

    #[test]
    fn names_round_trip_and_sort_as_numbers() {
        let s = Segment { start: 0, end: 4096, first: 1, last: 9, first_us: 5, last_us: 7, size: 4096, recycled: 0 };
        assert_eq!(Segment::parse(&s.name(), 4096), Some(s));
        let g = Generation::name(1_700_000_000_000_000, 0xdead_beef);
        assert_eq!(Generation::parse(&g), Some((1_700_000_000_000_000, 0xdead_beef)));
        let t =
            Segment { start: 4096, end: 100_000, first: 10, last: 10, first_us: 8, last_us: 8, size: 1, recycled: 0 };
        assert!(s.name() < t.name());
    }

    #[test]
    fn a_segment_with_recycled_images_names_their_bytes_and_checks_them() {
        let plain =
            Segment { start: 8192, end: 9000, first: 4, last: 6, first_us: 1, last_us: 2, size: 808, recycled: 0 };
        let mut items = Vec::new();
        for (v, off) in [(5, 1024u64), (6, 4096), (6, 1024)] {
            Recycled { version: v, offset: off, bytes: vec![v as u8; 1024] }.encode(&mut items);
        }
        let seg = Segment { size: 808 + items.len() as u64, recycled: items.len() as u64, ..plain };
        // Six numbers without, seven with (older readers call it foreign).
        assert_eq!(plain.name().matches('-').count(), 6);
        assert_eq!(seg.name().matches('-').count(), 7);
        assert_eq!(Segment::parse(&seg.name(), seg.size), Some(seg));
        assert_eq!(Segment::parse(&plain.name(), plain.size), Some(plain));
        assert!(Segment::parse(&format!("{}-{:020}", plain.name(), 3), 811).is_none(), "shorter than an image head");
        let g = Generation {
            created_us: 1,
            salt: 1,
            segments: vec![seg],
            head: Some(Head { from: 8192, first: 4, size: 512 }),
        };
        assert!(g.check_chain(|s| s.name()).is_ok());
        let mut short = g.clone();
        short.segments[0].size -= 1;
        assert!(short.check_chain(|s| s.name()).unwrap_err().contains("truncated"));
        let got = Recycled::decode_all(&items, 8192).unwrap();
        assert_eq!(
            got.iter().map(|r| (r.version, r.offset)).collect::<Vec<_>>(),
            vec![(5, 1024), (6, 4096), (6, 1024)]
        );
        // A flipped byte, an image reaching the segment, versions out of order, a cut.
        let mut bad = items.clone();
        bad[RECYCLED_HEAD + 7] ^= 1;
        assert!(Recycled::decode_all(&bad, 8192).unwrap_err().contains("byte 0"));
        assert!(Recycled::decode_all(&items, 4096 + 1023).is_err());
        let mut unordered = Vec::new();
        Recycled { version: 6, offset: 512, bytes: vec![1; 512] }.encode(&mut unordered);
        Recycled { version: 5, offset: 1024, bytes: vec![1; 512] }.encode(&mut unordered);
        assert!(Recycled::decode_all(&unordered, 8192).is_err());
        assert!(Recycled::decode_all(&items[..items.len() - 1], 8192).is_err());
    }

    #[test]
    fn a_listing_sorts_into_generations_and_foreign_objects() {
        let g1 = Generation::name(10, 1);
        let g2 = Generation::name(20, 2);
        let objects = vec![
            obj(&format!("p/{g1}/{}", seg(0, 100, 1, 2).name()), 100),
            obj(&format!("p/{g2}/{}", seg(100, 150, 5, 5).name()), 50),
            obj(&format!("p/{g2}/{}", seg(0, 100, 3, 4).name()), 100),
            obj(&format!("p/{}", lease_name(3)), 10),
            obj("p/notes.txt", 3),
            obj(&format!("p/{g2}/seg-1"), 3),
        ];
        let cat = Catalog::from_objects("p/", &objects);
        assert_eq!(cat.generations.len(), 2);
        assert_eq!(cat.leases, vec![3]);
        assert_eq!(cat.foreign, vec!["p/notes.txt".to_string(), format!("p/{g2}/seg-1")]);
        let newest = cat.newest().unwrap();
        assert_eq!((newest.salt, newest.first_version(), newest.last_version(), newest.bytes()), (2, 3, 5, 150));
        assert!(newest.check_chain(|s| s.name()).is_ok());
        let mut gap = newest.clone();
        gap.segments.remove(0);
        assert!(gap.check_chain(|s| s.name()).unwrap_err().contains("bytes 0..100 is missing"));
        let mut short = newest.clone();
        short.segments[1].size = 49;
        assert!(short.check_chain(|s| s.name()).unwrap_err().contains("truncated"));
    }

    /// A whole segment of bytes `a..b` holding versions `f..=l`.
    fn seg(a: u64, b: u64, f: u64, l: u64) -> Segment {
        Segment { start: a, end: b, first: f, last: l, first_us: 0, last_us: 0, size: b - a, recycled: 0 }
    }

    fn gen(segs: &[(u64, u64, u64, u64)]) -> Generation {
        let mut segments: Vec<Segment> = segs.iter().map(|&(a, b, f, l)| seg(a, b, f, l)).collect();
        segments.sort_by_key(|s| (s.start, s.end));
        Generation { created_us: 1, salt: 1, segments, head: None }
    }

    #[test]
    fn a_segment_shipped_again_longer_overlaps_and_the_chain_goes_on() {
        // Issue 24: 7..11 landed, its answer was lost, 7..16 was cut from
        // the same start.
        let g = gen(&[(0, 100, 1, 6), (100, 200, 7, 11), (100, 300, 7, 16)]);
        let c = g.chain(|s| s.name());
        assert_eq!((c.broken.clone(), c.end, c.last, c.overlaps, c.segments.len()), (None, 300, 16, 1, 3));
        assert_eq!(c.upto_version(6).unwrap().len(), 1);
        assert_eq!(c.upto_version(9).unwrap().len(), 2);
        assert_eq!(c.upto_version(16).unwrap().len(), 3);
        assert!(c.upto_version(17).is_none());
        let cover: Vec<_> = c.clean_cover().unwrap().iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(cover, vec![(0, 100), (100, 300)]);
        // The same segment twice in a listing (a duplicate row) is harmless.
        let g = gen(&[(0, 100, 1, 6), (0, 100, 1, 6), (100, 200, 7, 11)]);
        let c = g.chain(|s| s.name());
        assert_eq!((c.broken, c.end, c.last, c.overlaps), (None, 200, 11, 1));
        // A partial overlap has no clean cover; a gap after it ends the
        // usable prefix, which still restores what comes before.
        let g = gen(&[(0, 100, 1, 6), (50, 150, 4, 8), (100, 200, 7, 11), (250, 300, 13, 14)]);
        let c = g.chain(|s| s.name());
        assert!(c.broken.as_deref().unwrap().contains("bytes 200..250 is missing"));
        assert_eq!((c.end, c.last, c.segments.len()), (200, 11, 3));
        let cover: Vec<_> = c.clean_cover().unwrap().iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(cover, vec![(0, 100), (100, 200)]);
        let g = gen(&[(0, 100, 1, 6), (50, 150, 4, 8)]);
        assert!(g.chain(|s| s.name()).clean_cover().is_none());
        // Versions that do not fit the bytes.
        let g = gen(&[(0, 100, 1, 6), (50, 150, 4, 5)]);
        assert!(g.chain(|s| s.name()).broken.unwrap().contains("do not fit"));
    }

    #[test]
    fn a_generation_started_past_freed_bytes_has_a_head_and_its_chain_starts_there() {
        let g1 = Generation::name(9, 5);
        let head = Head { from: 4096, first: 40, size: HEAD_SIZE };
        let seg = |a: u64, b: u64, f, l| Segment {
            start: a,
            end: b,
            first: f,
            last: l,
            first_us: 0,
            last_us: 0,
            size: b - a,
            recycled: 0,
        };
        let objects = vec![
            obj(&format!("p/{g1}/{}", seg(4096, 5000, 31, 45).name()), 904),
            obj(&format!("p/{g1}/{}", head.name()), HEAD_SIZE),
            obj(&format!("p/{g1}/{}", seg(5000, 6000, 46, 50).name()), 1000),
            obj(&format!("p/{g1}/head-{:020}-{:020}", 8192, 1), HEAD_SIZE),
        ];
        let cat = Catalog::from_objects("p/", &objects);
        assert_eq!(cat.foreign, vec![format!("p/{g1}/head-{:020}-{:020}", 8192, 1)], "a second head is foreign");
        let g = &cat.generations[0];
        assert_eq!((g.head, g.start(), g.first_version(), g.last_version()), (Some(head), 4096, 40, 50));
        let c = g.chain(|s| s.name());
        assert_eq!((c.broken.clone(), c.start, c.end, c.last), (None, 4096, 6000, 50));
        let cover: Vec<_> = c.clean_cover().unwrap().iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(cover, vec![(4096, 5000), (5000, 6000)]);
        // A head that is not a header's size breaks the chain.
        let mut bad = g.clone();
        bad.head = Some(Head { size: 100, ..head });
        assert!(bad.check_chain(|s| s.name()).unwrap_err().contains("not a 512-byte log header"));
        // A head with the frames read in place below `from`: the header and
        // the bytes `[low, from)`; no more than lie between 512 and `from`.
        let with = Head { size: HEAD_SIZE + 1024, ..head };
        assert!(with.size_ok() && with.low() == 3072);
        let mut good = g.clone();
        good.head = Some(with);
        assert!(good.check_chain(|s| s.name()).is_ok());
        assert!(!Head { size: HEAD_SIZE + 4096 - 511, ..head }.size_ok(), "bytes below the header");
        // A head names a start past the header.
        assert!(Head::parse(&format!("head-{:020}-{:020}", 512, 1), HEAD_SIZE).is_none());
    }
}
