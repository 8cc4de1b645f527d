//! The SQLite glue: VFS callbacks, locks, pragmas and the two ways in —
//! the loadable extension's entry points and [`register`] for Rust apps.
//!
//! SQLite is called only through an [`Api`] table. The extension fills it
//! from the `sqlite3_api_routines` it is handed (so it loads into hosts that
//! link SQLite statically), `register()` from the SQLite linked into the app
//! (rusqlite's bundled copy). Plain FFI was chosen over a binding crate: the
//! commit needs `SQLITE_FCNTL_COMMIT_PHASETWO`, `?version=N` needs the URI
//! parameters, and `xFetch` needs io-methods version 3 — see docs/design.md.

mod difftable;
mod fair;
mod file;
mod functions;
mod logtable;
mod memfile;
mod vfs;

pub use file::mapped_fetches;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Mutex, OnceLock};

use libsqlite3_sys as ffi;

use crate::error::Error;

/// The name the VFS registers under.
pub const VFS_NAME: &str = "pagelog";
const VFS_NAME_C: &CStr = c"pagelog";

/// The oldest SQLite pagelog serves: it needs SQLITE_FCNTL_COMMIT_PHASETWO
/// and SQLITE_FCNTL_PRAGMA as sent by 3.24 and later.
const MIN_SQLITE: c_int = 3_024_000;

type VfsFind = unsafe extern "C" fn(*const c_char) -> *mut ffi::sqlite3_vfs;
type VfsRegister = unsafe extern "C" fn(*mut ffi::sqlite3_vfs, c_int) -> c_int;
type UriParameter = unsafe extern "C" fn(*const c_char, *const c_char) -> *const c_char;
type UriBoolean = unsafe extern "C" fn(*const c_char, *const c_char, c_int) -> c_int;
type Malloc = unsafe extern "C" fn(c_int) -> *mut c_void;
type CreateModule = unsafe extern "C" fn(
    *mut ffi::sqlite3,
    *const c_char,
    *const ffi::sqlite3_module,
    *mut c_void,
    Option<unsafe extern "C" fn(*mut c_void)>,
) -> c_int;
type AutoExtension = unsafe extern "C" fn(*const c_void) -> c_int;
type FileControl = unsafe extern "C" fn(*mut ffi::sqlite3, *const c_char, c_int, *mut c_void) -> c_int;
type DeclareVtab = unsafe extern "C" fn(*mut ffi::sqlite3, *const c_char) -> c_int;
type ResultInt64 = unsafe extern "C" fn(*mut ffi::sqlite3_context, i64);
type ResultNull = unsafe extern "C" fn(*mut ffi::sqlite3_context);
type ValueText = unsafe extern "C" fn(*mut ffi::sqlite3_value) -> *const u8;
type VersionNumber = unsafe extern "C" fn() -> c_int;
type SqliteLog = unsafe extern "C" fn(c_int, *const c_char, ...);
type ScalarFn = unsafe extern "C" fn(*mut ffi::sqlite3_context, c_int, *mut *mut ffi::sqlite3_value);
type CreateFunction = unsafe extern "C" fn(
    *mut ffi::sqlite3,
    *const c_char,
    c_int,
    c_int,
    *mut c_void,
    Option<ScalarFn>,
    Option<ScalarFn>,
    Option<unsafe extern "C" fn(*mut ffi::sqlite3_context)>,
    Option<unsafe extern "C" fn(*mut c_void)>,
) -> c_int;
type ResultText =
    unsafe extern "C" fn(*mut ffi::sqlite3_context, *const c_char, c_int, Option<unsafe extern "C" fn(*mut c_void)>);
type ResultError = unsafe extern "C" fn(*mut ffi::sqlite3_context, *const c_char, c_int);
type ResultErrorCode = unsafe extern "C" fn(*mut ffi::sqlite3_context, c_int);
type ValueType = unsafe extern "C" fn(*mut ffi::sqlite3_value) -> c_int;
type ValueInt64 = unsafe extern "C" fn(*mut ffi::sqlite3_value) -> i64;
type ContextDb = unsafe extern "C" fn(*mut ffi::sqlite3_context) -> *mut ffi::sqlite3;

/// The few SQLite functions pagelog calls.
#[derive(Clone, Copy)]
pub(crate) struct Api {
    pub vfs_find: VfsFind,
    pub vfs_register: VfsRegister,
    pub uri_parameter: UriParameter,
    pub uri_boolean: UriBoolean,
    pub malloc: Malloc,
    pub create_module_v2: CreateModule,
    pub auto_extension: AutoExtension,
    pub file_control: FileControl,
    pub declare_vtab: DeclareVtab,
    pub result_int64: ResultInt64,
    pub result_null: ResultNull,
    pub value_text: ValueText,
    pub log: SqliteLog,
    pub create_function_v2: CreateFunction,
    pub result_text: ResultText,
    pub result_error: ResultError,
    pub result_error_code: ResultErrorCode,
    pub value_type: ValueType,
    pub value_int64: ValueInt64,
    pub context_db_handle: ContextDb,
}

static API: OnceLock<Api> = OnceLock::new();
static REGISTER: Mutex<()> = Mutex::new(());

pub(crate) fn api() -> &'static Api {
    API.get().expect("pagelog VFS used before registration")
}

/// Positions in `struct sqlite3_api_routines` (sqlite3ext.h). The struct only
/// ever grows at its end, so these indices hold for every SQLite 3.x.
mod routines {
    pub const LIBVERSION_NUMBER: usize = 67;
    pub const MALLOC: usize = 68;
    pub const VFS_FIND: usize = 141;
    pub const VFS_REGISTER: usize = 142;
    pub const URI_BOOLEAN: usize = 187;
    pub const URI_PARAMETER: usize = 189;
    pub const CREATE_MODULE_V2: usize = 119;
    pub const AUTO_EXTENSION: usize = 192;
    pub const FILE_CONTROL: usize = 127;
    pub const DECLARE_VTAB: usize = 50;
    pub const RESULT_INT64: usize = 83;
    pub const RESULT_NULL: usize = 84;
    pub const VALUE_TEXT: usize = 109;
    pub const LOG: usize = 167;
    pub const CREATE_FUNCTION_V2: usize = 162;
    pub const RESULT_TEXT: usize = 85;
    pub const RESULT_ERROR: usize = 80;
    pub const RESULT_ERROR_CODE: usize = 146;
    pub const VALUE_TYPE: usize = 113;
    pub const VALUE_INT64: usize = 107;
    pub const CONTEXT_DB_HANDLE: usize = 149;
}

impl Api {
    /// Reads the table SQLite hands an extension.
    ///
    /// # Safety
    /// `p` must point to a live `sqlite3_api_routines` of a SQLite that
    /// `libversion_number` reports as at least [`MIN_SQLITE`] (checked by the
    /// caller before any slot past LIBVERSION_NUMBER is used).
    unsafe fn from_routines(p: *const c_void) -> Result<Api, String> {
        let slots = p as *const *const c_void;
        // SAFETY: the caller guarantees p is an sqlite3_api_routines, an array
        // of function pointers at least LIBVERSION_NUMBER + 1 long in any 3.x.
        let version_fn = unsafe { *slots.add(routines::LIBVERSION_NUMBER) };
        if version_fn.is_null() {
            return Err("the host SQLite has no sqlite3_libversion_number".into());
        }
        // SAFETY: slot LIBVERSION_NUMBER holds sqlite3_libversion_number.
        let version = unsafe { std::mem::transmute::<*const c_void, VersionNumber>(version_fn)() };
        if version < MIN_SQLITE {
            return Err(format!(
                "pagelog needs SQLite {} or later; this host runs {}",
                fmt_version(MIN_SQLITE),
                fmt_version(version)
            ));
        }
        let get = |i: usize| -> Result<*const c_void, String> {
            // SAFETY: i is below the length of the table of SQLite >= 3.24.
            let f = unsafe { *slots.add(i) };
            if f.is_null() {
                Err(format!("the host SQLite's API table has no entry {i}"))
            } else {
                Ok(f)
            }
        };
        // SAFETY: each slot holds the function named by its index, whose C
        // signature matches the Rust type it becomes.
        unsafe {
            Ok(Api {
                vfs_find: std::mem::transmute::<*const c_void, VfsFind>(get(routines::VFS_FIND)?),
                vfs_register: std::mem::transmute::<*const c_void, VfsRegister>(get(routines::VFS_REGISTER)?),
                uri_parameter: std::mem::transmute::<*const c_void, UriParameter>(get(routines::URI_PARAMETER)?),
                uri_boolean: std::mem::transmute::<*const c_void, UriBoolean>(get(routines::URI_BOOLEAN)?),
                malloc: std::mem::transmute::<*const c_void, Malloc>(get(routines::MALLOC)?),
                create_module_v2: std::mem::transmute::<*const c_void, CreateModule>(get(routines::CREATE_MODULE_V2)?),
                auto_extension: std::mem::transmute::<*const c_void, AutoExtension>(get(routines::AUTO_EXTENSION)?),
                file_control: std::mem::transmute::<*const c_void, FileControl>(get(routines::FILE_CONTROL)?),
                declare_vtab: std::mem::transmute::<*const c_void, DeclareVtab>(get(routines::DECLARE_VTAB)?),
                result_int64: std::mem::transmute::<*const c_void, ResultInt64>(get(routines::RESULT_INT64)?),
                result_null: std::mem::transmute::<*const c_void, ResultNull>(get(routines::RESULT_NULL)?),
                value_text: std::mem::transmute::<*const c_void, ValueText>(get(routines::VALUE_TEXT)?),
                log: std::mem::transmute::<*const c_void, SqliteLog>(get(routines::LOG)?),
                create_function_v2: std::mem::transmute::<*const c_void, CreateFunction>(get(
                    routines::CREATE_FUNCTION_V2,
                )?),
                result_text: std::mem::transmute::<*const c_void, ResultText>(get(routines::RESULT_TEXT)?),
                result_error: std::mem::transmute::<*const c_void, ResultError>(get(routines::RESULT_ERROR)?),
                result_error_code: std::mem::transmute::<*const c_void, ResultErrorCode>(get(
                    routines::RESULT_ERROR_CODE,
                )?),
                value_type: std::mem::transmute::<*const c_void, ValueType>(get(routines::VALUE_TYPE)?),
                value_int64: std::mem::transmute::<*const c_void, ValueInt64>(get(routines::VALUE_INT64)?),
                context_db_handle: std::mem::transmute::<*const c_void, ContextDb>(get(routines::CONTEXT_DB_HANDLE)?),
            })
        }
    }

    /// The SQLite linked into this program (rusqlite's bundled copy).
    fn linked() -> Api {
        Api {
            vfs_find: ffi::sqlite3_vfs_find,
            vfs_register: ffi::sqlite3_vfs_register,
            uri_parameter: ffi::sqlite3_uri_parameter,
            uri_boolean: ffi::sqlite3_uri_boolean,
            malloc: ffi::sqlite3_malloc,
            create_module_v2: ffi::sqlite3_create_module_v2,
            auto_extension: linked_auto_extension,
            file_control: ffi::sqlite3_file_control,
            declare_vtab: ffi::sqlite3_declare_vtab,
            result_int64: ffi::sqlite3_result_int64,
            result_null: ffi::sqlite3_result_null,
            value_text: ffi::sqlite3_value_text,
            log: ffi::sqlite3_log,
            create_function_v2: ffi::sqlite3_create_function_v2,
            result_text: ffi::sqlite3_result_text,
            result_error: ffi::sqlite3_result_error,
            result_error_code: ffi::sqlite3_result_error_code,
            value_type: ffi::sqlite3_value_type,
            value_int64: ffi::sqlite3_value_int64,
            context_db_handle: ffi::sqlite3_context_db_handle,
        }
    }

    /// A copy of `s` in memory from sqlite3_malloc, for SQLite to free.
    pub(crate) fn c_string(&self, s: &str) -> *mut c_char {
        let bytes = s.as_bytes();
        // SAFETY: malloc returns either null or a block of the requested size.
        let p = unsafe { (self.malloc)(bytes.len() as c_int + 1) } as *mut u8;
        if !p.is_null() {
            // SAFETY: p has room for len + 1 bytes and does not overlap s.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
                *p.add(bytes.len()) = 0;
            }
        }
        p as *mut c_char
    }
}

/// `sqlite3_auto_extension` of the linked SQLite, with the untyped entry
/// point the API table uses.
unsafe extern "C" fn linked_auto_extension(f: *const c_void) -> c_int {
    type Entry = unsafe extern "C" fn(*mut ffi::sqlite3, *mut *mut c_char, *const ffi::sqlite3_api_routines) -> c_int;
    // SAFETY: f is always init_connection, which has type Entry.
    unsafe { ffi::sqlite3_auto_extension(Some(std::mem::transmute::<*const c_void, Entry>(f))) }
}

fn fmt_version(v: c_int) -> String {
    format!("{}.{}.{}", v / 1_000_000, v / 1000 % 1000, v % 1000)
}

fn install(api: Api, make_default: bool) -> Result<(), String> {
    let _g = REGISTER.lock().unwrap_or_else(|p| p.into_inner());
    let api = *API.get_or_init(|| api);
    // SAFETY: VFS_NAME_C is a valid C string; vfs_find only reads it.
    let existing = unsafe { (api.vfs_find)(VFS_NAME_C.as_ptr()) };
    if !existing.is_null() {
        if make_default {
            // SAFETY: re-registering a registered VFS only moves it to the head.
            let rc = unsafe { (api.vfs_register)(existing, 1) };
            if rc != ffi::SQLITE_OK {
                return Err(format!("sqlite3_vfs_register failed with code {rc}"));
            }
        }
        return Ok(());
    }
    // Every later connection gets the pagelog_log table and the SQL
    // functions (a no-op when the same entry point is already registered).
    // SAFETY: init_connection has the signature of an extension entry point.
    let rc = unsafe { (api.auto_extension)(init_connection as *const c_void) };
    if rc != ffi::SQLITE_OK {
        return Err(format!("sqlite3_auto_extension failed with code {rc}"));
    }
    let vfs = vfs::new_vfs(&api)?;
    // SAFETY: vfs is a leaked, fully initialised sqlite3_vfs that lives for
    // the rest of the process, as SQLite requires.
    let rc = unsafe { (api.vfs_register)(vfs, make_default as c_int) };
    if rc != ffi::SQLITE_OK {
        return Err(format!("sqlite3_vfs_register failed with code {rc}"));
    }
    Ok(())
}

/// What every connection gets (the auto-extension's body): the tables
/// `pagelog_log` and `pagelog_diff`, the function `pagelog_version()`.
///
/// # Safety
/// `db` must be a valid connection.
unsafe extern "C" fn init_connection(
    db: *mut ffi::sqlite3,
    err: *mut *mut c_char,
    p_api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: db is valid (caller); each registers on it and returns a code.
    unsafe {
        let mut rc = logtable::init_connection(db, err, p_api);
        if rc == ffi::SQLITE_OK {
            rc = difftable::init_connection(db);
        }
        if rc == ffi::SQLITE_OK {
            rc = functions::init_connection(db);
        }
        rc
    }
}

/// Registers the VFS named `"pagelog"` with the SQLite linked into this
/// program, without making it the default. Idempotent.
pub fn register() -> Result<(), Error> {
    install(Api::linked(), false).map_err(Error::Unsupported)
}

/// Registers the VFS and makes it the process's default, for hosts that
/// cannot put `vfs=pagelog` in a filename.
pub fn register_default() -> Result<(), Error> {
    install(Api::linked(), true).map_err(Error::Unsupported)
}

/// Shared body of the two entry points; never panics across the boundary.
///
/// # Safety
/// Called by SQLite with valid `pz_err_msg` (or null) and `p_api`.
unsafe fn entry(
    db: *mut ffi::sqlite3,
    pz_err_msg: *mut *mut c_char,
    p_api: *const c_void,
    make_default: bool,
) -> c_int {
    let result = std::panic::catch_unwind(|| {
        if p_api.is_null() {
            return Err("pagelog: no sqlite3_api_routines was passed".to_string());
        }
        // SAFETY: SQLite passes its own api routines table.
        let api = unsafe { Api::from_routines(p_api) }?;
        install(api, make_default)?;
        if !db.is_null() {
            // SAFETY: db is the connection loading the extension.
            let rc = unsafe { init_connection(db, std::ptr::null_mut(), std::ptr::null()) };
            if rc != ffi::SQLITE_OK {
                return Err(format!("pagelog: could not register pagelog's tables and functions (code {rc})"));
            }
        }
        Ok(())
    });
    let msg = match result {
        Ok(Ok(())) => return ffi::SQLITE_OK_LOAD_PERMANENTLY,
        Ok(Err(msg)) => msg,
        Err(_) => "pagelog: internal error while loading".to_string(),
    };
    if !pz_err_msg.is_null() && !p_api.is_null() {
        // SAFETY: every SQLite 3.x has sqlite3_malloc at this slot of its
        // API table; SQLite frees *pz_err_msg with sqlite3_free.
        unsafe {
            let malloc = *(p_api as *const *const c_void).add(routines::MALLOC);
            if !malloc.is_null() {
                let malloc = std::mem::transmute::<*const c_void, Malloc>(malloc);
                let p = malloc(msg.len() as c_int + 1) as *mut u8;
                if !p.is_null() {
                    std::ptr::copy_nonoverlapping(msg.as_ptr(), p, msg.len());
                    *p.add(msg.len()) = 0;
                    *pz_err_msg = p as *mut c_char;
                }
            }
        }
    }
    ffi::SQLITE_ERROR
}

/// Entry point SQLite derives from the file name `libpagelog.so`:
/// registers the VFS `"pagelog"` (not as the default).
///
/// # Safety
/// Called by SQLite's extension loader.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_pagelog_init(
    db: *mut ffi::sqlite3,
    pz_err_msg: *mut *mut c_char,
    p_api: *const c_void,
) -> c_int {
    // SAFETY: forwarded from SQLite.
    unsafe { entry(db, pz_err_msg, p_api, false) }
}

/// Second entry point: registers the VFS and makes it the default
/// (`.load libpagelog sqlite3_pagelog_default_init`).
///
/// # Safety
/// Called by SQLite's extension loader.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_pagelog_default_init(
    db: *mut ffi::sqlite3,
    pz_err_msg: *mut *mut c_char,
    p_api: *const c_void,
) -> c_int {
    // SAFETY: forwarded from SQLite.
    unsafe { entry(db, pz_err_msg, p_api, true) }
}

/// Maps a log error to a SQLite result code (the one place this is decided).
pub(crate) fn error_code(e: &Error) -> c_int {
    match e {
        _ if e.is_disk_full() => ffi::SQLITE_FULL,
        Error::Io { op, .. } => match *op {
            "read" | "read spilled page" => ffi::SQLITE_IOERR_READ,
            "write commit" | "write spill" | "write header" => ffi::SQLITE_IOERR_WRITE,
            "sync" => ffi::SQLITE_IOERR_FSYNC,
            "truncate" => ffi::SQLITE_IOERR_TRUNCATE,
            "stat" => ffi::SQLITE_IOERR_FSTAT,
            "mmap" => ffi::SQLITE_IOERR_MMAP,
            "open" => ffi::SQLITE_CANTOPEN,
            _ => ffi::SQLITE_IOERR,
        },
        Error::NotALog { .. } => ffi::SQLITE_NOTADB,
        Error::Corrupt { .. } => ffi::SQLITE_CORRUPT,
        Error::Busy { .. } => ffi::SQLITE_BUSY_SNAPSHOT,
        Error::ReadOnly { .. } => ffi::SQLITE_READONLY,
        Error::NoSuchVersion { .. } | Error::Reclaimed { .. } => ffi::SQLITE_CANTOPEN,
        Error::Unsupported(_) => ffi::SQLITE_ERROR,
        Error::Unreadable { source, .. } => error_code(source),
    }
}

thread_local! {
    static LAST_ERROR: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The message of the last error the VFS reported on this thread. SQLite
/// reports only a result code for many VFS failures (opening a file that is
/// not a log gives "file is not a database"); this says which file, where,
/// and what was expected.
pub fn last_error() -> Option<String> {
    LAST_ERROR.with(|l| l.borrow().clone())
}

pub(crate) fn set_last_error(msg: String) {
    record(ffi::SQLITE_ERROR, msg);
}

/// Records `e` as the last error and returns its SQLite code.
pub(crate) fn report(e: &Error) -> c_int {
    let code = error_code(e);
    record(code, e.to_string());
    code
}

/// Keeps `msg` for [`last_error`] and hands it to SQLite's error log
/// (`sqlite3_log`), which an app sees through `SQLITE_CONFIG_LOG`
/// (`rusqlite::trace::config_log`): SQLite itself answers some failures with
/// a bare "unable to open database file", and this is where the reason
/// (say, "version 999 does not exist") can be read.
fn record(code: c_int, msg: String) {
    let text = msg.strip_prefix("pagelog: ").unwrap_or(&msg).replace('\0', " ");
    if let (Some(api), Ok(c)) = (API.get(), std::ffi::CString::new(text)) {
        // SAFETY: a "%s" format with one C string argument, both valid for the call.
        unsafe { (api.log)(code, c"pagelog: %s".as_ptr(), c.as_ptr()) };
    }
    LAST_ERROR.with(|l| *l.borrow_mut() = Some(msg));
}
