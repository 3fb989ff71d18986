//! Seeding a fresh data directory from a backup file (`concord-topo restore`), the
//! disaster-recovery path after a quorum is lost.
//!
//! The directory gets one thing: a state-machine snapshot file holding the backup's
//! state, whose Raft metadata is the same on every host restored with the same file
//! and `--initial-cluster`: log id (term 0, lowest member id, index 1) and the new
//! membership at that log id. There is no log and no vote. On first start openraft
//! finds the snapshot ahead of the (empty) log, treats the log as purged up to it,
//! and the server starts as an initialised member of the NEW cluster: the members
//! elect a leader among themselves and its first entry follows the snapshot. A
//! server added later gets the snapshot, as for any purged log. The topology
//! version continues from the restored one (versions are the state's, not Raft's).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use concord_api::backup::{self, BackupError, BackupHeader};
use openraft::vote::RaftLeaderId;
use openraft::{BasicNode, Membership};

use crate::raft::handle::SNAPSHOT_SUBDIR;
use crate::raft::snapshot_store::{seal, SnapshotStore, SnapshotStoreError};
use crate::raft::state_machine::encode_body;
use crate::raft::types::{LogId, SnapshotMeta, StoredMembership, TopoConfig};

/// Log index the restored snapshot covers (the first entry of the new cluster's
/// leaders comes after it).
const RESTORED_INDEX: u64 = 1;

/// Why a restore was refused or failed; nothing is left in the data directory.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{file}: {source}")]
    Backup { file: String, source: BackupError },
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("node id {node_id} is not in --initial-cluster (members: {members})")]
    NotAMember { node_id: u64, members: String },
    #[error("data directory {0} is not empty: restore only into a new or empty directory")]
    NotEmpty(String),
    #[error("data directory {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error(transparent)]
    Write(#[from] SnapshotStoreError),
}

impl RestoreError {
    /// True when the input was refused (an unreadable or bad file, a bad argument,
    /// a used directory), false when writing the data directory failed.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, RestoreError::DataDir { .. } | RestoreError::Write(_))
    }
}

/// Verifies `file`, then makes `data_dir` the data directory of member `node_id` of
/// a new cluster of `members` (peer addresses) holding the file's state. Returns
/// the backup's header.
pub fn restore(
    file: &Path,
    data_dir: &Path,
    node_id: u64,
    members: &BTreeMap<u64, SocketAddr>,
) -> Result<BackupHeader, RestoreError> {
    let name = file.display().to_string();
    let bytes = std::fs::read(file).map_err(|source| RestoreError::Read {
        file: name.clone(),
        source,
    })?;
    let (header, state) =
        backup::decode(&bytes).map_err(|source| RestoreError::Backup { file: name, source })?;
    if !members.contains_key(&node_id) {
        return Err(RestoreError::NotAMember {
            node_id,
            members: members
                .keys()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        });
    }
    let created = claim_empty(data_dir)?;
    let body =
        encode_body(&restored_meta(members), &state).map_err(|source| RestoreError::DataDir {
            dir: data_dir.display().to_string(),
            source,
        });
    let written = body.and_then(|body| {
        let store = SnapshotStore::open(data_dir.join(SNAPSHOT_SUBDIR))?;
        store.replace(&seal(&body))?;
        Ok(())
    });
    if let Err(e) = written {
        undo(data_dir, created);
        return Err(e);
    }
    Ok(header)
}

/// The snapshot metadata every member restored with `members` computes alike.
fn restored_meta(members: &BTreeMap<u64, SocketAddr>) -> SnapshotMeta {
    let first = *members.keys().next().expect("members are never empty");
    let leader = <<TopoConfig as openraft::RaftTypeConfig>::LeaderId>::new(0, first);
    let log_id = LogId::new(leader.to_committed(), RESTORED_INDEX);
    let nodes: BTreeMap<u64, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr.to_string())))
        .collect();
    SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: StoredMembership::new(Some(log_id), Membership::from(nodes)),
    }
}

/// Makes sure `dir` exists and is empty; returns whether it was created here.
fn claim_empty(dir: &Path) -> Result<bool, RestoreError> {
    let io = |source| RestoreError::DataDir {
        dir: dir.display().to_string(),
        source,
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(RestoreError::NotEmpty(dir.display().to_string()));
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io)?;
            Ok(true)
        }
        Err(e) => Err(io(e)),
    }
}

/// Removes what a failed restore wrote: the directory if it made it, else its content.
fn undo(dir: &Path, created: bool) {
    if created {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        let _ = std::fs::remove_dir_all(PathBuf::from(dir).join(SNAPSHOT_SUBDIR));
    }
}

#[cfg(test)]
#[path = "restore_test.rs"]
mod tests;
