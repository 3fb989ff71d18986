//! Building responses: the envelope, errors, topology headers, ETag, gzip.
//!
//! Every answer of the API goes through here so headers and error shapes are the
//! same on every route.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use serde::Serialize;

use concord_api::Envelope;

use crate::executor::ExecutorContext;
use crate::publish::{Encoded, Published};
use crate::service::{ErrorKind, ServiceError};

pub use super::body::Body;
/// Kept here for the benches, which measure the read path's compression.
pub use crate::net::gzip;

/// What the topology headers report: this server's view of version, term and leader.
#[derive(Clone, Copy, Debug)]
pub struct TopologyHeaders {
    pub version: u64,
    pub term: u64,
    /// 0 when this server knows no leader.
    pub leader: u64,
}

impl ExecutorContext {
    /// Topology headers for an answer built from `published`.
    pub fn headers_for(&self, published: &Published) -> TopologyHeaders {
        TopologyHeaders {
            version: published.version,
            term: self.shared.raft.term(),
            leader: self.shared.raft.leader(),
        }
    }

    /// Topology headers of this executor's current publication.
    pub fn current_headers(&self) -> TopologyHeaders {
        self.headers_for(&self.published.current())
    }
}

/// True when the client's Accept-Encoding admits gzip (and not with q=0).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let q_zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
}

/// The strong ETag of a version: `"<version>"`.
pub fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}

/// True when If-None-Match is `*` or lists an entity tag (weak or strong, quotes
/// kept) for which `is_current` holds.
pub fn if_none_match(headers: &HeaderMap, is_current: impl Fn(&str) -> bool) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || is_current(t))
}

/// True when If-None-Match names this version (or `*`).
pub fn not_modified(headers: &HeaderMap, version: u64) -> bool {
    if_none_match(headers, |t| {
        t.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .and_then(|t| t.parse::<u64>().ok())
            == Some(version)
    })
}

/// Header values of the current version, term and leader, made once per change on
/// each executor instead of once per response (they are on every answer).
struct HeaderCache {
    version: u64,
    etag: HeaderValue,
    version_value: HeaderValue,
    term: u64,
    term_value: HeaderValue,
    leader: u64,
    leader_value: HeaderValue,
}

impl HeaderCache {
    fn new() -> HeaderCache {
        HeaderCache {
            version: 0,
            etag: etag(0),
            version_value: HeaderValue::from(0u64),
            term: 0,
            term_value: HeaderValue::from(0u64),
            leader: 0,
            leader_value: HeaderValue::from(0u64),
        }
    }

    fn refresh(&mut self, topo: TopologyHeaders) {
        if self.version != topo.version {
            self.version = topo.version;
            self.etag = etag(topo.version);
            self.version_value = HeaderValue::from(topo.version);
        }
        if self.term != topo.term {
            self.term = topo.term;
            self.term_value = HeaderValue::from(topo.term);
        }
        if self.leader != topo.leader {
            self.leader = topo.leader;
            self.leader_value = HeaderValue::from(topo.leader);
        }
    }
}

thread_local! {
    static HEADERS: std::cell::RefCell<HeaderCache> = std::cell::RefCell::new(HeaderCache::new());
}

/// The version, term and leader headers (and, `with_etag`, the version's ETag).
pub fn add_topology_headers(headers: &mut HeaderMap, topo: TopologyHeaders, with_etag: bool) {
    HEADERS.with(|cache| {
        let mut cache = cache.borrow_mut();
        cache.refresh(topo);
        if with_etag {
            headers.insert(header::ETAG, cache.etag.clone());
        }
        headers.insert("x-topology-version", cache.version_value.clone());
        headers.insert("x-raft-term", cache.term_value.clone());
        headers.insert("x-raft-leader", cache.leader_value.clone());
    });
}

/// Options of one read answer.
pub struct ReadAnswer<'a> {
    pub topo: TopologyHeaders,
    pub request_headers: &'a HeaderMap,
    pub cache_control: &'a HeaderValue,
    pub allow_gzip: bool,
}

/// A 200 (or 304) carrying a pre-encoded JSON body of the given version.
pub fn read_ok(answer: &ReadAnswer<'_>, body: &Encoded) -> Response<Body> {
    let version = answer.topo.version;
    let mut response = if not_modified(answer.request_headers, version) {
        let mut r = Response::new(Body::empty());
        *r.headers_mut() = HeaderMap::with_capacity(12);
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if answer.allow_gzip && accepts_gzip(answer.request_headers) {
        let mut r = Response::new(Body::full(body.gzip().clone()));
        *r.headers_mut() = HeaderMap::with_capacity(12);
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        let mut r = Response::new(Body::full(body.identity.clone()));
        *r.headers_mut() = HeaderMap::with_capacity(12);
        r
    };
    let headers = response.headers_mut();
    if answer.allow_gzip {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    headers.insert(header::CACHE_CONTROL, answer.cache_control.clone());
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    add_topology_headers(headers, answer.topo, true);
    response
}

/// An error in the envelope: `{"success":false,"message":...,"version":...}`.
pub fn error(status: StatusCode, message: &str, topo: TopologyHeaders) -> Response<Body> {
    let body = serde_json::to_vec(&Envelope::error(message, topo.version))
        .expect("error bodies always serialize");
    json(status, body, topo)
}

/// The same, advising the client to retry in a second (`Retry-After: 1`).
pub fn retry_later(status: StatusCode, message: &str, topo: TopologyHeaders) -> Response<Body> {
    let mut answer = error(status, message, topo);
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1));
    answer
}

/// The HTTP status of a service error: the one place it is decided.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::NotLeader { .. } => StatusCode::MISDIRECTED_REQUEST,
        ErrorKind::NotLeaderHere
        | ErrorKind::NoLeader
        | ErrorKind::Timeout
        | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A service error as an answer: its status, its message, and its retry advice.
pub fn failure(e: &ServiceError, topo: TopologyHeaders) -> Response<Body> {
    let status = status_of(e.kind);
    if e.retry {
        retry_later(status, &e.message, topo)
    } else {
        error(status, &e.message, topo)
    }
}

/// A successful answer: `payload` in the envelope with `message` and `version`.
pub fn done<T: Serialize>(
    message: &str,
    version: u64,
    payload: T,
    topo: TopologyHeaders,
) -> Response<Body> {
    let body = serde_json::to_vec(&Envelope::done(message, version, payload))
        .expect("answers always serialize");
    json(StatusCode::OK, body, topo)
}

/// Any JSON answer (writes, stats, cluster status) with the topology headers.
pub fn json(status: StatusCode, body: Vec<u8>, topo: TopologyHeaders) -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    add_topology_headers(headers, topo, false);
    response
}

/// Plain text (metrics, probes).
pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn gzip_is_negotiated_by_accept_encoding() {
        assert!(accepts_gzip(&headers(&[("accept-encoding", "gzip")])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br, GZIP;q=0.5"
        )])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "*")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "br")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match_compares_versions() {
        assert!(not_modified(&headers(&[("if-none-match", "\"7\"")]), 7));
        assert!(not_modified(
            &headers(&[("if-none-match", "\"6\", W/\"7\"")]),
            7
        ));
        assert!(not_modified(&headers(&[("if-none-match", "*")]), 7));
        assert!(!not_modified(&headers(&[("if-none-match", "\"6\"")]), 7));
        assert!(!not_modified(&HeaderMap::new(), 7));
    }

    #[test]
    fn service_errors_get_one_status_each_and_retry_advice_becomes_retry_after() {
        assert_eq!(status_of(ErrorKind::BadRequest), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(ErrorKind::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_of(ErrorKind::Conflict), StatusCode::CONFLICT);
        assert_eq!(
            status_of(ErrorKind::NotLeader { leader: 2 }),
            StatusCode::MISDIRECTED_REQUEST
        );
        for kind in [
            ErrorKind::NoLeader,
            ErrorKind::Timeout,
            ErrorKind::Unavailable,
        ] {
            assert_eq!(status_of(kind), StatusCode::SERVICE_UNAVAILABLE);
        }
        let topo = TopologyHeaders {
            version: 4,
            term: 2,
            leader: 1,
        };
        let retry = failure(&ServiceError::no_leader("no leader"), topo);
        assert_eq!(retry.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.headers()[header::RETRY_AFTER], "1");
        assert_eq!(retry.headers()["x-topology-version"], "4");
        let unknown = failure(
            &ServiceError::write_timeout(std::time::Duration::from_secs(1)),
            topo,
        );
        assert!(unknown.headers().get(header::RETRY_AFTER).is_none());
    }
}
