//! The SSE parser on literal byte streams in the topology server's wire format,
//! split at every possible position.

use super::*;

fn all_events(p: &mut SseParser) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while let Some(e) = p.next_event().unwrap() {
        out.push(e);
    }
    out
}

/// Parses `wire` fed in pieces of `step` bytes.
fn parse_in_steps(wire: &[u8], step: usize) -> (Vec<SseEvent>, SseParser) {
    let mut p = SseParser::new(1 << 20);
    let mut out = Vec::new();
    for piece in wire.chunks(step) {
        p.feed(piece);
        out.extend(all_events(&mut p));
    }
    (out, p)
}

fn ev(event: &str, data: &str, id: Option<&str>) -> SseEvent {
    SseEvent {
        event: event.into(),
        data: data.as_bytes().to_vec(),
        id: id.map(str::to_string),
    }
}

/// A stream as `GET /api/topology/subscribe` sends it: the retry line, a change set
/// of two events (the id on the last), a keep-alive, a progress event.
const STREAM: &[u8] = b"retry: 1500\n\n\
event: ShardSplit\ndata: {\"type\":\"ShardSplit\",\"version\":8}\n\n\
event: ShardAdd\nid: 8\ndata: {\"type\":\"ShardAdd\",\"version\":8}\n\n\
: keep-alive\n\n\
event: Progress\nid: 8\ndata: {\"version\":8}\n\n";

#[test]
fn server_stream_parses_at_every_split() {
    let expected = vec![
        ev("ShardSplit", r#"{"type":"ShardSplit","version":8}"#, None),
        ev("ShardAdd", r#"{"type":"ShardAdd","version":8}"#, Some("8")),
        ev("Progress", r#"{"version":8}"#, Some("8")),
    ];
    for step in 1..=STREAM.len() {
        let (events, p) = parse_in_steps(STREAM, step);
        assert_eq!(events, expected, "step {step}");
        assert_eq!(p.retry(), Some(1500));
        assert_eq!(p.last_event_id(), "8");
        assert!(p.is_idle());
    }
}

#[test]
fn crlf_and_lone_cr_line_endings_work_even_split_between_cr_and_lf() {
    let crlf = b"event: NodeJoin\r\nid: 3\r\ndata: {}\r\n\r\n";
    let cr = b"event: NodeJoin\rid: 3\rdata: {}\r\r";
    for wire in [&crlf[..], &cr[..]] {
        for step in 1..=wire.len() {
            let (events, _) = parse_in_steps(wire, step);
            assert_eq!(events, vec![ev("NodeJoin", "{}", Some("3"))], "step {step}");
        }
    }
}

#[test]
fn multi_line_data_joins_with_newline_and_unknown_fields_are_ignored() {
    let wire = b"data: a\ndata:b\ndata\nfoo: bar\n\n";
    let (events, _) = parse_in_steps(wire, 4);
    assert_eq!(events, vec![ev("message", "a\nb\n", None)]);
}

#[test]
fn blocks_without_data_dispatch_nothing_but_keep_their_id() {
    let wire = b"id: 41\n\n: comment\n\nevent: X\n\n";
    let (events, p) = parse_in_steps(wire, 3);
    assert!(events.is_empty());
    assert_eq!(p.last_event_id(), "41");
}

#[test]
fn the_reset_block_carries_a_snapshot_and_its_version() {
    let wire = b"event: Reset\nid: 12\ndata: {\"version\":12,\"shardMap\":{}}\n\n";
    let (events, p) = parse_in_steps(wire, 7);
    assert_eq!(
        events,
        vec![ev("Reset", r#"{"version":12,"shardMap":{}}"#, Some("12"))]
    );
    assert_eq!(p.last_event_id(), "12");
}

#[test]
fn a_leading_byte_order_mark_is_skipped() {
    let wire = b"\xEF\xBB\xBFdata: x\n\n";
    for step in 1..=wire.len() {
        let (events, _) = parse_in_steps(wire, step);
        assert_eq!(events, vec![ev("message", "x", None)], "step {step}");
    }
}

#[test]
fn bad_retry_values_and_ids_with_nul_are_ignored() {
    let wire = b"retry: 10x\nid: a\0b\ndata: y\n\n";
    let (events, p) = parse_in_steps(wire, 5);
    assert_eq!(events, vec![ev("message", "y", None)]);
    assert_eq!(p.retry(), None);
    assert_eq!(p.last_event_id(), "");
}

#[test]
fn an_oversized_event_is_an_error_not_unbounded_memory() {
    let mut p = SseParser::new(16);
    p.feed(b"data: 0123456789\ndata: 0123456789\n\n");
    assert_eq!(p.next_event(), Err(SseError::TooLarge { limit: 16 }));
    let mut p = SseParser::new(16);
    p.feed(&[b'a'; 64]); // no line end at all
    assert_eq!(p.next_event(), Err(SseError::TooLarge { limit: 16 }));
}

/// Found by the fuzz target: a long non-data line was refused when it arrived in
/// pieces but accepted when it arrived whole.
#[test]
fn a_line_over_the_limit_is_refused_however_it_arrives() {
    let wire = b"event: 0123456789abcdef\ndata: x\n\n";
    for step in 1..=wire.len() {
        let mut p = SseParser::new(16);
        let mut got = Ok(None);
        for piece in wire.chunks(step) {
            p.feed(piece);
            got = p.next_event();
            if got.is_err() {
                break;
            }
        }
        assert_eq!(got, Err(SseError::TooLarge { limit: 16 }), "step {step}");
    }
}

/// Found by the fuzz target: with a limit under 3 bytes, a byte order mark arriving
/// byte by byte counted as an oversized line.
#[test]
fn a_byte_order_mark_arriving_in_pieces_is_not_a_line() {
    let wire = b"\xEF\xBB\xBF\n";
    for step in 1..=wire.len() {
        let mut p = SseParser::new(0);
        for piece in wire.chunks(step) {
            p.feed(piece);
            assert_eq!(p.next_event(), Ok(None), "step {step}");
        }
        assert!(p.is_idle());
    }
}

#[test]
fn a_partial_block_is_held_until_its_blank_line() {
    let mut p = SseParser::new(1024);
    p.feed(b"event: NodeLeave\ndata: {}\n");
    assert_eq!(p.next_event().unwrap(), None);
    assert!(!p.is_idle());
    p.feed(b"\n");
    assert_eq!(p.next_event().unwrap(), Some(ev("NodeLeave", "{}", None)));
}
