//! `GlommioRuntime`: openraft's [`AsyncRuntime`] implemented on glommio.
//!
//! Raft runs on one glommio executor (the control executor). openraft is built with
//! its `single-threaded` feature, so nothing it spawns has to be `Send`, which is
//! what glommio's thread-local tasks need.
//!
//! What comes from where:
//! - tasks: `glommio::spawn_local(..).detach()`; a panic inside a task is caught and
//!   reported through the join handle (like tokio), instead of unwinding through the
//!   whole executor;
//! - time: glommio's [`Timer`] for sleep and timeouts; [`std::time::Instant`] as the
//!   clock, which is the clock glommio's timers use too;
//! - channels and the mutex: `tokio::sync` (the `sync` feature only, no tokio runtime).
//!   glommio has no watch channel and no weak sender for its local channel, and the
//!   tokio primitives are runtime-agnostic, are the ones openraft's own reference
//!   runtime is checked against, and are in the dependency tree through hyper anyway.
//!   Their wakers may be called from other threads: glommio supports foreign wakes.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;
use std::time::Instant;

use futures_util::future::CatchUnwind;
use futures_util::FutureExt;
use glommio::timer::Timer;
use glommio::LocalExecutor;
use glommio::LocalExecutorBuilder;
use glommio::Placement;
use openraft::async_runtime::mpsc;
use openraft::async_runtime::oneshot;
use openraft::async_runtime::watch;
use openraft::AsyncRuntime;
use openraft::OptionalSend;
use openraft::OptionalSync;

/// io_memory used by [`AsyncRuntime::new`]: that constructor exists for tests and
/// helper runtimes, and the machines this runs on allow only a few MiB of locked
/// memory per process.
pub const DEFAULT_IO_MEMORY: usize = 1 << 20;

/// Failure to create the glommio executor behind a [`GlommioRuntime`].
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// glommio could not set up io_uring or lock its I/O memory.
    #[error(
        "cannot create a glommio executor with io_memory={io_memory} bytes \
         (is io_uring available and RLIMIT_MEMLOCK large enough?): {reason}"
    )]
    Executor {
        /// The io_memory that was asked for.
        io_memory: usize,
        /// glommio's own message.
        reason: String,
    },
}

/// openraft's async runtime on glommio.
///
/// The type is what openraft needs (`RaftTypeConfig::AsyncRuntime`): its associated
/// functions work on whatever glommio executor the calling task runs on. A value of
/// it owns an executor of its own, used only by [`AsyncRuntime::block_on`] (tests and
/// tools); the server creates its executors with glommio's builders instead.
pub struct GlommioRuntime {
    executor: LocalExecutor,
}

impl GlommioRuntime {
    /// Creates a runtime owning a fresh, unpinned executor with the given io_memory.
    pub fn with_io_memory(io_memory: usize) -> Result<Self, RuntimeError> {
        let executor = LocalExecutorBuilder::new(Placement::Unbound)
            .name("raft-rt")
            .io_memory(io_memory)
            .make()
            .map_err(|e| RuntimeError::Executor {
                io_memory,
                reason: e.to_string(),
            })?;
        Ok(Self { executor })
    }
}

impl fmt::Debug for GlommioRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlommioRuntime").finish_non_exhaustive()
    }
}

/// Why a spawned task produced no value.
#[derive(Debug)]
pub enum JoinError {
    /// The task panicked; the payload's message when it was a string.
    Panicked(String),
    /// The task was dropped before it completed (its executor went away).
    Cancelled,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(msg) => write!(f, "task panicked: {msg}"),
            JoinError::Cancelled => write!(f, "task cancelled"),
        }
    }
}

impl std::error::Error for JoinError {}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Join handle of a task spawned with [`GlommioRuntime`]. Dropping it detaches the
/// task (tokio semantics, which openraft relies on), unlike glommio's `Task`.
pub struct JoinHandle<T> {
    inner: glommio::task::JoinHandle<std::thread::Result<T>>,
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.inner).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(v))) => Poll::Ready(Ok(v)),
            Poll::Ready(Some(Err(payload))) => {
                Poll::Ready(Err(JoinError::Panicked(panic_message(payload.as_ref()))))
            }
            Poll::Ready(None) => Poll::Ready(Err(JoinError::Cancelled)),
        }
    }
}

/// openraft's `Sleep`: a glommio timer that outputs `()`.
#[derive(Debug)]
pub struct Sleep {
    timer: Timer,
}

impl Sleep {
    fn new(duration: Duration) -> Self {
        Self {
            timer: Timer::new(duration),
        }
    }

    fn until(deadline: Instant) -> Self {
        Self::new(deadline.saturating_duration_since(Instant::now()))
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.timer).poll(cx).map(|_| ())
    }
}

/// The deadline of a [`Timeout`] passed before its future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

pin_project_lite::pin_project! {
    /// A future bounded by a glommio timer.
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The future goes first so that one that is already done is not reported as
        // timed out (tokio's order, which callers expect).
        if let Poll::Ready(v) = this.future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRuntime for GlommioRuntime {
    type JoinError = JoinError;
    type JoinHandle<T: OptionalSend + 'static> = JoinHandle<T>;
    type Sleep = Sleep;
    type Instant = Instant;
    type TimeoutError = Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = Timeout<T>;
    type ThreadLocalRng = rand::rngs::ThreadRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        // Unwind safety: a task that panicked is never polled again; its state is
        // dropped and the panic reaches whoever awaits the handle.
        let guarded: CatchUnwind<AssertUnwindSafe<T>> = AssertUnwindSafe(future).catch_unwind();
        JoinHandle {
            inner: glommio::spawn_local(guarded).detach(),
        }
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        Sleep::new(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Sleep::until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        Timeout {
            future,
            sleep: Sleep::new(duration),
        }
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        Timeout {
            future,
            sleep: Sleep::until(deadline),
        }
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        matches!(join_error, JoinError::Panicked(_))
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        rand::rng()
    }

    type Mpsc = TokioMpsc;
    type Watch = TokioWatch;
    type Oneshot = TokioOneshot;
    type Mutex<T: OptionalSend + 'static> = TokioMutex<T>;

    /// Creates a runtime with [`DEFAULT_IO_MEMORY`]; `threads` is ignored (glommio
    /// executors are single-threaded).
    ///
    /// # Panics
    /// When the executor cannot be created: the trait gives no way to return the
    /// error. Use [`GlommioRuntime::with_io_memory`] to handle it.
    fn new(_threads: usize) -> Self {
        match Self::with_io_memory(DEFAULT_IO_MEMORY) {
            Ok(rt) => rt,
            Err(e) => panic!("{e}"),
        }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.executor.run(future)
    }
}

/// Bounded MPSC channel: `tokio::sync::mpsc`.
pub struct TokioMpsc;

/// Sending half of [`TokioMpsc`].
pub struct MpscSender<T>(tokio::sync::mpsc::Sender<T>);
/// Receiving half of [`TokioMpsc`].
pub struct MpscReceiver<T>(tokio::sync::mpsc::Receiver<T>);
/// Weak sending half of [`TokioMpsc`].
pub struct MpscWeakSender<T>(tokio::sync::mpsc::WeakSender<T>);

impl<T> Clone for MpscSender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Clone for MpscWeakSender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl mpsc::Mpsc for TokioMpsc {
    type Sender<T: OptionalSend> = MpscSender<T>;
    type Receiver<T: OptionalSend> = MpscReceiver<T>;
    type WeakSender<T: OptionalSend> = MpscWeakSender<T>;

    fn channel<T: OptionalSend>(buffer: usize) -> (Self::Sender<T>, Self::Receiver<T>) {
        let (tx, rx) = tokio::sync::mpsc::channel(buffer);
        (MpscSender(tx), MpscReceiver(rx))
    }
}

impl<T: OptionalSend> mpsc::MpscSender<TokioMpsc, T> for MpscSender<T> {
    async fn send(&self, msg: T) -> Result<(), mpsc::SendError<T>> {
        self.0.send(msg).await.map_err(|e| mpsc::SendError(e.0))
    }

    fn downgrade(&self) -> MpscWeakSender<T> {
        MpscWeakSender(self.0.downgrade())
    }
}

impl<T: OptionalSend> mpsc::MpscReceiver<T> for MpscReceiver<T> {
    async fn recv(&mut self) -> Option<T> {
        self.0.recv().await
    }

    fn try_recv(&mut self) -> Result<T, mpsc::TryRecvError> {
        use tokio::sync::mpsc::error::TryRecvError as E;
        self.0.try_recv().map_err(|e| match e {
            E::Empty => mpsc::TryRecvError::Empty,
            E::Disconnected => mpsc::TryRecvError::Disconnected,
        })
    }
}

impl<T: OptionalSend> mpsc::MpscWeakSender<TokioMpsc, T> for MpscWeakSender<T> {
    fn upgrade(&self) -> Option<MpscSender<T>> {
        self.0.upgrade().map(MpscSender)
    }
}

/// Watch channel: `tokio::sync::watch`.
pub struct TokioWatch;

/// Sending half of [`TokioWatch`].
pub struct WatchSender<T>(tokio::sync::watch::Sender<T>);
/// Receiving half of [`TokioWatch`].
pub struct WatchReceiver<T>(tokio::sync::watch::Receiver<T>);

impl<T> Clone for WatchSender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Clone for WatchReceiver<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl watch::Watch for TokioWatch {
    type Sender<T: OptionalSend + OptionalSync> = WatchSender<T>;
    type Receiver<T: OptionalSend + OptionalSync> = WatchReceiver<T>;
    type Ref<'a, T: OptionalSend + 'a> = tokio::sync::watch::Ref<'a, T>;

    fn channel<T: OptionalSend + OptionalSync>(init: T) -> (Self::Sender<T>, Self::Receiver<T>) {
        let (tx, rx) = tokio::sync::watch::channel(init);
        (WatchSender(tx), WatchReceiver(rx))
    }
}

impl<T: OptionalSend + OptionalSync> watch::WatchSender<TokioWatch, T> for WatchSender<T> {
    fn send(&self, value: T) -> Result<(), watch::SendError<T>> {
        self.0.send(value).map_err(|e| watch::SendError(e.0))
    }

    fn send_if_modified<F>(&self, modify: F) -> bool
    where
        F: FnOnce(&mut T) -> bool,
    {
        self.0.send_if_modified(modify)
    }

    fn borrow_watched(&self) -> tokio::sync::watch::Ref<'_, T> {
        self.0.borrow()
    }

    fn subscribe(&self) -> WatchReceiver<T> {
        WatchReceiver(self.0.subscribe())
    }
}

impl<T: OptionalSend + OptionalSync> watch::WatchReceiver<TokioWatch, T> for WatchReceiver<T> {
    async fn changed(&mut self) -> Result<(), watch::RecvError> {
        self.0.changed().await.map_err(|_| watch::RecvError(()))
    }

    fn borrow_watched(&self) -> tokio::sync::watch::Ref<'_, T> {
        self.0.borrow()
    }

    fn borrow_and_update(&mut self) -> tokio::sync::watch::Ref<'_, T> {
        self.0.borrow_and_update()
    }
}

/// Oneshot channel: `tokio::sync::oneshot`.
pub struct TokioOneshot;

/// Sending half of [`TokioOneshot`].
pub struct OneshotSender<T>(tokio::sync::oneshot::Sender<T>);

impl oneshot::Oneshot for TokioOneshot {
    type Sender<T: OptionalSend> = OneshotSender<T>;
    type Receiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;
    type ReceiverError = tokio::sync::oneshot::error::RecvError;

    fn channel<T: OptionalSend>() -> (Self::Sender<T>, Self::Receiver<T>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (OneshotSender(tx), rx)
    }
}

impl<T: OptionalSend> oneshot::OneshotSender<T> for OneshotSender<T> {
    fn send(self, t: T) -> Result<(), T> {
        self.0.send(t)
    }
}

/// Async mutex: `tokio::sync::Mutex` (fair, FIFO).
pub struct TokioMutex<T>(tokio::sync::Mutex<T>);

impl<T: OptionalSend + 'static> openraft::async_runtime::Mutex<T> for TokioMutex<T> {
    type Guard<'a> = tokio::sync::MutexGuard<'a, T>;

    fn new(value: T) -> Self {
        Self(tokio::sync::Mutex::new(value))
    }

    fn lock(&self) -> impl Future<Output = Self::Guard<'_>> + OptionalSend {
        self.0.lock()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    /// openraft's conformance suite for `AsyncRuntime` implementations: spawn/join,
    /// timers, instants, select, mpsc (incl. backpressure and weak senders), watch,
    /// oneshot, mutex, task-locals, and the deterministic-RNG wrapper.
    #[test]
    fn openraft_runtime_conformance_suite() {
        openraft::testing::runtime::Suite::<GlommioRuntime>::test_all();
    }

    #[test]
    fn panicking_task_is_reported_not_propagated() {
        let mut rt = GlommioRuntime::new(1);
        rt.block_on(async {
            let h = GlommioRuntime::spawn(async { panic!("boom") });
            let err = h.await.expect_err("the task panicked");
            assert!(GlommioRuntime::is_panic(&err), "{err}");
            assert!(err.to_string().contains("boom"), "{err}");
        });
    }

    #[test]
    fn dropped_join_handle_detaches_the_task() {
        let mut rt = GlommioRuntime::new(1);
        rt.block_on(async {
            let ran = Rc::new(Cell::new(false));
            let flag = ran.clone();
            drop(GlommioRuntime::spawn(async move {
                GlommioRuntime::sleep(Duration::from_millis(5)).await;
                flag.set(true);
            }));
            GlommioRuntime::sleep(Duration::from_millis(30)).await;
            assert!(ran.get());
        });
    }

    #[test]
    fn wake_from_another_thread() {
        let mut rt = GlommioRuntime::new(1);
        rt.block_on(async {
            let (tx, rx) = <TokioOneshot as oneshot::Oneshot>::channel::<u32>();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                oneshot::OneshotSender::send(tx, 7).ok();
            });
            let v = GlommioRuntime::timeout(Duration::from_secs(5), rx).await;
            assert!(matches!(v, Ok(Ok(7))), "{v:?}");
            t.join().ok();
        });
    }
}
