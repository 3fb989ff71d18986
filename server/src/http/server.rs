//! The per-executor HTTP/1.1 listener: accept loop, connection limits, timeouts.
//!
//! Every executor binds the client port with SO_REUSEPORT (glommio's `TcpListener`
//! does) and serves the connections the kernel hands it, each as a local task running
//! hyper's HTTP/1.1 state machine (keep-alive, pipelining) over [`super::io::HyperIo`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;

use glommio::net::TcpListener;
use hyper::body::Incoming;
use hyper::service::service_fn;

use super::io::{GlommioTimer, HyperIo};
use super::response::Body;
use super::router;
use crate::executor::ExecutorContext;

/// Lets a handler close its own connection from outside the connection's future
/// (the SSE watchdog uses it to drop a subscriber whose socket does not drain).
#[derive(Default)]
pub struct ConnectionGuard {
    closed: std::cell::Cell<bool>,
    close: event_listener::Event,
}

impl ConnectionGuard {
    pub fn close(&self) {
        self.closed.set(true);
        self.close.notify(usize::MAX);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    async fn wait_closed(&self) {
        loop {
            let listener = self.close.listen();
            if self.closed.get() {
                return;
            }
            listener.await;
        }
    }
}

/// Binds `addr` with SO_REUSEPORT (so every executor can listen on it) and
/// SO_REUSEADDR (so a restarted server is not refused the port while sockets of its
/// killed predecessor are still closing; glommio's own `bind` sets only the former).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::IntoRawFd;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    // SAFETY: the descriptor is a listening TCP socket we own and hand over whole.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(socket.into_raw_fd()) })
}

/// Accepts connections on `addr` until the executor stops; never returns on success.
pub async fn serve(addr: SocketAddr, ctx: Rc<ExecutorContext>) -> std::io::Result<()> {
    let listener = bind(addr)?;
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
                async move {
                    Ok::<hyper::Response<Body>, Infallible>(router::handle(req, ctx, guard).await)
                }
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
            ctx.metrics.connection_closed();
        })
        .detach();
    }
}
