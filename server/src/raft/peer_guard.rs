//! What the peer port checks before a message reaches openraft, in order: the caller
//! presents the peer secret (never a client token); it names itself in
//! `x-concord-from`, and that id is a member (voter or learner, of either half of a
//! joint configuration) unless this server has no membership yet (a `--join` server
//! waiting to be added accepts any authenticated caller); every Raft term in the
//! message is below [`MAX_TERM`], and the message's vote is the caller's own; a
//! leadership hand-over comes from the leader this server knows.
//!
//! One exception keeps a lagging server live: its membership may predate the caller's
//! addition (it was down while a server was added and promoted), and Raft needs it to
//! hear such a leader and vote for such a candidate. So a non-member is heard when its
//! message shows that it knows more than this server: a candidate whose log is longer,
//! or a leader whose committed vote is at least this server's. A removed server fails
//! both (the cluster's log and terms moved on without it).
//!
//! A refused message is answered with an HTTP status and never persisted: a forged
//! vote with a huge term would otherwise be stored and stay in force across restarts.

use http::{header, HeaderMap, StatusCode};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};

use openraft::type_config::alias::VoteOf;

use super::types::{LogId, TopoConfig};
use super::wire::{self, SnapshotRequest};
use crate::config::PeerSecret;

/// The first term refused. Real terms grow by one per election, so no cluster gets
/// near it, and openraft's `term + 1` can never overflow.
pub const MAX_TERM: u64 = 1 << 62;

/// A refusal before Raft saw the request: status and one-line reason.
pub type Refusal = (StatusCode, String);

/// The caller presents one of the accepted peer secrets (`Bearer`, any case). Without a
/// secret (`insecure` cluster) everyone is let through.
pub fn authenticate(headers: &HeaderMap, secret: Option<&PeerSecret>) -> Result<(), Refusal> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(token) if secret.accepts(token) => Ok(()),
        _ => Err((
            StatusCode::UNAUTHORIZED,
            "peer requests need the cluster's peer secret (auth.peer_secret_file or \
             CONCORD_PEER_SECRET, the same on every server); client tokens are not accepted"
                .into(),
        )),
    }
}

/// The Raft id the caller names in `x-concord-from`.
pub fn caller(headers: &HeaderMap) -> Result<u64, Refusal> {
    let from = headers.get(wire::FROM_HEADER).ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            format!("peer requests name their sender in {}", wire::FROM_HEADER),
        )
    })?;
    from.to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                format!("{} is not a node id", wire::FROM_HEADER),
            )
        })
}

/// What this server knows when it judges a caller (one look at Raft's metrics).
pub struct LocalView {
    /// Every member id; empty while this server has no membership.
    pub members: Vec<u64>,
    pub vote: VoteOf<TopoConfig>,
    pub last_log_index: Option<u64>,
    pub leader: Option<u64>,
}

/// Refuses a caller that is not a member (unless this server has no membership yet,
/// or `message` shows the caller knows more than this server, see the module header).
pub fn member(
    caller: u64,
    view: &LocalView,
    message: Option<&dyn PeerMessage>,
) -> Result<(), Refusal> {
    if view.members.is_empty()
        || view.members.contains(&caller)
        || message.is_some_and(|m| m.ahead_of(view))
    {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            format!("node {caller} is not a member of this cluster"),
        ))
    }
}

/// The leadership hand-over must come from the leader this server follows.
pub fn from_leader(caller: u64, leader: Option<u64>) -> Result<(), Refusal> {
    if leader == Some(caller) {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            format!("node {caller} is not the leader this server follows, it cannot hand leadership over"),
        ))
    }
}

/// The vote of a message (the candidate's or the leader's) must be the caller's own,
/// and every term in it below [`MAX_TERM`].
pub trait PeerMessage {
    fn vote(&self) -> &VoteOf<TopoConfig>;
    fn log_ids(&self) -> Vec<&LogId>;

    /// True when the sender knows a newer state of the cluster than `view`.
    fn ahead_of(&self, _view: &LocalView) -> bool {
        false
    }

    fn check(&self, caller: u64) -> Result<(), Refusal> {
        let leader = self.vote().leader_id();
        if leader.node_id != caller {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "node {caller} sent a message in the name of node {}",
                    leader.node_id
                ),
            ));
        }
        let log_ids = self.log_ids();
        let terms = std::iter::once(leader.term).chain(log_ids.iter().map(|l| l.leader_id.term));
        for term in terms {
            if term >= MAX_TERM {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!("term {term} is out of range (terms are below 2^62)"),
                ));
            }
        }
        Ok(())
    }
}

/// A leader's committed vote, at least `view`'s.
fn leads_at_least(vote: &VoteOf<TopoConfig>, view: &LocalView) -> bool {
    vote.committed && vote.partial_cmp(&view.vote).is_some_and(|o| o.is_ge())
}

impl PeerMessage for VoteRequest<TopoConfig> {
    fn vote(&self) -> &VoteOf<TopoConfig> {
        &self.vote
    }
    fn log_ids(&self) -> Vec<&LogId> {
        self.last_log_id.iter().collect()
    }
    fn ahead_of(&self, view: &LocalView) -> bool {
        self.last_log_id.as_ref().map(|l| l.index) > view.last_log_index
    }
}

impl PeerMessage for AppendEntriesRequest<TopoConfig> {
    fn vote(&self) -> &VoteOf<TopoConfig> {
        &self.vote
    }
    fn log_ids(&self) -> Vec<&LogId> {
        self.prev_log_id
            .iter()
            .chain(self.leader_commit.iter())
            .chain(self.entries.iter().map(|e| &e.log_id))
            .collect()
    }
    fn ahead_of(&self, view: &LocalView) -> bool {
        leads_at_least(&self.vote, view)
    }
}

impl PeerMessage for SnapshotRequest {
    fn vote(&self) -> &VoteOf<TopoConfig> {
        &self.vote
    }
    fn log_ids(&self) -> Vec<&LogId> {
        self.meta
            .last_log_id
            .iter()
            .chain(self.meta.last_membership.log_id().iter())
            .collect()
    }
    fn ahead_of(&self, view: &LocalView) -> bool {
        leads_at_least(&self.vote, view)
    }
}

impl PeerMessage for TransferLeaderRequest<TopoConfig> {
    fn vote(&self) -> &VoteOf<TopoConfig> {
        self.from_leader()
    }
    fn log_ids(&self) -> Vec<&LogId> {
        self.last_log_id().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::vote::RaftLeaderId;
    use openraft::Vote;

    fn vote(term: u64, node: u64) -> VoteRequest<TopoConfig> {
        VoteRequest::new(Vote::new(term, node), None)
    }

    fn view(members: &[u64]) -> LocalView {
        LocalView {
            members: members.to_vec(),
            vote: Vote::new_committed(4, 1),
            last_log_index: Some(10),
            leader: Some(1),
        }
    }

    fn append(vote: VoteOf<TopoConfig>) -> AppendEntriesRequest<TopoConfig> {
        AppendEntriesRequest {
            vote,
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        }
    }

    #[test]
    fn the_peer_secret_and_only_it_authenticates() {
        let secret = PeerSecret::from_lines("k", "peer-secret-0123456789").unwrap();
        let mut h = HeaderMap::new();
        assert!(authenticate(&h, None).is_ok());
        assert_eq!(authenticate(&h, Some(&secret)).unwrap_err().0, 401);
        for (value, ok) in [
            ("Bearer peer-secret-0123456789", true),
            ("bearer peer-secret-0123456789", true),
            ("BEARER peer-secret-0123456789", true),
            ("Basic peer-secret-0123456789", false),
            ("Bearer peer-secret-012345678", false),
            ("Bearer client-token-0123456789", false),
        ] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(authenticate(&h, Some(&secret)).is_ok(), ok, "{value}");
        }
    }

    #[test]
    fn callers_are_named_and_members() {
        let mut h = HeaderMap::new();
        assert_eq!(caller(&h).unwrap_err().0, 400);
        h.insert(wire::FROM_HEADER, HeaderValue::from_static("x"));
        assert_eq!(caller(&h).unwrap_err().0, 400);
        h.insert(wire::FROM_HEADER, HeaderValue::from_static("3"));
        assert_eq!(caller(&h).unwrap(), 3);
        assert!(member(3, &view(&[1, 2, 3]), None).is_ok());
        assert!(
            member(9, &view(&[]), None).is_ok(),
            "no membership yet: any authenticated caller"
        );
        assert_eq!(member(9, &view(&[1, 2, 3]), None).unwrap_err().0, 403);
        assert!(from_leader(2, Some(2)).is_ok());
        assert_eq!(from_leader(3, Some(2)).unwrap_err().0, 403);
        assert_eq!(from_leader(3, None).unwrap_err().0, 403);
    }

    #[test]
    fn terms_are_bounded_and_votes_are_the_callers() {
        assert!(vote(5, 2).check(2).is_ok());
        assert!(vote(MAX_TERM - 1, 2).check(2).is_ok());
        assert_eq!(vote(MAX_TERM, 2).check(2).unwrap_err().0, 400);
        assert_eq!(vote(u64::MAX, 2).check(2).unwrap_err().0, 400);
        assert_eq!(vote(5, 3).check(2).unwrap_err().0, 403);
        let mut rpc = vote(5, 2);
        rpc.last_log_id = Some(LogId::new(LeaderId::new(u64::MAX, 1), 7));
        assert_eq!(rpc.check(2).unwrap_err().0, 400);
    }

    #[test]
    fn a_non_member_that_knows_more_is_heard_a_stale_one_is_not() {
        let heard = |m: &dyn PeerMessage| member(4, &view(&[1, 2, 3]), Some(m)).is_ok();
        // A leader added while this server was away: its term is newer.
        assert!(heard(&append(Vote::new_committed(5, 4))));
        assert!(heard(&append(Vote::new_committed(4, 1))));
        // A removed server's old leadership, or a mere candidate's vote: refused.
        assert!(!heard(&append(Vote::new_committed(3, 4))));
        assert!(!heard(&append(Vote::new(5, 4))));
        // A candidate with a longer log than this server's: heard.
        let log = |index| Some(LogId::new(LeaderId::new(5, 4), index));
        assert!(heard(&VoteRequest::new(Vote::new(5, 4), log(11))));
        assert!(!heard(&VoteRequest::new(Vote::new(5, 4), log(10))));
        assert!(!heard(&VoteRequest::new(Vote::new(5, 4), None)));
    }
}
