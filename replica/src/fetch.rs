//! Restore and follow: segments downloaded into a log file, every byte
//! checked.
//!
//! [`restore_into`] rebuilds one version: it downloads a generation's
//! segments up to the one holding the version into a new file, truncates it
//! at the version's commit, and verifies the result as `pagelog verify`
//! does (every record, every frame, every version's whole-database
//! checksum). Any problem is reported with the object and the byte of it
//! where it lies.
//!
//! [`Follower`] keeps a local replica current: it appends each new segment
//! (write, `fdatasync`), then checks the commits it brought, so that
//! processes reading the replica see them at their next transaction. While
//! it runs it holds the replica's WRITER lock, so that no local connection
//! can write to it (they get `SQLITE_BUSY`).
//!
//! A segment may carry page images that RECYCLED commits wrote into
//! recycled slots below it (`layout.rs`, [`Recycled`]): they are written at
//! their offsets after the segment's bytes, in commit order — by a restore
//! only those of versions up to the one it restores; by a follower once no
//! reader of the replica holds a snapshot older than the segment's newest
//! control state (as the primary's writer waited before it recycled).

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use pagelog::{Boundary, EscapedName, Log, OpenOptions};

use crate::layout::{Catalog, Generation, Recycled, Segment, HEAD_SIZE};
use crate::store::Store;
use crate::{catalog, Error};

/// Which version to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The newest version replicated.
    Latest,
    Version(u64),
    /// The newest version committed at or before this time (µs since the epoch).
    Time(u64),
}

/// What [`restore_into`] rebuilt.
#[derive(Debug, Clone)]
pub struct Restored {
    pub version: u64,
    pub generation: String,
    /// Objects downloaded and their bytes.
    pub objects: u64,
    pub downloaded: u64,
    /// Size of the restored log.
    pub bytes: u64,
}

fn seg_key(store: &Store, g: &Generation, s: &Segment) -> String {
    store.loc.key(&format!("{}/{}", g.dir(), s.name()))
}

/// Names the object holding log offset `offset`, and the byte of it.
fn blame(store: &Store, g: &Generation, segs: &[Segment], offset: u64) -> String {
    match segs.iter().find(|s| s.start <= offset && offset < s.end).or(segs.last()) {
        Some(s) => format!("object {} (byte {} of it)", seg_key(store, g, s), offset.saturating_sub(s.start)),
        None => "no object".into(),
    }
}

fn log_problem(store: &Store, g: &Generation, segs: &[Segment], e: &pagelog::Error) -> Error {
    match e {
        pagelog::Error::Corrupt { offset, expected, found, .. } => Error::Refused(format!(
            "{} is damaged at log offset {offset}: expected {expected}, found {found}",
            blame(store, g, segs, *offset)
        )),
        pagelog::Error::NotALog { reason, .. } => {
            Error::Refused(format!("{} does not start a pagelog log: {reason}", blame(store, g, segs, 0)))
        }
        other => Error::Log(clone_err(other)),
    }
}

fn clone_err(e: &pagelog::Error) -> pagelog::Error {
    pagelog::Error::Unsupported(e.to_string())
}

/// Refuses a prefix holding objects that are not part of a replica.
pub fn check_foreign(store: &Store, cat: &Catalog) -> Result<(), Error> {
    if cat.foreign.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = cat.foreign.iter().take(3).map(String::as_str).collect();
    Err(Error::Refused(format!(
        "{} holds {} object(s) that are not part of a pagelog replica: {}{}; refusing to guess",
        store.loc,
        cat.foreign.len(),
        shown.join(", "),
        if cat.foreign.len() > 3 { ", ..." } else { "" }
    )))
}

fn held(cat: &Catalog) -> String {
    let parts: Vec<String> = cat
        .generations
        .iter()
        .map(|g| format!("{} versions {} to {}", g.dir(), g.first_version(), g.last_version()))
        .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join("; ")
    }
}

/// Downloads segments `segs` of `g` into `file` (from offset `segs[0].start`),
/// checking each object's length; a retried download restarts its object.
/// Returns the bytes downloaded and the recycled images the segments carry
/// (checked, in segment and commit order, not written).
///
/// Bytes the file already holds are compared, never written: those below
/// `keep` (what the file held before this process, which readers may use),
/// those below `known` (earlier objects appended) and those an earlier
/// segment of `segs` brought (overlapping segments: the same bytes shipped
/// twice). A difference is refused, naming both sides and the offset.
fn download(
    store: &Store,
    g: &Generation,
    segs: &[Segment],
    file: &File,
    (keep, known): (u64, u64),
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, Vec<Recycled>), Error> {
    let mut total = 0;
    let mut images = Vec::new();
    // The file's bytes [0, have) are known; `from` names who brought those
    // at or above `keep`.
    let mut have = keep.max(known);
    let mut from: Vec<Segment> = Vec::new();
    for s in segs {
        let key = seg_key(store, g, s);
        let mut at = s.start;
        let differs = |off: u64| {
            if off < keep {
                return format!(
                    "the local file differs from object {key} (byte {} of it) at log offset {off}: it was written to",
                    off - s.start
                );
            }
            let other = match from.iter().find(|o| o.start <= off && off < o.end) {
                Some(o) => format!("object {}", seg_key(store, g, o)),
                None => "the object before it".to_string(),
            };
            format!(
                "object {key} (byte {} of it) differs from {other} at log offset {off}: overlapping copies of the \
                 log that disagree (damaged)",
                off - s.start
            )
        };
        let mut tail: Vec<u8> = Vec::new();
        let got = store.get_into(&key, None, &mut |b| {
            match b {
                // A retried download writes the same bytes again (objects are
                // immutable); it never cuts the file, whose readers (`follow`)
                // may already use the complete records of the first attempt.
                None => {
                    at = s.start;
                    tail.clear();
                }
                Some(b) => {
                    if at + (b.len() + tail.len()) as u64 > s.end + s.recycled {
                        return Err(std::io::Error::other(format!(
                            "{key} is longer than its name says ({} bytes)",
                            s.size
                        )));
                    }
                    // Past the log bytes: the recycled images, kept aside.
                    let log_part = (s.end.saturating_sub(at) as usize).min(b.len());
                    tail.extend_from_slice(&b[log_part..]);
                    let b = &b[..log_part];
                    let same = (have.min(at + b.len() as u64).saturating_sub(at)) as usize;
                    if same > 0 {
                        let mut old = vec![0u8; same];
                        file.read_exact_at(&mut old, at)?;
                        if let Some(i) = old.iter().zip(b).position(|(x, y)| x != y) {
                            let off = at + i as u64;
                            return Err(std::io::Error::other(format!("{MISMATCH}{}", differs(off))));
                        }
                    }
                    file.write_all_at(&b[same..], at + same as u64)?;
                    at += b.len() as u64;
                    progress(at);
                }
            }
            Ok(())
        });
        let got = got.map_err(|e| match e {
            Error::Local(m) => match m.find(MISMATCH) {
                Some(i) => Error::Refused(m[i + MISMATCH.len()..].to_string()),
                None => Error::Local(m),
            },
            other => other,
        })?;
        if got != s.size {
            return Err(Error::Refused(format!(
                "object {key} holds {got} bytes, its name says {} (log bytes {}..{}): truncated or altered",
                s.size, s.start, s.end
            )));
        }
        let mine = Recycled::decode_all(&tail, s.start).map_err(|e| {
            Error::Refused(format!(
                "object {key} is damaged after its log bytes (byte {} of it on): {e}",
                s.end - s.start
            ))
        })?;
        if mine.iter().any(|r| r.version < s.first || r.version > s.last) {
            return Err(Error::Refused(format!(
                "object {key} carries a recycled image of a version outside {}..{}: damaged",
                s.first, s.last
            )));
        }
        images.extend(mine);
        if s.start == 0 {
            let mut h = [0u8; 64];
            file.read_exact_at(&mut h, 0).map_err(|e| Error::Local(format!("read back: {e}")))?;
            match pagelog::format::Header::decode(&h) {
                Ok(h) if h.salt == g.salt => {}
                _ => {
                    return Err(Error::Refused(format!(
                        "object {key} does not start with the header of log {} (salt {:016x}): damaged or foreign",
                        g.dir(),
                        g.salt
                    )))
                }
            }
        }
        have = have.max(s.end);
        from.push(*s);
        total += got;
    }
    Ok((total, images))
}

/// Writes recycled images at their offsets, in order; returns what each
/// overwrote (to undo with [`unwrite_recycled`]).
fn write_recycled(file: &File, images: &[Recycled]) -> std::io::Result<Vec<(u64, Vec<u8>)>> {
    let mut undo = Vec::with_capacity(images.len());
    for r in images {
        let mut old = vec![0u8; r.bytes.len()];
        file.read_exact_at(&mut old, r.offset)?;
        file.write_all_at(&r.bytes, r.offset)?;
        undo.push((r.offset, old));
    }
    Ok(undo)
}

/// Puts back what [`write_recycled`] overwrote, newest first.
fn unwrite_recycled(file: &File, undo: &[(u64, Vec<u8>)]) -> std::io::Result<()> {
    for (offset, old) in undo.iter().rev() {
        file.write_all_at(old, *offset)?;
    }
    Ok(())
}

/// How long a follower waits for the replica's readers of older snapshots
/// before it writes recycled images (see `Follower::write_recycled_when_safe`).
const READER_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The newest control-state epoch among the CONTROL records in the log
/// bytes `[from, to)` of `file` (whole records, from a record's start);
/// 0 when there is none.
fn newest_epoch(file: &File, from: u64, to: u64) -> std::io::Result<u64> {
    use pagelog::format::{self, RecordHeader};
    let mut h = [0u8; format::HEADER_SIZE];
    file.read_exact_at(&mut h, 0)?;
    let Ok(header) = format::Header::decode(&h) else { return Ok(0) };
    let mut pos = from.max(HEAD_SIZE);
    let mut epoch = 0;
    let mut rh = [0u8; format::RECORD_HEADER_SIZE + 8];
    while pos + rh.len() as u64 <= to {
        file.read_exact_at(&mut rh, pos)?;
        let Some(r) = RecordHeader::decode(header.salt, &rh) else { break };
        if r.kind == format::KIND_CONTROL {
            let at = format::RECORD_HEADER_SIZE + format::CTL_EPOCH;
            epoch = epoch.max(u64::from_le_bytes(rh[at..at + 8].try_into().expect("8 bytes")));
        }
        if r.length < format::RECORD_HEADER_SIZE as u64 {
            break;
        }
        pos += r.length;
    }
    Ok(epoch)
}

/// Marks a byte difference found while downloading (an I/O error to the
/// store's writer callback, turned back into [`Error::Refused`]).
const MISMATCH: &str = "\u{1}mismatch\u{1}";

/// Rebuilds `target` from the bucket into `tmp` (created, must not exist),
/// verified. On error `tmp` may hold a partial file: the caller removes it.
/// `progress(bytes, total)` follows the download, then the verification.
pub fn restore_into(
    store: &Store,
    target: Target,
    tmp: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Restored, Error> {
    let cat = catalog(store)?;
    check_foreign(store, &cat)?;
    let loc = &store.loc;
    let g = match target {
        Target::Latest => cat.newest(),
        Target::Version(n) => cat.generations.iter().rev().find(|g| g.first_version() <= n && n <= g.last_version()),
        Target::Time(t) => cat.generations.iter().rev().find(|g| g.segments.first().is_some_and(|s| s.first_us <= t)),
    };
    let Some(g) = g else {
        let what = match target {
            Target::Latest => "replica".to_string(),
            Target::Version(n) => format!("version {n}"),
            // The caller names the time as its user wrote it.
            Target::Time(_) => "version committed at or before that time".to_string(),
        };
        return Err(Error::Refused(format!("{loc} holds no {what} (it holds {})", held(&cat))));
    };
    let chain = g.chain(|s| seg_key(store, g, s));
    // A break (gap, truncated object) ends what can be restored; versions
    // before it still restore.
    let beyond = |what: String| match &chain.broken {
        Some(b) => Error::Refused(format!(
            "{loc}: {b}; {what} is past that (versions up to {} of {} restore: --version N)",
            chain.last,
            g.dir()
        )),
        None => Error::Refused(format!("{loc}: {what} is not in {}", g.dir())),
    };
    if chain.segments.is_empty() {
        return Err(beyond("every version".into()));
    }
    let segs: &[Segment] = match target {
        Target::Latest if chain.broken.is_some() => return Err(beyond("its latest version".into())),
        Target::Latest => &chain.segments,
        Target::Version(n) => chain.upto_version(n).ok_or_else(|| beyond(format!("version {n}")))?,
        Target::Time(t) => {
            let i = chain.segments.iter().rposition(|s| s.first_us <= t).unwrap_or(0);
            if chain.broken.is_some() && i + 1 == chain.segments.len() {
                // The version may be in the part past the break.
                let next = g.segments.get(chain.segments.len()).is_some_and(|s| s.first_us <= t);
                if next {
                    return Err(beyond(format!("the newest version committed at or before {t} µs")));
                }
            }
            &chain.segments[..=i]
        }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| Error::Local(format!("create {}: {e}", tmp.escaped())))?;
    let total = segs.iter().map(|s| s.end).max().unwrap_or(0);
    if let Some(h) = g.head {
        // A generation started past bytes its log had freed: the header,
        // then a hole up to the first segment (as on the primary).
        let key = store.loc.key(&format!("{}/{}", g.dir(), h.name()));
        let b = store.get(&key, None)?;
        let salt_ok = pagelog::format::Header::decode(&b).is_ok_and(|x| x.salt == g.salt);
        if b.len() as u64 != h.size || !h.size_ok() || !salt_ok {
            return Err(Error::Refused(format!(
                "object {key} is not the header of log {} (salt {:016x}) and {} bytes below {}: damaged or foreign",
                g.dir(),
                g.salt,
                h.size.saturating_sub(HEAD_SIZE),
                h.from
            )));
        }
        let w = |bytes: &[u8], at: u64| {
            file.write_all_at(bytes, at).map_err(|e| Error::Local(format!("{}: {e}", tmp.escaped())))
        };
        w(&b[..HEAD_SIZE as usize], 0)?;
        // The frames read in place below where the segments start.
        w(&b[HEAD_SIZE as usize..], h.low())?;
    }
    let (downloaded, images) = download(store, g, segs, &file, (0, 0), &mut |at| progress(at, total))?;
    let local = |e: std::io::Error| Error::Local(format!("{}: {e}", tmp.escaped()));
    // Every recycled image of the segments, so that the log opens at their
    // last version; those of versions past the one chosen are undone below.
    let undo = write_recycled(&file, &images).map_err(local)?;
    // Which version, and where its commit ends.
    let (version, end) = {
        let log = Log::open(tmp, OpenOptions { read_only: true, ..Default::default() })
            .map_err(|e| log_problem(store, g, segs, &e))?;
        let latest = log.latest();
        let last = segs.iter().map(|s| s.last).max().unwrap_or(0);
        if latest.number < last {
            return Err(Error::Refused(format!(
                "{} should hold versions up to {last}, but its commits end at version {} (log offset {}): damaged",
                blame(store, g, segs, latest.end),
                latest.number,
                latest.end
            )));
        }
        let v = match target {
            Target::Latest => latest,
            Target::Version(n) => log.version(n).map_err(|e| log_problem(store, g, segs, &e))?,
            Target::Time(t) => {
                let hist = log.history().map_err(|e| log_problem(store, g, segs, &e))?;
                // A generation started past freed bytes restores from its head's first.
                let first = g.head.map_or(0, |h| h.first);
                let Some(c) = hist.iter().rev().find(|c| c.timestamp_us <= t).filter(|c| c.version >= first) else {
                    return Err(Error::Refused(format!("{loc} holds no version committed at or before that time")));
                };
                log.version(c.version).map_err(|e| log_problem(store, g, segs, &e))?
            }
        };
        (v.number, v.end)
    };
    // Newest first, back to the bytes the chosen version's log had there.
    let past = images.iter().position(|r| r.version > version).unwrap_or(images.len());
    unwrite_recycled(&file, &undo[past..]).map_err(local)?;
    file.set_len(end).map_err(local)?;
    file.sync_all().map_err(local)?;
    drop(file);
    let rep = pagelog::verify::verify_file(tmp, progress);
    if let Some(e) = &rep.error {
        return Err(log_problem(store, g, segs, e));
    }
    if let Some(p) = rep.damage() {
        return Err(Error::Refused(format!(
            "{} is damaged at log offset {}: expected {}, found {}",
            blame(store, g, segs, p.offset),
            p.offset,
            p.expected,
            p.found
        )));
    }
    if let Some(t) = &rep.tail {
        return Err(Error::Refused(format!(
            "{} is damaged at log offset {}: expected {}, found {}",
            blame(store, g, segs, t.reason.offset),
            t.reason.offset,
            t.reason.expected,
            t.reason.found
        )));
    }
    if let Some(r) = &rep.recovery_error {
        return Err(Error::Refused(format!("the restored log does not open: {r}")));
    }
    if rep.recovered_version != Some(version) {
        return Err(Error::Refused(format!(
            "the restored log opens at version {:?}, not {version}",
            rep.recovered_version
        )));
    }
    Ok(Restored { version, generation: g.dir(), objects: segs.len() as u64, downloaded, bytes: end })
}

/// What one [`Follower::pass`] did.
#[derive(Debug, Clone, Default)]
pub struct Followed {
    /// The replica's latest version after the pass.
    pub version: u64,
    /// Commit time of that version (µs since the epoch).
    pub timestamp_us: u64,
    /// Segments appended in this pass.
    pub segments: u64,
    pub bytes: u64,
    pub generation: String,
    /// The replica was (re)built from a generation (first pass, or after
    /// the primary was compacted).
    pub rebuilt: bool,
}

/// Keeps a local read-only replica current (see the module documentation).
pub struct Follower {
    store: Store,
    path: PathBuf,
    /// The replica, open for appending, holding the WRITER lock.
    file: Option<File>,
    log: Option<Log>,
    gen: Option<Generation>,
    at: Boundary,
    /// The log end when attached: bytes below it are compared, not written.
    keep: u64,
}

impl Follower {
    pub fn new(store: Store, path: &Path) -> Follower {
        Follower { store, path: path.to_path_buf(), file: None, log: None, gen: None, at: Boundary::START, keep: 0 }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn name(&self) -> String {
        self.path.escaped().to_string()
    }

    /// Opens the replica and takes its WRITER lock; finds where it ends.
    fn attach(&mut self, cat: &Catalog) -> Result<(), Error> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| Error::Local(format!("open {}: {e}", self.name())))?;
        let locked = pagelog::lock::try_lock(file.as_fd(), pagelog::lock::WRITER, pagelog::lock::Mode::Exclusive)
            .map_err(|e| Error::Local(format!("lock {}: {e}", self.name())))?;
        if !locked {
            return Err(Error::Refused(format!(
                "{} is being written by a connection: a replica must only be read (open it with ?mode=ro)",
                self.name()
            )));
        }
        let log = Log::open(&self.path, OpenOptions { read_only: true, ..Default::default() })?;
        let header =
            log.header()?.ok_or_else(|| Error::Refused(format!("{} is an empty log, not a replica", self.name())))?;
        let Some(g) = cat.by_salt(header.salt) else {
            return Err(Error::Refused(format!(
                "{} is not a replica of {} (no generation of its log there)",
                self.name(),
                self.store.loc
            )));
        };
        let latest = log.latest();
        let len = file.metadata().map_err(|e| Error::Local(format!("{}: {e}", self.name())))?.len();
        // The replica ends at a segment's end, or (a follow stopped while
        // appending) inside one: that segment is appended again from its
        // start, its bytes below the log end compared, not rewritten.
        let exact = g.segments.iter().find(|s| s.end == latest.end && s.last == latest.number);
        let seg = exact.or_else(|| g.segments.iter().find(|s| s.start < latest.end && latest.end <= s.end));
        let at = match seg {
            Some(s) if s.end == latest.end && s.last == latest.number => log.boundary_at(latest.commit_offset)?,
            // The first segment of a generation started past freed bytes.
            Some(s) if g.head.is_some_and(|h| h.from == s.start) => {
                log.continues_at(s.start)?.filter(|b| b.end == s.start)
            }
            Some(s) if s.start > 0 => {
                let before = log.version(s.first - 1)?;
                log.boundary_at(before.commit_offset)?.filter(|b| b.end == s.start)
            }
            _ => None,
        };
        let Some(at) = at else {
            return Err(Error::Refused(format!(
                "{} (version {} ending at {}, {len} bytes) does not end where a segment of {} ends: it was \
                 written to, or is not a replica; restore it again",
                self.name(),
                latest.number,
                latest.end,
                g.dir()
            )));
        };
        self.at = at;
        self.keep = latest.end;
        self.gen = Some(g.clone());
        self.log = Some(log);
        self.file = Some(file);
        // A follower stopped between a segment's bytes and its recycled
        // images leaves the replica ending at that segment, its commits
        // claimed durable: write them (again: the newest there are).
        if let Some(s) = exact.filter(|s| s.recycled > 0) {
            let key = seg_key(&self.store, g, s);
            let tail = self.store.get(&key, Some((s.log_bytes(), s.recycled)))?;
            let images = Recycled::decode_all(&tail, s.start).map_err(|e| {
                Error::Refused(format!(
                    "object {key} is damaged after its log bytes (byte {} of it on): {e}",
                    s.log_bytes()
                ))
            })?;
            self.write_recycled_when_safe(s, &images)?;
        }
        Ok(())
    }

    /// Writes the recycled images segment `s` carries (its bytes are in the
    /// replica), once no reader of the replica holds a snapshot at an epoch
    /// below the newest CONTROL record's up to the segment's end — a reader
    /// of an older version could read the dead frame a slot held — under
    /// the PUNCH lock, as the primary's writer released the slots
    /// (FORMAT.md, "Writing format 4"). Gives up after [`READER_WAIT`]; the
    /// next pass writes them again.
    fn write_recycled_when_safe(&self, s: &Segment, images: &[Recycled]) -> Result<(), Error> {
        if images.is_empty() {
            return Ok(());
        }
        let file = self.file.as_ref().expect("attached");
        let local = |e: std::io::Error| Error::Local(format!("{}: {e}", self.name()));
        let before = self.log.as_ref().map_or(0, |l| l.retention_state().epoch);
        let epoch = newest_epoch(file, s.start, s.end).map_err(local)?.max(before);
        // Its own description (OFD locks), writable: PUNCH is taken exclusively.
        let probe = std::fs::OpenOptions::new().read(true).write(true).open(&self.path).map_err(local)?;
        let t0 = std::time::Instant::now();
        loop {
            use pagelog::lock;
            lock::lock_wait(probe.as_fd(), lock::PUNCH, lock::Mode::Exclusive).map_err(local)?;
            let held = lock::held_in(probe.as_fd(), lock::EPOCH_BASE, epoch);
            if held.as_ref().is_ok_and(|h| !h) {
                let r = write_recycled(file, images).and_then(|_| file.sync_data());
                let _ = lock::unlock(probe.as_fd(), lock::PUNCH);
                return r.map_err(local);
            }
            let _ = lock::unlock(probe.as_fd(), lock::PUNCH);
            held.map_err(local)?;
            if t0.elapsed() > READER_WAIT {
                return Err(Error::Local(format!(
                    "{}: a reader holds a snapshot older than epoch {epoch} for more than {} s, which may read the \
                     slots that versions {}..{} recycled; the next pass tries again",
                    self.name(),
                    READER_WAIT.as_secs(),
                    s.first,
                    s.last
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Rebuilds the replica from generation `g` (all its segments), into a
    /// temporary file renamed over the replica.
    fn rebuild(&mut self) -> Result<(), Error> {
        let mut name = std::ffi::OsString::from(".");
        name.push(self.path.file_name().unwrap_or_default());
        name.push(format!(".pagelog-follow.{}", std::process::id()));
        let tmp = self.path.with_file_name(name);
        let _ = std::fs::remove_file(&tmp);
        let r = restore_into(&self.store, Target::Latest, &tmp, &mut |_, _| {});
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::Local(format!("rename into {}: {e}", self.name())))?;
        self.file = None;
        self.log = None;
        Ok(())
    }

    /// Brings the replica up to the bucket's newest segment.
    pub fn pass(&mut self) -> Result<Followed, Error> {
        let mut out = Followed::default();
        let cat = catalog(&self.store)?;
        check_foreign(&self.store, &cat)?;
        let Some(newest) = cat.newest() else {
            return Err(Error::Refused(format!("{} holds no replica yet", self.store.loc)));
        };
        let exists = self.path.exists();
        if !exists || self.gen.as_ref().is_some_and(|g| g.salt != newest.salt) {
            self.rebuild()?;
            out.rebuilt = true;
        } else if self.file.is_none() {
            self.attach(&cat)?;
            if self.gen.as_ref().is_some_and(|g| g.salt != newest.salt) {
                self.rebuild()?;
                out.rebuilt = true;
            }
        }
        // The rebuild restored from a listing of its own, which may hold
        // segments shipped since `cat` was listed: attach to a newer one.
        let cat = if out.rebuilt { catalog(&self.store)? } else { cat };
        if self.file.is_none() {
            self.attach(&cat)?;
        }
        let g = cat.by_salt(self.gen.as_ref().expect("attached").salt).expect("listed").clone();
        let chain = g.chain(|s| seg_key(&self.store, &g, s));
        // Segments that bring bytes past the replica's end; one that starts
        // before it (an overlap: the same bytes shipped twice) is compared
        // below the end, appended above it.
        let new: Vec<Segment> = chain.segments.iter().filter(|s| s.end > self.at.end).copied().collect();
        if new.is_empty() {
            if let Some(b) = &chain.broken {
                return Err(Error::Refused(format!(
                    "{}: {b}; the replica is at version {}, the last before that",
                    self.store.loc, self.at.version
                )));
            }
        }
        for s in &new {
            let file = self.file.as_ref().expect("attached");
            let (_, images) =
                download(&self.store, &g, std::slice::from_ref(s), file, (self.keep, self.at.end), &mut |_| {})?;
            self.write_recycled_when_safe(s, &images)?;
            let file = self.file.as_ref().expect("attached");
            file.sync_data().map_err(|e| Error::Local(format!("sync {}: {e}", self.name())))?;
            let log = self.log.as_ref().expect("attached");
            log.refresh()?;
            let checked = log.checked_commits(&self.at, s.last, u64::MAX)?;
            if let Some(d) = &checked.damage {
                return Err(log_problem(&self.store, &g, std::slice::from_ref(s), d));
            }
            match checked.commits.last() {
                Some(b) if b.version == s.last && b.end == s.end => self.at = *b,
                _ => {
                    return Err(Error::Refused(format!(
                        "object {} does not end with the commit of version {}: damaged",
                        seg_key(&self.store, &g, s),
                        s.last
                    )))
                }
            }
            out.segments += 1;
            out.bytes += s.end - s.start;
        }
        out.version = self.at.version;
        out.timestamp_us = self.at.timestamp_us;
        out.generation = g.dir();
        self.gen = Some(g);
        Ok(out)
    }
}
