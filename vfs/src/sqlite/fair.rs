//! Fair waiting for the WRITER lock (issue 23, item 3): a writer that has
//! waited is not starved by writers that just released the lock.
//!
//! # The problem
//! `lock(RESERVED)` tries the WRITER byte once and answers SQLITE_BUSY when
//! it is held. For an autocommit statement or `BEGIN IMMEDIATE` SQLite then
//! drops its read lock and calls the busy handler, which sleeps 1, 2, 5, 10,
//! 15, 20, 25, 25, 25, 50, 50, 100, 100… ms (`sqliteDefaultBusyCallback`,
//! through the connection's VFS's `xSleep`) before retrying. A writer that
//! just committed takes the lock again microseconds later, so with eight
//! writers the lock is almost never free when a sleeper wakes: some writer
//! waits seconds and, under load, past `busy_timeout` (stock WAL has the
//! same flaw: its write lock is a try-lock too).
//!
//! # What was rejected
//! - Blocking in the kernel (`F_OFD_SETLKW` on WRITER): no bound without a
//!   timer or signal (not acceptable in a library), and no deadlock
//!   detection for OFD locks: a thread whose other connection holds WRITER
//!   would wait forever, where SQLite gives BUSY after `busy_timeout`.
//! - Waiting inside `lock(RESERVED)`: the connection holds a read snapshot
//!   there, and every commit made while it waits makes that snapshot stale,
//!   so the lock, once won, would have to be refused (BUSY_SNAPSHOT) anyway.
//! - A strict ticket queue made of lock bytes: OFD locks carry no data, so
//!   the next ticket number needs a shared counter (a new sidecar file); and
//!   a waiter that gives up (the busy handler said stop) would leave its
//!   ticket to block everyone behind it.
//! - Returning early from the busy handler's sleep when the lock looks free,
//!   without taking it: a waiter that then loses the race has had a short
//!   sleep counted as a long one, and SQLite gives up (BUSY) long before
//!   `busy_timeout` has passed in real time.
//!
//! # The mechanism
//! WAL built with `SQLITE_ENABLE_SETLK_TIMEOUT` takes its write lock
//! *before* opening the read snapshot (`sqlite3PagerWalWriteLock` in
//! `sqlite3BtreeBeginTrans`). pagelog does the same on SQLite's retry path:
//! 1. `lock(RESERVED)` answering BUSY (or BUSY_SNAPSHOT) marks the
//!    connection as this thread's pending waiter ([`Waiter::busy`]) and
//!    starts its wait clock unless a wait is already running.
//! 2. The busy handler's `xSleep`, on that thread and right after, becomes
//!    the wait ([`sleep`]): for the requested time it looks at the lock,
//!    then sleeps on the writer doorbell (`shm.rs`: a futex in the log's
//!    shared object, which every release of WRITER rings, waking the waiter
//!    asleep longest in the highest age class) or, without the shared
//!    words, for [`POLL`], and looks again; when the waiter may take WRITER
//!    and does, it keeps it ("carried") and returns early. SQLite's retry
//!    then opens a snapshot (the latest: no one else can commit) and
//!    `lock(RESERVED)` uses the carried lock. A sleep that does not win the
//!    lock lasts its full time, so the busy handler's count of time slept
//!    is real time and it alone decides when to give up: `busy_timeout`
//!    keeps its meaning.
//! 3. Who may take WRITER: a waiter holds, only while inside that sleep, a
//!    shared lock on the wait byte of its age class (`WAIT_BASE + k`, k =
//!    ⌊log2(ms waited + 1)⌋, [`LEVELS`] classes). A waiter defers to anyone
//!    holding a higher class; a connection not waiting (a writer that just
//!    committed and comes back) defers to anyone waiting in class
//!    [`STARVING`] or above (7 ms; see below). So the oldest waiters get
//!    the lock next, the releasing writer queues behind anyone who has
//!    waited long, and the longest wait is bounded by the queue, not by
//!    luck.
//!
//! # Throughput on a quiet machine: a writer back for more keeps going
//! A hand-off cost a waiter's poll (about 100 µs plus timer slack, before
//! the doorbell; now a wake-up) where an unfair retake costs nothing, and
//! on a quiet machine, where a FULL commit takes ~0.1 ms, handing off at
//! every commit halved commits/s (4 writers 0.50–0.54× WAL). So, as Go's
//! `sync.Mutex` does in its starvation mode, a connection that is not
//! waiting (a writer back for more) steps aside only for waiters of age
//! class [`STARVING`] and up (7 ms): 4 writers 0.77–0.82× WAL, 8 writers
//! 0.57–0.58× against 0.41×, the longest wait 10–16 ms against 6–13 ms
//! (docs/benchmarks.md, "Fair waiting"). Waiters among themselves still go
//! oldest first.
//!
//! # Invariants
//! - Nothing here waits while the connection holds a read snapshot: SQLite
//!   drops it (`xUnlock(NONE)`) before calling the busy handler, and the
//!   sleep takes WRITER before the retry's `lock(SHARED)`. Every wait is
//!   bounded by the sleep SQLite asked for; a thread whose other connection
//!   holds WRITER gets BUSY after `busy_timeout`, as with stock SQLite.
//! - A stale snapshot still gets BUSY_SNAPSHOT at once (`file.rs`); the
//!   following sleep may then win WRITER for the retry's fresh snapshot.
//! - A wait byte is held only inside a sleep, so a waiter that gives up
//!   leaves nothing behind. The pending mark is consumed by the next sleep
//!   and ignored if older than [`FRESH`] (SQLite sleeps microseconds after
//!   the BUSY). A carried WRITER is released by the connection's next
//!   `xUnlock` below RESERVED, or its close, if no write transaction used
//!   it — which only happens if a custom busy handler sleeps through this
//!   VFS and then gives up anyway (the default handler, `busy_timeout`,
//!   never sleeps before giving up), or if an application with no busy
//!   handler calls `sqlite3_sleep()` with pagelog as the default VFS right
//!   after a BUSY and then leaves that connection idle: other writers then
//!   wait until it is used or closed. (The sleep cannot tell whose it is.)
//! - The doorbell is news, never the truth: the fcntl locks decide who may
//!   take WRITER, and a waiter looks at them after every wake. A release
//!   that rings nothing (a killed holder, an older build, a process without
//!   the shared object, a connection closed holding WRITER) costs a waiter
//!   at most `shm::FALLBACK` (1 ms) of sleep. A waiter counts itself in its
//!   age class's `writer_waiting` word only while inside the sleep.
//! - A waiter of class 1 or more that stops waiting without the lock rings
//!   the bell: younger waiters may have deferred to it while the lock was
//!   free.
//! - A connection never waits with no busy handler (no sleep is called):
//!   it gets BUSY at once — also, now, when the lock is free but others
//!   are waiting for it.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::lock::{self, Mode, WAIT_BASE, WAIT_LEVELS as LEVELS, WRITER};
use crate::log::Log;

/// How often a sleeping waiter looks at the lock when the log has no shared
/// words (format 4, or a process without the object), so no doorbell.
/// Waiters that defer to an older one were tried at 500 µs (8 writers
/// under load): CPU per commit the same, commits/s halved (the next in
/// line saw its turn late).
const POLL: Duration = Duration::from_micros(100);
/// The age class from which a waiter makes a connection that is not
/// waiting (a writer back for more) step aside: class 3, a wait of 7 ms
/// or more (Go's `sync.Mutex` starvation mode). Below it the returning
/// writer keeps going, which saves a hand-off per commit; above it nobody
/// waits long.
const STARVING: u64 = 3;
/// A pending mark older than this is not from the busy handler's retry.
const FRESH: Duration = Duration::from_millis(50);

#[derive(Default)]
struct State {
    /// When this connection's current wait for WRITER began.
    since: Option<Instant>,
    /// A sleep ran since the last BUSY, and ended when (else a new BUSY
    /// starts a new wait: the previous one was given up).
    slept: bool,
    woke: Option<Instant>,
    /// WRITER taken by a sleep for the retry's `lock(RESERVED)`.
    carried: bool,
}

impl State {
    /// Whether a wait is still going on: SQLite retried right after a sleep
    /// (not a wait given up long ago, whose age would jump the queue).
    fn waiting(&self) -> bool {
        self.slept && self.woke.is_some_and(|t| t.elapsed() < FRESH)
    }
}

/// One connection's side of the waiting: its lock descriptor and wait state.
pub(crate) struct Waiter {
    fd: Arc<File>,
    /// Its log, for the writer doorbell in the shared words.
    log: Arc<Log>,
    state: Mutex<State>,
}

thread_local! {
    /// The connection that last got BUSY on this thread, and when.
    static PENDING: RefCell<Option<(Weak<Waiter>, Instant)>> = const { RefCell::new(None) };
}

/// The age class of a wait that began `since` ago.
fn level(since: Instant) -> u64 {
    let ms = since.elapsed().as_millis() as u64;
    (u64::BITS - (ms + 1).leading_zeros() - 1).min(LEVELS as u32 - 1) as u64
}

/// How long until a wait that began `since` ago leaves age class `k` (the
/// doorbell sleep ends then, so that the wait byte follows the age).
fn class_left(since: Instant, k: u64) -> Duration {
    if k + 1 >= LEVELS {
        return Duration::MAX;
    }
    Duration::from_millis((1u64 << (k + 1)) - 1).saturating_sub(since.elapsed()).max(Duration::from_micros(50))
}

impl Waiter {
    pub(crate) fn new(fd: Arc<File>, log: Arc<Log>) -> Arc<Waiter> {
        Arc::new(Waiter { fd, log, state: Mutex::new(State::default()) })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave State inconsistent (plain fields).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether another connection waiting in a class above `class` (None:
    /// not waiting, so any waiter counts) should get WRITER first.
    fn others_first(&self, class: Option<u64>) -> io::Result<bool> {
        let from = class.map_or(STARVING, |c| c + 1);
        lock::held_in(self.fd.as_fd(), WAIT_BASE + from, LEVELS - from)
    }

    /// Takes WRITER for `lock(RESERVED)` if this connection may have it now:
    /// the lock a sleep carried, or a free lock nobody waiting longer wants.
    pub(crate) fn acquire(&self) -> io::Result<bool> {
        let mut st = self.state();
        if st.carried {
            st.carried = false;
            st.since = None;
            return Ok(true);
        }
        let class = match st.since {
            Some(since) if st.waiting() => Some(level(since)),
            _ => None,
        };
        if self.others_first(class)? {
            return Ok(false);
        }
        let got = lock::try_lock(self.fd.as_fd(), WRITER, Mode::Exclusive)?;
        if got {
            st.since = None;
        }
        Ok(got)
    }

    /// `lock(RESERVED)` answered BUSY: the busy handler's sleep, if it
    /// comes next on this thread, waits for WRITER on this connection's
    /// behalf.
    pub(crate) fn busy(self: &Arc<Self>) {
        let now = Instant::now();
        {
            let mut st = self.state();
            if st.since.is_none() || !st.waiting() {
                st.since = Some(now);
            }
            st.slept = false;
        }
        PENDING.with(|p| *p.borrow_mut() = Some((Arc::downgrade(self), now)));
    }

    /// Whether a sleep took WRITER that no write transaction has used yet.
    pub(crate) fn carries(&self) -> bool {
        self.state().carried
    }

    /// Gives back a carried WRITER (the retry did not come to RESERVED).
    pub(crate) fn drop_carried(&self) {
        let mut st = self.state();
        if st.carried {
            st.carried = false;
            let _ = lock::unlock(self.fd.as_fd(), WRITER);
            drop(st);
            self.log.writer_released();
        }
    }

    /// Sleeps up to `d`, taking WRITER if its turn comes; true if it did.
    ///
    /// With the log's shared words it sleeps on the writer doorbell
    /// (`shm.rs`) between looks: a release of WRITER wakes the waiter asleep
    /// longest in the highest age class at once, so the lock passes in the
    /// time of a wake-up, not of a poll. Without them it polls every
    /// [`POLL`].
    fn wait(&self, d: Duration) -> bool {
        let start = Instant::now();
        let since = {
            let mut st = self.state();
            st.slept = true;
            *st.since.get_or_insert(start)
        };
        let shm = self.log.shm();
        // The wait byte's class, and the class counted in the doorbell's
        // `writer_waiting` words (which the releaser reads to pick whom to
        // wake); both follow the wait's age.
        let mut held: Option<u64> = None;
        let mut counted: Option<u64> = None;
        let mut won = false;
        loop {
            let class = level(since);
            if held != Some(class) {
                // Take the new class before dropping the old: never unseen.
                if lock::try_lock(self.fd.as_fd(), WAIT_BASE + class, Mode::Shared).unwrap_or(false) {
                    if let Some(old) = held.replace(class) {
                        let _ = lock::unlock(self.fd.as_fd(), WAIT_BASE + old);
                    }
                }
            }
            if let Some(shm) = &shm {
                if counted != Some(class) {
                    shm.writer_waiting(class, true);
                    if let Some(old) = counted.replace(class) {
                        shm.writer_waiting(old, false);
                    }
                }
            }
            // Counted, then the bell read, then the lock looked at (shm.rs
            // invariant 5): a release after this look wakes the sleep below.
            let seen = shm.as_ref().map(|shm| shm.writer_bell());
            if matches!(self.others_first(Some(class)), Ok(false))
                && lock::try_lock(self.fd.as_fd(), WRITER, Mode::Exclusive).unwrap_or(false)
            {
                won = true;
                break;
            }
            let left = d.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            match (&shm, seen) {
                (Some(shm), Some(seen)) => shm.sleep_writer(seen, class, left.min(class_left(since, class))),
                _ => std::thread::sleep(left.min(POLL)),
            }
        }
        if let (Some(shm), Some(c)) = (&shm, counted) {
            shm.writer_waiting(c, false);
        }
        if let Some(c) = held {
            let _ = lock::unlock(self.fd.as_fd(), WAIT_BASE + c);
            // Others may have deferred to this waiter (class 1 and up) while
            // the lock was free: they may take it now.
            if !won && c >= 1 {
                if let Some(shm) = &shm {
                    shm.ring_writer();
                }
            }
        }
        let mut st = self.state();
        st.carried |= won;
        st.woke = Some(Instant::now());
        won
    }

    /// Forgets this connection as the thread's pending waiter (it closes).
    pub(crate) fn forget(self: &Arc<Self>) {
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            if p.as_ref().is_some_and(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(self))) {
                *p = None;
            }
        });
    }
}

/// `xSleep(us)`: if this thread's last BUSY came microseconds ago, the
/// sleep is that connection's wait for WRITER; `None`: an ordinary sleep.
pub(crate) fn sleep(us: i32) -> Option<i32> {
    let (w, at) = PENDING.with(|p| p.borrow_mut().take())?;
    if at.elapsed() > FRESH {
        return None;
    }
    let w = w.upgrade()?;
    let start = Instant::now();
    w.wait(Duration::from_micros(us.max(0) as u64));
    Some(start.elapsed().as_micros().min(i32::MAX as u128) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_classes_double() {
        let now = Instant::now();
        assert_eq!(level(now), 0);
        let ago = |ms| now.checked_sub(Duration::from_millis(ms)).unwrap();
        assert_eq!(level(ago(1)), 1);
        assert_eq!(level(ago(3)), 2);
        assert_eq!(level(ago(1000)), 9);
        assert_eq!(level(ago(10_000_000)), LEVELS - 1);
    }
}
