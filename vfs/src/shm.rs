//! The shared visibility words: one 4 KiB POSIX shared-memory object per
//! log (WAL's wal-index reduced to three words), so that readers learn how
//! far history is durable (under FULL) with an atomic load, no system call.
//! Group commit (`group.rs`) raises the words; refresh (`recovery.rs`)
//! reads them. Design and guarantees: docs/group-commit.md.
//!
//! # The object
//! `$PAGELOG_SHM_DIR` (default `/dev/shm`) `/pagelog-<dev>-<ino>-<salt>`:
//! the log's device and inode and its header's salt, in hex, so that a log
//! replaced by another (compaction, a new file on a reused inode) never
//! meets the old one's words. Little-endian u64 words, read and written
//! only atomically:
//!
//! | offset | word        | meaning |
//! |--------|-------------|---------|
//! | 0      | magic       | [`MAGIC`] once initialised (written last by the initialiser) |
//! | 8      | `appended`  | the end of the newest COMMIT record whose `write` returned |
//! | 16     | `synced`    | an end below which every byte was written before a sync that returned |
//! | 24     | `visible`   | readers take only commits whose record ends at or below it |
//!
//! Then the doorbells: u32 words, the size of a Linux futex. They carry no
//! truth, only news: who holds WRITER is the fcntl lock's to say, how far
//! history is durable `synced`'s. A ring missed (an older build, a killed
//! process, one without the object, a connection closed while it held
//! WRITER) costs a waiter at most one [`FALLBACK`] (WRITER) or
//! [`SYNC_FALLBACK`] (a sync) of sleep, never a hang.
//!
//! | offset  | word | meaning |
//! |---------|------|---------|
//! | 32      | `writer_bell` | bumped after each release of WRITER, and when a waiter that others deferred to stops waiting |
//! | 36      | `sync_bell` | bumped after each group sync (`synced` raised, or the sync failed), SYNC unlocked |
//! | 40      | `sync_sleepers` | threads asleep on `sync_bell`, or about to be |
//! | 64 + 4k | `writer_waiting[k]`, k < 16 | threads waiting for WRITER in age class k (`sqlite/fair.rs`) |
//! | 128     | `writer_wakes` (u64) | sleepers a release of WRITER woke (`FUTEX_WAKE`'s count): for tests and diagnosis |
//! | 136     | `sync_wakes` (u64) | sleepers a group sync woke |
//!
//! # Invariants
//! 1. The end words only grow (`fetch_max`), except at initialisation, which
//!    happens only while no other process has the object mapped and sets
//!    them to the log's recovered end after a sync: at or above any value
//!    raised before (every raised value is the end of a commit in the file,
//!    and the file never shrinks below a commit).
//! 2. `visible` ≥ `synced` (every syncer raises both); `visible` goes past
//!    `synced` only through a NORMAL or OFF commit that found everything
//!    before it visible (`group.rs` invariant 2), so a FULL commit is never
//!    visible before a sync covered it.
//! 3. The dead-man switch: every process that maps the object holds the
//!    log's [`lock::DMS`] byte shared until its `Log` closes. Taking it
//!    exclusive proves no other process uses the object: only then is it
//!    (re)initialised, so an object leaked by a killed process (4 KiB in
//!    `/dev/shm`) is reset from the log, never trusted. The last process
//!    to close removes the object.
//! 4. A process that cannot have the object (no such directory, no room,
//!    no permission, an object replaced while others still use the old
//!    one) works without it (`Log` falls back to syncing under WRITER).
//! 5. A doorbell is rung after the state it announces is in place (WRITER
//!    unlocked; `synced` raised and SYNC unlocked), and a sleeper counts
//!    itself (`writer_waiting`, `sync_sleepers`) and reads the bell before
//!    it looks at that state. So either the sleeper sees the new state, or
//!    the ringer sees the sleeper counted and its `FUTEX_WAKE` finds it
//!    asleep (or its `FUTEX_WAIT` finds the bell moved and returns at once).
//!    The four accesses are `SeqCst` (Dekker's pattern: each side writes its
//!    word, then reads the other's). Every sleep is bounded besides
//!    ([`FALLBACK`], [`SYNC_FALLBACK`]). Raising `synced` elsewhere (a
//!    NORMAL commit's sync under WRITER, `sync_pending`) rings nothing:
//!    a sync sleeper sleeps only while a SYNC holder, which rings, exists.
//! 6. The futexes are shared (no `FUTEX_PRIVATE_FLAG`): the kernel keys them
//!    by the object's page and offset, so a wake reaches sleepers in every
//!    process that maps the object.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use memmap2::MmapMut;

use crate::lock::{self, Mode, DMS};

pub(crate) const SIZE: usize = 4096;
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"PLGSHM01");
const AT_MAGIC: usize = 0;
const AT_APPENDED: usize = 8;
const AT_SYNCED: usize = 16;
const AT_VISIBLE: usize = 24;
/// Where `writer_bell` lies in the object (tests read it there).
pub const AT_WRITER_BELL: usize = 32;
const AT_SYNC_BELL: usize = 36;
const AT_SYNC_SLEEPERS: usize = 40;
const AT_WRITER_WAITING: usize = 64;
/// Age classes with a `writer_waiting` word (`lock::WAIT_LEVELS`).
const CLASSES: usize = lock::WAIT_LEVELS as usize;
/// Where `writer_wakes` lies in the object (tests read it there).
pub const AT_WRITER_WAKES: usize = 128;
/// Where `sync_wakes` lies in the object (tests read it there).
pub const AT_SYNC_WAKES: usize = 136;
const _: () = assert!(AT_WRITER_WAITING + 4 * CLASSES <= AT_WRITER_WAKES);

/// The longest a writer-bell sleep lasts without a ring: what a missed
/// ring costs a waiter for WRITER at most. Short, because a process that
/// rings nothing may be releasing WRITER at every commit (a mixed set of
/// processes, some without the object).
pub(crate) const FALLBACK: Duration = Duration::from_millis(1);
/// The same for a sync-bell sleep. Every sleeper of a group wakes at
/// each timeout to find the sync still running, so this is longer than
/// a sync usually takes: a missed ring (a syncer killed, or of an older
/// build) is rare, and costs a waiter at most this once.
pub(crate) const SYNC_FALLBACK: Duration = Duration::from_millis(10);

/// Where the objects live unless `PAGELOG_SHM_DIR` says otherwise.
pub const DEFAULT_DIR: &str = "/dev/shm";

/// One process's mapping of a log's object.
pub(crate) struct Shm {
    map: MmapMut,
    path: PathBuf,
}

impl Shm {
    fn word(&self, at: usize) -> &AtomicU64 {
        debug_assert!(at % 8 == 0 && at + 8 <= SIZE && self.map.len() >= SIZE);
        // SAFETY: the mapping is SIZE bytes, page-aligned, and lives as long
        // as `self`; `at` is 8-aligned and inside it. AtomicU64 has the
        // layout of u64, and every access to these bytes, in any process,
        // is atomic.
        unsafe { &*(self.map.as_ptr().add(at) as *const AtomicU64) }
    }
    pub(crate) fn appended(&self) -> &AtomicU64 {
        self.word(AT_APPENDED)
    }
    pub(crate) fn synced(&self) -> &AtomicU64 {
        self.word(AT_SYNCED)
    }
    pub(crate) fn visible(&self) -> &AtomicU64 {
        self.word(AT_VISIBLE)
    }
    pub(crate) fn visible_end(&self) -> u64 {
        self.visible().load(Ordering::Acquire)
    }
    pub(crate) fn synced_end(&self) -> u64 {
        self.synced().load(Ordering::Acquire)
    }
    /// Everything below `end` is durable: raises `synced` and `visible`.
    pub(crate) fn raise_synced(&self, end: u64) {
        self.synced().fetch_max(end, Ordering::AcqRel);
        self.visible().fetch_max(end, Ordering::AcqRel);
    }

    fn word32(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at % 4 == 0 && at + 4 <= SIZE && self.map.len() >= SIZE);
        // SAFETY: as in `word`, for a 4-aligned u32 inside the mapping
        // (AtomicU32 has the layout of u32); the kernel reads a futex word
        // atomically too.
        unsafe { &*(self.map.as_ptr().add(at) as *const AtomicU32) }
    }

    /// WRITER was just unlocked: wakes one thread waiting for it, the one
    /// asleep longest in the highest age class that has a sleeper (the one
    /// `sqlite/fair.rs` lets have it), or nobody if nobody waits.
    pub(crate) fn ring_writer(&self) {
        self.word32(AT_WRITER_BELL).fetch_add(1, Ordering::SeqCst);
        for k in (0..CLASSES).rev() {
            if self.word32(AT_WRITER_WAITING + 4 * k).load(Ordering::SeqCst) == 0 {
                continue;
            }
            // None woken: that class's waiters are awake (each looks at the
            // lock before it sleeps) or were killed; try the class below.
            let n = futex_wake(self.word32(AT_WRITER_BELL), 1, 1 << k);
            if n > 0 {
                self.word(AT_WRITER_WAKES).fetch_add(n as u64, Ordering::Relaxed);
                return;
            }
        }
    }

    /// The writer bell's value: read it before looking at WRITER, and pass
    /// it to [`Shm::sleep_writer`].
    pub(crate) fn writer_bell(&self) -> u32 {
        self.word32(AT_WRITER_BELL).load(Ordering::SeqCst)
    }

    /// Counts (`join` true) or uncounts a thread waiting for WRITER in age
    /// class `k`.
    pub(crate) fn writer_waiting(&self, k: u64, join: bool) {
        let w = self.word32(AT_WRITER_WAITING + 4 * (k as usize).min(CLASSES - 1));
        if join {
            w.fetch_add(1, Ordering::SeqCst);
        } else {
            // Never below zero: the object is reset only while nobody maps
            // it (invariant 3), so this only keeps a bug from wrapping.
            let _ = w.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1));
        }
    }

    /// Sleeps until WRITER is released (the bell moves from `seen`) or `d`
    /// (at most [`FALLBACK`]) passes, as a waiter of age class `k`, which
    /// [`Shm::writer_waiting`] counted.
    pub(crate) fn sleep_writer(&self, seen: u32, k: u64, d: Duration) {
        let k = (k as usize).min(CLASSES - 1);
        futex_wait(self.word32(AT_WRITER_BELL), seen, d.min(FALLBACK), 1 << k);
    }

    /// The sync bell's value: read it before looking at `synced` and the
    /// SYNC lock, and pass it to [`Shm::sleep_synced`].
    pub(crate) fn sync_bell(&self) -> u32 {
        self.word32(AT_SYNC_BELL).load(Ordering::SeqCst)
    }

    /// A group sync ended (`synced` raised, or the sync failed) and SYNC
    /// is unlocked: wakes every thread waiting for a sync, to look again.
    pub(crate) fn ring_synced(&self) {
        self.word32(AT_SYNC_BELL).fetch_add(1, Ordering::SeqCst);
        if self.word32(AT_SYNC_SLEEPERS).load(Ordering::SeqCst) > 0 {
            let n = futex_wake(self.word32(AT_SYNC_BELL), i32::MAX, u32::MAX);
            self.word(AT_SYNC_WAKES).fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Sleeps until a group sync ends (the bell moves from `seen`) or
    /// [`SYNC_FALLBACK`] passes.
    pub(crate) fn sleep_synced(&self, seen: u32) {
        let sleepers = self.word32(AT_SYNC_SLEEPERS);
        sleepers.fetch_add(1, Ordering::SeqCst);
        futex_wait(self.word32(AT_SYNC_BELL), seen, SYNC_FALLBACK, u32::MAX);
        let _ = sleepers.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1));
    }

    /// The doorbells' words at nobody waiting (initialisation, invariant 3).
    fn reset_doorbells(&self) {
        for at in (AT_WRITER_BELL..AT_WRITER_WAKES).step_by(4) {
            self.word32(at).store(0, Ordering::Release);
        }
        for at in [AT_WRITER_WAKES, AT_SYNC_WAKES] {
            self.word(at).store(0, Ordering::Release);
        }
    }
}

/// `FUTEX_WAIT_BITSET` on `word` while it holds `seen`, for at most `d`,
/// as a sleeper of the classes in `bits`. Returns on a wake, a timeout or
/// a signal, or at once if `word` moved: the caller looks again anyway.
fn futex_wait(word: &AtomicU32, seen: u32, d: Duration, bits: u32) {
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline.
    // SAFETY: timespec is a plain C struct; all-zero is a valid value.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a live timespec that the call fills in.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        std::thread::sleep(d);
        return;
    }
    let ns = ts.tv_nsec as u64 + d.subsec_nanos() as u64;
    ts.tv_sec += d.as_secs() as libc::time_t + (ns / 1_000_000_000) as libc::time_t;
    ts.tv_nsec = (ns % 1_000_000_000) as libc::c_long;
    // SAFETY: `word` is a 4-aligned u32 in a MAP_SHARED mapping that lives
    // as long as the borrow, so the kernel's atomic read of it is in
    // bounds; `ts` is a live timespec; the unused argument is null, as
    // FUTEX_WAIT_BITSET wants. The call blocks at most until `ts`.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET,
            seen,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            bits,
        );
    }
}

/// `FUTEX_WAKE_BITSET`: wakes up to `n` sleepers on `word` among the
/// classes in `bits`, the longest asleep first; returns how many it woke.
fn futex_wake(word: &AtomicU32, n: i32, bits: u32) -> usize {
    // SAFETY: as in `futex_wait`; FUTEX_WAKE_BITSET only looks the address
    // up among the sleepers, it neither reads nor writes the word.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE_BITSET,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            bits,
        )
    };
    r.max(0) as usize
}

/// The object's name for the log open as `log` whose salt is `salt`.
pub(crate) fn object_path(log: &File, salt: u64) -> io::Result<PathBuf> {
    let dir = std::env::var_os("PAGELOG_SHM_DIR").map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from);
    let (dev, ino) = crate::stat::identity_of(log)?;
    Ok(dir.join(format!("pagelog-{dev:x}-{ino:x}-{salt:016x}")))
}

/// Maps the object of the log open as `log` (read-only: `writable` false),
/// holding the log's DMS byte shared from now on. When this process is
/// the only one with the object, `init` (which must sync the log) gives
/// the recovered end the words start from. Err: do without it.
pub(crate) fn attach(log: &File, writable: bool, salt: u64, init: impl FnOnce() -> io::Result<u64>) -> io::Result<Shm> {
    let path = object_path(log, salt)?;
    let mut init = Some(init);
    // A few rounds at most: another process removing the object as its
    // last user, or initialising it, between our open and our lock.
    for _ in 0..100 {
        // A read-only process never initialises the object (it cannot take
        // the DMS byte exclusively), so it never creates one either.
        let file = open_object(&path, writable)?;
        if file.metadata()?.len() < SIZE as u64 {
            file.set_len(SIZE as u64)?;
        }
        // SAFETY: a shared mapping of SIZE bytes of a file this process
        // opened read-write; other processes change it, which is why every
        // access goes through atomics (`Shm::word`).
        let map = unsafe { memmap2::MmapOptions::new().len(SIZE).map_mut(&file)? };
        let shm = Shm { map, path: path.clone() };
        let fd = log.as_fd();
        let alone = writable && lock::try_lock(fd, DMS, Mode::Exclusive)?;
        if !alone && !lock::try_lock(fd, DMS, Mode::Shared)? {
            // Someone is initialising it (or removing it): look again.
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        // The name must still lead to the object we mapped (the last user
        // may have removed it after our open); if not, start over.
        if crate::stat::identity(&path).ok() != crate::stat::identity_of(&file).ok() {
            lock::unlock(fd, DMS)?;
            continue;
        }
        if alone {
            let f = init.take().expect("initialised once");
            let end = match f() {
                Ok(end) => end,
                Err(e) => {
                    lock::unlock(fd, DMS)?;
                    return Err(e);
                }
            };
            for w in [AT_APPENDED, AT_SYNCED, AT_VISIBLE] {
                shm.word(w).store(end, Ordering::Release);
            }
            shm.reset_doorbells();
            shm.word(AT_MAGIC).store(MAGIC, Ordering::Release);
            // Exclusive to shared in one step: never unlocked in between.
            if !lock::try_lock(fd, DMS, Mode::Shared)? {
                return Err(io::Error::other("could not keep the DMS lock shared"));
            }
            return Ok(shm);
        }
        if shm.word(AT_MAGIC).load(Ordering::Acquire) != MAGIC {
            // Others use the log, but not this object (it was removed and
            // made anew while they kept the old one), or a read-only
            // process found a leaked one it may not reset: do without.
            lock::unlock(fd, DMS)?;
            return Err(io::Error::other("the shared object is not the one the log's other users have"));
        }
        return Ok(shm);
    }
    Err(io::Error::other("the shared object kept changing"))
}

fn open_object(path: &std::path::Path, create: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Called as a `Log` closes: the last process to use the object removes
/// it (a killed one leaves it, as does a read-only last user, which cannot
/// take the DMS byte exclusively; the next first user resets it).
pub(crate) fn detach(log: &File, shm: Shm) {
    let fd = log.as_fd();
    if lock::try_lock(fd, DMS, Mode::Exclusive).unwrap_or(false) {
        let _ = std::fs::remove_file(&shm.path);
    }
    let _ = lock::unlock(fd, DMS);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_only_grow_and_a_sync_raises_visible_with_synced() {
        let dir = std::env::temp_dir().join(format!("pagelog-shm-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, b"x").unwrap();
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let path = dir.join("obj");
        let file = open_object(&path, true).unwrap();
        file.set_len(SIZE as u64).unwrap();
        // SAFETY: as in `attach`.
        let map = unsafe { memmap2::MmapOptions::new().len(SIZE).map_mut(&file).unwrap() };
        let shm = Shm { map, path };
        shm.raise_synced(100);
        shm.raise_synced(50);
        assert_eq!((shm.synced_end(), shm.visible_end()), (100, 100));
        shm.visible().fetch_max(150, Ordering::AcqRel);
        shm.raise_synced(120);
        assert_eq!((shm.synced_end(), shm.visible_end()), (120, 150));
        drop(f);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
