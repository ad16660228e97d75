//! The registry, the CRDs it generates and the dispatcher.

use super::*;

#[test]
fn every_older_version_keptn_serves_is_served() {
    let served = |kind: &str| -> Vec<&str> {
        let mut v: Vec<&str> = spokes_of(kind).map(|s| s.version).collect();
        v.sort();
        v
    };
    let five = ["v1alpha1", "v1alpha2", "v1alpha3", "v1beta1"];
    for kind in [
        "KeptnApp",
        "KeptnAppVersion",
        "KeptnEvaluation",
        "KeptnEvaluationDefinition",
        "KeptnTask",
        "KeptnTaskDefinition",
        "KeptnWorkload",
    ] {
        assert_eq!(served(kind), five, "{kind}");
    }
    assert_eq!(served("KeptnAppContext"), ["v1beta1"]);
    assert_eq!(served("KeptnAppCreationRequest"), ["v1alpha3", "v1beta1"]);
    assert_eq!(served("KeptnWorkloadVersion"), ["v1alpha4", "v1beta1"]);
}
