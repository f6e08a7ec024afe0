//! The Kubernetes REST API in front of the fake server: an HTTP-shaped [`Request`] (method,
//! path, query, `Content-Type`, `Accept`, body bytes) in, a [`Response`] (status code, headers,
//! body bytes or a stream of watch-event lines) out, as kube-apiserver answers it. No HTTP
//! library: the kube bridge, tests and any other client call [`ApiServer::handle`] (one
//! simulation step, like every Rust verb) or [`crate::Client::request`] (with the client's
//! latency, faults and perturbation points around it, as for the Rust verbs).
//!
//! Every request runs through the same server verbs as the Rust calls, so the trace, footprints,
//! limits and perturbations are the same whichever way a client comes in. Upstream's request
//! handling lives in `staging/src/k8s.io/apiserver/pkg/endpoints` (`installer.go` for the
//! routes, `handlers/{get,create,update,patch,delete,watch}.go`, `handlers/responsewriters` for
//! `Status` bodies, `discovery/` for the discovery documents). The files:
//! - `route.rs`: paths to resources (core and groups, namespaced and cluster-scoped, items,
//!   `status` and `finalize`), and the discovery documents;
//! - `query.rs`: the query parameters, decoded and checked;
//! - `read.rs`: GET, LIST and WATCH, and [`WatchStream`], the lines of a watch;
//! - `write.rs`: POST, PUT, DELETE and the four PATCH types;
//! - `json_patch.rs`: RFC 6902 JSON patches (with the `json-patch` crate) and upstream's limits;
//! - `strategic.rs`: strategic merge patches for built-in kinds;
//! - `apply.rs`: server-side apply and the `managedFields` of every REST write.

mod apply;
mod json_patch;
mod query;
mod read;
mod route;
mod strategic;
mod write;

use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, Reason};
use crate::server::ApiServer;

pub use read::WatchStream;
pub use strategic::{StrategicMergeError, strategic_merge_patch};

/// The largest request body the server reads (`apiserver`'s `MaxRequestBodyBytes`, 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// An HTTP request, as far as the API server looks at it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE` (any other is 405).
    pub method: String,
    /// The path, e.g. `/api/v1/namespaces/default/configmaps/a`, without the query.
    pub path: String,
    /// The raw query string after `?` (percent-encoded), e.g. `watch=1&resourceVersion=12`.
    pub query: String,
    /// The `Content-Type` header (empty if absent).
    pub content_type: String,
    /// The `Accept` header (empty if absent).
    pub accept: String,
    /// The `User-Agent` header (empty if absent): up to its first `/`, the field manager of a
    /// write without `fieldManager`.
    pub user_agent: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// A request without a body; `uri` is the path with an optional `?query`.
    pub fn new(method: &str, uri: &str) -> Self {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        Request {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            ..Request::default()
        }
    }

    /// `GET uri`.
    pub fn get(uri: &str) -> Self {
        Request::new("GET", uri)
    }

    /// Sets the body and its `Content-Type`.
    pub fn with_body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = content_type.to_string();
        self.body = body.into();
        self
    }

    /// Sets a JSON body (`application/json`).
    pub fn with_json(self, body: &Value) -> Self {
        let bytes = serde_json::to_vec(body).expect("a JSON value always serialises");
        self.with_body("application/json", bytes)
    }

    /// Sets the `Accept` header.
    pub fn with_accept(mut self, accept: &str) -> Self {
        self.accept = accept.to_string();
        self
    }

    /// Sets the `User-Agent` header.
    pub fn with_user_agent(mut self, user_agent: &str) -> Self {
        self.user_agent = user_agent.to_string();
        self
    }

    /// `METHOD path?query`, for traces and spans.
    pub fn line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// A response's body: bytes, or the lines of a watch.
pub enum Body {
    /// The whole body.
    Full(Vec<u8>),
    /// A watch: newline-delimited JSON events, read with [`WatchStream::next_line`].
    Watch(Box<WatchStream>),
}

/// An HTTP response.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers (`Content-Type`, and `Transfer-Encoding` for a watch).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = match &self.body {
            Body::Full(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Body::Watch(_) => "<watch stream>".to_string(),
        };
        f.debug_struct("Response").field("status", &self.status).field("body", &body).finish()
    }
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".to_string(), "application/json".to_string())],
            body: Body::Full(body),
        }
    }

    /// A JSON response of a value that serialises.
    fn of(status: u16, body: &impl Serialize) -> Self {
        Response::json(status, serde_json::to_vec(body).expect("a response body serialises"))
    }

    /// The `metav1.Status` failure response of `error`.
    pub fn error(error: &ApiError) -> Self {
        Response::json(error.code, error.status_bytes())
    }

    /// The body bytes (empty for a watch).
    pub fn bytes(&self) -> &[u8] {
        match &self.body {
            Body::Full(bytes) => bytes,
            Body::Watch(_) => &[],
        }
    }

    /// The body as JSON, if it is JSON.
    pub fn value(&self) -> Option<Value> {
        serde_json::from_slice(self.bytes()).ok()
    }

    /// The watch stream, if this is a watch.
    pub fn into_watch(self) -> Option<WatchStream> {
        match self.body {
            Body::Watch(stream) => Some(*stream),
            Body::Full(_) => None,
        }
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error of a failure response, read back from its `Status` body.
    pub fn api_error(&self) -> Option<ApiError> {
        if self.is_success() {
            return None;
        }
        let status = self.value()?;
        Some(ApiError::from_status(&status))
    }
}

/// A failure with the given reason and message.
fn failure(reason: Reason, message: impl Into<String>) -> ApiError {
    ApiError::with_reason(reason, message.into())
}

/// The 404 of a path that names no resource (go-restful's answer under an API group version).
fn no_such_path() -> ApiError {
    failure(Reason::NotFound, "the server could not find the requested resource")
}

/// The 405 of a method the path does not take.
fn method_not_allowed(method: &str) -> ApiError {
    failure(
        Reason::MethodNotAllowed,
        format!("the server does not allow this method on the requested resource ({method})"),
    )
}

/// The media types that parse as JSON or YAML objects.
fn is_json(content_type: &str) -> bool {
    matches!(content_type, "application/json" | "" | "*/*")
}

/// The `Content-Type` without parameters (`; charset=utf-8`), lower-case.
fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Whether `accept` allows a JSON answer.
fn accepts_json(accept: &str) -> bool {
    accept.trim().is_empty()
        || accept.split(',').any(|part| {
            let media = media_type(part);
            matches!(media.as_str(), "application/json" | "*/*" | "application/*")
        })
}

/// What a request does, as [`crate::Client`]'s faults and perturbation points name it: the
/// verb of the Rust call it matches (`GET`, `LIST`, `WATCH`, `CREATE`, `UPDATE status`, …),
/// the kind and the object's name.
pub(crate) struct CallTarget {
    pub(crate) verb: String,
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) write: bool,
}

/// Only the name, read from a create's body.
#[derive(serde::Deserialize)]
struct NameOnly {
    #[serde(default)]
    metadata: NameMeta,
}

#[derive(Default, serde::Deserialize)]
struct NameMeta {
    #[serde(default)]
    name: String,
}

/// The [`CallTarget`] of `request`, if its path names a resource.
pub(crate) fn call_target(server: &ApiServer, request: &Request) -> Option<CallTarget> {
    let route::Route::Resource(target) = route::parse(server, &request.path).ok()? else {
        return None;
    };
    let sub = target.subresource.as_deref();
    let (verb, name) = match (&target.scope, request.method.as_str()) {
        (route::Scope::Collection, "GET") => {
            let watch = query::Query::parse(&request.query).is_ok_and(|q| q.watch);
            (if watch { "WATCH" } else { "LIST" }.to_string(), String::new())
        }
        (route::Scope::Collection, "POST") => {
            let name = serde_json::from_slice::<NameOnly>(&request.body)
                .map(|n| n.metadata.name)
                .unwrap_or_default();
            ("CREATE".to_string(), name)
        }
        (route::Scope::Item(name), method) => {
            let verb = match (method, sub) {
                ("PUT", None) => "UPDATE".to_string(),
                ("PUT", Some(sub)) => format!("UPDATE {sub}"),
                ("PATCH", None) => "PATCH".to_string(),
                ("PATCH", Some(sub)) => format!("PATCH {sub}"),
                (method, _) => method.to_string(),
            };
            (verb, name.clone())
        }
        (_, method) => (method.to_string(), String::new()),
    };
    let write = !matches!(request.method.as_str(), "GET");
    let info = target.info;
    Some(CallTarget { verb, api_version: info.api_version, kind: info.kind, name, write })
}

impl ApiServer {
    /// Answers one REST request, in one simulation step (a watch's events come later, from its
    /// [`WatchStream`]). Never panics on any input: a malformed request is a `Status` failure.
    pub fn handle(&self, request: &Request) -> Response {
        if !accepts_json(&request.accept) {
            let why = format!(
                "only the following media types are accepted: application/json, \
                 application/yaml, application/vnd.kubernetes.protobuf (Accept: {})",
                request.accept
            );
            return Response::error(&failure(Reason::NotAcceptable, why));
        }
        if request.body.len() > MAX_BODY_BYTES {
            let why = format!("Request entity too large: limit is {MAX_BODY_BYTES}");
            return Response::error(&failure(Reason::RequestEntityTooLarge, why));
        }
        let route = match route::parse(self, &request.path) {
            Ok(route) => route,
            Err(error) => return Response::error(&error),
        };
        let result = match route {
            route::Route::Discovery(document) => match request.method.as_str() {
                "GET" => Ok(route::discovery(self, &document)),
                method => Err(method_not_allowed(method)),
            },
            route::Route::Resource(target) => query::Query::parse(&request.query)
                .and_then(|query| self.serve(&target, &query, request)),
        };
        result.unwrap_or_else(|error| Response::error(&error))
    }

    fn serve(
        &self,
        target: &route::Target,
        query: &query::Query,
        request: &Request,
    ) -> Result<Response, ApiError> {
        use route::Scope;
        let method = request.method.as_str();
        match (&target.scope, target.subresource.as_deref(), method) {
            (Scope::Collection, None, "GET") if query.watch => self.rest_watch(target, query),
            (Scope::Collection, None, "GET") => self.rest_list(target, query),
            (Scope::Collection, None, "POST") => self.rest_create(target, query, request),
            (Scope::Item(name), None | Some("status"), "GET") => self.rest_get(target, name),
            (Scope::Item(name), None | Some("status") | Some("finalize"), "PUT") => {
                self.rest_update(target, name, query, request)
            }
            (Scope::Item(name), None | Some("status"), "PATCH") => {
                self.rest_patch(target, name, query, request)
            }
            (Scope::Item(name), None, "DELETE") => self.rest_delete(target, name, query, request),
            (_, _, method) => Err(method_not_allowed(method)),
        }
    }
}
