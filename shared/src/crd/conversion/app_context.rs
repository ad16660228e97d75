//! KeptnAppContext at v1beta1.
//!
//! The kind was introduced at v1beta1 with the fields it still has at v1, so the conversion
//! moves every field across unchanged.

use super::{Carry, Convert, Refusal, Spoke};

pub(super) fn spokes() -> Vec<Spoke> {
    vec![Spoke::of::<v1beta1::KeptnAppContext>()]
}

pub mod v1beta1 {
    //! KeptnAppContext as at v1.

    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;
    pub use crate::crd::KeptnAppContextStatus;

    #[derive(
        kube::CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema,
    )]
    #[kube(
        group = "lifecycle.keptn.sh",
        version = "v1beta1",
        kind = "KeptnAppContext",
        doc = "Checks and metadata of a KeptnApp (served for older manifests; v1 is stored).",
        namespaced,
        status = "KeptnAppContextStatus",
        derive = "PartialEq"
    )]
    pub struct KeptnAppContextSpec {
        /// Same json fields as v1; one definition keeps the two schemas from drifting apart.
        #[serde(flatten)]
        pub context: crate::crd::KeptnAppContextSpec,
    }

    impl Convert for KeptnAppContext {
        type Hub = crate::crd::KeptnAppContext;

        fn to_hub(self, _: &mut Carry) -> Result<Self::Hub, Refusal> {
            Ok(crate::crd::KeptnAppContext {
                metadata: self.metadata,
                spec: self.spec.context,
                status: self.status,
            })
        }

        fn from_hub(hub: Self::Hub, _: &mut Carry) -> Result<Self, Refusal> {
            Ok(KeptnAppContext {
                metadata: hub.metadata,
                spec: KeptnAppContextSpec { context: hub.spec },
                status: hub.status,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::convert;
    use super::v1beta1;

    fn normalised(v: Value) -> Value {
        serde_json::to_value(serde_json::from_value::<v1beta1::KeptnAppContext>(v).unwrap())
            .unwrap()
    }

    #[test]
    fn v1beta1_round_trips_unchanged() {
        let old = json!({
            "apiVersion": "lifecycle.keptn.sh/v1beta1",
            "kind": "KeptnAppContext",
            "metadata": {"name": "podtato-head", "namespace": "podtato-kubectl"},
            "spec": {
                "preDeploymentTasks": ["container-sleep"],
                "postDeploymentTasks": ["post-deployment-hello"],
                "preDeploymentEvaluations": ["app-pre-deploy-eval-2"],
                "postDeploymentEvaluations": ["app-post-deploy-eval"],
                "promotionTasks": ["promote"],
                "metadata": {"commit-id": "1234"},
                "spanLinks": ["00-c088f5c586bab8649159ccc39a9862f7-f862289833f1fba3-01"]
            },
            "status": {"status": "unused"}
        });
        let v1 = convert(old.clone(), "lifecycle.keptn.sh/v1").unwrap();
        let mut expected = old.clone();
        expected["apiVersion"] = json!("lifecycle.keptn.sh/v1");
        assert_eq!(v1, expected);
        let back = convert(v1, "lifecycle.keptn.sh/v1beta1").unwrap();
        assert_eq!(normalised(back), normalised(old));
    }

    #[test]
    fn v1beta1_empty_spec_converts() {
        let old = json!({
            "apiVersion": "lifecycle.keptn.sh/v1beta1",
            "kind": "KeptnAppContext",
            "metadata": {"name": "app", "namespace": "ns"},
            "spec": {}
        });
        let v1 = convert(old.clone(), "lifecycle.keptn.sh/v1").unwrap();
        assert_eq!(v1["spec"], json!({}));
        let back = convert(v1, "lifecycle.keptn.sh/v1beta1").unwrap();
        assert_eq!(normalised(back), normalised(old));
    }
}
