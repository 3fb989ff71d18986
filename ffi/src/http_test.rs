//! Unit tests of the HTTP pieces that need no peer: address parsing, head parsing
//! and body decoding.

use std::net::TcpListener;

use super::*;

/// A connection to a listener on loopback whose socket is never read: tests put the
/// received bytes in its buffer directly.
pub(super) fn idle_conn() -> Conn {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    Conn {
        stream: Transport::Plain(stream),
        buf: Vec::new(),
        pos: 0,
    }
}

#[test]
fn endpoints_parse_with_and_without_scheme_and_port() {
    let ok = |s: &str| Endpoint::parse(s).unwrap().authority;
    assert_eq!(ok("127.0.0.1:7000"), "127.0.0.1:7000");
    assert_eq!(ok("http://topo-1.example:8080/"), "topo-1.example:8080");
    assert_eq!(ok("topo-2"), "topo-2:7070");
    assert_eq!(ok("[::1]:7071"), "[::1]:7071");
    assert_eq!(ok("[::1]"), "[::1]:7070");
    for bad in [
        "",
        "ftp://a:1",
        "a:0",
        "a:x",
        "a:1/path",
        "::1",
        "a b:1",
        "[::1",
    ] {
        assert!(Endpoint::parse(bad).is_err(), "{bad:?} should be refused");
    }
    // https:// is the only other scheme the client speaks.
    assert!(Endpoint::parse("ftp://a:1").unwrap_err().contains("ftp"));
}

#[test]
fn https_endpoints_default_to_port_443_and_name_the_host_for_tls() {
    let tls = Endpoint::parse("https://topo-1.example:8443/").unwrap();
    assert_eq!(tls.authority, "topo-1.example:8443");
    assert_eq!(tls.host, "topo-1.example");
    assert!(tls.tls);
    assert_eq!(
        Endpoint::parse("https://topo-1.example").unwrap().authority,
        "topo-1.example:443"
    );
    let v6 = Endpoint::parse("https://[::1]:7443").unwrap();
    assert_eq!((v6.host.as_str(), v6.tls), ("[::1]", true));
    assert!(tls::server_name(&v6.host).is_ok());
    for plain in ["http://h:1", "h:1", "h"] {
        assert!(!Endpoint::parse(plain).unwrap().tls, "{plain}");
    }
    assert!(Endpoint::parse("https://bad_name!:1").is_err());
}

/// Decodes `wire` fed in pieces of `step` bytes, as a socket may deliver it.
fn decode_in_steps(kind: BodyKind, wire: &[u8], step: usize) -> (Vec<u8>, bool) {
    let mut d = BodyDecoder::new(&kind);
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for piece in wire.chunks(step) {
        pending.extend_from_slice(piece);
        let used = d.decode(&pending, &mut out).unwrap();
        pending.drain(..used);
    }
    (out, d.is_done())
}

#[test]
fn chunked_bodies_decode_whatever_the_split() {
    let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";
    for step in 1..wire.len() {
        let (out, done) = decode_in_steps(BodyKind::Chunked, wire, step);
        assert_eq!(out, b"hello, world", "step {step}");
        assert!(done, "step {step}");
    }
}

#[test]
fn chunked_stream_is_not_done_until_the_last_chunk() {
    let (out, done) = decode_in_steps(BodyKind::Chunked, b"3\r\nabc\r\n4\r\nde", 3);
    assert_eq!(out, b"abcde");
    assert!(!done);
}

#[test]
fn bad_chunk_framing_is_an_error() {
    let mut d = BodyDecoder::new(&BodyKind::Chunked);
    assert!(d.decode(b"zz\r\n", &mut Vec::new()).is_err());
    let mut d = BodyDecoder::new(&BodyKind::Chunked);
    assert!(d.decode(b"2\r\nabXY\r\n", &mut Vec::new()).is_err());
}

#[test]
fn length_bodies_stop_at_their_length() {
    let mut d = BodyDecoder::new(&BodyKind::Length(4));
    let mut out = Vec::new();
    assert_eq!(d.decode(b"abcdef", &mut out).unwrap(), 4);
    assert_eq!(out, b"abcd");
    assert!(d.is_done());
    assert!(BodyDecoder::new(&BodyKind::Length(0)).is_done());
}

/// Found by the fuzz target: after a chunk's data and in the trailer, bytes without a
/// line end were buffered without bound; a framing line over 1 KiB is now refused,
/// however the socket splits it.
#[test]
fn chunked_framing_lines_over_1_kib_are_refused_however_they_arrive() {
    let long = vec![b'x'; 2000];
    let after_data = [&b"5\r\nhello"[..], &long].concat();
    let in_trailer = [&b"0\r\n"[..], &long].concat();
    let long_extension = [&b"5;"[..], &long, b"\r\nhello\r\n0\r\n\r\n"].concat();
    for wire in [after_data, in_trailer, long_extension] {
        for step in [1, 7, 1000, wire.len()] {
            let mut d = BodyDecoder::new(&BodyKind::Chunked);
            let mut pending = Vec::new();
            let mut failed = false;
            for piece in wire.chunks(step) {
                pending.extend_from_slice(piece);
                match d.decode(&pending, &mut Vec::new()) {
                    Ok(used) => drop(pending.drain(..used)),
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
                assert!(
                    pending.len() <= 1024,
                    "step {step}: {} buffered",
                    pending.len()
                );
            }
            assert!(failed, "step {step}");
        }
    }
}

/// Found by the fuzz target: a head over 64 KiB was refused when it arrived in pieces
/// but accepted when it arrived in one read.
#[test]
fn a_response_head_over_64_kib_is_refused_however_it_arrives() {
    let value = "v".repeat(MAX_HEAD);
    let wire = format!("HTTP/1.1 200 OK\r\nX-Long: {value}\r\nContent-Length: 0\r\n\r\n");
    for step in [1000, 16 * 1024, wire.len()] {
        let mut conn = idle_conn();
        let mut got = Ok(None);
        for piece in wire.as_bytes().chunks(step) {
            conn.buf.extend_from_slice(piece);
            got = conn.take_head();
            if !matches!(got, Ok(None)) {
                break;
            }
        }
        let err = got.expect_err("refused");
        assert!(err.to_string().contains("64 KiB"), "step {step}: {err}");
    }
}
