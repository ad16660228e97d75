//! The containers a task's Job runs: the Deno/Python function runner (B §5.5) and a user's
//! container (B §5.6 with A20).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    SecretKeySelector, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use shared::crd::{KeptnTask, KeptnTaskDefinition, RuntimeSpec};

use super::{CheckError, RunnerImages};

/// Name of the function runner container.
pub const FUNCTION_CONTAINER: &str = "keptn-function-runner";
/// Name of the ConfigMap volume holding the function's code.
pub const FUNCTION_VOLUME: &str = "function-mount";
/// Key of the code in a function ConfigMap.
pub const CODE_KEY: &str = "code";
/// Environment variable carrying the task context.
pub const KEPTN_CONTEXT: &str = "KEPTN_CONTEXT";
/// Secret key and environment variable of the secure parameters (A20: not `SECRET_DATA`).
pub const SECURE_DATA: &str = "SECURE_DATA";
/// A20: a container task's scratch volume defaults to one gibibyte, as Keptn documents.
pub const DEFAULT_SCRATCH_SIZE: &str = "1Gi";

/// The two function runtimes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionRuntime {
    Deno,
    Python,
}

impl FunctionRuntime {
    /// Where the code is mounted.
    pub fn mount_path(self) -> &'static str {
        match self {
            FunctionRuntime::Deno => "/var/data/function.ts",
            FunctionRuntime::Python => "/var/data/function.py",
        }
    }

    /// The runner image for this runtime.
    pub fn image(self, images: &RunnerImages) -> &str {
        match self {
            FunctionRuntime::Deno => &images.function_runner_image,
            FunctionRuntime::Python => &images.python_runner_image,
        }
    }
}

/// B §5.5 runtime choice: `deno` when non-empty, else `python`. A present but empty runtime is
/// still chosen when it is the only one, so that its missing code is reported as such.
pub fn function_runtime(
    definition: &KeptnTaskDefinition,
) -> Option<(FunctionRuntime, &RuntimeSpec)> {
    let spec = &definition.spec;
    if let Some(deno) = spec.deno.as_ref().filter(|d| **d != RuntimeSpec::default()) {
        return Some((FunctionRuntime::Deno, deno));
    }
    if let Some(python) = &spec.python {
        return Some((FunctionRuntime::Python, python));
    }
    spec.deno.as_ref().map(|deno| (FunctionRuntime::Deno, deno))
}

/// The `functionRef` name of a function definition, when it has one.
pub fn parent_name(definition: &KeptnTaskDefinition) -> Option<&str> {
    if definition.spec.container.is_some() {
        return None;
    }
    function_runtime(definition)
        .and_then(|(_, spec)| spec.function_ref.as_ref())
        .map(|f| f.name.as_str())
        .filter(|n| !n.is_empty())
}

/// Everything the function runner container is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FunctionParams {
    runtime: FunctionRuntime,
    config_map: String,
    url: String,
    parameters: BTreeMap<String, String>,
    secret: String,
    cmd_parameters: String,
}

impl FunctionParams {
    /// A definition's own values.
    fn of(definition: &KeptnTaskDefinition, runtime: FunctionRuntime, spec: &RuntimeSpec) -> Self {
        FunctionParams {
            runtime,
            config_map: definition
                .status
                .as_ref()
                .and_then(|s| s.function.as_ref())
                .map(|f| f.config_map.clone())
                .unwrap_or_default(),
            url: spec
                .http_ref
                .as_ref()
                .map(|h| h.url.clone())
                .unwrap_or_default(),
            parameters: spec
                .parameters
                .as_ref()
                .map(|p| p.map.clone())
                .unwrap_or_default(),
            secret: spec
                .secure_parameters
                .as_ref()
                .map(|s| s.secret.clone())
                .unwrap_or_default(),
            cmd_parameters: spec.cmd_parameters.clone(),
        }
    }

    /// Layers the parent under `self`: non-empty values of `self` win, parameter maps are
    /// unioned with `self`'s keys winning; then the code (ConfigMap, URL) and the runtime (image,
    /// mount path) are the parent's.
    fn over_parent(mut self, parent: FunctionParams) -> Self {
        for (k, v) in parent.parameters {
            self.parameters.entry(k).or_insert(v);
        }
        if self.secret.is_empty() {
            self.secret = parent.secret;
        }
        if self.cmd_parameters.is_empty() {
            self.cmd_parameters = parent.cmd_parameters;
        }
        self.config_map = parent.config_map;
        self.url = parent.url;
        self.runtime = parent.runtime;
        self
    }
}

fn definition_id(definition: &KeptnTaskDefinition) -> (String, String) {
    (
        definition.metadata.namespace.clone().unwrap_or_default(),
        definition.metadata.name.clone().unwrap_or_default(),
    )
}

/// The function runner container and its code volume (B §5.5).
pub fn function_container(
    task: &KeptnTask,
    definition: &KeptnTaskDefinition,
    parent: Option<&KeptnTaskDefinition>,
    images: &RunnerImages,
    context_json: String,
) -> Result<(Container, Option<Volume>), CheckError> {
    let (runtime, spec) = function_runtime(definition).ok_or_else(|| {
        let (namespace, name) = definition_id(definition);
        CheckError::NoRuntime { namespace, name }
    })?;
    let mut params = FunctionParams::of(definition, runtime, spec);
    // The definition whose code runs, for the "no source" error.
    let mut code_owner = definition;
    if let Some(parent_name) = parent_name(definition) {
        let parent = parent.ok_or_else(|| CheckError::ParentNotFound {
            name: parent_name.to_owned(),
        })?;
        if parent.spec.container.is_some() {
            return Err(CheckError::ParentNotFunction {
                name: parent_name.to_owned(),
            });
        }
        let (parent_runtime, parent_spec) =
            function_runtime(parent).ok_or_else(|| CheckError::ParentNotFunction {
                name: parent_name.to_owned(),
            })?;
        params = params.over_parent(FunctionParams::of(parent, parent_runtime, parent_spec));
        code_owner = parent;
    }
    // The task's parameters come last, under the definitions' (definition keys, the parent's
    // included, win); its secret overrides theirs.
    if let Some(task_params) = &task.spec.parameters {
        for (k, v) in &task_params.map {
            params
                .parameters
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
    if let Some(secret) = task.spec.secure_parameters.as_ref().map(|s| &s.secret)
        && !secret.is_empty()
    {
        params.secret = secret.clone();
    }
    if params.config_map.is_empty() && params.url.is_empty() {
        let (namespace, name) = definition_id(code_owner);
        return Err(CheckError::NoSource { namespace, name });
    }

    let mount_path = params.runtime.mount_path();
    let mut env = Vec::with_capacity(5);
    if !params.parameters.is_empty() {
        env.push(plain_env("DATA", super::go_json(&params.parameters)?));
    }
    env.push(plain_env(KEPTN_CONTEXT, context_json));
    env.push(plain_env("CMD_ARGS", params.cmd_parameters.clone()));
    if !params.secret.is_empty() {
        env.push(EnvVar {
            name: SECURE_DATA.into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: params.secret.clone(),
                    key: SECURE_DATA.into(),
                    optional: None,
                }),
                ..Default::default()
            }),
        });
    }
    let uses_config_map = !params.config_map.is_empty();
    let script = if uses_config_map {
        mount_path.to_owned()
    } else {
        params.url.clone()
    };
    env.push(plain_env("SCRIPT", script));

    let mut container = Container {
        name: FUNCTION_CONTAINER.into(),
        image: Some(params.runtime.image(images).to_owned()),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(env),
        ..Default::default()
    };
    let volume = uses_config_map.then(|| {
        container.volume_mounts = Some(vec![VolumeMount {
            name: FUNCTION_VOLUME.into(),
            mount_path: mount_path.into(),
            sub_path: Some(CODE_KEY.into()),
            read_only: Some(true),
            ..Default::default()
        }]);
        Volume {
            name: FUNCTION_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: params.config_map.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }
    });
    Ok((container, volume))
}

/// The user's container (B §5.6): used verbatim with `KEPTN_CONTEXT` appended or overwritten;
/// when it mounts volumes, one in-memory emptyDir named after the first mount, sized by the
/// memory limit or 1Gi (A20).
pub fn user_container(container: &Container, context_json: String) -> (Container, Option<Volume>) {
    let mut container = container.clone();
    let env = container.env.get_or_insert_with(Vec::new);
    match env.iter_mut().find(|e| e.name == KEPTN_CONTEXT) {
        Some(existing) => {
            existing.value = Some(context_json);
            existing.value_from = None;
        }
        None => env.push(plain_env(KEPTN_CONTEXT, context_json)),
    }
    let volume = container
        .volume_mounts
        .as_ref()
        .and_then(|mounts| mounts.first())
        .map(|first| {
            let size = container
                .resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .and_then(|l| l.get("memory"))
                .cloned()
                .unwrap_or_else(|| Quantity(DEFAULT_SCRATCH_SIZE.into()));
            Volume {
                name: first.name.clone(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("Memory".into()),
                    size_limit: Some(size),
                }),
                ..Default::default()
            }
        });
    (container, volume)
}

fn plain_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    }
}
