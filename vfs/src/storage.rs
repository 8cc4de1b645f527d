//! All writes to a log go through [`LogFile`], a narrow interface so that tests
//! can substitute a file that injects faults or models a disk cache. Reads of
//! committed data go through the memory map (see `log.rs`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Zeros to write from (pre-allocation, discarded spills) without
/// allocating: in .bss, so it costs no file size and no memory until read.
pub(crate) static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

static SYNCS: AtomicU64 = AtomicU64::new(0);

/// How many times this process has synced a log file (fdatasync), all logs
/// together. The speedtest reports it per commit.
pub fn sync_count() -> u64 {
    SYNCS.load(Ordering::Relaxed)
}

/// The contract: `write_at` either writes all of `buf` or fails; data written
/// is visible to `read_at` (and to memory maps of the same file) at once, and
/// durable only after `sync` returns Ok.
#[allow(clippy::len_without_is_empty)]
pub trait LogFile: Send + Sync {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Reads what the file holds of `buf.len()` bytes at `offset`: fewer
    /// only at the end of the file. Returns how many were read.
    fn read_upto(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = self.len()?.saturating_sub(offset).min(buf.len() as u64) as usize;
        self.read_at(&mut buf[..n], offset)?;
        Ok(n)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn sync(&self) -> io::Result<()>;
    /// Frees `len` bytes at `offset` (they then read as zeros; the file
    /// keeps its size): `fallocate(PUNCH_HOLE | KEEP_SIZE)`. A file system
    /// that cannot is not an error: the bytes stay, unread (format 4). The
    /// default keeps them (test wrappers, compaction's new file).
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
}

impl LogFile for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
    fn read_upto(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match FileExt::read_at(self, &mut buf[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        // Not `metadata()`: that asks for the timestamps too, which makes
        // the writer's next commit dirty the inode (see stat.rs).
        crate::stat::len(self)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn sync(&self) -> io::Result<()> {
        SYNCS.fetch_add(1, Ordering::Relaxed);
        self.sync_data()
    }
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a descriptor this File owns for the
        // duration of the call; no memory is shared with it.
        let rc = unsafe {
            libc::fallocate(
                self.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                offset as libc::off_t,
                len as libc::off_t,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
            return Ok(());
        }
        Err(e)
    }
}
