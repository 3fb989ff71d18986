//! The key hash space: [`key_hash`] (the routing hash every client must compute the
//! same way) and [`HashPoint`], a coordinate in that space with its wire form, a
//! 16-digit lower-case hex string.

use std::fmt;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The name of the routing hash, reported as `hashFunction` in snapshots.
pub const HASH_FUNCTION: &str = "sha256-be64";

/// The routing hash of a key: the first 8 bytes of SHA-256(key), big-endian.
pub fn key_hash(key: &[u8]) -> u64 {
    let digest = Sha256::digest(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A point of the 64-bit hash space. On the wire: exactly 16 lower-case hex digits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashPoint(pub u64);

/// Why a string is not a [`HashPoint`]; the message says what is wrong and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseHashPointError(String);

impl HashPoint {
    pub const MIN: HashPoint = HashPoint(0);
    pub const MAX: HashPoint = HashPoint(u64::MAX);

    /// Parses exactly 16 lower-case hex digits. Upper case is refused so that every
    /// point has one spelling (ranges are compared and hashed as strings by some tools).
    pub fn parse_hex(s: &str) -> Result<HashPoint, ParseHashPointError> {
        let fail = |detail: String| Err(ParseHashPointError(detail));
        for (pos, c) in s.chars().enumerate() {
            match c {
                '0'..='9' | 'a'..='f' => {}
                'A'..='F' => {
                    return fail(format!(
                        "upper-case hex digit {c:?} at position {pos} in {}; use lower case",
                        shown(s)
                    ))
                }
                _ => {
                    return fail(format!(
                        "invalid character {c:?} at position {pos} in {}; expected lower-case hex digits",
                        shown(s)
                    ))
                }
            }
        }
        if s.len() != 16 {
            return fail(format!(
                "expected exactly 16 lower-case hex digits, got {} in {}",
                s.len(),
                shown(s)
            ));
        }
        // Only [0-9a-f] remain, so this cannot fail.
        u64::from_str_radix(s, 16)
            .map(HashPoint)
            .or_else(|e| fail(e.to_string()))
    }

    pub fn to_hex(self) -> String {
        self.to_string()
    }
}

/// Quotes (a bounded prefix of) user input for an error message.
fn shown(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

impl fmt::Display for HashPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for HashPoint {
    type Err = ParseHashPointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HashPoint::parse_hex(s)
    }
}

impl From<u64> for HashPoint {
    fn from(v: u64) -> Self {
        HashPoint(v)
    }
}

impl Serialize for HashPoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HashPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(HexVisitor { allow_empty: false })
            .map(|p| p.expect("empty refused"))
    }
}

/// Reads a hex point; with `allow_empty`, "" reads as `None` (the end of the space).
struct HexVisitor {
    allow_empty: bool,
}

impl de::Visitor<'_> for HexVisitor {
    type Value = Option<HashPoint>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.allow_empty {
            f.write_str("16 lower-case hex digits, or \"\" for the end of the hash space")
        } else {
            f.write_str("16 lower-case hex digits")
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v.is_empty() && self.allow_empty {
            return Ok(None);
        }
        HashPoint::parse_hex(v).map(Some).map_err(E::custom)
    }
}

/// Serde for a range end: `None` (the end of the space) is the empty string.
pub(crate) mod range_end {
    use super::*;

    pub fn serialize<S: Serializer>(end: &Option<HashPoint>, s: S) -> Result<S::Ok, S::Error> {
        match end {
            Some(p) => p.serialize(s),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HashPoint>, D::Error> {
        d.deserialize_str(HexVisitor { allow_empty: true })
    }
}

#[cfg(test)]
#[path = "hash_test.rs"]
mod tests;
