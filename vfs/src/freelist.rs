//! The free list of a format-4 CONTROL record (vfs/FORMAT.md, "The free
//! list"; docs/format-4.md, "Punching dead frames in place"): byte ranges
//! that a reclamation step found dead and that are not yet punched (or,
//! later, recycled).
//!
//! # Invariants
//! 1. A list is sorted by offset, strictly increasing; its ranges do not
//!    overlap; each starts at or after the header (512), is at least 512
//!    bytes long, and ends at or before the CONTROL record that lists it
//!    (what a step frees was written before it). Anything else read from a
//!    log is damage naming the record.
//! 2. A SLOT range is one whole frame slot: its length a valid page size
//!    and its offset a multiple of `format::slot_align(length)` (the range
//!    says its own page size: a list outlives page-size changes, and a
//!    checkpoint's CONTROL copy of another page size repeats it). Flag bits
//!    other than SLOT are zero.
//! 3. What a list means (the writer's rule, not checked here): no version
//!    the log holds from the listing record on, and nothing its control
//!    state names, reaches any byte of a listed range — except a page image
//!    that a (RECYCLED) commit after the listing record wrote into a listed
//!    SLOT range (`slots.rs`): recycled, and live until a step finds it
//!    dead again; the next list leaves it out. So a listed range
//!    may be punched once its record is durable and no reader holds an
//!    older epoch; a range the writer is unsure of is never listed.
//! 4. The list is a to-do list: a range leaves it once punched (`without`),
//!    and `union` keeps every byte of both lists listed.

use crate::format::{self, FREE_ENTRY_SIZE, FREE_SLOT};
use crate::tree;

/// One free-list entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FreeRange {
    pub offset: u64,
    pub length: u32,
    pub flags: u32,
}

impl FreeRange {
    /// A run of bytes (no flags).
    pub fn run(offset: u64, length: u32) -> FreeRange {
        FreeRange { offset, length, flags: 0 }
    }

    /// One whole frame slot of `page_size` bytes at `offset`.
    pub fn slot(offset: u64, page_size: u32) -> FreeRange {
        FreeRange { offset, length: page_size, flags: FREE_SLOT }
    }

    pub fn end(&self) -> u64 {
        self.offset + self.length as u64
    }

    pub fn is_slot(&self) -> bool {
        self.flags & FREE_SLOT != 0
    }
}

/// The list's bytes, as a CONTROL record holds it after its straggler table.
pub fn encode(list: &[FreeRange]) -> Vec<u8> {
    let mut out = Vec::with_capacity(list.len() * FREE_ENTRY_SIZE);
    for r in list {
        out.extend_from_slice(&r.offset.to_le_bytes());
        out.extend_from_slice(&r.length.to_le_bytes());
        out.extend_from_slice(&r.flags.to_le_bytes());
    }
    out
}

/// The free list of the CONTROL record at `record`, `n` entries at the
/// start of `bytes`, checked against invariants 1 and 2.
/// Err: damage naming the record.
pub fn parse(record: u64, n: usize, bytes: &[u8]) -> Result<Vec<FreeRange>, tree::Damage> {
    let bad = |found: String| tree::Damage {
        offset: record,
        expected: "a free list sorted by offset, its ranges apart, each of 512 bytes or more \
                   in [512, the record), a slot a page long at a slot boundary"
            .into(),
        found,
    };
    let Some(b) = n.checked_mul(FREE_ENTRY_SIZE).and_then(|len| bytes.get(..len)) else {
        return Err(bad(format!("{} bytes for {n} free-list entries", bytes.len())));
    };
    let mut out: Vec<FreeRange> = Vec::with_capacity(n);
    for e in b.chunks_exact(FREE_ENTRY_SIZE) {
        let r = FreeRange {
            offset: u64::from_le_bytes(e[..8].try_into().expect("8 bytes")),
            length: u32::from_le_bytes(e[8..12].try_into().expect("4 bytes")),
            flags: u32::from_le_bytes(e[12..16].try_into().expect("4 bytes")),
        };
        let placed = r.offset >= format::FIRST_RECORD
            && r.length >= 512
            && r.offset.checked_add(r.length as u64).is_some_and(|end| end <= record);
        let slot_ok =
            !r.is_slot() || (format::valid_page_size(r.length) && r.offset % format::slot_align(r.length) == 0);
        let after = out.last().is_none_or(|l| l.end() <= r.offset);
        if !placed || !slot_ok || r.flags & !FREE_SLOT != 0 || !after {
            return Err(bad(format!("the entry ({}, {}, flags {:#x})", r.offset, r.length, r.flags)));
        }
        out.push(r);
    }
    Ok(out)
}

/// Every byte of `a` and of `b` listed, as one valid list: duplicates once,
/// overlapping ranges merged into a run (a slot that overlaps anything
/// becomes part of a run: it is punched, not recycled), touching runs
/// merged, a slot that only touches its neighbours kept a slot. Ranges shorter than 512 bytes
/// after merging are left out: they stay allocated (invariant 3 allows
/// leaving a dead byte unlisted, never the reverse).
pub fn union(a: &[FreeRange], b: &[FreeRange]) -> Vec<FreeRange> {
    let mut all: Vec<FreeRange> = a.iter().chain(b).copied().filter(|r| r.length > 0).collect();
    all.sort_by_key(|r| (r.offset, std::cmp::Reverse(r.length)));
    let mut out: Vec<FreeRange> = Vec::with_capacity(all.len());
    for r in all {
        if let Some(l) = out.last_mut() {
            if *l == r || (l.offset <= r.offset && r.end() <= l.end() && !l.is_slot()) {
                continue; // already listed
            }
            let runs_touching = r.offset == l.end() && !l.is_slot() && !r.is_slot();
            if r.offset < l.end() || runs_touching {
                let end = l.end().max(r.end());
                if end - l.offset <= u32::MAX as u64 {
                    *l = FreeRange::run(l.offset, (end - l.offset) as u32);
                    continue;
                }
                // Too long for one entry: the rest starts a new run.
                let start = l.end();
                out.push(FreeRange::run(start, (end - start) as u32));
                continue;
            }
        }
        out.push(r);
    }
    out.retain(|r| r.length >= 512);
    out
}

/// The list's entries grouped into maximal runs of touching entries (one
/// ends where the next starts, slots and runs alike): `(start, end, n)`,
/// `n` the number of entries the run spans, in the list's order. Freeing a
/// run with one call frees exactly the bytes of its entries.
pub fn touching_runs(list: &[FreeRange]) -> Vec<(u64, u64, usize)> {
    let mut out: Vec<(u64, u64, usize)> = Vec::new();
    for r in list {
        match out.last_mut() {
            Some(l) if l.1 == r.offset => {
                l.1 = r.end();
                l.2 += 1;
            }
            _ => out.push((r.offset, r.end(), 1)),
        }
    }
    out
}

/// `list` without the ranges in `done` (each one of `list`'s entries,
/// punched): what the next CONTROL record lists.
pub fn without(list: &[FreeRange], done: &[FreeRange]) -> Vec<FreeRange> {
    list.iter().filter(|r| done.binary_search(r).is_err()).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REC: u64 = 1 << 20;

    fn parsed(list: &[FreeRange]) -> Result<Vec<FreeRange>, tree::Damage> {
        parse(REC, list.len(), &encode(list))
    }

    #[test]
    fn a_list_round_trips_through_its_bytes() {
        let l = vec![FreeRange::run(512, 3584), FreeRange::slot(8192, 4096), FreeRange::slot(12288, 4096)];
        let b = encode(&l);
        assert_eq!(b.len(), 48);
        assert_eq!(b[16..24], 8192u64.to_le_bytes());
        assert_eq!(b[24..28], 4096u32.to_le_bytes());
        assert_eq!(b[28..32], 1u32.to_le_bytes());
        assert_eq!(parsed(&l).ok(), Some(l));
        assert_eq!(parse(REC, 0, &[]).ok(), Some(vec![]));
        // Bytes past the list (the payload) are not read.
        let mut more = encode(&[FreeRange::run(600, 512)]);
        more.extend_from_slice(&[0xff; 40]);
        assert_eq!(parse(REC, 1, &more).ok(), Some(vec![FreeRange::run(600, 512)]));
        // A slot of a small page: a multiple of the page size, one page
        // long; of a big one, a multiple of 4096.
        assert!(parse(REC, 1, &encode(&[FreeRange::slot(3072, 1024)])).is_ok());
        assert!(parse(REC, 1, &encode(&[FreeRange::slot(8192 + 4096, 8192)])).is_ok());
    }

    #[test]
    fn a_bad_list_is_damage_naming_its_record() {
        for bad in [
            vec![FreeRange::run(8192, 4096), FreeRange::run(4096, 4096)], // unsorted
            vec![FreeRange::run(4096, 4096), FreeRange::run(4096, 4096)], // twice
            vec![FreeRange::run(4096, 4097), FreeRange::run(8192, 4096)], // overlapping by a byte
            vec![FreeRange::run(4096, 511)],                              // shorter than 512
            vec![FreeRange::run(0, 4096)],                                // the header
            vec![FreeRange::run(REC - 512, 513)],                         // past its record
            vec![FreeRange::run(u64::MAX - 600, 4096)],                   // past the end of offsets
            vec![FreeRange::slot(4096 + 512, 4096)],                      // a slot off its boundary
            vec![FreeRange { offset: 4096, length: 3072, flags: FREE_SLOT }], // a slot not a page size
            vec![FreeRange::slot(4096 + 1024, 2048)],                     // a slot off its boundary
            vec![FreeRange { offset: 4096, length: 4096, flags: 2 }],     // an unknown flag
        ] {
            let e = parsed(&bad).expect_err(&format!("{bad:?}"));
            assert_eq!(e.offset, REC, "{bad:?}");
            assert!(e.expected.contains("free list"), "{}", e.expected);
        }
        // A list cut short.
        let l = [FreeRange::run(4096, 4096), FreeRange::run(8192, 4096)];
        assert!(parse(REC, 2, &encode(&l)[..20]).is_err());
        assert!(parse(REC, usize::MAX, &encode(&l)).is_err());
        // Touching ranges are apart (end = next offset): fine.
        assert!(parsed(&[FreeRange::run(4096, 4096), FreeRange::run(8192, 4096)]).is_ok());
    }

    #[test]
    fn union_lists_every_byte_of_both_and_is_a_valid_list() {
        let a = [FreeRange::slot(8192, 4096), FreeRange::run(20_000, 1000)];
        let b = [
            FreeRange::slot(12288, 4096), // touching slot: stays a slot
            FreeRange::slot(8192, 4096),  // duplicate
            FreeRange::run(20_500, 2000), // overlapping run: merged
            FreeRange::run(22_500, 600),  // touching run: merged
            FreeRange::run(30_000, 100),  // too short: left out
            FreeRange::run(4096, 4096),   // touching a slot: apart
            FreeRange::run(14_000, 1000), // inside a slot: the slot becomes a run
        ];
        let u = union(&a, &b);
        assert_eq!(
            u,
            vec![
                FreeRange::run(4096, 4096),
                FreeRange::slot(8192, 4096),
                FreeRange::run(12288, 4096),
                FreeRange::run(20_000, 3100),
            ]
        );
        assert!(parse(REC, u.len(), &encode(&u)).is_ok());
        // Brute force: the bytes listed are those of both inputs (the short
        // one aside), over a small window.
        let listed = |l: &[FreeRange], x: u64| l.iter().any(|r| r.offset <= x && x < r.end());
        for x in (0..40_000).step_by(7) {
            let want = listed(&a, x) || (listed(&b, x) && !(30_000..30_100).contains(&x));
            assert_eq!(listed(&u, x), want, "byte {x}");
        }
        assert_eq!(without(&u, &[FreeRange::slot(8192, 4096)]), vec![u[0], u[2], u[3]]);
    }

    #[test]
    fn touching_entries_free_as_one_run() {
        let l = [
            FreeRange::run(4096, 4096),
            FreeRange::slot(8192, 4096),
            FreeRange::slot(12288, 4096),
            FreeRange::slot(20480, 4096), // a gap before it
            FreeRange::run(24576, 600),
            FreeRange::run(30_000, 512),
        ];
        assert_eq!(touching_runs(&l), vec![(4096, 16384, 3), (20480, 25176, 2), (30_000, 30_512, 1)]);
        assert_eq!(touching_runs(&[]), vec![]);
        // Every listed byte, and only those, in some run.
        let runs = touching_runs(&l);
        for x in (0..40_000u64).step_by(13) {
            let listed = l.iter().any(|r| r.offset <= x && x < r.end());
            assert_eq!(runs.iter().any(|&(s, e, _)| s <= x && x < e), listed, "byte {x}");
        }
    }
}
