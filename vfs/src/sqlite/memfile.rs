//! Files that SQLite needs but pagelog never puts on disk under a name:
//! rollback journals, statement journals, temporary databases. They live in
//! memory up to [`MEM_LIMIT`], then in an anonymous temporary file (unlinked
//! at creation, so nothing is left behind even after kill -9).

use std::ffi::{c_int, c_void};
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use libsqlite3_sys as ffi;

use super::set_last_error;
use super::vfs::{guard, Handle};

pub const MEM_LIMIT: usize = 64 << 20;

pub(crate) struct MemFile {
    mem: Vec<u8>,
    disk: Option<(File, u64)>,
}

impl MemFile {
    pub(crate) fn boxed() -> *mut c_void {
        Box::into_raw(Box::new(MemFile { mem: Vec::new(), disk: None })) as *mut c_void
    }

    fn move_to_disk(&mut self) -> std::io::Result<()> {
        let dir = std::env::temp_dir();
        let f =
            std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_TMPFILE).mode(0o600).open(&dir)?;
        f.write_all_at(&self.mem, 0)?;
        self.disk = Some((f, self.mem.len() as u64));
        self.mem = Vec::new();
        Ok(())
    }

    fn read(&self, buf: &mut [u8], off: u64) -> c_int {
        let size = self.size();
        let avail = size.saturating_sub(off).min(buf.len() as u64) as usize;
        match &self.disk {
            None => {
                if avail > 0 {
                    buf[..avail].copy_from_slice(&self.mem[off as usize..off as usize + avail]);
                }
            }
            Some((f, _)) => {
                if avail > 0 && f.read_exact_at(&mut buf[..avail], off).is_err() {
                    return ffi::SQLITE_IOERR_READ;
                }
            }
        }
        if avail < buf.len() {
            buf[avail..].fill(0);
            return ffi::SQLITE_IOERR_SHORT_READ;
        }
        ffi::SQLITE_OK
    }

    fn write(&mut self, buf: &[u8], off: u64) -> c_int {
        let end = off + buf.len() as u64;
        if self.disk.is_none() && end as usize > MEM_LIMIT {
            if let Err(e) = self.move_to_disk() {
                set_last_error(format!("pagelog: temporary file in {}: {e}", std::env::temp_dir().display()));
                return ffi::SQLITE_IOERR_WRITE;
            }
        }
        match &mut self.disk {
            None => {
                let (off, end) = (off as usize, end as usize);
                if off >= self.mem.len() {
                    // Appending (how SQLite writes a journal): no zero-fill
                    // of bytes that are overwritten at once.
                    self.mem.resize(off, 0);
                    self.mem.extend_from_slice(buf);
                } else {
                    if self.mem.len() < end {
                        self.mem.resize(end, 0);
                    }
                    self.mem[off..end].copy_from_slice(buf);
                }
            }
            Some((f, size)) => {
                if let Err(e) = f.write_all_at(buf, off) {
                    set_last_error(format!("pagelog: temporary file: {e}"));
                    return if e.raw_os_error() == Some(libc::ENOSPC) {
                        ffi::SQLITE_FULL
                    } else {
                        ffi::SQLITE_IOERR_WRITE
                    };
                }
                *size = (*size).max(end);
            }
        }
        ffi::SQLITE_OK
    }

    fn truncate(&mut self, len: u64) -> c_int {
        match &mut self.disk {
            None => self.mem.truncate(len as usize),
            Some((f, size)) => {
                if f.set_len(len).is_err() {
                    return ffi::SQLITE_IOERR_TRUNCATE;
                }
                *size = len;
            }
        }
        ffi::SQLITE_OK
    }

    fn size(&self) -> u64 {
        match &self.disk {
            None => self.mem.len() as u64,
            Some((_, s)) => *s,
        }
    }
}

fn mf<'a>(f: *mut ffi::sqlite3_file) -> &'a mut MemFile {
    // SAFETY: inner is the Box<MemFile> from x_open, valid until x_close;
    // SQLite serialises calls on one file.
    unsafe { &mut *((*(f as *mut Handle)).inner as *mut MemFile) }
}

unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
    guard(|| {
        let h = f as *mut Handle;
        // SAFETY: we take back the Box from x_open exactly once.
        unsafe {
            drop(Box::from_raw((*h).inner as *mut MemFile));
            (*h).inner = std::ptr::null_mut();
        }
        ffi::SQLITE_OK
    })
}
unsafe extern "C" fn x_read(f: *mut ffi::sqlite3_file, buf: *mut c_void, amt: c_int, off: ffi::sqlite3_int64) -> c_int {
    // SAFETY: SQLite passes amt writable bytes.
    guard(|| mf(f).read(unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, amt as usize) }, off as u64))
}
unsafe extern "C" fn x_write(
    f: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite passes amt readable bytes.
    guard(|| mf(f).write(unsafe { std::slice::from_raw_parts(buf as *const u8, amt as usize) }, off as u64))
}
unsafe extern "C" fn x_truncate(f: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    guard(|| mf(f).truncate(size as u64))
}
unsafe extern "C" fn x_sync(_f: *mut ffi::sqlite3_file, _flags: c_int) -> c_int {
    ffi::SQLITE_OK
}
unsafe extern "C" fn x_file_size(f: *mut ffi::sqlite3_file, out: *mut ffi::sqlite3_int64) -> c_int {
    guard(|| {
        // SAFETY: out is SQLite's out-pointer.
        unsafe { *out = mf(f).size() as i64 };
        ffi::SQLITE_OK
    })
}
unsafe extern "C" fn x_lock(_f: *mut ffi::sqlite3_file, _l: c_int) -> c_int {
    ffi::SQLITE_OK
}
unsafe extern "C" fn x_check_reserved_lock(_f: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: out is SQLite's out-pointer.
    unsafe { *out = 0 };
    ffi::SQLITE_OK
}
unsafe extern "C" fn x_file_control(_f: *mut ffi::sqlite3_file, _op: c_int, _arg: *mut c_void) -> c_int {
    ffi::SQLITE_NOTFOUND
}
unsafe extern "C" fn x_sector_size(_f: *mut ffi::sqlite3_file) -> c_int {
    4096
}
unsafe extern "C" fn x_device_characteristics(_f: *mut ffi::sqlite3_file) -> c_int {
    0
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_lock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

pub(crate) fn methods() -> *const ffi::sqlite3_io_methods {
    &METHODS
}
