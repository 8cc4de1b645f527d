//! A read-only decoder of SQLite's b-tree file format over one [`Version`]:
//! page headers, cells, payloads with their overflow chains, and records
//! (<https://sqlite.org/fileformat2.html>, sections 1.6 and 2.1).
//!
//! Invariants: every offset read from a page is checked against the page's
//! usable size before use, every overflow chain is bounded by the number of
//! pages in the database, and every failure is a [`DiffError::Malformed`]
//! naming the page — a damaged log gives an error, never a panic or a loop.
//! Pages are read through [`Pages`], which counts the distinct frames it
//! reads (the "pages read" of `pagelog diff`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;

use super::{DiffError, Value};
use crate::log::Version;

/// The four b-tree page types (first byte of the page header).
pub const INTERIOR_INDEX: u8 = 2;
pub const INTERIOR_TABLE: u8 = 5;
pub const LEAF_INDEX: u8 = 10;
pub const LEAF_TABLE: u8 = 13;

/// Page reads of one version, counted by frame.
pub struct Pages<'v> {
    pub version: &'v Version,
    /// Page size minus the reserved bytes at the end of each page (header byte 20).
    pub usable: usize,
    /// Text encoding of the database (header offset 56): 1 UTF-8, 2 UTF-16le, 3 UTF-16be.
    pub encoding: u32,
    read: RefCell<HashSet<u64>>,
}

impl<'v> Pages<'v> {
    pub fn new(version: &'v Version) -> Result<Pages<'v>, DiffError> {
        let mut p = Pages { version, usable: version.page_size as usize, encoding: 1, read: RefCell::default() };
        if version.db_pages() == 0 {
            return Ok(p);
        }
        let page1 = p.page(1)?;
        if page1.len() < 100 || &page1[..16] != b"SQLite format 3\0" {
            return Err(DiffError::malformed(version.number, 1, "no SQLite header on page 1"));
        }
        let reserved = page1[20] as usize;
        p.usable = (version.page_size as usize).saturating_sub(reserved);
        if p.usable < 480 {
            return Err(DiffError::malformed(version.number, 1, format!("usable page size {} below 480", p.usable)));
        }
        p.encoding = u32::from_be_bytes(page1[56..60].try_into().unwrap()).max(1);
        Ok(p)
    }

    /// The image of page `pgno`; an error naming it when it is outside the database.
    pub fn page(&self, pgno: u32) -> Result<Cow<'v, [u8]>, DiffError> {
        let v = self.version;
        match v.page(pgno).map_err(DiffError::Log)? {
            Some(p) => {
                if let Some(slot) = v.map.get(pgno) {
                    self.read.borrow_mut().insert(slot.offset);
                }
                Ok(p)
            }
            None => Err(DiffError::malformed(
                v.number,
                pgno,
                format!("page outside the database of {} pages", v.db_pages()),
            )),
        }
    }

    /// The frames read so far (each counted once).
    pub fn frames_read(&self) -> HashSet<u64> {
        self.read.borrow().clone()
    }

    pub fn err(&self, pgno: u32, what: impl Into<String>) -> DiffError {
        DiffError::malformed(self.version.number, pgno, what)
    }
}

/// A parsed b-tree page: its type, cell pointers and right-most child.
pub struct Node<'v> {
    pub pgno: u32,
    pub kind: u8,
    pub data: Cow<'v, [u8]>,
    /// Offsets of the cells, in key order.
    pub cells: Vec<usize>,
    /// Right-most child (interior pages only).
    pub right: u32,
}

impl<'v> Node<'v> {
    pub fn read(pages: &Pages<'v>, pgno: u32) -> Result<Node<'v>, DiffError> {
        let data = pages.page(pgno)?;
        let usable = pages.usable.min(data.len());
        let h = if pgno == 1 { 100 } else { 0 };
        let kind = data[h];
        let interior = match kind {
            INTERIOR_INDEX | INTERIOR_TABLE => true,
            LEAF_INDEX | LEAF_TABLE => false,
            k => return Err(pages.err(pgno, format!("b-tree page type {k} (expected 2, 5, 10 or 13)"))),
        };
        let hlen = if interior { 12 } else { 8 };
        let n = u16::from_be_bytes([data[h + 3], data[h + 4]]) as usize;
        let ptrs = h + hlen;
        if ptrs + 2 * n > usable {
            return Err(pages.err(pgno, format!("{n} cells do not fit in the page")));
        }
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            let off = u16::from_be_bytes([data[ptrs + 2 * i], data[ptrs + 2 * i + 1]]) as usize;
            if off < ptrs + 2 * n || off + 4 > usable {
                return Err(pages.err(pgno, format!("cell {i} at offset {off} outside the cell area")));
            }
            cells.push(off);
        }
        let right = if interior { u32::from_be_bytes(data[h + 8..h + 12].try_into().unwrap()) } else { 0 };
        let data = match data {
            Cow::Borrowed(b) => Cow::Borrowed(&b[..usable]),
            Cow::Owned(mut v) => {
                v.truncate(usable);
                Cow::Owned(v)
            }
        };
        Ok(Node { pgno, kind, data, cells, right })
    }

    pub fn is_leaf(&self) -> bool {
        self.kind == LEAF_INDEX || self.kind == LEAF_TABLE
    }

    pub fn is_table(&self) -> bool {
        self.kind == LEAF_TABLE || self.kind == INTERIOR_TABLE
    }

    /// Left child of interior cell `i`.
    pub fn child(&self, i: usize) -> u32 {
        let o = self.cells[i];
        u32::from_be_bytes(self.data[o..o + 4].try_into().unwrap())
    }

    /// All children in key order (interior pages), the right-most last.
    pub fn children(&self) -> Vec<u32> {
        let mut c: Vec<u32> = (0..self.cells.len()).map(|i| self.child(i)).collect();
        c.push(self.right);
        c
    }

    /// The cell `i` of a leaf or interior index page, or a table leaf:
    /// its rowid (table leaves), and where its payload lies.
    pub fn cell(&self, pages: &Pages<'_>, i: usize) -> Result<Cell, DiffError> {
        let mut at = self.cells[i];
        if self.kind == INTERIOR_INDEX {
            at += 4;
        }
        let (size, n) =
            varint(&self.data, at).ok_or_else(|| pages.err(self.pgno, format!("cell {i}: truncated size")))?;
        at += n;
        let rowid = if self.kind == LEAF_TABLE {
            let (r, n) =
                varint(&self.data, at).ok_or_else(|| pages.err(self.pgno, format!("cell {i}: truncated rowid")))?;
            at += n;
            r as i64
        } else {
            0
        };
        let u = pages.usable as u64;
        if size > pages.version.db_pages() as u64 * u {
            return Err(pages.err(self.pgno, format!("cell {i}: payload of {size} bytes is larger than the database")));
        }
        let max_local = if self.kind == LEAF_TABLE { u - 35 } else { (u - 12) * 64 / 255 - 23 };
        let min_local = (u - 12) * 32 / 255 - 23;
        let (local, overflow) = if size <= max_local {
            (size as usize, 0)
        } else {
            let k = min_local + (size - min_local) % (u - 4);
            let local = if k <= max_local { k } else { min_local } as usize;
            if at + local + 4 > self.data.len() {
                return Err(pages.err(self.pgno, format!("cell {i}: payload runs past the page")));
            }
            (local, u32::from_be_bytes(self.data[at + local..at + local + 4].try_into().unwrap()))
        };
        if at + local > self.data.len() {
            return Err(pages.err(self.pgno, format!("cell {i}: payload runs past the page")));
        }
        Ok(Cell { pgno: self.pgno, rowid, size, start: at, local, overflow })
    }

    /// The key of interior table cell `i` (a rowid).
    pub fn interior_rowid(&self, pages: &Pages<'_>, i: usize) -> Result<i64, DiffError> {
        varint(&self.data, self.cells[i] + 4)
            .map(|(v, _)| v as i64)
            .ok_or_else(|| pages.err(self.pgno, format!("interior cell {i}: truncated key")))
    }
}

/// Where a cell's payload lies: `local` bytes at `start` of page `pgno`, the
/// rest in the overflow chain starting at page `overflow` (0: none).
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    pub pgno: u32,
    pub rowid: i64,
    pub size: u64,
    pub start: usize,
    pub local: usize,
    pub overflow: u32,
}

impl Cell {
    /// The whole payload; `chain` receives the overflow pages it visits.
    pub fn payload(&self, pages: &Pages<'_>, node: &Node<'_>, chain: &mut Vec<u32>) -> Result<Vec<u8>, DiffError> {
        let mut out = Vec::with_capacity(self.size as usize);
        out.extend_from_slice(&node.data[self.start..self.start + self.local]);
        let mut next = self.overflow;
        let limit = pages.version.db_pages() as usize;
        while (out.len() as u64) < self.size {
            if next == 0 || chain.len() >= limit {
                return Err(pages.err(self.pgno, format!("overflow chain of a {}-byte payload ends early", self.size)));
            }
            let p = pages.page(next)?;
            chain.push(next);
            let usable = pages.usable.min(p.len());
            let want = ((self.size - out.len() as u64) as usize).min(usable - 4);
            out.extend_from_slice(&p[4..4 + want]);
            next = u32::from_be_bytes(p[..4].try_into().unwrap());
        }
        Ok(out)
    }

    /// The overflow pages of this payload, without decoding it.
    pub fn chain(&self, pages: &Pages<'_>) -> Result<Vec<u32>, DiffError> {
        let mut chain = Vec::new();
        let mut next = self.overflow;
        let mut left = self.size.saturating_sub(self.local as u64);
        let limit = pages.version.db_pages() as usize;
        while left > 0 {
            if next == 0 || chain.len() >= limit {
                return Err(pages.err(self.pgno, format!("overflow chain of a {}-byte payload ends early", self.size)));
            }
            let p = pages.page(next)?;
            chain.push(next);
            left = left.saturating_sub((pages.usable.min(p.len()) - 4) as u64);
            next = u32::from_be_bytes(p[..4].try_into().unwrap());
        }
        Ok(chain)
    }
}

/// A SQLite varint at `at`: (value, length), None when it runs past `b`.
pub fn varint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let byte = *b.get(at + i)?;
        if i == 8 {
            return Some(((v << 8) | byte as u64, 9));
        }
        v = (v << 7) | (byte & 0x7f) as u64;
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Decodes a record (header of serial types, then the values). `encoding`
/// is the database's text encoding; text is returned as UTF-8 bytes.
pub fn record(b: &[u8], encoding: u32) -> Result<Vec<Value>, String> {
    let (hlen, n) = varint(b, 0).ok_or("truncated record header")?;
    let hlen = hlen as usize;
    if hlen > b.len() || hlen < n {
        return Err(format!("record header of {hlen} bytes in a {}-byte payload", b.len()));
    }
    let mut at = n;
    let mut body = hlen;
    let mut vals = Vec::new();
    while at < hlen {
        let (t, n) = varint(&b[..hlen], at).ok_or("truncated serial type")?;
        at += n;
        let len = match t {
            0 | 8 | 9 => 0,
            1..=4 => t as usize,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => return Err(format!("reserved serial type {t}")),
            t => ((t - 12) / 2) as usize,
        };
        let end = body.checked_add(len).filter(|&e| e <= b.len()).ok_or("record value runs past its payload")?;
        let d = &b[body..end];
        let int = |d: &[u8]| {
            let mut v: i64 = if d[0] & 0x80 != 0 { -1 } else { 0 };
            for &x in d {
                v = (v << 8) | x as i64;
            }
            v
        };
        vals.push(match t {
            0 => Value::Null,
            1..=6 => Value::Integer(int(d)),
            7 => Value::Real(f64::from_bits(u64::from_be_bytes(d.try_into().unwrap()))),
            8 => Value::Integer(0),
            9 => Value::Integer(1),
            t if t % 2 == 0 => Value::Blob(d.to_vec()),
            _ => Value::Text(text(d, encoding)),
        });
        body = end;
    }
    Ok(vals)
}

fn text(d: &[u8], encoding: u32) -> Vec<u8> {
    let units = |be: bool| -> Vec<u16> {
        d.chunks_exact(2)
            .map(|c| if be { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) })
            .collect()
    };
    match encoding {
        2 => String::from_utf16_lossy(&units(false)).into_bytes(),
        3 => String::from_utf16_lossy(&units(true)).into_bytes(),
        _ => d.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_of_one_to_nine_bytes_decode() {
        assert_eq!(varint(&[0x7f], 0), Some((127, 1)));
        assert_eq!(varint(&[0x81, 0x00], 0), Some((128, 2)));
        assert_eq!(varint(&[0xff; 9], 0), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81], 0), None);
    }

    #[test]
    fn records_decode_every_serial_type() {
        // header: len 8, types NULL, int8, int16, real, 0, 1, text(1), blob(1)
        let mut r = vec![9, 0, 1, 2, 7, 8, 9, 15, 14];
        r.extend_from_slice(&[0xff, 0x01, 0x00]);
        r.extend_from_slice(&1.5f64.to_bits().to_be_bytes());
        r.extend_from_slice(b"ab");
        let v = record(&r, 1).unwrap();
        assert_eq!(
            v,
            vec![
                Value::Null,
                Value::Integer(-1),
                Value::Integer(256),
                Value::Real(1.5),
                Value::Integer(0),
                Value::Integer(1),
                Value::Text(b"a".to_vec()),
                Value::Blob(b"b".to_vec())
            ]
        );
        assert!(record(&[2, 10], 1).is_err());
        assert!(record(&[2, 6], 1).is_err());
    }
}
