//! Fuzz target: whatever bytes arrive on the peer port, decoding them as any peer
//! message and judging them with the peer guard never panics, and what decodes
//! re-encodes and decodes again. Runs bounded in `cargo test` (bolero); longer with
//! `BOLERO_RANDOM_TEST_TIME_MS=120000 cargo test -p concord-topo --release peer_fuzz`.

use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::peer_guard::PeerMessage;
use super::types::TopoConfig;
use super::wire::{self, SnapshotRequest};
use crate::service::{Answer, Operation, ServiceError};

/// Decodes `bytes` as `T`; when that works, re-encodes it and decodes the result.
fn round_trip<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let value: T = wire::decode(bytes).ok()?;
    let again = wire::encode(&value).expect("a decoded message encodes");
    Some(wire::decode(&again).expect("an encoded message decodes"))
}

/// Decodes `bytes` as a Raft message and runs the guard's checks for a few callers.
fn judged<T: Serialize + DeserializeOwned + PeerMessage>(bytes: &[u8]) {
    if let Some(message) = round_trip::<T>(bytes) {
        for caller in [0, 1, u64::MAX] {
            let _ = message.check(caller);
        }
        let _ = message.log_ids();
    }
}

#[test]
fn arbitrary_peer_bodies_never_panic_the_decoder_or_the_guard() {
    bolero::check!()
        .with_type::<Vec<u8>>()
        .for_each(|bytes: &Vec<u8>| {
            judged::<VoteRequest<TopoConfig>>(bytes);
            judged::<AppendEntriesRequest<TopoConfig>>(bytes);
            judged::<SnapshotRequest>(bytes);
            judged::<TransferLeaderRequest<TopoConfig>>(bytes);
            let _ = round_trip::<Operation>(bytes);
            let _ = round_trip::<Answer>(bytes);
            let _ = round_trip::<ServiceError>(bytes);
            let _ = round_trip::<Option<String>>(bytes);
        });
}
