//! A log file whose `sync` waits, once armed, until the test releases it:
//! a test looks at the log (or commits more) while a sync runs.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pagelog::storage::LogFile;

/// A log file whose `sync` waits, once armed, until released.
pub struct HeldSync {
    file: File,
    gate: Mutex<Gate>,
    cv: Condvar,
    /// Syncs asked of this file.
    pub syncs: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Gate {
    armed: bool,
    /// A sync is waiting at the gate.
    inside: bool,
    released: bool,
}

impl HeldSync {
    pub fn open(path: &Path) -> Arc<HeldSync> {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        Arc::new(HeldSync { file, gate: Mutex::new(Gate::default()), cv: Condvar::new(), syncs: Default::default() })
    }
    pub fn arm(&self) {
        *self.gate.lock().unwrap() = Gate { armed: true, ..Gate::default() };
    }
    pub fn wait_inside(&self) {
        let g = self.gate.lock().unwrap();
        let (g, t) = self.cv.wait_timeout_while(g, Duration::from_secs(20), |g| !g.inside).unwrap();
        assert!(!t.timed_out() && g.inside, "the commit never reached its sync");
    }
    pub fn release(&self) {
        self.gate.lock().unwrap().released = true;
        self.cv.notify_all();
    }
}

impl LogFile for HeldSync {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, offset)
    }
    fn read_upto(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        LogFile::read_upto(&self.file, buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        LogFile::write_at(&self.file, buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        LogFile::len(&self.file)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        LogFile::set_len(&self.file, len)
    }
    fn sync(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut g = self.gate.lock().unwrap();
        if g.armed {
            g.inside = true;
            self.cv.notify_all();
            g = self.cv.wait_while(g, |g| !g.released).unwrap();
            g.armed = false;
        }
        drop(g);
        LogFile::sync(&self.file)
    }
}
