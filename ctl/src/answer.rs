//! Answers decoded through `concord-api`'s [`Envelope`]: the payload on success,
//! the server's own message as a refusal otherwise.

use concord_api::{Envelope, NoPayload};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{CtlError, Result};
use crate::transport::{Reply, Request, Transport};

/// A successful answer: the envelope with its payload, and the JSON as sent.
pub struct Answer<T> {
    pub envelope: Envelope<'static, T>,
    pub json: Value,
}

/// Sends `req` (with failover) and decodes a successful answer carrying `T`.
pub fn call<T: DeserializeOwned>(t: &Transport, req: &Request) -> Result<Answer<T>> {
    decode(&t.call(req)?)
}

pub fn decode<T: DeserializeOwned>(reply: &Reply) -> Result<Answer<T>> {
    if !(200..300).contains(&reply.status) {
        return Err(refusal(reply));
    }
    let json: Value = serde_json::from_slice(&reply.body)
        .map_err(|e| CtlError::refused(format!("the server's answer is not JSON ({e})")))?;
    let envelope: Envelope<'static, T> = serde_json::from_value(json.clone()).map_err(|e| {
        CtlError::refused(format!("the server's answer has an unexpected shape ({e})"))
    })?;
    if !envelope.success {
        return Err(CtlError::Refused {
            status: reply.status,
            message: envelope.message.into_owned(),
        });
    }
    Ok(Answer { envelope, json })
}

/// The server's message from an error answer (its body text when not an envelope).
pub fn refusal(reply: &Reply) -> CtlError {
    let message = match serde_json::from_slice::<Envelope<'static, NoPayload>>(&reply.body) {
        Ok(e) => e.message.into_owned(),
        Err(_) => String::from_utf8_lossy(&reply.body).trim().to_string(),
    };
    CtlError::Refused {
        status: reply.status,
        message: format!("{message} (HTTP {})", reply.status),
    }
}
