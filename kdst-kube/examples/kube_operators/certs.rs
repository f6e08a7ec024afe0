//! `kube-cert-foreground`: cert-manager's foreground-deletion livelock (issue #7358, v1.16.1),
//! rewritten as two kube-rs controllers.
//!
//! - The **certificates controller**, cert-manager's key manager and request manager in one
//!   reconcile (`pkg/controller/certificates/keymanager` and `requestmanager` `ProcessItem`):
//!   for each Certificate it makes sure the private-key Secret `<name>-key` exists, then, if no
//!   CertificateRequest it owns exists (one being deleted still counts), creates one. Both are
//!   owned with `controller` and `blockOwnerDeletion` (cert-manager's `NewControllerRef`), so
//!   each blocks the Certificate's foreground deletion. It owns both kinds: their changes and
//!   deletions requeue the Certificate.
//! - An **external issuer**: it adds its finalizer to each CertificateRequest
//!   (`kube::runtime::finalizer`) and, when one is deleted, revokes it at its CA, which takes
//!   `cleanup-delay-ms` (a `tokio::time::sleep`: virtual time under kdst), before the finalizer
//!   goes. That delay is the race window.
//!
//! The user deletes the Certificate with `propagationPolicy=Foreground`. The garbage collector
//! deletes its blocking dependents; the issuer holds the request for the delay; the key Secret
//! goes at once and the controller (buggy, v1.16: it never looks at the deletionTimestamp)
//! makes a new one, which the collector deletes, and so on; when the request goes, a new one is
//! made too. Whenever the collector looks, a blocking dependent is there: the Certificate keeps
//! `foregroundDeletion` and is never deleted. Fixed (PR #7361 for the request manager, v1.17;
//! PR #7454 for the key manager, v1.18): a Certificate with a deletionTimestamp is skipped. The
//! oracle is liveness: the Certificate is gone within `deletion-bound-s` of the delete.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{CustomResource, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Certificate: which Secret to issue into.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[kube(group = "cert-manager.io", version = "v1", kind = "Certificate", namespaced)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// The Secret the certificate is stored in.
    pub secret_name: String,
}

/// A CertificateRequest: one attempt to issue a Certificate.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[kube(group = "cert-manager.io", version = "v1", kind = "CertificateRequest", namespaced)]
pub struct CertificateRequestSpec {
    /// The signing request (here: the Certificate's name).
    pub request: String,
}

/// The label cert-manager puts on each request: its Certificate's name.
pub const CERTIFICATE_NAME: &str = "cert-manager.io/certificate-name";
/// The external issuer's finalizer.
pub const ISSUER_FINALIZER: &str = "issuer.example.com/finalizer";

/// What the certificates controller's reconciles share.
pub struct RequestManager {
    /// Its client.
    pub client: kube::Client,
    /// The deletionTimestamp check of PRs #7361 and #7454 on or off.
    pub fixed: bool,
}

/// What the issuer's reconciles share.
pub struct Issuer {
    /// Its client.
    pub client: kube::Client,
    /// How long revoking a request at the CA takes.
    pub cleanup_delay: Duration,
}

/// A reconcile's error.
#[derive(Debug)]
pub enum Error {
    /// An API call failed.
    Kube(kube::Error),
    /// The finalizer helper failed.
    Finalizer(Box<kube::runtime::finalizer::Error<kube::Error>>),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Kube(error) => write!(f, "{error}"),
            Error::Finalizer(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for Error {}

/// Retries after a second.
pub fn retry<K>(_object: Arc<K>, _error: &Error, _ctx: Arc<impl Send + Sync>) -> Action {
    Action::requeue(Duration::from_secs(1))
}

/// The certificates controller: the key Secret and a CertificateRequest for the Certificate.
pub async fn request_manager(
    certificate: Arc<Certificate>,
    ctx: Arc<RequestManager>,
) -> Result<Action, Error> {
    if ctx.fixed && certificate.meta().deletion_timestamp.is_some() {
        // PRs #7361 and #7454: nothing is created for a Certificate being deleted.
        return Ok(Action::await_change());
    }
    let namespace = certificate.namespace().unwrap_or_default();
    let mut owner = certificate.controller_owner_ref(&()).expect("a stored Certificate has a uid");
    owner.block_owner_deletion = Some(true);
    // The key manager: the private key's Secret.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let key = format!("{}-key", certificate.name_any());
    if secrets.get_opt(&key).await.map_err(Error::Kube)?.is_none() {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(key),
                namespace: Some(namespace.clone()),
                owner_references: Some(vec![owner.clone()]),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(Error::Kube(error)),
        }
    }
    // The request manager: a request, unless one exists.
    let requests: Api<CertificateRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = format!("{CERTIFICATE_NAME}={}", certificate.name_any());
    let existing =
        requests.list(&ListParams::default().labels(&selector)).await.map_err(Error::Kube)?;
    let uid = certificate.meta().uid.clone();
    let owned = existing.items.iter().any(|request| {
        request
            .owner_references()
            .iter()
            .any(|owner| owner.controller == Some(true) && Some(&owner.uid) == uid.as_ref())
    });
    if owned {
        return Ok(Action::await_change());
    }
    let request = CertificateRequest {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", certificate.name_any())),
            namespace: Some(namespace),
            labels: Some([(CERTIFICATE_NAME.to_string(), certificate.name_any())].into()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: CertificateRequestSpec { request: certificate.name_any() },
    };
    requests.create(&PostParams::default(), &request).await.map_err(Error::Kube)?;
    Ok(Action::await_change())
}

/// The external issuer: its finalizer on every request, removed after revoking.
pub async fn issuer(request: Arc<CertificateRequest>, ctx: Arc<Issuer>) -> Result<Action, Error> {
    let requests: Api<CertificateRequest> =
        Api::namespaced(ctx.client.clone(), &request.namespace().unwrap_or_default());
    let cleanup_delay = ctx.cleanup_delay;
    finalizer(&requests, ISSUER_FINALIZER, request, |event| async move {
        match event {
            Event::Apply(_) => Ok::<_, kube::Error>(Action::await_change()),
            Event::Cleanup(_) => {
                // Revoke at the CA.
                tokio::time::sleep(cleanup_delay).await;
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)))
}
