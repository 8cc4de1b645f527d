//! The tail window: the bytes past a process's view of the log that one
//! `Log::refresh` reads in one system call.
//!
//! Why: a refresh that finds a new commit walks it field by field (the
//! header, the metadata and trailer its crc covers, each frame of a commit
//! not yet claimed durable, then the next header to see whether more
//! follows; the MARK that comes after a synced commit is the same walk
//! again). Past the committed end each of those reads was a `pread` of its
//! own: about eight system calls for a one-row commit, paid by every reader
//! for every commit that lands. With the window, a walk over the commits a
//! refresh finds costs one `pread` of [`WINDOW`] bytes plus one per record
//! that reaches past it: proportional to what changed, with a small
//! constant. A walk that reaches past the window grows it (one `pread`
//! per [`WINDOW`] bytes of new records, up to [`MAX_WINDOW`] held; past
//! that a new window starts where the walk reads).
//!
//! # Invariants
//! 1. The window is served only on the thread that read it, only to the
//!    `Log` that read it, and only while the closure given to
//!    [`Log::with_tail`] runs (a guard clears it, even on panic). No other
//!    code path, and no other connection's write path (which reads back
//!    its own spilled frames past the log end), ever sees it.
//! 2. It serves a read only when the read lies wholly inside the bytes one
//!    `pread` returned; a read before the window, or past the file's end,
//!    reads the file as before.
//! 3. The walk then sees the bytes as they were at one instant, which is
//!    what a walk whose reads all happened at that instant sees: every
//!    record is still checked against its crc and its predecessor, so a
//!    record being written while the window was read is not whole in it
//!    and ends the walk, as it would have without the window.

use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::log::Log;

/// Bytes past its view's end that a refresh reads at once: a one-row
/// commit with its patch of page 1 and its MARK is about 4.5 KiB of 4 KiB
/// pages; 16 KiB holds a few, and copying it costs less than one more
/// system call.
pub(crate) const WINDOW: usize = 16 << 10;

/// A walk over more new bytes than this (a reader far behind, or a large
/// transaction) reads them in windows of its own, never all at once.
const MAX_WINDOW: usize = 1 << 20;

struct Tail {
    /// The `Log` (its address) whose refresh holds the window; 0: none.
    owner: usize,
    at: u64,
    /// How many bytes of `buf` the read returned (fewer at the file's end).
    len: usize,
    /// Kept between refreshes, so that a refresh allocates nothing.
    buf: Vec<u8>,
}

thread_local! {
    static TAIL: RefCell<Tail> = const { RefCell::new(Tail { owner: 0, at: 0, len: 0, buf: Vec::new() }) };
}

/// Clears the window when the closure returns or unwinds (invariant 1).
struct Clear;

impl Drop for Clear {
    fn drop(&mut self) {
        TAIL.with(|t| t.borrow_mut().owner = 0);
    }
}

impl Log {
    /// Runs `f` with the [`WINDOW`] bytes at `at` read in one `pread`, which
    /// [`Log::read_tail`] then serves on this thread (see the module's
    /// invariants).
    pub(crate) fn with_tail<T>(&self, at: u64, f: impl FnOnce() -> Result<T>) -> Result<T> {
        TAIL.with(|t| {
            let mut t = t.borrow_mut();
            t.owner = 0;
            self.fill(&mut t, at, WINDOW)
        })?;
        let _clear = Clear;
        f()
    }

    /// Reads `want` bytes at `at` into the window (fewer at the file's end).
    fn fill(&self, t: &mut Tail, at: u64, want: usize) -> Result<()> {
        t.buf.resize(want.max(t.buf.len()), 0);
        let n = self.io.read_upto(&mut t.buf[..want], at).map_err(|e| Error::io(&self.path, "read", Some(at), e))?;
        (t.owner, t.at, t.len) = (self as *const Log as usize, at, n);
        Ok(())
    }

    /// Reads the bytes after the window's, up to `want` bytes in all.
    fn grow(&self, t: &mut Tail, want: usize) -> Result<()> {
        let (from, at) = (t.len, t.at + t.len as u64);
        t.buf.resize(want, 0);
        let n = self.io.read_upto(&mut t.buf[from..], at).map_err(|e| Error::io(&self.path, "read", Some(at), e))?;
        t.len = from + n;
        Ok(())
    }

    /// Fills `buf` from the window when `with_tail` of this log runs on
    /// this thread and the read lies at or after the window's start; a
    /// read reaching past what the window holds moves the window forward to
    /// it first (the walk goes forward: one `pread` per [`WINDOW`] bytes of
    /// new records, however many records that is). False: read the file
    /// (no window here, a read before it, or one past the file's end).
    pub(crate) fn read_tail(&self, offset: u64, buf: &mut [u8]) -> bool {
        let owner = self as *const Log as usize;
        TAIL.with(|t| {
            let mut t = t.borrow_mut();
            if t.owner != owner || offset < t.at {
                return false;
            }
            let inside = |t: &Tail| {
                let from = (offset - t.at) as usize;
                from.checked_add(buf.len()).filter(|&to| to <= t.len).map(|to| from..to)
            };
            if inside(&t).is_none() {
                // Past the window: grow it to hold this read and the next
                // WINDOW bytes (the walk checks the frames of the commits
                // it passed after passing them), or, past MAX_WINDOW, start
                // a new one here. A failed read leaves the file to answer.
                let to = offset.saturating_add(buf.len() as u64).saturating_add(WINDOW as u64);
                let want = to - t.at;
                let grown = if want <= MAX_WINDOW as u64 {
                    self.grow(&mut t, want as usize)
                } else {
                    self.fill(&mut t, offset, WINDOW.max(buf.len()))
                };
                if grown.is_err() {
                    t.owner = 0;
                    return false;
                }
            }
            match inside(&t) {
                Some(r) => {
                    buf.copy_from_slice(&t.buf[r]);
                    true
                }
                None => false,
            }
        })
    }
}
