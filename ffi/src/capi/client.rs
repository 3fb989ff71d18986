//! `concordkv_client`: the C face of [`crate::TopologyClient`].

use std::ffi::{c_char, c_void, CString};
use std::time::Duration;

use super::options::concordkv_options;
use super::route::{self, concordkv_route, concordkv_route_buffers};
use super::{boundary, concordkv_result, key_arg, str_arg, try_mut, try_ref, write_str};
use crate::error::{OptionsError, RouteError, WaitError};
use crate::shared::{Change, ListenerId};
use crate::TopologyClient;

/// A caching router client. Thread-safe: every function taking a
/// `const concordkv_client *` may be called from any thread at the same time.
/// `concordkv_client_free` must not race with other calls on the same client, and
/// the handle must not be used after it (the C++ wrapper makes that impossible).
pub struct concordkv_client {
    inner: TopologyClient,
}

/// A topology event type.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum concordkv_event_type {
    NodeJoin = 1,
    NodeLeave = 2,
    NodeHealthChange = 3,
    ShardAdd = 4,
    ShardRemove = 5,
    ShardMove = 6,
    ShardSplit = 7,
    ShardMerge = 8,
    LeaderChange = 9,
    ConfigChange = 10,
}

impl From<concord_model::EventType> for concordkv_event_type {
    fn from(t: concord_model::EventType) -> Self {
        use concord_model::EventType as E;
        match t {
            E::NodeJoin => Self::NodeJoin,
            E::NodeLeave => Self::NodeLeave,
            E::NodeHealthChange => Self::NodeHealthChange,
            E::ShardAdd => Self::ShardAdd,
            E::ShardRemove => Self::ShardRemove,
            E::ShardMove => Self::ShardMove,
            E::ShardSplit => Self::ShardSplit,
            E::ShardMerge => Self::ShardMerge,
            E::LeaderChange => Self::LeaderChange,
            E::ConfigChange => Self::ConfigChange,
        }
    }
}

/// One event of a change. Strings are valid only during the callback.
#[repr(C)]
#[derive(Debug)]
pub struct concordkv_event {
    pub event_type: concordkv_event_type,
    /// The event type's name ("ShardSplit", ...), NUL-terminated.
    pub type_name: *const c_char,
    pub version: u64,
    /// Milliseconds since the Unix epoch, as the server stamped the change set.
    pub timestamp: u64,
    /// The shard the event is about, or NULL.
    pub shard_id: *const c_char,
    /// The node the event is about, or NULL.
    pub node_id: *const c_char,
}

/// A change of the local topology, as a callback sees it (valid only during it).
#[repr(C)]
#[derive(Debug)]
pub struct concordkv_change {
    /// The version before (0: there was none).
    pub previous_version: u64,
    /// The version now routed with.
    pub version: u64,
    /// True when a whole snapshot replaced the local copy (first load, a server
    /// `Reset`, a resynchronisation); `events` is then empty.
    pub reset: bool,
    pub events: *const concordkv_event,
    pub event_count: usize,
}

/// A change callback. It runs on the client's own thread, after the routing table
/// includes `change->version`, in version order. It must return quickly and must
/// not block (no waiting on locks your other threads hold while calling the
/// client, no `concordkv_client_wait_*`): the client applies no further change until
/// it returns. It may call the read functions (`_route`, `_version`, ...) and
/// `concordkv_client_remove_listener`.
pub type concordkv_change_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, change: *const concordkv_change)>;

/// The caller's `userdata` travels to the client's thread; the caller promised (by
/// registering the callback) that it may be used there.
struct UserData(*mut c_void);
unsafe impl Send for UserData {}

/// Creates a client from `options` (copied) and starts its thread, which connects
/// to the first server. Does not wait for the network: see
/// `concordkv_client_wait_ready`. `INVALID_SERVER` when the server list is empty;
/// `INVALID_TLS` when an `https://` server has no CA file, only one of client
/// certificate and key is set, or a TLS file cannot be used (they are read here).
/// Free with `concordkv_client_free`.
#[no_mangle]
pub extern "C" fn concordkv_client_new(
    options: *const concordkv_options,
    out_client: *mut *mut concordkv_client,
) -> concordkv_result {
    boundary(|| {
        let options = try_ref!(options);
        let out = try_mut!(out_client);
        match TopologyClient::new(options.inner.clone()) {
            Ok(inner) => {
                *out = Box::into_raw(Box::new(concordkv_client { inner }));
                concordkv_result::Ok
            }
            Err(OptionsError::NoServers | OptionsError::BadServer { .. }) => {
                concordkv_result::InvalidServer
            }
            Err(OptionsError::Invalid { .. }) => concordkv_result::InvalidParameter,
            Err(
                OptionsError::NoCaFile { .. }
                | OptionsError::TlsFile { .. }
                | OptionsError::Tls { .. },
            ) => concordkv_result::InvalidTls,
            Err(OptionsError::Thread(_)) => concordkv_result::ThreadFailed,
        }
    })
}

/// Stops the client's thread, waits for it (so no callback runs after this
/// returns; from inside a callback, the thread ends when the callback returns) and
/// frees the client. NULL is allowed.
#[no_mangle]
pub extern "C" fn concordkv_client_free(client: *mut concordkv_client) {
    let _ = boundary(|| {
        if !client.is_null() {
            drop(unsafe { Box::from_raw(client) });
        }
        concordkv_result::Ok
    });
}

/// Waits up to `timeout_ms` until the client has a topology; `*out_version` gets
/// its version. `TIMEOUT` when a server answered but no topology arrived in time,
/// `UNREACHABLE` when no server could be reached at all.
#[no_mangle]
pub extern "C" fn concordkv_client_wait_ready(
    client: *const concordkv_client,
    timeout_ms: u32,
    out_version: *mut u64,
) -> concordkv_result {
    concordkv_client_wait_for_version(client, 1, timeout_ms, out_version)
}

/// Waits up to `timeout_ms` until the local version is at least `version`;
/// `*out_version` gets the version reached. Codes as `concordkv_client_wait_ready`.
#[no_mangle]
pub extern "C" fn concordkv_client_wait_for_version(
    client: *const concordkv_client,
    version: u64,
    timeout_ms: u32,
    out_version: *mut u64,
) -> concordkv_result {
    boundary(|| {
        let c = try_ref!(client);
        let out = try_mut!(out_version);
        match c
            .inner
            .wait_for_version(version, Duration::from_millis(timeout_ms.into()))
        {
            Ok(v) => {
                *out = v;
                concordkv_result::Ok
            }
            Err(WaitError::Timeout { .. }) => concordkv_result::Timeout,
            Err(WaitError::Unreachable { .. }) => concordkv_result::Unreachable,
        }
    })
}

/// The version routed with; 0 before the first snapshot. Never blocks.
#[no_mangle]
pub extern "C" fn concordkv_client_version(
    client: *const concordkv_client,
    out_version: *mut u64,
) -> concordkv_result {
    boundary(|| {
        let c = try_ref!(client);
        let out = try_mut!(out_version);
        *out = c.inner.version();
        concordkv_result::Ok
    })
}

fn route_error(e: RouteError) -> concordkv_result {
    match e {
        RouteError::EmptyKey => concordkv_result::EmptyKey,
        RouteError::NotReady => concordkv_result::NotReady,
        RouteError::NoShards => concordkv_result::NoShards,
    }
}

/// Routes a key: the owning shard, its epoch, primary and replicas with address and
/// health, copied into `*out` and the caller's `buffers`. Never blocks, never
/// allocates. `EMPTY_KEY` for `key_len == 0`; `NOT_READY` before the first
/// snapshot; `BUFFER_TOO_SMALL` (with `buffers->*_needed` set) when the storage is
/// too small. `*out` is written only on `OK`.
#[no_mangle]
pub extern "C" fn concordkv_client_route(
    client: *const concordkv_client,
    key: *const u8,
    key_len: usize,
    buffers: *mut concordkv_route_buffers,
    out: *mut concordkv_route,
) -> concordkv_result {
    boundary(|| {
        let c = try_ref!(client);
        let bufs = try_mut!(buffers);
        let out = try_mut!(out);
        let Some(key) = (unsafe { key_arg(key, key_len) }) else {
            return concordkv_result::NullParameter;
        };
        match c.inner.route(key) {
            Ok(r) => unsafe { route::fill(&r.get(), bufs, out) },
            Err(e) => route_error(e),
        }
    })
}

/// Routes a point of the hash space (see `concordkv_key_hash`); as `concordkv_client_route`.
#[no_mangle]
pub extern "C" fn concordkv_client_route_hash(
    client: *const concordkv_client,
    hash: u64,
    buffers: *mut concordkv_route_buffers,
    out: *mut concordkv_route,
) -> concordkv_result {
    boundary(|| {
        let c = try_ref!(client);
        let bufs = try_mut!(buffers);
        let out = try_mut!(out);
        match c.inner.route_hash(hash) {
            Ok(r) => unsafe { route::fill(&r.get(), bufs, out) },
            Err(e) => route_error(e),
        }
    })
}

/// Writes the local topology as snapshot JSON (NUL-terminated) into `buf`.
/// `*needed` gets its length without the NUL, on `OK` and on `BUFFER_TOO_SMALL`.
/// `NOT_READY` before the first snapshot.
#[no_mangle]
pub extern "C" fn concordkv_client_snapshot_json(
    client: *const concordkv_client,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> concordkv_result {
    text_out(client, buf, len, needed, |c| c.snapshot_json())
}

/// Writes the local `configHash` (16 hex digits, NUL-terminated); as
/// `concordkv_client_snapshot_json`.
#[no_mangle]
pub extern "C" fn concordkv_client_config_hash(
    client: *const concordkv_client,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> concordkv_result {
    text_out(client, buf, len, needed, |c| c.config_hash())
}

/// Writes the last error talking to a server (`host:port: what happened`), or an
/// empty string if none; as `concordkv_client_snapshot_json` otherwise.
#[no_mangle]
pub extern "C" fn concordkv_client_last_error(
    client: *const concordkv_client,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> concordkv_result {
    text_out(client, buf, len, needed, |c| {
        Some(c.last_error().unwrap_or_default())
    })
}

/// The body of every text-returning export: `text` of the client (`NOT_READY` when it
/// has none yet) written into `buf` as `write_str` does.
fn text_out(
    client: *const concordkv_client,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
    text: impl FnOnce(&crate::TopologyClient) -> Option<String>,
) -> concordkv_result {
    boundary(|| {
        let c = try_ref!(client);
        match text(&c.inner) {
            Some(text) => unsafe { write_str(&text, buf, len, needed) },
            None => concordkv_result::NotReady,
        }
    })
}

/// Reports that a data node refused a request routed with `epoch` for `shard_id`.
/// Triggers one refresh, coalesced with other reports and rate limited; sets
/// `*out_scheduled` to false when the local copy already has a newer epoch.
#[no_mangle]
pub extern "C" fn concordkv_client_report_stale(
    client: *const concordkv_client,
    shard_id: *const c_char,
    epoch: u64,
    out_scheduled: *mut bool,
) -> concordkv_result {
    boundary(|| {
        let c = try_ref!(client);
        let out = try_mut!(out_scheduled);
        let shard = match unsafe { str_arg(shard_id) } {
            Ok(s) => s,
            Err(e) => return e,
        };
        *out = c.inner.report_stale(shard, epoch);
        concordkv_result::Ok
    })
}

/// Registers a change callback (see `concordkv_change_callback` for its rules);
/// `*out_listener` gets its id. `userdata` is passed back untouched and must stay
/// valid until the listener is removed or the client freed.
#[no_mangle]
pub extern "C" fn concordkv_client_on_change(
    client: *const concordkv_client,
    callback: concordkv_change_callback,
    userdata: *mut c_void,
    out_listener: *mut u64,
) -> concordkv_result {
    boundary(|| {
        let c = try_ref!(client);
        let out = try_mut!(out_listener);
        let Some(callback) = callback else {
            return concordkv_result::NullParameter;
        };
        let userdata = UserData(userdata);
        let id = c.inner.on_change(move |change| {
            let userdata = &userdata;
            call_c(callback, userdata.0, change);
        });
        *out = id.0;
        concordkv_result::Ok
    })
}

/// Builds the C view of a change (strings owned for the duration of the call).
fn call_c(
    callback: unsafe extern "C" fn(*mut c_void, *const concordkv_change),
    userdata: *mut c_void,
    change: &Change<'_>,
) {
    let cstr = |s: &Option<String>| s.as_deref().and_then(|s| CString::new(s).ok());
    let owned: Vec<(Option<CString>, Option<CString>)> = change
        .events
        .iter()
        .map(|e| (cstr(&e.shard_id), cstr(&e.node_id)))
        .collect();
    let names: Vec<CString> = change
        .events
        .iter()
        .map(|e| CString::new(e.event_type.as_str()).expect("type names have no NUL"))
        .collect();
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    let events: Vec<concordkv_event> = change
        .events
        .iter()
        .zip(&owned)
        .zip(&names)
        .map(|((e, (shard, node)), name)| concordkv_event {
            event_type: e.event_type.into(),
            type_name: name.as_ptr(),
            version: e.version,
            timestamp: e.timestamp,
            shard_id: ptr(shard),
            node_id: ptr(node),
        })
        .collect();
    let view = concordkv_change {
        previous_version: change.previous_version,
        version: change.version,
        reset: change.reset,
        events: if events.is_empty() {
            std::ptr::null()
        } else {
            events.as_ptr()
        },
        event_count: events.len(),
    };
    unsafe { callback(userdata, &view) };
}

/// Removes a listener: `NOT_FOUND` if unknown. Called from another thread, it
/// waits for a callback in progress, so once it returns the callback never runs
/// again and its userdata may be freed. From inside a callback it takes effect
/// when that callback returns.
#[no_mangle]
pub extern "C" fn concordkv_client_remove_listener(
    client: *const concordkv_client,
    listener: u64,
) -> concordkv_result {
    boundary(|| {
        let c = try_ref!(client);
        if c.inner.remove_listener(ListenerId(listener)) {
            concordkv_result::Ok
        } else {
            concordkv_result::NotFound
        }
    })
}

/// Counters of what a client did (see `ClientStats` in the Rust API).
#[repr(C)]
#[derive(Debug, Default)]
pub struct concordkv_stats {
    pub version: u64,
    pub snapshots_loaded: u64,
    pub versions_applied: u64,
    pub events_applied: u64,
    pub duplicates_skipped: u64,
    pub resyncs: u64,
    pub failovers: u64,
    pub streams_opened: u64,
    pub polls: u64,
    pub stale_reports: u64,
    pub refreshes: u64,
    pub current_server: usize,
    pub streaming: bool,
}

/// Copies the client's counters into `*out`.
#[no_mangle]
pub extern "C" fn concordkv_client_stats(
    client: *const concordkv_client,
    out: *mut concordkv_stats,
) -> concordkv_result {
    boundary(|| {
        let c = try_ref!(client);
        let out = try_mut!(out);
        let s = c.inner.stats();
        *out = concordkv_stats {
            version: s.version,
            snapshots_loaded: s.snapshots_loaded,
            versions_applied: s.versions_applied,
            events_applied: s.events_applied,
            duplicates_skipped: s.duplicates_skipped,
            resyncs: s.resyncs,
            failovers: s.failovers,
            streams_opened: s.streams_opened,
            polls: s.polls,
            stale_reports: s.stale_reports,
            refreshes: s.refreshes,
            current_server: s.current_server,
            streaming: s.streaming,
        };
        concordkv_result::Ok
    })
}
