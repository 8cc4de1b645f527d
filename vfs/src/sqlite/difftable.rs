//! placeholder
use libsqlite3_sys as ffi;
use std::ffi::c_int;
pub(crate) unsafe fn init_connection(_db: *mut ffi::sqlite3) -> c_int {
    ffi::SQLITE_OK
}
