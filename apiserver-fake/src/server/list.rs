//! LIST with every option a client sends: label and field selectors, the state it reads (the
//! latest, the watch cache, or an exact resourceVersion) and pagination with `limit` and
//! `continue`. Mirrors upstream `registry/generic/registry/store.go` (`Store.List`),
//! `storage/cacher/cacher.go` (`Cacher.GetList`, which serves resourceVersion "0" and
//! NotOlderThan reads) and `storage/etcd3/store.go` (`GetList`, `encodeContinue`,
//! `decodeContinue`).
//!
//! Pages are taken in (namespace, name) order from one snapshot: the continue token carries the
//! snapshot's resourceVersion and the last key returned, as upstream's does (unpadded URL-safe base64 of
//! `{"v":"meta.k8s.io/v1","rv":N,"start":"<namespace>/<name>\u0000"}`). A token whose
//! resourceVersion has left the history is 410 Expired, with upstream's text. Differences from
//! upstream: etcd orders keys as the strings `<namespace>/<name>`, kdst by the pair (the two
//! differ only for namespaces that are a prefix of another followed by a byte below `/`); reads
//! from the watch cache honour `limit` (upstream's cache does since 1.34's list-from-cache
//! snapshots).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as ENCODING;

use super::{ApiServer, ObjectList, trace_list};
use crate::error::ApiError;
use crate::fields::Filter;
use crate::object::Object;

/// Which state a read sees (`resourceVersion` with `resourceVersionMatch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadAt {
    /// resourceVersion unset: the latest state, consistent (a quorum read).
    #[default]
    Latest,
    /// resourceVersion "0", or N with NotOlderThan: the watch cache at some resourceVersion not
    /// older than this one, which may be up to [`super::ServerConfig::stale_reads`] behind.
    Cache(u64),
    /// resourceVersion N with Exact: the state at N (410 Gone if N left the history).
    Exact(u64),
}

/// The options of a LIST.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Which objects.
    pub filter: Filter,
    /// Which state.
    pub read_at: ReadAt,
    /// At most this many items (a page), if set and not 0.
    pub limit: Option<u64>,
    /// The token of the previous page.
    pub continue_token: Option<String>,
}

/// One page of a LIST.
#[derive(Clone, Debug, PartialEq)]
pub struct ListPage {
    /// The items and the snapshot's resourceVersion.
    pub list: ObjectList,
    /// The token for the next page, if items remain.
    pub continue_token: Option<String>,
    /// How many items remain after this page (upstream gives it when no selector is set).
    pub remaining: Option<u64>,
}

/// The message of a 410 for an expired continue token (`storage/errors.go`, `NewResourceExpired`
/// as `etcd3` words it).
const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a \
    consistent list result. You can start a new list without the continue parameter, or use the \
    continue token in this response to retrieve the remainder of the results. Continuing with the \
    provided token results in an inconsistent list - objects that were created, modified, or \
    deleted between the time the first chunk was returned and now may show up in the list.";

/// The content of a continue token.
#[derive(serde::Serialize, serde::Deserialize)]
struct Token {
    v: String,
    rv: u64,
    start: String,
}

fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    let start = if namespace.is_empty() {
        format!("{name}\u{0}")
    } else {
        format!("{namespace}/{name}\u{0}")
    };
    let token = Token { v: "meta.k8s.io/v1".to_string(), rv, start };
    ENCODING.encode(serde_json::to_vec(&token).expect("a token always serialises"))
}

/// The snapshot resourceVersion and the (namespace, name) after which the page starts.
fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    let bad = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let bytes = ENCODING.decode(token).map_err(|e| bad(&e.to_string()))?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|e| bad(&e.to_string()))?;
    if token.v != "meta.k8s.io/v1" {
        return Err(bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"));
    }
    let start = token.start.strip_suffix('\u{0}').unwrap_or(&token.start);
    if token.rv == 0 || start.is_empty() {
        return Err(bad("continue key is empty"));
    }
    let key = match start.split_once('/') {
        Some((namespace, name)) => (namespace.to_string(), name.to_string()),
        None => (String::new(), start.to_string()),
    };
    Ok((token.rv, key))
}

impl ApiServer {
    /// LIST with options, in one namespace or (`None`) all.
    pub fn list_with(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ListPage, ApiError> {
        let store = self.read_store();
        let (id, info) = store.kind(api_version, kind)?;
        let continued = match &options.continue_token {
            Some(token) if !token.is_empty() => Some(decode_continue(token)?),
            _ => None,
        };
        let (at, mut state) = match (continued.as_ref().map(|(rv, _)| *rv), options.read_at) {
            (Some(rv), _) if rv < store.compacted || rv > store.rv => {
                return Err(ApiError::with_reason(
                    crate::error::Reason::Expired,
                    CONTINUE_EXPIRED.to_string(),
                ));
            }
            (Some(rv), _) => (rv, store.state_at(id, rv)),
            (None, ReadAt::Latest) => {
                (store.rv, store.objects.get(&id).cloned().unwrap_or_default())
            }
            (None, ReadAt::Cache(at_least)) => {
                let at = store.stale_point(at_least);
                let mut state = store.state_at(id, at);
                if let Some((ns, name, frozen)) = store.frozen_for(id) {
                    match frozen {
                        Some(object) => state.insert((ns, name), object),
                        None => state.remove(&(ns, name)),
                    };
                }
                (at, state)
            }
            (None, ReadAt::Exact(rv)) if rv < store.compacted => {
                return Err(ApiError::expired(rv, store.compacted));
            }
            (None, ReadAt::Exact(rv)) if rv > store.rv => {
                return Err(ApiError::too_large_resource_version(rv, store.rv));
            }
            (None, ReadAt::Exact(rv)) => (rv, store.state_at(id, rv)),
        };
        if let Some((_, start)) = &continued {
            state = state.split_off(start);
            state.remove(start);
        }
        let in_scope = |o: &Object| {
            namespace.is_none_or(|ns| !info.namespaced || o.metadata.namespace == ns)
                && options.filter.matches(o)
        };
        let limit = options.limit.filter(|l| *l > 0).map_or(usize::MAX, |l| l as usize);
        let mut matching = state.into_values().filter(|o| in_scope(o));
        let items: Vec<Object> = matching.by_ref().take(limit).map(|o| (*o).clone()).collect();
        let rest = matching.count() as u64;
        let (continue_token, remaining) = match items.last() {
            Some(last) if rest > 0 => (
                Some(encode_continue(at, &last.metadata.namespace, &last.metadata.name)),
                options.filter.is_empty().then_some(rest),
            ),
            _ => (None, None),
        };
        let page = ListPage {
            list: ObjectList { items, resource_version: at },
            continue_token,
            remaining,
        };
        drop(store);
        let mut how = String::new();
        if !options.filter.is_empty() {
            how.push_str(&format!(" with {}", options.filter));
        }
        match options.read_at {
            ReadAt::Latest => {}
            ReadAt::Cache(_) => how.push_str(" (from cache)"),
            ReadAt::Exact(rv) => how.push_str(&format!(" at rv {rv}")),
        }
        if let Some(limit) = options.limit.filter(|l| *l > 0) {
            how.push_str(&format!(" limit {limit}"));
        }
        if continued.is_some() {
            how.push_str(" continued");
        }
        trace_list(&info, namespace, &how, &page.list);
        Ok(page)
    }
}
