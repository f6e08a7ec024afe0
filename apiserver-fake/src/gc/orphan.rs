//! The attemptToOrphan workers: patch the owner out of every dependent the graph knows, one task
//! per dependent joined before the owner's `orphan` finalizer is removed. Mirrors upstream
//! `pkg/controller/garbagecollector/garbagecollector.go` (`attemptToOrphanWorker`,
//! `orphanDependents`).

use std::rc::Rc;

use super::{Shared, Stop};
use crate::object::FINALIZER_ORPHAN;

impl Shared {
    /// `attemptToOrphanWorker`: patch the owner out of every dependent in the graph, then
    /// remove `orphan` from the owner.
    pub(super) async fn attempt_to_orphan_worker(self: &Rc<Self>, uid: &str) {
        let Some(owner) = self.node(uid) else {
            return;
        };
        let _frame = sim_core::enter(format!("attemptToOrphan({})", owner.identity));
        // `orphanDependents`: one goroutine per dependent, joined before the finalizer goes.
        let mut patches = sim_core::JoinSet::new();
        for dependent in &owner.dependents {
            let Some(dependent) = self.node(dependent) else { continue };
            let (shared, owner_uid) = (self.clone(), uid.to_string());
            patches.spawn(format!("gc/orphan {}", dependent.identity), async move {
                match shared.delete_owner_refs(&dependent, &[owner_uid]).await {
                    Err(Stop::Retry(why)) => {
                        Some(format!("orphaning {} failed, {why}", dependent.identity))
                    }
                    _ => None,
                }
            });
        }
        let failed = patches.join_all().await.into_iter().flatten().next();
        let result = match failed {
            Some(why) => Err(Stop::Retry(why)),
            None => self.remove_finalizer(&owner, FINALIZER_ORPHAN).await,
        };
        match result {
            Ok(()) => self.attempt_to_orphan.forget(&self.item(uid.to_string())),
            Err(Stop::Retry(why)) => {
                sim_core::event(format!(
                    "gc: error orphaning dependents of {}: {why}",
                    owner.identity
                ));
                self.attempt_to_orphan.add_rate_limited(self.item(uid.to_string()));
            }
            Err(_) => self.attempt_to_orphan.forget(&self.item(uid.to_string())),
        }
    }
}
