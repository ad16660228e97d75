//! Server-side apply (`application/apply-patch+yaml`) and the `metadata.managedFields`
//! bookkeeping of ordinary writes, in the structured-merge-diff model: every manager owns a set
//! of field paths (leaves, and the elements of associative lists), serialised as `FieldsV1`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::merge_keys::{self, Field, ListKind, Shape, key_default};
use super::{ApplyConflict, Gvk, PatchError};
use crate::status::{FieldError, FieldErrorKind};

/// One step of a field path, as `FieldsV1` spells it (`f:`, `k:`, `v:`, `i:`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Elem {
    Field(String),
    /// An element of an associative list, by its key fields as canonical JSON.
    Key(String),
    /// An element of a set, as canonical JSON.
    Value(String),
    Index(usize),
}

type Path = Vec<Elem>;
type FieldSet = BTreeSet<Path>;

/// A `managedFields` entry: its other attributes kept as they were, its field set parsed.
struct Entry {
    attrs: Map<String, Value>,
    set: FieldSet,
}

impl Entry {
    fn attr(&self, name: &str) -> &str {
        self.attrs.get(name).and_then(Value::as_str).unwrap_or("")
    }

    fn new(manager: &str, operation: &str, api_version: &str, now: &str, set: FieldSet) -> Self {
        let mut attrs = Map::new();
        for (k, v) in [
            ("manager", manager),
            ("operation", operation),
            ("apiVersion", api_version),
            ("time", now),
            ("fieldsType", "FieldsV1"),
        ] {
            attrs.insert(k.to_string(), Value::String(v.to_string()));
        }
        Self { attrs, set }
    }

    /// The manager as conflict messages print it.
    fn printed(&self) -> String {
        let mut out = quoted(self.attr("manager"));
        let sub = self.attr("subresource");
        if !sub.is_empty() {
            out.push_str(&format!(" with subresource {}", quoted(sub)));
        }
        if self.attr("operation") == "Update" {
            out.push_str(&format!(" using {}", self.attr("apiVersion")));
        }
        out
    }
}

fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Metadata the server owns; never part of a manager's set.
fn stripped(path: &[Elem]) -> bool {
    const META: &[&str] = &[
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ];
    match path {
        [Elem::Field(f), ..] if f == "apiVersion" || f == "kind" => true,
        [Elem::Field(m), Elem::Field(f), ..] if m == "metadata" => META.contains(&f.as_str()),
        _ => false,
    }
}

/// The set of fields an object sets, for the object's type.
fn field_set(obj: &Map<String, Value>, node: Shape) -> FieldSet {
    let mut out = FieldSet::new();
    collect_map(obj, node, &mut Vec::new(), &mut out);
    out.retain(|p| !stripped(p));
    out
}

fn collect_map(map: &Map<String, Value>, node: Shape, path: &mut Path, out: &mut FieldSet) {
    for (k, v) in map {
        if v.is_null() {
            continue;
        }
        path.push(Elem::Field(k.clone()));
        collect_value(v, merge_keys::field(node, k), path, out);
        path.pop();
    }
}

fn collect_value(v: &Value, f: Field, path: &mut Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !f.atomic_map && !m.is_empty() => collect_map(m, f.node, path, out),
        Value::Array(items) if !items.is_empty() && f.apply_list() != ListKind::Atomic => {
            for item in items {
                match (f.apply_list(), item) {
                    (ListKind::Map(keys), Value::Object(m)) => {
                        path.push(Elem::Key(key_text(m, keys)));
                        out.insert(path.clone());
                        collect_map(m, f.node, path, out);
                        path.pop();
                    }
                    (ListKind::Set, _) => {
                        path.push(Elem::Value(item.to_string()));
                        out.insert(path.clone());
                        path.pop();
                    }
                    _ => {
                        out.insert(path.clone());
                    }
                }
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The key of an associative list element as canonical JSON (`{"name":"app"}`), key fields
/// sorted, defaults filled in as the server defaults them before tracking.
fn key_text(item: &Map<String, Value>, keys: &[&str]) -> String {
    let mut sorted: BTreeMap<&str, Value> = BTreeMap::new();
    for k in keys {
        if let Some(v) = item.get(*k).cloned().or_else(|| key_default(k)) {
            sorted.insert(k, v);
        }
    }
    let mut m = Map::new();
    for (k, v) in sorted {
        m.insert(k.to_string(), v);
    }
    Value::Object(m).to_string()
}

fn key_matches(item: &Value, key: &Map<String, Value>) -> bool {
    let Value::Object(m) = item else { return false };
    key.iter()
        .all(|(k, v)| m.get(k).cloned().or_else(|| key_default(k)).as_ref() == Some(v))
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn value_at<'a>(obj: &'a Value, path: &[Elem]) -> Option<&'a Value> {
    let mut cur = obj;
    for e in path {
        cur = match e {
            Elem::Field(f) => cur.as_object()?.get(f)?,
            Elem::Key(k) => {
                let Value::Object(key) = parse_json(k) else {
                    return None;
                };
                cur.as_array()?.iter().find(|i| key_matches(i, &key))?
            }
            Elem::Value(v) => {
                let v = parse_json(v);
                cur.as_array()?.iter().find(|i| **i == v)?
            }
            Elem::Index(i) => cur.as_array()?.get(*i)?,
        };
    }
    Some(cur)
}

/// Removes the value at `path`; parents the removal leaves empty go too, as they would from
/// a typed object serialised with `omitempty`.
fn remove_at(cur: &mut Value, path: &[Elem]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return match (first, cur) {
            (Elem::Field(f), Value::Object(m)) => m.remove(f).is_some(),
            (Elem::Key(k), Value::Array(items)) => {
                let Value::Object(key) = parse_json(k) else {
                    return false;
                };
                let before = items.len();
                items.retain(|i| !key_matches(i, &key));
                items.len() != before
            }
            (Elem::Value(v), Value::Array(items)) => {
                let v = parse_json(v);
                let before = items.len();
                items.retain(|i| *i != v);
                items.len() != before
            }
            _ => false,
        };
    }
    let child = match (first, &mut *cur) {
        (Elem::Field(f), Value::Object(m)) => m.get_mut(f),
        (Elem::Key(k), Value::Array(items)) => match parse_json(k) {
            Value::Object(key) => items.iter_mut().find(|i| key_matches(i, &key)),
            _ => None,
        },
        _ => None,
    };
    let Some(child) = child else { return false };
    if !remove_at(child, rest) {
        return false;
    }
    let emptied = match child {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if emptied {
        remove_at(cur, std::slice::from_ref(first));
    }
    true
}

fn elem_name(e: &Elem) -> String {
    match e {
        Elem::Field(f) => format!("f:{f}"),
        Elem::Key(k) => format!("k:{k}"),
        Elem::Value(v) => format!("v:{v}"),
        Elem::Index(i) => format!("i:{i}"),
    }
}

fn parse_elem(name: &str) -> Option<Elem> {
    let (prefix, rest) = name.split_at_checked(2)?;
    match prefix {
        "f:" => Some(Elem::Field(rest.to_string())),
        "k:" => Some(Elem::Key(parse_json(rest).to_string())),
        "v:" => Some(Elem::Value(parse_json(rest).to_string())),
        "i:" => rest.parse().ok().map(Elem::Index),
        _ => None,
    }
}

/// The path as the API server prints it: `.spec.containers[name="app"].image`.
fn display(path: &[Elem]) -> String {
    let mut out = String::new();
    for e in path {
        match e {
            Elem::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            Elem::Key(k) => {
                let parts: Vec<String> = match parse_json(k) {
                    Value::Object(m) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    _ => Vec::new(),
                };
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            Elem::Value(v) => out.push_str(&format!("[={v}]")),
            Elem::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[derive(Default)]
struct Tree {
    member: bool,
    children: BTreeMap<String, Tree>,
}

fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Tree::default();
    for path in set {
        let mut node = &mut root;
        for e in path {
            node = node.children.entry(elem_name(e)).or_default();
        }
        node.member = true;
    }
    fn render(t: &Tree) -> Value {
        let mut m = Map::new();
        if t.member && !t.children.is_empty() {
            m.insert(".".to_string(), json!({}));
        }
        for (k, child) in &t.children {
            m.insert(k.clone(), render(child));
        }
        Value::Object(m)
    }
    render(&root)
}

fn from_fields_v1(v: &Value, path: &mut Path, out: &mut FieldSet) {
    let Value::Object(m) = v else { return };
    if m.is_empty() && !path.is_empty() {
        out.insert(path.clone());
    }
    for (k, child) in m {
        if k == "." {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        } else if let Some(e) = parse_elem(k) {
            path.push(e);
            from_fields_v1(child, path, out);
            path.pop();
        }
    }
}

fn parse_entries(obj: &Value) -> Vec<Entry> {
    let Some(Value::Array(list)) = obj.pointer("/metadata/managedFields") else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_object)
        .map(|e| {
            let mut attrs = e.clone();
            let fields = attrs.remove("fieldsV1").unwrap_or(Value::Null);
            let mut set = FieldSet::new();
            from_fields_v1(&fields, &mut Vec::new(), &mut set);
            Entry { attrs, set }
        })
        .collect()
}

/// Writes the entries with a non-empty set back, or drops `managedFields` when none is left.
/// Entries are kept in the order the API server encodes them: by operation (`Apply` first),
/// time, manager, apiVersion, subresource.
fn store_entries(obj: &mut Map<String, Value>, mut entries: Vec<Entry>) {
    entries.sort_by(|a, b| {
        let key = |e: &Entry| {
            ["operation", "time", "manager", "apiVersion", "subresource"]
                .map(|k| e.attr(k).to_string())
        };
        key(a).cmp(&key(b))
    });
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut m = e.attrs;
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), to_fields_v1(&e.set));
            Value::Object(m)
        })
        .collect();
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    if let Value::Object(meta) = meta {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Merges an applied configuration into the live object: maps field by field, associative
/// lists element by element (by key), sets by union; scalars and atomic values replace.
fn merge_into(live: &mut Map<String, Value>, applied: &Map<String, Value>, node: Shape) {
    for (k, v) in applied {
        if v.is_null() {
            continue;
        }
        let f = merge_keys::field(node, k);
        match (live.get_mut(k), v) {
            (Some(Value::Object(l)), Value::Object(a)) if !f.atomic_map => merge_into(l, a, f.node),
            (Some(Value::Array(l)), Value::Array(a)) if f.apply_list() != ListKind::Atomic => {
                for item in a {
                    match (f.apply_list(), item) {
                        (ListKind::Map(keys), Value::Object(ai)) => {
                            let key = key_text(ai, keys);
                            let existing = l.iter_mut().find_map(|li| match li {
                                Value::Object(lm) if key_text(lm, keys) == key => Some(lm),
                                _ => None,
                            });
                            match existing {
                                Some(lm) => merge_into(lm, ai, f.node),
                                None => l.push(without_nulls(item)),
                            }
                        }
                        _ if !l.contains(item) => l.push(without_nulls(item)),
                        _ => {}
                    }
                }
            }
            _ => {
                live.insert(k.clone(), without_nulls(v));
            }
        }
    }
}

fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Deeper bracket nesting than any real manifest has; the YAML parser gets slow on such input
/// before its own recursion limit stops it, so it is refused up front.
const MAX_FLOW_DEPTH: usize = 1000;

/// The deepest nesting of `[`/`{` in the body, quotes not considered (an over-estimate only
/// for unbalanced brackets inside strings).
fn flow_depth(body: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in body {
        match b {
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Decodes an apply body: JSON (what kube-rs and kubectl send) or YAML.
fn parse_apply_body(body: &[u8]) -> Result<Map<String, Value>, PatchError> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) if flow_depth(body) > MAX_FLOW_DEPTH => {
            return Err(PatchError::BadRequest(
                "error decoding YAML: the apply configuration is nested too deeply".into(),
            ));
        }
        Err(_) => serde_yaml::from_slice(body)
            .map_err(|e| PatchError::BadRequest(format!("error decoding YAML: {e}")))?,
    };
    match value {
        Value::Object(m) => Ok(m),
        other => Err(PatchError::BadRequest(format!(
            "error decoding YAML: the apply configuration is not an object: {other}"
        ))),
    }
}

/// Server-side apply: merges the applied configuration into `live` (or creates the object when
/// `live` is `None`), removes what `manager` applied before and no longer applies (unless another
/// manager owns it too), and records `manager`'s `Apply` entry in `metadata.managedFields`.
///
/// Fields another manager owns with a different value are conflicts (409) unless `force`,
/// which takes them over. For custom resources every list is atomic: `x-kubernetes-list-type:
/// map` is not read. An explicit `null` in the applied configuration is ignored.
pub fn apply_server_side(
    live: Option<&Value>,
    applied: &[u8],
    manager: &str,
    force: bool,
    gvk: &Gvk,
    now: &str,
) -> Result<Value, PatchError> {
    if manager.is_empty() {
        return Err(PatchError::InvalidOptions(FieldError::new(
            FieldErrorKind::Required,
            "fieldManager",
            "is required for apply patch",
        )));
    }
    let applied = parse_apply_body(applied)?;
    let api_version = gvk.api_version();
    let sent_version = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if sent_version != api_version {
        return Err(PatchError::BadRequest(format!(
            "Incorrect version specified in apply patch. Specified patch version: {sent_version}, expected: {api_version}"
        )));
    }
    let sent_kind = applied.get("kind").and_then(Value::as_str).unwrap_or("");
    if sent_kind != gvk.kind {
        return Err(PatchError::BadRequest(format!(
            "Incorrect kind specified in apply patch. Specified patch kind: {sent_kind}, expected: {}",
            gvk.kind
        )));
    }
    if applied
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|m| !m.is_null())
    {
        return Err(PatchError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let node = merge_keys::root(gvk);
    let new_set = field_set(&applied, node);

    let mut merged = match live {
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(PatchError::BadRequest(
                "the object to apply to is not a JSON object".into(),
            ));
        }
        None => Map::new(),
    };
    let mut entries = live.map(parse_entries).unwrap_or_default();
    if let (Some(Value::Object(l)), true) = (live, entries.is_empty()) {
        // An object nobody tracked yet: its current fields belong to a placeholder manager, so
        // that the first apply cannot silently overwrite or drop them.
        let set = field_set(l, node);
        entries.push(Entry::new(
            "before-first-apply",
            "Update",
            &api_version,
            now,
            set,
        ));
    }
    let mine = entries.iter().position(|e| {
        e.attr("manager") == manager
            && e.attr("operation") == "Apply"
            && e.attr("subresource").is_empty()
    });
    let old_set = mine.map(|i| entries[i].set.clone()).unwrap_or_default();

    merge_into(&mut merged, &applied, node);
    let mut merged = Value::Object(merged);

    let mut conflicts = Vec::new();
    let mut taken = Vec::new();
    for path in &new_set {
        if matches!(path.last(), Some(Elem::Key(_))) {
            continue;
        }
        let before = live.and_then(|l| value_at(l, path));
        if before == value_at(&merged, path) {
            continue;
        }
        for (i, e) in entries.iter().enumerate() {
            if Some(i) != mine && e.set.contains(path) {
                conflicts.push(ApplyConflict {
                    manager: e.printed(),
                    field: display(path),
                });
                taken.push((i, path.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(PatchError::ApplyConflict(conflicts));
    }
    for (i, path) in taken {
        entries[i].set.remove(&path);
    }

    let others: Vec<&Path> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != mine)
        .flat_map(|(_, e)| e.set.iter())
        .collect();
    let dropped: Vec<&Path> = old_set
        .difference(&new_set)
        .filter(|p| !others.iter().any(|o| o.starts_with(p)))
        .collect();
    for path in &dropped {
        let ancestor_dropped = dropped
            .iter()
            .any(|q| q.len() < path.len() && path.starts_with(q));
        if !ancestor_dropped {
            remove_at(&mut merged, path);
        }
    }

    match mine {
        Some(i) => {
            let e = &mut entries[i];
            if e.set != new_set || e.attr("apiVersion") != api_version {
                e.set = new_set;
                e.attrs.insert("apiVersion".into(), json!(api_version));
                e.attrs.insert("time".into(), json!(now));
            }
        }
        None => entries.push(Entry::new(manager, "Apply", &api_version, now, new_set)),
    }
    if let Value::Object(m) = &mut merged {
        store_entries(m, entries);
    }
    Ok(merged)
}

/// Records `manager`'s `Update` entry for an ordinary create, update or patch: it takes over
/// the fields the write changed (from every other manager, as the real server does); fields the
/// write removed leave every set. A client sending `managedFields: [{}]` clears the tracking.
pub fn record_update_manager(old: Option<&Value>, new: &mut Value, manager: &str, now: &str) {
    let sent = new.pointer("/metadata/managedFields").cloned();
    let previous = old
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .cloned();
    let Value::Object(new_map) = new else { return };
    if sent == Some(json!([{}])) {
        if let Some(Value::Object(meta)) = new_map.get_mut("metadata") {
            meta.remove("managedFields");
        }
        return;
    }
    let client_reset = matches!(&sent, Some(Value::Array(a)) if !a.is_empty()) && sent != previous;
    let mut entries = if client_reset {
        parse_entries(&Value::Object(new_map.clone()))
    } else {
        old.map(parse_entries).unwrap_or_default()
    };
    let api_version = new_map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = new_map.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("", api_version.as_str()));
    let node = merge_keys::root(&Gvk::new(group, version, kind));

    let new_value = Value::Object(new_map.clone());
    let changed: FieldSet = field_set(new_map, node)
        .into_iter()
        .filter(|p| {
            let before = old.and_then(|o| value_at(o, p));
            match p.last() {
                Some(Elem::Key(_) | Elem::Value(_)) => before.is_none(),
                _ => before != value_at(&new_value, p),
            }
        })
        .collect();
    for e in &mut entries {
        e.set
            .retain(|p| !changed.contains(p) && value_at(&new_value, p).is_some());
    }
    let mine = entries.iter().position(|e| {
        e.attr("manager") == manager
            && e.attr("operation") == "Update"
            && e.attr("apiVersion") == api_version
            && e.attr("subresource").is_empty()
    });
    if !changed.is_empty() {
        match mine {
            Some(i) => {
                entries[i].set.extend(changed);
                entries[i].attrs.insert("time".into(), json!(now));
            }
            None => entries.push(Entry::new(manager, "Update", &api_version, now, changed)),
        }
    }
    store_entries(new_map, entries);
}
