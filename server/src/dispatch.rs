//! The control executor's side of the service boundary: runs each [`Operation`] the
//! serving executors send (and the ones followers forward), on Raft or on the
//! data-node health monitor. Operations the leader runs go through the one
//! forwarding path of `raft` ([`RaftHandle::on_leader`]). Once Raft has stopped on
//! this server, every operation but the status is refused, naming why.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use crate::node_health::HealthHandle;
use crate::raft::RaftHandle;
use crate::service::{Answer, Call, LeaderSide, Operation, Outcome, ServiceError};

/// Runs operations on this server's Raft and health monitor.
pub struct Dispatcher {
    raft: Rc<RaftHandle>,
    health: HealthHandle,
    /// Deadline of a write, a read index or a membership change.
    write_timeout: Duration,
    /// Deadline of a forwarded health round (it may wait for the round in progress).
    request_timeout: Duration,
}

impl Dispatcher {
    pub fn new(
        raft: Rc<RaftHandle>,
        health: HealthHandle,
        write_timeout: Duration,
        request_timeout: Duration,
    ) -> Dispatcher {
        Dispatcher {
            raft,
            health,
            write_timeout,
            request_timeout,
        }
    }

    /// Runs `operation` here, or on the leader when only the leader can.
    pub async fn run(&self, operation: Operation) -> Answer {
        self.refuse_if_stopped(&operation)?;
        let timeout = match operation {
            Operation::HealthRound { .. } => self.request_timeout,
            _ => self.write_timeout,
        };
        self.raft
            .on_leader(operation, timeout, |operation| self.run_locally(operation))
            .await
    }

    /// A server whose Raft stopped must not write, not even through another leader:
    /// it is about to exit, and its clients should go elsewhere now.
    fn refuse_if_stopped(&self, operation: &Operation) -> Result<(), ServiceError> {
        if matches!(operation, Operation::Status) {
            return Ok(());
        }
        match self.raft.stopped() {
            None => Ok(()),
            Some(reason) => Err(ServiceError::unavailable(format!(
                "raft has stopped on this server ({reason}); it exits to be restarted: use another server"
            ))),
        }
    }

    /// Runs `operation` on this server, whether or not it leads.
    async fn run_locally(&self, operation: Operation) -> Answer {
        self.refuse_if_stopped(&operation)?;
        match operation {
            Operation::HealthRound { only } => {
                self.health.run_here(only).await.map(Outcome::HealthRound)
            }
            raft_operation => self.raft.run_here(raft_operation, self.write_timeout).await,
        }
    }

    /// Answers the serving executors' calls, each in its own task (a slow commit never
    /// stalls the channel), until every sender is gone. A call whose caller gave up is
    /// dropped where it stands (a write may still commit; nothing waits for it).
    pub async fn serve(self: Rc<Self>, calls: async_channel::Receiver<Call>) {
        while let Ok(call) = calls.recv().await {
            let dispatcher = self.clone();
            glommio::spawn_local(async move {
                let Call {
                    operation,
                    mut reply,
                    place,
                } = call;
                let answered = futures_lite::future::or(
                    async { Some(dispatcher.run(operation).await) },
                    async {
                        reply.closed().await;
                        None
                    },
                )
                .await;
                if let Some(answer) = answered {
                    let _ = reply.send(answer);
                }
                drop(place);
            })
            .detach();
        }
    }
}

impl LeaderSide for Dispatcher {
    fn run_here(&self, operation: Operation) -> Pin<Box<dyn Future<Output = Answer> + '_>> {
        Box::pin(self.run_locally(operation))
    }
}
