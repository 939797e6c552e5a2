//! Request bodies for request mirrors: the body going upstream is teed,
//! frame by frame, into one copy per mirror, so a mirrored `POST` carries
//! its body as Envoy's shadow requests do.
//!
//! The request never waits for a mirror. A copy may fall [`MAX_BEHIND`]
//! bytes behind the request; past that, or when the request's body fails
//! or is dropped before its end, the copy ends in an error, so the mirror's
//! upstream never takes a cut body for a whole one (the client aborts the
//! copy's exchange instead of finishing it).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::proxy::{Body, BoxError};

/// Bytes a copy may hold that its mirror has not read yet; past this the
/// copy is abandoned. With at most 1,024 copies in flight, copies hold at
/// most 64 MiB.
pub const MAX_BEHIND: usize = 64 * 1024;

/// What a copy and the tee share.
#[derive(Debug, Default)]
struct Shared {
    /// Bytes sent to the copy and not yet read from it.
    behind: AtomicUsize,
    /// The copy is incomplete: it fell too far behind, or the request's
    /// body failed or was dropped before its end.
    broken: AtomicBool,
}

/// The request's body, copying every frame it yields to the copies.
#[derive(Debug)]
pub struct Tee {
    inner: Body,
    copies: Vec<(mpsc::UnboundedSender<Frame<Bytes>>, Arc<Shared>)>,
    /// The body has yielded its last frame (or is known to be empty).
    done: bool,
}

/// One mirror's copy of the request's body.
#[derive(Debug)]
pub struct CopyBody {
    rx: mpsc::UnboundedReceiver<Frame<Bytes>>,
    shared: Arc<Shared>,
    hint: SizeHint,
}

impl Tee {
    /// Tees `body` into `n` copies, which carry its size hint (so an exact
    /// length goes out as a `content-length` on the copies too).
    pub fn new(body: Body, n: usize) -> (Tee, Vec<CopyBody>) {
        let hint = body.size_hint();
        let (copies, out) = (0..n)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                let shared = Arc::new(Shared::default());
                let copy = CopyBody {
                    rx,
                    shared: Arc::clone(&shared),
                    hint,
                };
                ((tx, shared), copy)
            })
            .unzip();
        let done = body.is_end_stream();
        (
            Tee {
                inner: body,
                copies,
                done,
            },
            out,
        )
    }

    /// Ends every copy with an error.
    fn break_copies(&mut self) {
        for (_, shared) in &self.copies {
            shared.broken.store(true, Ordering::Release);
        }
        // Dropping the senders wakes the copies, which then see `broken`.
        self.copies.clear();
    }
}

impl HttpBody for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.copies.retain(|(tx, shared)| {
                    let copy = if let Some(data) = frame.data_ref() {
                        let n = data.len();
                        if shared.behind.fetch_add(n, Ordering::Relaxed) + n > MAX_BEHIND {
                            shared.broken.store(true, Ordering::Release);
                            return false;
                        }
                        Frame::data(data.clone())
                    } else if let Some(t) = frame.trailers_ref() {
                        Frame::trailers(t.clone())
                    } else {
                        return true;
                    };
                    // A copy whose mirror is gone needs no more frames.
                    tx.send(copy).is_ok()
                });
            }
            Poll::Ready(None) => {
                // The whole body went by: the copies end cleanly.
                this.done = true;
                this.copies.clear();
            }
            Poll::Ready(Some(Err(_))) => this.break_copies(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        // Dropped before its end (the upstream answered or failed early):
        // the copies did not get the whole body.
        if !self.done && !self.inner.is_end_stream() {
            self.break_copies();
        }
    }
}

impl HttpBody for CopyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.shared.behind.fetch_sub(data.len(), Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) if this.shared.broken.load(Ordering::Acquire) => {
                Poll::Ready(Some(Err("the request body was not copied whole".into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// Frames yielded one per poll, then the end.
    struct Frames(std::collections::VecDeque<Result<Frame<Bytes>, BoxError>>);

    impl HttpBody for Frames {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.get_mut().0.pop_front())
        }
    }

    /// A body of `chunks`, failing after them when `fail`.
    fn body(chunks: &[&'static [u8]], fail: bool) -> Body {
        let mut frames: std::collections::VecDeque<_> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        if fail {
            frames.push_back(Err("client went away".into()));
        }
        Body::new(Frames(frames))
    }

    #[tokio::test]
    async fn copies_get_every_frame_and_end_when_the_body_ends() {
        let (tee, copies) = Tee::new(body(&[b"ab", b"cd"], false), 2);
        let sent = tee.collect().await.unwrap().to_bytes();
        assert_eq!(&sent[..], b"abcd");
        for c in copies {
            assert_eq!(&c.collect().await.unwrap().to_bytes()[..], b"abcd");
        }
    }

    #[tokio::test]
    async fn a_failed_or_dropped_body_breaks_the_copies() {
        let (tee, copies) = Tee::new(body(&[b"ab"], true), 1);
        assert!(tee.collect().await.is_err());
        assert!(copies.into_iter().next().unwrap().collect().await.is_err());

        let (mut tee, copies) = Tee::new(body(&[b"ab", b"cd"], false), 1);
        let first = tee.frame().await.unwrap().unwrap();
        assert_eq!(first.data_ref().map(|d| &d[..]), Some(&b"ab"[..]));
        drop(tee);
        assert!(copies.into_iter().next().unwrap().collect().await.is_err());
    }

    #[tokio::test]
    async fn a_copy_too_far_behind_is_abandoned_and_the_request_goes_on() {
        static BIG: [u8; MAX_BEHIND] = [b'x'; MAX_BEHIND];
        let (tee, mut copies) = Tee::new(body(&[&BIG, b"more"], false), 2);
        // The first copy is read as the request goes; the second is not.
        let reader = copies.remove(0);
        let behind = copies.remove(0);
        let (sent, read) = tokio::join!(tee.collect(), reader.collect());
        assert_eq!(sent.unwrap().to_bytes().len(), MAX_BEHIND + 4);
        // The reader's copy may also have fallen behind (the tee ran
        // first); either way it ends whole or in an error, never cut.
        if let Ok(b) = read {
            assert_eq!(b.to_bytes().len(), MAX_BEHIND + 4);
        }
        assert!(behind.collect().await.is_err());
    }

    #[tokio::test]
    async fn an_exact_length_goes_to_the_copies() {
        let (tee, copies) = Tee::new(crate::proxy::full(&b"hello"[..]), 1);
        assert_eq!(copies[0].size_hint().exact(), Some(5));
        drop(tee.collect().await);
        assert_eq!(
            &copies
                .into_iter()
                .next()
                .unwrap()
                .collect()
                .await
                .unwrap()
                .to_bytes()[..],
            b"hello"
        );
    }
}
