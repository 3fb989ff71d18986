//! Change notification to SSE subscribers: each executor's pull-based streams, the
//! lag rule and the subscriber count (`subscribers`), and the leader-loss rule that
//! closes streams (`leader_loss`). The frames themselves are encoded once per
//! version at publication (`publish::frames`, re-exported here).

pub mod fanout;
pub mod feed;
pub mod leader_loss;
pub mod subscribers;

pub use crate::publish::frames;
