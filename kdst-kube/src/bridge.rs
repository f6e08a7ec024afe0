//! The `tower::Service` a `kube::Client` is built on: each HTTP request becomes a REST request
//! to the fake API server ([`apiserver_fake::Client::request`]), run in the kdst task that awaits
//! the response, with that client's latency, faults and perturbation points; a watch's response
//! body streams the watch's lines.
//!
//! kube requires the service, its futures and its bodies to be `Send`. Everything here runs on
//! the simulation's one thread, so the kdst values they hold (`Rc`-based) are wrapped in
//! `send_wrapper::SendWrapper`, which checks at run time that they never leave that thread.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use apiserver_fake::rest::{Body as RestBody, Request as RestRequest};
use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt};
use http_body::Frame;
use http_body_util::BodyExt;
use send_wrapper::SendWrapper;

/// A response body: bytes, or the lines of a watch.
pub struct Body {
    inner: SendWrapper<Kind>,
}

enum Kind {
    Full(Option<Bytes>),
    Lines(Pin<Box<dyn Stream<Item = Vec<u8>>>>),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut *self.inner {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Lines(lines) => {
                lines.as_mut().poll_next(cx).map(|line| line.map(|l| Ok(Frame::data(l.into()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&*self.inner, Kind::Full(None))
    }
}

/// The service: one per `kube::Client`, bound to one fake-cluster client.
pub struct Bridge {
    client: SendWrapper<apiserver_fake::Client>,
}

impl Bridge {
    pub(crate) fn new(client: apiserver_fake::Client) -> Self {
        Bridge { client: SendWrapper::new(client) }
    }
}

/// The future of one request.
type Answer = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>>>>;

impl tower::Service<http::Request<kube::client::Body>> for Bridge {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = SendWrapper<Answer>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        let client = (*self.client).clone();
        let answer: Answer = Box::pin(async move {
            let request = to_rest(request).await;
            let response = client.request(request).await;
            Ok(from_rest(response))
        });
        SendWrapper::new(answer)
    }
}

/// The REST request of an HTTP request (its body is whole: kube sends `Body::from(Vec<u8>)`).
async fn to_rest(request: http::Request<kube::client::Body>) -> RestRequest {
    let (parts, body) = request.into_parts();
    let header = |name: http::header::HeaderName| {
        parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    };
    let body = body.collect().await.map(|c| c.to_bytes().to_vec()).unwrap_or_default();
    RestRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        content_type: header(http::header::CONTENT_TYPE),
        accept: header(http::header::ACCEPT),
        user_agent: header(http::header::USER_AGENT),
        body,
    }
}

fn from_rest(response: apiserver_fake::rest::Response) -> http::Response<Body> {
    let mut builder = http::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    let kind = match response.body {
        RestBody::Full(bytes) => Kind::Full(Some(Bytes::from(bytes))),
        RestBody::Watch(watch) => {
            let lines = stream::unfold(*watch, |mut watch| async move {
                watch.next_line().await.map(|line| (line, watch))
            });
            Kind::Lines(lines.boxed_local())
        }
    };
    builder
        .body(Body { inner: SendWrapper::new(kind) })
        .expect("a status code and headers from the fake server are valid")
}
