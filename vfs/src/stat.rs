//! A file's length and identity, asked of the file system without asking
//! for its timestamps.
//!
//! Why: since Linux 6.13 (multigrain timestamps, on ext4, XFS, btrfs,
//! tmpfs), once any process has *asked* for a file's ctime or mtime, the
//! file's next write stamps it with a fine-grained time instead of the
//! coarse clock tick, so that the asker can see the change. `std`'s
//! `metadata()` always asks for every field (`statx(STATX_ALL)`). A log
//! whose readers stat it after every commit they see (`Log::refresh`), and
//! whose writer stats its name before every write transaction (the
//! `SQLITE_FCNTL_HAS_MOVED` check), thus had its timestamps changed by
//! every commit, where a file nobody asks about changes them once a tick.
//! A changed timestamp dirties the inode, and `fdatasync` on ext4 without
//! a journal then writes the inode's block and waits for it: a third
//! synchronous write per commit beside the data and the cache flush (with
//! a journal it costs a journal handle per commit instead). Measured
//! (docs/benchmarks.md, issue 23): 3.0 block writes per FULL commit
//! against stock WAL's 2.2–2.4, the writer blocked three times per commit
//! and waiting for a CPU after each while readers ran.
//!
//! So the hot paths ask `statx` for `STATX_SIZE` or `STATX_INO` alone
//! (and so does opening, which a process per transaction pays each time),
//! which leaves the timestamps unqueried. Where `statx` is refused (an old
//! kernel, a seccomp filter), `std`'s `metadata()` answers instead: the
//! answer is the same, only the timestamp side effect returns.

use std::fs::File;
use std::io;
use std::path::Path;

/// The length of the open file `f`.
pub fn len(f: &File) -> io::Result<u64> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let Some(s) = statx(f.as_raw_fd(), c"", libc::AT_EMPTY_PATH, libc::STATX_SIZE)? {
            return Ok(s.stx_size);
        }
    }
    Ok(f.metadata()?.len())
}

/// What identifies the file `path` names (following symbolic links):
/// (device, inode), as `std::os::unix::fs::MetadataExt::{dev, ino}` give
/// them, so the two may be compared.
pub fn identity(path: &Path) -> io::Result<(u64, u64)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        // A name with a NUL byte cannot be passed to the kernel: `std`
        // reports that (below) as it reports it for every other call.
        if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) {
            if let Some(s) = statx(libc::AT_FDCWD, &c, 0, libc::STATX_INO)? {
                return Ok((libc::makedev(s.stx_dev_major, s.stx_dev_minor), s.stx_ino));
            }
        }
    }
    let m = std::fs::metadata(path)?;
    Ok(file_id(&m))
}

/// (device, inode) of the open file `f`, comparable with [`identity`].
pub fn identity_of(f: &File) -> io::Result<(u64, u64)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let Some(s) = statx(f.as_raw_fd(), c"", libc::AT_EMPTY_PATH, libc::STATX_INO)? {
            return Ok((libc::makedev(s.stx_dev_major, s.stx_dev_minor), s.stx_ino));
        }
    }
    Ok(file_id(&f.metadata()?))
}

/// (device, inode) of metadata `std` read.
pub fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// `statx` asking for `mask` only. `Ok(None)`: statx is not available, or
/// did not give the fields asked for; use `std` instead.
#[cfg(target_os = "linux")]
fn statx(dirfd: libc::c_int, path: &std::ffi::CStr, flags: libc::c_int, mask: u32) -> io::Result<Option<libc::statx>> {
    let mut buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `path` is NUL-terminated and `buf` is a writable statx struct,
    // both valid for the call; the kernel writes only into `buf`.
    let rc = unsafe { libc::statx(dirfd, path.as_ptr(), flags | libc::AT_STATX_SYNC_AS_STAT, mask, buf.as_mut_ptr()) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::EINVAL) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: statx returned 0, so the kernel filled `buf` (and it was
    // zeroed before: every field is initialised either way).
    let s = unsafe { buf.assume_init() };
    Ok((s.stx_mask & mask == mask).then_some(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn len_and_identity_agree_with_std() {
        let dir = std::env::temp_dir().join(format!("pagelog-stat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, vec![7u8; 12_345]).unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(len(&f).unwrap(), f.metadata().unwrap().len());
        assert_eq!(len(&f).unwrap(), 12_345);
        assert_eq!(identity(&p).unwrap(), file_id(&std::fs::metadata(&p).unwrap()));
        assert_eq!(identity_of(&f).unwrap(), identity(&p).unwrap());
        // Another file at the same name is another identity.
        let before = identity(&p).unwrap();
        let q = dir.join("g");
        std::fs::write(&q, b"x").unwrap();
        std::fs::rename(&q, &p).unwrap();
        assert_ne!(identity(&p).unwrap(), before);
        assert_eq!(len(&f).unwrap(), 12_345, "the open file keeps its length");
        assert_eq!(identity_of(&f).unwrap(), before, "and its identity");
        std::fs::remove_file(&p).unwrap();
        assert_eq!(identity(&p).unwrap_err().kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir(&dir).unwrap();
    }
}
