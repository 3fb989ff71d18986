//! The peer protocol: the routes and message shapes topology servers speak to each
//! other on the peer port, shared by the client ([`super::peer_client`],
//! [`super::network`]) and the server ([`super::peer_server`]) so the two cannot drift.
//!
//! Every call is `POST <route>` with a postcard body. A call the receiving server
//! handled answers 200 with a postcard body, `Result<T, E>` where the remote side can
//! fail in a way the caller must tell apart (forwarded operations answer
//! `Result<Outcome, ServiceError>`); a call it could not even read answers an
//! HTTP error status (400 undecodable, 401 token, 404, 413 too large) with a one-line
//! text reason. postcard is what the log store already uses for entries: compact,
//! stable, and the openraft messages carry no serde attribute it cannot honour.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::types::{SnapshotMeta, TopoConfig};

/// Raft AppendEntries (replication and heartbeats).
pub const APPEND: &str = "/raft/append";
/// Raft RequestVote.
pub const VOTE: &str = "/raft/vote";
/// Raft Pre-Vote: would you vote for me? (persists nothing on the receiver).
pub const PRE_VOTE: &str = "/raft/pre-vote";
/// A whole state-machine snapshot for a peer whose log was compacted away.
pub const SNAPSHOT: &str = "/raft/snapshot";
/// Leadership hand-over notice.
pub const TRANSFER_LEADER: &str = "/raft/transfer-leader";
// The routes of operations a follower forwards to the leader are the service's
// (`crate::service::FORWARD_ROUTES`): an `Operation` in, an `Answer` out.

/// Header naming the Raft id of the calling server (logs, and the partition proxy of
/// the integration tests, which cuts links by caller and callee).
pub const FROM_HEADER: &str = "x-concord-from";
/// Content type of every peer body.
pub const CONTENT_TYPE: &str = "application/x-postcard";

/// Encodes a peer message.
pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, postcard::Error> {
    postcard::to_stdvec(value).map(Bytes::from)
}

/// Decodes a peer message; trailing bytes are an error (a truncated or mixed-up body).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(postcard::Error::DeserializeBadEncoding)
    }
}

/// A snapshot on the wire: the leader's vote, the snapshot's meta, the sealed file bytes.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SnapshotRequest {
    pub vote: openraft::type_config::alias::VoteOf<TopoConfig>,
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Answer, Outcome, ServiceError};

    #[test]
    fn answers_round_trip_and_trailing_bytes_are_refused() {
        let answers: Vec<Answer> = vec![
            Ok(Outcome::Written { version: 7 }),
            Err(ServiceError::no_leader("no leader")),
            Err(ServiceError::unavailable("gone")),
        ];
        for answer in answers {
            let bytes = encode(&answer).unwrap();
            assert_eq!(
                format!("{:?}", decode::<Answer>(&bytes).unwrap()),
                format!("{answer:?}")
            );
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert!(decode::<Answer>(&longer).is_err());
        }
        assert!(decode::<Answer>(&[]).is_err());
    }
}
