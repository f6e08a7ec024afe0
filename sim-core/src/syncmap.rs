//! `SyncMap`: Go's `sync.Map`, where every operation is atomic.
//!
//! Each operation is one scheduling point followed by one indivisible action, so no schedule can
//! crash it, but a caller can still lose updates by composing operations (load, then store) or
//! by mutating a shared value returned from [`SyncMap::load_or_store`] in place. Store
//! `Rc<RefCell<T>>` values to model Go's pointer values.

use std::cell::{Ref, RefCell, RefMut};
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::footprint::Resource;
use crate::race::SyncClock;
use crate::task::yield_now;

/// A concurrent map with atomic operations. Clones share one map.
pub struct SyncMap<K, V> {
    data: Rc<RefCell<BTreeMap<K, V>>>,
    /// What steps that use the map touch.
    resource: Resource,
    /// Every operation is atomic: ordered after the ones before it (the race detector).
    clock: Rc<SyncClock>,
}

impl<K, V> Clone for SyncMap<K, V> {
    fn clone(&self) -> Self {
        SyncMap { data: self.data.clone(), resource: self.resource, clock: self.clock.clone() }
    }
}

impl<K: Ord + Clone, V: Clone> Default for SyncMap<K, V> {
    fn default() -> Self {
        SyncMap::new()
    }
}

impl<K, V> SyncMap<K, V> {
    /// The entries, for a step that reads them.
    fn read(&self) -> Ref<'_, BTreeMap<K, V>> {
        self.resource.read();
        self.clock.acquire_release();
        self.data.borrow()
    }

    /// The entries, for a step that writes them.
    fn write(&self) -> RefMut<'_, BTreeMap<K, V>> {
        self.resource.write();
        self.clock.acquire_release();
        self.data.borrow_mut()
    }
}

impl<K: Ord + Clone, V: Clone> SyncMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        SyncMap {
            data: Rc::new(RefCell::new(BTreeMap::new())),
            resource: Resource::new(),
            clock: Rc::new(SyncClock::new()),
        }
    }

    /// `Load`: the value for `key`.
    pub async fn load(&self, key: &K) -> Option<V> {
        yield_now().await;
        self.read().get(key).cloned()
    }

    /// `Store`.
    pub async fn store(&self, key: K, value: V) {
        yield_now().await;
        self.write().insert(key, value);
    }

    /// `Swap`: stores `value` and returns the previous value, atomically.
    pub async fn swap(&self, key: K, value: V) -> Option<V> {
        yield_now().await;
        self.write().insert(key, value)
    }

    /// `LoadOrStore`: the existing value and `true`, or stores `value` and returns it and `false`.
    pub async fn load_or_store(&self, key: K, value: V) -> (V, bool) {
        yield_now().await;
        let mut data = self.write();
        match data.get(&key) {
            Some(existing) => (existing.clone(), true),
            None => {
                data.insert(key, value.clone());
                (value, false)
            }
        }
    }

    /// `LoadAndDelete`.
    pub async fn load_and_delete(&self, key: &K) -> Option<V> {
        yield_now().await;
        self.write().remove(key)
    }

    /// `Delete`.
    pub async fn delete(&self, key: &K) {
        yield_now().await;
        self.write().remove(key);
    }

    /// `CompareAndSwap`: replaces the value with `new` if it equals `old`.
    pub async fn compare_and_swap(&self, key: &K, old: &V, new: V) -> bool
    where
        V: PartialEq,
    {
        yield_now().await;
        let mut data = self.write();
        match data.get_mut(key) {
            Some(value) if value == old => {
                *value = new;
                true
            }
            _ => false,
        }
    }

    /// `Range`: calls `f` for each entry until it returns false; a scheduling point before each
    /// entry. Like Go's, it is no consistent snapshot: entries stored or deleted meanwhile may or
    /// may not be seen.
    pub async fn range(&self, mut f: impl FnMut(&K, &V) -> bool) {
        let keys: Vec<K> = self.read().keys().cloned().collect();
        for key in keys {
            yield_now().await;
            let value = self.read().get(&key).cloned();
            if let Some(value) = value
                && !f(&key, &value)
            {
                break;
            }
        }
    }

    /// A copy of the contents without a scheduling point: for oracles and tests.
    pub fn snapshot(&self) -> BTreeMap<K, V> {
        self.read().clone()
    }

    /// The number of entries, without a scheduling point (sync.Map has no `Len`; for oracles).
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the map is empty, without a scheduling point.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
