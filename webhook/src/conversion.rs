//! CRD conversion (`/convert`): a ConversionReview in, the objects converted through `v1` by
//! `shared::crd::conversion` out (A24). Pure; the server only counts and answers.

use kube::core::Status;
use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};

/// A body that is not a ConversionReview with a request; answered with 400.
#[derive(Debug, thiserror::Error)]
pub enum InvalidReview {
    #[error("not a ConversionReview: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("ConversionReview without a request")]
    NoRequest,
}

/// How one review ended, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Converted,
    Refused,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Converted => "converted",
            Outcome::Refused => "refused",
        }
    }
}

/// Parses a ConversionReview body.
pub fn parse(body: &[u8]) -> Result<ConversionRequest, InvalidReview> {
    let review: ConversionReview = serde_json::from_slice(body)?;
    ConversionRequest::try_from(review).map_err(|_| InvalidReview::NoRequest)
}

/// Converts every object of `request`; one that cannot be converted fails the whole review with
/// its message, which the API server hands to the client.
pub fn respond(request: ConversionRequest) -> (Outcome, ConversionReview) {
    let desired = request.desired_api_version.clone();
    let converted: Result<Vec<_>, _> = request
        .objects
        .iter()
        .map(|object| shared::crd::conversion::convert(object.clone(), &desired))
        .collect();
    let response = ConversionResponse::for_request(request);
    match converted {
        Ok(objects) => (Outcome::Converted, response.success(objects).into_review()),
        Err(e) => (
            Outcome::Refused,
            response
                .failure(Status::failure(&e.to_string(), "Invalid"))
                .into_review(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn review(desired: &str, objects: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {"uid": "u-1", "desiredAPIVersion": desired, "objects": objects}
        }))
        .unwrap()
    }

    fn app(version: &str) -> Value {
        json!({
            "apiVersion": format!("lifecycle.keptn.sh/{version}"),
            "kind": "KeptnApp",
            "metadata": {"name": "shop", "namespace": "ns", "uid": "1", "resourceVersion": "7"},
            "spec": {"version": "1.0", "revision": 2, "workloads": [{"name": "cart", "version": "2"}]}
        })
    }

    #[test]
    fn answers_with_the_request_uid_and_every_object_converted() {
        let request = parse(&review(
            "lifecycle.keptn.sh/v1beta1",
            vec![app("v1"), app("v1")],
        ))
        .unwrap();
        let (outcome, answer) = respond(request);
        assert_eq!(outcome, Outcome::Converted);
        let answer = serde_json::to_value(answer).unwrap();
        assert_eq!(answer["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(answer["kind"], "ConversionReview");
        assert_eq!(answer["response"]["uid"], "u-1");
        assert_eq!(answer["response"]["result"]["status"], "Success");
        let objects = answer["response"]["convertedObjects"].as_array().unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["apiVersion"], "lifecycle.keptn.sh/v1beta1");
        assert_eq!(objects[0]["metadata"], app("v1")["metadata"]);
        assert_eq!(objects[0]["spec"]["revision"], 2);
    }

    #[test]
    fn one_object_that_cannot_be_converted_fails_the_review_with_its_reason() {
        let mut unknown = app("v1");
        unknown["apiVersion"] = json!("lifecycle.keptn.sh/v9");
        let request = parse(&review(
            "lifecycle.keptn.sh/v1",
            vec![app("v1alpha3"), unknown],
        ))
        .unwrap();
        let (outcome, answer) = respond(request);
        assert_eq!(outcome, Outcome::Refused);
        let answer = serde_json::to_value(answer).unwrap();
        assert_eq!(answer["response"]["uid"], "u-1");
        assert_eq!(answer["response"]["result"]["status"], "Failure");
        let message = answer["response"]["result"]["message"].as_str().unwrap();
        assert!(message.contains("v9"), "{message}");
        assert!(
            message.contains("v1alpha3"),
            "names what is served: {message}"
        );
    }

    #[test]
    fn a_body_that_is_no_review_is_rejected_not_panicked_on() {
        assert!(matches!(parse(b"{"), Err(InvalidReview::Parse(_))));
        assert!(matches!(parse(b"[]"), Err(InvalidReview::Parse(_))));
        let no_request = br#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"ConversionReview"}"#;
        assert!(matches!(parse(no_request), Err(InvalidReview::NoRequest)));
    }
}
