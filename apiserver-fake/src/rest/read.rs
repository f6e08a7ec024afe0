//! GET, LIST and WATCH (`endpoints/handlers/get.go`: `getResourceHandler`, `ListResource`;
//! `handlers/watch.go`: `serveWatch`), and the lines of a watch.
//!
//! LIST's `resourceVersion` and `resourceVersionMatch` follow the API conventions' table: unset
//! is the latest state; `0` (or N with NotOlderThan, or N unset-match) is served from the watch
//! cache, at least N (504 `Too large resource version` if the server has not reached N); N with
//! Exact is the state at N (410 Gone if compacted). resourceVersionMatch without resourceVersion
//! is 400. A WATCH starts "now" with the current state as ADDED events (resourceVersion unset),
//! from the cache (`0`), or after N (410 as an ERROR event if N is compacted). With
//! `sendInitialEvents=true` (which needs `allowWatchBookmarks=true` and
//! resourceVersionMatch=NotOlderThan, as upstream) the initial events end with a BOOKMARK
//! annotated `k8s.io/initial-events-end: "true"`. The server ends a watch after
//! `timeoutSeconds`, or, without it, after a seeded time in `[1800 s, 3600 s)` (upstream's
//! `--min-request-timeout` of 1800 s, randomised by up to double).

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use sim_core::{RngCore, SimTime};

use super::query::Query;
use super::route::Target;
use super::{Response, failure};
use crate::client::Client;
use crate::error::{ApiError, Reason};
use crate::fields::{FieldSelector, Filter};
use crate::object::Object;
use crate::selector::Selector;
use crate::server::{ApiServer, EventType, ListOptions, ReadAt, Watch, WatchEvent, WatchStart};

/// The annotation of the BOOKMARK that ends a watch's initial events.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// `metav1.ListMeta`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    resource_version: String,
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    continue_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining_item_count: Option<u64>,
}

/// A `<Kind>List`, fields in upstream's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct List<'a> {
    kind: String,
    api_version: &'a str,
    metadata: ListMeta,
    items: Vec<Object>,
}

/// The filter of a LIST or WATCH: 400 for a selector that does not parse.
fn filter_of(target: &Target, query: &Query) -> Result<Filter, ApiError> {
    let labels = Selector::parse(&query.label_selector)
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let (api_version, kind) = (&target.info.api_version, &target.info.kind);
    let fields = FieldSelector::parse(&query.field_selector, api_version, kind)
        .map_err(|e| ApiError::bad_request(e.message))?;
    Ok(Filter { labels, fields })
}

/// A resourceVersion parameter as a number; 400 otherwise.
fn version_number(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {text:?}")))
}

/// Which state a LIST reads.
fn read_at(server: &ApiServer, query: &Query) -> Result<ReadAt, ApiError> {
    let version = query.resource_version.as_deref().filter(|v| !v.is_empty());
    let matching = query.resource_version_match.as_deref().filter(|m| !m.is_empty());
    let read_at = match (version, matching) {
        (None, None) => ReadAt::Latest,
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided".to_string(),
            ));
        }
        (Some(v), None | Some("NotOlderThan")) => ReadAt::Cache(version_number(v)?),
        (Some(v), Some("Exact")) if version_number(v)? == 0 => {
            return Err(ApiError::bad_request(
                "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"".to_string(),
            ));
        }
        (Some(v), Some("Exact")) => ReadAt::Exact(version_number(v)?),
        (Some(_), Some(other)) => {
            return Err(ApiError::bad_request(format!(
                "unsupported resourceVersionMatch value {other:?}: supported values are \
                 \"Exact\" and \"NotOlderThan\""
            )));
        }
    };
    if let ReadAt::Cache(at_least) = read_at
        && at_least > server.resource_version()
    {
        return Err(ApiError::too_large_resource_version(at_least, server.resource_version()));
    }
    Ok(read_at)
}

impl ApiServer {
    pub(super) fn rest_get(&self, target: &Target, name: &str) -> Result<Response, ApiError> {
        let info = &target.info;
        let object = self.get(&info.api_version, &info.kind, target.item_namespace(), name)?;
        Ok(Response::of(200, &object))
    }

    pub(super) fn rest_list(&self, target: &Target, query: &Query) -> Result<Response, ApiError> {
        let options = ListOptions {
            filter: filter_of(target, query)?,
            read_at: read_at(self, query)?,
            limit: query.limit,
            continue_token: query.continue_token.clone(),
        };
        let info = &target.info;
        let namespace = target.namespace.as_deref();
        let page = self.list_with(&info.api_version, &info.kind, namespace, &options)?;
        let list = List {
            kind: format!("{}List", info.kind),
            api_version: &info.api_version,
            metadata: ListMeta {
                resource_version: page.list.resource_version.to_string(),
                continue_token: page.continue_token,
                remaining_item_count: page.remaining,
            },
            items: page.list.items,
        };
        Ok(Response::of(200, &list))
    }

    pub(super) fn rest_watch(&self, target: &Target, query: &Query) -> Result<Response, ApiError> {
        let filter = filter_of(target, query)?;
        let version = query.resource_version.as_deref().filter(|v| !v.is_empty());
        let start = match version {
            None => WatchStart::Now,
            Some("0") => WatchStart::Any,
            Some(v) => WatchStart::From(version_number(v)?),
        };
        let initial_end = query.send_initial_events == Some(true);
        if initial_end {
            let not_older = query.resource_version_match.as_deref() == Some("NotOlderThan");
            if !query.allow_watch_bookmarks || !not_older {
                return Err(ApiError::bad_request(
                    "sendInitialEvents requires setting allowWatchBookmarks=true and \
                     resourceVersionMatch=NotOlderThan"
                        .to_string(),
                ));
            }
        }
        let timeout = match query.timeout_seconds {
            Some(seconds) => Duration::from_secs(seconds.min(u64::from(u32::MAX))),
            None => {
                let jitter =
                    sim_core::with_stream("apiserver/watch-timeout", |r| r.next_u64() % 1800);
                Duration::from_secs(1800 + jitter)
            }
        };
        let info = &target.info;
        let namespace = target.namespace.as_deref();
        let bookmarks = query.allow_watch_bookmarks;
        let watch =
            self.watch_with(&info.api_version, &info.kind, namespace, start, bookmarks, &filter)?;
        let initial = initial_end.then(|| (watch.initial_events(), watch.started_at()));
        let stream = WatchStream {
            watch,
            api_version: info.api_version.clone(),
            kind: info.kind.clone(),
            deadline: SimTime::from_nanos(
                sim_core::now().as_nanos().saturating_add(timeout.as_nanos() as u64),
            ),
            initial,
            sent: 0,
            client: None,
            ended: false,
        };
        Ok(Response {
            status: 200,
            headers: vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("Transfer-Encoding".to_string(), "chunked".to_string()),
            ],
            body: super::Body::Watch(Box::new(stream)),
        })
    }
}

/// A watch response's lines: one JSON `{"type": …, "object": …}` per event, newline-terminated
/// (`metav1.WatchEvent`). The stream ends when the server closes the watch, at its timeout,
/// after an ERROR event, or when an injected `drop_watch` fault of the client that opened it
/// ends it.
pub struct WatchStream {
    watch: Watch,
    api_version: String,
    kind: String,
    deadline: SimTime,
    /// With `sendInitialEvents`: how many initial events, and the resourceVersion the
    /// initial-events-end bookmark carries (taken once sent).
    initial: Option<(usize, u64)>,
    sent: usize,
    client: Option<Client>,
    ended: bool,
}

/// `metav1.WatchEvent`.
#[derive(Serialize)]
struct EventLine<'a, T: Serialize> {
    #[serde(rename = "type")]
    event_type: &'a str,
    object: T,
}

impl WatchStream {
    /// Has `client`'s `drop_watch` fault apply to this stream.
    pub(crate) fn with_client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The next line (with its `\n`), waiting for an event; `None` once the stream ended.
    pub async fn next_line(&mut self) -> Option<Vec<u8>> {
        if self.ended {
            return None;
        }
        if let Some(line) = self.initial_end_bookmark() {
            return Some(line);
        }
        let wait = self.deadline.saturating_duration_since(sim_core::now());
        let event = match sim_core::timeout(wait, self.watch.next()).await {
            Ok(Some(event)) => event,
            Ok(None) | Err(_) => return self.end(),
        };
        if let Some(client) = &self.client
            && client.drops_watch(&format!("{} (REST)", self.kind))
        {
            self.watch.stop();
            return self.end();
        }
        Some(self.line(&event))
    }

    /// The next line if one is ready now.
    pub fn try_next_line(&mut self) -> Option<Vec<u8>> {
        if self.ended {
            return None;
        }
        if let Some(line) = self.initial_end_bookmark() {
            return Some(line);
        }
        let event = self.watch.try_next()?;
        Some(self.line(&event))
    }

    /// Ends the stream (the client closed the connection).
    pub fn stop(&mut self) {
        self.watch.stop();
        self.ended = true;
    }

    /// Whether the stream has ended.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    fn end(&mut self) -> Option<Vec<u8>> {
        self.ended = true;
        self.watch.stop();
        None
    }

    fn initial_end_bookmark(&mut self) -> Option<Vec<u8>> {
        let (count, rv) = self.initial?;
        if self.sent < count {
            return None;
        }
        self.initial = None;
        let object = json!({
            "kind": self.kind,
            "apiVersion": self.api_version,
            "metadata": {
                "resourceVersion": rv.to_string(),
                "annotations": { INITIAL_EVENTS_END: "true" },
            },
        });
        Some(encode_line("BOOKMARK", &object))
    }

    fn line(&mut self, event: &WatchEvent) -> Vec<u8> {
        self.sent += 1;
        match event.event_type {
            EventType::Error => {
                self.ended = true;
                let error = event.error.clone().unwrap_or_else(|| {
                    failure(Reason::InternalError, "the watch failed".to_string())
                });
                let status: Value = error.status();
                encode_line("ERROR", &status)
            }
            EventType::Bookmark => {
                let object = json!({
                    "kind": self.kind,
                    "apiVersion": self.api_version,
                    "metadata": { "resourceVersion": event.object.metadata.resource_version },
                });
                encode_line("BOOKMARK", &object)
            }
            other => encode_line(&other.to_string(), &*event.object),
        }
    }
}

fn encode_line(event_type: &str, object: &impl Serialize) -> Vec<u8> {
    let mut line =
        serde_json::to_vec(&EventLine { event_type, object }).expect("a watch event serialises");
    line.push(b'\n');
    line
}
