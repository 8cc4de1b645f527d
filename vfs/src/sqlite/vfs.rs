//! The `sqlite3_vfs` object: opening files, and the few VFS methods pagelog
//! answers itself. Everything about time, randomness, paths and dynamic
//! loading is delegated to the VFS that was the default when pagelog
//! registered (normally "unix").

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use libsqlite3_sys as ffi;

use super::{api, file, memfile, set_last_error, Api, VFS_NAME_C};
use crate::name::EscapedName;

struct Ctx {
    parent: *mut ffi::sqlite3_vfs,
}

/// What every pagelog `sqlite3_file` looks like: SQLite's base struct, then a
/// pointer to the Rust object behind it (a `file::MainDb` or a
/// `memfile::MemFile`, told apart by `base.pMethods`).
#[repr(C)]
pub(crate) struct Handle {
    pub base: ffi::sqlite3_file,
    pub inner: *mut c_void,
}

/// Runs a callback body, turning a panic into an error code.
pub(crate) fn guard(f: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(rc) => rc,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            set_last_error(format!("pagelog: internal error (panic: {what})"));
            ffi::SQLITE_IOERR
        }
    }
}

fn parent(vfs: *mut ffi::sqlite3_vfs) -> &'static ffi::sqlite3_vfs {
    // SAFETY: pAppData was set to a leaked Ctx in new_vfs, and the parent VFS
    // object lives as long as the process (SQLite never frees a VFS).
    unsafe { &*(*((*vfs).pAppData as *const Ctx)).parent }
}

pub(crate) fn new_vfs(api: &Api) -> Result<*mut ffi::sqlite3_vfs, String> {
    // SAFETY: vfs_find accepts a C string or null.
    let mut parent = unsafe { (api.vfs_find)(c"unix".as_ptr()) };
    if parent.is_null() {
        // SAFETY: as above.
        parent = unsafe { (api.vfs_find)(std::ptr::null()) };
    }
    if parent.is_null() {
        return Err("pagelog: the host SQLite has no default VFS to delegate to".into());
    }
    // SAFETY: parent is a registered VFS, valid for the process lifetime.
    let p = unsafe { &*parent };
    let ctx = Box::leak(Box::new(Ctx { parent }));
    let vfs = Box::new(ffi::sqlite3_vfs {
        iVersion: 2,
        szOsFile: std::mem::size_of::<Handle>() as c_int,
        mxPathname: p.mxPathname.max(512),
        pNext: std::ptr::null_mut(),
        zName: VFS_NAME_C.as_ptr(),
        pAppData: ctx as *mut Ctx as *mut c_void,
        xOpen: Some(x_open),
        xDelete: Some(x_delete),
        xAccess: Some(x_access),
        xFullPathname: Some(x_full_pathname),
        xDlOpen: Some(x_dl_open),
        xDlError: Some(x_dl_error),
        xDlSym: Some(x_dl_sym),
        xDlClose: Some(x_dl_close),
        xRandomness: Some(x_randomness),
        xSleep: Some(x_sleep),
        xCurrentTime: Some(x_current_time),
        xGetLastError: Some(x_get_last_error),
        xCurrentTimeInt64: Some(x_current_time_int64),
        xSetSystemCall: None,
        xGetSystemCall: None,
        xNextSystemCall: None,
    });
    Ok(Box::leak(vfs))
}

/// Journals, WAL and shm names: pagelog never puts these on disk.
fn is_side_file(name: &[u8]) -> bool {
    name.ends_with(b"-journal") || name.ends_with(b"-wal") || name.ends_with(b"-shm")
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    z_name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let h = file as *mut Handle;
    // SAFETY: SQLite hands us szOsFile bytes at `file`, i.e. one Handle.
    unsafe {
        (*h).base.pMethods = std::ptr::null();
        (*h).inner = std::ptr::null_mut();
    }
    guard(|| {
        let (methods, inner, flags_out) = if flags & ffi::SQLITE_OPEN_MAIN_DB != 0 {
            if z_name.is_null() {
                // A temporary database that SQLite names nothing: memory.
                (memfile::methods(), memfile::MemFile::boxed(), flags)
            } else {
                // SAFETY: z_name is a NUL-terminated file name (with URI
                // parameters after it, which sqlite3_uri_parameter reads),
                // valid until x_close. Its bytes are the name: never decoded.
                let name = crate::name::path_from_bytes(unsafe { CStr::from_ptr(z_name) }.to_bytes());
                // SAFETY: as above; uri_parameter only reads the name buffer.
                let version = unsafe { (api().uri_parameter)(z_name, c"version".as_ptr()) };
                let version = if version.is_null() {
                    None
                } else {
                    // SAFETY: a non-null result is a NUL-terminated string
                    // inside the name buffer, valid as long as z_name.
                    Some(unsafe { CStr::from_ptr(version) }.to_bytes())
                };
                // SAFETY: as above; SQLite parses the value as it does its
                // own unix VFS's `psow` (1/0, yes/no, on/off, true/false).
                let psow = unsafe { (api().uri_boolean)(z_name, c"psow".as_ptr(), 1) };
                if psow == 0 {
                    set_last_error(format!(
                        "pagelog: {}: psow=0 is not supported: pagelog requires a disk with powersafe \
                         overwrite (a torn write never damages other sectors; see FORMAT.md, Durability)",
                        name.escaped()
                    ));
                    return ffi::SQLITE_CANTOPEN;
                }
                // SAFETY: as for psow.
                let nolock = unsafe { (api().uri_boolean)(z_name, c"nolock".as_ptr(), 0) };
                if nolock != 0 {
                    set_last_error(format!(
                        "pagelog: {}: nolock=1 is not supported: pagelog takes each transaction's snapshot \
                         and the writer's lock in xLock, which SQLite skips under nolock=1, so writes could \
                         not be committed. It is not needed either: pagelog's readers never block its writer \
                         (remove nolock=1)",
                        name.escaped()
                    ));
                    return ffi::SQLITE_CANTOPEN;
                }
                match file::MainDb::open(name, flags, version) {
                    Ok((db, ro)) => {
                        let f = if ro {
                            (flags & !(ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE))
                                | ffi::SQLITE_OPEN_READONLY
                        } else {
                            flags
                        };
                        (file::methods(), Box::into_raw(Box::new(db)) as *mut c_void, f)
                    }
                    Err(rc) => return rc,
                }
            }
        } else if flags & ffi::SQLITE_OPEN_WAL != 0 {
            // SQLite never asks: without xShmMap it keeps the journal mode
            // in force when told journal_mode=WAL (file.rs, `pragma`).
            set_last_error("pagelog: a WAL file was asked for, but pagelog is itself a log and keeps none".into());
            return ffi::SQLITE_CANTOPEN;
        } else {
            // Rollback and statement journals, temp databases, super-journals:
            // never on disk as files of their own.
            (memfile::methods(), memfile::MemFile::boxed(), flags)
        };
        // SAFETY: h points to our Handle (above); out_flags may be null.
        unsafe {
            (*h).inner = inner;
            (*h).base.pMethods = methods;
            if !out_flags.is_null() {
                *out_flags = flags_out;
            }
        }
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_delete(_vfs: *mut ffi::sqlite3_vfs, _z_name: *const c_char, _sync_dir: c_int) -> c_int {
    // SQLite deletes only journals and super-journals, which pagelog keeps
    // in memory: there is nothing on disk to delete.
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_access(
    _vfs: *mut ffi::sqlite3_vfs,
    z_name: *const c_char,
    flags: c_int,
    res: *mut c_int,
) -> c_int {
    guard(|| {
        // SAFETY: SQLite passes a NUL-terminated name.
        let name = unsafe { CStr::from_ptr(z_name) }.to_bytes();
        let answer = if is_side_file(name) {
            false
        } else {
            let mode = match flags {
                ffi::SQLITE_ACCESS_READWRITE => libc::R_OK | libc::W_OK,
                ffi::SQLITE_ACCESS_READ => libc::R_OK,
                _ => libc::F_OK,
            };
            // SAFETY: z_name is a valid C string for the duration of the call.
            unsafe { libc::access(z_name, mode) == 0 }
        };
        // SAFETY: res is SQLite's out-pointer.
        unsafe { *res = answer as c_int };
        ffi::SQLITE_OK
    })
}

// ---- delegated to the parent VFS ------------------------------------------------

macro_rules! delegate {
    ($vfs:expr, $method:ident $(, $arg:expr)*) => {{
        let p = parent($vfs);
        let f = p.$method.expect(concat!("the parent VFS has ", stringify!($method)));
        // SAFETY: the parent's method gets the arguments SQLite gave us, except
        // the vfs pointer, which becomes the parent's own.
        unsafe { f(p as *const _ as *mut _ $(, $arg)*) }
    }};
}

unsafe extern "C" fn x_full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    z: *const c_char,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    delegate!(vfs, xFullPathname, z, n, out)
}
unsafe extern "C" fn x_dl_open(vfs: *mut ffi::sqlite3_vfs, z: *const c_char) -> *mut c_void {
    delegate!(vfs, xDlOpen, z)
}
unsafe extern "C" fn x_dl_error(vfs: *mut ffi::sqlite3_vfs, n: c_int, z: *mut c_char) {
    delegate!(vfs, xDlError, n, z)
}
type DlSym = unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char);
unsafe extern "C" fn x_dl_sym(vfs: *mut ffi::sqlite3_vfs, h: *mut c_void, z: *const c_char) -> Option<DlSym> {
    delegate!(vfs, xDlSym, h, z)
}
unsafe extern "C" fn x_dl_close(vfs: *mut ffi::sqlite3_vfs, h: *mut c_void) {
    delegate!(vfs, xDlClose, h)
}
unsafe extern "C" fn x_randomness(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    delegate!(vfs, xRandomness, n, out)
}
unsafe extern "C" fn x_sleep(vfs: *mut ffi::sqlite3_vfs, us: c_int) -> c_int {
    // The busy handler's sleep after a BUSY on the WRITER lock is a fair
    // wait for it (fair.rs); any other sleep is the parent VFS's.
    if let Some(slept) = catch_unwind(|| super::fair::sleep(us)).ok().flatten() {
        return slept;
    }
    delegate!(vfs, xSleep, us)
}
unsafe extern "C" fn x_current_time(vfs: *mut ffi::sqlite3_vfs, t: *mut f64) -> c_int {
    delegate!(vfs, xCurrentTime, t)
}
unsafe extern "C" fn x_current_time_int64(vfs: *mut ffi::sqlite3_vfs, t: *mut ffi::sqlite3_int64) -> c_int {
    if parent(vfs).iVersion >= 2 && parent(vfs).xCurrentTimeInt64.is_some() {
        return delegate!(vfs, xCurrentTimeInt64, t);
    }
    let mut d = 0f64;
    let rc = delegate!(vfs, xCurrentTime, &mut d);
    // SAFETY: t is SQLite's out-pointer.
    unsafe { *t = (d * 86_400_000.0) as i64 };
    rc
}

/// Copies this thread's last pagelog error message into SQLite's buffer.
unsafe extern "C" fn x_get_last_error(_vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    if let Some(msg) = super::last_error() {
        if n > 0 && !out.is_null() {
            let b = msg.as_bytes();
            let k = b.len().min(n as usize - 1);
            // SAFETY: out has room for n bytes; we write k + 1 <= n.
            unsafe {
                std::ptr::copy_nonoverlapping(b.as_ptr(), out as *mut u8, k);
                *out.add(k) = 0;
            }
        }
    }
    0
}
