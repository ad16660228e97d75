//! Patches (FIDELITY F3, F7, F9): JSON Patch (RFC 6902), JSON merge patch (RFC 7386), strategic
//! merge patch for built-in kinds and server-side apply with `metadata.managedFields`.
//!
//! Every function takes the stored object and the raw request body and returns the new object,
//! which the core then runs through the ordinary update pipeline. No input makes them panic: the
//! parsers bound nesting depth (128; deeply nested YAML is refused before parsing) and every walk
//! below is over already-parsed values.
//!
//! Deliberately less than the real server (each documented where it applies):
//! - custom resources: every list is atomic for apply (`x-kubernetes-list-type: map` is not read);
//! - `managedFields` entries carry no `subresource`: the core's `/status` writes are recorded like
//!   main-resource writes;
//! - apply ignores explicit `null`s in the applied configuration and tolerates duplicate or
//!   missing key fields in associative lists (the real server rejects those);
//! - JSON decoding errors carry serde's wording, not Go's.

mod apply;
mod merge_keys;
mod strategic;

use serde_json::{Value, json};

use crate::status::{ApiError, FieldError};

/// The most operations the API server accepts in one JSON Patch.
const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

pub use apply::{apply_server_side, record_update_manager};

/// Group, version and kind of the object being patched (`group` empty for the core API).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn new(group: &str, version: &str, kind: &str) -> Self {
        Self {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
        }
    }

    /// `apiVersion` as objects carry it: `v1`, `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// One field another manager owns with a different value than the apply asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyConflict {
    /// The manager as the API server prints it: `"kubectl"`, or `"kubectl-edit" using apps/v1`.
    pub manager: String,
    /// The field path as the API server prints it: `.spec.replicas`, `.spec.containers[name="app"].image`.
    pub field: String,
}

/// Why a patch could not be applied; [`PatchError::to_api_error`] gives the real API answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The body cannot be decoded or has the wrong shape: 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// The patch is well formed but does not apply to this object (failed JSON Patch `test`,
    /// missing path, retainKeys mismatch): 422 Invalid, as the server's generic response.
    #[error("{0}")]
    NotApplicable(String),
    /// What the real server reports as an internal error for a strategic patch it cannot
    /// process (merge key missing from an element, unknown `$patch` value): 500.
    #[error("{0}")]
    Internal(String),
    /// The patch options are invalid (apply without `fieldManager`): 422 on `PatchOptions`.
    #[error("{0}")]
    InvalidOptions(FieldError),
    /// A JSON Patch with more operations than the server accepts: 413.
    #[error(
        "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got: {0}"
    )]
    TooManyOperations(usize),
    /// Server-side apply touched fields other managers own: 409 Conflict.
    #[error("{}", conflict_message(.0))]
    ApplyConflict(Vec<ApplyConflict>),
}

impl PatchError {
    /// The `Status` error the API server answers with.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Self::BadRequest(msg) => ApiError::bad_request(msg.clone()),
            Self::NotApplicable(msg) => ApiError::new(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request",
            )
            .with_details(
                json!({"causes": [{"reason": "UnexpectedServerResponse", "message": msg}]}),
            ),
            Self::Internal(msg) => ApiError::internal(format!("Internal error occurred: {msg}"))
                .with_details(json!({"causes": [{"message": msg}]})),
            Self::InvalidOptions(e) => {
                ApiError::invalid("meta.k8s.io", "PatchOptions", "", std::slice::from_ref(e))
            }
            Self::TooManyOperations(_) => ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: {self}"),
            ),
            Self::ApplyConflict(conflicts) => {
                let causes: Vec<Value> = conflicts
                    .iter()
                    .map(|c| {
                        json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.manager), "field": c.field})
                    })
                    .collect();
                ApiError::new(409, "Conflict", conflict_message(conflicts))
                    .with_details(json!({"causes": causes}))
            }
        }
    }
}

/// `Apply failed with 1 conflict: conflict with "m": .a`, or for several, grouped by manager
/// (sorted) as `Apply failed with 2 conflicts: conflicts with "m":\n- .a\n- .b`.
fn conflict_message(conflicts: &[ApplyConflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager, only.field
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort_unstable();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        lines.extend(
            conflicts
                .iter()
                .filter(|c| c.manager == m)
                .map(|c| format!("- {}", c.field)),
        );
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Applies a JSON Patch (RFC 6902, all six operations). Atomic: on any failure nothing changes.
pub fn apply_json_patch(doc: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_slice(patch).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    if ops.0.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations(ops.0.len()));
    }
    let mut out = doc.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| {
        let op = ops.0.get(e.operation);
        PatchError::NotApplicable(json_patch_failure(op, &e))
    })?;
    require_object(out)
}

/// The failure text in the shape the API server's JSON Patch library reports it.
fn json_patch_failure(
    op: Option<&json_patch::PatchOperation>,
    e: &json_patch::PatchError,
) -> String {
    use json_patch::{PatchErrorKind, PatchOperation};
    let path = e.path.to_string();
    let name = match op {
        Some(PatchOperation::Add(_)) => "add",
        Some(PatchOperation::Remove(_)) => "remove",
        Some(PatchOperation::Replace(_)) => "replace",
        Some(PatchOperation::Move(_)) => "move",
        Some(PatchOperation::Copy(_)) => "copy",
        Some(PatchOperation::Test(_)) => "test",
        None => "unknown",
    };
    match &e.kind {
        PatchErrorKind::TestFailed => format!("testing value {path} failed: test failed"),
        PatchErrorKind::InvalidFromPointer => {
            let from = match op {
                Some(PatchOperation::Move(m)) => m.from.to_string(),
                Some(PatchOperation::Copy(c)) => c.from.to_string(),
                _ => String::new(),
            };
            format!(
                "{name} operation does not apply: doc is missing from path: \"{from}\": missing value"
            )
        }
        PatchErrorKind::CannotMoveInsideItself => {
            format!(
                "{name} operation does not apply: cannot move \"{path}\" into one of its children"
            )
        }
        _ => format!(
            "{name} operation does not apply: doc is missing path: \"{path}\": missing value"
        ),
    }
}

/// Applies a JSON merge patch (RFC 7386): maps merge, `null` deletes, everything else replaces.
pub fn apply_merge_patch(doc: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let patch = parse_patch_object(patch)?;
    let mut out = doc.clone();
    json_patch::merge(&mut out, &patch);
    require_object(out)
}

/// Applies a strategic merge patch using the merge keys the built-in types declare.
///
/// Kinds without strategic metadata (custom resources) are merged with atomic lists; the core
/// answers 415 for them before calling this, as the real server does.
pub fn apply_strategic_merge_patch(
    doc: &Value,
    patch: &[u8],
    gvk: &Gvk,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = parse_patch_object(patch)? else {
        return Err(PatchError::BadRequest(
            "the patch is not a JSON object".into(),
        ));
    };
    let Value::Object(original) = doc.clone() else {
        return Err(PatchError::BadRequest(
            "the object to patch is not a JSON object".into(),
        ));
    };
    let merged = strategic::merge_map(original, &patch, merge_keys::root(gvk))?;
    Ok(Value::Object(merged))
}

fn parse_patch_object(patch: &[u8]) -> Result<Value, PatchError> {
    let value: Value = serde_json::from_slice(patch)
        .map_err(|e| PatchError::BadRequest(format!("error decoding patch: {e}")))?;
    if !value.is_object() {
        return Err(PatchError::BadRequest("Invalid JSON Patch".into()));
    }
    Ok(value)
}

fn require_object(v: Value) -> Result<Value, PatchError> {
    if v.is_object() {
        Ok(v)
    } else {
        Err(PatchError::BadRequest(format!(
            "the patched object is not a JSON object: {v}"
        )))
    }
}

#[cfg(test)]
mod tests;
