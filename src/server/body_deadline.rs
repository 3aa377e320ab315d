//! A total deadline for reading a request body. tower-http's body timeout
//! only bounds the gap between two frames, so a body trickled one byte
//! every few seconds would hold its connection (and a descriptor) for ever.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep, sleep_until};

/// How long a whole request body may take to arrive: 1 MiB (the default
/// `max_body`) at 20 KiB/s.
pub const BODY_DEADLINE: Duration = Duration::from_secs(60);

/// Wraps every request's body in [`Deadline`].
pub async fn limit(req: Request, next: Next) -> Response {
    let req = req.map(|body| Body::new(Deadline::new(body, BODY_DEADLINE)));
    next.run(req).await
}

/// A body that fails once its deadline passes.
pub struct Deadline {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
    within: Duration,
}

/// The error a late body ends with; handlers see it as a read error.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct TooSlow(Duration);

impl Deadline {
    pub fn new(inner: Body, within: Duration) -> Self {
        Deadline {
            inner,
            sleep: Box::pin(sleep_until(Instant::now() + within)),
            within,
        }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(TooSlow(self.within)))));
        }
        Poll::Pending
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

    #[tokio::test(start_paused = true)]
    async fn a_trickled_body_fails_at_the_deadline() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        let trickle = tokio::spawn(async move {
            loop {
                if tx
                    .send(Ok(Frame::data(Bytes::from_static(b"x"))))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        let stream =
            http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        let body = Deadline::new(Body::new(stream), Duration::from_secs(10));
        let started = Instant::now();
        let result = body.collect().await;
        assert!(result.is_err(), "the body must not be read to the end");
        assert!(started.elapsed() >= Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(13));
        trickle.abort();
    }

    #[tokio::test]
    async fn a_prompt_body_passes_untouched() {
        let body = Deadline::new(Body::from("hello"), Duration::from_secs(10));
        let bytes = body.collect().await.map(|c| c.to_bytes());
        assert_eq!(bytes.ok().as_deref(), Some(&b"hello"[..]));
    }
}
