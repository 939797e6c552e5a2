//! Internal redirects: the request body of a route that follows its
//! upstream's redirects is kept, as it goes upstream, for a second pass
//! (Envoy keeps it in its retry buffer), and the outcomes are counted.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use rauta_router::InternalRedirectRefusal;
use rauta_stats::Counter;

use crate::proxy::{Body, BoxError};

/// The most request body kept for a second pass: Envoy's default buffer
/// limit (`per_connection_buffer_limit_bytes`, 1 MiB), or a route's lower
/// `per_request_buffer_limit_bytes`. A larger body is not kept, and a
/// redirect of its request is not followed.
pub const BODY_LIMIT: usize = 1 << 20;

/// The limit for a route: [`BODY_LIMIT`], or the route's lower one.
pub fn limit_for(route: &rauta_router::RouteEntry) -> usize {
    route
        .per_request_buffer_limit_bytes()
        .map_or(BODY_LIMIT, |n| BODY_LIMIT.min(n as usize))
}

#[derive(Debug, Default)]
struct Store {
    chunks: Vec<Bytes>,
    size: usize,
    ended: bool,
    over: bool,
}

/// What a [`Keep`] body has seen of the request's body.
#[derive(Debug, Clone, Default)]
pub struct Kept(Arc<Mutex<Store>>);

impl Kept {
    /// The body for a second pass: `Ok` with the whole body when it was
    /// read to its end within the limit, else why not.
    pub fn body(&self) -> Result<Body, InternalRedirectRefusal> {
        let store = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !store.ended {
            return Err(InternalRedirectRefusal::RequestIncomplete);
        }
        if store.over {
            return Err(InternalRedirectRefusal::RequestBodyTooLarge);
        }
        Ok(match store.chunks.as_slice() {
            [] => crate::proxy::empty(),
            [one] => crate::proxy::full(one.clone()),
            many => {
                let mut all = BytesMut::with_capacity(store.size);
                for c in many {
                    all.extend_from_slice(c);
                }
                crate::proxy::full(all.freeze())
            }
        })
    }
}

/// A request body that keeps what it passes on (the chunks are shared,
/// not copied), up to a limit.
#[derive(Debug)]
pub struct Keep {
    inner: Body,
    kept: Kept,
    limit: usize,
}

impl Keep {
    /// Keeps `body` as it is read, up to `limit` bytes.
    pub fn new(body: Body, limit: usize) -> (Keep, Kept) {
        let kept = Kept::default();
        // A body known to be empty is whole (the upstream client does not
        // read one whose length is 0).
        {
            let mut s = kept.0.lock().unwrap_or_else(|e| e.into_inner());
            let hint = body.size_hint();
            s.ended = body.is_end_stream() || hint.exact() == Some(0);
            // A body known to be too large is not kept at all.
            s.over = hint.lower() > limit as u64;
        }
        (
            Keep {
                inner: body,
                kept: kept.clone(),
                limit,
            },
            kept,
        )
    }
}

impl HttpBody for Keep {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let out = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = matches!(out, Poll::Ready(None)) || self.inner.is_end_stream();
        if let Poll::Ready(Some(Ok(frame))) = &out {
            let mut s = self.kept.0.lock().unwrap_or_else(|e| e.into_inner());
            match frame.data_ref() {
                Some(data) if !s.over => {
                    if s.size + data.len() > self.limit {
                        s.over = true;
                        s.chunks = Vec::new();
                    } else {
                        s.size += data.len();
                        s.chunks.push(data.clone());
                    }
                }
                // Trailers are not forwarded (see docs/proxy.md).
                _ => {}
            }
        }
        if ended {
            self.kept.0.lock().unwrap_or_else(|e| e.into_inner()).ended = true;
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

/// Internal redirect outcomes: followed, and each reason one was not
/// (Envoy's `upstream_internal_redirect_succeeded_total` and
/// `passthrough_internal_redirect_*`).
#[derive(Debug, Default)]
pub struct RedirectCounts {
    /// Redirects followed.
    pub followed: Counter,
    refused: [Counter; REASONS.len()],
}

/// Every refusal, in the order its counter is kept.
const REASONS: [&str; 8] = [
    "request_incomplete",
    "body_too_large",
    "missing_location",
    "bad_location",
    "unsafe_scheme",
    "too_many_redirects",
    "no_route",
    "predicate",
];

impl RedirectCounts {
    /// Counts a redirect not followed.
    pub fn refused(&self, why: InternalRedirectRefusal) {
        if let Some(i) = REASONS.iter().position(|r| *r == why.as_str()) {
            self.refused[i].inc();
        }
    }

    /// (reason, count) for every reason.
    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        REASONS
            .iter()
            .zip(&self.refused)
            .map(|(r, c)| (*r, c.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body of these chunks, one frame each.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|c| Ok(Frame::data(c))))
        }
        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }

    fn chunks(parts: &[&'static [u8]]) -> Body {
        Body::new(Chunks(
            parts.iter().map(|p| Bytes::from_static(p)).collect(),
        ))
    }

    async fn text(b: Body) -> String {
        let bytes = b.collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_is_kept_whole() {
        let (keep, kept) = Keep::new(chunks(&[b"ab", b"cd", b"e"]), BODY_LIMIT);
        assert_eq!(
            kept.body().err(),
            Some(InternalRedirectRefusal::RequestIncomplete)
        );
        assert_eq!(text(Body::new(keep)).await, "abcde");
        assert_eq!(text(kept.body().unwrap()).await, "abcde");
        // An empty body is whole at once.
        let (_keep, kept) = Keep::new(crate::proxy::empty(), BODY_LIMIT);
        assert_eq!(text(kept.body().unwrap()).await, "");
    }

    /// A body whose length is known, that has not said it has ended (an
    /// HTTP/2 request with `content-length` whose end comes later).
    struct Sized(u64);

    impl HttpBody for Sized {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Pending
        }
        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.0)
        }
    }

    #[test]
    fn a_body_known_to_be_empty_is_whole_and_one_known_too_large_is_not_kept() {
        // The upstream client never reads a body whose length is 0.
        let (_keep, kept) = Keep::new(Body::new(Sized(0)), BODY_LIMIT);
        assert!(kept.body().is_ok());
        let (_keep, kept) = Keep::new(Body::new(Sized(1)), BODY_LIMIT);
        assert_eq!(
            kept.body().err(),
            Some(InternalRedirectRefusal::RequestIncomplete)
        );
        let (keep, kept) = Keep::new(Body::new(Sized(BODY_LIMIT as u64 + 1)), BODY_LIMIT);
        assert!(kept.0.lock().unwrap().over);
        drop(keep);
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_not_kept() {
        static BIG: [u8; BODY_LIMIT] = [b'x'; BODY_LIMIT];
        let (keep, kept) = Keep::new(chunks(&[&BIG, b"!"]), BODY_LIMIT);
        let all = Body::new(keep).collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), BODY_LIMIT + 1);
        assert_eq!(
            kept.body().err(),
            Some(InternalRedirectRefusal::RequestBodyTooLarge)
        );
    }

    #[tokio::test]
    async fn a_lower_limit_keeps_less() {
        let (keep, kept) = Keep::new(chunks(&[b"abc", b"de"]), 4);
        assert_eq!(text(Body::new(keep)).await, "abcde");
        assert_eq!(
            kept.body().err(),
            Some(InternalRedirectRefusal::RequestBodyTooLarge)
        );
        let (keep, kept) = Keep::new(chunks(&[b"abc", b"de"]), 5);
        assert_eq!(text(Body::new(keep)).await, "abcde");
        assert_eq!(text(kept.body().unwrap()).await, "abcde");
    }

    #[test]
    fn every_refusal_has_a_counter() {
        use InternalRedirectRefusal as No;
        let c = RedirectCounts::default();
        for why in [
            No::RequestIncomplete,
            No::RequestBodyTooLarge,
            No::MissingLocation,
            No::BadLocation,
            No::UnsafeScheme,
            No::TooManyRedirects,
            No::NoRoute,
            No::Predicate("p"),
        ] {
            c.refused(why);
        }
        assert!(c.refusals().all(|(_, n)| n == 1));
    }
}
