//! Reading an AdmissionReview body and writing the answer: the boundary between HTTP bytes and
//! the decision core.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, GroupVersionKind};

use crate::decision::Verdict;

/// Why a body is not a usable AdmissionReview (answered with HTTP 400 and this text).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON, not an AdmissionReview, or nested deeper than the parser allows.
    #[error("the body is not a valid AdmissionReview: {0}")]
    Malformed(#[from] serde_json::Error),
    /// An AdmissionReview without `request`.
    #[error("the AdmissionReview has no request")]
    NoRequest,
    /// An AdmissionReview of another API version.
    #[error("unsupported AdmissionReview apiVersion '{0}', expected admission.k8s.io/v1")]
    Version(String),
    /// Another kind than AdmissionReview (its response would echo that kind back).
    #[error("unsupported kind '{0}', expected AdmissionReview")]
    Kind(String),
}

/// Parses a request body. serde_json's recursion limit (128) rejects absurdly nested bodies
/// with an error instead of exhausting the stack.
pub fn parse(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, ReviewError> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)?;
    if review.types.api_version != "admission.k8s.io/v1" {
        return Err(ReviewError::Version(review.types.api_version));
    }
    if review.types.kind != "AdmissionReview" {
        return Err(ReviewError::Kind(review.types.kind));
    }
    review.try_into().map_err(|_| ReviewError::NoRequest)
}

/// `group/version, Kind=kind` for messages.
pub fn describe_kind(gvk: &GroupVersionKind) -> String {
    let group_version = if gvk.group.is_empty() {
        gvk.version.clone()
    } else {
        format!("{}/{}", gvk.group, gvk.version)
    };
    format!("{group_version}, Kind={}", gvk.kind)
}

/// The AdmissionResponse for a verdict, echoing the request's uid.
pub fn respond(request: &AdmissionRequest<DynamicObject>, verdict: Verdict) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    match verdict {
        Verdict::Allow { patch, message } => {
            let mut response = if patch.is_empty() {
                response
            } else {
                match response.clone().with_patch(json_patch::Patch(patch)) {
                    Ok(patched) => patched,
                    Err(err) => {
                        return response.deny(format!("cannot serialise the patch: {err}"));
                    }
                }
            };
            if let Some(message) = message {
                response.result.message = message;
            }
            response
        }
        Verdict::Deny(denial) => {
            let mut response = response.deny(denial.message);
            response.result.code = denial.code;
            response.result.reason = denial.reason;
            response.result.details = denial.details;
            response.result.status = Some(kube::core::response::StatusSummary::Failure);
            response
        }
    }
}

/// The whole response body. `patch` is written as base64 (Go's encoding of `[]byte`, what the
/// API server documents and every emulator expects), not as kube's array of numbers.
pub fn to_body(response: AdmissionResponse) -> Vec<u8> {
    let patch = response.patch.as_deref().map(|p| BASE64.encode(p));
    let review = response.into_review();
    let encoded = serde_json::to_value(&review).and_then(|mut value| {
        if let (Some(patch), Some(slot)) = (patch, value.pointer_mut("/response/patch")) {
            *slot = serde_json::Value::String(patch);
        }
        serde_json::to_vec(&value)
    });
    // Serialising strings, maps and numbers cannot fail; answer something readable regardless.
    encoded.unwrap_or_else(|_| {
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec()
    })
}
