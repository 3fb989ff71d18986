//! The `configHash`: a deterministic digest of the canonical encoding of every shard
//! and node, identical on every server at the same version.
//!
//! Each entity is encoded canonically (length-prefixed strings, big-endian integers,
//! tagged options, labels in key order) and hashed with SHA-256. The per-entity
//! digests are summed as 256-bit integers (mod 2^256); the configHash is the first 16
//! hex digits of SHA-256 over a domain tag, the entity counts and that sum.
//!
//! Why a sum rather than one SHA-256 over the whole sorted encoding: the sum is
//! independent of order and updates in O(changed entities), so a change set costs
//! the same with 16 shards or 16k (a full rehash of 16k shards takes milliseconds,
//! which is the whole commit-to-SSE budget). Ids are unique and part of each entity's
//! encoding, so the sum still pins the exact set of entities.
//!
//! A node's derived `shards` list is not encoded: it is a function of the shards.

use sha2::{Digest, Sha256};

use crate::types::{KeyRange, NodeStatus, ShardInfo, ShardStatus};

const DOMAIN: &[u8] = b"concordkv-topology-config-v1";

/// The order-independent sum of entity digests, as 4 little-endian 64-bit limbs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DigestSum([u64; 4]);

impl DigestSum {
    pub fn add(&mut self, d: &[u8; 32]) {
        let x = limbs(d);
        let mut carry = false;
        for (a, b) in self.0.iter_mut().zip(x) {
            let (s1, c1) = a.overflowing_add(b);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *a = s2;
            carry = c1 || c2;
        }
    }

    pub fn sub(&mut self, d: &[u8; 32]) {
        let x = limbs(d);
        let mut borrow = false;
        for (a, b) in self.0.iter_mut().zip(x) {
            let (s1, b1) = a.overflowing_sub(b);
            let (s2, b2) = s1.overflowing_sub(u64::from(borrow));
            *a = s2;
            borrow = b1 || b2;
        }
    }

    /// The 16-hex-digit configHash of a topology with these counts and this sum.
    pub fn config_hash(&self, shard_count: usize, node_count: usize) -> String {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update((shard_count as u64).to_be_bytes());
        h.update((node_count as u64).to_be_bytes());
        for limb in self.0.iter().rev() {
            h.update(limb.to_be_bytes());
        }
        let out = h.finalize();
        out[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn limbs(d: &[u8; 32]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (i, limb) in out.iter_mut().enumerate() {
        // Limb 0 is the least significant: the last 8 bytes of the big-endian digest.
        let at = 32 - 8 * (i + 1);
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[at..at + 8]);
        *limb = u64::from_be_bytes(b);
    }
    out
}

/// Feeds a canonical encoding straight into the hasher (no intermediate buffer).
struct Canonical(Sha256);

impl Canonical {
    fn tag(&mut self, t: u8) {
        self.0.update([t]);
    }
    fn u64(&mut self, v: u64) {
        self.0.update(v.to_be_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.update(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.tag(0),
            Some(s) => {
                self.tag(1);
                self.str(s);
            }
        }
    }
    fn range(&mut self, r: &KeyRange) {
        self.u64(r.start.0);
        match r.end {
            None => self.tag(0),
            Some(e) => {
                self.tag(1);
                self.u64(e.0);
            }
        }
    }
    fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

pub(crate) fn shard_digest(s: &ShardInfo) -> [u8; 32] {
    let mut c = Canonical(Sha256::new());
    c.tag(b'S');
    c.str(&s.shard_id);
    c.range(&s.key_range);
    c.str(&s.primary_node);
    c.u64(s.replica_nodes.len() as u64);
    for r in &s.replica_nodes {
        c.str(r);
    }
    c.tag(match s.status {
        ShardStatus::Active => 0,
        ShardStatus::Migrating => 1,
        ShardStatus::Readonly => 2,
        ShardStatus::Offline => 3,
    });
    c.u64(s.epoch);
    c.u64(s.last_update);
    match &s.migration {
        None => c.tag(0),
        Some(m) => {
            c.tag(1);
            c.str(&m.from);
            c.str(&m.to);
            c.tag(m.percent);
            c.u64(m.started_at);
        }
    }
    c.finish()
}

pub(crate) fn node_digest(n: &NodeStatus) -> [u8; 32] {
    let mut c = Canonical(Sha256::new());
    c.tag(b'N');
    c.str(&n.node_id);
    c.str(&n.address);
    c.str(n.health.as_str());
    c.u64(n.last_seen);
    c.u64(u64::from(n.failure_count));
    c.opt_str(n.last_error.as_deref());
    c.u64(n.labels.len() as u64);
    for (k, v) in &n.labels {
        c.str(k);
        c.str(v);
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_is_order_independent_and_invertible() {
        let a = [0xffu8; 32];
        let mut b = [0u8; 32];
        b[31] = 1;
        let mut x = DigestSum::default();
        x.add(&a);
        x.add(&b);
        let mut y = DigestSum::default();
        y.add(&b);
        y.add(&a);
        assert_eq!(x, y);
        // 0xff..ff + 1 wraps to zero.
        assert_eq!(x, DigestSum::default());
        x.sub(&a);
        assert_eq!(x.0, [1, 0, 0, 0]);
        x.sub(&b);
        assert_eq!(x, DigestSum::default());
    }

    #[test]
    fn config_hash_is_16_hex_digits_and_depends_on_counts() {
        let sum = DigestSum::default();
        let h = sum.config_hash(0, 0);
        assert_eq!(h.len(), 16);
        assert!(h
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(h, sum.config_hash(1, 0));
    }

    #[test]
    fn node_digest_ignores_derived_shards() {
        let mut n = NodeStatus::new("n1", "h:1");
        let d = node_digest(&n);
        n.shards.push("s1".into());
        assert_eq!(d, node_digest(&n));
        n.labels.insert("k".into(), "v".into());
        assert_ne!(d, node_digest(&n));
    }
}
