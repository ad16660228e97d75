//! The runtime options of KeptnConfig (B §0.3, §2.12): initial defaults, and every field copied
//! from the last KeptnConfig reconciled (an omitted field is the CRD default, not the old value).

use std::time::Duration;

use shared::crd::KeptnConfigSpec;

/// Options the controllers read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Discovery window of multi-service apps.
    pub creation_request_timeout: Duration,
    pub block_deployment: bool,
    pub observability_timeout: Duration,
    pub cloud_events_endpoint: String,
    pub otel_collector_url: String,
    pub rest_api_enabled: bool,
}

impl Default for RuntimeConfig {
    /// Values before any KeptnConfig is seen: 30 s, blocking, 5m.
    fn default() -> Self {
        RuntimeConfig {
            creation_request_timeout: Duration::from_secs(30),
            block_deployment: true,
            observability_timeout: Duration::from_secs(300),
            cloud_events_endpoint: String::new(),
            otel_collector_url: String::new(),
            rest_api_enabled: false,
        }
    }
}

impl RuntimeConfig {
    /// The options of a KeptnConfig spec. An unparsable `observabilityTimeout` keeps the
    /// default and is reported in the second value.
    pub fn from_spec(spec: &KeptnConfigSpec) -> (Self, Option<String>) {
        let (observability_timeout, problem) = match spec.observability_timeout.to_std() {
            Ok(d) => (d, None),
            Err(e) => (
                RuntimeConfig::default().observability_timeout,
                Some(format!("observabilityTimeout: {e}; using 5m")),
            ),
        };
        let config = RuntimeConfig {
            creation_request_timeout: Duration::from_secs(
                u64::try_from(spec.keptn_app_creation_request_timeout_seconds).unwrap_or(0),
            ),
            block_deployment: spec.block_deployment,
            observability_timeout,
            cloud_events_endpoint: spec.cloud_events_endpoint.clone(),
            otel_collector_url: spec.otel_collector_url.clone(),
            rest_api_enabled: spec.rest_api_enabled,
        };
        (config, problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_fields_take_crd_defaults() {
        let spec: KeptnConfigSpec =
            serde_json::from_value(serde_json::json!({"keptnAppCreationRequestTimeoutSeconds": 3}))
                .unwrap();
        let (c, problem) = RuntimeConfig::from_spec(&spec);
        assert!(problem.is_none());
        assert_eq!(c.creation_request_timeout, Duration::from_secs(3));
        assert!(c.block_deployment);
        assert_eq!(c.observability_timeout, Duration::from_secs(300));
        let spec: KeptnConfigSpec = serde_json::from_value(
            serde_json::json!({"blockDeployment": false, "observabilityTimeout": "1m30s"}),
        )
        .unwrap();
        let (c, _) = RuntimeConfig::from_spec(&spec);
        assert_eq!(
            c.creation_request_timeout,
            Duration::from_secs(30),
            "reset to default"
        );
        assert!(!c.block_deployment);
        assert_eq!(c.observability_timeout, Duration::from_secs(90));
    }

    #[test]
    fn bad_timeout_keeps_default_and_says_so() {
        let spec: KeptnConfigSpec =
            serde_json::from_value(serde_json::json!({"observabilityTimeout": "0x"})).unwrap();
        let (c, problem) = RuntimeConfig::from_spec(&spec);
        assert_eq!(c.observability_timeout, Duration::from_secs(300));
        assert!(problem.is_some());
    }
}
