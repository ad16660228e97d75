//! The garbage collector and the namespace/CRD cleanup a real control plane runs (FIDELITY F11,
//! F12): dependents whose owners are all gone are deleted (Background), dependents of an owner
//! deleted in the Foreground are deleted before it, Orphan strips owner references, a terminating
//! namespace is emptied and then removed, a deleted CRD takes its custom resources with it.
//!
//! These writes go straight to the store (no admission), as a shortcut of the real collector's
//! API calls; they produce the same watch events.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{
    ApiState, CRD_CLEANUP_FINALIZER, CRDS, NAMESPACES, finalizers, is_deleting, meta_str, now,
    ready_to_remove, set_finalizers,
};
use crate::status::ApiError;
use crate::store::{Key, Store};

type Edit = Box<dyn FnOnce(&mut Value)>;

enum Action {
    /// Delete: set deletionTimestamp when finalizers remain, remove otherwise.
    Delete(Key),
    SetOwners(Key, Vec<Value>),
    DropFinalizer(Key, String),
    RemoveNamespace(Key),
}

/// Run collection passes until nothing changes; returns removed CRDs (to stop serving them).
pub fn collect(state: &ApiState) -> Result<(), ApiError> {
    let mut removed_crds = Vec::new();
    {
        let mut store = state.write_store()?;
        for _ in 0..32 {
            let actions = plan(&store);
            if actions.is_empty() {
                break;
            }
            for a in actions {
                apply(&mut store, a, &mut removed_crds);
            }
        }
    }
    if !removed_crds.is_empty() {
        let mut reg = state
            .registry
            .write()
            .map_err(|_| ApiError::internal("registry lock poisoned"))?;
        for crd in &removed_crds {
            reg.set_crd(crd, false);
        }
    }
    Ok(())
}

/// The collector task: wakes on deletions and every second.
pub async fn run(state: Arc<ApiState>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = state.gc_wakeup.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = collect(&state) {
            tracing::warn!(error = %e, "garbage collection failed");
        }
    }
}

fn plan(store: &Store) -> Vec<Action> {
    let mut by_uid: HashMap<&str, (&Key, &Value)> = HashMap::new();
    let mut dependents: HashMap<&str, Vec<&Key>> = HashMap::new();
    for (k, v) in store.iter() {
        let uid = meta_str(v, "uid");
        if !uid.is_empty() {
            by_uid.insert(uid, (k, v));
        }
        for r in v
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(u) = r.get("uid").and_then(Value::as_str) {
                dependents.entry(u).or_default().push(k);
            }
        }
    }
    let mut actions = Vec::new();
    let mut doomed: HashSet<Key> = HashSet::new();
    for (k, v) in store.iter() {
        let refs = owner_refs(v);
        if refs.is_empty() {
            continue;
        }
        let mut keep = Vec::new();
        let mut live_owner = false;
        let mut delete_now = false;
        for r in &refs {
            let uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
            match by_uid.get(uid) {
                None => {}
                Some((_, owner)) => {
                    let f = finalizers(owner);
                    if is_deleting(owner) && f.iter().any(|x| x == "orphan") {
                        live_owner = true;
                        continue;
                    }
                    if is_deleting(owner) && f.iter().any(|x| x == "foregroundDeletion") {
                        delete_now = true;
                    }
                    live_owner = true;
                    keep.push(r.clone());
                }
            }
        }
        if !live_owner || delete_now {
            if !is_deleting(v) && doomed.insert(k.clone()) {
                actions.push(Action::Delete(k.clone()));
            }
        } else if keep.len() != refs.len() {
            actions.push(Action::SetOwners(k.clone(), keep));
        }
    }
    for (k, v) in store.iter() {
        if !is_deleting(v) {
            continue;
        }
        let uid = meta_str(v, "uid");
        let has_dependents = dependents.get(uid).is_some_and(|d| !d.is_empty());
        for f in finalizers(v) {
            if (f == "orphan" || f == "foregroundDeletion") && !has_dependents {
                actions.push(Action::DropFinalizer(k.clone(), f));
            }
        }
        if k.0 == NAMESPACES {
            let ns = &k.2;
            let mut empty = true;
            for (ck, cv) in store.iter().filter(|(ck, _)| ck.1 == *ns) {
                empty = false;
                if !is_deleting(cv) && doomed.insert(ck.clone()) {
                    actions.push(Action::Delete(ck.clone()));
                }
            }
            if empty && finalizers(v).is_empty() {
                actions.push(Action::RemoveNamespace(k.clone()));
            }
        }
        if k.0 == CRDS && finalizers(v).iter().any(|f| f == CRD_CLEANUP_FINALIZER) {
            let group = v
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or("");
            let plural = v
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or("");
            let storage = format!("{group}/{plural}");
            let mut empty = true;
            for (ck, cv) in store.iter().filter(|(ck, _)| ck.0 == storage) {
                empty = false;
                if !is_deleting(cv) && doomed.insert(ck.clone()) {
                    actions.push(Action::Delete(ck.clone()));
                }
            }
            if empty {
                actions.push(Action::DropFinalizer(
                    k.clone(),
                    CRD_CLEANUP_FINALIZER.into(),
                ));
            }
        }
    }
    actions
}

fn owner_refs(v: &Value) -> Vec<Value> {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn apply(store: &mut Store, action: Action, removed_crds: &mut Vec<Value>) {
    let (key, change): (Key, Edit) = match action {
        Action::Delete(key) => {
            let Some(cur) = store.get(&key.0, &key.1, &key.2) else {
                return;
            };
            if finalizers(cur).is_empty() && key.0 != NAMESPACES {
                if let Ok(obj) = store.delete(&key.0, &key.1, &key.2, None)
                    && key.0 == CRDS
                {
                    removed_crds.push(obj);
                }
                return;
            }
            let ts = now();
            let is_ns = key.0 == NAMESPACES;
            (
                key,
                Box::new(move |o: &mut Value| {
                    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.insert("deletionTimestamp".into(), json!(ts));
                        m.insert("deletionGracePeriodSeconds".into(), json!(0));
                    }
                    if is_ns {
                        o["status"] = json!({"phase": "Terminating"});
                    }
                }),
            )
        }
        Action::SetOwners(key, refs) => (
            key,
            Box::new(move |o: &mut Value| {
                if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                    if refs.is_empty() {
                        m.remove("ownerReferences");
                    } else {
                        m.insert("ownerReferences".into(), Value::Array(refs));
                    }
                }
            }),
        ),
        Action::DropFinalizer(key, f) => (
            key,
            Box::new(move |o: &mut Value| {
                let list: Vec<String> = finalizers(o).into_iter().filter(|x| *x != f).collect();
                set_finalizers(o, &list);
            }),
        ),
        Action::RemoveNamespace(key) => {
            let _ = store.delete(&key.0, &key.1, &key.2, None);
            return;
        }
    };
    let Some(cur) = store.get(&key.0, &key.1, &key.2).cloned() else {
        return;
    };
    let mut obj = cur.clone();
    change(&mut obj);
    if obj == cur {
        return;
    }
    let rv = meta_str(&cur, "resourceVersion").to_string();
    if ready_to_remove(&obj) && key.0 != NAMESPACES {
        if let Ok(o) = store.delete(&key.0, &key.1, &key.2, Some(&rv))
            && key.0 == CRDS
        {
            removed_crds.push(o);
        }
    } else {
        let _ = store.update(&key.0, &key.1, &key.2, &rv, obj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, uid: &str, owner: Option<&str>) -> Value {
        let mut o = json!({"metadata": {"name": name, "namespace": "ns", "uid": uid}});
        if let Some(ou) = owner {
            o["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": ou}]);
        }
        o
    }

    #[test]
    fn dependents_of_missing_owner_are_collected() {
        let mut s = Store::new(100);
        s.create(
            "/configmaps",
            "ns",
            "child",
            obj("child", "c1", Some("gone")),
        )
        .unwrap();
        s.create("/configmaps", "ns", "kept", obj("kept", "c2", None))
            .unwrap();
        let mut removed = vec![];
        for a in plan(&s) {
            apply(&mut s, a, &mut removed);
        }
        assert!(s.get("/configmaps", "ns", "child").is_none());
        assert!(s.get("/configmaps", "ns", "kept").is_some());
    }
}
