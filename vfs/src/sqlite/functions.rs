//! SQL functions every connection gets, and the lookup they share with the
//! virtual tables: which log backs a schema of a connection.
//!
//! * `pagelog_version()` — the version the main database reads (as an
//!   INTEGER: `PRAGMA pagelog_version` answers text), inside a transaction
//!   the one it started on, outside it the latest;
//! * `pagelog_version('aux')` — the same for an attached database.
//!
//! A schema not opened through pagelog is an error that says so, never a
//! guess. Nothing here panics across the boundary (each callback runs in
//! [`guard`]).

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use libsqlite3_sys as ffi;

use super::vfs::{guard, Handle};
use super::{api, error_code, file};

/// Registers the functions on one connection.
///
/// # Safety
/// `db` must be a valid connection.
pub(crate) unsafe fn init_connection(db: *mut ffi::sqlite3) -> c_int {
    // SAFETY: db is valid (caller); the name is a C string; the function
    // pointer has the scalar-function signature.
    unsafe {
        (api().create_function_v2)(
            db,
            c"pagelog_version".as_ptr(),
            -1,
            ffi::SQLITE_UTF8,
            std::ptr::null_mut(),
            Some(pagelog_version),
            None,
            None,
            None,
        )
    }
}

/// The pagelog database behind `schema` of connection `db`, or a message
/// saying why there is none.
///
/// # Safety
/// `db` must be a valid connection whose mutex this thread holds (inside a
/// callback of one of its statements); the result must not outlive that
/// callback, nor be used while SQLite could close the file.
pub(crate) unsafe fn main_db<'a>(db: *mut ffi::sqlite3, schema: &str) -> Result<&'a file::MainDb, String> {
    let Ok(cs) = CString::new(schema) else {
        return Err(format!("bad schema name {schema:?}"));
    };
    let mut fp: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: db is live (caller); FILE_POINTER writes one sqlite3_file
    // pointer into fp, or fails for a schema that is not attached.
    let rc = unsafe {
        (api().file_control)(db, cs.as_ptr(), ffi::SQLITE_FCNTL_FILE_POINTER, &mut fp as *mut _ as *mut c_void)
    };
    if rc != ffi::SQLITE_OK {
        return Err(format!("no database named {schema:?} on this connection"));
    }
    // SAFETY: a non-null fp is an open sqlite3_file of this connection.
    if fp.is_null() || unsafe { (*fp).pMethods } != file::methods() {
        return Err(format!("database {schema:?} is not opened through the pagelog VFS (open it with vfs=pagelog)"));
    }
    // SAFETY: pMethods is pagelog's main-file table, so inner is a MainDb
    // that lives while the file is open.
    Ok(unsafe { &*((*(fp as *mut Handle)).inner as *const file::MainDb) })
}

/// The text of SQL argument `v`, or None for NULL.
///
/// # Safety
/// `v` must be a valid sqlite3_value of the running call.
pub(crate) unsafe fn text_arg(v: *mut ffi::sqlite3_value) -> Option<String> {
    // SAFETY: value_text returns a NUL-terminated string or null (caller's v).
    let t = unsafe { (api().value_text)(v) };
    // SAFETY: a non-null result is NUL-terminated and valid until v changes.
    (!t.is_null()).then(|| unsafe { CStr::from_ptr(t as *const c_char) }.to_string_lossy().into_owned())
}

/// Reports `msg` as the call's error (SQLite copies it) with code `code`.
///
/// # Safety
/// `ctx` must be the running call's context.
pub(crate) unsafe fn result_error(ctx: *mut ffi::sqlite3_context, msg: &str, code: c_int) {
    // SAFETY: ctx is live (caller); msg's bytes are copied by SQLite (-1 would
    // need a NUL, so the length is given).
    unsafe {
        (api().result_error)(ctx, msg.as_ptr() as *const c_char, msg.len() as c_int);
        if code != ffi::SQLITE_ERROR {
            (api().result_error_code)(ctx, code);
        }
    }
}

unsafe extern "C" fn pagelog_version(ctx: *mut ffi::sqlite3_context, argc: c_int, argv: *mut *mut ffi::sqlite3_value) {
    guard(|| {
        let schema = match argc {
            0 => "main".to_string(),
            // SAFETY: argv holds argc values.
            1 => unsafe { text_arg(*argv) }.unwrap_or_else(|| "main".into()),
            _ => {
                // SAFETY: ctx is this call's context.
                unsafe {
                    result_error(ctx, "pagelog_version() takes at most one argument, a schema name", ffi::SQLITE_ERROR)
                };
                return ffi::SQLITE_OK;
            }
        };
        // SAFETY: ctx is this call's context; its connection is live and
        // locked by this thread for the call.
        let db = unsafe { (api().context_db_handle)(ctx) };
        // SAFETY: as above; the MainDb is used only within this call.
        let r = unsafe { main_db(db, &schema) }
            .map_err(|m| (ffi::SQLITE_ERROR, m))
            .and_then(|m| m.current().map_err(|e| (error_code(&e), e.to_string())).map(|v| v.number as i64));
        // SAFETY: ctx is this call's context.
        unsafe {
            match r {
                Ok(n) => (api().result_int64)(ctx, n),
                Err((code, msg)) => result_error(ctx, &format!("pagelog_version({schema:?}): {msg}"), code),
            }
        }
        ffi::SQLITE_OK
    });
}
