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
    /// 405: the path does not take this method.
    MethodNotAllowed,
    /// 415: the body's `Content-Type` is not one the endpoint takes.
    UnsupportedMediaType,
    /// 406: no representation the `Accept` header allows.
    NotAcceptable,
    /// 413: the request is too large (a JSON patch of more than 10,000 operations).
    RequestEntityTooLarge,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 13] = [
        Reason::NotFound,
        Reason::AlreadyExists,
        Reason::Conflict,
        Reason::Invalid,
        Reason::Forbidden,
        Reason::Expired,
        Reason::BadRequest,
        Reason::InternalError,
        Reason::Timeout,
        Reason::MethodNotAllowed,
        Reason::UnsupportedMediaType,
        Reason::NotAcceptable,
        Reason::RequestEntityTooLarge,
    ];

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
            Reason::MethodNotAllowed => 405,
            Reason::UnsupportedMediaType => 415,
            Reason::NotAcceptable => 406,
            Reason::RequestEntityTooLarge => 413,
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
    /// `details`: the object the error is about and the field causes, when upstream gives them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<StatusDetails>>,
}

/// `metav1.StatusDetails`: which object an error is about, and why, field by field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatusDetails {
    /// The object's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its API group (empty for core).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The resource (`configmaps`) or, for a validation error, the kind (`ConfigMap`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// One entry per failed field rule.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

/// `metav1.StatusCause`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatusCause {
    /// `FieldValueInvalid`, `FieldValueRequired`, … (or a domain reason).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The rule's text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The field path, e.g. `metadata.finalizers[0]`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// Splits `resource.group` (or `Kind.group`) into its two parts.
fn split_qualified(qualified: &str) -> (&str, &str) {
    qualified.split_once('.').unwrap_or((qualified, ""))
}

impl ApiError {
    fn new(reason: Reason, message: String) -> Self {
        ApiError { code: reason.code(), reason, message, cause: None, details: None }
    }

    /// A failure with any reason and message (e.g. the REST layer's 405 and 415).
    pub fn with_reason(reason: Reason, message: String) -> Self {
        ApiError::new(reason, message)
    }

    /// Names the object (`details.name`, `.group`, `.kind`) from `resource.group`.
    fn about(mut self, qualified: &str, name: &str) -> Self {
        let (kind, group) = split_qualified(qualified);
        let details = self.details.get_or_insert_with(Box::default);
        details.name = name.to_string();
        details.group = group.to_string();
        details.kind = kind.to_string();
        self
    }

    /// `<resource> "<name>" not found`.
    pub fn not_found(resource: &str, name: &str) -> Self {
        ApiError::new(Reason::NotFound, format!("{resource} \"{name}\" not found"))
            .about(resource, name)
    }

    /// `<resource> "<name>" already exists`.
    pub fn already_exists(resource: &str, name: &str) -> Self {
        ApiError::new(Reason::AlreadyExists, format!("{resource} \"{name}\" already exists"))
            .about(resource, name)
    }

    /// `Operation cannot be fulfilled on <resource> "<name>": <why>`.
    pub fn conflict(resource: &str, name: &str, why: &str) -> Self {
        ApiError::new(
            Reason::Conflict,
            format!("Operation cannot be fulfilled on {resource} \"{name}\": {why}"),
        )
        .about(resource, name)
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
        let mut error = ApiError::new(
            Reason::Invalid,
            format!("{qualified_kind} \"{name}\" is invalid: {list}"),
        )
        .about(qualified_kind, name);
        if let Some(details) = &mut error.details {
            details.causes = errors.iter().map(|text| field_cause(text)).collect();
        }
        error
    }

    /// `<resource> "<name>" is forbidden: <why>`.
    pub fn forbidden(resource: &str, name: &str, why: &str) -> Self {
        ApiError::new(Reason::Forbidden, format!("{resource} \"{name}\" is forbidden: {why}"))
            .about(resource, name)
    }

    /// 410 Gone: `too old resource version: <requested> (<oldest available>)`.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        ApiError::new(Reason::Expired, format!("too old resource version: {requested} ({oldest})"))
    }

    /// 504 for a read at a resourceVersion the server has not reached
    /// (`storage.NewTooLargeResourceVersionError`).
    pub fn too_large_resource_version(requested: u64, current: u64) -> Self {
        ApiError::new(
            Reason::Timeout,
            format!("Too large resource version: {requested}, current: {current}"),
        )
        .with_cause("ResourceVersionTooLarge")
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

    /// The error a `metav1.Status` failure body describes (what a REST client reads back).
    pub fn from_status(status: &serde_json::Value) -> Self {
        let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_string();
        let code = status["code"].as_u64().and_then(|c| u16::try_from(c).ok()).unwrap_or(500);
        let reason = Reason::ALL
            .into_iter()
            .find(|r| format!("{r:?}") == text(&status["reason"]))
            .unwrap_or(Reason::InternalError);
        let detail = &status["details"];
        let causes: Vec<StatusCause> = detail["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| StatusCause {
                reason: text(&c["reason"]),
                message: text(&c["message"]),
                field: text(&c["field"]),
            })
            .collect();
        // A lone cause with only a reason is the `with_cause` form.
        let (cause, causes) = match causes.as_slice() {
            [only] if only.message.is_empty() && only.field.is_empty() => {
                (Some(only.reason.clone()), Vec::new())
            }
            _ => (None, causes),
        };
        let details = StatusDetails {
            name: text(&detail["name"]),
            group: text(&detail["group"]),
            kind: text(&detail["kind"]),
            causes,
        };
        let empty = details == StatusDetails::default();
        ApiError {
            code,
            reason,
            message: text(&status["message"]),
            cause,
            details: (!empty).then(|| Box::new(details)),
        }
    }

    /// The `metav1.Status` JSON of this error.
    pub fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.status_body()).expect("a Status always serialises")
    }

    /// The `metav1.Status` body as kube-apiserver writes it, fields in its order.
    pub fn status_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.status_body()).expect("a Status always serialises")
    }

    fn status_body(&self) -> StatusBody<'_> {
        let mut details = self.details.as_deref().cloned();
        if let Some(cause) = &self.cause {
            let details = details.get_or_insert_with(StatusDetails::default);
            details.causes.push(StatusCause { reason: cause.clone(), ..StatusCause::default() });
        }
        StatusBody {
            kind: "Status",
            api_version: "v1",
            metadata: serde_json::Map::new(),
            status: "Failure",
            message: &self.message,
            reason: self.reason,
            details,
            code: self.code,
        }
    }
}

/// `metav1.Status` in kube-apiserver's field order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: serde_json::Map<String, serde_json::Value>,
    status: &'static str,
    message: &'a str,
    reason: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<StatusDetails>,
    code: u16,
}

/// A field error's text (`metadata.uid: Invalid value: "x": field is immutable`) as a cause.
fn field_cause(text: &str) -> StatusCause {
    let (field, message) = text.split_once(": ").unwrap_or(("", text));
    let reason = [
        ("Invalid value", "FieldValueInvalid"),
        ("Required value", "FieldValueRequired"),
        ("Forbidden", "FieldValueForbidden"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
        ("Not found", "FieldValueNotFound"),
    ]
    .iter()
    .find(|(prefix, _)| message.starts_with(prefix))
    .map_or("FieldValueInvalid", |(_, reason)| reason);
    StatusCause {
        reason: reason.to_string(),
        message: message.to_string(),
        field: field.to_string(),
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
