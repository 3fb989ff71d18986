//! A blocking HTTP/1.1 client for tests and the harness' set-up: one request per
//! connection (`Connection: close`), read to the end, so a test can also send any
//! bytes it likes (malformed heads, garbage) and read whatever comes back.
//!
//! Response heads and bodies (chunked included) are decoded by the client library's
//! own HTTP code (`concordkv_topology::http`), not by a copy of it here.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use concordkv_topology::http::{parse_head, BodyDecoder};

/// For fake servers (data nodes, scripted topology servers): one request head, read
/// without consuming what follows it.
pub use concordkv_topology::testkit::read_request_head;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What [`raw_exchange`] allows each read and write.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Headers as sent (hyper sends lower-case names; look them up with [`Response::header`]).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the status and body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): status {} body {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as JSON, or `None` (for callers that treat junk as "no answer").
    pub fn try_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path`, 30 s allowed for each read and write.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    try_request(addr, "GET", path, &[], b"")
}

/// One exchange; panics naming the request when it fails.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} failed: {e}"))
}

/// One exchange, 30 s allowed for each read and write.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    request_within(addr, method, path, headers, body, EXCHANGE_TIMEOUT)
}

/// One exchange with `limit` on each read and write.
pub fn request_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> io::Result<Response> {
    raw_exchange_within(
        addr,
        &request_bytes(addr, method, path, headers, body),
        limit,
    )
}

/// The bytes of one `Connection: close` request.
pub fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// Sends `raw` bytes as they are and parses whatever comes back.
pub fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> io::Result<Response> {
    raw_exchange_within(addr, raw, EXCHANGE_TIMEOUT)
}

/// [`raw_exchange`] with `limit` on each read and write.
pub fn raw_exchange_within(addr: SocketAddr, raw: &[u8], limit: Duration) -> io::Result<Response> {
    parse_response(&exchange_bytes(addr, raw, limit)?)
}

/// Sends `raw` and returns every byte the server sent until it closed (the request
/// should say `Connection: close`), unparsed: for recording an answer to replay.
pub fn exchange_bytes(addr: SocketAddr, raw: &[u8], limit: Duration) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    stream.write_all(raw)?;
    let mut data = Vec::new();
    stream.read_to_end(&mut data)?;
    Ok(data)
}

/// Parses one whole response (head and body, the connection read to its end).
///
/// A body shorter than its head announces is returned as far as it goes: the answer
/// to a `HEAD` request has a `Content-Length` and no body.
pub fn parse_response(data: &[u8]) -> io::Result<Response> {
    let mut headers = Vec::new();
    let (head, used) = parse_head(data, |k, v| headers.push((k.to_string(), v.to_string())))?
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no end of response head"))?;
    let mut body = Vec::new();
    BodyDecoder::new(&head.body).decode(&data[used..], &mut body)?;
    Ok(Response {
        status: head.status,
        headers,
        body,
    })
}

/// Parses consecutive whole responses (the answers to pipelined requests, none of
/// them to a `HEAD`), in the order they came; an error for a cut-off last one.
pub fn parse_responses(mut data: &[u8]) -> io::Result<Vec<Response>> {
    let mut responses = Vec::new();
    while !data.is_empty() {
        let mut headers = Vec::new();
        let (head, used) = parse_head(data, |k, v| headers.push((k.to_string(), v.to_string())))?
            .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "a cut-off response head")
        })?;
        let mut decoder = BodyDecoder::new(&head.body);
        let mut body = Vec::new();
        let body_used = decoder.decode(&data[used..], &mut body)?;
        if !decoder.is_done() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a cut-off response body",
            ));
        }
        responses.push(Response {
            status: head.status,
            headers,
            body,
        });
        data = &data[used + body_used..];
    }
    Ok(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded_and_headers_kept() {
        let wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nX-Tag: a\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n";
        let r = parse_response(wire).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"abcde");
        assert_eq!(r.header("x-tag"), Some("a"));
    }

    #[test]
    fn a_short_body_is_returned_as_far_as_it_goes() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc").unwrap();
        assert_eq!(r.body, b"abc");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn requests_carry_a_length_only_when_they_have_a_body() {
        let addr = crate::ports::loopback(1);
        let get = request_bytes(addr, "GET", "/x", &[("A", "b")], b"");
        assert_eq!(
            get,
            b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:1\r\nConnection: close\r\nA: b\r\n\r\n"
        );
        let put = request_bytes(addr, "PUT", "/x", &[], b"");
        assert!(String::from_utf8(put)
            .unwrap()
            .contains("Content-Length: 0\r\n"));
    }
}
