//! The request checks: the credential's scope (every route that needs one, asked by
//! the router before any handler runs), and the one extractor of the routes that
//! change something (writes, membership changes, health rounds): the query string
//! checked against the route's allowed keys, then the body, read under
//! `max_body_bytes` and parsed as strict JSON whose errors name the offending field's
//! path.
//!
//! Every refusal is already the answer to send (`Err(Response)`).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use super::query::Query;
use super::response::{self, Body, TopologyHeaders};
use crate::executor::ExecutorContext;
use crate::net::bearer::{Grant, Scope};
use crate::net::{self, BodyError};

/// Refuses a request whose credential does not grant `needed`: 401 when it presented
/// no valid token, 403 when its valid token grants a weaker scope.
pub fn require(grant: Grant, needed: Scope, topo: TopologyHeaders) -> Result<(), Response<Body>> {
    if grant.allows(needed) {
        return Ok(());
    }
    let needed = needed.as_str();
    let (status, message, challenge) = match grant.scope {
        Some(held) if grant.authenticated => (
            StatusCode::FORBIDDEN,
            format!(
                "this needs a token with the {needed} scope; the token presented grants only {}",
                held.as_str()
            ),
            "Bearer error=\"insufficient_scope\"",
        ),
        _ => (
            StatusCode::UNAUTHORIZED,
            format!(
                "this needs a token with the {needed} scope: send an `Authorization: Bearer <token>` header with a configured token"
            ),
            "Bearer",
        ),
    };
    let mut answer = response::error(status, &message, topo);
    answer.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    Err(answer)
}

/// A request that passed the query check; its body is not read yet.
pub struct Checked<'c> {
    ctx: &'c ExecutorContext,
    request: Request<Incoming>,
    pub query: Query,
    pub topo: TopologyHeaders,
}

/// Parses the query string, refusing keys not in `allowed` (the credential was
/// checked by the router).
pub fn check<'c>(
    request: Request<Incoming>,
    ctx: &'c ExecutorContext,
    allowed: &[&str],
) -> Result<Checked<'c>, Response<Body>> {
    let topo = ctx.current_headers();
    let query = Query::parse(request.uri().query(), allowed)
        .map_err(|message| response::error(StatusCode::BAD_REQUEST, &message, topo))?;
    Ok(Checked {
        ctx,
        request,
        query,
        topo,
    })
}

impl Checked<'_> {
    pub fn headers(&self) -> &HeaderMap {
        self.request.headers()
    }

    /// A 400 (or any status) in the envelope, with this request's topology headers.
    pub fn fail(&self, status: StatusCode, message: &str) -> Response<Body> {
        response::error(status, message, self.topo)
    }

    /// The whole body, bounded by `http.max_body_bytes` and `http.body_read_timeout`.
    pub async fn body(self) -> Result<Bytes, Response<Body>> {
        let http = &self.ctx.shared.config.http;
        let topo = self.topo;
        net::read_body(
            self.request.into_body(),
            http.max_body_bytes,
            http.body_read_timeout,
        )
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { limit } => response::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the request body exceeds the limit of {limit} bytes"),
                topo,
            ),
            BodyError::TimedOut { after } => response::error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request body did not arrive within {after:?} (http.body_read_timeout)"
                ),
                topo,
            ),
            BodyError::Unreadable(why) => response::error(
                StatusCode::BAD_REQUEST,
                &format!("the request body could not be read: {why}"),
                topo,
            ),
        })
    }

    /// The body parsed as a required JSON object of type `T`.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, Response<Body>> {
        let topo = self.topo;
        let mut body = self.body().await?.to_vec();
        required(&mut body)
            .and_then(|body| parse(body))
            .map_err(|message| response::error(StatusCode::BAD_REQUEST, &message, topo))
    }
}

/// Parses a JSON body with simd-json; errors name the field path.
pub fn parse<T: DeserializeOwned>(body: &mut [u8]) -> Result<T, String> {
    let mut de = simd_json::Deserializer::from_slice(body)
        .map_err(|e| format!("malformed JSON body: {e}"))?;
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("invalid body: {}", e.inner())
        } else {
            format!("invalid body: field `{path}`: {}", e.inner())
        }
    })
}

/// Like [`parse`], but an empty body means `T::default()`.
pub fn parse_optional<T: DeserializeOwned + Default>(body: &mut [u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse(body)
    }
}

/// The body, unless it is empty (routes that need a JSON object).
pub fn required(body: &mut [u8]) -> Result<&mut [u8], String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Err("the request body is empty; a JSON object is required".into())
    } else {
        Ok(body)
    }
}
