//! Dynamic admission webhooks (FIDELITY F14–F19): selection of the webhooks of stored
//! `MutatingWebhookConfiguration` / `ValidatingWebhookConfiguration` objects, the HTTPS
//! `AdmissionReview` v1 call, failure policy, dry run and ordering with reinvocation, answering
//! with the status codes and messages of a real kube-apiserver 1.32.
//!
//! Deliberate simplifications, each documented where it applies:
//! - `matchPolicy: Equivalent` treats only the same group and resource in another version as
//!   equivalent, and the webhook then receives the object unconverted (with the request's own
//!   `kind`/`resource`); cross-group equivalents (e.g. `extensions` → `apps`) never match.
//! - `matchConditions` (CEL) are not evaluated: a matching webhook that declares any answers 501.
//! - Only `AdmissionReview` v1 is spoken; `admissionReviewVersions` without `v1` fails the call.
//! - Validating webhooks run concurrently, as in a real server; when several fail, the error of
//!   the first in configuration order is returned (a real server returns the first to arrive).
//! - Warnings are returned only when admission succeeds (an [`ApiError`] carries none).

mod call;
mod config;
mod select;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::status::ApiError;

use self::call::{CallError, Reply};
use self::config::{FailurePolicy, Hook};

/// Maps a webhook's `clientConfig.service` to the address that serves it (a loopback address in
/// the emulator). `None` means the service does not exist.
pub trait ServiceResolver: Send + Sync {
    fn resolve(&self, namespace: &str, name: &str, port: u16) -> Option<SocketAddr>;
}

/// The admission operation (`request.operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Operation {
    #[default]
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// The wire spelling (`CREATE`, `UPDATE`, `DELETE`, `CONNECT`), also used in `rules.operations`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
        }
    }

    /// Parses the wire spelling; `None` for anything else.
    pub fn from_wire(s: &str) -> Option<Self> {
        [Self::Create, Self::Update, Self::Delete, Self::Connect]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// `metav1.GroupVersionKind` as sent in `request.kind` (group empty for the core group).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupVersionKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// `metav1.GroupVersionResource` as sent in `request.resource` (plural resource name).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupVersionResource {
    pub group: String,
    pub version: String,
    pub resource: String,
}

/// What the API server knows about one write when it runs admission.
#[derive(Debug, Clone, Default)]
pub struct AdmissionAttributes {
    pub operation: Operation,
    pub kind: GroupVersionKind,
    pub resource: GroupVersionResource,
    /// e.g. `status`, `scale`; empty for the main resource.
    pub sub_resource: String,
    /// Empty for a `generateName` create: the name is generated after mutating admission (F5).
    pub name: String,
    /// Empty for cluster-scoped objects; for a Namespace object its own name.
    pub namespace: String,
    /// Labels of the request's namespace (for a Namespace object: its own labels). `None` when the
    /// namespace does not exist.
    pub namespace_labels: Option<BTreeMap<String, String>>,
    /// The new object (already defaulted); `None` on DELETE and CONNECT.
    pub object: Option<Value>,
    /// The stored object on UPDATE and DELETE.
    pub old_object: Option<Value>,
    pub dry_run: bool,
    /// `CreateOptions` / `UpdateOptions` / `DeleteOptions` as sent in `request.options`.
    pub options: Option<Value>,
    /// `authentication.k8s.io/v1 UserInfo` (`username`, `uid`, `groups`, `extra`).
    pub user_info: Value,
}

/// The outcome of mutating admission.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutated {
    /// The object after every webhook's patch (unchanged when no webhook patched it).
    pub object: Option<Value>,
    /// `warnings` of every webhook's response, in call order, for the `Warning` header.
    pub warnings: Vec<String>,
}

/// Runs the admission webhooks of the stored configurations.
pub struct Admission {
    resolver: Arc<dyn ServiceResolver>,
}

/// Which webhooks may run again in the reinvocation round (F19), keyed by a webhook's identity
/// `<configuration>/<webhook>/<index>` as a real server keys it.
#[derive(Default)]
struct Reinvocation {
    /// `IfNeeded` webhooks called since the object last changed.
    previously_invoked: HashSet<String>,
    /// Webhooks to call again: `IfNeeded` ones that ran before a later change.
    reinvoke: HashSet<String>,
    /// Whether any webhook changed the object in the first round.
    any_change: bool,
}

impl Reinvocation {
    fn object_changed(&mut self) {
        self.reinvoke.extend(self.previously_invoked.drain());
        self.any_change = true;
    }
}

impl Admission {
    /// Admission that reaches `clientConfig.service` webhooks through `resolver`.
    pub fn new(resolver: Arc<dyn ServiceResolver>) -> Self {
        Self { resolver }
    }

    /// Runs the matching mutating webhooks of `configs` (stored `MutatingWebhookConfiguration`
    /// objects) one after another: configurations sorted by name, webhooks in list order, then
    /// once more for `reinvocationPolicy: IfNeeded` webhooks that ran before a later change.
    pub async fn mutate(
        &self,
        configs: &[Value],
        attrs: &AdmissionAttributes,
    ) -> Result<Mutated, ApiError> {
        let hooks = config::load_hooks(configs, "MutatingWebhookConfiguration")?;
        let mut object = attrs.object.clone();
        let mut warnings = Vec::new();
        let mut state = Reinvocation::default();
        for reinvoking in [false, true] {
            if reinvoking && !state.any_change {
                break;
            }
            for hook in &hooks {
                if !select::should_call(hook, attrs, object.as_ref())? {
                    continue;
                }
                // A webhook is never called for the first time in the reinvocation round.
                if reinvoking && !state.reinvoke.contains(&hook.uid()) {
                    continue;
                }
                let outcome = self
                    .call_mutating(hook, attrs, &mut object, &mut warnings)
                    .await;
                if matches!(outcome, Ok(true)) {
                    state.object_changed();
                }
                if hook.reinvoke_if_needed() {
                    state.previously_invoked.insert(hook.uid());
                }
                if let Err(e) = outcome {
                    fail_or_ignore(hook, e)?;
                }
            }
        }
        Ok(Mutated { object, warnings })
    }

    /// Runs the matching validating webhooks of `configs` (stored `ValidatingWebhookConfiguration`
    /// objects) concurrently against the final object; returns their warnings.
    pub async fn validate(
        &self,
        configs: &[Value],
        attrs: &AdmissionAttributes,
    ) -> Result<Vec<String>, ApiError> {
        let hooks = config::load_hooks(configs, "ValidatingWebhookConfiguration")?;
        let mut selected = Vec::new();
        for hook in &hooks {
            if select::should_call(hook, attrs, attrs.object.as_ref())? {
                selected.push(hook);
            }
        }
        let calls = selected.iter().map(|hook| {
            call::call_webhook(
                self.resolver.as_ref(),
                hook,
                attrs,
                attrs.object.as_ref(),
                false,
            )
        });
        let replies = futures::future::join_all(calls).await;
        let mut warnings = Vec::new();
        let mut first_error = None;
        for (hook, reply) in selected.iter().zip(replies) {
            match reply {
                Ok(reply) => warnings.extend(reply.warnings),
                Err(e) => {
                    if let Err(api) = fail_or_ignore(hook, e) {
                        first_error.get_or_insert(api);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(warnings),
        }
    }

    /// Calls one mutating webhook and applies its patch to `object`; `Ok(true)` when the object
    /// changed.
    async fn call_mutating(
        &self,
        hook: &Hook,
        attrs: &AdmissionAttributes,
        object: &mut Option<Value>,
        warnings: &mut Vec<String>,
    ) -> Result<bool, CallError> {
        let Reply {
            patch,
            warnings: more,
        } = call::call_webhook(self.resolver.as_ref(), hook, attrs, object.as_ref(), true).await?;
        warnings.extend(more);
        let Some(patch) = patch else { return Ok(false) };
        let operations: json_patch::Patch = serde_json::from_slice(&patch).map_err(|e| {
            CallError::Calling(format!(
                "received undecodable patch in webhook response: {e}"
            ))
        })?;
        if operations.0.is_empty() {
            return Ok(false);
        }
        let Some(current) = object.as_mut() else {
            return Err(CallError::Status(internal_error(&format!(
                "admission webhook \"{}\" attempted to modify the object, which is not supported for this operation",
                hook.spec.name
            ))));
        };
        let mut patched = current.clone();
        // A real server answers 500 for a patch that does not apply, whatever the failure policy:
        // the webhook was reached and answered, so this is not a call failure.
        json_patch::patch(&mut patched, &operations.0)
            .map_err(|e| CallError::Status(internal_error(&e.to_string())))?;
        let changed = patched != *current;
        *current = patched;
        Ok(changed)
    }
}

/// Applies the failure policy to a failed webhook: call failures are ignored under
/// `failurePolicy: Ignore` and become 500 under `Fail`; denials and other errors always stand.
fn fail_or_ignore(hook: &Hook, error: CallError) -> Result<(), ApiError> {
    match error {
        CallError::Calling(reason) => {
            let message = format!("failed calling webhook \"{}\": {reason}", hook.spec.name);
            if hook.failure_policy() == FailurePolicy::Ignore {
                tracing::warn!(webhook = %hook.spec.name, "failed calling webhook, failing open: {message}");
                Ok(())
            } else {
                tracing::warn!(webhook = %hook.spec.name, "failed calling webhook, failing closed: {message}");
                Err(internal_error(&message))
            }
        }
        CallError::Status(e) => Err(e),
    }
}

/// `apierrors.NewInternalError`: 500 `Internal error occurred: <err>` with the error as the cause.
fn internal_error(err: &str) -> ApiError {
    ApiError::internal(format!("Internal error occurred: {err}"))
        .with_details(json!({"causes": [{"message": err}]}))
}
