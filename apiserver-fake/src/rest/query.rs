//! The query parameters the API server reads (`metav1.ListOptions`, `GetOptions`,
//! `CreateOptions`, `PatchOptions`, `DeleteOptions` as query parameters), percent-decoded and
//! checked. A value that does not parse is 400 BadRequest naming the parameter; unknown
//! parameters are ignored, as upstream's decoder ignores them.

use crate::error::ApiError;

/// The parameters of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Query {
    pub(super) watch: bool,
    pub(super) label_selector: String,
    pub(super) field_selector: String,
    pub(super) resource_version: Option<String>,
    pub(super) resource_version_match: Option<String>,
    pub(super) limit: Option<u64>,
    pub(super) continue_token: Option<String>,
    pub(super) allow_watch_bookmarks: bool,
    pub(super) send_initial_events: Option<bool>,
    pub(super) timeout_seconds: Option<u64>,
    pub(super) field_manager: Option<String>,
    pub(super) force: Option<bool>,
    pub(super) dry_run: bool,
    pub(super) propagation_policy: Option<String>,
    pub(super) orphan_dependents: Option<bool>,
    pub(super) grace_period_seconds: Option<i64>,
}

/// Most parameters one query may carry (a bound on work for hostile input).
const PARAMETERS_MAX: usize = 64;

fn bad(name: &str, value: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("invalid value {value:?} for query parameter {name}: {why}"))
}

fn boolean(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "" | "1" | "true" | "True" | "TRUE" | "t" | "T" => Ok(true),
        "0" | "false" | "False" | "FALSE" | "f" | "F" => Ok(false),
        _ => Err(bad(name, value, "expected a boolean")),
    }
}

/// Decodes `%XX` and `+` (a space), as form values are.
pub(super) fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(index + 1..index + 3).ok_or("a truncated %-escape")?;
                let hex = std::str::from_utf8(hex).map_err(|_| "a bad %-escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "a bad %-escape")?);
                index += 2;
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8(out).map_err(|_| "invalid UTF-8 after decoding".to_string())
}

impl Query {
    /// Parses a raw query string.
    pub(super) fn parse(raw: &str) -> Result<Query, ApiError> {
        let mut query = Query::default();
        if raw.is_empty() {
            return Ok(query);
        }
        for (count, pair) in raw.split('&').filter(|p| !p.is_empty()).enumerate() {
            if count >= PARAMETERS_MAX {
                return Err(ApiError::bad_request(format!(
                    "too many query parameters (more than {PARAMETERS_MAX})"
                )));
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name).map_err(|why| bad("name", name, &why))?;
            let value = percent_decode(value).map_err(|why| bad(&name, value, &why))?;
            let number = |name: &str, value: &str| -> Result<u64, ApiError> {
                value
                    .parse::<u64>()
                    .map_err(|_| bad(name, value, "expected a non-negative integer"))
            };
            match name.as_str() {
                "watch" => query.watch = boolean(&name, &value)?,
                "labelSelector" => query.label_selector = value,
                "fieldSelector" => query.field_selector = value,
                "resourceVersion" => query.resource_version = Some(value),
                "resourceVersionMatch" => query.resource_version_match = Some(value),
                "limit" => query.limit = Some(number(&name, &value)?),
                "continue" => query.continue_token = Some(value),
                "allowWatchBookmarks" => query.allow_watch_bookmarks = boolean(&name, &value)?,
                "sendInitialEvents" => query.send_initial_events = Some(boolean(&name, &value)?),
                "timeoutSeconds" => query.timeout_seconds = Some(number(&name, &value)?),
                "fieldManager" => query.field_manager = Some(value),
                "force" => query.force = Some(boolean(&name, &value)?),
                "dryRun" => query.dry_run = !value.is_empty(),
                "propagationPolicy" => query.propagation_policy = Some(value),
                "orphanDependents" => query.orphan_dependents = Some(boolean(&name, &value)?),
                "gracePeriodSeconds" => {
                    let seconds = value
                        .parse::<i64>()
                        .map_err(|_| bad(&name, &value, "expected an integer"))?;
                    query.grace_period_seconds = Some(seconds);
                }
                _ => {}
            }
        }
        Ok(query)
    }
}
