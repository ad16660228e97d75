//! Opt-in authentication (bearer tokens) and role-based authorization (`SimConfig::rbac`).
//!
//! [`authorize`] is pure: a user, the request's attributes and the RBAC objects decide. The
//! server turns a denial into the real server's 403 `Forbidden` Status ([`forbidden`]).
//! Not modelled: ClusterRole aggregation, impersonation, escalation/bind checks on writes of
//! RBAC objects, and every authorizer other than RBAC (Node, Webhook).

use std::collections::HashMap;
use std::sync::RwLock;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};
use rand::Rng;
use serde_json::{Value, json};

use crate::status::ApiError;
use crate::store::Store;

/// The group that bypasses authorization, as on a real cluster.
pub const MASTERS: &str = "system:masters";
/// Every authenticated user is in this group.
pub const AUTHENTICATED: &str = "system:authenticated";
/// Requests without credentials when RBAC is on.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";

/// An authenticated (or anonymous) user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The identity of the admin kubeconfig.
    pub fn admin() -> Self {
        Self {
            name: "kubernetes-admin".into(),
            groups: vec![MASTERS.into(), AUTHENTICATED.into()],
        }
    }

    /// `system:serviceaccount:<ns>:<name>` with the three groups the token authenticator adds.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED.into(),
            ],
        }
    }

    /// A request without credentials while RBAC is on.
    pub fn anonymous() -> Self {
        Self {
            name: "system:anonymous".into(),
            groups: vec![UNAUTHENTICATED.into()],
        }
    }

    fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The `userInfo` of an AdmissionReview request.
    pub fn to_admission_json(&self) -> Value {
        json!({"username": self.name, "groups": self.groups})
    }
}

/// Bearer tokens issued by this emulator and who they identify.
#[derive(Debug, Default)]
pub struct Tokens {
    by_token: RwLock<HashMap<String, UserInfo>>,
}

impl Tokens {
    /// The token of `user`, made on first use (one token per user name).
    pub fn issue(&self, user: UserInfo) -> String {
        let mut map = match self.by_token.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some((t, _)) = map.iter().find(|(_, u)| u.name == user.name) {
            return t.clone();
        }
        let mut bytes = [0u8; 24];
        rand::rng().fill(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        map.insert(token.clone(), user);
        token
    }

    /// Who a token identifies; `None` for a token this emulator never issued.
    pub fn lookup(&self, token: &str) -> Option<UserInfo> {
        let map = match self.by_token.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.get(token).cloned()
    }
}

/// What a request asks to do, as the API server's request-info resolver classifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    Resource {
        verb: String,
        group: String,
        resource: String,
        subresource: String,
        namespace: String,
        name: String,
    },
    NonResource {
        verb: String,
        path: String,
    },
}

impl Attributes {
    /// Classify an HTTP request. `field_selector` names a single object for list/watch
    /// (`metadata.name=x`), which real servers authorize like a named request.
    pub fn from_request(
        method: &str,
        path: &str,
        watch_param: bool,
        field_selector: Option<&str>,
    ) -> Self {
        match crate::faults::RequestInfo::parse(method, path, watch_param) {
            Some(r) => {
                let mut name = r.name;
                let mut namespace = r.namespace;
                if r.resource == "namespaces" && !name.is_empty() {
                    // The namespace of a request for a Namespace is that namespace.
                    namespace = name.clone();
                }
                if name.is_empty()
                    && matches!(r.verb.as_str(), "list" | "watch")
                    && let Some(n) = field_selector
                        .into_iter()
                        .flat_map(|s| s.split(','))
                        .find_map(|t| {
                            t.trim()
                                .strip_prefix("metadata.name=")
                                .map(|v| v.trim_start_matches('='))
                        })
                {
                    name = n.to_string();
                }
                Self::Resource {
                    verb: r.verb,
                    group: r.group,
                    resource: r.resource,
                    subresource: r.subresource,
                    namespace,
                    name,
                }
            }
            None => Self::NonResource {
                verb: method.to_ascii_lowercase(),
                path: path.to_string(),
            },
        }
    }
}

/// The RBAC objects a decision reads.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
}

const GROUP: &str = "rbac.authorization.k8s.io";

fn typed<T: serde::de::DeserializeOwned>(store: &Store, plural: &str) -> Vec<T> {
    store
        .list(&format!("{GROUP}/{plural}"), None)
        .into_iter()
        .filter_map(|v| serde_json::from_value(v.clone()).ok())
        .collect()
}

impl Policy {
    /// The RBAC objects currently stored.
    pub fn from_store(store: &Store) -> Self {
        Self {
            cluster_roles: typed(store, "clusterroles"),
            cluster_role_bindings: typed(store, "clusterrolebindings"),
            roles: typed(store, "roles"),
            role_bindings: typed(store, "rolebindings"),
        }
    }

    fn cluster_role(&self, name: &str) -> Option<&ClusterRole> {
        self.cluster_roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
    }

    fn role(&self, namespace: &str, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| {
            r.metadata.name.as_deref() == Some(name)
                && r.metadata.namespace.as_deref() == Some(namespace)
        })
    }
}

/// An authorization decision with the reason (which binding allowed, or why nothing did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(String),
    Deny(String),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Self::Allow(_))
    }
}

/// Non-resource URLs the default `system:discovery`, `system:basic-user` and
/// `system:public-info-viewer` roles open to every authenticated user.
const DISCOVERY_URLS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/openapi",
    "/openapi/*",
    "/version",
    "/version/",
    "/healthz",
    "/livez",
    "/readyz",
];
/// What `system:public-info-viewer` opens to unauthenticated requests too.
const PUBLIC_URLS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];

fn url_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

fn subject_matches(s: &Subject, user: &UserInfo, binding_namespace: &str) -> bool {
    match s.kind.as_str() {
        "User" => s.name == user.name,
        "Group" => user.in_group(&s.name),
        "ServiceAccount" => {
            let ns = match s.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => ns,
                _ => binding_namespace,
            };
            user.name == format!("system:serviceaccount:{ns}:{}", s.name)
        }
        _ => false,
    }
}

fn contains(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == want || x == "*")
}

/// Whether one rule allows the request.
pub fn rule_allows(rule: &PolicyRule, attrs: &Attributes) -> bool {
    match attrs {
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            if !contains(&rule.verbs, verb) {
                return false;
            }
            if !contains(rule.api_groups.as_deref().unwrap_or_default(), group) {
                return false;
            }
            let combined = suffixed(resource, '/', subresource);
            let resource_ok = rule
                .resources
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|r| {
                    r == "*"
                        || *r == combined
                        || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
                });
            if !resource_ok {
                return false;
            }
            match rule.resource_names.as_deref() {
                None | Some([]) => true,
                // A request without a name (create, an unfiltered list or watch, a
                // deletecollection) never matches a rule limited to names.
                Some(names) => !name.is_empty() && names.iter().any(|n| n == name),
            }
        }
        Attributes::NonResource { verb, path } => {
            contains(&rule.verbs, verb)
                && rule
                    .non_resource_urls
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|u| url_matches(u, path))
        }
    }
}

fn rules_allow(rules: Option<&Vec<PolicyRule>>, attrs: &Attributes) -> bool {
    rules.is_some_and(|rs| rs.iter().any(|r| rule_allows(r, attrs)))
}

/// Decide one request: `system:masters` bypasses; ClusterRoleBindings grant cluster-wide;
/// RoleBindings grant their Role's or ClusterRole's rules within their own namespace only.
pub fn authorize(user: &UserInfo, attrs: &Attributes, policy: &Policy) -> Decision {
    if user.in_group(MASTERS) {
        return Decision::Allow(format!("group {MASTERS}"));
    }
    if let Attributes::NonResource { verb, path } = attrs
        && verb == "get"
    {
        let defaults = if user.in_group(AUTHENTICATED) {
            DISCOVERY_URLS
        } else if user.in_group(UNAUTHENTICATED) {
            PUBLIC_URLS
        } else {
            &[]
        };
        if defaults.iter().any(|u| url_matches(u, path)) {
            return Decision::Allow("default discovery roles".into());
        }
    }
    for b in &policy.cluster_role_bindings {
        let subjects = b.subjects.as_deref().unwrap_or_default();
        if b.role_ref.kind != "ClusterRole"
            || !subjects.iter().any(|s| subject_matches(s, user, ""))
        {
            continue;
        }
        if let Some(role) = policy.cluster_role(&b.role_ref.name)
            && rules_allow(role.rules.as_ref(), attrs)
        {
            return Decision::Allow(format!(
                "ClusterRoleBinding {:?} of ClusterRole {:?}",
                b.metadata.name.as_deref().unwrap_or_default(),
                b.role_ref.name
            ));
        }
    }
    let namespace = match attrs {
        Attributes::Resource { namespace, .. } => namespace.as_str(),
        Attributes::NonResource { .. } => "",
    };
    if !namespace.is_empty() {
        for b in &policy.role_bindings {
            if b.metadata.namespace.as_deref() != Some(namespace) {
                continue;
            }
            let subjects = b.subjects.as_deref().unwrap_or_default();
            if !subjects.iter().any(|s| subject_matches(s, user, namespace)) {
                continue;
            }
            let rules = match b.role_ref.kind.as_str() {
                "Role" => policy
                    .role(namespace, &b.role_ref.name)
                    .and_then(|r| r.rules.as_ref()),
                "ClusterRole" => policy
                    .cluster_role(&b.role_ref.name)
                    .and_then(|r| r.rules.as_ref()),
                _ => None,
            };
            if rules_allow(rules, attrs) {
                return Decision::Allow(format!(
                    "RoleBinding {namespace}/{} of {} {:?}",
                    b.metadata.name.as_deref().unwrap_or_default(),
                    b.role_ref.kind,
                    b.role_ref.name
                ));
            }
        }
    }
    Decision::Deny(format!(
        "no rule of any binding of {:?} allows it",
        user.name
    ))
}

/// The real server's text for a denied request (the part after `is forbidden: `).
pub fn forbidden_text(user: &UserInfo, attrs: &Attributes) -> String {
    match attrs {
        Attributes::NonResource { verb, path } => {
            format!("User {:?} cannot {verb} path {path:?}", user.name)
        }
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            namespace,
            ..
        } => {
            let combined = suffixed(resource, '/', subresource);
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {namespace:?}")
            };
            format!(
                "User {:?} cannot {verb} resource {combined:?} in API group {group:?} {scope}",
                user.name
            )
        }
    }
}

/// `resource` with `separator` and `suffix` after it when there is a suffix (`pods/status`,
/// `leases.coordination.k8s.io`), as RBAC rules and the server's messages name resources.
fn suffixed(resource: &str, separator: char, suffix: &str) -> String {
    if suffix.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}{separator}{suffix}")
    }
}

/// The 403 `Forbidden` Status of a denied request.
pub fn forbidden(user: &UserInfo, attrs: &Attributes) -> ApiError {
    let text = forbidden_text(user, attrs);
    match attrs {
        Attributes::NonResource { .. } => {
            ApiError::new(403, "Forbidden", format!("forbidden: {text}")).with_details(json!({}))
        }
        Attributes::Resource {
            group,
            resource,
            name,
            ..
        } => {
            let qualified = suffixed(resource, '.', group);
            let message = if name.is_empty() {
                format!("{qualified} is forbidden: {text}")
            } else {
                format!("{qualified} {name:?} is forbidden: {text}")
            };
            let mut details = json!({"group": group, "kind": resource});
            if !name.is_empty() {
                details["name"] = json!(name);
            }
            ApiError::new(403, "Forbidden", message).with_details(details)
        }
    }
}

/// The 401 Status of a request with a token this emulator did not issue.
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::RoleRef;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyRule {
            api_groups: Some(v(groups)),
            resources: Some(v(resources)),
            verbs: v(verbs),
            resource_names: (!names.is_empty()).then(|| v(names)),
            non_resource_urls: None,
        }
    }

    fn meta(ns: Option<&str>, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: ns.map(Into::into),
            ..Default::default()
        }
    }

    fn sa_subject(ns: &str, name: &str) -> Subject {
        Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(ns.into()),
            api_group: None,
        }
    }

    fn role_ref(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: GROUP.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    /// The gate-like SA bound cluster-wide to `rules`.
    fn cluster_policy(rules: Vec<PolicyRule>) -> Policy {
        Policy {
            cluster_roles: vec![ClusterRole {
                metadata: meta(None, "r"),
                rules: Some(rules),
                aggregation_rule: None,
            }],
            cluster_role_bindings: vec![ClusterRoleBinding {
                metadata: meta(None, "b"),
                role_ref: role_ref("ClusterRole", "r"),
                subjects: Some(vec![sa_subject("sys", "gate")]),
            }],
            ..Default::default()
        }
    }

    fn gate() -> UserInfo {
        UserInfo::service_account("sys", "gate")
    }

    #[test]
    fn verbs_are_allowed_only_as_listed() {
        let p = cluster_policy(vec![rule(
            &["lifecycle.keptn.sh"],
            &["keptnappversions"],
            &["get", "list", "watch", "create", "update", "patch"],
            &[],
        )]);
        for verb in ["get", "list", "watch", "create", "update", "patch"] {
            let a = res(
                verb,
                "lifecycle.keptn.sh",
                "keptnappversions",
                "",
                "ns",
                "x",
            );
            assert!(authorize(&gate(), &a, &p).allowed(), "{verb}");
        }
        for verb in ["delete", "deletecollection"] {
            let a = res(
                verb,
                "lifecycle.keptn.sh",
                "keptnappversions",
                "",
                "ns",
                "x",
            );
            assert!(!authorize(&gate(), &a, &p).allowed(), "{verb}");
        }
        // Another group or another user is not covered.
        let other_group = res("get", "options.keptn.sh", "keptnappversions", "", "ns", "x");
        assert!(!authorize(&gate(), &other_group, &p).allowed());
        let other_user = UserInfo::service_account("sys", "webhook");
        let a = res(
            "get",
            "lifecycle.keptn.sh",
            "keptnappversions",
            "",
            "ns",
            "x",
        );
        assert!(!authorize(&other_user, &a, &p).allowed());
        // Masters bypass every rule.
        assert!(authorize(&UserInfo::admin(), &other_group, &Policy::default()).allowed());
    }

    #[test]
    fn wildcards_match_any_verb_group_and_resource() {
        let p = cluster_policy(vec![rule(&["*"], &["*"], &["*"], &[])]);
        let a = res("deletecollection", "apps", "deployments", "", "", "");
        assert!(authorize(&gate(), &a, &p).allowed());
        // `*` covers subresources too, as on a real server.
        let a = res("update", "apps", "deployments", "scale", "ns", "d");
        assert!(authorize(&gate(), &a, &p).allowed());
    }

    #[test]
    fn resource_names_limit_named_requests_only() {
        let p = cluster_policy(vec![rule(
            &["coordination.k8s.io"],
            &["leases"],
            &[
                "get",
                "list",
                "watch",
                "update",
                "create",
                "delete",
                "deletecollection",
            ],
            &["mine"],
        )]);
        for verb in ["get", "update", "delete"] {
            let named = res(verb, "coordination.k8s.io", "leases", "", "ns", "mine");
            assert!(authorize(&gate(), &named, &p).allowed(), "{verb} mine");
            let other = res(verb, "coordination.k8s.io", "leases", "", "ns", "theirs");
            assert!(!authorize(&gate(), &other, &p).allowed(), "{verb} theirs");
        }
        for verb in ["list", "watch", "create", "deletecollection"] {
            let unnamed = res(verb, "coordination.k8s.io", "leases", "", "ns", "");
            assert!(!authorize(&gate(), &unnamed, &p).allowed(), "{verb}");
        }
        // A list filtered to the one name is authorized as that name.
        let a = Attributes::from_request(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/ns/leases",
            true,
            Some("metadata.name=mine"),
        );
        assert!(authorize(&gate(), &a, &p).allowed());
    }

    #[test]
    fn subresources_need_their_own_rule() {
        let p = cluster_policy(vec![
            rule(&[""], &["pods"], &["get", "patch"], &[]),
            rule(&[""], &["pods/status"], &["update"], &[]),
            rule(&["apps"], &["*/scale"], &["get"], &[]),
        ]);
        assert!(authorize(&gate(), &res("patch", "", "pods", "", "ns", "p"), &p).allowed());
        assert!(!authorize(&gate(), &res("patch", "", "pods", "status", "ns", "p"), &p).allowed());
        assert!(authorize(&gate(), &res("update", "", "pods", "status", "ns", "p"), &p).allowed());
        assert!(!authorize(&gate(), &res("get", "", "pods", "log", "ns", "p"), &p).allowed());
        let scale = res("get", "apps", "deployments", "scale", "ns", "d");
        assert!(authorize(&gate(), &scale, &p).allowed());
        assert!(
            !authorize(
                &gate(),
                &res("get", "apps", "deployments", "", "ns", "d"),
                &p
            )
            .allowed()
        );
    }

    #[test]
    fn role_binding_to_cluster_role_is_limited_to_its_namespace() {
        let p = Policy {
            cluster_roles: vec![ClusterRole {
                metadata: meta(None, "reader"),
                rules: Some(vec![rule(&[""], &["configmaps"], &["get", "list"], &[])]),
                aggregation_rule: None,
            }],
            roles: vec![Role {
                metadata: meta(Some("b"), "writer"),
                rules: Some(vec![rule(&[""], &["configmaps"], &["create"], &[])]),
            }],
            role_bindings: vec![
                RoleBinding {
                    metadata: meta(Some("a"), "read-a"),
                    role_ref: role_ref("ClusterRole", "reader"),
                    subjects: Some(vec![sa_subject("sys", "gate")]),
                },
                RoleBinding {
                    metadata: meta(Some("b"), "write-b"),
                    role_ref: role_ref("Role", "writer"),
                    // A ServiceAccount subject without a namespace is in the binding's.
                    subjects: Some(vec![Subject {
                        kind: "ServiceAccount".into(),
                        name: "local".into(),
                        namespace: None,
                        api_group: None,
                    }]),
                },
            ],
            ..Default::default()
        };
        assert!(authorize(&gate(), &res("get", "", "configmaps", "", "a", "c"), &p).allowed());
        assert!(authorize(&gate(), &res("list", "", "configmaps", "", "a", ""), &p).allowed());
        assert!(!authorize(&gate(), &res("get", "", "configmaps", "", "b", "c"), &p).allowed());
        // Cluster-wide lists are not granted by a RoleBinding.
        assert!(!authorize(&gate(), &res("list", "", "configmaps", "", "", ""), &p).allowed());
        let local = UserInfo::service_account("b", "local");
        assert!(authorize(&local, &res("create", "", "configmaps", "", "b", ""), &p).allowed());
        assert!(!authorize(&local, &res("create", "", "configmaps", "", "a", ""), &p).allowed());
    }

    #[test]
    fn user_and_group_subjects() {
        let mut p = cluster_policy(vec![rule(&[""], &["nodes"], &["list"], &[])]);
        p.cluster_role_bindings[0].subjects = Some(vec![
            Subject {
                kind: "User".into(),
                name: "alice".into(),
                namespace: None,
                api_group: Some(GROUP.into()),
            },
            Subject {
                kind: "Group".into(),
                name: "system:serviceaccounts:sys".into(),
                namespace: None,
                api_group: Some(GROUP.into()),
            },
        ]);
        let list = res("list", "", "nodes", "", "", "");
        let alice = UserInfo {
            name: "alice".into(),
            groups: vec![AUTHENTICATED.into()],
        };
        assert!(authorize(&alice, &list, &p).allowed());
        assert!(authorize(&UserInfo::service_account("sys", "any"), &list, &p).allowed());
        assert!(!authorize(&UserInfo::service_account("other", "any"), &list, &p).allowed());
    }

    #[test]
    fn verbs_come_from_method_path_and_watch() {
        let v = |m: &str, p: &str, w: bool| match Attributes::from_request(m, p, w, None) {
            Attributes::Resource { verb, .. } => verb,
            Attributes::NonResource { verb, .. } => format!("non-resource {verb}"),
        };
        assert_eq!(v("GET", "/api/v1/namespaces/a/pods/p", false), "get");
        assert_eq!(v("GET", "/api/v1/namespaces/a/pods", false), "list");
        assert_eq!(v("GET", "/api/v1/namespaces/a/pods", true), "watch");
        assert_eq!(v("GET", "/api/v1/watch/namespaces/a/pods", false), "watch");
        assert_eq!(v("POST", "/api/v1/namespaces/a/pods", false), "create");
        assert_eq!(v("PUT", "/api/v1/namespaces/a/pods/p", false), "update");
        assert_eq!(v("PATCH", "/api/v1/namespaces/a/pods/p", false), "patch");
        assert_eq!(v("DELETE", "/api/v1/namespaces/a/pods/p", false), "delete");
        assert_eq!(
            v("DELETE", "/api/v1/namespaces/a/pods", false),
            "deletecollection"
        );
        assert_eq!(v("GET", "/apis/apps/v1", false), "non-resource get");
        let ns = Attributes::from_request("GET", "/api/v1/namespaces/a", false, None);
        assert_eq!(ns, res("get", "", "namespaces", "", "a", "a"));
        let status = Attributes::from_request("PUT", "/api/v1/namespaces/a/status", false, None);
        assert_eq!(status, res("update", "", "namespaces", "status", "a", "a"));
    }

    #[test]
    fn discovery_is_open_to_authenticated_users_only() {
        let p = Policy::default();
        let get = |path: &str| Attributes::NonResource {
            verb: "get".into(),
            path: path.into(),
        };
        for path in [
            "/api",
            "/apis/apps/v1",
            "/openapi/v2",
            "/version",
            "/healthz",
        ] {
            assert!(authorize(&gate(), &get(path), &p).allowed(), "{path}");
        }
        assert!(!authorize(&gate(), &get("/metrics"), &p).allowed());
        let anon = UserInfo::anonymous();
        assert!(authorize(&anon, &get("/healthz"), &p).allowed());
        assert!(!authorize(&anon, &get("/apis"), &p).allowed());
    }

    #[test]
    fn forbidden_messages_have_the_real_shape() {
        let a = res(
            "delete",
            "lifecycle.keptn.sh",
            "keptnappversions",
            "",
            "ns",
            "x",
        );
        let e = forbidden(&UserInfo::service_account("ns", "sa"), &a);
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            "keptnappversions.lifecycle.keptn.sh \"x\" is forbidden: User \"system:serviceaccount:ns:sa\" cannot delete resource \"keptnappversions\" in API group \"lifecycle.keptn.sh\" in the namespace \"ns\""
        );
        let a = res("list", "", "nodes", "", "", "");
        assert_eq!(
            forbidden(&gate(), &a).message,
            "nodes is forbidden: User \"system:serviceaccount:sys:gate\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        );
        let a = res("patch", "", "pods", "status", "ns", "p");
        assert!(
            forbidden(&gate(), &a)
                .message
                .starts_with("pods \"p\" is forbidden: User \"system:serviceaccount:sys:gate\" cannot patch resource \"pods/status\"")
        );
    }

    #[test]
    fn tokens_identify_their_users() {
        let t = Tokens::default();
        let a = t.issue(gate());
        assert_eq!(t.issue(gate()), a);
        let b = t.issue(UserInfo::admin());
        assert_ne!(a, b);
        assert_eq!(t.lookup(&a), Some(gate()));
        assert_eq!(t.lookup(&b), Some(UserInfo::admin()));
        assert_eq!(t.lookup("nope"), None);
    }
}
