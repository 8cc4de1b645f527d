//! `pagelog_log`: an eponymous virtual table that lists a database's
//! versions from SQL.
//!
//! ```sql
//! SELECT version, datetime(timestamp_us / 1000000, 'unixepoch'), pages_written, db_pages
//!   FROM pagelog_log ORDER BY version DESC;
//! SELECT * FROM pagelog_log('aux');   -- an attached database
//! ```
//!
//! Every connection gets it: the extension's entry point registers it on the
//! loading connection and as an auto-extension for later ones, and
//! `pagelog::register()` registers the auto-extension. The table reads the
//! log of the named schema (default `main`), which must be opened through
//! pagelog.

use std::ffi::{c_char, c_int, c_void, CStr};

use libsqlite3_sys as ffi;

use super::vfs::{guard, Handle};
use super::{api, file};
use crate::history::CommitSummary;
use crate::name::EscapedName;

const SCHEMA: &CStr = c"CREATE TABLE x(version INTEGER, timestamp_us INTEGER, pages_written INTEGER, \
     db_pages INTEGER, page_size INTEGER, bytes INTEGER, full_map INTEGER, schema HIDDEN)";
const COL_SCHEMA: c_int = 7;

#[repr(C)]
struct VTab {
    base: ffi::sqlite3_vtab,
    db: *mut ffi::sqlite3,
}

#[repr(C)]
struct Cursor {
    base: ffi::sqlite3_vtab_cursor,
    rows: Vec<CommitSummary>,
    at: usize,
}

/// Registers the module on one connection (also the auto-extension body).
///
/// # Safety
/// `db` must be a valid connection.
pub(crate) unsafe extern "C" fn init_connection(
    db: *mut ffi::sqlite3,
    _err: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: db is valid (caller); MODULE lives for the whole process.
    unsafe { (api().create_module_v2)(db, c"pagelog_log".as_ptr(), &MODULE, std::ptr::null_mut(), None) }
}

fn set_error(vtab: *mut ffi::sqlite3_vtab, msg: &str) {
    // SAFETY: vtab is ours; zErrMsg takes a sqlite3_malloc'd string.
    unsafe { (*vtab).zErrMsg = api().c_string(msg) };
}

unsafe extern "C" fn x_connect(
    db: *mut ffi::sqlite3,
    _aux: *mut c_void,
    _argc: c_int,
    _argv: *const *const c_char,
    pp: *mut *mut ffi::sqlite3_vtab,
    _err: *mut *mut c_char,
) -> c_int {
    guard(|| {
        // SAFETY: db is the connection SQLite is connecting the table for.
        let rc = unsafe { (api().declare_vtab)(db, SCHEMA.as_ptr()) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        // SAFETY: an all-zero sqlite3_vtab is its documented initial state.
        let base: ffi::sqlite3_vtab = unsafe { std::mem::zeroed() };
        let v = Box::new(VTab { base, db });
        // SAFETY: pp is SQLite's out-pointer; VTab starts with sqlite3_vtab.
        unsafe { *pp = Box::into_raw(v) as *mut ffi::sqlite3_vtab };
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_disconnect(v: *mut ffi::sqlite3_vtab) -> c_int {
    // SAFETY: v is the Box<VTab> from x_connect, released once.
    drop(unsafe { Box::from_raw(v as *mut VTab) });
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_best_index(_v: *mut ffi::sqlite3_vtab, info: *mut ffi::sqlite3_index_info) -> c_int {
    guard(|| {
        // SAFETY: info and its arrays are valid for nConstraint entries.
        unsafe {
            let info = &mut *info;
            info.idxNum = 0;
            for i in 0..info.nConstraint as usize {
                let c = &*info.aConstraint.add(i);
                if c.iColumn == COL_SCHEMA && c.op as c_int == ffi::SQLITE_INDEX_CONSTRAINT_EQ {
                    if c.usable == 0 {
                        return ffi::SQLITE_CONSTRAINT;
                    }
                    let u = &mut *info.aConstraintUsage.add(i);
                    u.argvIndex = 1;
                    u.omit = 1;
                    info.idxNum = 1;
                }
            }
            info.estimatedCost = 1000.0;
        }
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_open(_v: *mut ffi::sqlite3_vtab, pp: *mut *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: an all-zero cursor base is its documented initial state.
    let base: ffi::sqlite3_vtab_cursor = unsafe { std::mem::zeroed() };
    let c = Box::new(Cursor { base, rows: Vec::new(), at: 0 });
    // SAFETY: pp is SQLite's out-pointer; Cursor starts with the base struct.
    unsafe { *pp = Box::into_raw(c) as *mut ffi::sqlite3_vtab_cursor };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_close(c: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: c is the Box<Cursor> from x_open, released once.
    drop(unsafe { Box::from_raw(c as *mut Cursor) });
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_filter(
    cur: *mut ffi::sqlite3_vtab_cursor,
    idx_num: c_int,
    _idx_str: *const c_char,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) -> c_int {
    guard(|| {
        // SAFETY: cur is our Cursor and its pVtab our VTab.
        let (c, vtab) = unsafe {
            let c = &mut *(cur as *mut Cursor);
            let v = c.base.pVtab;
            (c, v)
        };
        // The schema name's bytes, as SQLite compares them: not decoded.
        let schema: &CStr = if idx_num == 1 && argc >= 1 {
            // SAFETY: argv has argc values; value_text returns a C string or null.
            let t = unsafe { (api().value_text)(*argv) };
            if t.is_null() {
                c"main"
            } else {
                // SAFETY: non-null value_text results are NUL-terminated and
                // valid until the value changes, after this call.
                unsafe { CStr::from_ptr(t as *const c_char) }
            }
        } else {
            c"main"
        };
        let mut fp: *mut ffi::sqlite3_file = std::ptr::null_mut();
        // SAFETY: the VTab's db is the live connection; FILE_POINTER writes
        // one sqlite3_file pointer into fp.
        let rc = unsafe {
            (api().file_control)(
                (*(vtab as *mut VTab)).db,
                schema.as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                &mut fp as *mut _ as *mut c_void,
            )
        };
        // SAFETY: a non-null fp is an open sqlite3_file of this connection.
        if rc != ffi::SQLITE_OK || fp.is_null() || unsafe { (*fp).pMethods } != file::methods() {
            set_error(
                vtab,
                &format!(
                    "pagelog_log: database {:?} is not opened through the pagelog VFS",
                    schema.to_bytes().escaped()
                ),
            );
            return ffi::SQLITE_ERROR;
        }
        // SAFETY: pMethods is pagelog's main-file table, so inner is a MainDb.
        let db = unsafe { &*((*(fp as *mut Handle)).inner as *const file::MainDb) };
        match db.log().history() {
            Ok(rows) => {
                c.rows = rows;
                c.at = 0;
                ffi::SQLITE_OK
            }
            Err(e) => {
                set_error(vtab, &format!("pagelog_log: {e}"));
                super::error_code(&e)
            }
        }
    })
}

unsafe extern "C" fn x_next(cur: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: cur is our Cursor.
    unsafe { (*(cur as *mut Cursor)).at += 1 };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_eof(cur: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: cur is our Cursor.
    let c = unsafe { &*(cur as *const Cursor) };
    (c.at >= c.rows.len()) as c_int
}

unsafe extern "C" fn x_column(cur: *mut ffi::sqlite3_vtab_cursor, ctx: *mut ffi::sqlite3_context, col: c_int) -> c_int {
    // SAFETY: cur is our Cursor, positioned on a row (SQLite checks xEof).
    let c = unsafe { &*(cur as *const Cursor) };
    let r = &c.rows[c.at];
    let v: Option<i64> = match col {
        0 => Some(r.version as i64),
        1 => Some(r.timestamp_us as i64),
        2 => Some(r.pages_written as i64),
        3 => Some(r.db_pages as i64),
        4 => Some(r.page_size as i64),
        5 => Some(r.bytes as i64),
        6 => Some(r.full_map as i64),
        _ => None,
    };
    // SAFETY: ctx is SQLite's result context for this call.
    unsafe {
        match v {
            Some(v) => (api().result_int64)(ctx, v),
            None => (api().result_null)(ctx),
        }
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_rowid(cur: *mut ffi::sqlite3_vtab_cursor, out: *mut ffi::sqlite3_int64) -> c_int {
    // SAFETY: cur is our Cursor; out is SQLite's out-pointer.
    unsafe {
        let c = &*(cur as *const Cursor);
        *out = c.rows.get(c.at).map(|r| r.version as i64).unwrap_or(0);
    }
    ffi::SQLITE_OK
}

static MODULE: ffi::sqlite3_module = ffi::sqlite3_module {
    iVersion: 1,
    xCreate: None, // eponymous-only
    xConnect: Some(x_connect),
    xBestIndex: Some(x_best_index),
    xDisconnect: Some(x_disconnect),
    xDestroy: Some(x_disconnect),
    xOpen: Some(x_open),
    xClose: Some(x_close),
    xFilter: Some(x_filter),
    xNext: Some(x_next),
    xEof: Some(x_eof),
    xColumn: Some(x_column),
    xRowid: Some(x_rowid),
    xUpdate: None,
    xBegin: None,
    xSync: None,
    xCommit: None,
    xRollback: None,
    xFindFunction: None,
    xRename: None,
    xSavepoint: None,
    xRelease: None,
    xRollbackTo: None,
    xShadowName: None,
    xIntegrity: None,
};
