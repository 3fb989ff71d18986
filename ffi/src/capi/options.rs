//! `concordkv_options`: the builder of a client's options, filled in by setters and
//! read by `concordkv_client_new`.

use std::ffi::c_char;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{boundary, concordkv_result, str_arg, try_mut};
use crate::error::OptionsError;
use crate::http::Endpoint;
use crate::options::{ClientOptions, ReadConsistency};
use crate::tls;

/// Options for `concordkv_client_new`: the topology servers, timeouts, backoff,
/// auth token, read consistency and the TLS files of `https://` servers. Not
/// thread-safe: use one from one thread at a time. The client copies what it
/// needs, so it may be freed right after `concordkv_client_new`.
pub struct concordkv_options {
    pub(crate) inner: ClientOptions,
}

/// How fresh the snapshot a client starts or resynchronises from must be.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum concordkv_consistency {
    /// Whatever the answering server has applied (the default).
    Applied = 0,
    /// A linearizable read (`?consistency=linearizable`).
    Linearizable = 1,
}

/// Creates options with the defaults (connect 2 s, read 30 s, backoff 100 ms to
/// 5 s, stale refresh at most once per 1 s, applied consistency) and no server.
/// Free with `concordkv_options_free`.
#[no_mangle]
pub extern "C" fn concordkv_options_new(
    out_options: *mut *mut concordkv_options,
) -> concordkv_result {
    boundary(|| {
        let out = try_mut!(out_options);
        *out = Box::into_raw(Box::new(concordkv_options {
            inner: ClientOptions::default(),
        }));
        concordkv_result::Ok
    })
}

/// Frees options. NULL is allowed (nothing happens).
#[no_mangle]
pub extern "C" fn concordkv_options_free(options: *mut concordkv_options) {
    let _ = boundary(|| {
        if !options.is_null() {
            drop(unsafe { Box::from_raw(options) });
        }
        concordkv_result::Ok
    });
}

/// Appends a topology server: `host:port`, `http://host:port` or
/// `https://host:port` (port 443 when left out; needs `concordkv_options_set_ca_file`).
/// A malformed address gives `INVALID_SERVER` and is not added.
#[no_mangle]
pub extern "C" fn concordkv_options_add_server(
    options: *mut concordkv_options,
    address: *const c_char,
) -> concordkv_result {
    boundary(|| {
        let o = try_mut!(options);
        let address = match unsafe { str_arg(address) } {
            Ok(a) => a,
            Err(concordkv_result::InvalidParameter) => return concordkv_result::InvalidServer,
            Err(e) => return e,
        };
        if Endpoint::parse(address).is_err() {
            return concordkv_result::InvalidServer;
        }
        o.inner.servers.push(address.to_string());
        concordkv_result::Ok
    })
}

/// Sets the connect timeout and the longest silence on a response or stream (keep
/// it above the servers' 15 s heartbeat). Both in milliseconds; `connect_ms` > 0,
/// `read_ms` >= 200, else `INVALID_PARAMETER`.
#[no_mangle]
pub extern "C" fn concordkv_options_set_timeouts(
    options: *mut concordkv_options,
    connect_ms: u32,
    read_ms: u32,
) -> concordkv_result {
    boundary(|| {
        let o = try_mut!(options);
        if connect_ms == 0 || read_ms < 200 {
            return concordkv_result::InvalidParameter;
        }
        o.inner.connect_timeout = Duration::from_millis(connect_ms.into());
        o.inner.read_timeout = Duration::from_millis(read_ms.into());
        concordkv_result::Ok
    })
}

/// Sets the backoff between attempts after failures: from `min_ms`, doubling, up to
/// `max_ms`, with jitter. `max_ms < min_ms` gives `INVALID_PARAMETER`.
#[no_mangle]
pub extern "C" fn concordkv_options_set_backoff(
    options: *mut concordkv_options,
    min_ms: u32,
    max_ms: u32,
) -> concordkv_result {
    boundary(|| {
        let o = try_mut!(options);
        if max_ms < min_ms {
            return concordkv_result::InvalidParameter;
        }
        o.inner.backoff_min = Duration::from_millis(min_ms.into());
        o.inner.backoff_max = Duration::from_millis(max_ms.into());
        concordkv_result::Ok
    })
}

/// Sets the bearer token sent with every request (NULL clears it). Empty tokens or
/// tokens with spaces or control characters give `INVALID_PARAMETER`.
#[no_mangle]
pub extern "C" fn concordkv_options_set_auth_token(
    options: *mut concordkv_options,
    token: *const c_char,
) -> concordkv_result {
    boundary(|| {
        let o = try_mut!(options);
        if token.is_null() {
            o.inner.auth_token = None;
            return concordkv_result::Ok;
        }
        let token = match unsafe { str_arg(token) } {
            Ok(t) => t,
            Err(e) => return e,
        };
        if token.is_empty() || token.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return concordkv_result::InvalidParameter;
        }
        o.inner.auth_token = Some(token.to_string());
        concordkv_result::Ok
    })
}

/// Sets the read consistency (a `concordkv_consistency` value; others give
/// `INVALID_PARAMETER`).
#[no_mangle]
pub extern "C" fn concordkv_options_set_consistency(
    options: *mut concordkv_options,
    consistency: u32,
) -> concordkv_result {
    boundary(|| {
        let o = try_mut!(options);
        o.inner.consistency = match consistency {
            c if c == concordkv_consistency::Applied as u32 => ReadConsistency::Applied,
            c if c == concordkv_consistency::Linearizable as u32 => ReadConsistency::Linearizable,
            _ => return concordkv_result::InvalidParameter,
        };
        concordkv_result::Ok
    })
}

/// Sets the least time between two refreshes asked for by `concordkv_client_report_stale`.
#[no_mangle]
pub extern "C" fn concordkv_options_set_stale_refresh_interval(
    options: *mut concordkv_options,
    interval_ms: u32,
) -> concordkv_result {
    boundary(|| {
        let o = try_mut!(options);
        o.inner.stale_refresh_interval = Duration::from_millis(interval_ms.into());
        concordkv_result::Ok
    })
}

/// Sets one TLS file option from a C path after `check` accepted the file. NULL
/// clears the option; a non-UTF-8 path gives `INVALID_PARAMETER`, a file `check`
/// refuses gives `INVALID_TLS` (and leaves the option as it was).
fn set_tls_file<T>(
    options: *mut concordkv_options,
    path: *const c_char,
    check: impl FnOnce(&Path) -> Result<T, OptionsError>,
    field: impl FnOnce(&mut ClientOptions) -> &mut Option<PathBuf>,
) -> concordkv_result {
    boundary(|| {
        let o = try_mut!(options);
        if path.is_null() {
            *field(&mut o.inner) = None;
            return concordkv_result::Ok;
        }
        let path = match unsafe { str_arg(path) } {
            Ok(p) => Path::new(p),
            Err(e) => return e,
        };
        if check(path).is_err() {
            return concordkv_result::InvalidTls;
        }
        *field(&mut o.inner) = Some(path.to_path_buf());
        concordkv_result::Ok
    })
}

/// Sets the PEM file of the CA certificate(s) that verify `https://` servers
/// (NULL clears it). Required by `https://` servers: the system's trusted roots
/// are never used. The file is read now, and again by `concordkv_client_new`;
/// `INVALID_TLS` when it cannot be read or holds no valid CA certificate.
#[no_mangle]
pub extern "C" fn concordkv_options_set_ca_file(
    options: *mut concordkv_options,
    path: *const c_char,
) -> concordkv_result {
    set_tls_file(options, path, tls::load_roots, |o| &mut o.ca_file)
}

/// Sets the PEM certificate chain presented to servers that require client
/// certificates (NULL clears it); set `concordkv_options_set_client_key_file` too.
/// `INVALID_TLS` when the file cannot be read or holds no PEM certificate.
#[no_mangle]
pub extern "C" fn concordkv_options_set_client_cert_file(
    options: *mut concordkv_options,
    path: *const c_char,
) -> concordkv_result {
    set_tls_file(
        options,
        path,
        |p| tls::load_certs("client_cert_file", p),
        |o| &mut o.client_cert_file,
    )
}

/// Sets the PEM private key (PKCS#8, PKCS#1 or SEC1) of the client certificate
/// (NULL clears it). `INVALID_TLS` when the file cannot be read or holds no key;
/// a key that does not match the certificate gives `INVALID_TLS` from
/// `concordkv_client_new`.
#[no_mangle]
pub extern "C" fn concordkv_options_set_client_key_file(
    options: *mut concordkv_options,
    path: *const c_char,
) -> concordkv_result {
    set_tls_file(options, path, tls::load_key, |o| &mut o.client_key_file)
}
