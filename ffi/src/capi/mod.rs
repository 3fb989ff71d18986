//! The C ABI of `libconcordkv_topology`, in rustls-ffi's conventions:
//!
//! - opaque handles with `_new`/`_free` pairs; `_free(NULL)` does nothing;
//! - every function returns a [`concordkv_result`] (numbers are fixed forever and
//!   never reused), whose text [`concordkv_result_message`] writes;
//! - every body runs inside a panic-catching block: a panic is reported as
//!   `CONCORDKV_RESULT_PANIC`, never unwound into C;
//! - a NULL pointer argument gives `CONCORDKV_RESULT_NULL_PARAMETER`;
//! - out-parameters are written only when the result is `CONCORDKV_RESULT_OK`; the
//!   one documented exception is the `needed`/`*_needed` size, which is also
//!   written with `CONCORDKV_RESULT_BUFFER_TOO_SMALL` so the caller can retry;
//! - `const` pointers are only read; each type says whether it is thread-safe.
//!
//! cbindgen turns this module into `include/concordkv_topology.h`.

#![allow(non_camel_case_types)]
// The exports take raw pointers from C, which cannot see an `unsafe` marker; each
// export documents what it requires of its pointers instead.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

mod client;
mod options;
mod route;

pub use client::*;
pub use options::*;
pub use route::*;

/// The library's version, equal to its Cargo package version.
pub const CONCORDKV_TOPOLOGY_VERSION_MAJOR: u32 = 0;
pub const CONCORDKV_TOPOLOGY_VERSION_MINOR: u32 = 1;
pub const CONCORDKV_TOPOLOGY_VERSION_PATCH: u32 = 0;

/// What a call did. The numbers are part of the ABI: they never change and a
/// retired one is never reused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum concordkv_result {
    Ok = 0,
    /// A pointer argument was NULL.
    NullParameter = 1,
    /// A bug: the library panicked. The call had no effect on its outputs.
    Panic = 2,
    /// An argument is out of range or not UTF-8 (the message of the call says which).
    InvalidParameter = 3,
    /// The server list is empty, or an address is not `host:port`, `http://host:port`
    /// or `https://host:port`.
    InvalidServer = 4,
    /// A caller buffer is too small; the `*_needed` sizes say how large it must be.
    BufferTooSmall = 5,
    /// The key is empty (length 0).
    EmptyKey = 6,
    /// No topology yet: no server has delivered a snapshot so far.
    NotReady = 7,
    /// The topology has no shards.
    NoShards = 8,
    /// Waiting timed out although a server answered (see `concordkv_client_last_error`).
    Timeout = 9,
    /// Waiting timed out and no server could be reached at all.
    Unreachable = 10,
    /// No such listener (or already removed).
    NotFound = 11,
    /// The client's thread could not be started.
    ThreadFailed = 12,
    /// A TLS option is unusable: a CA, client certificate or key file cannot be
    /// read or holds no valid PEM, the key does not match the certificate, only one
    /// of the two is set, or an `https://` server has no CA file.
    InvalidTls = 13,
}

impl concordkv_result {
    const ALL: [concordkv_result; 14] = [
        concordkv_result::Ok,
        concordkv_result::NullParameter,
        concordkv_result::Panic,
        concordkv_result::InvalidParameter,
        concordkv_result::InvalidServer,
        concordkv_result::BufferTooSmall,
        concordkv_result::EmptyKey,
        concordkv_result::NotReady,
        concordkv_result::NoShards,
        concordkv_result::Timeout,
        concordkv_result::Unreachable,
        concordkv_result::NotFound,
        concordkv_result::ThreadFailed,
        concordkv_result::InvalidTls,
    ];

    fn message(self) -> &'static str {
        use concordkv_result as R;
        match self {
            R::Ok => "success",
            R::NullParameter => "a pointer argument was NULL",
            R::Panic => "internal error: the library panicked (please report this)",
            R::InvalidParameter => "an argument is out of range or not valid UTF-8",
            R::InvalidServer => {
                "the server list is empty or an address is not host:port, http://host:port \
                 or https://host:port"
            }
            R::BufferTooSmall => {
                "a buffer is too small; the *_needed sizes say how large it must be"
            }
            R::EmptyKey => "the key is empty",
            R::NotReady => "no topology yet: no server has delivered a snapshot",
            R::NoShards => "the topology has no shards",
            R::Timeout => "timed out waiting for the topology (see concordkv_client_last_error)",
            R::Unreachable => {
                "no topology server could be reached (see concordkv_client_last_error)"
            }
            R::NotFound => "no such listener",
            R::ThreadFailed => "the client's thread could not be started",
            R::InvalidTls => {
                "a TLS option is unusable: a CA, client certificate or key file is unreadable, \
                 not valid PEM or does not match, only one of client certificate and key is \
                 set, or an https:// server has no CA file"
            }
        }
    }
}

/// Runs an export's body; a panic becomes `CONCORDKV_RESULT_PANIC`.
pub(crate) fn boundary(body: impl FnOnce() -> concordkv_result) -> concordkv_result {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(concordkv_result::Panic)
}

/// `Some(&T)` for a non-NULL pointer, else an early `NullParameter` return.
macro_rules! try_ref {
    ($p:expr) => {
        match unsafe { $p.as_ref() } {
            Some(r) => r,
            None => return $crate::capi::concordkv_result::NullParameter,
        }
    };
}
macro_rules! try_mut {
    ($p:expr) => {
        match unsafe { $p.as_mut() } {
            Some(r) => r,
            None => return $crate::capi::concordkv_result::NullParameter,
        }
    };
}
pub(crate) use {try_mut, try_ref};

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char) -> Result<&'a str, concordkv_result> {
    if p.is_null() {
        return Err(concordkv_result::NullParameter);
    }
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| concordkv_result::InvalidParameter)
}

/// Copies `text` and a NUL into `buf` (`len` bytes) if it fits. `needed` (the
/// length without the NUL) is written on success and on `BufferTooSmall`.
///
/// # Safety
/// `buf` is valid for `len` writable bytes; `needed` is valid or NULL (checked).
pub(crate) unsafe fn write_str(
    text: &str,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> concordkv_result {
    let needed = try_mut!(needed);
    if buf.is_null() {
        return concordkv_result::NullParameter;
    }
    *needed = text.len();
    if text.len() >= len {
        return concordkv_result::BufferTooSmall;
    }
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
    }
    concordkv_result::Ok
}

/// Writes the text of a result code into `buf` (NUL-terminated, truncated to fit
/// `len - 1` bytes); `*written` gets the bytes written without the NUL. Unknown
/// codes get a text saying so. Returns `NULL_PARAMETER` for a NULL `buf`/`written`
/// and `BUFFER_TOO_SMALL` only when `len` is 0. Thread-safe.
#[no_mangle]
pub extern "C" fn concordkv_result_message(
    result: u32,
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> concordkv_result {
    boundary(|| {
        let written = try_mut!(written);
        if buf.is_null() {
            return concordkv_result::NullParameter;
        }
        if len == 0 {
            return concordkv_result::BufferTooSmall;
        }
        let unknown;
        let text = match concordkv_result::ALL.iter().find(|r| **r as u32 == result) {
            Some(r) => r.message(),
            None => {
                unknown = format!("unknown result code {result}");
                &unknown
            }
        };
        // Cut at a character boundary so the text stays valid UTF-8.
        let mut n = text.len().min(len - 1);
        while !text.is_char_boundary(n) {
            n -= 1;
        }
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
            *buf.add(n) = 0;
        }
        *written = n;
        concordkv_result::Ok
    })
}

/// The library's version as a static NUL-terminated string ("0.1.0"); compare it
/// with the header's `CONCORDKV_TOPOLOGY_VERSION_*` to catch a header/library mismatch.
#[no_mangle]
pub extern "C" fn concordkv_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Computes a key's routing hash (first 8 bytes of SHA-256, big-endian), as the
/// servers do. `key` may not be NULL; an empty key gives `EMPTY_KEY`. Thread-safe.
#[no_mangle]
pub extern "C" fn concordkv_key_hash(
    key: *const u8,
    key_len: usize,
    out_hash: *mut u64,
) -> concordkv_result {
    boundary(|| {
        let out = try_mut!(out_hash);
        let Some(key) = (unsafe { key_arg(key, key_len) }) else {
            return concordkv_result::NullParameter;
        };
        if key.is_empty() {
            return concordkv_result::EmptyKey;
        }
        *out = concord_model::key_hash(key);
        concordkv_result::Ok
    })
}

/// The key bytes, or None for a NULL pointer.
///
/// # Safety
/// A non-NULL `key` is valid for `len` readable bytes.
pub(crate) unsafe fn key_arg<'a>(key: *const u8, len: usize) -> Option<&'a [u8]> {
    if key.is_null() {
        return None;
    }
    Some(unsafe { std::slice::from_raw_parts(key, len) })
}

#[cfg(test)]
#[path = "capi_test.rs"]
mod tests;
