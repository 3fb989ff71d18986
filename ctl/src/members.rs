//! Raft membership: add a learner, promote learners, remove voters. The new voter
//! set is computed from the current status; a follower's 421 is followed to the
//! leader when one of `--endpoints` is the leader.

use std::collections::BTreeSet;

use concord_api::{AddLearnerBody, ClusterAnswer, ClusterStatus, MemberRole, MembershipBody};

use crate::answer::{call, decode, refusal, Answer};
use crate::cli::{Cli, MembersCommand};
use crate::error::{CtlError, Result};
use crate::render::{self, emit};
use crate::transport::{Request, Transport};

/// 421 Misdirected Request: the server is not the leader (and names it).
const MISDIRECTED: u16 = 421;

pub fn run(cli: &Cli, t: &Transport, cmd: &MembersCommand) -> Result<()> {
    let req = match cmd {
        MembersCommand::AddLearner { id, address, wait } => {
            let body = AddLearnerBody {
                node_id: *id,
                address: address.clone(),
                wait: *wait,
            };
            Request::write("POST", "/api/cluster/learners", &body)
        }
        MembersCommand::Promote { ids } => {
            let status = cluster_status(t)?;
            let mut voters = voters(&status);
            for id in ids {
                if !status.members.iter().any(|m| m.node_id == *id) {
                    return Err(CtlError::Usage(format!(
                        "node {id} is not a member; add it first with `members add-learner`"
                    )));
                }
                voters.insert(*id);
            }
            membership(voters)
        }
        MembersCommand::Remove { ids } => {
            let status = cluster_status(t)?;
            let mut voters = voters(&status);
            for id in ids {
                if !voters.remove(id) {
                    return Err(CtlError::Usage(format!("node {id} is not a voter")));
                }
            }
            if voters.is_empty() {
                return Err(CtlError::Usage("that would remove every voter".into()));
            }
            membership(voters)
        }
    };
    let answer = to_leader(t, &req)?;
    emit(cli.output, &answer.json, || {
        println!("{}", answer.envelope.message);
        let cluster = &answer.envelope.payload.cluster;
        render::cluster(cluster, answer.envelope.version, "-");
    });
    Ok(())
}

fn cluster_status(t: &Transport) -> Result<ClusterStatus> {
    let a: Answer<ClusterAnswer> = call(t, &Request::get("/api/cluster/status"))?;
    Ok(a.envelope.payload.cluster)
}

fn voters(status: &ClusterStatus) -> BTreeSet<u64> {
    status
        .members
        .iter()
        .filter(|m| m.role == MemberRole::Voter)
        .map(|m| m.node_id)
        .collect()
}

fn membership(voters: BTreeSet<u64>) -> Request {
    let body = MembershipBody {
        members: voters.into_iter().collect(),
    };
    Request::write("POST", "/api/cluster/membership", &body)
}

/// Sends a membership change; on 421, finds which endpoint is the leader (by
/// asking each for its status) and sends it there.
fn to_leader(t: &Transport, req: &Request) -> Result<Answer<ClusterAnswer>> {
    let reply = t.call(req)?;
    if reply.status != MISDIRECTED {
        return decode(&reply);
    }
    let follower_said = refusal(&reply);
    let asked = t.exchange(reply.endpoint, &Request::get("/api/cluster/status"));
    let leader = asked
        .ok()
        .and_then(|r| decode::<ClusterAnswer>(&r).ok())
        .and_then(|a| a.envelope.payload.cluster.leader);
    let Some(leader) = leader else {
        return Err(follower_said);
    };
    for i in t.order() {
        let Ok(reply) = t.exchange(i, &Request::get("/api/cluster/status")) else {
            continue;
        };
        let is_leader = decode::<ClusterAnswer>(&reply)
            .is_ok_and(|a| a.envelope.payload.cluster.node_id == leader);
        if is_leader {
            t.prefer(i);
            return decode(&t.call(req)?);
        }
    }
    Err(CtlError::Refused {
        status: MISDIRECTED,
        message: format!(
            "{follower_said}; node {leader} is the leader and none of --endpoints is it: add its client address to --endpoints"
        ),
    })
}
