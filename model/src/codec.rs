//! Serde glue that lets the JSON-shaped wire types travel through binary formats.
//!
//! The contract forms use serde features that only self-describing formats support
//! (the internally tagged `Operation`, the untagged `EntityValue`, skipped `None`
//! fields). postcard or bincode would fail on them at run time, and the server stores
//! Raft entries and snapshots with postcard. So the types that use them, and those
//! that contain them (`Command`, `Operation`, `TopologyEvent`, `EntityValue`,
//! `ShardInfo`, `NodeStatus`, `TopologySnapshot`, `TopologyState`), serialize as their
//! JSON text, as one byte string, whenever the format is not human readable. In JSON
//! (and any human-readable format) nothing changes; nested values are plain JSON.

use std::fmt;

use serde::de;

/// Implements `Serialize`/`Deserialize` for a type whose derive used
/// `#[serde(remote = "Self")]` (which leaves the derived code as inherent functions).
macro_rules! json_in_binary {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    <$ty>::serialize(self, s)
                } else {
                    $crate::codec::serialize_as_json(self, s)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    <$ty>::deserialize(d)
                } else {
                    $crate::codec::deserialize_from_json(d)
                }
            }
        }
    };
}
pub(crate) use json_in_binary;

/// Writes `value` as one byte string holding its JSON text.
pub(crate) fn serialize_as_json<T, S>(value: &T, s: S) -> Result<S::Ok, S::Error>
where
    T: serde::Serialize,
    S: serde::Serializer,
{
    let json = serde_json::to_vec(value).map_err(serde::ser::Error::custom)?;
    s.serialize_bytes(&json)
}

/// Reads what [`serialize_as_json`] wrote.
pub(crate) fn deserialize_from_json<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: serde::de::DeserializeOwned,
    D: serde::Deserializer<'de>,
{
    let bytes = d.deserialize_byte_buf(BytesVisitor)?;
    serde_json::from_slice(&bytes).map_err(de::Error::custom)
}

struct BytesVisitor;

impl<'de> de::Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string holding JSON")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        Ok(v)
    }

    // Formats without a bytes type write a sequence of u8.
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}
