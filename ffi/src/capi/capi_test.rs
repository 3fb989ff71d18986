//! The C ABI's contract, exercised from Rust: NULL pointers, bad arguments, small
//! buffers and messages all give their documented codes, and outputs are left
//! untouched unless the call succeeds.

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};

use super::*;

const R: fn(concordkv_result) -> u32 = |r| r as u32;

fn message(code: u32) -> String {
    let mut buf = [0 as c_char; 256];
    let mut written = 0usize;
    assert_eq!(
        concordkv_result_message(code, buf.as_mut_ptr(), buf.len(), &mut written),
        concordkv_result::Ok
    );
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(text.len(), written);
    text
}

#[test]
fn every_code_has_a_distinct_message_and_unknown_codes_say_so() {
    let texts: std::collections::BTreeSet<String> = concordkv_result::ALL
        .iter()
        .map(|r| message(R(*r)))
        .collect();
    assert_eq!(texts.len(), concordkv_result::ALL.len());
    assert!(message(4242).contains("unknown result code 4242"));
    // The numbers are ABI: spot-check that nobody renumbered them.
    assert_eq!(R(concordkv_result::NullParameter), 1);
    assert_eq!(R(concordkv_result::BufferTooSmall), 5);
    assert_eq!(R(concordkv_result::ThreadFailed), 12);
}

#[test]
fn messages_truncate_to_the_buffer_and_reject_null() {
    let mut small = [0x7f as c_char; 8];
    let mut written = 99usize;
    let code = concordkv_result::NullParameter as u32;
    assert_eq!(
        concordkv_result_message(code, small.as_mut_ptr(), small.len(), &mut written),
        concordkv_result::Ok
    );
    assert_eq!(written, 7);
    assert_eq!(small[7], 0);
    assert_eq!(
        concordkv_result_message(0, null_mut(), 8, &mut written),
        concordkv_result::NullParameter
    );
    assert_eq!(
        concordkv_result_message(0, small.as_mut_ptr(), 0, &mut written),
        concordkv_result::BufferTooSmall
    );
}

#[test]
fn version_macros_match_the_package_version() {
    let v = format!(
        "{CONCORDKV_TOPOLOGY_VERSION_MAJOR}.{CONCORDKV_TOPOLOGY_VERSION_MINOR}.{CONCORDKV_TOPOLOGY_VERSION_PATCH}"
    );
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    let runtime = unsafe { CStr::from_ptr(concordkv_version()) };
    assert_eq!(runtime.to_str().unwrap(), v);
}

#[test]
fn key_hash_checks_its_arguments() {
    let mut h = 7u64;
    assert_eq!(
        concordkv_key_hash(null(), 3, &mut h),
        concordkv_result::NullParameter
    );
    assert_eq!(
        concordkv_key_hash(b"k".as_ptr(), 0, &mut h),
        concordkv_result::EmptyKey
    );
    assert_eq!(h, 7, "no output on failure");
    assert_eq!(
        concordkv_key_hash(b"k".as_ptr(), 1, &mut h),
        concordkv_result::Ok
    );
    assert_eq!(h, concord_model::key_hash(b"k"));
}

#[test]
fn options_refuse_bad_values_and_free_accepts_null() {
    concordkv_options_free(null_mut());
    concordkv_client_free(null_mut());
    assert_eq!(
        concordkv_options_new(null_mut()),
        concordkv_result::NullParameter
    );
    let mut o = null_mut();
    assert_eq!(concordkv_options_new(&mut o), concordkv_result::Ok);
    let add = |s: &CStr| concordkv_options_add_server(o, s.as_ptr());
    assert_eq!(add(c"ftp://h:1"), concordkv_result::InvalidServer);
    assert_eq!(add(c"h:99999"), concordkv_result::InvalidServer);
    assert_eq!(
        concordkv_options_add_server(o, null()),
        concordkv_result::NullParameter
    );
    assert_eq!(
        concordkv_options_set_timeouts(o, 0, 1000),
        concordkv_result::InvalidParameter
    );
    assert_eq!(
        concordkv_options_set_backoff(o, 10, 5),
        concordkv_result::InvalidParameter
    );
    assert_eq!(
        concordkv_options_set_consistency(o, 9),
        concordkv_result::InvalidParameter
    );
    assert_eq!(
        concordkv_options_set_auth_token(o, c"has space".as_ptr()),
        concordkv_result::InvalidParameter
    );
    // No server yet: a client cannot be made.
    let mut client = null_mut();
    assert_eq!(
        concordkv_client_new(o, &mut client),
        concordkv_result::InvalidServer
    );
    assert!(client.is_null(), "no output on failure");
    assert_eq!(add(c"127.0.0.1:1"), concordkv_result::Ok);
    assert_eq!(
        concordkv_options_set_consistency(o, 1),
        concordkv_result::Ok
    );
    assert_eq!(concordkv_client_new(o, &mut client), concordkv_result::Ok);
    concordkv_options_free(o);
    concordkv_client_free(client);
}

#[test]
fn an_unreachable_client_answers_not_ready_and_unreachable() {
    let mut o = null_mut();
    assert_eq!(concordkv_options_new(&mut o), concordkv_result::Ok);
    assert_eq!(
        concordkv_options_add_server(o, c"127.0.0.1:1".as_ptr()),
        concordkv_result::Ok
    );
    let mut client = null_mut();
    assert_eq!(concordkv_client_new(o, &mut client), concordkv_result::Ok);
    concordkv_options_free(o);

    let mut version = 55u64;
    assert_eq!(
        concordkv_client_wait_ready(client, 300, &mut version),
        concordkv_result::Unreachable
    );
    assert_eq!(version, 55, "no output on failure");
    let mut route = std::mem::MaybeUninit::<concordkv_route>::uninit();
    let mut bufs = concordkv_route_buffers {
        replicas: null_mut(),
        replicas_len: 0,
        strings: null_mut(),
        strings_len: 0,
        replicas_needed: 0,
        strings_needed: 0,
    };
    let key = b"k";
    assert_eq!(
        concordkv_client_route(client, key.as_ptr(), 1, &mut bufs, route.as_mut_ptr()),
        concordkv_result::NotReady
    );
    assert_eq!(
        concordkv_client_route(client, key.as_ptr(), 0, &mut bufs, route.as_mut_ptr()),
        concordkv_result::EmptyKey
    );
    assert_eq!(
        concordkv_client_route(client, null(), 1, &mut bufs, route.as_mut_ptr()),
        concordkv_result::NullParameter
    );
    assert_eq!(
        concordkv_client_route(null(), key.as_ptr(), 1, &mut bufs, route.as_mut_ptr()),
        concordkv_result::NullParameter
    );
    let mut needed = 0usize;
    let mut buf = [0 as c_char; 256];
    assert_eq!(
        concordkv_client_snapshot_json(client, buf.as_mut_ptr(), buf.len(), &mut needed),
        concordkv_result::NotReady
    );
    assert_eq!(
        concordkv_client_last_error(client, buf.as_mut_ptr(), buf.len(), &mut needed),
        concordkv_result::Ok
    );
    let err = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
    assert!(err.starts_with("127.0.0.1:1: connect"), "{err}");
    assert_eq!(
        concordkv_client_last_error(client, buf.as_mut_ptr(), 4, &mut needed),
        concordkv_result::BufferTooSmall
    );
    assert_eq!(needed, err.len());
    assert_eq!(
        concordkv_client_remove_listener(client, 12345),
        concordkv_result::NotFound
    );
    let mut scheduled = false;
    assert_eq!(
        concordkv_client_report_stale(client, null(), 1, &mut scheduled),
        concordkv_result::NullParameter
    );
    concordkv_client_free(client);
}
