use super::*;
use crate::types::KeyRange;

#[test]
fn key_hash_is_the_first_8_bytes_of_sha256_big_endian() {
    // SHA-256("") = e3b0c44298fc1c14 9afbf4c8...
    assert_eq!(key_hash(b""), 0xe3b0_c442_98fc_1c14);
    // SHA-256("hello") = 2cf24dba5fb0a30e 26e83b2a...
    assert_eq!(key_hash(b"hello"), 0x2cf2_4dba_5fb0_a30e);
}

#[test]
fn parses_the_extremes_and_prints_them_back() {
    for (s, v) in [
        ("0000000000000000", 0),
        ("ffffffffffffffff", u64::MAX),
        ("8000000000000000", 1 << 63),
        ("00000000000000ff", 255),
        ("0123456789abcdef", 0x0123_4567_89ab_cdef),
    ] {
        let p = HashPoint::parse_hex(s).unwrap();
        assert_eq!(p, HashPoint(v));
        assert_eq!(p.to_string(), s);
        assert_eq!(p.to_hex(), s);
        assert_eq!(s.parse::<HashPoint>().unwrap(), p);
    }
}

#[test]
fn refuses_bad_hex_and_says_why() {
    let cases = [
        ("", "exactly 16"),
        ("fffffffffffffff", "got 15"),
        ("00000000000000000", "got 17"),
        ("FFFFFFFFFFFFFFFF", "upper-case"),
        (
            "00000000000000Ab",
            "upper-case hex digit 'A' at position 14",
        ),
        ("000000000000000g", "invalid character 'g' at position 15"),
        ("0x00000000000000", "invalid character 'x'"),
        (" 000000000000000", "invalid character ' '"),
        ("-000000000000001", "invalid character '-'"),
        ("00000000000000é", "invalid character 'é'"),
    ];
    for (s, want) in cases {
        let e = HashPoint::parse_hex(s).unwrap_err().to_string();
        assert!(e.contains(want), "{s:?}: {e}");
    }
}

#[test]
fn long_input_is_shortened_in_messages() {
    let s = "z".repeat(1000);
    let e = HashPoint::parse_hex(&s).unwrap_err().to_string();
    assert!(e.len() < 200, "{e}");
}

#[test]
fn serde_form_is_a_hex_string() {
    assert_eq!(
        serde_json::to_string(&HashPoint(255)).unwrap(),
        "\"00000000000000ff\""
    );
    let p: HashPoint = serde_json::from_str("\"ffffffffffffffff\"").unwrap();
    assert_eq!(p, HashPoint::MAX);
    for bad in ["5", "\"\"", "\"FFFFFFFFFFFFFFFF\"", "null", "\"123\""] {
        assert!(serde_json::from_str::<HashPoint>(bad).is_err(), "{bad}");
    }
    let e = serde_json::from_str::<HashPoint>("\"ABCDEF0123456789\"").unwrap_err();
    assert!(e.to_string().contains("upper-case"), "{e}");
}

#[test]
fn range_end_empty_string_is_the_end_of_the_space() {
    let r: KeyRange = serde_json::from_str(r#"{"start":"8000000000000000","end":""}"#).unwrap();
    assert_eq!(r, KeyRange::new(1 << 63, None));
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        r#"{"start":"8000000000000000","end":""}"#
    );
    let r: KeyRange =
        serde_json::from_str(r#"{"start":"0000000000000000","end":"ffffffffffffffff"}"#).unwrap();
    assert_eq!(r.end, Some(HashPoint::MAX));
    assert!(!r.contains(u64::MAX), "end is exclusive");
    assert!(
        KeyRange::full().contains(u64::MAX),
        "\"\" gives 2^64-1 an owner"
    );
    // An empty start is not a point; end must be a string too.
    for bad in [
        r#"{"start":"","end":""}"#,
        r#"{"start":"0000000000000000","end":null}"#,
        r#"{"start":"0000000000000000"}"#,
        r#"{"start":"0000000000000000","end":"ff"}"#,
        r#"{"start":"0000000000000000","end":"","extra":1}"#,
    ] {
        assert!(serde_json::from_str::<KeyRange>(bad).is_err(), "{bad}");
    }
}

#[test]
fn key_range_arithmetic() {
    let full = KeyRange::full();
    assert_eq!(full.width(), 1u128 << 64);
    assert!(!full.is_empty());
    assert!(KeyRange::new(5, Some(5)).is_empty());
    assert!(KeyRange::new(6, Some(5)).is_empty());
    let r = KeyRange::new(10, Some(20));
    assert!(r.contains(10) && r.contains(19) && !r.contains(20) && !r.contains(9));
    assert_eq!(r.to_string(), "[000000000000000a, 0000000000000014)");
    assert_eq!(
        KeyRange::new(0, None).to_string(),
        "[0000000000000000, end of space)"
    );
}
