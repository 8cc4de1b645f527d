//! The epoch lock a connection holds for its read transactions (format 4),
//! kept across transactions instead of taken and dropped by each.
//!
//! A reader of a format-4 log holds a shared lock on byte `EPOCH_BASE + e`,
//! `e` its snapshot's epoch, while it reads (docs/format-4.md, "Readers and
//! the epoch locks"); a reclamation step that creates epoch `k` punches
//! `[512, B_{k−1})` only once no lock on an epoch below `k − 1` is held
//! (`reclaim.rs` invariant 2). Taking and dropping the lock in every read
//! transaction costs two `fcntl` calls, about 1 µs: a third of a point
//! SELECT (issue 21). So a connection keeps the lock when its transaction
//! ends, and takes a new one only when a transaction starts on a newer
//! epoch (then it takes the new one and drops the old: no syscall at all
//! while the epoch stays the same).
//!
//! # Safety: every read of a snapshot at epoch `e` happens under `e`'s lock
//! [`EpochHold::begin`] makes sure `e`'s lock is held before the caller
//! reads the snapshot's control state (the caller loops until the snapshot
//! it read has the epoch it locked, as before). A lock kept from an earlier
//! transaction was taken even earlier, so the argument for a lock taken at
//! the start holds unchanged: a step that can punch what epoch `e` reads
//! directly (`[B_e, …)`, punched first by step `e + 2`) comes after the
//! CONTROL record of epoch `e + 1`; had it checked for readers before the
//! lock was taken, that record would have been in the file before it too,
//! and the snapshot read after the lock would not be at epoch `e`. Keeping
//! a lock longer only makes a step punch less. Nothing here drops a lock
//! while its connection is in a transaction (`busy`, under the hold's
//! mutex, which `begin` and every release take).
//!
//! # A lock taken while a step punches (R10)
//! The argument above needs the snapshot read after the lock to show the
//! newer CONTROL record. A refresh finds it by walking on from the end of
//! the process's view, `L`; a step that looked for readers before the lock
//! was taken may still be punching `[512, B)` with `B > L` while that walk
//! runs, and a punch is not atomic to a reader: `fallocate` zeroes the
//! partial block at the range's end first and drops cached pages in order,
//! so the probe of the view's last bytes (`L − 8`, which would read as
//! zeros once the punch is done and send the refresh to recover afresh)
//! may still find them while the bytes at `L` already read as zeros. The
//! refresh then calls the stale view current, its epoch matches the lock,
//! and the transaction reads frames the punch frees under it (a crc error
//! at an offset below `B`, or SQLite finding zeros where a checked frame
//! was). So a step holds the [`lock::PUNCH`] byte exclusively from before
//! it looks for readers until its punch returned, and [`EpochHold::begin`],
//! when it takes a lock (not when it keeps one), waits until PUNCH is free
//! before the caller refreshes: any step that missed the new lock has then
//! finished punching, and the refresh sees the file as the punch left it
//! (`L − 8` freed: recovery from the file's end; else the walk from `L`
//! over intact records). A lock kept from an earlier transaction needs no
//! wait: a step that could punch what its epoch reads saw it. Cost: one
//! `F_OFD_GETLK` per lock taken; a reader waits only while a step punches.
//!
//! # Liveness: an idle connection does not hold reclamation back
//! Between transactions a connection reads nothing, so the lock it keeps
//! only delays punching; it holds at most its last snapshot's epoch `e`,
//! which blocks steps `k ≥ e + 2` (step `e + 1` punches below `B_e` only,
//! which no reader at `e` reads directly). Kept with nothing to drop it,
//! that would not be a delay of one step but of every step for as long as
//! the connection stays idle: an idle connection runs no code, a step
//! cannot take another process's lock away or tell an idle holder from one
//! in a transaction (both hold the same byte; there is no shared memory to
//! say which), so the holder's own process must let it go. It is dropped
//! * at the connection's next transaction start, if the epoch moved;
//! * by a step in the same process, before it looks for readers
//!   ([`release_idle_below`]): an idle connection there never delays a
//!   punch at all;
//! * by this module's reaper thread, for idle connections whose step runs
//!   in another process (a step that was asked for waits up to
//!   [`ASKED_STEP_WAIT`] for it before its last punch): it wakes every [`TICK`] while any idle connection
//!   keeps a lock and drops the lock of one that ran no transaction since
//!   the previous tick, so at most `2 × TICK` after its last transaction
//!   ends. A step that runs in that window punches less; punching is
//!   cumulative (each step punches everything below `B_{k−1}`), so the
//!   first step after it gives every freed byte back. A connection that
//!   keeps running transactions moves to the newest epoch at its next one,
//!   as it did before.
//!
//! So, against taking and dropping the lock in every transaction, the only
//! delay is that of the steps another process runs within `2 × TICK` of an
//! idle connection's last transaction: in steps, those steps and no more,
//! since the next one punches what they could not. A long read transaction
//! still pins its snapshot for as long as it lasts, as before.
//!
//! A connection keeps its lock only from its [`KEEP_AFTER`]th transaction
//! on. The reaper is one thread per process, started the first time a lock
//! is kept past a transaction; it never touches a log, only unlocks epoch
//! bytes on descriptions whose connections are idle, and sleeps (no
//! wake-ups) while no connection keeps a lock. If it cannot be started,
//! connections drop their lock at every transaction end, as before; so
//! they do in a child made by `fork()` of a process that started it (the
//! child has the parent's list but not its thread: `REGISTRY_PID`). Its
//! cost beyond its ticks: a process that had no other thread loses glibc's
//! single-thread shortcuts (mutexes then use atomic instructions).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use crate::lock;

/// How often the reaper looks at idle connections while any keeps a lock.
pub const TICK: Duration = Duration::from_millis(50);

/// A connection keeps its lock past a transaction from its this-many-th
/// on: a process that opens a database for a query or two drops it as
/// before and never starts the reaper (a thread costs ~0.1 ms to start,
/// 5 % of such a process's CPU).
pub const KEEP_AFTER: u64 = 16;

#[derive(Default)]
struct HoldState {
    /// The epoch whose lock this connection's description holds.
    epoch: Option<u64>,
    /// In a read transaction: the lock must stay.
    busy: bool,
    /// Transactions begun; the reaper compares it between two ticks.
    txns: u64,
    /// What the reaper saw at its last tick.
    seen: u64,
    /// In the reaper's list.
    registered: bool,
}

struct Hold {
    fd: Arc<File>,
    /// (device, inode) of the log: a step's [`release_idle_below`] finds
    /// the holds on its own file.
    file_id: (u64, u64),
    st: Mutex<HoldState>,
}

impl Hold {
    fn state(&self) -> MutexGuard<'_, HoldState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the lock held; the caller holds `st` and knows the connection
    /// is not in a transaction.
    fn unlock(&self, st: &mut HoldState) {
        if let Some(e) = st.epoch.take() {
            let _ = lock::unlock(self.fd.as_fd(), lock::EPOCH_BASE + e);
        }
    }
}

/// One connection's epoch lock (on its own open file description).
pub struct EpochHold {
    hold: Arc<Hold>,
    /// Set by the first [`EpochHold::begin`]: a connection to a log before
    /// format 4 never takes an epoch lock, and its transactions' ends cost
    /// one load, not a mutex.
    used: AtomicBool,
}

impl EpochHold {
    /// `fd`: the connection's open file description (its locks), `file_id`
    /// the log's (device, inode).
    pub fn new(fd: Arc<File>, file_id: (u64, u64)) -> EpochHold {
        EpochHold {
            hold: Arc::new(Hold { fd, file_id, st: Mutex::new(HoldState::default()) }),
            used: AtomicBool::new(false),
        }
    }

    /// A read transaction starts on a snapshot of epoch `epoch` (0: a log
    /// with no CONTROL record, no lock): holds its lock from now until
    /// [`EpochHold::end`], taking it if it is not held already (then the
    /// new one first, the old one dropped after). The caller reads the
    /// snapshot after this and checks its epoch.
    pub fn begin(&self, epoch: u64) -> io::Result<()> {
        self.used.store(true, Ordering::Relaxed);
        let h = &self.hold;
        {
            let mut st = h.state();
            st.busy = true;
            st.txns = st.txns.wrapping_add(1);
            if st.epoch == Some(epoch) {
                return Ok(());
            }
            if epoch == 0 {
                h.unlock(&mut st);
                return Ok(());
            }
            // A shared lock on a byte no one locks exclusively is always
            // granted; `false` would mean a program outside pagelog took it.
            lock::try_lock(h.fd.as_fd(), lock::EPOCH_BASE + epoch, lock::Mode::Shared)?;
            if let Some(old) = st.epoch.replace(epoch) {
                let _ = lock::unlock(h.fd.as_fd(), lock::EPOCH_BASE + old);
            }
        }
        // Outside the hold's mutex: a step of this process takes it (in
        // `release_idle_below`) before PUNCH, never while holding PUNCH.
        wait_for_punch(h.fd.as_fd())
    }

    /// The read transaction ended: the lock stays until the epoch moves,
    /// a step wants it gone, or the connection stays idle (module comment).
    pub fn end(&self) {
        if !self.used.load(Ordering::Relaxed) {
            return;
        }
        let h = &self.hold;
        let (keep, registered) = {
            let mut st = h.state();
            st.busy = false;
            if st.txns < KEEP_AFTER {
                // A connection's first transactions (all of a short-lived
                // process's): no reaper thread for them.
                h.unlock(&mut st);
            }
            (st.epoch.is_some(), st.registered)
        };
        if keep && (!registered || !REAPER_ARMED.load(Ordering::SeqCst)) && !arm(&self.hold) {
            // No reaper: do as before, drop it now.
            let mut st = h.state();
            if !st.busy {
                h.unlock(&mut st);
            }
        }
    }

    /// Drops the lock now (the connection closes).
    pub fn release(&self) {
        let mut st = self.hold.state();
        st.busy = false;
        self.hold.unlock(&mut st);
    }

    /// The epoch whose lock is held (for tests).
    pub fn held(&self) -> Option<u64> {
        self.hold.state().epoch
    }
}

impl Drop for EpochHold {
    fn drop(&mut self) {
        self.release();
    }
}

/// Waits until no step is punching: one `F_OFD_GETLK` when none is (the
/// module comment, "A lock taken while a step punches", says why).
fn wait_for_punch(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    if lock::held_in(fd, lock::PUNCH, 1)? {
        // Granted once the step's punch returned; let go at once (a step
        // waits for it only that long).
        lock::lock_wait(fd, lock::PUNCH, lock::Mode::Shared)?;
        lock::unlock(fd, lock::PUNCH)?;
    }
    Ok(())
}

/// Called by a reclamation step before it looks for readers below epoch
/// `below` of the log `file`: drops the lock of every idle connection of
/// this process on that log whose epoch is below it. Connections in a
/// transaction keep theirs.
pub fn release_idle_below(file: &File, below: u64) {
    if REGISTRY_PID.load(Ordering::SeqCst) != std::process::id() {
        // Nothing registered here (a forked child's list is its parent's).
        return;
    }
    // Not `metadata()`: asking for timestamps costs the writer (stat.rs).
    let Ok(id) = crate::stat::identity_of(file) else { return };
    let holds: Vec<Arc<Hold>> = reaper().list.lock().unwrap_or_else(|p| p.into_inner()).upgrade_all();
    for h in holds.iter().filter(|h| h.file_id == id) {
        let mut st = h.state();
        if !st.busy && st.epoch.is_some_and(|e| e < below) {
            h.unlock(&mut st);
        }
    }
}

/// How long a step that was asked for (`pagelog retain --now`, `compact`:
/// `Log::reclaim`) waits, before its last punch, for other processes' idle
/// connections to let an epoch below the current one go (their reapers do
/// within `2 × TICK` of their last transaction), so that a command run
/// right after an application's last query still gives every freed byte
/// back. A reader in a transaction keeps its lock: the step then gives up
/// after this long and leaves the region to a later step, as before (the
/// step holds the WRITER lock meanwhile: a commit waits that much longer).
pub const ASKED_STEP_WAIT: Duration = Duration::from_millis(200);

/// Waits up to `wait` until no open file description other than a fresh
/// one of `path` holds an epoch lock below `below`, dropping this
/// process's idle ones first. Returns whether none is held.
pub fn wait_for_idle_release(path: &std::path::Path, below: u64, wait: Duration) -> bool {
    let Ok(probe) = File::open(path) else { return false };
    release_idle_below(&probe, below);
    let t0 = std::time::Instant::now();
    loop {
        match lock::held_in(probe.as_fd(), lock::EPOCH_BASE, below) {
            Ok(false) => return true,
            Ok(true) if t0.elapsed() < wait => std::thread::sleep(Duration::from_millis(5)),
            _ => return false,
        }
    }
}

/// The process whose connections the registry (the reaper's list) holds:
/// 0 until the first kept lock. A child made by `fork()` inherits the
/// list (the parent's connections, sharing their open file descriptions
/// and so their locks) and maybe a locked mutex, but not the thread: it
/// must neither wait on that mutex nor unlock the parent's connections'
/// epochs, which the parent would then read without a lock. So in any
/// other process the registry is left alone and connections drop their
/// lock at every transaction end, as before this module.
static REGISTRY_PID: AtomicU32 = AtomicU32::new(0);

/// Whether this process owns the registry (claiming it if nobody has).
fn owns_registry() -> bool {
    let pid = std::process::id();
    match REGISTRY_PID.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => true,
        Err(owner) => owner == pid,
    }
}

/// True while the reaper ticks (it then looks at every registered hold);
/// false while it sleeps. See `arm` for why `SeqCst`.
static REAPER_ARMED: AtomicBool = AtomicBool::new(false);

#[derive(Default)]
struct List {
    holds: Vec<Weak<Hold>>,
    /// Set by `arm`, cleared by the reaper when it wakes.
    wake: bool,
    started: bool,
}

impl List {
    fn upgrade_all(&mut self) -> Vec<Arc<Hold>> {
        self.holds.retain(|w| w.strong_count() > 0);
        self.holds.iter().filter_map(Weak::upgrade).collect()
    }
}

struct Reaper {
    list: Mutex<List>,
    cv: Condvar,
}

fn reaper() -> &'static Reaper {
    static R: OnceLock<Reaper> = OnceLock::new();
    R.get_or_init(|| Reaper { list: Mutex::new(List::default()), cv: Condvar::new() })
}

/// Registers `hold` with the reaper and makes it tick. False: no reaper
/// thread could be started.
///
/// No kept lock is missed: `end` records the lock (under the hold's mutex)
/// and then reads `REAPER_ARMED`; the reaper, before it sleeps, clears
/// `REAPER_ARMED` and then looks at every hold again (under each one's
/// mutex). Either `end`'s read comes after the clear and it arms the
/// reaper, or the reaper's second look sees the lock and goes on ticking.
fn arm(hold: &Arc<Hold>) -> bool {
    if !owns_registry() {
        return false;
    }
    let r = reaper();
    let mut list = r.list.lock().unwrap_or_else(|p| p.into_inner());
    {
        let mut st = hold.state();
        if !st.registered {
            st.registered = true;
            list.holds.push(Arc::downgrade(hold));
        }
    }
    if !list.started {
        let spawned = std::thread::Builder::new().name("pagelog-epochs".into()).spawn(|| run(reaper()));
        if spawned.is_err() {
            return false;
        }
        list.started = true;
    }
    list.wake = true;
    REAPER_ARMED.store(true, Ordering::SeqCst);
    r.cv.notify_one();
    true
}

/// One look at every hold: drops the locks of connections idle since the
/// last look. Returns whether any hold still keeps a lock.
fn tick(r: &Reaper) -> bool {
    let holds = r.list.lock().unwrap_or_else(|p| p.into_inner()).upgrade_all();
    let mut kept = false;
    for h in &holds {
        let mut st = h.state();
        if st.epoch.is_none() {
            continue;
        }
        if !st.busy && st.txns == st.seen {
            h.unlock(&mut st);
        } else {
            st.seen = st.txns;
            kept = true;
        }
    }
    kept
}

fn run(r: &'static Reaper) {
    loop {
        std::thread::sleep(TICK);
        if tick(r) {
            continue;
        }
        REAPER_ARMED.store(false, Ordering::SeqCst);
        if tick(r) {
            REAPER_ARMED.store(true, Ordering::SeqCst);
            continue;
        }
        let mut list = r.list.lock().unwrap_or_else(|p| p.into_inner());
        while !list.wake {
            list = r.cv.wait(list).unwrap_or_else(|p| p.into_inner());
        }
        list.wake = false;
    }
}
