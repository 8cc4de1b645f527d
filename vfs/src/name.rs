//! File names are bytes.
//!
//! On Linux a file name is any sequence of bytes without NUL, and SQLite
//! hands the VFS exactly the bytes it was given (a `file:` URI's `%XX`
//! escapes already decoded). pagelog opens, locks, maps and checks those
//! bytes and nothing else: a name becomes a [`Path`] with
//! [`path_from_bytes`], never through a UTF-8 conversion, which would turn
//! every invalid byte into U+FFFD and so open another file (two names that
//! differ only in such a byte would share one log).
//!
//! Only messages convert: [`Escaped`] shows a name's valid UTF-8 as it is and
//! every other byte as `\xNN`, so names that differ only in such bytes do not
//! look alike in an error, as they do with `Path::display` (U+FFFD for each).
//! A backslash is shown as itself: a name that really contains the four
//! characters `\xe9` looks like one holding the byte 0xE9.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The path whose bytes are exactly `bytes`.
pub fn path_from_bytes(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// A name for messages: valid UTF-8 as is, any other byte as `\xNN`.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// `.escaped()` on paths, OS strings and byte strings.
pub trait EscapedName {
    /// The name as [`Escaped`] shows it in messages.
    fn escaped(&self) -> Escaped<'_>;
}

impl EscapedName for Path {
    fn escaped(&self) -> Escaped<'_> {
        Escaped(self.as_os_str().as_bytes())
    }
}

impl EscapedName for OsStr {
    fn escaped(&self) -> Escaped<'_> {
        Escaped(self.as_bytes())
    }
}

impl EscapedName for [u8] {
    fn escaped(&self) -> Escaped<'_> {
        Escaped(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_is_not_utf8_keeps_its_bytes_as_a_path() {
        let p = path_from_bytes(b"d/caf\xe9.db");
        assert_eq!(p.as_os_str().as_bytes(), b"d/caf\xe9.db");
        assert_ne!(p, path_from_bytes(b"d/caf\xe8.db"));
    }

    #[test]
    fn escaped_names_show_each_invalid_byte_and_keep_utf8_as_is() {
        assert_eq!(path_from_bytes(b"app.db").escaped().to_string(), "app.db");
        assert_eq!(path_from_bytes("café.db".as_bytes()).escaped().to_string(), "café.db");
        assert_eq!(path_from_bytes(b"d/caf\xe9.db").escaped().to_string(), "d/caf\\xe9.db");
        assert_eq!(b"\xff\xfe-x".escaped().to_string(), "\\xff\\xfe-x");
        assert_ne!(b"caf\xe9".escaped().to_string(), b"caf\xe8".escaped().to_string());
        assert_eq!(format!("{:?}", b"v\x80".escaped()), "\"v\\x80\"");
    }
}
