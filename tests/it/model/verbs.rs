//! The way the model's clients call the server: the Rust verbs of [`Client`], or the same calls
//! as REST requests through [`Client::request`] (paths, JSON bodies, `DeleteOptions`, `Status`
//! errors read back), so that one model, with one oracle, checks both. A REST DELETE that
//! removed a ConfigMap answers only a `Status` naming its uid (upstream's `finalizeDelete`): the
//! removed state is then read from the change log, as the Rust verb returns it.

use apiserver_fake::rest::Request;
use apiserver_fake::{
    ApiError, Client, DeleteOptions, Deleted, EventType, Object, ObjectList, Propagation, Selector,
};
use serde_json::{Value, json};

/// How a model client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Via {
    /// [`Client`]'s Rust verbs.
    Rust,
    /// REST requests.
    Rest,
}

/// A client with the verbs the model uses, by either way.
#[derive(Clone)]
pub(super) struct Verbs {
    pub(super) client: Client,
    pub(super) via: Via,
}

fn collection(namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => format!("/api/v1/namespaces/{namespace}/configmaps"),
        None => "/api/v1/configmaps".to_string(),
    }
}

fn item(namespace: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/configmaps/{name}")
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

impl Verbs {
    /// An object answer, or the error its `Status` names.
    async fn object(&self, request: Request) -> Result<Object, ApiError> {
        let response = self.client.request(request).await;
        if let Some(error) = response.api_error() {
            return Err(error);
        }
        let value = response.value().expect("a JSON answer");
        Ok(Object::from_json(value).expect("an object answer"))
    }

    pub(super) async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Object, ApiError> {
        match self.via {
            Via::Rust => self.client.get(api_version, kind, namespace, name).await,
            Via::Rest => self.object(Request::get(&item(namespace, name))).await,
        }
    }

    pub(super) async fn create(&self, object: Object) -> Result<Object, ApiError> {
        match self.via {
            Via::Rust => self.client.create(object).await,
            Via::Rest => {
                let uri = collection(Some(&object.metadata.namespace));
                self.object(Request::new("POST", &uri).with_json(&object.to_json())).await
            }
        }
    }

    pub(super) async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<ObjectList, ApiError> {
        if self.via == Via::Rust {
            return self.client.list(api_version, kind, namespace, selector).await;
        }
        let mut uri = collection(namespace);
        if !selector.is_empty() {
            uri = format!("{uri}?labelSelector={}", encode(&selector.to_string()));
        }
        let response = self.client.request(Request::get(&uri)).await;
        if let Some(error) = response.api_error() {
            return Err(error);
        }
        let list = response.value().expect("a JSON list");
        let items = list["items"].as_array().expect("items").iter();
        let items = items.map(|i| Object::from_json(i.clone()).expect("an item")).collect();
        let rv = list["metadata"]["resourceVersion"].as_str().expect("a resourceVersion");
        Ok(ObjectList { items, resource_version: rv.parse().expect("a number") })
    }

    pub(super) async fn update(&self, object: Object) -> Result<Object, ApiError> {
        match self.via {
            Via::Rust => self.client.update(object).await,
            Via::Rest => {
                let uri = item(&object.metadata.namespace, &object.metadata.name);
                self.object(Request::new("PUT", &uri).with_json(&object.to_json())).await
            }
        }
    }

    pub(super) async fn update_status(&self, object: Object) -> Result<Object, ApiError> {
        match self.via {
            Via::Rust => self.client.update_status(object).await,
            Via::Rest => {
                let uri =
                    format!("{}/status", item(&object.metadata.namespace, &object.metadata.name));
                self.object(Request::new("PUT", &uri).with_json(&object.to_json())).await
            }
        }
    }

    pub(super) async fn patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Object, ApiError> {
        match self.via {
            Via::Rust => self.client.patch(api_version, kind, namespace, name, patch).await,
            Via::Rest => {
                let body = serde_json::to_vec(patch).expect("a patch serialises");
                let request = Request::new("PATCH", &item(namespace, name))
                    .with_body("application/merge-patch+json", body);
                self.object(request).await
            }
        }
    }

    pub(super) async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        if self.via == Via::Rust {
            return self.client.delete(api_version, kind, namespace, name, options).await;
        }
        let mut body = json!({ "kind": "DeleteOptions", "apiVersion": "v1" });
        if let Some(policy) = options.propagation_policy {
            let policy = match policy {
                Propagation::Foreground => "Foreground",
                Propagation::Background => "Background",
                Propagation::Orphan => "Orphan",
            };
            body["propagationPolicy"] = json!(policy);
        }
        if let Some(orphan) = options.orphan_dependents {
            body["orphanDependents"] = json!(orphan);
        }
        if let Some(seconds) = options.grace_period_seconds {
            body["gracePeriodSeconds"] = json!(seconds);
        }
        if let Some(uid) = &options.uid {
            body["preconditions"]["uid"] = json!(uid);
        }
        if let Some(rv) = &options.resource_version {
            body["preconditions"]["resourceVersion"] = json!(rv);
        }
        let request = Request::new("DELETE", &item(namespace, name)).with_json(&body);
        let response = self.client.request(request).await;
        if let Some(error) = response.api_error() {
            return Err(error);
        }
        let answer = response.value().expect("a JSON answer");
        if answer["kind"] == "Status" {
            // Removed: the Status names the uid; the removed state is the change log's.
            let uid = answer["details"]["uid"].as_str().expect("a uid");
            let history = self.client.server().history();
            let last = history
                .iter()
                .rev()
                .find(|c| {
                    c.event.event_type == EventType::Deleted && c.event.object.metadata.uid == uid
                })
                .expect("the removal is in the change log");
            Ok(Deleted::Removed((*last.event.object).clone()))
        } else {
            Ok(Deleted::Pending(Object::from_json(answer).expect("an object")))
        }
    }
}
