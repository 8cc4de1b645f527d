//! The replicator: ships a local log's checked, durable commits to the
//! bucket as segments, resuming where the bucket ends.
//!
//! # Invariants
//! 1. A segment holds the log's bytes `[start, end)` with `start` the end of
//!    the previous segment of its generation (0 for the first) and `end` the
//!    end of a COMMIT record: the segments of a generation, concatenated,
//!    are always a valid log (a prefix of the local one).
//! 2. Nothing is shipped that [`pagelog::Log::checked_commits`] did not
//!    check (every record, every frame each transaction wrote), nor past a
//!    version that is durable on the local disk: claimed durable by the log,
//!    or synced by the replicator itself (one `fdatasync` of the log, which
//!    flushes every process's writes) after it read the commit.
//! 3. Resuming: the last segment of the log's generation must end exactly at
//!    a commit of the local log with the same offset, version and trailer crc
//!    (its last 16 bytes, the trailer, are downloaded and compared);
//!    otherwise the replicator refuses. So a killed replicator resumes with
//!    nothing lost or uploaded twice, and a different log (or an older copy
//!    of this one) is never appended to someone else's replica.
//! 4. One replicator per prefix: it holds a lease (`lease-<epoch>` objects,
//!    a new epoch created with `If-None-Match: *`, renewed while it runs)
//!    and puts segments with `If-None-Match: *`, so an object is never
//!    replaced.
//! 5. An upload that failed may have landed (its answer lost: a timeout, a
//!    reset, a proxy's 5xx). The replicator then never cuts a different
//!    segment from the same start: its next pass lists the bucket again
//!    (invariant 3) and, if the bucket still ends where the upload started,
//!    puts exactly the same object again (same name, same bytes). A bucket
//!    holding overlapping segments anyway (written by an older pagelog, or
//!    by two replicators) is resumed after every overlapping byte was
//!    compared with the local log, and repaired: redundant objects are
//!    deleted, a partial overlap is replaced by a segment that starts where
//!    the one before it ends (uploaded first, then the overlapping one
//!    deleted, so that an interruption leaves a bucket that restores).
//! 6. Retention (format 4) frees the log's bytes `[512, B)` in place. A
//!    pass holds the bytes at and after `B` ([`pagelog::Log::hold_shippable`]:
//!    no step punches them meanwhile), so it never reads a hole as the log.
//!    A replica that already holds the bytes up to `B` or past it goes on
//!    (it keeps the freed versions, which still restore from it); one that
//!    lagged behind `B` is refused, saying so. A new generation of a log
//!    whose `B` is past 512 starts at `B`, with a `head-` object holding the
//!    header, then the bytes `[L, B)` from the lowest frame `L` that the
//!    state of that CONTROL record reads in place below `B` (frames of
//!    ALIGNED records a step left where they were; `L` = `B` when none:
//!    [`pagelog::Shippable::low`]), and naming the first version it
//!    restores (the first commit after the CONTROL record that set `B`), put
//!    before its first segment once that commit exists. Freed bytes below
//!    `L` are neither shipped as zeros nor called damage; those between `L`
//!    and `B` go as they are (holes as zeros), since the frames among them
//!    are not listed apart. A later state reads in place below `B` only
//!    frames the first one did (a step never leaves in place what lies
//!    below the boundary it starts from unless it was in place already), so
//!    a resumed generation needs nothing more.
//! 7. Recycled slots (format 4, FORMAT.md "Frames in recycled slots"): a
//!    RECYCLED commit's page images may lie in dead frame slots below the
//!    segment that holds it, bytes the replica already holds as they were
//!    (the dead frame). The segment carries them after its log bytes
//!    ([`crate::layout::Recycled`]): every image such a commit names below
//!    the segment's start, read under the pass's epoch lock as the rest is
//!    and checked against its entry's crc (a slot named by two commits of
//!    the segment: the newer's image, the older's being gone). A reader
//!    writes them at their offsets after the segment's bytes, in commit
//!    order, only those of the versions it restores; so every version
//!    restores as the primary had it. The generation goes on: no new one is
//!    needed (the replica is no longer a byte prefix of the primary where a
//!    slot was recycled after it was shipped, but each version of it is).

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pagelog::{Boundary, EscapedName, Log, OpenOptions};

use crate::layout::{lease_name, Catalog, Chain, Generation, Head, Recycled, Segment, HEAD_SIZE, LEASE};
use crate::store::{Put, Store};
use crate::{catalog, now_us, Error};

/// How the replicator runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// A segment is cut after the first commit that brings it to this many bytes.
    pub max_segment: u64,
    /// Drop generations replaced longer ago than this (microseconds).
    pub retain_us: Option<u64>,
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options { max_segment: 16 << 20, retain_us: None, lease_ttl: Duration::from_secs(30) }
    }
}

/// Where the replica of the current log file ends.
#[derive(Debug, Clone)]
struct Position {
    salt: u64,
    /// When the generation was started (its name).
    created_us: u64,
    at: Boundary,
    /// A generation that starts past bytes the log freed, whose `head-`
    /// object is not put yet: where it starts, the offset of the CONTROL
    /// record that set that boundary, and the lowest frame below it that
    /// the record's state reads in place (invariant 6).
    head: Option<(u64, u64, u64)>,
}

/// The replicator's state after a pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The newest version in the bucket (of the current generation).
    pub version: u64,
    /// The latest version of the local log.
    pub latest: u64,
    /// Local log bytes not yet shipped (to the latest version's end).
    pub lag_bytes: u64,
    /// Commit time of the latest version minus that of the replicated one.
    pub lag_us: u64,
    pub generation: String,
    /// Segments and bytes uploaded by this replicator so far.
    pub segments: u64,
    pub bytes: u64,
    /// Redundant overlapping objects this replicator removed (repair of a
    /// bucket where the same bytes were shipped twice; see `locate`).
    pub removed: u64,
    /// Requests retried after server errors or failed connections.
    pub retries: u64,
}

/// What [`Replicator::on_segment`] calls.
pub type SegmentHook = Box<dyn FnMut(&Status)>;

/// How long a new lease is left before it is read back.
const LEASE_SETTLE: Duration = Duration::from_millis(500);

struct Lease {
    epoch: u64,
    expires: Instant,
    renewed: Instant,
}

pub struct Replicator {
    store: Store,
    path: PathBuf,
    opts: Options,
    owner: String,
    log: Option<Log>,
    pos: Option<Position>,
    lease: Option<Lease>,
    status: Status,
    retention_checked: Option<Instant>,
    /// Called after each segment uploaded (a long catch-up shows progress).
    on_segment: Option<SegmentHook>,
    /// An upload whose outcome is unknown (invariant 5).
    pending: Option<Pending>,
}

/// A segment whose put failed: it may or may not have landed.
#[derive(Debug, Clone)]
struct Pending {
    pos: Position,
    first: Boundary,
    last: Boundary,
    /// The recycled images it carried (the same object is put again).
    recycled: Arc<Vec<u8>>,
}

/// Shared bytes read through a cursor (a put may be retried: each attempt
/// reads them from the start).
struct ArcBytes(std::io::Cursor<Arc<Vec<u8>>>);

impl Read for ArcBytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let all = self.0.get_ref();
        let pos = (self.0.position() as usize).min(all.len());
        let n = (all.len() - pos).min(buf.len());
        buf[..n].copy_from_slice(&all[pos..pos + n]);
        self.0.set_position((pos + n) as u64);
        Ok(n)
    }
}

/// A reader over bytes `[pos, end)` of a file (positioned reads).
struct RangeReader {
    file: std::fs::File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min((self.end - self.pos) as usize);
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        if got == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the log is shorter than expected"));
        }
        self.pos += got as u64;
        Ok(got)
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn pid_alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Replicator {
    pub fn new(store: Store, path: &Path, opts: Options) -> Replicator {
        let owner = format!("{}-{}-{}", host_name(), std::process::id(), now_us());
        Replicator {
            store,
            path: path.to_path_buf(),
            opts,
            owner,
            log: None,
            pos: None,
            lease: None,
            status: Status::default(),
            retention_checked: None,
            on_segment: None,
            pending: None,
        }
    }

    /// Calls `f` after each segment is uploaded, with the status so far.
    pub fn on_segment(&mut self, f: SegmentHook) {
        self.on_segment = Some(f);
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn name(&self) -> String {
        self.path.escaped().to_string()
    }

    /// Ships everything that is durable now; returns where the replica stands.
    ///
    /// After a store error the next pass lists the bucket again and goes on
    /// from what is really there (invariant 5).
    pub fn pass(&mut self) -> Result<Status, Error> {
        let r = self.pass_inner();
        if let Err(Error::Store(_)) = &r {
            self.pos = None;
        }
        r
    }

    fn pass_inner(&mut self) -> Result<Status, Error> {
        let reopen = match &self.log {
            None => true,
            // `pagelog compact` renamed a new log over the path.
            Some(log) => !log.is_current_file()?,
        };
        if reopen {
            self.log = None;
            let opened = Log::open(&self.path, OpenOptions { read_only: true, ..Default::default() });
            self.log = Some(opened.map_err(|e| match e {
                pagelog::Error::Io { source, .. } => Error::Local(format!("open log {}: {source}", self.name())),
                other => Error::Log(other),
            })?);
        }
        let log = self.log.as_ref().expect("opened above");
        let Some(header) = log.header()? else {
            return Ok(self.status.clone()); // an empty log: nothing to ship
        };
        // Retention may free the log's oldest bytes while it is in use: hold
        // what is at and after its boundary for this pass (invariant 6).
        let held = log.hold_shippable()?;
        self.ensure_lease()?;
        if self.pos.as_ref().is_none_or(|p| p.salt != header.salt) {
            self.pos = None;
            let cat = catalog(&self.store)?;
            self.pos = Some(self.locate(&cat, header.salt, &held)?);
        }
        // An upload whose answer never came: put exactly that object again
        // (same name, same bytes) if the bucket still ends where it started;
        // if it ends past that, the upload landed.
        if let Some(p) = self.pending.take() {
            let here = self.pos.as_ref().expect("located above");
            if p.pos.salt == here.salt && p.pos.at.end == here.at.end {
                self.upload(&p.pos, &p.first, &p.last, p.recycled)?;
            }
        }
        let log = self.log.as_ref().expect("opened above");
        // What is durable: claimed by the log, or made so by our own sync
        // of what we have read (a sync flushes every process's writes).
        let durable = log.durable_version()?;
        let latest = log.latest();
        let mut upto = durable;
        if latest.number > durable {
            log.file().sync_data().map_err(|e| Error::Local(format!("sync {}: {e}", self.name())))?;
            upto = latest.number;
        }
        let mut damage = None;
        let mut pos = self.pos.clone().expect("located above");
        if pos.head.is_some() && pos.at.end < held.from {
            // Not started yet, and the boundary moved since: start there.
            pos = self.fresh(pos.salt, pos.created_us, &held)?;
            self.pos = Some(pos.clone());
        }
        // A generation past freed bytes waits for a commit it can restore.
        let started = self.put_head(&pos, upto)?;
        loop {
            if !started {
                break;
            }
            let pos = self.pos.clone().expect("located above");
            let log = self.log.as_ref().expect("opened above");
            // Below what is held, bytes may be punched while they are read.
            if pos.at.end < held.from {
                return Err(self.freed_before_shipped(&pos, held.from, &held));
            }
            let checked = log.checked_commits(&pos.at, upto, self.opts.max_segment)?;
            if let Some(b) = checked.freed {
                return Err(self.freed_before_shipped(&pos, b, &held));
            }
            if let (Some(first), Some(last)) = (checked.commits.first(), checked.commits.last()) {
                let start = if pos.at.commit_offset == 0 { 0 } else { pos.at.end };
                let recycled = self.recycled_images(start, &checked.commits)?;
                self.upload(&pos, first, last, Arc::new(recycled))?;
            }
            if checked.damage.is_some() {
                damage = checked.damage;
                break;
            }
            if checked.commits.is_empty() || self.pos.as_ref().is_some_and(|p| p.at.version >= upto) {
                break;
            }
        }
        let pos = self.pos.as_ref().expect("located above");
        // A generation whose head is not put yet holds nothing.
        self.status.version = if pos.head.is_some() { 0 } else { pos.at.version };
        self.status.latest = latest.number;
        self.status.lag_bytes = latest.end.saturating_sub(pos.at.end);
        self.status.lag_us =
            if latest.number > pos.at.version { latest.timestamp_us.saturating_sub(pos.at.timestamp_us) } else { 0 };
        self.status.generation = Generation::name(pos.created_us, pos.salt);
        self.status.retries = self.store.retried.get();
        if let Some(d) = damage {
            return Err(Error::Refused(format!(
                "{}: {}; replicated up to version {}, nothing past the damage",
                self.name(),
                describe(&d),
                pos.at.version
            )));
        }
        self.retain()?;
        Ok(self.status.clone())
    }

    /// The replica ends at `pos`, below the boundary `b` of the local log:
    /// retention freed bytes that were never shipped (invariant 6).
    fn freed_before_shipped(&self, pos: &Position, b: u64, held: &pagelog::Shippable) -> Error {
        let oldest = held.oldest.map_or(String::new(), |v| format!(" (versions before {v})"));
        Error::Refused(format!(
            "{} of {}: the replica ends at version {} (offset {}), but the retention policy of {} freed its bytes \
             512..{b}{oldest} before they were shipped: the replica cannot be continued (it still restores versions \
             up to {}). Keep the replicator running with a policy that keeps versions for longer than it lags; \
             replicate to another prefix, where a replica starts at what the log keeps",
            Generation::name(pos.created_us, pos.salt),
            self.store.loc,
            pos.at.version,
            pos.at.end,
            self.name(),
            pos.at.version
        ))
    }

    /// Where a new generation of this log starts: offset 0, or, when
    /// retention freed the log's oldest bytes, the boundary held (with a
    /// `head-` object to put before the first segment: invariant 6).
    fn fresh(&self, salt: u64, created_us: u64, held: &pagelog::Shippable) -> Result<Position, Error> {
        if held.from <= pagelog::Boundary::START.end {
            return Ok(Position { salt, created_us, at: Boundary::START, head: None });
        }
        let log = self.log.as_ref().expect("opened");
        let at = log.continues_at(held.from)?.ok_or_else(|| {
            Error::Refused(format!("{}: no record at its boundary (offset {}): damaged", self.name(), held.from))
        })?;
        // Below `B`: the frames the oldest kept version reads in place, and
        // those later held commits wrote into recycled slots (invariant 7).
        let low = log.head_low(held)?;
        Ok(Position { salt, created_us, at, head: Some((held.from, held.control, low.min(held.from))) })
    }

    /// Puts the `head-` object of a generation that starts past freed
    /// bytes, naming the oldest version it restores: the first commit after
    /// the CONTROL record that set its start. Ok(false): no such commit yet
    /// (nothing can be shipped until the next one).
    fn put_head(&mut self, pos: &Position, upto: u64) -> Result<bool, Error> {
        let Some((from, control, low)) = pos.head else { return Ok(true) };
        let log = self.log.as_ref().expect("opened");
        let checked = log.checked_commits(&pos.at, upto, u64::MAX)?;
        let Some(first) = checked.commits.iter().find(|b| b.commit_offset > control) else {
            if let Some(d) = checked.damage {
                return Err(Error::Refused(format!("{}: {}; nothing shipped", self.name(), describe(&d))));
            }
            return Ok(false);
        };
        // The header, then the bytes from the lowest frame read in place up
        // to `from` (held by this pass's epoch lock: no step punches them).
        let size = HEAD_SIZE + (from - low);
        let head = Head { from, first: first.version, size };
        let key = self.store.loc.key(&format!("{}/{}", Generation::name(pos.created_us, pos.salt), head.name()));
        let file = log.file().try_clone().map_err(|e| Error::Local(format!("{}: {e}", self.name())))?;
        let file = Arc::new(file);
        self.store.put(&key, size, true, &mut || {
            let header = RangeReader { file: file.try_clone()?, pos: 0, end: HEAD_SIZE };
            let below = RangeReader { file: file.try_clone()?, pos: low, end: from };
            Ok(Box::new(header.chain(below)) as Box<dyn Read>)
        })?;
        if let Some(p) = self.pos.as_mut() {
            p.head = None;
        }
        Ok(true)
    }

    /// Finds where the bucket's replica of this log file ends (invariant 3).
    fn locate(&mut self, cat: &Catalog, salt: u64, held: &pagelog::Shippable) -> Result<Position, Error> {
        let loc = &self.store.loc;
        let Some(g) = cat.by_salt(salt) else {
            let started = cat.newest().map_or(0, |n| n.created_us + 1).max(now_us());
            return self.fresh(salt, started, held);
        };
        if let Some(newest) = cat.newest().filter(|n| n.salt != salt) {
            return Err(Error::Refused(format!(
                "{} is generation {} of {loc}, but a newer log was replicated there since ({}: after a                  compaction, or from another database); {} may be an older copy; use another prefix",
                self.name(),
                g.dir(),
                newest.dir(),
                self.name()
            )));
        }
        let created_us = g.created_us;
        if g.segments.is_empty() {
            // A head put, then the replicator stopped before its first
            // segment: start the generation again (a new head).
            if let Some(h) = g.head {
                self.store.delete(&loc.key(&format!("{}/{}", g.dir(), h.name())))?;
            }
            return self.fresh(salt, created_us, held);
        }
        let key_of = |s: &Segment| loc.key(&format!("{}/{}", g.dir(), s.name()));
        let chain = g.chain(key_of);
        if let Some(b) = &chain.broken {
            return Err(Error::Refused(format!(
                "{loc}: {b}; replicate does not append past a break (versions up to {} of {} restore with \
                 --version N); replicate to another prefix",
                chain.last,
                g.dir()
            )));
        }
        let last = chain.segments.iter().find(|s| s.end == chain.end).expect("a listed generation has a segment");
        let key = key_of(last);
        let t = self.store.get(&key, Some((last.end - last.start - 16, 16)))?;
        let trailer_ok = t.len() == 16 && &t[8..12] == b"PLTR";
        let rec_offset = if trailer_ok { u64::from_le_bytes(t[..8].try_into().unwrap()) } else { 0 };
        let crc = if trailer_ok { u32::from_le_bytes(t[12..16].try_into().unwrap()) } else { 0 };
        if !trailer_ok || rec_offset >= last.end {
            return Err(Error::Refused(format!(
                "{key}: its last 16 bytes are not a record trailer: damaged or foreign"
            )));
        }
        if rec_offset < held.from {
            let at = Boundary { version: last.last, commit_offset: rec_offset, crc, end: last.end, timestamp_us: 0 };
            return Err(self.freed_before_shipped(&Position { salt, created_us, at, head: None }, held.from, held));
        }
        let log = self.log.as_ref().expect("opened");
        let latest = log.latest();
        let here = log.boundary_at(rec_offset)?;
        match here {
            Some(b) if b.end == last.end && b.version == last.last && b.crc == crc && b.version <= latest.number => {
                let at = Position { salt, created_us, at: b, head: None };
                if chain.overlaps > 0 {
                    self.repair(g, &chain, &at, held.from)?;
                }
                Ok(at)
            }
            _ => Err(Error::Refused(format!(
                "{key} ends at version {} (offset {}), which {} does not hold (its latest version is {}): the bucket \
                 holds a longer or different history of this log; restore it, or replicate to another prefix",
                last.last,
                last.end,
                self.name(),
                latest.number
            ))),
        }
    }

    /// Repairs a generation whose segments overlap (invariant 5): compares
    /// every object that overlaps another with the local log, byte for
    /// byte; then uploads what a chain without overlaps lacks and deletes
    /// the objects it does not need. `at` is where the chain ends (checked
    /// against the local log).
    fn repair(&mut self, g: &Generation, chain: &Chain, at: &Position, freed: u64) -> Result<(), Error> {
        let loc = self.store.loc.clone();
        let key_of = |s: &Segment| loc.key(&format!("{}/{}", g.dir(), s.name()));
        let segs = &chain.segments;
        let mut reach = 0u64;
        let mut overlapping = vec![false; segs.len()];
        for (i, s) in segs.iter().enumerate() {
            if s.start < reach {
                overlapping[i] = true;
                // Every earlier segment reaching past s.start overlaps it.
                for (j, o) in segs[..i].iter().enumerate() {
                    if o.end > s.start {
                        overlapping[j] = true;
                    }
                }
            }
            reach = reach.max(s.end);
        }
        let log = self.log.as_ref().expect("opened");
        // Below the boundary the local bytes are freed: nothing to compare.
        for (s, _) in segs.iter().zip(&overlapping).filter(|(s, &o)| o && s.start >= freed) {
            let key = key_of(s);
            let got = self.store.get(&key, None)?;
            let mut want = vec![0u8; (s.end - s.start) as usize];
            log.file().read_exact_at(&mut want, s.start).map_err(|e| Error::Local(format!("{}: {e}", self.name())))?;
            if got.len() as u64 != s.size {
                return Err(Error::Refused(format!(
                    "{key} holds {} bytes, its name says {}: truncated or altered; not repairing {loc}",
                    got.len(),
                    s.size
                )));
            }
            // Its log bytes (recycled images after them are not the log's
            // bytes there). A slot recycled since it was shipped differs:
            // refused as any difference (invariant 7's limit).
            let got = &got[..want.len()];
            if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
                return Err(Error::Refused(format!(
                    "{key} overlaps another object of {} and differs from {} at log offset {} (byte {i} of it): \
                     the bucket holds a different history here; versions before that restore with --version N; \
                     replicate to another prefix",
                    g.dir(),
                    self.name(),
                    s.start + i as u64
                )));
            }
        }
        // A chain without overlaps: the clean part of the bucket, plus
        // segments cut from the local log where only overlaps reach.
        let cover = match chain.clean_cover() {
            Some(c) => c,
            None => {
                // From 0: the segment starting at the end so far that
                // reaches furthest; where none starts there, a new one cut
                // from the local log up to the end of the overlapping
                // segment that reaches furthest.
                let mut cover: Vec<Segment> = Vec::new();
                let (mut end, mut last) = (chain.start, 0u64);
                while end < chain.end {
                    let next = segs.iter().filter(|s| s.start == end && s.end > end).max_by_key(|s| s.end);
                    if let Some(s) = next {
                        cover.push(*s);
                        (end, last) = (s.end, s.last);
                        continue;
                    }
                    let Some(s) = segs.iter().filter(|s| s.start < end && s.end > end).max_by_key(|s| s.end) else {
                        return Err(Error::Refused(format!("{loc}: no object holds log offset {end}")));
                    };
                    let from = self.boundary_of(last)?;
                    let to = self.boundary_of(s.last)?;
                    let first = self.boundary_of(last + 1)?;
                    if to.end != s.end || from.end != end {
                        return Err(Error::Refused(format!(
                            "{}: does not end at a commit of {} where its name says; not repairing {loc}",
                            key_of(s),
                            self.name()
                        )));
                    }
                    let log = self.log.as_ref().expect("opened");
                    let commits = log.checked_commits(&from, to.version, u64::MAX)?.commits;
                    let recycled = Arc::new(self.recycled_images(end, &commits)?);
                    let rlen = recycled.len() as u64;
                    self.upload(&Position { at: from, ..at.clone() }, &first, &to, recycled)?;
                    cover.push(Segment {
                        start: end,
                        end: s.end,
                        first: last + 1,
                        last: s.last,
                        first_us: first.timestamp_us,
                        last_us: to.timestamp_us,
                        size: s.end - end + rlen,
                        recycled: rlen,
                    });
                    (end, last) = (s.end, s.last);
                }
                cover
            }
        };
        // Each removed object's bytes are in the cover (compared above).
        for s in segs {
            if !cover.contains(s) {
                self.store.delete(&key_of(s))?;
                self.status.removed += 1;
            }
        }
        Ok(())
    }

    /// The commit of version `n` of the local log.
    fn boundary_of(&self, n: u64) -> Result<Boundary, Error> {
        let log = self.log.as_ref().expect("opened");
        if n == 0 {
            return Ok(Boundary::START);
        }
        let v = log.version(n)?;
        log.boundary_at(v.commit_offset)?.ok_or_else(|| {
            Error::Refused(format!("{}: no commit of version {n} at offset {}", self.name(), v.commit_offset))
        })
    }

    /// The page images that the RECYCLED commits among `commits` (a
    /// segment's, in order) wrote into recycled slots below `start`, where
    /// the segment starts (invariant 7), encoded as the segment carries
    /// them; empty when there are none. Read now, under the pass's epoch
    /// lock, and checked against their entries' crcs.
    fn recycled_images(&self, start: u64, commits: &[Boundary]) -> Result<Vec<u8>, Error> {
        use pagelog::format::{self, Entry, RecordHeader};
        let log = self.log.as_ref().expect("opened");
        let Some(header) = log.header()? else { return Ok(Vec::new()) };
        if header.format < 4 || start <= HEAD_SIZE {
            return Ok(Vec::new());
        }
        let file = log.file();
        let local = |e: std::io::Error| Error::Local(format!("{}: {e}", self.name()));
        let mut items: Vec<Recycled> = Vec::new();
        let mut taken = std::collections::HashSet::new();
        // Newest first: a slot recycled twice within the segment holds the
        // newer commit's image (the older one's is gone, and so is every
        // version that read it: the slot was freed again in between).
        for b in commits.iter().rev() {
            let mut h = [0u8; format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE];
            file.read_exact_at(&mut h, b.commit_offset).map_err(local)?;
            let Some(rh) = RecordHeader::decode(header.salt, &h) else {
                return Err(Error::Refused(format!(
                    "{}: no record header at offset {} (version {}) as it is shipped",
                    self.name(),
                    b.commit_offset,
                    b.version
                )));
            };
            if rh.kind != format::KIND_COMMIT || rh.flags & format::FLAG_RECYCLED == 0 {
                continue;
            }
            let at = format::RECORD_HEADER_SIZE + format::CI_ENTRIES;
            let n = u32::from_le_bytes(h[at..at + 4].try_into().expect("4 bytes")) as usize;
            let mut raw = vec![0u8; n * format::ENTRY_SIZE];
            let from = b.commit_offset + (format::RECORD_HEADER_SIZE + format::COMMIT_INFO_SIZE) as u64;
            file.read_exact_at(&mut raw, from).map_err(local)?;
            for e in raw.chunks_exact(format::ENTRY_SIZE).map(Entry::decode) {
                // Page images only (a patch lies in its commit's own patch
                // area); those at or after `start` are among the segment's bytes.
                if e.offset == 0 || e.offset % 8 != 0 || e.offset >= start || !taken.insert(e.offset) {
                    continue;
                }
                let mut page = vec![0u8; rh.page_size as usize];
                file.read_exact_at(&mut page, e.offset).map_err(local)?;
                if crc32fast::hash(&page) != e.crc {
                    return Err(Error::Refused(format!(
                        "{}: the page image of page {} that version {} (at {}) wrote into the recycled slot at \
                         offset {} no longer has its crc {:#010x}: the slot was freed and written again before this \
                         replicator shipped version {}; the replica cannot hold that version (keep the replicator \
                         running, or replicate to another prefix)",
                        self.name(),
                        e.pgno,
                        b.version,
                        b.commit_offset,
                        e.offset,
                        e.crc,
                        b.version
                    )));
                }
                items.push(Recycled { version: b.version, offset: e.offset, bytes: page });
            }
        }
        // In commit order (a stable sort keeps each commit's own order).
        items.reverse();
        items.sort_by_key(|r| r.version);
        let mut out = Vec::new();
        for r in &items {
            r.encode(&mut out);
        }
        Ok(out)
    }

    fn upload(
        &mut self,
        pos: &Position,
        first: &Boundary,
        last: &Boundary,
        recycled: Arc<Vec<u8>>,
    ) -> Result<(), Error> {
        let start = if pos.at.commit_offset == 0 { 0 } else { pos.at.end };
        let seg = Segment {
            start,
            end: last.end,
            first: first.version,
            last: last.version,
            first_us: first.timestamp_us,
            last_us: last.timestamp_us,
            size: last.end - start + recycled.len() as u64,
            recycled: recycled.len() as u64,
        };
        let key = self.store.loc.key(&format!("{}/{}", Generation::name(pos.created_us, pos.salt), seg.name()));
        self.ensure_lease()?;
        let file = self.log.as_ref().expect("opened").file().try_clone();
        let file = Arc::new(file.map_err(|e| Error::Local(format!("{}: {e}", self.name())))?);
        let put = self.store.put(&key, seg.size, true, &mut || {
            let bytes = RangeReader { file: file.try_clone()?, pos: start, end: last.end };
            let images = std::io::Cursor::new(Arc::clone(&recycled));
            Ok(Box::new(bytes.chain(ArcBytes(images))) as Box<dyn Read>)
        });
        let put = put.inspect_err(|_| {
            let recycled = Arc::clone(&recycled);
            self.pending = Some(Pending { pos: pos.clone(), first: *first, last: *last, recycled })
        })?;
        if put == Put::Exists && !self.is_ours(&key, &seg, last)? {
            return Err(Error::Refused(format!(
                "{key} already exists: another replicator is shipping to {}; stopping",
                self.store.loc
            )));
        }
        self.status.segments += 1;
        self.status.bytes += seg.size;
        self.status.version = last.version;
        self.pos = Some(Position { at: *last, ..pos.clone() });
        if let Some(f) = self.on_segment.as_mut() {
            f(&self.status);
        }
        Ok(())
    }

    /// Is the existing object `key` the segment we were putting (an earlier
    /// attempt of ours that succeeded, its answer lost to a failed
    /// connection)? Same name, same size, and the same trailer (record
    /// offset and salted crc of the last commit): the same bytes.
    fn is_ours(&self, key: &str, seg: &Segment, last: &Boundary) -> Result<bool, Error> {
        if self.store.head(key)? != Some(seg.size) {
            return Ok(false);
        }
        let t = self.store.get(key, Some((seg.log_bytes() - 16, 16)))?;
        let mut want = [0u8; 16];
        want[..8].copy_from_slice(&last.commit_offset.to_le_bytes());
        want[8..12].copy_from_slice(b"PLTR");
        want[12..].copy_from_slice(&last.crc.to_le_bytes());
        Ok(t == want)
    }

    fn lease_body(&self, expires_us: u64) -> String {
        serde_json::json!({
            "owner": self.owner,
            "host": host_name(),
            "pid": std::process::id(),
            "log": self.name(),
            "expires_us": expires_us,
        })
        .to_string()
    }

    fn put_lease(&self, epoch: u64, if_absent: bool) -> Result<(Put, Instant), Error> {
        let t0 = Instant::now();
        let body = self.lease_body(now_us() + self.opts.lease_ttl.as_micros() as u64);
        let key = self.store.loc.key(&lease_name(epoch));
        let put = self.store.put(&key, body.len() as u64, if_absent, &mut || {
            Ok(Box::new(std::io::Cursor::new(body.clone().into_bytes())) as Box<dyn Read>)
        })?;
        Ok((put, t0))
    }

    fn lease_epochs(&self) -> Result<Vec<u64>, Error> {
        let dir = self.store.loc.dir();
        let objs = self.store.list(&format!("{dir}{LEASE}"), None)?;
        Ok(Catalog::from_objects(&dir, &objs).leases)
    }

    /// Does lease `epoch` name this replicator (our own put, retried)?
    fn lease_is_mine(&self, epoch: u64) -> Result<bool, Error> {
        let body = self.store.get(&self.store.loc.key(&lease_name(epoch)), None)?;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        Ok(v["owner"].as_str() == Some(self.owner.as_str()))
    }

    /// Takes the lease, or renews it when a third of its time has passed
    /// (invariant 4).
    fn ensure_lease(&mut self) -> Result<(), Error> {
        let loc = self.store.loc.clone();
        if let Some(l) = &self.lease {
            if l.renewed.elapsed() < self.opts.lease_ttl / 3 {
                return Ok(());
            }
            let epochs = self.lease_epochs()?;
            let stolen = epochs.iter().any(|&e| e > l.epoch) || !self.lease_is_mine(l.epoch)?;
            if stolen {
                return Err(Error::Refused(format!(
                    "lost the lease on {loc}: another replicator took it over while this one was stalled or \
                     could not reach the store"
                )));
            }
            if Instant::now() > l.expires {
                // Expired while the store was unreachable (or this process
                // stalled), and nobody took it: take it again as a new
                // replicator would, and look at the bucket again.
                self.lease = None;
                self.pos = None;
                return self.ensure_lease();
            }
            let epoch = l.epoch;
            let (_, t0) = self.put_lease(epoch, false)?;
            self.lease = Some(Lease { epoch, expires: t0 + self.opts.lease_ttl, renewed: t0 });
            return Ok(());
        }
        let epochs = self.lease_epochs()?;
        let top = epochs.iter().copied().max();
        if let Some(e) = top {
            let key = loc.key(&lease_name(e));
            let body = self.store.get(&key, None)?;
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let expires = v["expires_us"].as_u64().unwrap_or(0);
            let host = v["host"].as_str().unwrap_or("");
            let pid = v["pid"].as_u64().unwrap_or(0);
            let stale_here = host == host_name() && !pid_alive(pid);
            // Our own lease, whose put landed though its answer was lost.
            let mine = v["owner"].as_str() == Some(self.owner.as_str());
            if expires > now_us() && !stale_here && !mine {
                return Err(Error::Refused(format!(
                    "another replicator holds the lease on {loc} (process {pid} on host {host:?}, replicating {}), \
                     for {:.0} s more; two replicators on one prefix would interleave",
                    v["log"].as_str().unwrap_or("?"),
                    (expires - now_us()) as f64 / 1e6
                )));
            }
        }
        let epoch = top.map_or(1, |e| e + 1);
        let (put, t0) = self.put_lease(epoch, true)?;
        if put == Put::Exists && !self.lease_is_mine(epoch)? {
            return Err(Error::Refused(format!("another replicator took the lease on {loc} just now")));
        }
        // A store that ignores If-None-Match (Garage 2.5 does) lets two
        // replicators that started together both write this epoch: wait
        // longer than a request takes, then read it back; the later writer
        // wins, the other refuses.
        std::thread::sleep(LEASE_SETTLE);
        if !self.lease_is_mine(epoch)? || self.lease_epochs()?.iter().any(|&e| e > epoch) {
            return Err(Error::Refused(format!("another replicator took the lease on {loc} just now")));
        }
        for e in epochs {
            let _ = self.store.delete(&loc.key(&lease_name(e)));
        }
        self.lease = Some(Lease { epoch, expires: t0 + self.opts.lease_ttl, renewed: t0 });
        Ok(())
    }

    /// Gives the lease up (a clean stop), so another replicator may start at once.
    pub fn release(&mut self) {
        if let Some(l) = self.lease.take() {
            let _ = self.store.delete(&self.store.loc.key(&lease_name(l.epoch)));
        }
    }

    /// `--retain`: deletes generations that were replaced (by the next one's
    /// creation) longer ago than the retention, newest segment first, so
    /// that an interrupted deletion leaves a valid shorter prefix. Checked
    /// at most once a minute.
    fn retain(&mut self) -> Result<(), Error> {
        let Some(keep) = self.opts.retain_us else { return Ok(()) };
        if self.retention_checked.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
            return Ok(());
        }
        self.retention_checked = Some(Instant::now());
        let cat = catalog(&self.store)?;
        let now = now_us();
        let current = self.pos.as_ref().map(|p| p.salt);
        for pair in cat.generations.windows(2) {
            let (old, next) = (&pair[0], &pair[1]);
            if Some(old.salt) == current || now.saturating_sub(next.created_us) <= keep {
                continue;
            }
            for s in old.segments.iter().rev() {
                self.store.delete(&self.store.loc.key(&format!("{}/{}", old.dir(), s.name())))?;
            }
            if let Some(h) = old.head {
                self.store.delete(&self.store.loc.key(&format!("{}/{}", old.dir(), h.name())))?;
            }
        }
        Ok(())
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.release();
    }
}

/// A log error without the file name (the message names it already).
fn describe(e: &pagelog::Error) -> String {
    match e {
        pagelog::Error::Corrupt { offset, expected, found, .. } => {
            format!("the log is damaged at offset {offset}: expected {expected}, found {found}")
        }
        other => other.to_string(),
    }
}
