//! The per-executor HTTP/1.1 listener: accept loop, connection limits, timeouts.
//!
//! Every executor binds the client port with SO_REUSEPORT (`net::listen`) and serves the connections the kernel hands it, each as a local task running
//! hyper's HTTP/1.1 state machine (keep-alive, pipelining) over [`crate::net::io::HyperIo`],
//! on the socket itself or, with `tls:` configured, on TLS over it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;

use futures_lite::{AsyncRead, AsyncWrite};
use hyper::body::Incoming;
use hyper::service::service_fn;

use super::response::Body;
use super::router;
use crate::executor::ExecutorContext;
use crate::net::io::{GlommioTimer, HyperIo};
use crate::net::{listen, tls, ConnectionGuard, Sharing};

/// Accepts connections on `addr` until the executor stops; never returns on success.
pub async fn serve(addr: SocketAddr, ctx: Rc<ExecutorContext>) -> std::io::Result<()> {
    let listener = listen(addr, Sharing::PerExecutor)?;
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                // EMFILE and friends: keep serving the connections we have.
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            ctx.metrics.connection_opened();
            // The handshake is part of the connection: it counts against the same
            // limits and runs under the same deadline as a request head.
            match &ctx.shared.client_tls {
                None => serve_connection(stream, &ctx).await,
                Some(tls) => {
                    let deadline = ctx.shared.config.http.keepalive_timeout;
                    match tls::accept(tls, stream, deadline).await {
                        Ok(stream) => serve_connection(stream, &ctx).await,
                        Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                    }
                }
            }
            ctx.metrics.connection_closed();
        })
        .detach();
    }
}

/// Runs hyper's HTTP/1.1 state machine on one connection (a socket, or TLS over one)
/// until the client leaves, a timeout fires, or a handler closes it.
async fn serve_connection<S>(stream: S, ctx: &Rc<ExecutorContext>)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let http = &ctx.shared.config.http;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(GlommioTimer)
        // hyper runs this timer whenever it waits for a request head, so it is both
        // the idle keep-alive limit and the bound on a slowly sent head.
        .header_read_timeout(http.keepalive_timeout)
        .max_buf_size(http.max_header_bytes.max(8192))
        .keep_alive(true);
    let service_ctx = ctx.clone();
    let guard = Rc::new(ConnectionGuard::default());
    let service_guard = guard.clone();
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let ctx = service_ctx.clone();
        let guard = service_guard.clone();
        async move { Ok::<hyper::Response<Body>, Infallible>(router::handle(req, ctx, guard).await) }
    });
    let conn = builder.serve_connection(HyperIo(stream), service);
    // Dropping the connection future closes the socket.
    let closed = async {
        guard.wait_closed().await;
        Ok(())
    };
    if let Err(e) = futures_lite::future::or(conn, closed).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
