//! Change notification: SSE frames (encoded once per version, `frames`) and the
//! subscriber side of each executor (`subscribers`: pull-based streams, lag watchdog).

pub mod frames;
pub mod subscribers;
