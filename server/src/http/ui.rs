//! `GET /ui` and `/ui/{file}`: the live dashboard's static assets (`server/ui/`),
//! compiled into the binary with `include_bytes!`.
//!
//! Each asset's ETag (a digest of its bytes) and gzip form are made once per process,
//! on the first request for the dashboard, and then served from memory: the dashboard
//! costs the API's read path nothing. `Cache-Control: no-cache` makes a browser
//! revalidate (a 304 when nothing changed), so a new binary's assets are never mixed
//! with an old one's. The assets reveal no topology, so they need no token; the page
//! reads through the ordinary API routes with whatever token the operator gives it.

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use sha2::{Digest, Sha256};

use super::response::{self, accepts_gzip, if_none_match, Body, TopologyHeaders};

/// One file of `server/ui/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../ui/", $name)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every asset; the first is the page `/ui` itself.
static ASSETS: [Asset; 9] = [
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("topology.js", JS),
    asset!("feed.js", JS),
    asset!("ring.js", JS),
    asset!("panels.js", JS),
    asset!("sse.js", JS),
];

/// What the page may load: only this server (scripts, styles, API calls, the stream).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// An asset ready to serve: its bytes, gzipped bytes (when smaller) and ETag.
struct Prepared {
    identity: Bytes,
    gzip: Option<Bytes>,
    etag: HeaderValue,
}

static PREPARED: LazyLock<Vec<Prepared>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.bytes);
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            let gzip = crate::net::gzip(asset.bytes);
            Prepared {
                identity: Bytes::from_static(asset.bytes),
                gzip: (gzip.len() < asset.bytes.len()).then_some(gzip),
                etag: HeaderValue::from_str(&format!("\"ui-{hex}\"")).expect("hex is a header"),
            }
        })
        .collect()
});

/// The asset a path names: `None` (the page) or a file name under `/ui/`.
pub fn asset_index(file: Option<&str>) -> Option<usize> {
    match file {
        None | Some("") | Some("index.html") => Some(0),
        Some(name) => ASSETS.iter().position(|a| a.name == name),
    }
}

/// Serves asset `index` (from [`asset_index`]); 404 when the path named no asset.
pub fn handle(index: Option<usize>, request: &HeaderMap, topo: TopologyHeaders) -> Response<Body> {
    let Some(index) = index else {
        return response::error(StatusCode::NOT_FOUND, "no such dashboard file", topo);
    };
    let (asset, prepared) = (&ASSETS[index], &PREPARED[index]);
    let (status, body, gzipped) = if if_none_match(request, |t| {
        t.as_bytes() == prepared.etag.as_bytes()
    }) {
        (StatusCode::NOT_MODIFIED, Body::empty(), false)
    } else {
        match &prepared.gzip {
            Some(gzip) if accepts_gzip(request) => (StatusCode::OK, Body::full(gzip.clone()), true),
            _ => (StatusCode::OK, Body::full(prepared.identity.clone()), false),
        }
    };
    let mut answer = Response::new(body);
    *answer.status_mut() = status;
    let headers = answer.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::ETAG, prepared.etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if prepared.gzip.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if index == 0 {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPO: TopologyHeaders = TopologyHeaders {
        version: 1,
        term: 1,
        leader: 1,
    };

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn every_asset_is_found_by_name_and_the_page_by_the_bare_path() {
        assert_eq!(asset_index(None), Some(0));
        assert_eq!(asset_index(Some("index.html")), Some(0));
        for (i, asset) in ASSETS.iter().enumerate() {
            assert_eq!(asset_index(Some(asset.name)), Some(i), "{}", asset.name);
            assert!(!asset.bytes.is_empty(), "{} is empty", asset.name);
        }
        assert_eq!(asset_index(Some("../Cargo.toml")), None);
        assert_eq!(asset_index(Some("nope.js")), None);
    }

    #[test]
    fn scripts_are_javascript_and_the_page_is_html_with_a_policy() {
        let page = handle(Some(0), &HeaderMap::new(), TOPO);
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(page.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let app = handle(asset_index(Some("app.js")), &HeaderMap::new(), TOPO);
        assert_eq!(app.headers()[header::CONTENT_TYPE], JS);
        assert_eq!(app.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(app.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let missing = handle(None, &HeaderMap::new(), TOPO);
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_known_etag_is_answered_304_and_gzip_follows_accept_encoding() {
        let first = handle(Some(0), &HeaderMap::new(), TOPO);
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_string();
        assert!(etag.starts_with("\"ui-"), "{etag}");
        let again = handle(Some(0), &headers(&[("if-none-match", &etag)]), TOPO);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = handle(Some(0), &headers(&[("if-none-match", "\"ui-0\"")]), TOPO);
        assert_eq!(other.status(), StatusCode::OK);
        let zipped = handle(Some(0), &headers(&[("accept-encoding", "gzip")]), TOPO);
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(first.headers().get(header::CONTENT_ENCODING).is_none());
    }
}
