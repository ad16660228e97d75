//! Object storage: one map of every object, one global resourceVersion counter (as etcd's
//! revision), and a bounded history of changes that watches replay from (FIDELITY F13).
//!
//! The store is synchronous and lives behind one `RwLock`; nobody holds it across an await.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

/// What changed, as a watch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change in the history.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub storage: String,
    pub namespace: String,
    pub kind: EventType,
    pub object: Value,
    /// The object before a modification (selector transitions turn into ADDED/DELETED).
    pub previous: Option<Value>,
}

/// `(storage, namespace, name)`; cluster-scoped objects have an empty namespace.
pub type Key = (String, String, String);

/// Why a compare-and-swap write failed.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteError {
    NotFound,
    AlreadyExists,
    /// The stored resourceVersion differs from the expected one.
    Conflict,
}

/// The objects and their history.
pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Changes with rv ≤ this are no longer in the history.
    compacted: u64,
    tx: broadcast::Sender<Arc<Change>>,
}

fn rv_of(obj: &Value) -> &str {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(8192);
        Self {
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 1,
            tx,
        }
    }

    /// The current global resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch may still start from.
    pub fn compacted_rv(&self) -> u64 {
        self.compacted
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Changes after `rv` still in the history.
    pub fn changes_since(&self, rv: u64) -> Vec<Arc<Change>> {
        self.history.iter().filter(|c| c.rv > rv).cloned().collect()
    }

    pub fn get(&self, storage: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(storage.to_string(), namespace.to_string(), name.to_string()))
    }

    /// Objects of one storage, optionally in one namespace, in key order.
    pub fn list(&self, storage: &str, namespace: Option<&str>) -> Vec<&Value> {
        let start = (
            storage.to_string(),
            namespace.unwrap_or("").to_string(),
            String::new(),
        );
        self.objects
            .range(start..)
            .take_while(|((s, ns, _), _)| s == storage && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v)
            .collect()
    }

    /// Every object (for garbage collection and namespace cleanup).
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter()
    }

    pub fn namespace_is_empty(&self, namespace: &str) -> bool {
        !self.objects.keys().any(|(_, ns, _)| ns == namespace)
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody watches.
        let _ = self.tx.send(change);
    }

    /// Insert a new object; stamps `metadata.resourceVersion`.
    pub fn create(
        &mut self,
        storage: &str,
        namespace: &str,
        name: &str,
        mut obj: Value,
    ) -> Result<Value, WriteError> {
        let key = (storage.to_string(), namespace.to_string(), name.to_string());
        if self.objects.contains_key(&key) {
            return Err(WriteError::AlreadyExists);
        }
        let rv = self.next_rv();
        set_rv(&mut obj, rv);
        self.objects.insert(key, obj.clone());
        self.record(Change {
            rv,
            storage: storage.into(),
            namespace: namespace.into(),
            kind: EventType::Added,
            object: obj.clone(),
            previous: None,
        });
        Ok(obj)
    }

    /// Replace an object whose stored resourceVersion is `expected_rv`.
    pub fn update(
        &mut self,
        storage: &str,
        namespace: &str,
        name: &str,
        expected_rv: &str,
        mut obj: Value,
    ) -> Result<Value, WriteError> {
        let key = (storage.to_string(), namespace.to_string(), name.to_string());
        let Some(old) = self.objects.get(&key) else {
            return Err(WriteError::NotFound);
        };
        if rv_of(old) != expected_rv {
            return Err(WriteError::Conflict);
        }
        let previous = old.clone();
        let rv = self.next_rv();
        set_rv(&mut obj, rv);
        self.objects.insert(key, obj.clone());
        self.record(Change {
            rv,
            storage: storage.into(),
            namespace: namespace.into(),
            kind: EventType::Modified,
            object: obj.clone(),
            previous: Some(previous),
        });
        Ok(obj)
    }

    /// Remove an object (if `expected_rv` is given it must match); the DELETED event carries a new
    /// resourceVersion, as a real server's does.
    pub fn delete(
        &mut self,
        storage: &str,
        namespace: &str,
        name: &str,
        expected_rv: Option<&str>,
    ) -> Result<Value, WriteError> {
        let key = (storage.to_string(), namespace.to_string(), name.to_string());
        let Some(old) = self.objects.get(&key) else {
            return Err(WriteError::NotFound);
        };
        if expected_rv.is_some_and(|e| e != rv_of(old)) {
            return Err(WriteError::Conflict);
        }
        let mut obj = self.objects.remove(&key).unwrap_or(Value::Null);
        let rv = self.next_rv();
        set_rv(&mut obj, rv);
        self.record(Change {
            rv,
            storage: storage.into(),
            namespace: namespace.into(),
            kind: EventType::Deleted,
            object: obj.clone(),
            previous: None,
        });
        Ok(obj)
    }
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_counter_and_bounded_history() {
        let mut s = Store::new(2);
        let a = s
            .create("/pods", "ns", "a", json!({"metadata": {"name": "a"}}))
            .unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "2");
        assert_eq!(
            s.create("/pods", "ns", "a", json!({"metadata": {}})),
            Err(WriteError::AlreadyExists)
        );
        assert_eq!(
            s.update("/pods", "ns", "a", "1", json!({"metadata": {}})),
            Err(WriteError::Conflict)
        );
        s.update("/pods", "ns", "a", "2", json!({"metadata": {"name": "a"}}))
            .unwrap();
        s.create("/cm", "ns", "b", json!({"metadata": {"name": "b"}}))
            .unwrap();
        assert_eq!(s.current_rv(), 4);
        assert_eq!(s.compacted_rv(), 2);
        assert_eq!(s.changes_since(2).len(), 2);
        assert_eq!(s.list("/pods", Some("ns")).len(), 1);
        assert_eq!(s.list("/pods", Some("other")).len(), 0);
        let d = s.delete("/pods", "ns", "a", None).unwrap();
        assert_eq!(d["metadata"]["resourceVersion"], "5");
    }
}
