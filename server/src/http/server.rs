//! The per-executor HTTP/1.1 listener: accept loop, connection limits, timeouts.
//!
//! Every executor binds the client port with SO_REUSEPORT (`net::listen`) and serves
//! the connections the kernel hands it, each as a local task running hyper's HTTP/1.1
//! state machine (keep-alive, pipelining) over [`crate::net::io::HyperIo`], on the
//! socket itself or, with `tls:` configured, on TLS over it. All executors share one
//! cap, `http.max_connections` (`Shared::connections`).
//!
//! On a plain connection the first request head is read here first (`net::head`):
//! a subscribe takes the socket out of hyper for the fan-out writer
//! (`sse::take_over`); anything else goes to hyper with those bytes replayed.

use std::net::SocketAddr;
use std::rc::Rc;

use concord_api::Envelope;

use super::router;
use super::sse::{self, TakeOver};
use crate::executor::ExecutorContext;
use crate::net::conn::{self, ConnectionTimeouts};
use crate::net::head::{self, FirstHead};
use crate::net::ready::ReadyStream;
use crate::net::{listen, tls, Sharing};

/// Accepts connections on `addr` until the executor stops; never returns on success.
pub async fn serve(addr: SocketAddr, ctx: Rc<ExecutorContext>) -> std::io::Result<()> {
    let listener = listen(addr, Sharing::PerExecutor)?;
    let http = &ctx.shared.config.http;
    let full = format!(
        "this server already has {} connections open (http.max_connections); retry or try another server",
        http.max_connections
    );
    let body = serde_json::to_vec(&Envelope::error(&full, 0)).expect("error bodies serialize");
    let refusal = conn::refusal("application/json", &body);
    let timeouts = ConnectionTimeouts {
        idle: http.keepalive_timeout,
        head: http.header_read_timeout,
    };
    let max_head = http.max_header_bytes.max(8192);
    let max_buf_size = Some(max_head);
    // A handshake is the first thing an idle connection owes, and part of its first head.
    let handshake_deadline = timeouts.idle.min(timeouts.head);
    let limit = ctx.shared.connections.clone();
    conn::accept_loop(
        listener,
        limit,
        refusal,
        |mut stream: ReadyStream, place| {
            let ctx = ctx.clone();
            async move {
                ctx.metrics.connection_opened();
                let peer = stream.peer_addr().ok();
                let handler_ctx = ctx.clone();
                let handler = move |req, guard| router::handle(req, handler_ctx.clone(), guard);
                // The handshake is part of the connection: it counts against the same cap
                // and runs under the same deadline as a request head.
                // The configuration in force when the connection arrived: a reload
                // (SIGHUP) applies to the next handshake, not to connections already open.
                match ctx.shared.credentials.client_tls() {
                    None => {
                        let (first, replay) =
                            head::read_first(&mut stream, timeouts.idle, timeouts.head, max_head)
                                .await;
                        match first {
                            FirstHead::Gone => {}
                            FirstHead::Request(req) if router::takes_socket(&req) => {
                                match sse::take_over(*req, &ctx, stream, place, peer).await {
                                    // The fan-out writer counts the connection closed.
                                    TakeOver::Taken => return,
                                    TakeOver::Closed => {}
                                }
                            }
                            FirstHead::Request(_) | FirstHead::Other => {
                                let _place = place;
                                let writes = stream.coalescing();
                                let conn = conn::serve_http1(
                                    stream,
                                    replay,
                                    peer,
                                    timeouts,
                                    max_buf_size,
                                    handler,
                                );
                                writes.around(conn).await
                            }
                        }
                    }
                    Some(config) => {
                        // The handshake's own writes go out as written; hyper's coalesce.
                        let writes = stream.coalescing();
                        match tls::accept(&config, stream, handshake_deadline).await {
                            Ok(stream) => {
                                let _place = place;
                                let replay = Default::default();
                                let conn = conn::serve_http1(
                                    stream,
                                    replay,
                                    peer,
                                    timeouts,
                                    max_buf_size,
                                    handler,
                                );
                                writes.around(conn).await
                            }
                            Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                        }
                    }
                }
                ctx.metrics.connection_closed();
            }
        },
    )
    .await;
    Ok(())
}
