//! Byte-range locks on open file descriptions (Linux `F_OFD_SETLK`).
//!
//! OFD locks belong to the open file description, not to the process, so two
//! connections in one process that each opened the log conflict with each
//! other exactly as two processes do, and closing one connection's file never
//! drops another connection's lock (the POSIX-lock trap SQLite's os_unix.c
//! works around with its inode table).
//!
//! The locked bytes lie far beyond any real file size; locks are advisory and
//! never touch data.
//!
//! | byte          | who holds it                         | mode      |
//! |---------------|--------------------------------------|-----------|
//! | [`WRITER`]    | the one connection writing (RESERVED and above) | exclusive |
//! | [`OPEN`]      | every connection while its file is open | shared  |
//! | [`WAIT_BASE`] + k | a connection waiting for WRITER, in age class k (waited about 2^k ms), only while it sleeps in the busy handler (sqlite/fair.rs) | shared |
//! | [`EPOCH_BASE`] + e | a reader whose snapshot was taken at epoch e (logs with a retention policy), for the length of its read transaction | shared |
//! | [`PUNCH`]     | a reclamation step, from before it looks for readers until its punch returned | exclusive |
//! | [`DMS`]       | every `Log` that maps the log's shared words (`shm.rs`), while it lives; exclusive only while (re)initialising them or removing the object as the last user | shared |
//! | [`SYNC`]      | the one group-commit syncer of the log (`group.rs`), for its `fdatasync` | exclusive |
//!
//! `pagelog compact` takes OPEN exclusively to prove nobody has the log open.
//! A reclamation step punches a region freed at epoch k only once
//! [`held_in`] finds no lock on the epoch bytes below k: no reader that
//! could still read it directly (docs/format-4.md, "Readers and the epoch
//! locks").

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

pub const WRITER: u64 = 1 << 62;
pub const OPEN: u64 = WRITER + 1;
/// Held by a step while it may be punching: a reader that took its epoch
/// lock after the step looked for readers waits until it is free before
/// it reads the log's tail (see `crate::epochs`).
pub const PUNCH: u64 = WRITER + 2;
/// The dead-man switch of the log's shared words (see `crate::shm`).
pub const DMS: u64 = WRITER + 3;
/// Held by the process syncing for a group of commits (see `crate::group`).
pub const SYNC: u64 = WRITER + 4;
/// Age class k's wait byte is `WAIT_BASE + k`, k < [`WAIT_LEVELS`].
pub const WAIT_BASE: u64 = WRITER + 16;
pub const WAIT_LEVELS: u64 = 16;
/// Epoch e's byte is `EPOCH_BASE + e` (epochs stay far below 2^61).
pub const EPOCH_BASE: u64 = WRITER + (1 << 20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

fn setlk(fd: BorrowedFd<'_>, byte: u64, ty: libc::c_short) -> io::Result<bool> {
    // SAFETY: flock is a plain C struct; all-zero is a valid value for it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ty;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    fl.l_pid = 0; // required by F_OFD_SETLK
                  // SAFETY: fd is a valid descriptor for the duration of the borrow and fl
                  // points to a live, initialised flock struct.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

/// Tries to take a lock on `byte` without waiting; `Ok(false)` when another
/// open file description holds a conflicting one.
pub fn try_lock(fd: BorrowedFd<'_>, byte: u64, mode: Mode) -> io::Result<bool> {
    let ty = match mode {
        Mode::Shared => libc::F_RDLCK,
        Mode::Exclusive => libc::F_WRLCK,
    };
    setlk(fd, byte, ty as libc::c_short)
}

pub fn unlock(fd: BorrowedFd<'_>, byte: u64) -> io::Result<()> {
    setlk(fd, byte, libc::F_UNLCK as libc::c_short).map(|_| ())
}

/// Takes a lock on `byte`, waiting while another open file description
/// holds a conflicting one (`F_OFD_SETLKW`).
pub fn lock_wait(fd: BorrowedFd<'_>, byte: u64, mode: Mode) -> io::Result<()> {
    let ty = match mode {
        Mode::Shared => libc::F_RDLCK,
        Mode::Exclusive => libc::F_WRLCK,
    };
    // SAFETY: flock is a plain C struct; all-zero is a valid value for it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ty as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    loop {
        // SAFETY: fd is a valid descriptor for the duration of the borrow
        // and fl points to a live, initialised flock struct.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLKW, &mut fl) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Whether any other open file description holds a lock on a byte of
/// `from..from + len` (`F_OFD_GETLK`: one system call, whatever the range).
pub fn held_in(fd: BorrowedFd<'_>, from: u64, len: u64) -> io::Result<bool> {
    if len == 0 {
        return Ok(false);
    }
    // SAFETY: flock is a plain C struct; all-zero is a valid value for it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = from as libc::off_t;
    fl.l_len = len as libc::off_t;
    fl.l_pid = 0; // required by F_OFD_GETLK
                  // SAFETY: fd is a valid descriptor for the duration of the borrow and fl
                  // points to a live, initialised flock struct that the call fills in.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn two_descriptions_in_one_process_conflict_and_closing_one_keeps_the_other() {
        let dir = std::env::temp_dir().join(format!("pagelog-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, b"x").unwrap();
        let rw = || std::fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let (a, b, c) = (rw(), rw(), rw());
        assert!(try_lock(a.as_fd(), WRITER, Mode::Exclusive).unwrap());
        assert!(!try_lock(b.as_fd(), WRITER, Mode::Exclusive).unwrap());
        assert!(try_lock(b.as_fd(), OPEN, Mode::Shared).unwrap());
        assert!(try_lock(c.as_fd(), OPEN, Mode::Shared).unwrap());
        drop(c); // closing c must not release b's shared lock
        assert!(!try_lock(a.as_fd(), OPEN, Mode::Exclusive).unwrap());
        unlock(a.as_fd(), WRITER).unwrap();
        assert!(try_lock(b.as_fd(), WRITER, Mode::Exclusive).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn held_in_sees_an_epoch_lock_below_a_bound_and_not_above_it() {
        let dir = std::env::temp_dir().join(format!("pagelog-epoch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, b"x").unwrap();
        let rw = || std::fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let (reader, other, reclaimer) = (rw(), rw(), rw());
        assert!(!held_in(reclaimer.as_fd(), EPOCH_BASE, 10).unwrap());
        assert!(try_lock(reader.as_fd(), EPOCH_BASE + 3, Mode::Shared).unwrap());
        assert!(try_lock(other.as_fd(), EPOCH_BASE + 3, Mode::Shared).unwrap());
        assert!(held_in(reclaimer.as_fd(), EPOCH_BASE, 4).unwrap(), "epoch 3 is below 4");
        assert!(!held_in(reclaimer.as_fd(), EPOCH_BASE, 3).unwrap(), "epoch 3 is not below 3");
        assert!(!held_in(reclaimer.as_fd(), EPOCH_BASE + 4, 100).unwrap());
        unlock(reader.as_fd(), EPOCH_BASE + 3).unwrap();
        assert!(held_in(reclaimer.as_fd(), EPOCH_BASE, 4).unwrap(), "another reader still holds it");
        drop(other); // closing the description drops its lock
        assert!(!held_in(reclaimer.as_fd(), EPOCH_BASE, 4).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
