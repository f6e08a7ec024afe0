//! The cache of owners known to be absent: an LRU of identities that a dependent's
//! attemptToDelete found missing (or replaced by another uid), so that later dependents of the
//! same owner need no GET. Mirrors upstream `pkg/controller/garbagecollector/uid_cache.go`
//! (`ReferenceCache`, `Add`, `Has`).

use std::cell::RefMut;
use std::collections::BTreeMap;

use super::Shared;
use super::graph::Identity;

/// `ReferenceCache`: an LRU of identities known to be absent.
pub(super) struct AbsentCache {
    capacity: usize,
    tick: u64,
    by_key: BTreeMap<Identity, u64>,
    by_tick: BTreeMap<u64, Identity>,
}

impl AbsentCache {
    pub(super) fn new(capacity: usize) -> Self {
        AbsentCache { capacity, tick: 0, by_key: BTreeMap::new(), by_tick: BTreeMap::new() }
    }

    fn touch(&mut self, key: &Identity) {
        self.tick += 1;
        if let Some(old) = self.by_key.insert(key.clone(), self.tick) {
            self.by_tick.remove(&old);
        }
        self.by_tick.insert(self.tick, key.clone());
        while self.by_key.len() > self.capacity {
            if let Some((_, oldest)) = self.by_tick.pop_first() {
                self.by_key.remove(&oldest);
            }
        }
    }

    pub(super) fn add(&mut self, key: Identity) {
        self.touch(&key);
    }

    pub(super) fn has(&mut self, key: &Identity) -> bool {
        let found = self.by_key.contains_key(key);
        if found {
            self.touch(key);
        }
        found
    }
}

impl Shared {
    /// The absent-owner cache (a lookup moves the entry to the front: a write).
    pub(super) fn absent(&self) -> RefMut<'_, AbsentCache> {
        self.resource.write();
        self.absent.borrow_mut()
    }
}
