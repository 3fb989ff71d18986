//! The response body of every route: one pre-encoded buffer, or a stream of frames
//! (Server-Sent Events). Local to its executor (the stream need not be `Send`).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::Stream;
use http_body::{Frame, SizeHint};

/// A response body.
pub struct Body(Kind);

enum Kind {
    Once(Option<Bytes>),
    Stream(Pin<Box<dyn Stream<Item = Bytes>>>),
}

impl Body {
    /// A complete body (its length goes into Content-Length).
    pub fn full(bytes: Bytes) -> Body {
        Body(Kind::Once((!bytes.is_empty()).then_some(bytes)))
    }

    pub fn empty() -> Body {
        Body(Kind::Once(None))
    }

    /// The whole body, when it is one buffer (`None` for a stream); empty for none.
    pub fn into_full(self) -> Option<Bytes> {
        match self.0 {
            Kind::Once(bytes) => Some(bytes.unwrap_or_default()),
            Kind::Stream(_) => None,
        }
    }

    /// A body produced chunk by chunk until the stream ends (chunked encoding).
    pub fn stream(stream: impl Stream<Item = Bytes> + 'static) -> Body {
        Body(Kind::Stream(Box::pin(stream)))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.0 {
            Kind::Once(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(stream) => stream
                .as_mut()
                .poll_next(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.0, Kind::Once(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Once(None) => SizeHint::with_exact(0),
            Kind::Once(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}
