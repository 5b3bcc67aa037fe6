//! The accept loop behind [`crate::serve`]: HTTP/1.1 and HTTP/2 connections with a cap on
//! their number and deadlines on what each may hold, graceful shutdown, and every task owned.
//!
//! **Rule:** a connection costs the service something only while it makes progress.
//!
//! - At most `limits.max_connections` are open. One more is accepted and closed at once and
//!   counted (`dsfiles_limit_refusals_total{limit="connections"}`), rather than left in the
//!   kernel's backlog: a client refused gets an immediate, visible failure it can retry,
//!   instead of a silent wait behind connections that may be stalling on purpose; and the
//!   refused socket is closed before the next `accept`, so file descriptors stay bounded too.
//! - A connection must send a complete request head within `limits.header_read_timeout` of
//!   opening, whatever its protocol (hyper-util's HTTP version detection has no deadline of
//!   its own); on HTTP/1.1, hyper applies the same timeout to each next head, which makes it
//!   the keep-alive idle timeout too.
//! - A connection that moves no byte either way for `limits.idle_timeout` is closed: idle
//!   HTTP/2 connections, clients that stop reading a response. That timeout is longer than
//!   the request timeout (a handler may stay silent that long) and SSE streams send comments
//!   more often than it.
//! - Connections, and the HTTP/2 stream tasks hyper spawns, live in one `JoinSet` ([`Tasks`]):
//!   at shutdown they are told to finish (GOAWAY, `Connection: close`), given the request
//!   timeout to do so, then aborted, so nothing outlives [`run`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::Limits;
use crate::jobs::lock;
use crate::metrics::{Limit, Metrics};

/// Concurrent requests on one HTTP/2 connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 32;

/// Serves `app` on `listener` until `signal` resolves, then shuts down: stops accepting, asks
/// open connections to finish, waits up to `grace` for them, aborts the rest.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    grace: Duration,
    metrics: Arc<Metrics>,
    signal: impl Future<Output = ()>,
) {
    let tasks = Tasks::default();
    let builder = builder(limits, tasks.clone());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let deadlines = Deadlines {
        header_read: limits.header_read_timeout,
        idle: limits.idle_timeout,
    };
    tokio::pin!(signal);
    loop {
        let stream = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.refused(Limit::Connections);
            drop(stream);
            continue;
        };
        let connection = Connection {
            builder: builder.clone(),
            app: app.clone(),
            watcher: graceful.watcher(),
            deadlines,
            metrics: metrics.clone(),
            _slot: slot,
        };
        tasks.spawn(connection.serve(stream));
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs_f64(),
            "connections still open after the grace period are closed"
        );
    }
    tasks.abort_all().await;
}

fn builder(limits: &Limits, tasks: Tasks) -> Builder<Tasks> {
    let mut builder = Builder::new(tasks);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // No server pings: a peer that answers them would never look idle; a dead one is caught
    // by the idle timeout.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(None)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    builder
}

/// Per-connection `accept` failures (the peer gave up) are skipped; others (no file
/// descriptor left) are logged and retried a moment later, as the process may recover.
async fn accept_failed(err: io::Error) {
    let per_connection = matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    );
    if !per_connection {
        tracing::error!(error = %err, "cannot accept a connection");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Clone, Copy, Debug)]
struct Deadlines {
    header_read: Duration,
    idle: Duration,
}

/// One accepted connection and what it holds.
struct Connection {
    builder: Builder<Tasks>,
    app: Router,
    watcher: Watcher,
    deadlines: Deadlines,
    metrics: Arc<Metrics>,
    /// Its place under `max_connections`, given back when the connection ends.
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, stream: TcpStream) {
        let _open = self.metrics.connection_opened();
        let progress = Arc::new(Progress::new());
        let io = TokioIo::new(Counted {
            inner: stream,
            progress: progress.clone(),
        });
        let seen = progress.clone();
        let app = self.app;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            seen.first_request.store(true, Ordering::Relaxed);
            tower::ServiceExt::oneshot(app.clone(), request)
        });
        let connection = self.builder.serve_connection(io, service).into_owned();
        let connection = self.watcher.watch(connection);
        tokio::select! {
            result = connection => {
                if let Err(err) = result {
                    if err.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout) {
                        self.metrics.connection_timed_out();
                    }
                    tracing::debug!(error = %err, "connection ended with an error");
                }
            }
            () = progress.stalled(self.deadlines) => {
                self.metrics.connection_timed_out();
                tracing::debug!("connection closed: no request head or no progress in time");
            }
        }
    }
}

/// What a connection has done, for its deadlines.
#[derive(Debug)]
struct Progress {
    opened: Instant,
    /// Milliseconds after `opened` when a byte last moved.
    last_io_ms: AtomicU64,
    /// A complete request head arrived.
    first_request: AtomicBool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            opened: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            first_request: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Resolves when the connection has sent no request head within `header_read` of
    /// opening, or moved no byte for `idle`.
    async fn stalled(&self, deadlines: Deadlines) {
        loop {
            let last_io = Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
            let mut deadline = self.opened + last_io + deadlines.idle;
            if !self.first_request.load(Ordering::Relaxed) {
                deadline = deadline.min(self.opened + deadlines.header_read);
            }
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A TCP stream that records in [`Progress`] each time bytes move.
struct Counted {
    inner: TcpStream,
    progress: Arc<Progress>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.progress.touch();
        }
        result
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.progress.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.progress.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection tasks and the HTTP/2 stream tasks hyper spawns (it is hyper's executor),
/// in one owned set.
#[derive(Clone, Default)]
struct Tasks(Arc<Mutex<JoinSet<()>>>);

impl Tasks {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = lock(&self.0);
        // Reap finished tasks so the set does not grow with the connections served.
        while let Some(done) = set.try_join_next() {
            if let Err(err) = done {
                tracing::error!(error = %err, "a connection task ended abnormally");
            }
        }
        set.spawn(task);
    }

    /// Aborts every task and waits for them (tasks spawned meanwhile included).
    async fn abort_all(&self) {
        loop {
            let mut set = std::mem::take(&mut *lock(&self.0));
            if set.is_empty() {
                return;
            }
            set.shutdown().await;
        }
    }
}

impl<F> hyper::rt::Executor<F> for Tasks
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        self.spawn(async move {
            future.await;
        });
    }
}
