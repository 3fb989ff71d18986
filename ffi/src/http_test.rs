//! Unit tests of the HTTP pieces that need no socket: address parsing and body decoding.

use super::*;

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
