//! Patches (format 3): a page stored as the byte ranges in which it differs
//! from a page image already in the log, its *base* (FORMAT.md, "Patches").
//!
//! This module only encodes, parses and applies: it does no I/O. A map entry
//! names a patch by its file offset + 1 ([`PATCH_TAG`]); every other entry
//! offset names a page image.
//!
//! Invariants:
//! * a patch's base is an image, never another patch, so a page is made by at
//!   most two reads (the base, the patch) whatever the history;
//! * [`parse`] accepts exactly the patches FORMAT.md allows: base 8-aligned,
//!   at least 512 and ending at or before the patch; n ≥ 1 ranges, each of
//!   length ≥ 1, in order, not overlapping, within the page; `data bytes`
//!   equal to their sum; reserved and padding bytes zero; the patch within
//!   the bytes given (its record's patch area, or what the file holds);
//! * [`diff`] + [`encode`] + [`apply`] give back the new page exactly.

use crate::format::FIRST_RECORD;

/// Added to a patch's file offset in a map entry (offsets are otherwise
/// multiples of 8).
pub const PATCH_TAG: u64 = 1;
/// The fixed part of a patch: base u64, ranges u16, reserved u16, data bytes u32.
pub const HEADER: usize = 16;
const RANGE: usize = 4;
/// No patch is larger than a patch area can be: 65,535 words of 8 bytes.
pub const MAX_SIZE: usize = u16::MAX as usize * 8;

/// True when a map entry's offset names a patch (format 3).
#[inline]
pub fn is_patch(entry_offset: u64) -> bool {
    entry_offset % 8 == PATCH_TAG
}

/// The file offset of the frame or patch a map entry names.
#[inline]
pub fn position(entry_offset: u64) -> u64 {
    entry_offset & !7
}

/// The largest patch pagelog writes for a page of `page_size` bytes:
/// √(128 × page size) (FORMAT.md's writer policy). Cumulative patches cost
/// about bound/2 + page size × row/bound bytes per commit for rows of `row`
/// bytes; with rows of ~64 bytes this bound is the minimum.
pub fn write_limit(page_size: u32) -> usize {
    ((128.0 * page_size as f64).sqrt()) as usize
}

/// A patch's size in the file: header, ranges and data, padded to 8.
pub fn size(ranges: usize, data_bytes: usize) -> usize {
    (HEADER + ranges * RANGE + data_bytes).next_multiple_of(8)
}

/// The ranges (start, length) in which `new` differs from `base`, close
/// ranges merged (a gap shorter than a range's 4-byte descriptor costs less
/// stored than described), or None when the patch would be larger than
/// `limit` bytes or the pages are equal.
pub fn diff(base: &[u8], new: &[u8], limit: usize) -> Option<Vec<(u16, u16)>> {
    debug_assert_eq!(base.len(), new.len());
    let mut ranges: Vec<(u16, u16)> = Vec::new();
    let mut data = 0usize;
    let n = new.len();
    let mut i = 0usize;
    while i < n {
        // Skip equal bytes 8 at a time.
        if i + 8 <= n && base[i..i + 8] == new[i..i + 8] {
            i += 8;
            continue;
        }
        if base[i] == new[i] {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        let mut j = end;
        // Extend while differences are at most RANGE bytes apart.
        while j < n && j - end <= RANGE {
            if base[j] != new[j] {
                end = j + 1;
            }
            j += 1;
        }
        // A range is at most u16::MAX long (only a 64 KiB page can need more).
        let mut s = start;
        while s < end {
            let len = (end - s).min(u16::MAX as usize);
            ranges.push((s as u16, len as u16));
            data += len;
            s += len;
        }
        if size(ranges.len(), data) > limit {
            return None;
        }
        i = end;
    }
    (!ranges.is_empty()).then_some(ranges)
}

/// Appends the patch that turns the image at `base` into `new` through
/// `ranges` (from [`diff`]) to `out`, padded to 8 bytes.
pub fn encode(base: u64, ranges: &[(u16, u16)], new: &[u8], out: &mut Vec<u8>) {
    let data: usize = ranges.iter().map(|r| r.1 as usize).sum();
    let start = out.len();
    out.extend_from_slice(&base.to_le_bytes());
    out.extend_from_slice(&(ranges.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(data as u32).to_le_bytes());
    for &(s, l) in ranges {
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&l.to_le_bytes());
    }
    for &(s, l) in ranges {
        out.extend_from_slice(&new[s as usize..s as usize + l as usize]);
    }
    out.resize(start + size(ranges.len(), data), 0);
}

/// A parsed patch: where its base is, how long it is, its ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub base: u64,
    /// Bytes it occupies in the file, padding included.
    pub size: usize,
    pub ranges: Vec<(u16, u16)>,
    /// Where its data starts, relative to the patch.
    data_at: usize,
}

/// Whether a patch at `at` may name `base` as its base image: a multiple of
/// 8, at least 512, ending at or before the patch (that it is an image is
/// `verify`'s check).
pub fn base_ok(base: u64, at: u64, page_size: u32) -> bool {
    base % 8 == 0 && base >= FIRST_RECORD && base.saturating_add(page_size as u64) <= at
}

/// The base offset a patch names (its first 8 bytes), unchecked.
pub fn base_of(b: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?))
}

/// The size a patch's header says it has, at most [`MAX_SIZE`] (a larger
/// one is no patch: [`parse`] then fails on the bytes it is given), to know
/// how many bytes to read before [`parse`]. None: fewer than 16 bytes.
pub fn stated_size(head: &[u8]) -> Option<usize> {
    let h = head.get(..HEADER)?;
    let n = u16::from_le_bytes([h[8], h[9]]) as usize;
    let data = u32::from_le_bytes(h[12..16].try_into().unwrap()) as usize;
    Some(size(n, data).min(MAX_SIZE + 8))
}

/// Parses the patch at the start of `b`, which lies at file offset `at`;
/// `b` holds at least what the patch may occupy (the rest of its patch
/// area, or of the file). Err: which rule it breaks.
pub fn parse(b: &[u8], at: u64, page_size: u32) -> Result<Patch, String> {
    if b.len() < HEADER {
        return Err(format!("a patch header of {HEADER} bytes ({} left)", b.len()));
    }
    let base = u64::from_le_bytes(b[0..8].try_into().unwrap());
    let n = u16::from_le_bytes(b[8..10].try_into().unwrap()) as usize;
    let reserved = u16::from_le_bytes(b[10..12].try_into().unwrap());
    let data_bytes = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
    if !base_ok(base, at, page_size) {
        return Err(format!("a base image at a multiple of 8 from {FIRST_RECORD}, ending by {at}: base {base}"));
    }
    if n == 0 || reserved != 0 {
        return Err(format!("at least one range and reserved 0: {n} ranges, reserved {reserved}"));
    }
    let len = size(n, data_bytes);
    if len > MAX_SIZE {
        return Err(format!("a patch of at most {MAX_SIZE} bytes: {len}"));
    }
    if len > b.len() {
        return Err(format!("a patch of {len} bytes within the {} bytes left", b.len()));
    }
    let mut ranges = Vec::with_capacity(n);
    let mut sum = 0usize;
    let mut next = 0usize;
    for i in 0..n {
        let r = HEADER + i * RANGE;
        let s = u16::from_le_bytes(b[r..r + 2].try_into().unwrap()) as usize;
        let l = u16::from_le_bytes(b[r + 2..r + 4].try_into().unwrap()) as usize;
        if l == 0 || s < next || s + l > page_size as usize {
            return Err(format!("range {i} non-empty, in order and within the page: start {s}, length {l}"));
        }
        next = s + l;
        sum += l;
        ranges.push((s as u16, l as u16));
    }
    if sum != data_bytes {
        return Err(format!("data bytes {sum} (the ranges' sum): {data_bytes}"));
    }
    let data_at = HEADER + n * RANGE;
    if b[data_at + data_bytes..len].iter().any(|&x| x != 0) {
        return Err("zero padding".into());
    }
    Ok(Patch { base, size: len, ranges, data_at })
}

impl Patch {
    /// Turns `page` (a copy of the base image) into the page this patch
    /// makes; `b` is the patch's bytes as given to [`parse`].
    pub fn apply(&self, b: &[u8], page: &mut [u8]) {
        let mut d = self.data_at;
        for &(s, l) in &self.ranges {
            let (s, l) = (s as usize, l as usize);
            page[s..s + l].copy_from_slice(&b[d..d + l]);
            d += l;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(base: &[u8], new: &[u8]) -> Option<usize> {
        let ranges = diff(base, new, usize::MAX)?;
        let mut out = vec![0xAA; 3]; // encode appends
        encode(4096, &ranges, new, &mut out);
        let p = parse(&out[3..], 4096 + base.len() as u64, base.len() as u32).unwrap();
        assert_eq!(p.size, out.len() - 3);
        let mut page = base.to_vec();
        p.apply(&out[3..], &mut page);
        assert_eq!(page, new);
        Some(p.size)
    }

    #[test]
    fn diff_encode_apply_give_back_the_page() {
        let mut state = 7u64;
        for ps in [512usize, 1024, 4096, 65536] {
            let base: Vec<u8> = (0..ps).map(|_| crate::format::splitmix64(&mut state) as u8).collect();
            assert_eq!(round_trip(&base, &base), None, "equal pages make no patch");
            for changes in [1usize, 2, 5, 40] {
                let mut new = base.clone();
                for _ in 0..changes {
                    let at = (crate::format::splitmix64(&mut state) as usize) % ps;
                    let len = 1 + (crate::format::splitmix64(&mut state) as usize) % 20;
                    for b in &mut new[at..(at + len).min(ps)] {
                        *b = !*b;
                    }
                }
                round_trip(&base, &new).unwrap();
            }
            let inverted: Vec<u8> = base.iter().map(|b| !b).collect();
            round_trip(&base, &inverted).unwrap(); // one range per 65,535 bytes
            assert_eq!(diff(&base, &inverted, write_limit(ps as u32)), None, "over the limit");
        }
    }

    #[test]
    fn parse_refuses_what_the_format_does_not_allow() {
        let base = vec![0u8; 1024];
        let mut new = base.clone();
        new[10] = 1;
        new[500] = 2;
        let mut good = Vec::new();
        encode(512, &diff(&base, &new, 1000).unwrap(), &new, &mut good);
        let at = 4096;
        assert!(parse(&good, at, 1024).is_ok());
        let set = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            parse(&b, at, 1024)
        };
        assert!(set(&|b| b[0] = 1).is_err(), "base not 8-aligned");
        assert!(set(&|b| b[..8].copy_from_slice(&8u64.to_le_bytes())).is_err(), "base below 512");
        assert!(set(&|b| b[..8].copy_from_slice(&3584u64.to_le_bytes())).is_err(), "base overlaps the patch");
        assert!(set(&|b| b[8..10].copy_from_slice(&0u16.to_le_bytes())).is_err(), "no ranges");
        assert!(set(&|b| b[10] = 1).is_err(), "reserved");
        assert!(set(&|b| b[12] ^= 1).is_err(), "data bytes");
        assert!(set(&|b| b[12..16].copy_from_slice(&u32::MAX.to_le_bytes())).is_err(), "over MAX_SIZE");
        assert!(stated_size(&[0xFF; 16]).unwrap() <= MAX_SIZE + 8, "what a reader allocates is bounded");
        assert!(set(&|b| b[16..18].copy_from_slice(&600u16.to_le_bytes())).is_err(), "ranges out of order");
        assert!(set(&|b| b[22..24].copy_from_slice(&600u16.to_le_bytes())).is_err(), "past the page");
        assert!(set(&|b| *b.last_mut().unwrap() = 9).is_err(), "padding");
        assert!(parse(&good[..good.len() - 8], at, 1024).is_err(), "cut short");
        assert!(is_patch(4097) && !is_patch(4096) && position(4097) == 4096);
    }
}
