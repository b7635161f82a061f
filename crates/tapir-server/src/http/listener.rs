//! The HTTP API's listener: a cap on open connections and an idle timeout,
//! so that idle keep-alive connections and slowloris clients cannot be held
//! for ever nor use up the file descriptors the RTP sockets need.
//!
//! - At most `[http] max_connections` connections are open at once; one
//!   more is answered `503 Service Unavailable` (best effort, without
//!   waiting) and closed at once.
//! - A connection on which tapir has written nothing for
//!   `[http] idle_timeout_secs` is closed: an idle keep-alive connection,
//!   a client that never completes its request (slowloris, which keeps
//!   sending a byte now and then: reads do not count as activity), or one
//!   that stopped reading what tapir writes. Event streams are pinged every
//!   30 s and media streams carry frames, so they are never idle while
//!   their client listens.

use axum::serve::Listener;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// What a connection over the cap is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Retry-After: 5\r\nContent-Length: 0\r\n\r\n";

/// How long accepting pauses after an error such as running out of file
/// descriptors (retrying at once would spin).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How often a refused connection is logged at most.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A TCP listener that caps open connections and closes idle ones.
#[derive(Debug)]
pub struct BoundedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
    last_warning: Option<Instant>,
    refused: u64,
}

impl BoundedListener {
    /// Serve at most `max_connections` at once (at least one), closing a
    /// connection tapir has written nothing on for `idle_timeout`.
    pub fn new(inner: TcpListener, max_connections: usize, idle_timeout: Duration) -> Self {
        BoundedListener {
            inner,
            permits: Arc::new(Semaphore::new(
                max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            idle_timeout: idle_timeout.max(Duration::from_millis(100)),
            last_warning: None,
            refused: 0,
        }
    }

    fn refuse(&mut self, stream: TcpStream, from: SocketAddr) {
        // Best effort: a full socket buffer is not waited for.
        let _ = stream.try_write(BUSY);
        drop(stream);
        self.refused += 1;
        metrics::counter!("tapir_http_connections_refused_total").increment(1);
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|last| now.duration_since(last) >= WARN_EVERY)
        {
            self.last_warning = Some(now);
            tracing::warn!(%from, refused = self.refused, "HTTP connection cap reached: refusing connections ([http] max_connections)");
        }
    }
}

impl Listener for BoundedListener {
    type Io = BoundedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (BoundedStream, SocketAddr) {
        loop {
            let (stream, from) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "HTTP accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    return (BoundedStream::new(stream, permit, self.idle_timeout), from);
                }
                Err(_) => self.refuse(stream, from),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// One accepted connection: holds its place under the cap until dropped,
/// and fails with `TimedOut` once tapir has written nothing on it for the
/// idle timeout (hyper then closes it).
#[derive(Debug)]
pub struct BoundedStream {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl BoundedStream {
    fn new(inner: TcpStream, permit: OwnedSemaphorePermit, idle_timeout: Duration) -> Self {
        BoundedStream {
            inner,
            _permit: permit,
            idle_timeout,
            deadline: Box::pin(tokio::time::sleep(idle_timeout)),
        }
    }

    /// `Ready(error)` once the deadline passed; registers the waker otherwise.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        self.deadline.as_mut().poll(cx).is_ready().then(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "HTTP connection idle: closed ([http] idle_timeout_secs)",
            )
        })
    }

    fn wrote(&mut self, written: usize) {
        if written > 0 {
            let next = Instant::now() + self.idle_timeout;
            self.deadline.as_mut().reset(next);
        }
    }
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => match this.expired(cx) {
                Some(error) => Poll::Ready(Err(error)),
                None => Poll::Pending,
            },
            ready => {
                // Reads do not keep a connection alive, but a client that
                // dribbles bytes must still be cut once its time is up.
                if let Some(error) = this.expired(cx) {
                    return Poll::Ready(Err(error));
                }
                ready
            }
        }
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(written)) => {
                this.wrote(written);
                Poll::Ready(Ok(written))
            }
            Poll::Pending => match this.expired(cx) {
                Some(error) => Poll::Ready(Err(error)),
                None => Poll::Pending,
            },
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(written)) => {
                this.wrote(written);
                Poll::Ready(Ok(written))
            }
            Poll::Pending => match this.expired(cx) {
                Some(error) => Poll::Ready(Err(error)),
                None => Poll::Pending,
            },
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
