//! The envelope of every JSON answer: `{"success", "message", "version", ...payload}`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// One answer: whether it succeeded, a human-readable message, the topology version
/// it was made at, and the route's payload fields flattened beside them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<'a, T> {
    pub success: bool,
    #[serde(default)]
    pub message: Cow<'a, str>,
    #[serde(default)]
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
    }
}
