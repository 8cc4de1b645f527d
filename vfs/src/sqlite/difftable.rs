//! `pagelog_diff`: an eponymous virtual table with the changes between two
//! versions, from SQL.
//!
//! ```sql
//! SELECT * FROM pagelog_diff(41, 42);          -- main database; 42 may be omitted (41 + 1)
//! SELECT * FROM pagelog_diff(41, 42, 'aux');   -- an attached database
//! ```
//!
//! One row per change: `"table"`, `kind` (`insert`, `delete`, `update`, or
//! for a schema object `create`, `drop`, `alter`), `key` (JSON: `{"rowid":
//! N}` or the PRIMARY KEY columns; `{"type": ...}` for a schema object),
//! `old` and `new` (JSON objects of column values: a whole row for inserts
//! and deletes, the changed columns for updates; the SQL text for schema
//! objects). The comparison is [`crate::diff::diff`], the same as `pagelog
//! diff`. Hidden columns `a`, `b`, `schema` take the arguments.

use std::ffi::{c_char, c_int, c_void, CStr};

use libsqlite3_sys as ffi;

use super::api;
use super::functions::{main_db, text_arg};
use super::vfs::guard;
use crate::diff::{self, json, RowChange};

const SCHEMA: &CStr =
    c"CREATE TABLE x(\"table\" TEXT, kind TEXT, key TEXT, old TEXT, new TEXT, a HIDDEN, b HIDDEN, schema HIDDEN)";
const COL_A: c_int = 5;
const NCOLS: usize = 5;

#[repr(C)]
struct VTab {
    base: ffi::sqlite3_vtab,
    db: *mut ffi::sqlite3,
}

#[repr(C)]
struct Cursor {
    base: ffi::sqlite3_vtab_cursor,
    rows: Vec<[Option<String>; NCOLS]>,
    at: usize,
}

/// Registers the module on one connection.
///
/// # Safety
/// `db` must be a valid connection.
pub(crate) unsafe fn init_connection(db: *mut ffi::sqlite3) -> c_int {
    // SAFETY: db is valid (caller); MODULE lives for the whole process.
    unsafe { (api().create_module_v2)(db, c"pagelog_diff".as_ptr(), &MODULE, std::ptr::null_mut(), None) }
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
        // SAFETY: pp is SQLite's out-pointer; VTab starts with sqlite3_vtab.
        unsafe { *pp = Box::into_raw(Box::new(VTab { base, db })) as *mut ffi::sqlite3_vtab };
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_disconnect(v: *mut ffi::sqlite3_vtab) -> c_int {
    // SAFETY: v is the Box<VTab> from x_connect, released once.
    drop(unsafe { Box::from_raw(v as *mut VTab) });
    ffi::SQLITE_OK
}

/// idxNum has bit i set when hidden column COL_A + i is constrained; the
/// arguments arrive in that order.
unsafe extern "C" fn x_best_index(_v: *mut ffi::sqlite3_vtab, info: *mut ffi::sqlite3_index_info) -> c_int {
    guard(|| {
        // SAFETY: info and its arrays are valid for nConstraint entries.
        unsafe {
            let info = &mut *info;
            let mut slot = [None; 3];
            for i in 0..info.nConstraint as usize {
                let c = &*info.aConstraint.add(i);
                let h = c.iColumn - COL_A;
                if (0..3).contains(&h) && c.op as c_int == ffi::SQLITE_INDEX_CONSTRAINT_EQ {
                    if c.usable == 0 {
                        return ffi::SQLITE_CONSTRAINT;
                    }
                    slot[h as usize] = Some(i);
                }
            }
            let mut n = 0;
            info.idxNum = 0;
            for (h, s) in slot.iter().enumerate() {
                if let Some(i) = *s {
                    n += 1;
                    let u = &mut *info.aConstraintUsage.add(i);
                    u.argvIndex = n;
                    u.omit = 1;
                    info.idxNum |= 1 << h;
                }
            }
            info.estimatedCost = if slot[0].is_some() { 1000.0 } else { 1e12 };
        }
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_open(_v: *mut ffi::sqlite3_vtab, pp: *mut *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: an all-zero cursor base is its documented initial state.
    let base: ffi::sqlite3_vtab_cursor = unsafe { std::mem::zeroed() };
    // SAFETY: pp is SQLite's out-pointer; Cursor starts with the base struct.
    unsafe { *pp = Box::into_raw(Box::new(Cursor { base, rows: Vec::new(), at: 0 })) as *mut ffi::sqlite3_vtab_cursor };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_close(c: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: c is the Box<Cursor> from x_open, released once.
    drop(unsafe { Box::from_raw(c as *mut Cursor) });
    ffi::SQLITE_OK
}

/// The rows of the table for one diff.
fn rows(d: &diff::Diff) -> Vec<[Option<String>; NCOLS]> {
    let mut out = Vec::new();
    for s in &d.schema {
        out.push([
            Some(s.name.clone()),
            Some(json::action(s.action).into()),
            Some(serde_json::json!({ "type": s.kind }).to_string()),
            s.old_sql.clone(),
            s.new_sql.clone(),
        ]);
    }
    for t in &d.tables {
        for c in &t.changes {
            let key = Some(json::key(c.key(), t).to_string());
            out.push(match c {
                RowChange::Insert { new, .. } => [
                    Some(t.name.clone()),
                    Some("insert".into()),
                    key,
                    None,
                    Some(json::row(&t.table.columns, new).to_string()),
                ],
                RowChange::Delete { old, .. } => [
                    Some(t.name.clone()),
                    Some("delete".into()),
                    key,
                    Some(json::row(&t.old_table.columns, old).to_string()),
                    None,
                ],
                RowChange::Update { old, new, .. } => {
                    let (o, n) = json::changed(t, old, new);
                    [Some(t.name.clone()), Some("update".into()), key, Some(o.to_string()), Some(n.to_string())]
                }
            });
        }
    }
    out
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
        let (c, vtab) = unsafe { (&mut *(cur as *mut Cursor), (*cur).pVtab) };
        // SAFETY: argv holds argc values, in the order x_best_index gave.
        let args: Vec<*mut ffi::sqlite3_value> = (0..argc as usize).map(|i| unsafe { *argv.add(i) }).collect();
        let mut next = args.iter();
        let mut arg = |bit: c_int| if idx_num & bit != 0 { next.next().copied() } else { None };
        let (a, b, schema) = (arg(1), arg(2), arg(4));
        let int = |v: *mut ffi::sqlite3_value| {
            // SAFETY: v is a live argument of this call.
            unsafe {
                match (api().value_type)(v) {
                    ffi::SQLITE_INTEGER => Some((api().value_int64)(v)),
                    _ => None,
                }
            }
        };
        let Some(from) = a.and_then(int).filter(|&n| n >= 0) else {
            set_error(vtab, "pagelog_diff(A [, B [, schema]]): A must be a version number");
            return ffi::SQLITE_ERROR;
        };
        let to = match b {
            // SAFETY: v is a live argument of this call.
            Some(v) if unsafe { (api().value_type)(v) } != ffi::SQLITE_NULL => match int(v).filter(|&n| n >= 0) {
                Some(n) => n,
                None => {
                    set_error(vtab, "pagelog_diff(A, B): B must be a version number");
                    return ffi::SQLITE_ERROR;
                }
            },
            _ => from + 1,
        };
        // SAFETY: a live argument of this call.
        let schema = schema.and_then(|v| unsafe { text_arg(v) }).unwrap_or_else(|| "main".into());
        // SAFETY: the VTab's db is the connection running this statement;
        // the MainDb is used only within this call.
        let m = match unsafe { main_db((*(vtab as *mut VTab)).db, &schema) } {
            Ok(m) => m,
            Err(msg) => {
                set_error(vtab, &format!("pagelog_diff: {msg}"));
                return ffi::SQLITE_ERROR;
            }
        };
        let log = m.log();
        let versions = log.version(from as u64).and_then(|va| Ok((va, log.version(to as u64)?)));
        let (va, vb) = match versions {
            Ok(v) => v,
            Err(e) => {
                set_error(vtab, &format!("pagelog_diff: {e}"));
                return match super::error_code(&e) {
                    ffi::SQLITE_CORRUPT => ffi::SQLITE_CORRUPT,
                    _ => ffi::SQLITE_ERROR,
                };
            }
        };
        match diff::diff(&va, &vb, &diff::Options::default()) {
            Ok(d) => {
                c.rows = rows(&d);
                c.at = 0;
                ffi::SQLITE_OK
            }
            Err(e) => {
                set_error(vtab, &format!("pagelog_diff: {e}"));
                ffi::SQLITE_CORRUPT
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
    let v = c.rows.get(c.at).and_then(|r| r.get(col as usize)).and_then(|s| s.as_deref());
    // SAFETY: ctx is SQLite's result context for this call; SQLITE_TRANSIENT
    // makes SQLite copy the text before this returns.
    unsafe {
        match v {
            Some(s) => (api().result_text)(ctx, s.as_ptr() as *const c_char, s.len() as c_int, ffi::SQLITE_TRANSIENT()),
            None => (api().result_null)(ctx),
        }
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_rowid(cur: *mut ffi::sqlite3_vtab_cursor, out: *mut ffi::sqlite3_int64) -> c_int {
    // SAFETY: cur is our Cursor; out is SQLite's out-pointer.
    unsafe { *out = (*(cur as *const Cursor)).at as i64 };
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
