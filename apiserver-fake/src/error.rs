//! API errors shaped like Kubernetes' `metav1.Status`, with the upstream texts
//! (`k8s.io/apimachinery/pkg/api/errors`).

use std::fmt;

use serde::Serialize;

/// The machine-readable reason of a failed call (`metav1.StatusReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Reason {
    /// 404.
    NotFound,
    /// 409 on create.
    AlreadyExists,
    /// 409: a stale resourceVersion or a failed precondition.
    Conflict,
    /// 422: validation failed.
    Invalid,
    /// 403: admission refused the request.
    Forbidden,
    /// 410: the requested resourceVersion is older than the retained history.
    Expired,
    /// 400.
    BadRequest,
    /// 500.
    InternalError,
    /// 504: the request did not complete in time (it may or may not have been applied).
    Timeout,
}

impl Reason {
    /// The HTTP status code.
    pub fn code(self) -> u16 {
        match self {
            Reason::NotFound => 404,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Invalid => 422,
            Reason::Forbidden => 403,
            Reason::Expired => 410,
            Reason::BadRequest => 400,
            Reason::InternalError => 500,
            Reason::Timeout => 504,
        }
    }
}

/// A failed API call: `metav1.Status` with `status: Failure`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// The HTTP status code.
    pub code: u16,
    /// Why, for machines.
    pub reason: Reason,
    /// Why, for people: the upstream text.
    pub message: String,
    /// `details.causes[].reason`, when upstream sets one (e.g. `NamespaceContentTerminating`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl ApiError {
    fn new(reason: Reason, message: String) -> Self {
        ApiError { code: reason.code(), reason, message, cause: None }
    }

    /// `<resource> "<name>" not found`.
    pub fn not_found(resource: &str, name: &str) -> Self {
        ApiError::new(Reason::NotFound, format!("{resource} \"{name}\" not found"))
    }

    /// `<resource> "<name>" already exists`.
    pub fn already_exists(resource: &str, name: &str) -> Self {
        ApiError::new(Reason::AlreadyExists, format!("{resource} \"{name}\" already exists"))
    }

    /// `Operation cannot be fulfilled on <resource> "<name>": <why>`.
    pub fn conflict(resource: &str, name: &str, why: &str) -> Self {
        ApiError::new(
            Reason::Conflict,
            format!("Operation cannot be fulfilled on {resource} \"{name}\": {why}"),
        )
    }

    /// The optimistic-concurrency conflict of a write carrying a stale resourceVersion.
    pub fn stale(resource: &str, name: &str) -> Self {
        ApiError::conflict(resource, name, MODIFIED)
    }

    /// `<Kind.group> "<name>" is invalid: <field errors>`.
    pub fn invalid(qualified_kind: &str, name: &str, errors: &[String]) -> Self {
        let list = match errors {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        ApiError::new(Reason::Invalid, format!("{qualified_kind} \"{name}\" is invalid: {list}"))
    }

    /// `<resource> "<name>" is forbidden: <why>`.
    pub fn forbidden(resource: &str, name: &str, why: &str) -> Self {
        ApiError::new(Reason::Forbidden, format!("{resource} \"{name}\" is forbidden: {why}"))
    }

    /// 410 Gone: `too old resource version: <requested> (<oldest available>)`.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        ApiError::new(Reason::Expired, format!("too old resource version: {requested} ({oldest})"))
    }

    /// 400 with a message.
    pub fn bad_request(message: String) -> Self {
        ApiError::new(Reason::BadRequest, message)
    }

    /// 500: `Internal error occurred: <why>`.
    pub fn internal(why: &str) -> Self {
        ApiError::new(Reason::InternalError, format!("Internal error occurred: {why}"))
    }

    /// 504: the server's request timeout.
    pub fn timeout() -> Self {
        ApiError::new(
            Reason::Timeout,
            "Timeout: request did not complete within requested timeout - context deadline exceeded"
                .to_string(),
        )
    }

    /// Attaches a `details.causes[].reason`.
    pub fn with_cause(mut self, cause: &str) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    /// 404?
    pub fn is_not_found(&self) -> bool {
        self.reason == Reason::NotFound
    }

    /// 409 Conflict (not AlreadyExists)?
    pub fn is_conflict(&self) -> bool {
        self.reason == Reason::Conflict
    }

    /// 409 AlreadyExists?
    pub fn is_already_exists(&self) -> bool {
        self.reason == Reason::AlreadyExists
    }

    /// 410 Gone?
    pub fn is_expired(&self) -> bool {
        self.reason == Reason::Expired
    }

    /// The `metav1.Status` JSON of this error.
    pub fn status(&self) -> serde_json::Value {
        let mut status = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": self.message,
            "reason": format!("{:?}", self.reason),
            "code": self.code,
        });
        if let Some(cause) = &self.cause {
            status["details"] = serde_json::json!({ "causes": [{ "reason": cause }] });
        }
        status
    }
}

/// The text of a stale-resourceVersion conflict.
pub const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}
