//! What an admission decision consists of: the answer to the API server and the Keptn objects
//! that must be written for it. Plain data; the core produces it, the shell carries it out.

use json_patch::PatchOperation;
use kube::core::response::StatusDetails;
use shared::crd::{KeptnAppCreationRequest, KeptnWorkload};

/// The answer to one admission request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Admit, with the JSON Patch operations to apply (empty: admit unchanged) and an optional
    /// human-readable note (sent as `status.message`; the API server ignores it when allowed).
    Allow {
        /// Operations against the raw request object.
        patch: Vec<PatchOperation>,
        /// Why the object was (not) mutated.
        message: Option<String>,
    },
    /// Reject, with the status shown to the user.
    Deny(Denial),
}

impl Verdict {
    /// Admit unchanged with a note.
    pub fn allow(message: impl Into<String>) -> Self {
        Verdict::Allow {
            patch: Vec::new(),
            message: Some(message.into()),
        }
    }

    /// Reject as a bad request (HTTP-style code 400 in `status.code`).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Verdict::Deny(Denial {
            code: 400,
            reason: "BadRequest".into(),
            message: message.into(),
            details: None,
        })
    }

    /// The metrics label of this verdict: `allowed`, `patched` or `denied`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Allow { patch, .. } if patch.is_empty() => "allowed",
            Verdict::Allow { .. } => "patched",
            Verdict::Deny(_) => "denied",
        }
    }
}

/// A rejection: becomes the response's `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    /// `status.code`.
    pub code: u16,
    /// `status.reason` (e.g. `BadRequest`, `Invalid`).
    pub reason: String,
    /// `status.message`, shown by kubectl after "denied the request:".
    pub message: String,
    /// `status.details` (field causes of a validation failure).
    pub details: Option<StatusDetails>,
}

/// A Keptn object to write because of an admission (B §1.8, §1.9, A7).
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create this KeptnWorkload (it is not in the cache).
    CreateWorkload(Box<KeptnWorkload>),
    /// Replace this KeptnWorkload: the cached object with the desired spec and owner references,
    /// carrying the cached `resourceVersion` for optimistic concurrency.
    UpdateWorkload(Box<KeptnWorkload>),
    /// Create this KeptnAppCreationRequest.
    CreateAppCreationRequest(Box<KeptnAppCreationRequest>),
}

impl std::fmt::Display for Write {
    /// `create KeptnWorkload <namespace>/<name>`, as logs, tests and `kubectl portcullis explain`
    /// name a write.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (verb, kind, meta) = match self {
            Write::CreateWorkload(w) => ("create", "KeptnWorkload", &w.metadata),
            Write::UpdateWorkload(w) => ("update", "KeptnWorkload", &w.metadata),
            Write::CreateAppCreationRequest(r) => {
                ("create", "KeptnAppCreationRequest", &r.metadata)
            }
        };
        write!(
            f,
            "{verb} {kind} {}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        )
    }
}

/// The complete outcome of the core for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What to answer.
    pub verdict: Verdict,
    /// What to write before answering (nothing on dry run, A6).
    pub writes: Vec<Write>,
}

impl Decision {
    /// A decision without writes.
    pub fn only(verdict: Verdict) -> Self {
        Self {
            verdict,
            writes: Vec::new(),
        }
    }
}

/// An object the core needs but the caches do not hold (yet): fetch it once and decide again
/// (A5). Only objects whose absence from a cache is a normal race are asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Needed {
    /// The Namespace of the request (created milliseconds before its first object).
    Namespace(String),
    /// The pod's owner ReplicaSet (created milliseconds before its pods).
    ReplicaSet {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The annotated parent of a pod (Deployment, StatefulSet, DaemonSet).
    Parent {
        /// Which kind.
        kind: crate::snapshot::ParentKind,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}
