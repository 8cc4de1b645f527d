//! The extension entry point refuses a SQLite it cannot serve with an error
//! message, instead of aborting the host.

use std::ffi::{c_char, c_int, c_void, CStr};

unsafe extern "C" fn old_version() -> c_int {
    3_020_000
}
unsafe extern "C" fn test_malloc(n: c_int) -> *mut c_void {
    // SAFETY: plain libc allocation; freed below with libc::free.
    unsafe { libc::malloc(n as usize) }
}

#[test]
fn loading_into_an_old_sqlite_fails_with_a_message() {
    let mut table = vec![std::ptr::null::<c_void>(); 300];
    table[67] = old_version as *const c_void; // libversion_number
    table[68] = test_malloc as *const c_void; // malloc
    let mut err: *mut c_char = std::ptr::null_mut();
    // SAFETY: the table has the two slots the entry point reads for an old SQLite.
    let rc = unsafe {
        pagelog::sqlite::sqlite3_pagelog_init(std::ptr::null_mut(), &mut err, table.as_ptr() as *const c_void)
    };
    assert_eq!(rc, libsqlite3_sys::SQLITE_ERROR);
    assert!(!err.is_null());
    // SAFETY: err is a NUL-terminated string from test_malloc.
    let msg = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    // SAFETY: allocated by test_malloc.
    unsafe { libc::free(err as *mut c_void) };
    assert!(msg.contains("needs SQLite 3.24.0") && msg.contains("3.20.0"), "{msg}");
}

#[test]
fn loading_with_no_api_table_fails_without_crashing() {
    let mut err: *mut c_char = std::ptr::null_mut();
    // SAFETY: a null table is handled before any use.
    let rc = unsafe { pagelog::sqlite::sqlite3_pagelog_init(std::ptr::null_mut(), &mut err, std::ptr::null()) };
    assert_eq!(rc, libsqlite3_sys::SQLITE_ERROR);
}
