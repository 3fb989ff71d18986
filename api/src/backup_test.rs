use concord_model::sample;

use super::*;

fn file() -> (TopologyState, Vec<u8>) {
    let state = sample::bootstrapped(3, 8, 64);
    let bytes = encode(&state);
    (state, bytes)
}

#[test]
fn a_backup_round_trips_with_its_history() {
    let (state, bytes) = file();
    let (header, back) = decode(&bytes).expect("decodes");
    assert_eq!(header.format_version, FORMAT_VERSION);
    assert_eq!(header.version, state.version());
    assert_eq!(header.config_hash, state.config_hash());
    assert_eq!(back, state);
    assert_eq!(back.history(), state.history());
    assert!(!back.history().is_empty(), "the sample has events");
}

#[test]
fn a_wrong_magic_is_refused() {
    let (_, mut bytes) = file();
    bytes[0] = b'X';
    assert_eq!(verify(&bytes).unwrap_err(), BackupError::WrongMagic);
    assert_eq!(verify(b"").unwrap_err(), BackupError::WrongMagic);
    assert_eq!(
        verify(b"{\"json\": true}").unwrap_err(),
        BackupError::WrongMagic
    );
}

#[test]
fn a_newer_format_is_refused() {
    let (_, mut bytes) = file();
    bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let err = verify(&bytes).unwrap_err();
    assert_eq!(
        err,
        BackupError::NewerFormat {
            found: FORMAT_VERSION + 1
        }
    );
    assert!(err.to_string().contains("newer concord-topo"), "{err}");
}

#[test]
fn every_truncation_is_refused() {
    let (_, bytes) = file();
    for len in MAGIC.len()..bytes.len() {
        match verify(&bytes[..len]) {
            Err(BackupError::Truncated(_)) => {}
            other => panic!("cut at {len}: {other:?}"),
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(verify(&longer).unwrap_err(), BackupError::TrailingBytes(1));
}

#[test]
fn a_flipped_payload_bit_fails_the_checksum() {
    let (_, mut bytes) = file();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    assert_eq!(verify(&bytes).unwrap_err(), BackupError::Checksum);
}

#[test]
fn a_header_that_does_not_describe_the_payload_is_refused() {
    let (state, mut bytes) = file();
    bytes[12..20].copy_from_slice(&(state.version() + 1).to_le_bytes());
    verify(&bytes).expect("the checksum covers the payload only");
    assert!(matches!(
        decode(&bytes),
        Err(BackupError::HeaderMismatch { .. })
    ));
}
