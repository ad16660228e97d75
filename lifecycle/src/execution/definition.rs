//! A KeptnTaskDefinition's function code as a ConfigMap (B §5.2 with A20: the generated
//! ConfigMap is owned by its definition, so it is garbage collected with it).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use shared::crd::{FunctionStatus, KeptnTaskDefinition, KeptnTaskDefinitionStatus};

use super::runtime::{CODE_KEY, function_runtime};
use super::{CheckError, CheckEvent, ObjectId};

/// Prefix of a generated function ConfigMap.
const CONFIG_MAP_PREFIX: &str = "keptnfn-";
/// Keptn keeps this much of the definition name (B §1.6).
const NAME_KEEP: usize = 245;

/// What a definition needs in ConfigMaps.
#[derive(Clone, Debug, PartialEq)]
pub enum FunctionConfigMap {
    /// A container definition, or one whose code is only an `httpRef`/`functionRef`.
    Nothing,
    /// Inline code: this ConfigMap must exist with exactly this code.
    Inline(Box<ConfigMap>),
    /// `configMapRef`: the named ConfigMap is only checked for existence.
    Referenced(String),
}

/// What to do with the generated ConfigMap given the one that exists.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigMapAction {
    Create(Box<ConfigMap>),
    /// Replace the existing ConfigMap (its resourceVersion is kept, so a concurrent change
    /// conflicts instead of being overwritten).
    Replace(Box<ConfigMap>),
    Unchanged,
}

/// `keptnfn-` + the first 245 characters of the definition name.
pub fn function_config_map_name(definition_name: &str) -> String {
    let mut keep = NAME_KEEP.min(definition_name.len());
    while !definition_name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{CONFIG_MAP_PREFIX}{}", &definition_name[..keep])
}

/// B §5.2: which ConfigMap a definition's code lives in. Deno is preferred when non-empty, else
/// Python; container definitions and empty runtimes need nothing.
pub fn plan_function_config_map(
    definition: &KeptnTaskDefinition,
) -> Result<FunctionConfigMap, CheckError> {
    if definition.spec.container.is_some() {
        return Ok(FunctionConfigMap::Nothing);
    }
    let Some((_, spec)) = function_runtime(definition) else {
        return Ok(FunctionConfigMap::Nothing);
    };
    if let Some(code) = spec
        .inline
        .as_ref()
        .map(|i| &i.code)
        .filter(|c| !c.is_empty())
    {
        let name = definition
            .metadata
            .name
            .as_deref()
            .ok_or(CheckError::Metadata {
                kind: "KeptnTaskDefinition",
                field: "name",
            })?;
        let owner = super::controller_ref(definition).ok_or(CheckError::Metadata {
            kind: "KeptnTaskDefinition",
            field: "uid",
        })?;
        return Ok(FunctionConfigMap::Inline(Box::new(ConfigMap {
            metadata: ObjectMeta {
                name: Some(function_config_map_name(name)),
                namespace: definition.metadata.namespace.clone(),
                owner_references: Some(vec![owner]),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(CODE_KEY.to_owned(), code.clone())])),
            ..Default::default()
        })));
    }
    match spec.config_map_ref.as_ref().map(|c| &c.name) {
        Some(name) if !name.is_empty() => Ok(FunctionConfigMap::Referenced(name.clone())),
        _ => Ok(FunctionConfigMap::Nothing),
    }
}

/// Create when missing; replace when the code differs or the definition does not own it yet
/// (e.g. one Keptn generated without an owner); otherwise leave it.
pub fn config_map_action(desired: &ConfigMap, existing: Option<&ConfigMap>) -> ConfigMapAction {
    let Some(existing) = existing else {
        return ConfigMapAction::Create(Box::new(desired.clone()));
    };
    let Some(owner) = desired
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
    else {
        return ConfigMapAction::Unchanged;
    };
    let owners = existing
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    let owned = owners.iter().any(|o| o.uid == owner.uid);
    if existing.data == desired.data && owned {
        return ConfigMapAction::Unchanged;
    }
    let mut replacement = existing.clone();
    replacement.data = desired.data.clone();
    replacement.binary_data = None;
    if !owned {
        let has_controller = owners.iter().any(|o| o.controller == Some(true));
        let mut owners = owners;
        owners.push(OwnerReference {
            // Only one owner may be the controller.
            controller: Some(!has_controller),
            ..owner.clone()
        });
        replacement.metadata.owner_references = Some(owners);
    }
    ConfigMapAction::Replace(Box::new(replacement))
}

/// The status to write once `config_map` exists, or `None` when it already says so.
pub fn task_definition_status(
    definition: &KeptnTaskDefinition,
    config_map: &str,
) -> Option<KeptnTaskDefinitionStatus> {
    let current = definition
        .status
        .as_ref()
        .and_then(|s| s.function.as_ref())
        .map(|f| f.config_map.as_str());
    (current != Some(config_map)).then(|| KeptnTaskDefinitionStatus {
        function: Some(FunctionStatus {
            config_map: config_map.to_owned(),
        }),
    })
}

/// B §5.2 Warning `ReconcileTaskFailed` on the ConfigMap ("could not create configmap" /
/// "could not update configmap").
pub fn config_map_failed_event(namespace: &str, config_map: &str, create: bool) -> CheckEvent {
    let text = if create {
        "could not create configmap"
    } else {
        "could not update configmap"
    };
    CheckEvent::warning(
        "ReconcileTask",
        "Failed",
        "Reconcile Task",
        text,
        &ObjectId {
            namespace,
            name: config_map,
            version: "",
        },
    )
}
