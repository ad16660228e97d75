//! The write pipeline and reads of the emulator: create, update, patch, delete with the order a
//! real API server uses (KUBESIM.md): decode → defaults → mutating admission → defaults →
//! schema/validation → generateName → validating admission → persist → watch events.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::Rng;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::admission::{GroupVersionKind, GroupVersionResource, Operation};
use crate::events;
use crate::glue::{self, AdmissionInput, ServiceMap, Webhooks};
use crate::known_fields;
use crate::resources::{Registry, ResourceInfo, crd_established_status};
use crate::status::{ApiError, FieldError, FieldErrorKind};
use crate::store::{Store, WriteError};

/// Finalizer a CRD carries until its custom resources are gone.
pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
/// Storage of namespaces.
pub const NAMESPACES: &str = "/namespaces";
/// Storage of CRDs.
pub const CRDS: &str = "apiextensions.k8s.io/customresourcedefinitions";
const MUTATING: &str = "admissionregistration.k8s.io/mutatingwebhookconfigurations";
const VALIDATING: &str = "admissionregistration.k8s.io/validatingwebhookconfigurations";
/// How often a patch is retried when the object changes underneath (as GuaranteedUpdate does).
const PATCH_RETRIES: usize = 16;

/// Tunables of one emulated API server.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bookmark_interval: Duration,
    pub max_body_bytes: usize,
}

/// Everything the HTTP layer and the background tasks share.
pub struct ApiState {
    pub store: RwLock<Store>,
    pub registry: RwLock<Registry>,
    pub services: Arc<ServiceMap>,
    pub webhooks: Webhooks,
    /// Wakes the garbage collector after deletions and finalizer changes.
    pub gc_wakeup: Notify,
    /// Next Service cluster IP (host part within 10.96.0.0/12) and NodePort to hand out.
    allocator: std::sync::Mutex<(u32, u16)>,
    pub settings: Settings,
}

/// `fieldValidation` (unknown and duplicate fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    Warn,
    #[default]
    Strict,
}

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: FieldValidation,
    pub force: bool,
    /// The manager of writes without `fieldManager` (the User-Agent's product name).
    pub default_manager: String,
}

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// Options of a delete (`DeleteOptions` body or query).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// `gracePeriodSeconds`: pods bound to a node are deleted gracefully (the kubelet finishes).
    pub grace_period: Option<i64>,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
    /// A write through the `scale` subresource: stored like a main-resource write, admitted as
    /// an `autoscaling/v1` Scale with `subResource: scale`.
    Scale,
}

/// A successful write.
#[derive(Debug, Clone)]
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
    /// Created (201) rather than updated (200).
    pub created: bool,
}

/// Why a write did not happen: the object changed underneath (a patch retries) or a real error.
#[derive(Debug)]
pub enum WriteFailure {
    Stale,
    Api(ApiError),
}

impl From<ApiError> for WriteFailure {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

/// The patch media types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// Current time as the API server writes it (RFC 3339, seconds).
pub fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| jiff::Timestamp::now().to_string())
}

/// A random RFC 4122 version 4 UID.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Five random characters from the API server's alphabet (F5).
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The metadata map of an object, created when absent; a non-object value becomes an empty
/// object first (callers check shapes before; this keeps every path panic-free).
fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let Value::Object(map) = obj else {
        unreachable!("made an object above")
    };
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

/// Set a nested field, creating missing (or null) intermediate objects; false when a value on the
/// way is not an object (then nothing changes).
pub fn set_in(obj: &mut Value, path: &[&str], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = obj;
    for seg in parents {
        let Some(map) = cur.as_object_mut() else {
            return false;
        };
        let next = map.entry(seg.to_string()).or_insert_with(|| json!({}));
        if next.is_null() {
            *next = json!({});
        }
        cur = next;
    }
    match cur.as_object_mut() {
        Some(map) => {
            map.insert(last.to_string(), value);
            true
        }
        None => false,
    }
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

pub fn set_finalizers(obj: &mut Value, list: &[String]) {
    let meta = meta_mut(obj);
    if list.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), json!(list));
    }
}

/// Deleting, no finalizers left and no grace period running: the object goes.
pub fn ready_to_remove(obj: &Value) -> bool {
    is_deleting(obj)
        && finalizers(obj).is_empty()
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
}

pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// The object without metadata and status: what `generation` tracks.
fn generation_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

/// Strip what a writer may not set (read-only metadata) from an incoming object.
fn scrub_for_create(obj: &mut Value) {
    let meta = meta_mut(obj);
    for f in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "selfLink",
    ] {
        meta.remove(f);
    }
}

impl ApiState {
    pub fn new(settings: Settings, services: Arc<ServiceMap>, history: usize) -> Self {
        Self {
            store: RwLock::new(Store::new(history)),
            registry: RwLock::new(Registry::new()),
            webhooks: Webhooks::new(services.clone()),
            services,
            gc_wakeup: Notify::new(),
            allocator: std::sync::Mutex::new((10, 30000)),
            settings,
        }
    }

    pub fn read_store(&self) -> Result<std::sync::RwLockReadGuard<'_, Store>, ApiError> {
        self.store
            .read()
            .map_err(|_| ApiError::internal("store lock poisoned"))
    }

    pub fn write_store(&self) -> Result<std::sync::RwLockWriteGuard<'_, Store>, ApiError> {
        self.store
            .write()
            .map_err(|_| ApiError::internal("store lock poisoned"))
    }

    pub fn registry(&self) -> Result<std::sync::RwLockReadGuard<'_, Registry>, ApiError> {
        self.registry
            .read()
            .map_err(|_| ApiError::internal("registry lock poisoned"))
    }

    /// The resource for a path, or the API server's 404 for an unknown resource.
    pub fn resolve(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Arc<ResourceInfo>, ApiError> {
        self.registry()?.get(group, version, plural).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
            .with_details(json!({}))
        })
    }

    fn not_found(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError::not_found(&info.group, &info.plural, name)
    }

    /// Read one object as the client asked for it.
    pub fn get(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<Value, ApiError> {
        let store = self.read_store()?;
        let obj = store
            .get(&info.storage, ns, name)
            .ok_or_else(|| Self::not_found(info, name))?;
        Ok(present(info, obj))
    }

    /// Check the namespace of a namespaced write exists and is not terminating (F11).
    fn check_namespace(
        &self,
        info: &ResourceInfo,
        ns: &str,
        creating: Option<&str>,
    ) -> Result<Option<Value>, ApiError> {
        if !info.namespaced {
            return Ok(None);
        }
        let store = self.read_store()?;
        let Some(nsobj) = store.get(NAMESPACES, "", ns) else {
            return Err(ApiError::not_found("", "namespaces", ns));
        };
        if let Some(name) = creating
            && is_deleting(nsobj)
        {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated", qualified(info)),
            )
            .with_details(json!({"group": info.group, "kind": info.plural, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]})));
        }
        Ok(Some(nsobj.clone()))
    }

    fn webhook_configs(&self, storage: &str) -> Result<Vec<Value>, ApiError> {
        Ok(self
            .read_store()?
            .list(storage, None)
            .into_iter()
            .cloned()
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn admission_input(
        &self,
        info: &ResourceInfo,
        operation: &'static str,
        part: Part,
        ns: &str,
        name: &str,
        nsobj: Option<&Value>,
        object: Option<Value>,
        old: Option<Value>,
        opts_dry_run: bool,
        options: Value,
    ) -> AdmissionInput {
        let labels_of = |o: &Value| -> BTreeMap<String, String> {
            o.pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let namespace_labels = if info.storage == NAMESPACES {
            object.as_ref().or(old.as_ref()).map(labels_of)
        } else {
            nsobj.map(labels_of)
        };
        let namespace = if info.storage == NAMESPACES { name } else { ns };
        AdmissionInput {
            operation: Operation::from_wire(operation).unwrap_or_default(),
            kind: if part == Part::Scale {
                GroupVersionKind {
                    group: "autoscaling".into(),
                    version: "v1".into(),
                    kind: "Scale".into(),
                }
            } else {
                GroupVersionKind {
                    group: info.group.clone(),
                    version: info.version.clone(),
                    kind: info.kind.clone(),
                }
            },
            resource: GroupVersionResource {
                group: info.group.clone(),
                version: info.version.clone(),
                resource: info.plural.clone(),
            },
            sub_resource: match part {
                Part::Main => String::new(),
                Part::Status => "status".into(),
                Part::Scale => "scale".into(),
            },
            name: name.into(),
            namespace: namespace.into(),
            user_info: crate::server::REQUEST_USER
                .try_with(crate::rbac::UserInfo::to_admission_json)
                .unwrap_or_else(|_| crate::rbac::UserInfo::admin().to_admission_json()),
            namespace_labels,
            object: object.map(|o| admitted_form(info, part, &o)),
            old_object: old.map(|o| admitted_form(info, part, &o)),
            dry_run: opts_dry_run,
            options: Some(options),
        }
    }

    /// Run mutating admission; returns the object in storage form.
    async fn mutate(
        &self,
        info: &ResourceInfo,
        input: &AdmissionInput,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Value>, ApiError> {
        let configs = self.webhook_configs(MUTATING)?;
        let (obj, w) = self.webhooks.mutate(&configs, input).await?;
        warnings.extend(w);
        if obj.as_ref().is_some_and(|o| !o.is_object()) {
            return Err(ApiError::internal(
                "mutating admission returned something that is not an object",
            ));
        }
        Ok(obj.map(|o| intake_form(info, o)))
    }

    async fn validate_webhooks(
        &self,
        input: &AdmissionInput,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let configs = self.webhook_configs(VALIDATING)?;
        warnings.extend(self.webhooks.validate(&configs, input).await?);
        Ok(())
    }

    /// What the Service registry allocates: a cluster IP (unless headless or ExternalName) and
    /// node ports for NodePort/LoadBalancer Services; an update keeps what was allocated.
    fn allocate_service(&self, svc: &mut Value, old: Option<&Value>) {
        let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        let ty = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        let old_spec = old.and_then(|o| o.get("spec"));
        let Ok(mut next) = self.allocator.lock() else {
            return;
        };
        if ty != "ExternalName" {
            let ip = match spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                Some(ip) => ip.to_string(),
                None => match old_spec
                    .and_then(|o| o.get("clusterIP"))
                    .and_then(Value::as_str)
                {
                    Some(ip) => ip.to_string(),
                    None => {
                        let host = next.0;
                        next.0 += 1;
                        format!(
                            "10.{}.{}.{}",
                            96 + (host >> 16),
                            (host >> 8) & 0xff,
                            host & 0xff
                        )
                    }
                },
            };
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
            if ip != "None" {
                spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
            }
            spec.entry("ipFamilyPolicy")
                .or_insert_with(|| json!("SingleStack"));
        }
        if ty == "NodePort" || ty == "LoadBalancer" {
            let old_ports: Vec<Value> = old_spec
                .and_then(|o| o.get("ports"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    if p.get("nodePort").is_some_and(|n| !n.is_null()) {
                        continue;
                    }
                    let kept = old_ports
                        .iter()
                        .find(|o| {
                            o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol")
                        })
                        .and_then(|o| o.get("nodePort").cloned());
                    let port = kept.unwrap_or_else(|| {
                        let n = next.1;
                        next.1 = if n >= 32767 { 30000 } else { n + 1 };
                        json!(n)
                    });
                    p.insert("nodePort".into(), port);
                }
            }
        }
    }

    /// POST: create an object.
    pub async fn create(
        &self,
        info: &ResourceInfo,
        ns: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let mut obj = intake(info, body, ns)?;
        let nsobj = self.check_namespace(info, ns, Some(meta_str(&obj, "name")))?;
        scrub_for_create(&mut obj);
        // Status is the controllers' to write (nodes register with theirs, as kubelets do).
        if info.status
            && info.kind != "Node"
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        let mut warnings = Vec::new();
        let (name, generate) = (
            meta_str(&obj, "name").to_string(),
            meta_str(&obj, "generateName").to_string(),
        );
        if name.is_empty() && generate.is_empty() {
            return Err(ApiError::invalid(
                &info.group,
                &info.kind,
                "",
                &[FieldError::new(
                    FieldErrorKind::Required,
                    "metadata.name",
                    "name or generateName is required",
                )],
            ));
        }
        if info.builtin {
            glue::builtin_defaults(&info.group, &info.kind, &mut obj);
        }
        let options = json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": opts.field_manager});
        let input = self.admission_input(
            info,
            "CREATE",
            Part::Main,
            ns,
            &name,
            nsobj.as_ref(),
            Some(obj.clone()),
            None,
            opts.dry_run,
            options.clone(),
        );
        if let Some(m) = self.mutate(info, &input, &mut warnings).await? {
            obj = m;
        }
        if info.builtin {
            glue::builtin_defaults(&info.group, &info.kind, &mut obj);
        }
        // generateName happens after mutating admission (F5).
        let mut name = meta_str(&obj, "name").to_string();
        let generate = meta_str(&obj, "generateName").to_string();
        if name.is_empty() {
            name = format!("{generate}{}", name_suffix());
            meta_mut(&mut obj).insert("name".into(), json!(name));
        }
        self.check_fields(info, &mut obj, None, opts, &mut warnings)?;
        let now = now();
        {
            let meta = meta_mut(&mut obj);
            meta.insert("uid".into(), json!(new_uid()));
            meta.insert("creationTimestamp".into(), json!(now));
            if info.generation {
                meta.insert("generation".into(), json!(1));
            }
        }
        special_on_write(info, &mut obj, None, &now)?;
        if info.storage == "/services" {
            self.allocate_service(&mut obj, None);
        }
        let input = self.admission_input(
            info,
            "CREATE",
            Part::Main,
            ns,
            &name,
            nsobj.as_ref(),
            Some(obj.clone()),
            None,
            opts.dry_run,
            options,
        );
        self.validate_webhooks(&input, &mut warnings).await?;
        if let Some(manager) = &opts.field_manager {
            glue::record_update_manager(None, &mut obj, manager, &now);
        } else {
            glue::record_update_manager(None, &mut obj, &opts.default_manager, &now);
        }
        if opts.dry_run {
            if self.read_store()?.get(&info.storage, ns, &name).is_some() {
                return Err(ApiError::already_exists(&info.group, &info.plural, &name));
            }
            return Ok(Written {
                object: present(info, &obj),
                warnings,
                created: true,
            });
        }
        let stored = {
            let mut store = self.write_store()?;
            if info.namespaced && store.get(NAMESPACES, "", ns).is_none() {
                return Err(ApiError::not_found("", "namespaces", ns));
            }
            let stored = store
                .create(&info.storage, ns, &name, obj)
                .map_err(|e| match e {
                    WriteError::AlreadyExists => {
                        ApiError::already_exists(&info.group, &info.plural, &name)
                    }
                    _ => ApiError::internal("unexpected store error on create"),
                })?;
            if info.storage == NAMESPACES {
                ensure_default_service_account(&mut store, &name);
            }
            stored
        };
        self.after_commit(&stored, info)?;
        Ok(Written {
            object: present(info, &stored),
            warnings,
            created: true,
        })
    }

    /// Schema pruning/defaulting/validation for custom resources, validation for built-ins.
    fn check_fields(
        &self,
        info: &ResourceInfo,
        obj: &mut Value,
        old: Option<&Value>,
        opts: &WriteOptions,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let name = meta_str(obj, "name").to_string();
        let mut schema_errors = Vec::new();
        let unknown = if info.builtin {
            match known_fields::typed_round_trip(&info.group, &info.kind, obj) {
                Some(Ok(known)) => known_fields::drop_unknown(obj, &known),
                Some(Err(e)) => {
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: {e}",
                        info.kind, info.version, info.kind
                    )));
                }
                None => Vec::new(),
            }
        } else {
            let before = obj.clone();
            schema_errors = glue::schema_admit(obj, info.schema());
            dropped_fields(&before, obj, "")
        };
        if !unknown.is_empty() {
            let list: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            match opts.field_validation {
                FieldValidation::Strict => {
                    return Err(ApiError::bad_request(format!(
                        "strict decoding error: {}",
                        list.join(", ")
                    )));
                }
                FieldValidation::Warn => warnings.extend(list),
                FieldValidation::Ignore => {}
            }
        }
        let mut errors =
            glue::validate_meta(obj.get("metadata").unwrap_or(&Value::Null), info.namespaced);
        if info.builtin {
            errors.extend(match old {
                None => glue::validate_create(&info.group, &info.kind, obj),
                Some(o) => glue::validate_update(&info.group, &info.kind, o, obj),
            });
            if info.storage == CRDS {
                errors.extend(validate_crd(obj));
                let group = obj
                    .pointer("/spec/group")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let plural = obj
                    .pointer("/spec/names/plural")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if self
                    .registry()?
                    .all()
                    .any(|r| r.builtin && r.group == group && r.plural == plural)
                {
                    errors.push(FieldError::new(
                        FieldErrorKind::Forbidden,
                        "spec.names.plural",
                        format!("{plural}.{group} is a built-in resource"),
                    ));
                }
            }
        } else {
            errors.extend(schema_errors);
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(&info.group, &info.kind, &name, &errors));
        }
        Ok(())
    }

    /// PUT: replace an object (or its status).
    pub async fn update(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        body: Value,
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let incoming = intake(info, body, ns)?;
        let body_name = meta_str(&incoming, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let rv = meta_str(&incoming, "resourceVersion").to_string();
        let current = {
            let store = self.read_store()?;
            store
                .get(&info.storage, ns, name)
                .cloned()
                .ok_or_else(|| Self::not_found(info, name))?
        };
        if rv.is_empty() && !info.builtin {
            return Err(ApiError::invalid(
                &info.group,
                &info.kind,
                name,
                &[FieldError::invalid(
                    "metadata.resourceVersion",
                    json!(0),
                    "must be specified for an update",
                )],
            ));
        }
        if !rv.is_empty() && rv != meta_str(&current, "resourceVersion") {
            return Err(ApiError::conflict(&info.group, &info.plural, name));
        }
        let mut incoming = incoming;
        meta_mut(&mut incoming).insert("name".into(), json!(name));
        match self
            .write_over(info, ns, name, current, incoming, part, opts, "update")
            .await
        {
            Ok(w) => Ok(w),
            Err(WriteFailure::Stale) => Err(ApiError::conflict(&info.group, &info.plural, name)),
            Err(WriteFailure::Api(e)) => Err(e),
        }
    }

    /// PATCH: compute the new object from the stored one and write it as an update; retried when the
    /// object changes underneath unless the patch pins a resourceVersion (F7).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        ptype: PatchType,
        body: &[u8],
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        if ptype == PatchType::Strategic && !info.builtin {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        if ptype == PatchType::Apply && opts.field_manager.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                &[FieldError::new(
                    FieldErrorKind::Required,
                    "fieldManager",
                    "is required for apply patch",
                )],
            ));
        }
        let gvk = glue::gvk_of(info);
        for _ in 0..PATCH_RETRIES {
            let current = self.read_store()?.get(&info.storage, ns, name).cloned();
            let Some(current) = current else {
                if ptype == PatchType::Apply && part == Part::Main {
                    let applied = glue::server_side_apply(
                        None,
                        body,
                        opts.field_manager.as_deref().unwrap_or(""),
                        opts.force,
                        &gvk,
                        &now(),
                    )?;
                    let mut obj = applied;
                    if meta_str(&obj, "name").is_empty() {
                        meta_mut(&mut obj).insert("name".into(), json!(name));
                    }
                    if meta_str(&obj, "name") != name {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({}) does not match the name on the URL ({name})",
                            meta_str(&obj, "name")
                        )));
                    }
                    return self.create(info, ns, obj, opts).await;
                }
                return Err(Self::not_found(info, name));
            };
            let shown = present(info, &current);
            let patched = match ptype {
                PatchType::Json => glue::json_patch(&shown, body)?,
                PatchType::Merge => glue::merge_patch(&shown, body)?,
                PatchType::Strategic => glue::strategic_merge_patch(&shown, body, &gvk)?,
                PatchType::Apply => glue::server_side_apply(
                    Some(&shown),
                    body,
                    opts.field_manager.as_deref().unwrap_or(""),
                    opts.force,
                    &gvk,
                    &now(),
                )?,
            };
            if !patched.is_object() {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request: the patched document is not an object",
                ));
            }
            let mut patched = intake_form(info, patched);
            let pinned = if patch_pins_version(ptype, body) {
                meta_str(&patched, "resourceVersion").to_string()
            } else {
                String::new()
            };
            if !pinned.is_empty() && pinned != meta_str(&current, "resourceVersion") {
                return Err(ApiError::conflict(&info.group, &info.plural, name));
            }
            if meta_str(&patched, "name") != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta_str(&patched, "name")
                )));
            }
            meta_mut(&mut patched).insert(
                "resourceVersion".into(),
                json!(meta_str(&current, "resourceVersion")),
            );
            match self
                .write_over(
                    info,
                    ns,
                    name,
                    current,
                    patched,
                    part,
                    opts,
                    if ptype == PatchType::Apply {
                        "apply"
                    } else {
                        "patch"
                    },
                )
                .await
            {
                Ok(w) => return Ok(w),
                Err(WriteFailure::Stale) if pinned.is_empty() => continue,
                Err(WriteFailure::Stale) => {
                    return Err(ApiError::conflict(&info.group, &info.plural, name));
                }
                Err(WriteFailure::Api(e)) => return Err(e),
            }
        }
        Err(ApiError::conflict(&info.group, &info.plural, name))
    }

    /// The shared tail of update and patch: carry over what the client may not change, admit,
    /// validate, compare-and-swap.
    #[allow(clippy::too_many_arguments)]
    async fn write_over(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        current: Value,
        incoming: Value,
        part: Part,
        opts: &WriteOptions,
        verb: &str,
    ) -> Result<Written, WriteFailure> {
        let nsobj = self.check_namespace(info, ns, None)?;
        let mut obj = match part {
            Part::Main | Part::Scale => {
                let mut o = incoming;
                if info.status {
                    match current.get("status") {
                        Some(s) => o["status"] = s.clone(),
                        None => {
                            if let Some(m) = o.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                o
            }
            Part::Status => {
                let mut o = current.clone();
                match incoming.get("status") {
                    Some(s) => o["status"] = s.clone(),
                    None => {
                        if let Some(m) = o.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                // Field ownership of the status write (server-side apply) comes with it.
                if let Some(mf) = incoming.pointer("/metadata/managedFields") {
                    meta_mut(&mut o).insert("managedFields".into(), mf.clone());
                }
                if info.builtin {
                    for f in ["labels", "annotations"] {
                        match incoming.pointer(&format!("/metadata/{f}")) {
                            Some(v) => {
                                meta_mut(&mut o).insert(f.into(), v.clone());
                            }
                            None => {
                                meta_mut(&mut o).remove(f);
                            }
                        }
                    }
                }
                o
            }
        };
        // Read-only metadata stays what is stored.
        {
            let cur_meta = current.get("metadata").cloned().unwrap_or(json!({}));
            let meta = meta_mut(&mut obj);
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ] {
                match cur_meta.get(f) {
                    Some(v) => {
                        meta.insert(f.into(), v.clone());
                    }
                    None => {
                        meta.remove(f);
                    }
                }
            }
            if !meta.contains_key("managedFields")
                && let Some(mf) = cur_meta.get("managedFields")
            {
                meta.insert("managedFields".into(), mf.clone());
            }
            meta.insert(
                "resourceVersion".into(),
                cur_meta
                    .get("resourceVersion")
                    .cloned()
                    .unwrap_or(json!("")),
            );
        }
        if is_deleting(&current) {
            // Finalizers may only be removed from an object being deleted.
            let old_f = finalizers(&current);
            let added: Vec<String> = finalizers(&obj)
                .into_iter()
                .filter(|f| !old_f.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    name,
                    &[FieldError::new(FieldErrorKind::Forbidden, "metadata.finalizers", format!("no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"))],
                )
                .into());
            }
        }
        let mut warnings = Vec::new();
        if info.builtin {
            glue::builtin_defaults(&info.group, &info.kind, &mut obj);
        }
        let options = json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": opts.field_manager});
        let input = self.admission_input(
            info,
            "UPDATE",
            part,
            ns,
            name,
            nsobj.as_ref(),
            Some(obj.clone()),
            Some(current.clone()),
            opts.dry_run,
            options.clone(),
        );
        if let Some(m) = self.mutate(info, &input, &mut warnings).await? {
            if part == Part::Scale {
                // A webhook mutates the Scale; only its replicas reach the stored object.
                scale_replicas_into(info, &mut obj, &m);
            } else {
                obj = m;
            }
        }
        if info.builtin {
            glue::builtin_defaults(&info.group, &info.kind, &mut obj);
        }
        self.check_fields(info, &mut obj, Some(&current), opts, &mut warnings)?;
        let now = now();
        special_on_write(info, &mut obj, Some(&current), &now)?;
        if info.storage == "/services" {
            self.allocate_service(&mut obj, Some(&current));
        }
        if info.generation
            && matches!(part, Part::Main | Part::Scale)
            && generation_part(&obj) != generation_part(&current)
        {
            let g = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut obj).insert("generation".into(), json!(g + 1));
        }
        if obj == current {
            // No-op writes persist nothing and keep the resourceVersion, like a real server.
            return Ok(Written {
                object: present(info, &current),
                warnings,
                created: false,
            });
        }
        let input = self.admission_input(
            info,
            "UPDATE",
            part,
            ns,
            name,
            nsobj.as_ref(),
            Some(obj.clone()),
            Some(current.clone()),
            opts.dry_run,
            options,
        );
        self.validate_webhooks(&input, &mut warnings).await?;
        let manager = opts
            .field_manager
            .clone()
            .unwrap_or_else(|| opts.default_manager.clone());
        if verb != "apply" {
            glue::record_update_manager(Some(&current), &mut obj, &manager, &now);
        }
        if part == Part::Status {
            mark_status_subresource(&mut obj, &manager);
        }
        if opts.dry_run {
            return Ok(Written {
                object: present(info, &obj),
                warnings,
                created: false,
            });
        }
        let expected = meta_str(&current, "resourceVersion").to_string();
        let stored = self.commit(info, ns, name, &expected, obj)?;
        Ok(Written {
            object: present(info, &stored),
            warnings,
            created: false,
        })
    }

    /// Compare-and-swap write; an object being deleted whose last finalizer goes is removed.
    pub fn commit(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        expected_rv: &str,
        obj: Value,
    ) -> Result<Value, WriteFailure> {
        let remove = ready_to_remove(&obj) && !namespace_waits(info, &obj);
        let result = {
            let mut store = self.write_store()?;
            if remove {
                store.delete(&info.storage, ns, name, Some(expected_rv))
            } else {
                store.update(&info.storage, ns, name, expected_rv, obj)
            }
        };
        let stored = result.map_err(|e| match e {
            WriteError::NotFound => WriteFailure::Api(Self::not_found(info, name)),
            _ => WriteFailure::Stale,
        })?;
        if remove {
            self.after_removal(&stored, info)?;
        } else {
            self.after_commit(&stored, info)?;
        }
        Ok(stored)
    }

    /// Keep the registry in step with CRDs.
    fn after_commit(&self, stored: &Value, info: &ResourceInfo) -> Result<(), ApiError> {
        if info.storage == CRDS {
            let mut reg = self
                .registry
                .write()
                .map_err(|_| ApiError::internal("registry lock poisoned"))?;
            reg.set_crd(stored, !is_deleting(stored));
        }
        if is_deleting(stored) {
            self.gc_wakeup.notify_one();
        }
        Ok(())
    }

    fn after_removal(&self, removed: &Value, info: &ResourceInfo) -> Result<(), ApiError> {
        if info.storage == CRDS {
            let mut reg = self
                .registry
                .write()
                .map_err(|_| ApiError::internal("registry lock poisoned"))?;
            reg.set_crd(removed, false);
        }
        self.gc_wakeup.notify_one();
        Ok(())
    }

    /// DELETE one object: finalizers and propagation (F12), namespaces (F11).
    pub async fn delete(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        if info.storage == NAMESPACES && matches!(name, "default" | "kube-system" | "kube-public") {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            )
            .with_details(json!({"name": name, "kind": "namespaces"})));
        }
        let current = self
            .read_store()?
            .get(&info.storage, ns, name)
            .cloned()
            .ok_or_else(|| Self::not_found(info, name))?;
        if let Some(uid) = &opts.precondition_uid
            && uid != meta_str(&current, "uid")
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&current, "uid")
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && rv != meta_str(&current, "resourceVersion")
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&current, "resourceVersion")
                ),
            ));
        }
        let nsobj = if info.namespaced {
            self.read_store()?.get(NAMESPACES, "", ns).cloned()
        } else {
            None
        };
        let options = json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"});
        let input = self.admission_input(
            info,
            "DELETE",
            Part::Main,
            ns,
            name,
            nsobj.as_ref(),
            None,
            Some(current.clone()),
            opts.dry_run,
            options,
        );
        let mut warnings = Vec::new();
        self.mutate(info, &input, &mut warnings).await?;
        self.validate_webhooks(&input, &mut warnings).await?;
        let mut obj = current.clone();
        let mut fins = finalizers(&obj);
        match opts.propagation {
            Some(Propagation::Foreground) => push_unique(&mut fins, "foregroundDeletion"),
            Some(Propagation::Orphan) => push_unique(&mut fins, "orphan"),
            _ => {}
        }
        let grace = pod_grace_period(info, &current, opts.grace_period);
        let wait = !fins.is_empty() || info.storage == NAMESPACES || grace > 0;
        if !wait {
            if opts.dry_run {
                return Ok(present(info, &current));
            }
            let removed = {
                let mut store = self.write_store()?;
                store.delete(
                    &info.storage,
                    ns,
                    name,
                    Some(meta_str(&current, "resourceVersion")),
                )
            };
            let removed = match removed {
                Ok(r) => r,
                Err(WriteError::NotFound) => return Err(Self::not_found(info, name)),
                Err(_) => return Err(ApiError::conflict(&info.group, &info.plural, name)),
            };
            self.after_removal(&removed, info)?;
            return Ok(present(info, &removed));
        }
        if is_deleting(&current) && fins == finalizers(&current) && !(grace == 0 && fins.is_empty())
        {
            return Ok(present(info, &current));
        }
        set_finalizers(&mut obj, &fins);
        if !is_deleting(&obj) {
            let when = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_secs(grace))
                .ok()
                .and_then(|t| t.round(jiff::Unit::Second).ok())
                .map(|t| t.to_string())
                .unwrap_or_else(now);
            let meta = meta_mut(&mut obj);
            meta.insert("deletionTimestamp".into(), json!(when));
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        if info.storage == NAMESPACES {
            obj["status"] = json!({"phase": "Terminating"});
        }
        if opts.dry_run {
            return Ok(present(info, &obj));
        }
        let stored = match self.commit(info, ns, name, meta_str(&current, "resourceVersion"), obj) {
            Ok(s) => s,
            Err(WriteFailure::Stale) => {
                return Err(ApiError::conflict(&info.group, &info.plural, name));
            }
            Err(WriteFailure::Api(e)) => return Err(e),
        };
        self.gc_wakeup.notify_one();
        Ok(present(info, &stored))
    }
}

/// A namespace stays while content remains; the collector removes it.
fn namespace_waits(info: &ResourceInfo, _obj: &Value) -> bool {
    info.storage == NAMESPACES
}

/// The grace period of a delete: only pods bound to a node and not finished wait for their kubelet
/// (the pod's `terminationGracePeriodSeconds`, 30 by default); everything else goes at once.
fn pod_grace_period(info: &ResourceInfo, current: &Value, requested: Option<i64>) -> i64 {
    if info.storage != "/pods" {
        return 0;
    }
    let bound = current
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = current
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !bound || phase == "Succeeded" || phase == "Failed" {
        return 0;
    }
    let grace = requested
        .or_else(|| {
            current
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .or_else(|| {
            current
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30);
    // A shorter grace period may replace a longer one, never the other way round.
    let previous = current
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    let grace = previous.map_or(grace, |p| grace.min(p));
    grace.max(0)
}

/// Entries of a `/status` write's manager that own only status fields carry
/// `subresource: status`, as the API server records them.
fn mark_status_subresource(obj: &mut Value, manager: &str) {
    let Some(entries) = obj
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for e in entries {
        let only_status = e
            .get("fieldsV1")
            .and_then(Value::as_object)
            .is_some_and(|f| !f.is_empty() && f.keys().all(|k| k == "f:status"));
        if only_status
            && e.get("manager").and_then(Value::as_str) == Some(manager)
            && let Some(m) = e.as_object_mut()
        {
            m.insert("subresource".into(), json!("status"));
        }
    }
}

/// Whether a patch sets `metadata.resourceVersion` (a precondition: no retry on conflict, F7).
fn patch_pins_version(ptype: PatchType, body: &[u8]) -> bool {
    match ptype {
        PatchType::Json => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .is_some_and(|ops| {
                ops.iter().any(|op| {
                    op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")
                })
            }),
        PatchType::Apply => serde_yaml::from_slice::<Value>(body).ok().is_some_and(|v| {
            v.pointer("/metadata/resourceVersion")
                .is_some_and(|r| !r.is_null())
        }),
        PatchType::Merge | PatchType::Strategic => {
            serde_json::from_slice::<Value>(body).ok().is_some_and(|v| {
                v.pointer("/metadata/resourceVersion")
                    .is_some_and(|r| !r.is_null())
            })
        }
    }
}

fn push_unique(list: &mut Vec<String>, f: &str) {
    if !list.iter().any(|x| x == f) {
        list.push(f.to_string());
    }
}

fn qualified(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        info.plural.clone()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

/// Kind-specific server behaviour on every write: namespaces, CRDs.
fn special_on_write(
    info: &ResourceInfo,
    obj: &mut Value,
    old: Option<&Value>,
    now: &str,
) -> Result<(), ApiError> {
    if info.storage == NAMESPACES {
        if old.is_none() {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        } else if let Some(o) = old {
            if obj.get("spec").is_none() {
                obj["spec"] = o.get("spec").cloned().unwrap_or(json!({}));
            }
            if obj.get("status").is_none() {
                obj["status"] = o
                    .get("status")
                    .cloned()
                    .unwrap_or(json!({"phase": "Active"}));
            }
        }
    }
    if info.group.is_empty()
        && info.kind == "Pod"
        && old.is_none()
        && obj.pointer("/status/phase").is_none()
    {
        set_in(obj, &["status", "phase"], json!("Pending"));
    }
    if info.storage == CRDS
        && obj
            .pointer("/spec/conversion/strategy")
            .and_then(Value::as_str)
            == Some("Webhook")
    {
        return Err(ApiError::not_implemented(
            "CRD conversion webhooks (spec.conversion.strategy: Webhook); use strategy None",
        ));
    }
    if info.storage == CRDS {
        if old.is_none() {
            let mut f = finalizers(obj);
            push_unique(&mut f, CRD_CLEANUP_FINALIZER);
            set_finalizers(obj, &f);
        }
        let mut status = crd_established_status(obj, now);
        if let Some(prev) = old.and_then(|o| o.pointer("/status/conditions")) {
            // Keep the transition times of conditions that did not change.
            status["conditions"] = prev.clone();
        }
        if is_deleting(obj)
            && let Some(conds) = status["conditions"].as_array_mut()
        {
            conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("Terminating"));
            conds.push(json!({"type": "Terminating", "status": "True", "lastTransitionTime": now, "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress"}));
        }
        obj["status"] = status;
    }
    Ok(())
}

/// CRD names must agree with the object name, as the API server checks.
fn validate_crd(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = obj
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let plural = obj
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = obj
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    if group.is_empty() {
        errs.push(FieldError::new(FieldErrorKind::Required, "spec.group", ""));
    }
    if plural.is_empty() {
        errs.push(FieldError::new(
            FieldErrorKind::Required,
            "spec.names.plural",
            "",
        ));
    }
    if kind.is_empty() {
        errs.push(FieldError::new(
            FieldErrorKind::Required,
            "spec.names.kind",
            "",
        ));
    }
    let name = meta_str(obj, "name");
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let versions = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::new(
            FieldErrorKind::Invalid,
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    } else if versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count()
        != 1
    {
        errs.push(FieldError::invalid(
            "spec.versions",
            json!(
                versions
                    .iter()
                    .filter_map(|v| v.get("name"))
                    .collect::<Vec<_>>()
            ),
            "must have exactly one version marked as storage version",
        ));
    }
    errs
}

/// Every namespace gets a `default` ServiceAccount, as the service-account controller makes it.
pub fn ensure_default_service_account(store: &mut Store, ns: &str) {
    if store.get("/serviceaccounts", ns, "default").is_some() {
        return;
    }
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": ns, "uid": new_uid(), "creationTimestamp": now()}});
    let _ = store.create("/serviceaccounts", ns, "default", sa);
}

/// The names of fields present in `before` but gone from `after` (pruned unknown fields).
fn dropped_fields(before: &Value, after: &Value, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match a.get(k) {
                    None => out.push(path),
                    Some(av) => out.extend(dropped_fields(v, av, &path)),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if b.len() == a.len() => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                out.extend(dropped_fields(bv, av, &format!("{prefix}[{i}]")));
            }
        }
        _ => {}
    }
    out
}

/// Decode an incoming object for `info` in namespace `ns`: kind/apiVersion and namespace checks,
/// then the storage form (F23 Events).
pub fn intake(info: &ResourceInfo, body: Value, ns: &str) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let mut obj = body;
    let av = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !av.is_empty() && av != info.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            info.api_version()
        )));
    }
    if !kind.is_empty() && kind != info.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            info.kind
        )));
    }
    obj["apiVersion"] = json!(info.api_version());
    obj["kind"] = json!(info.kind);
    let body_ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if info.namespaced {
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta_mut(&mut obj).insert("namespace".into(), json!(ns));
    } else {
        meta_mut(&mut obj).remove("namespace");
    }
    Ok(intake_form(info, obj))
}

/// Client form → storage form.
pub fn intake_form(info: &ResourceInfo, obj: Value) -> Value {
    if info.is_event() && info.group == "events.k8s.io" {
        events::to_core(&obj)
    } else {
        obj
    }
}

/// What admission webhooks see of a stored object: the object itself, or for a `scale`
/// subresource write its `autoscaling/v1` Scale.
fn admitted_form(info: &ResourceInfo, part: Part, obj: &Value) -> Value {
    let presented = present(info, obj);
    match part {
        Part::Scale => crate::server::scale_of(info, &presented).unwrap_or(presented),
        Part::Main | Part::Status => presented,
    }
}

/// Copies `spec.replicas` of a (mutated) Scale to the scaled object's replicas path.
fn scale_replicas_into(info: &ResourceInfo, obj: &mut Value, scale: &Value) {
    let (Some(paths), Some(replicas)) = (info.scale.as_ref(), scale.pointer("/spec/replicas"))
    else {
        return;
    };
    let mut target = obj;
    for seg in paths.spec_replicas.trim_start_matches('.').split('.') {
        if !target.is_object() {
            return;
        }
        target = &mut target[seg];
    }
    *target = replicas.clone();
}

/// Storage form → the form the client asked for (version of a CR, API of an Event).
pub fn present(info: &ResourceInfo, obj: &Value) -> Value {
    if info.is_event() && info.group == "events.k8s.io" {
        return events::to_events_v1(obj);
    }
    let mut o = obj.clone();
    if o.is_object() {
        o["apiVersion"] = json!(info.api_version());
        o["kind"] = json!(info.kind);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_and_suffix_shapes() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let s = name_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn dropped_fields_lists_paths() {
        let b = json!({"spec": {"a": 1, "b": [{"x": 1, "y": 2}]}});
        let a = json!({"spec": {"b": [{"x": 1}]}});
        assert_eq!(
            dropped_fields(&b, &a, ""),
            vec!["spec.a".to_string(), "spec.b[0].y".to_string()]
        );
    }
}
