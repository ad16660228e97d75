//! The one place the core calls the object modules (`patch`, `schema`, `table`, `defaults`,
//! `validation`, `admission`) through their KUBESIM.md contracts, so the rest of the core does not
//! depend on their internals.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::admission::{Admission, ServiceResolver};
use crate::resources::ResourceInfo;
use crate::status::{ApiError, FieldError};

/// Group/version/kind of the object a write is about.
pub type Gvk = crate::patch::Gvk;

/// The Gvk of a resource.
pub fn gvk_of(info: &ResourceInfo) -> Gvk {
    Gvk::new(&info.group, &info.version, &info.kind)
}

/// RFC 6902 JSON Patch (with `test`).
pub fn json_patch(doc: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    crate::patch::apply_json_patch(doc, patch).map_err(|e| e.to_api_error())
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(doc: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    crate::patch::apply_merge_patch(doc, patch).map_err(|e| e.to_api_error())
}

/// Strategic merge patch for built-in kinds.
pub fn strategic_merge_patch(doc: &Value, patch: &[u8], gvk: &Gvk) -> Result<Value, ApiError> {
    crate::patch::apply_strategic_merge_patch(doc, patch, gvk).map_err(|e| e.to_api_error())
}

/// Server-side apply (`application/apply-patch+yaml`): field ownership and conflicts.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &[u8],
    manager: &str,
    force: bool,
    gvk: &Gvk,
    now: &str,
) -> Result<Value, ApiError> {
    crate::patch::apply_server_side(live, applied, manager, force, gvk, now)
        .map_err(|e| e.to_api_error())
}

/// Keep `metadata.managedFields` right for an ordinary write (operation `Update`).
pub fn record_update_manager(old: Option<&Value>, new: &mut Value, manager: &str, now: &str) {
    crate::patch::record_update_manager(old, new, manager, now);
}

/// Custom resources: prune, default, validate against the version's structural schema (F10).
pub fn schema_admit(obj: &mut Value, schema: Option<&Value>) -> Vec<FieldError> {
    let Some(schema) = schema else {
        return Vec::new();
    };
    crate::schema::prune(obj, schema);
    crate::schema::apply_defaults(obj, schema);
    crate::schema::validate(obj, schema)
}

/// Built-in defaults applied before (and again after) mutating admission.
pub fn builtin_defaults(group: &str, kind: &str, obj: &mut Value) {
    crate::defaults::apply_builtin_defaults(group, kind, obj);
}

/// Object-meta validation of every kind (F5).
pub fn validate_meta(meta: &Value, namespaced: bool) -> Vec<FieldError> {
    crate::validation::validate_object_meta(meta, namespaced)
}

/// Built-in create validation.
pub fn validate_create(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    crate::validation::validate_builtin_create(group, kind, obj)
}

/// Built-in update validation (F21).
pub fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    crate::validation::validate_builtin_update(group, kind, old, new)
}

/// The `meta.k8s.io/v1 Table` for `objects` (F2): CRD printer columns or the built-in printer.
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    include_object: &str,
    now: jiff::Timestamp,
) -> Value {
    let columns = match &info.crd_version {
        Some(v) => crate::table::crd_columns(v),
        None => crate::table::builtin_columns(&info.group, &info.kind),
    };
    crate::table::build_table(
        &info.group,
        &info.kind,
        &columns,
        objects,
        include_object,
        now,
    )
}

/// Maps webhook services to loopback addresses (`--service`, `SimHandle::register_service`).
#[derive(Debug, Default)]
pub struct ServiceMap {
    map: RwLock<BTreeMap<(String, String), SocketAddr>>,
}

impl ServiceMap {
    pub fn insert(&self, namespace: &str, name: &str, addr: SocketAddr) {
        if let Ok(mut m) = self.map.write() {
            m.insert((namespace.to_string(), name.to_string()), addr);
        }
    }

    pub fn lookup(&self, namespace: &str, name: &str) -> Option<SocketAddr> {
        self.map
            .read()
            .ok()?
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
    }
}

impl ServiceResolver for ServiceMap {
    fn resolve(&self, namespace: &str, name: &str, _port: u16) -> Option<SocketAddr> {
        self.lookup(namespace, name)
    }
}

/// What admission needs to know about one write.
pub type AdmissionInput = crate::admission::AdmissionAttributes;

/// Admission webhooks (F14–F19).
pub struct Webhooks {
    admission: Admission,
}

impl Webhooks {
    pub fn new(services: Arc<ServiceMap>) -> Self {
        Self {
            admission: Admission::new(services),
        }
    }

    /// Run mutating webhooks: the (possibly) mutated object and warnings.
    pub async fn mutate(
        &self,
        configs: &[Value],
        input: &AdmissionInput,
    ) -> Result<(Option<Value>, Vec<String>), ApiError> {
        let m = self.admission.mutate(configs, input).await?;
        Ok((m.object, m.warnings))
    }

    /// Run validating webhooks: warnings, or the denial.
    pub async fn validate(
        &self,
        configs: &[Value],
        input: &AdmissionInput,
    ) -> Result<Vec<String>, ApiError> {
        self.admission.validate(configs, input).await
    }
}
