//! The controller runtime: a work queue of object keys fed by informer handlers, and N workers
//! (`MaxConcurrentReconciles`) that each take a key, reconcile it, and requeue as the result
//! says. As in controller-runtime (`pkg/internal/controller/controller.go`,
//! `reconcileHandler`), a reconcile reads informer caches and writes to the API server, so it
//! can read the old world after its own write.

use std::fmt;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use crate::error::ApiError;
use crate::informer::{Informer, Notification};
use crate::object::Object;
use crate::workqueue::WorkQueue;

/// `reconcile.Request`: the namespace and name of the object to reconcile.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        ObjectKey { namespace: namespace.to_string(), name: name.to_string() }
    }

    /// The key of `object`.
    pub fn of(object: &Object) -> Self {
        ObjectKey::new(&object.metadata.namespace, &object.metadata.name)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// What a successful reconcile asks for (`reconcile.Result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing more until the next event (the key's backoff is forgotten).
    Done,
    /// Run again, with rate-limited backoff (`Result{Requeue: true}`).
    Requeue,
    /// Run again after this delay (`Result{RequeueAfter: d}`; backoff forgotten).
    RequeueAfter(Duration),
}

/// A failed reconcile: requeued with rate-limited backoff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReconcileError {
    /// A call to the API server failed (`?` on a client call).
    Api(ApiError),
    /// The controller's own reason (`?` on a `String`, or built by hand).
    Other(String),
}

impl ReconcileError {
    /// The API error behind this failure, if a call to the API server caused it.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ReconcileError::Api(error) => Some(error),
            ReconcileError::Other(_) => None,
        }
    }
}

impl fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReconcileError::Api(error) => error.fmt(f),
            ReconcileError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ReconcileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReconcileError::Api(error) => Some(error),
            ReconcileError::Other(_) => None,
        }
    }
}

impl From<ApiError> for ReconcileError {
    fn from(error: ApiError) -> Self {
        ReconcileError::Api(error)
    }
}

impl From<String> for ReconcileError {
    fn from(message: String) -> Self {
        ReconcileError::Other(message)
    }
}

/// What a reconcile returns.
pub type ReconcileResult = Result<Action, ReconcileError>;

/// A controller: its queue, its event sources, its workers.
#[derive(Clone)]
pub struct Controller {
    name: Rc<str>,
    workers: usize,
    queue: WorkQueue<ObjectKey>,
}

impl Controller {
    /// A controller named `name` with `workers` concurrent reconciles.
    ///
    /// # Panics
    /// If `workers` is zero.
    pub fn new(name: &str, workers: usize) -> Self {
        assert!(workers > 0, "kdst: a controller needs at least one worker");
        Controller { name: name.into(), workers, queue: WorkQueue::new(name) }
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The controller's work queue (to enqueue keys by hand).
    pub fn queue(&self) -> &WorkQueue<ObjectKey> {
        &self.queue
    }

    /// `For(kind)`: every add, update and delete of `informer`'s objects enqueues their key.
    pub fn watches(&self, informer: &Informer) {
        self.watches_with(informer, |object| vec![ObjectKey::of(object)]);
    }

    /// `Owns(kind)`: changes to `informer`'s objects enqueue their controller owner, if the
    /// owner is of `(owner_api_version, owner_kind)` (`handler.EnqueueRequestForOwner` with
    /// `OnlyControllerOwner`). The owner is looked up in the dependent's namespace.
    pub fn owns(&self, informer: &Informer, owner_api_version: &str, owner_kind: &str) {
        let (api_version, kind) = (owner_api_version.to_string(), owner_kind.to_string());
        self.watches_with(informer, move |object| {
            object
                .controller_ref()
                .filter(|r| r.kind == kind && group(&r.api_version) == group(&api_version))
                .map(|r| ObjectKey::new(&object.metadata.namespace, &r.name))
                .into_iter()
                .collect()
        });
    }

    /// `Watches(source, handler)`: changes enqueue the keys `map` returns. For an update both
    /// the old and the new state are mapped.
    pub fn watches_with(
        &self,
        informer: &Informer,
        map: impl Fn(&Object) -> Vec<ObjectKey> + 'static,
    ) {
        let queue = self.queue.clone();
        informer.add_handler(&format!("{}-handler", self.name), move |notification| {
            if let Notification::Updated { old, .. } = &notification {
                for key in map(old) {
                    queue.add(key);
                }
            }
            for key in map(notification.object()) {
                queue.add(key);
            }
            std::future::ready(())
        });
    }

    /// Starts the workers (`<name>/worker-<i>`, daemon tasks) with `reconcile`.
    pub fn start<F, Fut>(&self, reconcile: F)
    where
        F: Fn(ObjectKey) -> Fut + 'static,
        Fut: Future<Output = ReconcileResult> + 'static,
    {
        let reconcile = Rc::new(reconcile);
        for worker in 0..self.workers {
            let (queue, reconcile, name) =
                (self.queue.clone(), reconcile.clone(), self.name.clone());
            sim_core::spawn_daemon(format!("{}/worker-{worker}", self.name), async move {
                while let Some(key) = queue.get().await {
                    let result = {
                        let _frame = sim_core::enter(format!("{name}.Reconcile({key})"));
                        reconcile(key.clone()).await
                    };
                    match result {
                        Ok(Action::Done) => queue.forget(&key),
                        Ok(Action::Requeue) => queue.add_rate_limited(key.clone()),
                        Ok(Action::RequeueAfter(delay)) => {
                            queue.forget(&key);
                            queue.add_after(key.clone(), delay);
                        }
                        Err(error) => {
                            sim_core::event(format!("reconcile {key} failed: {error}"));
                            queue.add_rate_limited(key.clone());
                        }
                    }
                    queue.done(&key);
                }
            });
        }
    }
}

fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}
