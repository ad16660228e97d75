//! Metadata resolution: which Keptn workload, app and version a pod (or a pod template) belongs
//! to, the names of the objects that follow from it, and the annotations the pod must carry.
//!
//! Pure functions over plain data (B §1.4–§1.9 with A7, A8, A17, A18): no client, no I/O. The
//! input views deserialise straight from raw admission JSON.

pub mod keys;
mod lists;
mod lookup;
mod names;
mod version;
mod view;

use std::collections::BTreeMap;

pub use lists::{parse_metadata, split_list};
pub use lookup::{
    FoundAt, Place, gate_already_removed, lookup, lookup_app, lookup_app_found, lookup_found,
    lookup_version, lookup_version_found, lookup_workload, lookup_workload_found,
};
pub use names::{
    MAX_NAME_LEN, app_name, app_version, create_resource_name, evaluation_name, generation_hash,
    is_dns1123_subdomain, job_name, kav_name, kwv_name, task_name, workload_name,
};
pub use view::{
    ContainerView, EnvVarView, ObjectMetaView, PodSpecView, PodView, WorkloadSpecView, WorkloadView,
};

/// Where the workload key was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaSource {
    /// On the pod (or pod template) itself; the parent was not looked at.
    Pod,
    /// On the parent (Deployment, StatefulSet, DaemonSet, Rollout) only.
    Parent,
}

/// Where a resolved value was read: on which object, under which key, as annotation or label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySource {
    /// The pod (or pod template) itself, or its parent.
    pub object: MetaSource,
    /// The key, e.g. `keptn.sh/app` or `app.kubernetes.io/part-of`.
    pub key: &'static str,
    /// Annotation or label.
    pub place: Place,
}

impl KeySource {
    fn at(object: MetaSource, found: FoundAt<'static>) -> Self {
        Self {
            object,
            key: found.key,
            place: found.place,
        }
    }
}

/// Where the version came from (B §1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSource {
    /// LOOKUP(version).
    Key(KeySource),
    /// The image tag of the container named by `keptn.sh/container`.
    ImageTag {
        /// The container.
        container: String,
        /// Where `keptn.sh/container` was found.
        named_by: KeySource,
    },
    /// The hash of the containers' names, images and env.
    ContainersHash {
        /// The container named by `keptn.sh/container` (whose image has no usable tag) and
        /// where the key was found; `None` without the key.
        named: Option<(String, KeySource)>,
    },
}

/// Where the workload, app and version of an [`Identity`] were read (for explanations; the
/// webhook's decisions never look at it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// LOOKUP(workload).
    pub workload: KeySource,
    /// LOOKUP(app); `None` for a single-service app named after the workload.
    pub app: Option<KeySource>,
    /// The version.
    pub version: VersionSource,
}

/// Kind of KeptnApp discovery the KeptnAppCreationRequest asks for (B §1.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppType {
    /// No app key: the workload is its own app, created without the discovery window.
    SingleService,
    /// An explicit app key: workloads are collected during the discovery window.
    MultiService,
}

impl AppType {
    /// The `keptn.sh/app-type` value. Keptn only ever writes `single-service`; a multi-service
    /// request carries no app-type annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            AppType::SingleService => "single-service",
            AppType::MultiService => "multi-service",
        }
    }
}

/// The names that follow from an identity (B §1.6 with A18); all valid DNS-1123 subdomains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNames {
    /// KeptnApp and KeptnAppCreationRequest name, KeptnWorkload `spec.app`.
    pub app_name: String,
    /// KeptnWorkload name, `<app>-<workload>`.
    pub workload_name: String,
    /// KeptnWorkload `spec.version`: the version lower-cased (B §1.7).
    pub version: String,
    /// KeptnWorkloadVersion name, `<workloadName>-<version>`.
    pub workload_version_name: String,
}

impl ResourceNames {
    /// Names from raw values as the user wrote them; `app_value` is `None` for a single-service
    /// app (named after the workload).
    pub fn derive(
        app_value: Option<&str>,
        workload_value: &str,
        version_value: &str,
    ) -> Result<Self, ResolveError> {
        let (app_value, app_key) = match app_value {
            Some(app) => (app, keys::APP),
            None => (workload_value, keys::WORKLOAD),
        };
        let app_name = checked("KeptnApp", app_key, app_name(app_value))?;
        let workload_name = checked(
            "KeptnWorkload",
            keys::WORKLOAD,
            workload_name(&app_name, workload_value),
        )?;
        let version = version_value.to_lowercase();
        let workload_version_name = checked(
            "KeptnWorkloadVersion",
            keys::VERSION,
            kwv_name(&workload_name, &version),
        )?;
        Ok(Self {
            app_name,
            workload_name,
            version,
            workload_version_name,
        })
    }

    /// Names from the identity the webhook stamped on a gated pod (A8: annotations `keptn.sh/app`,
    /// `keptn.sh/workload`, `keptn.sh/version` holding raw values). `None` when any is missing or
    /// empty, i.e. the pod was not stamped.
    pub fn from_stamp(pod: &ObjectMetaView) -> Result<Option<Self>, ResolveError> {
        let stamped = |key: &str| {
            pod.annotations
                .get(key)
                .map(String::as_str)
                .filter(|value| !value.is_empty())
        };
        match (
            stamped(keys::APP),
            stamped(keys::WORKLOAD),
            stamped(keys::VERSION),
        ) {
            (Some(app), Some(workload), Some(version)) => {
                Self::derive(Some(app), workload, version).map(Some)
            }
            _ => Ok(None),
        }
    }
}

fn checked(
    resource: &'static str,
    key: &'static str,
    name: String,
) -> Result<String, ResolveError> {
    let reason = if name.is_empty() {
        "it is empty after sanitising"
    } else if name.len() > MAX_NAME_LEN {
        "it is longer than 253 characters"
    } else if !is_dns1123_subdomain(&name) {
        "it is not a valid DNS-1123 subdomain"
    } else {
        return Ok(name);
    };
    Err(ResolveError::InvalidName {
        resource,
        key,
        name,
        reason,
    })
}

/// The resolved identity of an annotated pod or pod template.
///
/// Raw values are exactly what the user wrote (after parent copying); names are derived from
/// them. Resolving a pod again after applying [`Identity::pod_annotations`] gives the same names,
/// lists and metadata, but a single-service pod then carries `keptn.sh/app` and reads as
/// multi-service (as in Keptn after its own §1.9 write): resolve a pod once, on CREATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Where the workload key was found.
    pub source: MetaSource,
    /// LOOKUP(workload), raw.
    pub workload_value: String,
    /// LOOKUP(app), raw; the workload value for a single-service app.
    pub app_value: String,
    /// Whether an app key was present (otherwise the app is single-service, B §1.9).
    pub app_explicit: bool,
    /// LOOKUP(version) or the derived version (B §1.5), raw (not lower-cased).
    pub version_value: String,
    /// Names of the KeptnApp, KeptnWorkload and KeptnWorkloadVersion, and the lower-cased version.
    pub names: ResourceNames,
    /// `keptn.sh/pre-deployment-tasks`, split and trimmed (A17); empty = absent.
    pub pre_deployment_tasks: Vec<String>,
    /// `keptn.sh/post-deployment-tasks`, split and trimmed (A17); empty = absent.
    pub post_deployment_tasks: Vec<String>,
    /// `keptn.sh/pre-deployment-evaluations`, split and trimmed (A17); empty = absent.
    pub pre_deployment_evaluations: Vec<String>,
    /// `keptn.sh/post-deployment-evaluations`, split and trimmed (A17); empty = absent.
    pub post_deployment_evaluations: Vec<String>,
    /// `keptn.sh/metadata` as a map (B §1.8); empty = absent.
    pub metadata: BTreeMap<String, String>,
    /// Annotations the pod must carry: on the parent path the copied keys of B §1.4 (non-empty
    /// only), and always the A8 stamp `keptn.sh/app`, `keptn.sh/workload`, `keptn.sh/version`
    /// with the raw values (which includes Keptn's computed version and single-service app).
    /// The caller patches only those that differ from what the pod already has.
    pub pod_annotations: BTreeMap<String, String>,
    /// Where the workload, app and version were read.
    pub provenance: Provenance,
}

impl Identity {
    /// Single-service when no app key was present.
    pub fn app_type(&self) -> AppType {
        if self.app_explicit {
            AppType::MultiService
        } else {
            AppType::SingleService
        }
    }
}

/// Why metadata cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// `keptn.sh/container` names no container. On the parent path Keptn ignores such a pod (not
    /// annotated); on the pod path it carries on with an empty version (B §1.4 [BUG?]). Callers
    /// decide: A7 rejects the workload.
    #[error(
        "The container name '{container}' specified in {key} does not match any containers in the pod"
    )]
    ContainerNotFound {
        /// The value of the key.
        container: String,
        /// Always `keptn.sh/container`.
        key: &'static str,
        /// Whether the key was the pod's (pod path) or the parent's (parent path).
        origin: MetaSource,
    },
    /// A derived name is not a valid object name even after A18's clean-up; the API server would
    /// reject the object.
    #[error("invalid {key}: the {resource} name '{name}' derived from it is unusable: {reason}")]
    InvalidName {
        /// Kind of the object that would get the name.
        resource: &'static str,
        /// The primary key of the value at fault (its secondary key may have supplied it).
        key: &'static str,
        /// The name after sanitising.
        name: String,
        /// Why the API server would reject it.
        reason: &'static str,
    },
}

/// Keys copied from an annotated parent (B §1.4), with their secondary key if any.
const PARENT_COPIED: [(&str, Option<&str>); 7] = [
    (keys::WORKLOAD, Some(keys::K8S_NAME)),
    (keys::APP, Some(keys::K8S_PART_OF)),
    (keys::PRE_DEPLOYMENT_TASKS, None),
    (keys::POST_DEPLOYMENT_TASKS, None),
    (keys::PRE_DEPLOYMENT_EVALUATIONS, None),
    (keys::POST_DEPLOYMENT_EVALUATIONS, None),
    (keys::METADATA, None),
];

/// Resolves a pod, or a pod template with its workload's metadata as `parent` (A7).
///
/// `Ok(None)`: not annotated — neither the pod nor the parent has a workload key. When the pod has
/// one, the parent is ignored completely. Otherwise the parent's values are copied onto the pod
/// (each only if non-empty, B §1.4) and everything is read from the pod so overlaid, so a key the
/// parent lacks still comes from the pod itself, as in Keptn. The version is LOOKUP(version), else
/// derived from `containers` with the `keptn.sh/container` of the object carrying the workload key.
pub fn resolve(
    pod: &ObjectMetaView,
    containers: &[ContainerView],
    parent: Option<&ObjectMetaView>,
) -> Result<Option<Identity>, ResolveError> {
    if lookup_workload(pod).is_some() {
        return identity(pod, containers, MetaSource::Pod, Copied::default()).map(Some);
    }
    let Some(parent) = parent.filter(|p| lookup_workload(p).is_some()) else {
        return Ok(None);
    };
    let (version, version_source) = match lookup_version_found(parent) {
        Some((version, found)) => (
            version.to_owned(),
            VersionSource::Key(KeySource::at(MetaSource::Parent, found)),
        ),
        None => derive_version(containers, parent, MetaSource::Parent)?,
    };
    let mut copied = Copied {
        values: BTreeMap::from([(keys::VERSION.to_owned(), version)]),
        sources: BTreeMap::new(),
        version: Some(version_source),
    };
    for (primary, secondary) in PARENT_COPIED {
        if let Some((value, found)) = lookup_found(parent, primary, secondary) {
            copied.values.insert(primary.to_owned(), value.to_owned());
            copied
                .sources
                .insert(primary, KeySource::at(MetaSource::Parent, found));
        }
    }
    let mut overlaid = pod.clone();
    overlaid.annotations.extend(copied.values.clone());
    identity(&overlaid, containers, MetaSource::Parent, copied).map(Some)
}

/// What the parent path copied onto the pod (B §1.4), and where each value came from.
#[derive(Default)]
struct Copied {
    /// The copied annotations, by primary key.
    values: BTreeMap<String, String>,
    /// Where each copied key's value was found on the parent.
    sources: BTreeMap<&'static str, KeySource>,
    /// Where the copied version came from.
    version: Option<VersionSource>,
}

impl Copied {
    /// The source of a value LOOKUP found on the (overlaid) pod: the parent's for a copied
    /// annotation, else the pod's own key.
    fn source_of(&self, found: FoundAt<'static>) -> KeySource {
        match self.sources.get(found.key) {
            Some(source) if found.place == Place::Annotation => source.clone(),
            _ => KeySource::at(MetaSource::Pod, found),
        }
    }
}

fn derive_version(
    containers: &[ContainerView],
    meta: &ObjectMetaView,
    origin: MetaSource,
) -> Result<(String, VersionSource), ResolveError> {
    let container = lookup_found(meta, keys::CONTAINER, None);
    let (version, derived) = version::derive(containers, container.map(|(name, _)| name)).map_err(
        |version::UnknownContainer(container)| ResolveError::ContainerNotFound {
            container,
            key: keys::CONTAINER,
            origin,
        },
    )?;
    let named = container.map(|(name, found)| (name.to_owned(), KeySource::at(origin, found)));
    let source = match (derived, named) {
        (version::Derived::ImageTag, Some((container, named_by))) => VersionSource::ImageTag {
            container,
            named_by,
        },
        (_, named) => VersionSource::ContainersHash { named },
    };
    Ok((version, source))
}

/// Everything read from `pod`, which has a workload key (on the parent path: overlaid).
fn identity(
    pod: &ObjectMetaView,
    containers: &[ContainerView],
    source: MetaSource,
    copied: Copied,
) -> Result<Identity, ResolveError> {
    // Always found: the caller checked LOOKUP(workload).
    let (workload_value, workload_found) = lookup_workload_found(pod).unwrap_or((
        "",
        FoundAt {
            key: keys::WORKLOAD,
            place: Place::Annotation,
        },
    ));
    let workload_value = workload_value.to_owned();
    let (version_value, version_source) = match lookup_version_found(pod) {
        Some((version, found)) => {
            let version_source = match &copied.version {
                Some(copied_source)
                    if found.key == keys::VERSION && found.place == Place::Annotation =>
                {
                    copied_source.clone()
                }
                _ => VersionSource::Key(KeySource::at(MetaSource::Pod, found)),
            };
            (version.to_owned(), version_source)
        }
        None => derive_version(containers, pod, source)?,
    };
    let app_found = lookup_app_found(pod);
    let app = app_found.map(|(value, _)| value);
    let provenance = Provenance {
        workload: copied.source_of(workload_found),
        app: app_found.map(|(_, found)| copied.source_of(found)),
        version: version_source,
    };
    let mut pod_annotations = copied.values;
    let names = ResourceNames::derive(app, &workload_value, &version_value)?;
    let app_value = app.unwrap_or(&workload_value).to_owned();
    let list = |key: &str| lookup(pod, key, None).map(split_list).unwrap_or_default();

    pod_annotations.insert(keys::APP.to_owned(), app_value.clone());
    pod_annotations.insert(keys::WORKLOAD.to_owned(), workload_value.clone());
    pod_annotations.insert(keys::VERSION.to_owned(), version_value.clone());
    Ok(Identity {
        source,
        app_explicit: app.is_some(),
        pre_deployment_tasks: list(keys::PRE_DEPLOYMENT_TASKS),
        post_deployment_tasks: list(keys::POST_DEPLOYMENT_TASKS),
        pre_deployment_evaluations: list(keys::PRE_DEPLOYMENT_EVALUATIONS),
        post_deployment_evaluations: list(keys::POST_DEPLOYMENT_EVALUATIONS),
        metadata: lookup(pod, keys::METADATA, None)
            .map(parse_metadata)
            .unwrap_or_default(),
        workload_value,
        app_value,
        version_value,
        names,
        pod_annotations,
        provenance,
    })
}

#[cfg(test)]
mod tests;
