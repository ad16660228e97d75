//! Discovery (`/version`, `/api`, `/apis`, resource lists — FIDELITY F1) and the OpenAPI
//! documents kubectl reads before it writes (`/openapi/v2`, `/openapi/v3` — F3).
//!
//! `/api` and `/apis` answer in the aggregated format (`apidiscovery.k8s.io/v2`) when the client
//! asks for it, as kubectl 1.32 does first, and in the legacy format otherwise (kube-rs).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::resources::{Registry, ResourceInfo};

/// `/version`: a 1.32 server.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-kubesim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`.
pub fn core_versions(server: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}]})
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = vs.first().cloned().unwrap_or(json!({}));
    json!({"name": group, "versions": vs, "preferredVersion": preferred})
}

/// `/apis`.
pub fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub fn group(reg: &Registry, name: &str) -> Option<Value> {
    reg.groups().iter().find(|(g, _)| g == name).map(|(g, vs)| {
        let mut e = group_entry(g, vs);
        e["kind"] = json!("APIGroup");
        e["apiVersion"] = json!("v1");
        e
    })
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `/api/v1` or `/apis/{group}/{version}`: resources with kinds, verbs, scope, short names,
/// categories, and their subresources.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let infos: Vec<&std::sync::Arc<ResourceInfo>> = reg
        .all()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if infos.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in infos {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        resources.push(e);
        if r.status {
            resources.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if r.scale.is_some() {
            resources.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
        for sub in &r.extra_subresources {
            let (kind, verbs) = match sub.as_str() {
                "binding" => ("Binding", json!(["create"])),
                "eviction" => ("Eviction", json!(["create"])),
                "log" => ("Pod", json!(["get"])),
                "finalize" => ("Namespace", json!(["update"])),
                "ephemeralcontainers" => ("Pod", json!(["get", "patch", "update"])),
                _ => ("PodProxyOptions", json!(["create", "get"])),
            };
            resources.push(json!({"name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs}));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// One group/version's OpenAPI v3 document: paths whose PATCH operations declare the
/// `fieldValidation` parameter (so kubectl uses server-side field validation) and the media types
/// accepted. Strategic merge is deliberately not listed, so kubectl computes its client-side apply
/// patch from its compiled-in types rather than from schemas this document does not carry.
pub fn openapi_v3_group(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let infos: Vec<&std::sync::Arc<ResourceInfo>> = reg
        .all()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if infos.is_empty() {
        return None;
    }
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let params = json!([
        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
    ]);
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for r in infos {
        let item = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let schema_name = format!(
            "{}.{}.{}",
            if r.group.is_empty() { "core" } else { &r.group },
            r.version,
            r.kind
        );
        let reference = json!({"$ref": format!("#/components/schemas/{schema_name}")});
        let mut content = serde_json::Map::new();
        for mt in [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ] {
            content.insert(mt.into(), json!({"schema": {"type": "object"}}));
        }
        let op = |action: &str, body: Value| {
            json!({
                "operationId": format!("{action}{}", r.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "requestBody": body,
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
            })
        };
        paths.insert(
            item,
            json!({
                "get": {"operationId": format!("read{}", r.kind), "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk,
                        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}}},
                "put": op("put", json!({"content": {"application/json": {"schema": reference}}, "required": true})),
                "patch": op("patch", json!({"content": content, "required": true})),
            }),
        );
        let mut schema = r.schema().cloned().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(schema_name, schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `/openapi/v3`: the index of group/version documents with content hashes.
pub fn openapi_v3_index(reg: &Registry) -> Value {
    let mut gvs: Vec<(String, String)> = reg
        .all()
        .map(|r| (r.group.clone(), r.version.clone()))
        .collect();
    gvs.dedup();
    gvs.sort();
    gvs.dedup();
    let mut paths = serde_json::Map::new();
    for (g, v) in gvs {
        let doc = openapi_v3_group(reg, &g, &v).unwrap_or(Value::Null);
        let hash = Sha256::digest(doc.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>();
        let path = gv_path(&g, &v);
        paths.insert(path.clone(), json!({"serverRelativeURL": format!("/openapi/{}?hash={hash}", format_args!("v3/{path}"))}));
    }
    json!({"paths": paths})
}

/// `/openapi/v2` (JSON only): definitions for every served kind.
pub fn openapi_v2(reg: &Registry) -> Value {
    let mut defs = serde_json::Map::new();
    for r in reg.all() {
        let name = format!(
            "{}.{}.{}",
            if r.group.is_empty() { "core" } else { &r.group },
            r.version,
            r.kind
        );
        defs.insert(
            name,
            json!({"type": "object", "x-kubernetes-group-version-kind": [{"group": r.group, "version": r.version, "kind": r.kind}]}),
        );
    }
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": {}, "definitions": defs})
}

/// Media type of aggregated discovery (`apidiscovery.k8s.io/v2`), which kubectl 1.32 asks for first.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn subresource_entries(r: &ResourceInfo) -> Vec<Value> {
    let gvk = |g: &str, v: &str, k: &str| json!({"group": g, "version": v, "kind": k});
    let mut subs = Vec::new();
    if r.status {
        subs.push(json!({"subresource": "status", "responseKind": gvk(&r.group, &r.version, &r.kind), "verbs": ["get", "patch", "update"]}));
    }
    if r.scale.is_some() {
        subs.push(json!({"subresource": "scale", "responseKind": gvk("autoscaling", "v1", "Scale"), "verbs": ["get", "patch", "update"]}));
    }
    for sub in &r.extra_subresources {
        let (kind, verbs) = match sub.as_str() {
            "binding" => ("Binding", json!(["create"])),
            "eviction" => ("Eviction", json!(["create"])),
            "log" => ("Pod", json!(["get"])),
            "finalize" => ("Namespace", json!(["update"])),
            "ephemeralcontainers" => ("Pod", json!(["get", "patch", "update"])),
            _ => ("PodProxyOptions", json!(["create", "get"])),
        };
        let group = if matches!(kind, "Eviction") {
            "policy"
        } else {
            ""
        };
        subs.push(
            json!({"subresource": sub, "responseKind": gvk(group, "v1", kind), "verbs": verbs}),
        );
    }
    subs
}

fn aggregated_group(reg: &Registry, group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = reg
                .all()
                .filter(|r| r.group == group && &r.version == v)
                .map(|r| {
                    json!({
                        "resource": r.plural,
                        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": VERBS,
                        "shortNames": r.short_names,
                        "categories": r.categories,
                        "subresources": subresource_entries(r),
                    })
                })
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let metadata = if group.is_empty() {
        json!({"creationTimestamp": null})
    } else {
        json!({"name": group, "creationTimestamp": null})
    };
    json!({"metadata": metadata, "versions": versions})
}

/// `/api` (`core`) or `/apis` in the aggregated format: every resource of every group at once.
pub fn aggregated(reg: &Registry, core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group(reg, "", &["v1".to_string()])]
    } else {
        reg.groups()
            .iter()
            .map(|(g, vs)| aggregated_group(reg, g, vs))
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}
