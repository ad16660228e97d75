//! Test-controlled fault injection: make the emulator fail requests the way a real API server
//! does under trouble (500 `InternalError`, 503 `ServiceUnavailable`, 409 `Conflict`), and close
//! open watches, so failure tests can check that clients retry without duplicating work.
//!
//! Tests reach it through [`crate::SimHandle::faults`]; the `kubesim` binary through its admin
//! endpoint (`POST /kubesim/faults` with a [`FaultRule`] as JSON, `DELETE /kubesim/faults`,
//! `POST /kubesim/faults/close-watches`, `GET /kubesim/faults` for the counters). Every injected
//! failure is a `Status` object, indistinguishable on the wire from a real one.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::status::ApiError;

/// The failure an injected fault answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// 500 `InternalError` (as when etcd times out).
    InternalError,
    /// 503 `ServiceUnavailable` (as when the server is overloaded or shutting down).
    ServiceUnavailable,
    /// 409 `Conflict`: the optimistic-concurrency failure of a stale `resourceVersion`.
    Conflict,
}

/// Which requests a rule fails, how often and how many times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    pub fault: Fault,
    /// Kubernetes verbs (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`); empty: every verb.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Plural resource name (`pods`, `keptntasks`); `None`: every resource.
    #[serde(default)]
    pub resource: Option<String>,
    /// `Some("status")`: only that subresource; `Some("")`: only the main resource; `None`: both.
    #[serde(default)]
    pub subresource: Option<String>,
    /// Only requests in this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// How many failures to inject before the rule retires; `None`: until cleared.
    #[serde(default)]
    pub times: Option<u64>,
    /// Fail one in `every` matching requests (the first, then every `every`-th); 0 or 1: all.
    #[serde(default)]
    pub every: u64,
    /// Carry out the request, then answer with the failure (a write whose response is lost:
    /// the client cannot know it took effect).
    #[serde(default)]
    pub after_commit: bool,
}

impl FaultRule {
    /// A rule failing every request with `fault` until cleared.
    pub fn new(fault: Fault) -> Self {
        Self {
            fault,
            verbs: Vec::new(),
            resource: None,
            subresource: None,
            namespace: None,
            times: None,
            every: 0,
            after_commit: false,
        }
    }

    pub fn verbs(mut self, verbs: &[&str]) -> Self {
        self.verbs = verbs.iter().map(|v| v.to_string()).collect();
        self
    }

    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_string());
        self
    }

    pub fn subresource(mut self, sub: &str) -> Self {
        self.subresource = Some(sub.to_string());
        self
    }

    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_string());
        self
    }

    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    pub fn every(mut self, n: u64) -> Self {
        self.every = n;
        self
    }

    pub fn after_commit(mut self) -> Self {
        self.after_commit = true;
        self
    }

    fn matches(&self, r: &RequestInfo) -> bool {
        (self.verbs.is_empty() || self.verbs.contains(&r.verb))
            && self.resource.as_ref().is_none_or(|x| *x == r.resource)
            && self
                .subresource
                .as_ref()
                .is_none_or(|x| *x == r.subresource)
            && self.namespace.as_ref().is_none_or(|x| *x == r.namespace)
    }
}

/// What a resource request is, as far as fault rules care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl RequestInfo {
    /// Classify a request; `None` for discovery, health and other non-resource paths.
    pub fn parse(method: &str, path: &str, watch_param: bool) -> Option<Self> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, rest) = match segs.as_slice() {
            ["api", _version, rest @ ..] => ("", rest),
            ["apis", group, _version, rest @ ..] => (*group, rest),
            _ => return None,
        };
        let (rest, legacy_watch) = match rest.first() {
            Some(&"watch") => (&rest[1..], true),
            _ => (rest, false),
        };
        let namespaced = rest.first() == Some(&"namespaces")
            && rest.len() >= 3
            && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
        let (namespace, rest) = if namespaced {
            (rest[1], &rest[2..])
        } else {
            ("", rest)
        };
        let resource = *rest.first()?;
        let name = rest.get(1).copied().unwrap_or("");
        let subresource = rest.get(2).copied().unwrap_or("");
        let verb = match method {
            "GET" if legacy_watch || (name.is_empty() && watch_param) => "watch",
            "GET" if name.is_empty() => "list",
            "GET" => "get",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" if name.is_empty() => "deletecollection",
            "DELETE" => "delete",
            _ => return None,
        };
        Some(Self {
            verb: verb.to_string(),
            group: group.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

/// The failure to answer one request with.
#[derive(Debug, Clone)]
pub struct Injection {
    pub error: ApiError,
    /// Serve the request first, then answer with `error`.
    pub after_commit: bool,
}

struct Armed {
    rule: FaultRule,
    seen: u64,
    injected: u64,
}

/// The fault rules of one emulator and its watch-closing signal; shared by the HTTP layer and
/// the test that controls it.
pub struct Faults {
    rules: Mutex<Vec<Armed>>,
    injected: AtomicU64,
    watches_closed: AtomicU64,
    close_watches: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            injected: AtomicU64::new(0),
            watches_closed: AtomicU64::new(0),
            close_watches: watch::channel(0).0,
        }
    }
}

impl Faults {
    /// Add a rule; rules are consulted in the order added, the first match decides.
    pub fn add(&self, rule: FaultRule) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.push(Armed {
                rule,
                seen: 0,
                injected: 0,
            });
        }
    }

    /// Remove every rule (counters are kept).
    pub fn clear(&self) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.clear();
        }
    }

    /// How many failures have been injected since start.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// How many times [`Faults::close_watches`] has been called.
    pub fn watch_closures(&self) -> u64 {
        self.watches_closed.load(Ordering::SeqCst)
    }

    /// End every open watch now, as an API server restart or a load balancer does: the stream
    /// ends cleanly and clients must re-watch from their last resourceVersion.
    pub fn close_watches(&self) {
        self.watches_closed.fetch_add(1, Ordering::SeqCst);
        self.close_watches.send_modify(|n| *n += 1);
    }

    /// A signal that changes whenever watches are to be closed; watch streams hold one.
    pub fn watch_closer(&self) -> watch::Receiver<u64> {
        self.close_watches.subscribe()
    }

    /// The failure for this request, if a rule takes it.
    pub fn check(&self, req: &RequestInfo) -> Option<Injection> {
        let mut rules = self.rules.lock().ok()?;
        let mut hit = None;
        for (i, armed) in rules.iter_mut().enumerate() {
            if !armed.rule.matches(req) {
                continue;
            }
            armed.seen += 1;
            let every = armed.rule.every.max(1);
            if (armed.seen - 1) % every != 0 {
                return None;
            }
            armed.injected += 1;
            hit = Some((i, armed.rule.fault, armed.rule.after_commit));
            break;
        }
        let (i, fault, after_commit) = hit?;
        if rules[i].rule.times.is_some_and(|t| rules[i].injected >= t) {
            rules.remove(i);
        }
        drop(rules);
        self.injected.fetch_add(1, Ordering::SeqCst);
        tracing::info!(verb = %req.verb, resource = %req.resource, sub = %req.subresource,
            namespace = %req.namespace, name = %req.name, ?fault, "kubesim: injecting a fault");
        Some(Injection {
            error: error_for(fault, req),
            after_commit,
        })
    }

    /// The counters and the active rules, for `GET /kubesim/faults`.
    pub fn summary(&self) -> Value {
        let rules: Vec<Value> = self
            .rules
            .lock()
            .map(|r| {
                r.iter()
                    .map(|a| json!({"rule": a.rule, "matched": a.seen, "injected": a.injected}))
                    .collect()
            })
            .unwrap_or_default();
        json!({"injected": self.injected(), "watchClosures": self.watch_closures(), "rules": rules})
    }
}

/// The Status a real API server sends for this kind of failure on this request.
pub fn error_for(fault: Fault, req: &RequestInfo) -> ApiError {
    match fault {
        Fault::InternalError => ApiError::new(
            500,
            "InternalError",
            "Internal error occurred: etcdserver: request timed out",
        )
        .with_details(json!({"causes": [{"message": "etcdserver: request timed out"}]})),
        Fault::ServiceUnavailable => ApiError::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        Fault::Conflict => ApiError::conflict(&req.group, &req.resource, &req.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str) -> RequestInfo {
        RequestInfo::parse(method, path, path.contains("?watch")).expect("a resource request")
    }

    #[test]
    fn classifies_requests() {
        let r = req(
            "PATCH",
            "/apis/lifecycle.keptn.sh/v1/namespaces/a/keptntasks/t1/status",
        );
        assert_eq!(
            (r.verb.as_str(), r.group.as_str(), r.resource.as_str()),
            ("patch", "lifecycle.keptn.sh", "keptntasks")
        );
        assert_eq!(
            (
                r.namespace.as_str(),
                r.name.as_str(),
                r.subresource.as_str()
            ),
            ("a", "t1", "status")
        );
        assert_eq!(req("GET", "/api/v1/pods").verb, "list");
        assert_eq!(
            RequestInfo::parse("GET", "/api/v1/namespaces/a/pods", true)
                .unwrap()
                .verb,
            "watch"
        );
        assert_eq!(req("GET", "/api/v1/watch/namespaces/a/pods").verb, "watch");
        assert_eq!(req("POST", "/api/v1/namespaces/a/pods").verb, "create");
        assert_eq!(
            req("DELETE", "/api/v1/namespaces/a/pods").verb,
            "deletecollection"
        );
        assert_eq!(req("DELETE", "/api/v1/namespaces/a/pods/p").verb, "delete");
        let ns = req("PUT", "/api/v1/namespaces/a/finalize");
        assert_eq!(
            (ns.resource.as_str(), ns.name.as_str()),
            ("namespaces", "a")
        );
        assert_eq!(ns.subresource, "finalize");
        assert!(RequestInfo::parse("GET", "/apis/apps/v1", false).is_none());
        assert!(RequestInfo::parse("GET", "/healthz", false).is_none());
    }

    #[test]
    fn rules_match_count_and_retire() {
        let f = Faults::default();
        f.add(
            FaultRule::new(Fault::InternalError)
                .verbs(&["create"])
                .resource("pods")
                .times(2),
        );
        let create = req("POST", "/api/v1/namespaces/a/pods");
        assert!(
            f.check(&req("GET", "/api/v1/namespaces/a/pods/p"))
                .is_none()
        );
        assert!(
            f.check(&req("POST", "/api/v1/namespaces/a/services"))
                .is_none()
        );
        let first = f.check(&create).expect("first create fails");
        assert_eq!(first.error.code, 500);
        assert_eq!(first.error.to_status()["reason"], "InternalError");
        assert!(f.check(&create).is_some());
        assert!(f.check(&create).is_none(), "retired after two");
        assert_eq!(f.injected(), 2);
    }

    #[test]
    fn every_nth_and_subresource_and_namespace() {
        let f = Faults::default();
        f.add(
            FaultRule::new(Fault::Conflict)
                .verbs(&["patch", "update"])
                .subresource("status")
                .namespace("a")
                .every(2),
        );
        let status = req(
            "PATCH",
            "/apis/lifecycle.keptn.sh/v1/namespaces/a/keptntasks/t/status",
        );
        let hits: Vec<bool> = (0..4).map(|_| f.check(&status).is_some()).collect();
        assert_eq!(hits, [true, false, true, false]);
        assert!(
            f.check(&req(
                "PATCH",
                "/apis/lifecycle.keptn.sh/v1/namespaces/a/keptntasks/t"
            ))
            .is_none()
        );
        assert!(
            f.check(&req(
                "PATCH",
                "/apis/lifecycle.keptn.sh/v1/namespaces/b/keptntasks/t/status"
            ))
            .is_none()
        );
        let e = f.check(&status).expect("third hit").error;
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on keptntasks.lifecycle.keptn.sh \"t\": the object has been modified; please apply your changes to the latest version and try again"
        );
        f.clear();
        assert!(f.check(&status).is_none());
    }

    #[test]
    fn close_watches_signals_and_rules_round_trip_as_json() {
        let f = Faults::default();
        let rx = f.watch_closer();
        f.close_watches();
        assert!(rx.has_changed().expect("sender alive"));
        assert_eq!(f.watch_closures(), 1);
        let rule: FaultRule = serde_json::from_value(json!({
            "fault": "ServiceUnavailable", "verbs": ["update"], "resource": "leases",
            "times": 1, "afterCommit": true}))
        .expect("rule json");
        assert_eq!(
            rule,
            FaultRule::new(Fault::ServiceUnavailable)
                .verbs(&["update"])
                .resource("leases")
                .times(1)
                .after_commit()
        );
        f.add(rule);
        let hit = f
            .check(&req(
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/a/leases/l",
            ))
            .expect("hit");
        assert!(hit.after_commit);
        assert_eq!(hit.error.code, 503);
        assert_eq!(f.summary()["injected"], 1);
    }
}

#[cfg(test)]
mod http_tests {
    use super::*;
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;
    use kube::api::{PostParams, WatchParams};

    fn cm(name: &str) -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
            .expect("configmap")
    }

    /// Over HTTP with kube-rs: injected failures arrive as Status errors, `after_commit` writes
    /// persist, closed watches end.
    #[tokio::test]
    async fn injected_failures_look_like_api_server_failures() {
        let sim = crate::Sim::start(crate::SimConfig::default())
            .await
            .expect("sim");
        let api: Api<ConfigMap> = Api::namespaced(sim.client().expect("client"), "default");
        sim.faults().add(
            FaultRule::new(Fault::InternalError)
                .verbs(&["create"])
                .resource("configmaps")
                .times(1),
        );
        match api.create(&PostParams::default(), &cm("a")).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"));
            }
            other => panic!("expected an injected 500, got {other:?}"),
        }
        assert!(
            api.get_opt("a").await.expect("get").is_none(),
            "not persisted"
        );
        api.create(&PostParams::default(), &cm("a"))
            .await
            .expect("rule retired after one failure");

        sim.faults().add(
            FaultRule::new(Fault::InternalError)
                .verbs(&["create"])
                .times(1)
                .after_commit(),
        );
        let lost = api.create(&PostParams::default(), &cm("b")).await;
        assert!(
            matches!(lost, Err(kube::Error::Api(ref s)) if s.code == 500),
            "{lost:?}"
        );
        assert!(api.get_opt("b").await.expect("get").is_some(), "persisted");

        sim.faults()
            .add(FaultRule::new(Fault::Conflict).verbs(&["patch"]).times(1));
        let patch = kube::api::Patch::Merge(json!({"data": {"k": "w"}}));
        match api
            .patch("a", &kube::api::PatchParams::default(), &patch)
            .await
        {
            Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
            other => panic!("expected an injected 409, got {other:?}"),
        }

        let mut stream = api
            .watch(&WatchParams::default(), "0")
            .await
            .expect("watch")
            .boxed();
        let first = stream.next().await.expect("an event").expect("ok");
        assert!(matches!(first, kube::api::WatchEvent::Added(_)));
        let _second = stream.next().await.expect("an event").expect("ok");
        sim.faults().close_watches();
        let end = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .expect("the watch ends promptly");
        assert!(end.is_none(), "stream ended, got {end:?}");
        assert_eq!(sim.faults().injected(), 3);
        sim.shutdown().await;
    }

    /// The admin endpoint of the binary: add a rule as JSON, see it fire, close watches, clear.
    #[tokio::test]
    async fn admin_endpoint_controls_the_same_rules() {
        let sim = crate::Sim::start(crate::SimConfig::default())
            .await
            .expect("sim");
        let http = reqwest::Client::new();
        let url = format!("{}/kubesim/faults", sim.url);
        let added = http
            .post(&url)
            .json(&json!({"fault": "ServiceUnavailable", "verbs": ["get"], "resource": "namespaces", "times": 1}))
            .send()
            .await
            .expect("post");
        assert_eq!(added.status(), 201);
        let got = http
            .get(format!("{}/api/v1/namespaces/default", sim.url))
            .send()
            .await
            .expect("get");
        assert_eq!(got.status(), 503);
        let status: Value = got.json().await.expect("status json");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "ServiceUnavailable");
        let bad = http.post(&url).body("{}").send().await.expect("post");
        assert_eq!(bad.status(), 400, "a rule needs a fault");
        let closed = http
            .post(format!("{url}/close-watches"))
            .send()
            .await
            .expect("close");
        let summary: Value = closed.json().await.expect("summary");
        assert_eq!(
            (
                summary["injected"].as_u64(),
                summary["watchClosures"].as_u64()
            ),
            (Some(1), Some(1))
        );
        let cleared: Value = http
            .delete(&url)
            .send()
            .await
            .expect("delete")
            .json()
            .await
            .expect("summary");
        assert_eq!(cleared["rules"], json!([]));
        sim.shutdown().await;
    }
}
