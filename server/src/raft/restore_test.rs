use concord_model::sample;
use concord_model::TopologyState;

use super::*;
use crate::raft::state_machine::TopologyStateMachine;

fn members(ids: &[u64]) -> BTreeMap<u64, SocketAddr> {
    ids.iter()
        .map(|id| (*id, SocketAddr::from(([127, 0, 0, 1], 7100 + *id as u16))))
        .collect()
}

fn backup_file(dir: &Path) -> (TopologyState, PathBuf) {
    let state = sample::bootstrapped(3, 8, 64);
    let path = dir.join("backup.ckv");
    std::fs::write(&path, backup::encode(&state)).expect("write backup");
    (state, path)
}

fn open(data_dir: &Path) -> TopologyStateMachine {
    TopologyStateMachine::open(
        data_dir.join(SNAPSHOT_SUBDIR),
        TopologyState::new(64),
        Box::new(|_, _, _| {}),
    )
    .expect("open the restored state machine")
}

#[test]
fn every_member_gets_the_same_state_and_raft_metadata() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (state, file) = backup_file(tmp.path());
    let cluster = members(&[1, 2, 3]);
    let mut metas = Vec::new();
    for id in [1, 2, 3] {
        let dir = tmp.path().join(format!("n{id}"));
        let header = restore(&file, &dir, id, &cluster).expect("restore");
        assert_eq!(header.version, state.version());
        let sm = open(&dir);
        assert_eq!(sm.state(), state);
        assert_eq!(sm.state().history(), state.history());
        metas.push(sm.applied_meta());
    }
    assert!(metas.windows(2).all(|w| w[0] == w[1]), "{metas:?}");
    let meta = &metas[0];
    assert_eq!(meta.last_applied_log_index, RESTORED_INDEX);
    let voters: Vec<u64> = meta.membership.membership().voter_ids().collect();
    assert_eq!(voters, [1, 2, 3]);
}

#[test]
fn a_damaged_file_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, file) = backup_file(tmp.path());
    let mut bytes = std::fs::read(&file).expect("read");
    let cut = tmp.path().join("cut.ckv");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let flipped = tmp.path().join("flipped.ckv");
    std::fs::write(&flipped, &bytes).expect("write");

    let dir = tmp.path().join("data");
    for (bad, expect) in [(&cut, "truncated"), (&flipped, "checksum mismatch")] {
        let err = restore(bad, &dir, 1, &members(&[1])).unwrap_err();
        assert!(err.is_refusal());
        assert!(err.to_string().contains(expect), "{err}");
        assert!(!dir.exists(), "nothing written for {}", bad.display());
    }
    let err = restore(&tmp.path().join("absent"), &dir, 1, &members(&[1])).unwrap_err();
    assert!(
        matches!(err, RestoreError::Read { .. }) && err.is_refusal(),
        "{err}"
    );
    assert!(!dir.exists());
}

#[test]
fn a_used_directory_or_a_foreign_node_id_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, file) = backup_file(tmp.path());
    let used = tmp.path().join("used");
    std::fs::create_dir(&used).expect("mkdir");
    std::fs::write(used.join("LOCK"), b"").expect("write");
    let err = restore(&file, &used, 1, &members(&[1])).unwrap_err();
    assert!(matches!(err, RestoreError::NotEmpty(_)), "{err}");
    assert_eq!(std::fs::read_dir(&used).expect("ls").count(), 1);

    let fresh = tmp.path().join("fresh");
    let err = restore(&file, &fresh, 4, &members(&[1, 2, 3])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "node id 4 is not in --initial-cluster (members: 1,2,3)"
    );
    assert!(!fresh.exists());

    // An existing empty directory is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    restore(&file, &empty, 1, &members(&[1])).expect("restore into an empty dir");
}
