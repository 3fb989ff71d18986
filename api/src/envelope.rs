//! The envelope of every JSON answer: `{"success", "message", "version", ...payload}`.
//!
//! Serialized with serde's `flatten` (streaming); deserialized by hand, because
//! `flatten` on the way in buffers the whole answer first, which doubles the time a
//! client spends on a multi-megabyte snapshot. Here the payload reads the answer's
//! object directly and only the three envelope keys are taken out on the way.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// One answer: whether it succeeded, a human-readable message, the topology version
/// it was made at, and the route's payload fields flattened beside them. `message`
/// and `version` default to empty and 0 when an answer lacks them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Envelope<'a, T> {
    pub success: bool,
    pub message: Cow<'a, str>,
    pub version: u64,
    #[serde(flatten)]
    pub payload: T,
}

/// The payload of answers that carry only the envelope (writes, errors).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoPayload {}

impl<'a, T> Envelope<'a, T> {
    /// A successful answer with the message `ok`.
    pub fn ok(version: u64, payload: T) -> Self {
        Envelope {
            success: true,
            message: Cow::Borrowed("ok"),
            version,
            payload,
        }
    }

    /// A successful answer with its own message.
    pub fn done(message: &'a str, version: u64, payload: T) -> Self {
        Envelope {
            success: true,
            message: Cow::Borrowed(message),
            version,
            payload,
        }
    }
}

impl<'a> Envelope<'a, NoPayload> {
    /// A refusal: `success` false, the reason in `message`.
    pub fn error(message: &'a str, version: u64) -> Self {
        Envelope {
            success: false,
            message: Cow::Borrowed(message),
            version,
            payload: NoPayload {},
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Envelope<'_, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor(PhantomData))
    }
}

struct EnvelopeVisitor<T>(PhantomData<T>);

impl<'de, 'a, T: Deserialize<'de>> Visitor<'de> for EnvelopeVisitor<Envelope<'a, T>> {
    type Value = Envelope<'a, T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an answer envelope (a JSON object with `success`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let mut head = Head::default();
        let payload = T::deserialize(MapAccessDeserializer::new(WithoutHead {
            map,
            head: &mut head,
        }))?;
        Ok(Envelope {
            success: head
                .success
                .ok_or_else(|| de::Error::missing_field("success"))?,
            message: Cow::Owned(head.message.unwrap_or_default()),
            version: head.version.unwrap_or(0),
            payload,
        })
    }
}

/// The envelope's own fields, as they are met in the answer.
#[derive(Default)]
struct Head {
    success: Option<bool>,
    message: Option<String>,
    version: Option<u64>,
}

/// The answer's object without the envelope's keys, which it stores in `head`.
struct WithoutHead<'h, A> {
    map: A,
    head: &'h mut Head,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithoutHead<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(key) = self.map.next_key::<String>()? {
            match key.as_str() {
                "success" => self.head.success = Some(self.map.next_value()?),
                "message" => self.head.message = Some(self.map.next_value()?),
                "version" => self.head.version = Some(self.map.next_value()?),
                _ => return seed.deserialize(key.into_deserializer()).map(Some),
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VersionInfo;

    #[test]
    fn payload_fields_sit_beside_the_envelope_fields() {
        let answer = Envelope::ok(
            7,
            VersionInfo {
                config_hash: "abc".into(),
                timestamp: 9,
            },
        );
        let text = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            text,
            r#"{"success":true,"message":"ok","version":7,"configHash":"abc","timestamp":9}"#
        );
        let back: Envelope<VersionInfo> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, answer);
        let error = serde_json::to_string(&Envelope::error("nope", 3)).unwrap();
        assert_eq!(error, r#"{"success":false,"message":"nope","version":3}"#);
        let back: Envelope<NoPayload> = serde_json::from_str(&error).unwrap();
        assert_eq!(back, Envelope::error("nope", 3));
    }

    #[test]
    fn the_payload_sees_every_key_but_the_envelope_s() {
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Strict {
            a: u32,
        }
        let ok: Envelope<Strict> =
            serde_json::from_str(r#"{"a":1,"success":true,"version":2}"#).unwrap();
        assert_eq!((ok.payload.a, ok.version, ok.message.as_ref()), (1, 2, ""));
        assert!(
            serde_json::from_str::<Envelope<Strict>>(r#"{"success":true,"a":1,"b":2}"#)
                .unwrap_err()
                .to_string()
                .contains("b")
        );
        assert!(
            serde_json::from_str::<Envelope<NoPayload>>(r#"{"version":2}"#)
                .unwrap_err()
                .to_string()
                .contains("success")
        );
    }
}
