//! Bodies for a request whose stream has a lifetime (a route's or the
//! listener's `max_stream_duration`): the request's body notes when it has
//! been read to its end (Envoy then answers a stream that ran out of time
//! with 504, before that with 408), and the response's body ends in an
//! error once the time is up, so the client sees the stream cut, as Envoy
//! resets it.

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::proxy::{Body, BoxError};

/// A request body that records when it has yielded its last frame.
#[derive(Debug)]
pub struct Watched {
    inner: Body,
    done: Arc<AtomicBool>,
}

impl Watched {
    /// Watches `body`; the flag is set once it has ended (at once for a
    /// body that is already at its end).
    pub fn new(body: Body) -> (Watched, Arc<AtomicBool>) {
        let done = Arc::new(AtomicBool::new(body.is_end_stream()));
        (
            Watched {
                inner: body,
                done: done.clone(),
            },
            done,
        )
    }
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let out = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(out, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::Relaxed);
        }
        out
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a response body ends in when its stream's time is up.
#[derive(Debug)]
pub struct DurationReached;

impl fmt::Display for DurationReached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("downstream duration timeout")
    }
}

impl std::error::Error for DurationReached {}

/// A response body that fails at `end` if it has not finished by then.
///
/// The time is checked whenever the body is polled: while the client does
/// not read (the connection's send buffer is full), nothing polls it, and
/// the cut comes when the client reads again.
#[derive(Debug)]
pub struct Limited {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
}

impl Limited {
    /// `body`, cut at `end`.
    pub fn new(body: Body, end: Instant) -> Limited {
        Limited {
            inner: body,
            sleep: Box::pin(tokio::time::sleep_until(end)),
        }
    }
}

impl HttpBody for Limited {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // The clock first, so that a body that always has data ready (a
        // fast upstream, a large download) is still cut on time; the
        // timer's waker is registered either way.
        // (The timer rounds up to its next millisecond tick: the clock
        // says whether the time is up.)
        if !self.inner.is_end_stream()
            && (self.sleep.as_mut().poll(cx).is_ready() || Instant::now() >= self.sleep.deadline())
        {
            return Poll::Ready(Some(Err(Box::new(DurationReached))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::time::Duration;
    use tokio::sync::mpsc;

    /// A body of the frames sent into a channel.
    struct Channel(mpsc::Receiver<Bytes>);

    impl HttpBody for Channel {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn a_response_body_is_cut_when_the_time_is_up() {
        let (tx, rx) = mpsc::channel(4);
        // Ten seconds for the first frame, however slow the machine; the
        // deadline is then moved to now, and the body waits for more.
        let mut body = Limited::new(
            Body::new(Channel(rx)),
            Instant::now() + Duration::from_secs(10),
        );
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        let end = Instant::now() + Duration::from_millis(20);
        body.sleep.as_mut().reset(end);
        // Nothing more comes (the sender is still there): the body fails
        // once the time is up, not before.
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<DurationReached>(), "{err}");
        assert!(Instant::now() >= end);
        drop(tx);
    }

    #[tokio::test]
    async fn a_response_body_with_data_ready_is_still_cut() {
        // A body that never waits (a fast upstream): the time is up, so
        // nothing more goes out.
        struct Endless;
        impl HttpBody for Endless {
            type Data = Bytes;
            type Error = BoxError;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
            }
        }
        let mut body = Limited::new(Body::new(Endless), Instant::now());
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<DurationReached>(), "{err}");
        // One that has ended is whole, however late.
        let body = Limited::new(crate::proxy::empty(), Instant::now());
        assert!(body.collect().await.unwrap().to_bytes().is_empty());
    }

    #[tokio::test]
    async fn a_response_body_in_time_is_whole() {
        let end = Instant::now() + Duration::from_secs(60);
        let body = Limited::new(crate::proxy::full("whole"), end);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "whole");
    }

    #[tokio::test]
    async fn a_request_body_notes_its_end() {
        let (tx, rx) = mpsc::channel(4);
        let (mut body, done) = Watched::new(Body::new(Channel(rx)));
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "abc"
        );
        assert!(!done.load(Ordering::Relaxed));
        drop(tx);
        assert!(body.frame().await.is_none());
        assert!(done.load(Ordering::Relaxed));
        let (_, done) = Watched::new(crate::proxy::empty());
        assert!(done.load(Ordering::Relaxed));
    }
}
