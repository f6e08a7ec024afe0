//! CREATE: the namespace and name rules, `generateName`, namespace lifecycle admission and the
//! system fields the server sets (uid, generation, creationTimestamp); and loading manifests
//! through it. Mirrors upstream `registry/rest/create.go` (`BeforeCreate`),
//! `registry/generic/registry/store.go` (`Store.Create`), `storage/names/generate.go`
//! (`simpleNameGenerator.GenerateName`) and `plugin/pkg/admission/namespace/lifecycle/admission.go`
//! (`Lifecycle.Admit`); a PersistentVolumeClaim also passes `StorageObjectInUseProtection`
//! ([`crate::pvc`]).

use serde_json::{Value, json};
use sim_core::{FailureKind, RngCore};

use super::store::Store;
use super::validate::validate_meta;
use super::watch::EventType;
use super::{ApiServer, FINALIZER_KUBERNETES, trace_verb};
use crate::error::ApiError;
use crate::kinds::KindInfo;
use crate::object::{Object, Time};

impl ApiServer {
    /// Creates objects from manifest text ([`crate::parse_manifests`]), namespaces first, like a
    /// restore from backup: uids given in the manifests are kept so that ownerReferences between
    /// them stay valid (others are assigned). Stops at the first object the server refuses.
    pub fn load_manifests(&self, text: &str) -> Result<Vec<Object>, String> {
        let mut objects = crate::object::parse_manifests(text).map_err(|e| e.to_string())?;
        objects.sort_by_key(|object| object.kind != "Namespace");
        let mut created = Vec::new();
        for object in objects {
            let key = format!("{} {}", object.kind, object.key());
            let uid_taken = |uid: &str| self.objects().iter().any(|o| o.metadata.uid == uid);
            if !object.metadata.uid.is_empty() && uid_taken(&object.metadata.uid) {
                return Err(format!("{key}: uid {} is already in use", object.metadata.uid));
            }
            let uid = object.metadata.uid.clone();
            let made = self.create_inner(object, Some(uid)).map_err(|e| format!("{key}: {e}"))?;
            created.push(made);
        }
        Ok(created)
    }

    /// CREATE.
    pub fn create(&self, object: Object) -> Result<Object, ApiError> {
        self.create_inner(object, None)
    }

    fn create_inner(&self, mut object: Object, uid: Option<String>) -> Result<Object, ApiError> {
        let mut store = self.write_store();
        let (id, info) = store.kind(&object.api_version, &object.kind)?;
        // What the trace names when the create fails: the name asked for (`prefix*` for a
        // generated one).
        let requested = {
            let meta = &object.metadata;
            let name = if meta.name.is_empty() && !meta.generate_name.is_empty() {
                format!("{}*", meta.generate_name)
            } else {
                meta.name.clone()
            };
            let namespace = if info.namespaced { meta.namespace.as_str() } else { "" };
            super::key_of(namespace, &name)
        };
        let result = 'create: {
            if info.namespaced {
                if object.metadata.namespace.is_empty() {
                    break 'create Err(ApiError::invalid(
                        &info.qualified_kind(),
                        &object.metadata.name,
                        &["metadata.namespace: Required value".to_string()],
                    ));
                }
            } else {
                object.metadata.namespace.clear();
            }
            if object.metadata.name.is_empty() {
                if object.metadata.generate_name.is_empty() {
                    break 'create Err(ApiError::invalid(
                        &info.qualified_kind(),
                        "",
                        &["metadata.name: Required value: name or generateName is required"
                            .to_string()],
                    ));
                }
                object.metadata.name =
                    format!("{}{}", object.metadata.generate_name, random_suffix());
            }
            let (namespace, name) =
                (object.metadata.namespace.clone(), object.metadata.name.clone());
            if info.namespaced
                && let Err(e) = store.admit_namespace(&info, &namespace, &name)
            {
                break 'create Err(e);
            }
            // `StorageObjectInUseProtection`: a claim gets `kubernetes.io/pvc-protection`.
            if crate::pvc::is_pvc(&info.api_version, &info.kind)
                && let Err(e) = crate::pvc::admit_create(&mut object)
            {
                break 'create Err(e);
            }
            if let Err(e) = validate_meta(&info, &object) {
                break 'create Err(e);
            }
            if store.find(id, &namespace, &name).is_some() {
                break 'create Err(ApiError::already_exists(&info.qualified_resource(), &name));
            }
            if store.count >= store.config.objects_max {
                let max = store.config.objects_max;
                drop(store);
                sim_core::fail(
                    FailureKind::ResourceLimit,
                    format!("the API server holds {max} objects (ServerConfig::objects_max)"),
                    "a controller may be creating objects without bound; raise \
                     ServerConfig::objects_max if this is expected",
                );
            }
            store.uids += 1;
            let meta = &mut object.metadata;
            meta.uid = match &uid {
                Some(uid) if !uid.is_empty() => uid.clone(),
                _ => format!("00000000-0000-4000-8000-{:012x}", store.uids),
            };
            meta.generation = 1;
            meta.creation_timestamp = Some(Time::now());
            if info.status_subresource {
                // `PrepareForCreate`: status is written through the status subresource only.
                object.status = Value::Null;
            }
            meta.deletion_timestamp = None;
            meta.deletion_grace_period_seconds = None;
            if object.kind == "Namespace" && object.api_version == "v1" {
                object.spec = json!({ "finalizers": [FINALIZER_KUBERNETES] });
                object.status = json!({ "phase": "Active" });
            }
            Ok(store.commit(id, EventType::Added, object))
        };
        drop(store);
        let key = result.as_ref().map_or(requested, Object::key);
        trace_verb("CREATE", &info, &Ok(key), &result);
        if let Ok(crd) = &result
            && info.kind == crate::kinds::CRD_KIND
            && info.group() == "apiextensions.k8s.io"
        {
            // The CRD's kinds are served from now on (`apiextensions-apiserver`'s
            // `crdHandler`, once the CRD is Established).
            for kind in KindInfo::from_crd(crd) {
                self.register(kind);
            }
        }
        result
    }
}

impl Store {
    /// The NamespaceLifecycle admission plugin, for CREATE.
    fn admit_namespace(
        &self,
        info: &KindInfo,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        match self.namespace(namespace) {
            None => Err(ApiError::not_found("namespaces", namespace)),
            Some(ns) if ns.is_deleting() => Err(ApiError::forbidden(
                &info.qualified_resource(),
                name,
                &format!(
                    "unable to create new content in namespace {namespace} because it is being \
                     terminated"
                ),
            )
            .with_cause("NamespaceTerminating")),
            Some(_) => Ok(()),
        }
    }
}

/// Five characters from the alphabet of `k8s.io/apiserver/pkg/storage/names` (no vowels).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    sim_core::with_stream("apiserver/generate-name", |rng| {
        (0..5)
            .map(|_| ALPHABET[(rng.next_u32() % ALPHABET.len() as u32) as usize] as char)
            .collect()
    })
}
