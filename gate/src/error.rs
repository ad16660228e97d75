//! The one error type of the gate's controllers.

use std::time::Duration;

use lifecycle::execution::CheckError;
use operator::api::ApiError;

/// What a reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0} changed meanwhile; retrying with fresh state")]
    Conflict(String),
    #[error("{kind} {name} exists but belongs to another owner")]
    NameTaken { kind: &'static str, name: String },
    #[error("object has no {0}")]
    MissingField(&'static str),
    #[error("API call timed out after {0:?}")]
    Timeout(Duration),
    #[error("invalid patch: {0}")]
    Patch(#[from] serde_json::Error),
    /// A KeptnTask, KeptnEvaluation or KeptnTaskDefinition that cannot be handled as it is.
    #[error(transparent)]
    Check(#[from] CheckError),
}

impl Error {
    /// Bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Conflict(_) => "conflict",
            Error::NameTaken { .. } => "name_taken",
            Error::MissingField(_) => "missing_field",
            Error::Timeout(_) => "timeout",
            Error::Patch(_) => "patch",
            Error::Check(e) => e.kind(),
        }
    }

    /// Whether the API server answered `reason` (e.g. 409 for a conflict).
    pub fn is_status(&self, code: u16) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == code)
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Kube(e) => Error::Kube(e),
            ApiError::Conflict(name) => Error::Conflict(name),
            ApiError::MissingField(field) => Error::MissingField(field),
            ApiError::Timeout(after) => Error::Timeout(after),
            ApiError::Patch(e) => Error::Patch(e),
        }
    }
}
