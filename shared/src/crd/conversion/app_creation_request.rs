//! KeptnAppCreationRequest at v1alpha3 and v1beta1.
//!
//! The kind has had the single spec field `appName` and a plain-string status since v1alpha3, so
//! both older versions move every field across unchanged.

use super::{Carry, Convert, Refusal, Spoke};

pub(super) fn spokes() -> Vec<Spoke> {
    vec![
        Spoke::of::<v1alpha3::KeptnAppCreationRequest>(),
        Spoke::of::<v1beta1::KeptnAppCreationRequest>(),
    ]
}

/// v1alpha3 and v1beta1 are the same as v1.
macro_rules! creation_request_as_v1 {
    ($version:literal) => {
        use schemars::JsonSchema;
        use serde::{Deserialize, Serialize};

        use super::*;

        #[derive(
            kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema,
        )]
        #[kube(
            group = "lifecycle.keptn.sh",
            version = $version,
            kind = "KeptnAppCreationRequest",
            doc = "Request to create a KeptnApp (served for older manifests; v1 is stored).",
            namespaced,
            status = "String",
            derive = "PartialEq"
        )]
        pub struct KeptnAppCreationRequestSpec {
            /// Same json fields as v1; one definition keeps the schemas from drifting apart.
            #[serde(flatten)]
            pub request: crate::crd::KeptnAppCreationRequestSpec,
        }

        impl Convert for KeptnAppCreationRequest {
            type Hub = crate::crd::KeptnAppCreationRequest;

            fn to_hub(self, _: &mut Carry) -> Result<Self::Hub, Refusal> {
                Ok(crate::crd::KeptnAppCreationRequest {
                    metadata: self.metadata,
                    spec: self.spec.request,
                    status: self.status,
                })
            }

            fn from_hub(hub: Self::Hub, _: &mut Carry) -> Result<Self, Refusal> {
                Ok(KeptnAppCreationRequest {
                    metadata: hub.metadata,
                    spec: KeptnAppCreationRequestSpec { request: hub.spec },
                    status: hub.status,
                })
            }
        }
    };
}

pub mod v1alpha3 {
    //! KeptnAppCreationRequest as at v1.
    creation_request_as_v1!("v1alpha3");
}

pub mod v1beta1 {
    //! KeptnAppCreationRequest as at v1.
    creation_request_as_v1!("v1beta1");
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::convert;
    use super::{v1alpha3, v1beta1};

    fn request(version: &str) -> Value {
        json!({
            "apiVersion": format!("lifecycle.keptn.sh/{version}"),
            "kind": "KeptnAppCreationRequest",
            "metadata": {
                "name": "podtato-head",
                "namespace": "podtato-kubectl",
                "annotations": {"keptn.sh/app-type": "single-service"}
            },
            "spec": {"appName": "podtato-head"},
            "status": "created"
        })
    }

    fn round_trip<T>(version: &str)
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let normalised =
            |v: Value| serde_json::to_value(serde_json::from_value::<T>(v).unwrap()).unwrap();
        let old = request(version);
        let v1 = convert(old.clone(), "lifecycle.keptn.sh/v1").unwrap();
        assert_eq!(v1, request("v1"));
        let back = convert(v1, &format!("lifecycle.keptn.sh/{version}")).unwrap();
        assert_eq!(normalised(back), normalised(old));
    }

    #[test]
    fn v1alpha3_round_trips_unchanged() {
        round_trip::<v1alpha3::KeptnAppCreationRequest>("v1alpha3");
    }

    #[test]
    fn v1beta1_round_trips_unchanged() {
        round_trip::<v1beta1::KeptnAppCreationRequest>("v1beta1");
    }
}
