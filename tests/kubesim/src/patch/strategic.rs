//! Strategic merge patch (`application/strategic-merge-patch+json`) over JSON values, driven by
//! the merge keys of [`super::merge_keys`].

use serde_json::{Map, Value};

use super::PatchError;
use super::merge_keys::{Field, ListKind, Shape, field};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Merges `patch` into `original`, a map of type `node`.
pub(crate) fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    node: Shape,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        match directive.as_str() {
            // The patch is the new value; nested directives still get resolved.
            Some("replace") => {
                let mut rest = patch.clone();
                rest.remove(DIRECTIVE);
                return merge_map(Map::new(), &rest, node);
            }
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => return Err(bad_patch_type(directive, patch)),
        }
    }

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keys = retain
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
            .ok_or_else(|| PatchError::BadRequest("invalid patch format of retainKeys".into()))?;
        let outside = patch
            .iter()
            .any(|(k, v)| !k.starts_with('$') && !v.is_null() && !keys.contains(&k.as_str()));
        if outside {
            return Err(PatchError::NotApplicable(
                "patch content doesn't match retainKeys list".into(),
            ));
        }
        original.retain(|k, _| keys.contains(&k.as_str()));
    }

    // The order the server had, needed by `$setElementOrder` once the lists are merged.
    let mut server_orders = Vec::new();
    for (k, v) in patch {
        if let Some(name) = k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let remove = v.as_array().ok_or_else(|| {
                PatchError::BadRequest("invalid patch format of primitive list".into())
            })?;
            if let Some(Value::Array(list)) = original.get_mut(name) {
                list.retain(|item| !remove.contains(item));
            }
        } else if let Some(name) = k.strip_prefix(SET_ELEMENT_ORDER) {
            let order = v.as_array().ok_or_else(|| {
                PatchError::BadRequest("invalid patch format of setElementOrder list".into())
            })?;
            let server = match original.get(name) {
                Some(Value::Array(list)) => list.clone(),
                _ => Vec::new(),
            };
            server_orders.push((name, order, server));
        }
    }

    for (k, v) in patch {
        if k.starts_with('$') {
            continue;
        }
        let f = field(node, k);
        if v.is_null() {
            original.remove(k);
            continue;
        }
        let merged = match (original.remove(k), v) {
            (Some(Value::Object(o)), Value::Object(p)) => Value::Object(merge_map(o, p, f.node)?),
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(merge_list(o, p, f)?),
            (_, Value::Object(p)) => Value::Object(merge_map(Map::new(), p, f.node)?),
            (_, Value::Array(p)) => Value::Array(merge_list(Vec::new(), p, f)?),
            (_, scalar) => scalar.clone(),
        };
        original.insert(k.clone(), merged);
    }

    for (name, order, server) in server_orders {
        let f = field(node, name);
        if let Some(Value::Array(list)) = original.get_mut(name) {
            let items = std::mem::take(list);
            *list = set_element_order(items, order, &server, f)?;
        }
    }
    Ok(original)
}

fn bad_patch_type(directive: &Value, map: &Map<String, Value>) -> PatchError {
    let shown = directive
        .as_str()
        .map_or_else(|| directive.to_string(), str::to_string);
    PatchError::Internal(format!(
        "unknown patch type: {shown} in map: {}",
        Value::Object(map.clone())
    ))
}

/// Merges a patch list into an original list according to the field's strategy.
fn merge_list(original: Vec<Value>, patch: &[Value], f: Field) -> Result<Vec<Value>, PatchError> {
    match f.list {
        // Lists without a strategy are replaced by what the patch sends.
        ListKind::Atomic => Ok(patch.to_vec()),
        ListKind::Set => {
            if let Some(rest) = replaced(patch)? {
                return Ok(rest);
            }
            let mut out = original;
            for item in patch {
                if item.is_array() {
                    return Err(PatchError::NotApplicable(
                        "lists of lists are not supported".into(),
                    ));
                }
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Ok(out)
        }
        ListKind::Map(keys) => {
            let key = keys[0];
            if let Some(rest) = replaced(patch)? {
                return rest
                    .into_iter()
                    .map(|item| match item {
                        Value::Object(m) => merge_map(Map::new(), &m, f.node).map(Value::Object),
                        other => Ok(other),
                    })
                    .collect();
            }
            let mut out = original;
            for item in patch {
                let Value::Object(p) = item else {
                    return Err(PatchError::BadRequest(format!(
                        "unable to merge list element {item}: elements of a list with merge key \"{key}\" must be maps"
                    )));
                };
                let directive = p.get(DIRECTIVE);
                let Some(id) = p.get(key) else {
                    return Err(no_merge_key(p, key));
                };
                match directive.and_then(Value::as_str) {
                    Some("delete") => {
                        out.retain(|o| o.get(key) != Some(id));
                        continue;
                    }
                    None | Some("merge") => {}
                    Some(_) => return Err(bad_patch_type(directive.unwrap_or(&Value::Null), p)),
                }
                if directive.is_some_and(|d| !d.is_string()) {
                    return Err(bad_patch_type(directive.unwrap_or(&Value::Null), p));
                }
                match out.iter_mut().find(|o| o.get(key) == Some(id)) {
                    Some(existing) => {
                        let current = match existing.take() {
                            Value::Object(m) => m,
                            _ => Map::new(),
                        };
                        *existing = Value::Object(merge_map(current, p, f.node)?);
                    }
                    None => out.push(Value::Object(merge_map(Map::new(), p, f.node)?)),
                }
            }
            Ok(out)
        }
    }
}

fn no_merge_key(map: &Map<String, Value>, key: &str) -> PatchError {
    PatchError::Internal(format!(
        "map: {} does not contain declared merge key: {key}",
        Value::Object(map.clone())
    ))
}

/// A `{"$patch": "replace"}` element makes the rest of the patch list the new list.
fn replaced(patch: &[Value]) -> Result<Option<Vec<Value>>, PatchError> {
    let is_replace = |v: &Value| v.get(DIRECTIVE).and_then(Value::as_str) == Some("replace");
    if !patch.iter().any(is_replace) {
        return Ok(None);
    }
    Ok(Some(
        patch.iter().filter(|v| !is_replace(v)).cloned().collect(),
    ))
}

/// The identity of a list element for ordering: its merge key for maps, itself for primitives.
fn identity(item: &Value, f: Field) -> Option<&Value> {
    match f.list {
        ListKind::Map(keys) => item.get(keys[0]),
        _ => Some(item),
    }
}

/// Orders `items` as `$setElementOrder` asks: the listed elements in the listed order, the
/// elements only the server has interleaved where they stood in the server's list.
fn set_element_order(
    items: Vec<Value>,
    order: &[Value],
    server: &[Value],
    f: Field,
) -> Result<Vec<Value>, PatchError> {
    let order_ids: Vec<&Value> = match f.list {
        ListKind::Map(keys) => order
            .iter()
            .map(|o| {
                o.get(keys[0])
                    .ok_or_else(|| no_merge_key(o.as_object().unwrap_or(&Map::new()), keys[0]))
            })
            .collect::<Result<_, _>>()?,
        _ => order.iter().collect(),
    };
    let server_pos = |item: &Value| {
        let id = identity(item, f)?;
        server.iter().position(|s| identity(s, f) == Some(id))
    };
    let mut listed: Vec<(usize, Value)> = Vec::new();
    let mut server_only: Vec<Value> = Vec::new();
    for item in items {
        match identity(&item, f).and_then(|id| order_ids.iter().position(|o| *o == id)) {
            Some(pos) => listed.push((pos, item)),
            None => server_only.push(item),
        }
    }
    listed.sort_by_key(|(pos, _)| *pos);
    let mut left = listed.into_iter().map(|(_, v)| v).peekable();
    let mut right = server_only.into_iter().peekable();
    let mut out = Vec::new();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                matches!((server_pos(l), server_pos(r)), (Some(a), Some(b)) if a < b)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}
