//! Route results for C: plain structs whose strings are copied into storage the
//! caller provides (`concordkv_route_buffers`), so no Rust memory is ever lent out
//! and nothing has to be freed.

use std::ffi::c_char;

use concord_model::{Health, ShardStatus};

use super::concordkv_result;
use crate::table::{NodeRef, RouteRef};

/// A data node's health.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum concordkv_health {
    Unknown = 0,
    Healthy = 1,
    Degraded = 2,
    Unhealthy = 3,
}

/// A shard's status.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum concordkv_shard_status {
    Active = 1,
    Migrating = 2,
    Readonly = 3,
    Offline = 4,
}

impl From<Health> for concordkv_health {
    fn from(h: Health) -> Self {
        match h {
            Health::Healthy => concordkv_health::Healthy,
            Health::Degraded => concordkv_health::Degraded,
            Health::Unhealthy => concordkv_health::Unhealthy,
            Health::Unknown => concordkv_health::Unknown,
        }
    }
}

impl From<ShardStatus> for concordkv_shard_status {
    fn from(s: ShardStatus) -> Self {
        match s {
            ShardStatus::Active => concordkv_shard_status::Active,
            ShardStatus::Migrating => concordkv_shard_status::Migrating,
            ShardStatus::Readonly => concordkv_shard_status::Readonly,
            ShardStatus::Offline => concordkv_shard_status::Offline,
        }
    }
}

/// A data node of a route. The strings are NUL-terminated and live in the
/// caller's `concordkv_route_buffers.strings`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct concordkv_node {
    pub node_id: *const c_char,
    /// `host:port` of the data node.
    pub address: *const c_char,
    pub health: concordkv_health,
}

/// Where a key goes. Filled by `concordkv_client_route`; its pointers point into
/// the `concordkv_route_buffers` passed with it and are valid as long as those are.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct concordkv_route {
    /// The topology version the answer was taken from.
    pub version: u64,
    /// The key's routing hash (first 8 bytes of SHA-256, big-endian).
    pub key_hash: u64,
    /// The shard's epoch: pass it back to `concordkv_client_report_stale` when a
    /// data node says the route is stale.
    pub epoch: u64,
    pub status: concordkv_shard_status,
    /// The shard's key range: `[range_start, range_end)`, or `[range_start, 2^64)`
    /// when `range_to_end` is true (then `range_end` is 0).
    pub range_start: u64,
    pub range_end: u64,
    pub range_to_end: bool,
    pub shard_id: *const c_char,
    pub primary: concordkv_node,
    /// `replica_count` entries, in the caller's `concordkv_route_buffers.replicas`.
    pub replicas: *const concordkv_node,
    pub replica_count: usize,
}

/// Storage for one route's strings and replicas, owned by the caller (stack memory
/// is fine). `replicas_needed` and `strings_needed` are written by every route call
/// that returns `OK` or `BUFFER_TOO_SMALL`: on the latter, enlarge and call again.
/// 8 replicas and 1 KiB of strings fit every topology with short ids and addresses.
#[repr(C)]
#[derive(Debug)]
pub struct concordkv_route_buffers {
    pub replicas: *mut concordkv_node,
    pub replicas_len: usize,
    pub strings: *mut c_char,
    pub strings_len: usize,
    pub replicas_needed: usize,
    pub strings_needed: usize,
}

/// Bytes of strings a route needs (each string with its NUL).
fn strings_needed(r: &RouteRef<'_>) -> usize {
    let node = |n: NodeRef<'_>| n.node_id.len() + n.address.len() + 2;
    r.shard_id().len() + 1 + node(r.primary()) + r.replicas().map(node).sum::<usize>()
}

/// Appends NUL-terminated strings to a caller buffer already checked to be large enough.
struct Strings {
    base: *mut c_char,
    used: usize,
}

impl Strings {
    /// # Safety
    /// `base` has room for `used + s.len() + 1` bytes.
    unsafe fn push(&mut self, s: &str) -> *const c_char {
        unsafe {
            let dst = self.base.add(self.used);
            std::ptr::copy_nonoverlapping(s.as_ptr(), dst.cast::<u8>(), s.len());
            *dst.add(s.len()) = 0;
            self.used += s.len() + 1;
            dst
        }
    }

    unsafe fn node(&mut self, n: NodeRef<'_>) -> concordkv_node {
        unsafe {
            concordkv_node {
                node_id: self.push(n.node_id),
                address: self.push(n.address),
                health: n.health.into(),
            }
        }
    }
}

/// Copies a route into the caller's storage. Writes `*out` only on `OK`.
///
/// # Safety
/// `bufs.replicas` / `bufs.strings` are valid for their lengths (NULL only with
/// length 0); `out` is valid.
pub(crate) unsafe fn fill(
    r: &RouteRef<'_>,
    bufs: &mut concordkv_route_buffers,
    out: &mut concordkv_route,
) -> concordkv_result {
    let need_strings = strings_needed(r);
    let need_replicas = r.replica_count();
    bufs.strings_needed = need_strings;
    bufs.replicas_needed = need_replicas;
    if need_strings > bufs.strings_len || need_replicas > bufs.replicas_len {
        return concordkv_result::BufferTooSmall;
    }
    if bufs.strings.is_null() || (need_replicas > 0 && bufs.replicas.is_null()) {
        return concordkv_result::NullParameter;
    }
    let mut strings = Strings {
        base: bufs.strings,
        used: 0,
    };
    unsafe {
        let shard_id = strings.push(r.shard_id());
        let primary = strings.node(r.primary());
        for (i, n) in r.replicas().enumerate() {
            bufs.replicas.add(i).write(strings.node(n));
        }
        let range = r.key_range();
        *out = concordkv_route {
            version: r.version(),
            key_hash: r.key_hash(),
            epoch: r.epoch(),
            status: r.status().into(),
            range_start: range.start.0,
            range_end: range.end.map_or(0, |e| e.0),
            range_to_end: range.end.is_none(),
            shard_id,
            primary,
            replicas: bufs.replicas,
            replica_count: need_replicas,
        };
    }
    concordkv_result::Ok
}
