//! The HTTP face of the emulator: path routing, query parameters, media types, lists and watches,
//! subresources. Every failure is a `Status` object (FIDELITY F4).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use crate::api::{
    ApiState, DeleteOptions, FieldValidation, Part, PatchType, Propagation, WriteOptions, meta_str,
    present,
};
use crate::discovery;
use crate::glue;
use crate::resources::ResourceInfo;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Change, EventType};

/// Shared by every request handler.
#[derive(Clone)]
pub struct App {
    pub state: Arc<ApiState>,
    pub shutdown: watch::Receiver<bool>,
    pub server_address: String,
    /// Test-controlled failures (`faults` module).
    pub faults: Arc<crate::faults::Faults>,
    /// Bearer tokens and whether RBAC is enforced (`rbac` module).
    pub auth: Arc<Auth>,
}

/// Authentication and authorization settings of one server.
#[derive(Debug, Default)]
pub struct Auth {
    /// Enforce RBAC; off, every request (with or without a token) is allowed.
    pub rbac: bool,
    pub tokens: crate::rbac::Tokens,
    /// The message of every 403 this server answered (tests assert none, or which).
    pub denials: std::sync::Mutex<Vec<String>>,
}

tokio::task_local! {
    /// The user of the request being served (admission requests carry it as `userInfo`).
    pub static REQUEST_USER: crate::rbac::UserInfo;
}

/// Where a ServiceAccount kubeconfig's server URL carries its token: kubectl (client-go) sends no
/// bearer token over plain HTTP, so the token also travels in the path
/// (`/kubesim/token/<token>/api/...`).
pub const TOKEN_PATH_PREFIX: &str = "/kubesim/token/";

/// The request path without a [`TOKEN_PATH_PREFIX`], and the token it carried.
fn split_token_prefix(path: &str) -> (String, Option<String>) {
    if let Some(rest) = path.strip_prefix(TOKEN_PATH_PREFIX) {
        let (token, tail) = rest.split_once('/').unwrap_or((rest, ""));
        return (format!("/{tail}"), Some(token.to_string()));
    }
    (path.to_string(), None)
}

/// Who sent a request: `Err` (401) for a bearer token this server never issued.
fn authenticate(
    auth: &Auth,
    headers: &HeaderMap,
    path_token: Option<&str>,
) -> Result<crate::rbac::UserInfo, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .or(path_token);
    match token {
        Some(t) => auth.tokens.lookup(t).ok_or_else(crate::rbac::unauthorized),
        None if auth.rbac => Ok(crate::rbac::UserInfo::anonymous()),
        None => Ok(crate::rbac::UserInfo::admin()),
    }
}

/// The 403 of a request RBAC does not allow; `None` when allowed or RBAC is off.
fn authorize(
    app: &App,
    user: &crate::rbac::UserInfo,
    method: &Method,
    path: &str,
    params: &Params,
) -> Option<ApiError> {
    if !app.auth.rbac || user.groups.iter().any(|g| g == crate::rbac::MASTERS) {
        return None;
    }
    let attrs = crate::rbac::Attributes::from_request(
        method.as_str(),
        path,
        flag(params, "watch"),
        params.get("fieldSelector").map(String::as_str),
    );
    let policy = match app.state.read_store() {
        Ok(store) => crate::rbac::Policy::from_store(&store),
        Err(e) => return Some(e),
    };
    match crate::rbac::authorize(user, &attrs, &policy) {
        crate::rbac::Decision::Allow(_) => None,
        crate::rbac::Decision::Deny(why) => {
            tracing::info!(user = %user.name, ?attrs, %why, "forbidden");
            let e = crate::rbac::forbidden(user, &attrs);
            match app.auth.denials.lock() {
                Ok(mut d) => d.push(e.message.clone()),
                Err(p) => p.into_inner().push(e.message.clone()),
            }
            Some(e)
        }
    }
}

/// The axum application: one fallback handler that routes Kubernetes paths itself.
pub fn router(app: App) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(app)
}

type Params = HashMap<String, String>;

/// How the client wants objects rendered (`Accept`).
#[derive(Debug, Clone, PartialEq)]
enum Render {
    Json,
    Table { include_object: String },
    Metadata,
}

fn render_mode(headers: &HeaderMap, params: &Params) -> Result<Render, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("as=Table") {
        let include = params
            .get("includeObject")
            .cloned()
            .unwrap_or_else(|| "Metadata".into());
        return Ok(Render::Table {
            include_object: include,
        });
    }
    if accept.contains("as=PartialObjectMetadata") {
        return Ok(Render::Metadata);
    }
    if !accept.is_empty()
        && !accept.contains("json")
        && !accept.contains("*/*")
        && !accept.contains("yaml")
        && accept.contains("protobuf")
    {
        return Err(ApiError::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json (kubesim serves JSON only)",
        ));
    }
    Ok(Render::Json)
}

/// A JSON response with `Warning` headers.
fn respond(code: u16, body: &Value, warnings: &[String]) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        let text = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// Whether the client asked for aggregated discovery v2 (kubectl 1.32 does, with legacy JSON as
/// its fallback).
fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',').any(|t| {
                let t = t.replace(' ', "");
                t.contains("g=apidiscovery.k8s.io")
                    && t.contains("v=v2")
                    && !t.contains("v=v2beta1")
                    && t.contains("as=APIGroupDiscoveryList")
            })
        })
}

/// A 200 JSON response with a specific content type.
fn respond_as(body: &Value, content_type: &'static str) -> Response {
    let mut resp = respond(200, body, &[]);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn error_response(e: &ApiError) -> Response {
    respond(e.code, &e.to_status(), &[])
}

async fn handle(State(app): State<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let params: Params = Query::<Params>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let bytes = match axum::body::to_bytes(body, app.state.settings.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return error_response(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!(
                    "Request entity too large: limit is {}",
                    app.state.settings.max_body_bytes
                ),
            ));
        }
    };
    let (path, path_token) = split_token_prefix(parts.uri.path());
    tracing::debug!(method = %parts.method, %path, "request");
    if path == "/kubesim/faults" || path.starts_with("/kubesim/faults/") {
        return faults_admin(&app, &parts.method, &path, &bytes);
    }
    let user = match authenticate(&app.auth, &parts.headers, path_token.as_deref()) {
        Ok(u) => u,
        Err(e) => return error_response(&e),
    };
    if let Some(e) = authorize(&app, &user, &parts.method, &path, &params) {
        return error_response(&e);
    }
    let injection =
        crate::faults::RequestInfo::parse(parts.method.as_str(), &path, flag(&params, "watch"))
            .and_then(|r| app.faults.check(&r));
    if let Some(i) = &injection
        && !i.after_commit
    {
        return error_response(&i.error);
    }
    let served = REQUEST_USER.scope(
        user,
        route(&app, &parts.method, &path, &parts.headers, &params, bytes),
    );
    let resp = match served.await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    match injection {
        Some(i) => error_response(&i.error),
        None => resp,
    }
}

/// The admin endpoint of the `faults` module (for the `kubesim` binary).
fn faults_admin(app: &App, method: &Method, path: &str, body: &[u8]) -> Response {
    match (method, path) {
        (&Method::GET, "/kubesim/faults") => respond(200, &app.faults.summary(), &[]),
        (&Method::DELETE, "/kubesim/faults") => {
            app.faults.clear();
            respond(200, &app.faults.summary(), &[])
        }
        (&Method::POST, "/kubesim/faults") => {
            match serde_json::from_slice::<crate::faults::FaultRule>(body) {
                Ok(rule) => {
                    app.faults.add(rule);
                    respond(201, &app.faults.summary(), &[])
                }
                Err(e) => error_response(&ApiError::bad_request(format!("fault rule: {e}"))),
            }
        }
        (&Method::POST, "/kubesim/faults/close-watches") => {
            app.faults.close_watches();
            respond(200, &app.faults.summary(), &[])
        }
        _ => error_response(&not_found_path()),
    }
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
    .with_details(json!({}))
}

async fn route(
    app: &App,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    params: &Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let state = &app.state;
    match segs.as_slice() {
        [] => Ok(respond(
            200,
            &json!({"paths": ["/api", "/api/v1", "/apis", "/openapi/v2", "/openapi/v3", "/version", "/healthz", "/readyz", "/livez"]}),
            &[],
        )),
        ["version"] => Ok(respond(200, &discovery::version(), &[])),
        ["healthz" | "readyz" | "livez", ..] => Ok((StatusCode::OK, "ok").into_response()),
        ["api"] if wants_aggregated(headers) => Ok(respond_as(
            &discovery::aggregated(&*state.registry()?, true),
            discovery::AGGREGATED_V2,
        )),
        ["apis"] if wants_aggregated(headers) => Ok(respond_as(
            &discovery::aggregated(&*state.registry()?, false),
            discovery::AGGREGATED_V2,
        )),
        ["api"] => Ok(respond(
            200,
            &discovery::core_versions(&app.server_address),
            &[],
        )),
        ["apis"] => Ok(respond(
            200,
            &discovery::group_list(&*state.registry()?),
            &[],
        )),
        ["apis", group] => discovery::group(&*state.registry()?, group)
            .map(|v| respond(200, &v, &[]))
            .ok_or_else(not_found_path),
        ["openapi", "v2"] => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept.contains("protobuf") && !accept.contains("json") {
                return Err(ApiError::new(
                    406,
                    "NotAcceptable",
                    "kubesim serves /openapi/v2 as application/json only",
                ));
            }
            Ok(respond(
                200,
                &discovery::openapi_v2(&*state.registry()?),
                &[],
            ))
        }
        ["openapi", "v3"] => Ok(respond(
            200,
            &discovery::openapi_v3_index(&*state.registry()?),
            &[],
        )),
        ["openapi", "v3", "api", version] => {
            discovery::openapi_v3_group(&*state.registry()?, "", version)
                .map(|v| respond(200, &v, &[]))
                .ok_or_else(not_found_path)
        }
        ["openapi", "v3", "apis", group, version] => {
            discovery::openapi_v3_group(&*state.registry()?, group, version)
                .map(|v| respond(200, &v, &[]))
                .ok_or_else(not_found_path)
        }
        ["api", version] => discovery::resource_list(&*state.registry()?, "", version)
            .map(|v| respond(200, &v, &[]))
            .ok_or_else(not_found_path),
        ["apis", group, version] => discovery::resource_list(&*state.registry()?, group, version)
            .map(|v| respond(200, &v, &[]))
            .ok_or_else(not_found_path),
        ["api", version, rest @ ..] => {
            resource(app, method, "", version, rest, headers, params, body).await
        }
        ["apis", group, version, rest @ ..] => {
            resource(app, method, group, version, rest, headers, params, body).await
        }
        _ => Err(not_found_path()),
    }
}

/// The request target below a group/version.
struct Target {
    info: Arc<ResourceInfo>,
    namespace: String,
    /// A namespaced collection read across namespaces.
    all_namespaces: bool,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(
    state: &ApiState,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Target, ApiError> {
    let namespaced_path = rest.first() == Some(&"namespaces")
        && rest.len() >= 3
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    if namespaced_path {
        if rest.len() > 5 {
            return Err(not_found_path());
        }
        let info = state.resolve(group, version, rest[2])?;
        if !info.namespaced {
            return Err(not_found_path());
        }
        return Ok(Target {
            info,
            namespace: rest[1].to_string(),
            all_namespaces: false,
            name: rest.get(3).map(|s| s.to_string()),
            sub: rest.get(4).map(|s| s.to_string()),
        });
    }
    if rest.is_empty() || rest.len() > 3 {
        return Err(not_found_path());
    }
    let info = state.resolve(group, version, rest[0])?;
    if info.namespaced && rest.len() > 1 {
        return Err(not_found_path());
    }
    Ok(Target {
        all_namespaces: info.namespaced,
        info,
        namespace: String::new(),
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    })
}

fn flag(params: &Params, key: &str) -> bool {
    params.get(key).is_some_and(|v| v == "true" || v == "1")
}

fn write_options(params: &Params, headers: &HeaderMap) -> Result<WriteOptions, ApiError> {
    let dry_run = match params.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
            )));
        }
    };
    let field_validation = match params.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            )));
        }
    };
    Ok(WriteOptions {
        dry_run,
        field_manager: params
            .get("fieldManager")
            .filter(|s| !s.is_empty())
            .cloned(),
        field_validation,
        force: flag(params, "force"),
        // Without `fieldManager` the API server names the manager after the User-Agent.
        default_manager: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|m| !m.trim().is_empty())
            .unwrap_or("unknown")
            .chars()
            .take(128)
            .collect(),
    })
}

fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.contains("protobuf") || ct.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (kubesim does not decode {ct}; kubectl's typed generators such as `kubectl create configmap` send protobuf: use `kubectl create -f` or `kubectl apply -f`)"
            ),
        ));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    if ct.contains("yaml") {
        serde_yaml::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })
    }
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    app: &App,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    headers: &HeaderMap,
    params: &Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (rest, legacy_watch) = match rest.first() {
        Some(&"watch") => (&rest[1..], true),
        _ => (rest, false),
    };
    let state = &app.state;
    let t = parse_target(state, group, version, rest)?;
    let info = t.info.clone();
    let ns = t.namespace.as_str();
    match (t.name.as_deref(), t.sub.as_deref()) {
        (None, _) => match *method {
            Method::GET => {
                let render = render_mode(headers, params)?;
                if legacy_watch || flag(params, "watch") {
                    watch_stream(
                        app,
                        &info,
                        (!t.all_namespaces).then_some(ns),
                        params,
                        render,
                    )
                } else {
                    list(
                        state,
                        &info,
                        (!t.all_namespaces).then_some(ns),
                        params,
                        render,
                    )
                }
            }
            Method::POST if !t.all_namespaces => {
                let obj = decode_body(headers, &body)?;
                let w = state
                    .create(&info, ns, obj, &write_options(params, headers)?)
                    .await?;
                Ok(respond(
                    if write_options(params, headers)?.dry_run {
                        200
                    } else {
                        201
                    },
                    &w.object,
                    &w.warnings,
                ))
            }
            Method::DELETE => {
                delete_collection(
                    state,
                    &info,
                    (!t.all_namespaces).then_some(ns),
                    params,
                    headers,
                    &body,
                )
                .await
            }
            _ => Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method})"
            ))),
        },
        (Some(name), None) => match *method {
            Method::GET => {
                let render = render_mode(headers, params)?;
                if legacy_watch {
                    let mut p = params.clone();
                    p.insert("fieldSelector".into(), format!("metadata.name={name}"));
                    return watch_stream(app, &info, Some(ns), &p, render);
                }
                let obj = state.get(&info, ns, name)?;
                Ok(respond(200, &render_one(&info, obj, &render), &[]))
            }
            Method::PUT => {
                let obj = decode_body(headers, &body)?;
                let w = state
                    .update(
                        &info,
                        ns,
                        name,
                        obj,
                        Part::Main,
                        &write_options(params, headers)?,
                    )
                    .await?;
                Ok(respond(200, &w.object, &w.warnings))
            }
            Method::PATCH => {
                patch(state, &info, ns, name, Part::Main, headers, params, &body).await
            }
            Method::DELETE => {
                let opts = delete_options(params, headers, &body)?;
                let obj = state.delete(&info, ns, name, &opts).await?;
                Ok(respond(200, &obj, &[]))
            }
            _ => Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method})"
            ))),
        },
        (Some(name), Some(sub)) => {
            subresource(state, &info, ns, name, sub, method, headers, params, &body).await
        }
    }
}

fn patch_type(headers: &HeaderMap) -> Result<PatchType, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base = ct.split(';').next().unwrap_or("").trim();
    match base {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        _ => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"
            ),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
async fn patch(
    state: &ApiState,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    part: Part,
    headers: &HeaderMap,
    params: &Params,
    body: &[u8],
) -> Result<Response, ApiError> {
    let ptype = patch_type(headers)?;
    let opts = write_options(params, headers)?;
    let w = state
        .patch(info, ns, name, ptype, body, part, &opts)
        .await?;
    Ok(respond(
        if w.created && !opts.dry_run { 201 } else { 200 },
        &w.object,
        &w.warnings,
    ))
}

fn delete_options(
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<DeleteOptions, ApiError> {
    let from_body = if body.iter().any(|b| !b.is_ascii_whitespace()) {
        decode_body(headers, body)?
    } else {
        json!({})
    };
    let get = |k: &str| -> Option<String> {
        params.get(k).cloned().or_else(|| match from_body.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(String::from),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    };
    let dry_run = match get("dryRun").as_deref() {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
            )));
        }
    };
    let mut propagation = match get("propagationPolicy").as_deref() {
        None | Some("") => None,
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    if propagation.is_none() && get("orphanDependents").as_deref() == Some("true") {
        propagation = Some(Propagation::Orphan);
    }
    Ok(DeleteOptions {
        dry_run,
        propagation,
        precondition_uid: from_body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        grace_period: match get("gracePeriodSeconds") {
            None => None,
            Some(g) => Some(g.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("gracePeriodSeconds: invalid value {g:?}"))
            })?),
        },
        precondition_rv: from_body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from),
    })
}

struct Selection {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Selection {
    fn parse(info: &ResourceInfo, params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            labels: LabelSelector::parse(
                params
                    .get("labelSelector")
                    .map(String::as_str)
                    .unwrap_or(""),
            )?,
            fields: FieldSelector::parse(
                params
                    .get("fieldSelector")
                    .map(String::as_str)
                    .unwrap_or(""),
                &info.field_labels,
            )?,
        })
    }

    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

fn metadata_only(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

fn render_one(info: &ResourceInfo, obj: Value, render: &Render) -> Value {
    match render {
        Render::Json => obj,
        Render::Metadata => metadata_only(&obj),
        Render::Table { include_object } => {
            let mut t = glue::table(
                info,
                std::slice::from_ref(&obj),
                include_object,
                jiff::Timestamp::now(),
            );
            t["metadata"] = json!({"resourceVersion": meta_str(&obj, "resourceVersion")});
            t
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    start: String,
}

fn list(
    state: &ApiState,
    info: &ResourceInfo,
    ns: Option<&str>,
    params: &Params,
    render: Render,
) -> Result<Response, ApiError> {
    let sel = Selection::parse(info, params)?;
    let limit: usize = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let after = match params.get("continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
            let tok: ContinueToken = serde_json::from_slice(&raw)
                .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
            Some(tok)
        }
    };
    let (items, rv, more) = {
        let store = state.read_store()?;
        let current = store.current_rv();
        if let Some(rv) = params
            .get("resourceVersion")
            .filter(|r| !r.is_empty() && *r != "0")
        {
            let n: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
            match params.get("resourceVersionMatch").map(String::as_str) {
                Some("Exact") if n != current => {
                    return Err(ApiError::expired(format!(
                        "The resourceVersion for the provided list is too old (kubesim serves only the latest state; asked for {n}, current {current})"
                    )));
                }
                _ if n > current => {
                    return Err(ApiError::new(504, "Timeout", format!("Too large resource version: {n}, current: {current}"))
                        .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1})));
                }
                _ => {}
            }
        }
        let mut items = Vec::new();
        let mut more = None;
        for obj in store.list(&info.storage, ns) {
            let key = format!("{}/{}", meta_str(obj, "namespace"), meta_str(obj, "name"));
            if after.as_ref().is_some_and(|a| key <= a.start) {
                continue;
            }
            if !sel.matches(obj) {
                continue;
            }
            if items.len() == limit {
                more = Some(
                    items
                        .last()
                        .map(|o: &Value| {
                            format!("{}/{}", meta_str(o, "namespace"), meta_str(o, "name"))
                        })
                        .unwrap_or_default(),
                );
                break;
            }
            items.push(present(info, obj));
        }
        (items, after.as_ref().map(|a| a.rv).unwrap_or(current), more)
    };
    let mut list_meta = json!({"resourceVersion": rv.to_string()});
    if let Some(start) = more {
        let tok = serde_json::to_vec(&ContinueToken { rv, start }).unwrap_or_default();
        list_meta["continue"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tok));
    }
    let body = match render {
        Render::Json => {
            json!({"kind": info.list_kind, "apiVersion": info.api_version(), "metadata": list_meta, "items": items})
        }
        Render::Metadata => {
            let items: Vec<Value> = items.iter().map(metadata_only).collect();
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "items": items})
        }
        Render::Table { include_object } => {
            let mut t = glue::table(info, &items, &include_object, jiff::Timestamp::now());
            t["metadata"] = list_meta;
            t
        }
    };
    Ok(respond(200, &body, &[]))
}

async fn delete_collection(
    state: &ApiState,
    info: &ResourceInfo,
    ns: Option<&str>,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let sel = Selection::parse(info, params)?;
    let opts = delete_options(params, headers, body)?;
    let targets: Vec<(String, String)> = {
        let store = state.read_store()?;
        store
            .list(&info.storage, ns)
            .into_iter()
            .filter(|o| sel.matches(o))
            .map(|o| {
                (
                    meta_str(o, "namespace").to_string(),
                    meta_str(o, "name").to_string(),
                )
            })
            .collect()
    };
    let mut items = Vec::new();
    for (ns, name) in targets {
        match state.delete(info, &ns, &name, &opts).await {
            Ok(o) => items.push(o),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rv = state.read_store()?.current_rv();
    Ok(respond(
        200,
        &json!({"kind": info.list_kind, "apiVersion": info.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
        &[],
    ))
}

/// Dotted path (`.spec.replicas`) → JSON pointer.
fn pointer_of(path: &str) -> String {
    path.trim_start_matches('.')
        .split('.')
        .fold(String::new(), |acc, s| format!("{acc}/{s}"))
}

/// A merge patch setting one dotted path.
fn merge_patch_at(path: &str, value: Value) -> Value {
    path.trim_start_matches('.')
        .rsplit('.')
        .fold(value, |acc, seg| json!({ seg: acc }))
}

/// The `autoscaling/v1` Scale of an object with a scale subresource.
pub(crate) fn scale_of(info: &ResourceInfo, obj: &Value) -> Result<Value, ApiError> {
    let paths = info.scale.as_ref().ok_or_else(not_found_path)?;
    let spec = obj
        .pointer(&pointer_of(&paths.spec_replicas))
        .cloned()
        .unwrap_or(json!(0));
    let status = obj
        .pointer(&pointer_of(&paths.status_replicas))
        .cloned()
        .unwrap_or(json!(0));
    let selector = match &paths.label_selector {
        Some(p) => obj
            .pointer(&pointer_of(p))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        None => obj
            .pointer("/spec/selector")
            .map(LabelSelector::from_object)
            .transpose()?
            .map(|s| s.to_selector_string())
            .unwrap_or_default(),
    };
    let m = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut status_obj = json!({"replicas": status});
    if !selector.is_empty() {
        status_obj["selector"] = json!(selector);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": m.get("name"), "namespace": m.get("namespace"), "uid": m.get("uid"), "resourceVersion": m.get("resourceVersion"), "creationTimestamp": m.get("creationTimestamp")},
        "spec": {"replicas": spec},
        "status": status_obj,
    }))
}

#[allow(clippy::too_many_arguments)]
async fn subresource(
    state: &ApiState,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    sub: &str,
    method: &Method,
    headers: &HeaderMap,
    params: &Params,
    body: &[u8],
) -> Result<Response, ApiError> {
    match (sub, method) {
        ("status", m) if info.status => match *m {
            Method::GET => Ok(respond(200, &state.get(info, ns, name)?, &[])),
            Method::PUT => {
                let obj = decode_body(headers, body)?;
                let w = state
                    .update(
                        info,
                        ns,
                        name,
                        obj,
                        Part::Status,
                        &write_options(params, headers)?,
                    )
                    .await?;
                Ok(respond(200, &w.object, &w.warnings))
            }
            Method::PATCH => {
                patch(state, info, ns, name, Part::Status, headers, params, body).await
            }
            _ => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
        },
        ("scale", m) if info.scale.is_some() => {
            let paths = info.scale.clone().ok_or_else(not_found_path)?;
            let current = state.get(info, ns, name)?;
            let scale = scale_of(info, &current)?;
            let replicas = match *m {
                Method::GET => return Ok(respond(200, &scale, &[])),
                Method::PUT => {
                    let s = decode_body(headers, body)?;
                    let rv = meta_str(&s, "resourceVersion");
                    if !rv.is_empty() && rv != meta_str(&current, "resourceVersion") {
                        return Err(ApiError::conflict(&info.group, &info.plural, name));
                    }
                    s.pointer("/spec/replicas").cloned()
                }
                Method::PATCH => {
                    let patched = match patch_type(headers)? {
                        PatchType::Json => glue::json_patch(&scale, body)?,
                        PatchType::Merge | PatchType::Strategic => glue::merge_patch(&scale, body)?,
                        PatchType::Apply => {
                            return Err(ApiError::not_implemented(
                                "server-side apply on the scale subresource",
                            ));
                        }
                    };
                    let rv = meta_str(&patched, "resourceVersion");
                    if !rv.is_empty() && rv != meta_str(&current, "resourceVersion") {
                        return Err(ApiError::conflict(&info.group, &info.plural, name));
                    }
                    patched.pointer("/spec/replicas").cloned()
                }
                _ => {
                    return Err(ApiError::method_not_allowed(
                        "the server does not allow this method on the requested resource",
                    ));
                }
            };
            let replicas = replicas.unwrap_or(Value::Null);
            if replicas.as_i64().is_none_or(|n| n < 0) {
                return Err(ApiError::invalid(
                    "autoscaling",
                    "Scale",
                    name,
                    &[crate::status::FieldError::invalid(
                        "spec.replicas",
                        replicas,
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let p = merge_patch_at(&paths.spec_replicas, replicas).to_string();
            let w = state
                .patch(
                    info,
                    ns,
                    name,
                    PatchType::Merge,
                    p.as_bytes(),
                    Part::Scale,
                    &write_options(params, headers)?,
                )
                .await?;
            Ok(respond(200, &scale_of(info, &w.object)?, &w.warnings))
        }
        ("binding", &Method::POST) if info.storage == "/pods" => {
            bind(state, info, ns, name, headers, body)
        }
        ("finalize", &Method::PUT) if info.storage == crate::api::NAMESPACES => {
            let obj = decode_body(headers, body)?;
            let current = state
                .read_store()?
                .get(&info.storage, "", name)
                .cloned()
                .ok_or_else(|| ApiError::not_found("", "namespaces", name))?;
            let mut new = current.clone();
            crate::api::set_in(
                &mut new,
                &["spec", "finalizers"],
                obj.pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or(json!([])),
            );
            let stored = commit(state, info, name, &current, new)?;
            Ok(respond(200, &present(info, &stored), &[]))
        }
        ("log", _) if info.storage == "/pods" => Err(ApiError::not_implemented(format!(
            "container logs: pod \"{name}\" runs no containers in the emulator (pods/log is not served)"
        ))),
        (other, _) if info.extra_subresources.iter().any(|s| s == other) => Err(
            ApiError::not_implemented(format!("the {}/{other} subresource", info.plural)),
        ),
        _ => Err(not_found_path()),
    }
}

fn commit(
    state: &ApiState,
    info: &ResourceInfo,
    name: &str,
    current: &Value,
    new: Value,
) -> Result<Value, ApiError> {
    let ns = meta_str(current, "namespace").to_string();
    match state.commit(info, &ns, name, meta_str(current, "resourceVersion"), new) {
        Ok(v) => Ok(v),
        Err(crate::api::WriteFailure::Stale) => {
            Err(ApiError::conflict(&info.group, &info.plural, name))
        }
        Err(crate::api::WriteFailure::Api(e)) => Err(e),
    }
}

/// `pods/{name}/binding`: what the scheduler posts to place a pod on a node.
fn bind(
    state: &ApiState,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let binding = decode_body(headers, body)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            name,
            &[crate::status::FieldError::new(
                crate::status::FieldErrorKind::Required,
                "target.name",
                "",
            )],
        ));
    }
    let current = state
        .read_store()?
        .get(&info.storage, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    if let Some(existing) = current
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{existing}\""
            ),
        ));
    }
    if current
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty())
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} has scheduling gates"
            ),
        ));
    }
    let mut new = current.clone();
    if !crate::api::set_in(&mut new, &["spec", "nodeName"], json!(node)) {
        return Err(ApiError::internal("stored pod has no spec object"));
    }
    let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": crate::api::now()});
    let mut conds: Vec<Value> = new
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
    conds.push(cond);
    crate::api::set_in(&mut new, &["status", "conditions"], json!(conds));
    commit(state, info, name, &current, new)?;
    Ok(respond(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        &[],
    ))
}

// ---------------------------------------------------------------------------------------------
// Watch

struct WatchSpec {
    info: Arc<ResourceInfo>,
    namespace: Option<String>,
    sel: Selection,
    render: Render,
    bookmarks: bool,
    first_table: bool,
}

impl WatchSpec {
    /// The event (if any) a change produces for this watch.
    fn event_for(&mut self, change: &Change) -> Option<Value> {
        if change.storage != self.info.storage {
            return None;
        }
        if self
            .namespace
            .as_deref()
            .is_some_and(|n| n != change.namespace)
        {
            return None;
        }
        let now_matches = self.sel.matches(&change.object);
        let (kind, obj) = match change.kind {
            EventType::Modified => {
                let before = change
                    .previous
                    .as_ref()
                    .is_some_and(|p| self.sel.matches(p));
                match (before, now_matches) {
                    (true, true) => ("MODIFIED", change.object.clone()),
                    (false, true) => ("ADDED", change.object.clone()),
                    (true, false) => {
                        let mut prev = change.previous.clone().unwrap_or(Value::Null);
                        if let Some(m) = prev.get_mut("metadata").and_then(Value::as_object_mut) {
                            m.insert("resourceVersion".into(), json!(change.rv.to_string()));
                        }
                        ("DELETED", prev)
                    }
                    (false, false) => return None,
                }
            }
            k if now_matches => (k.as_str(), change.object.clone()),
            _ => return None,
        };
        Some(self.frame(kind, &obj))
    }

    fn frame(&mut self, kind: &str, stored: &Value) -> Value {
        let shown = present(&self.info, stored);
        let object = match &self.render {
            Render::Table { .. } => {
                let mut t = render_one(&self.info, shown, &self.render);
                if !self.first_table
                    && let Some(m) = t.as_object_mut()
                {
                    m.insert("columnDefinitions".into(), json!([]));
                }
                self.first_table = false;
                t
            }
            r => render_one(&self.info, shown, r),
        };
        json!({"type": kind, "object": object})
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": meta}})
    }
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn watch_stream(
    app: &App,
    info: &Arc<ResourceInfo>,
    ns: Option<&str>,
    params: &Params,
    render: Render,
) -> Result<Response, ApiError> {
    let sel = Selection::parse(info, params)?;
    let bookmarks = flag(params, "allowWatchBookmarks");
    let send_initial = params.get("sendInitialEvents").map(String::as_str);
    let send_initial = match send_initial {
        Some("true") | Some("1") => {
            if params.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan")
                || !bookmarks
            {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "ListOptions",
                    "",
                    &[crate::status::FieldError::new(
                        crate::status::FieldErrorKind::Forbidden,
                        "sendInitialEvents",
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan and allowWatchBookmarks",
                    )],
                ));
            }
            true
        }
        _ => false,
    };
    let rv_param = params.get("resourceVersion").cloned().unwrap_or_default();
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let mut spec = WatchSpec {
        info: info.clone(),
        namespace: ns.map(String::from),
        sel,
        render,
        bookmarks,
        first_table: true,
    };
    let state = app.state.clone();
    let (initial, mut rx, mut last_rv, expired): (
        Vec<Value>,
        broadcast::Receiver<Arc<Change>>,
        u64,
        Option<ApiError>,
    ) = {
        let store = state.read_store()?;
        let rx = store.subscribe();
        let current = store.current_rv();
        let mut initial = Vec::new();
        let mut expired = None;
        let from_state = send_initial || rv_param.is_empty() || rv_param == "0";
        let last;
        if from_state {
            for obj in store.list(&info.storage, ns) {
                if spec.sel.matches(obj) {
                    initial.push(spec.frame("ADDED", obj));
                }
            }
            if send_initial {
                initial.push(spec.bookmark(current, true));
            }
            last = current;
        } else {
            let n: u64 = rv_param.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version: {rv_param}"))
            })?;
            if n < store.compacted_rv() {
                expired = Some(ApiError::expired(format!(
                    "too old resource version: {n} ({})",
                    store.compacted_rv()
                )));
                last = n;
            } else {
                for c in store.changes_since(n) {
                    if let Some(ev) = spec.event_for(&c) {
                        initial.push(ev);
                    }
                }
                last = n.max(current);
            }
        }
        (initial, rx, last, expired)
    };
    let (tx, body_rx) = mpsc::channel::<Bytes>(64);
    let mut shutdown = app.shutdown.clone();
    let mut closer = app.faults.watch_closer();
    let interval = state.settings.bookmark_interval;
    tokio::spawn(async move {
        if let Some(e) = expired {
            let _ = tx
                .send(line(&json!({"type": "ERROR", "object": e.to_status()})))
                .await;
            return;
        }
        for ev in initial {
            if tx.send(line(&ev)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = shutdown.changed() => return,
                _ = closer.changed() => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if spec.bookmarks => {
                    // Everything up to `current` has been broadcast; drain it before promising it.
                    let current = match state.read_store() { Ok(s) => s.current_rv(), Err(_) => return };
                    loop {
                        match rx.try_recv() {
                            Ok(c) => {
                                if c.rv > last_rv {
                                    last_rv = c.rv;
                                    if let Some(ev) = spec.event_for(&c) && tx.send(line(&ev)).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(broadcast::error::TryRecvError::Empty) => break,
                            Err(_) => {
                                let _ = tx.send(line(&json!({"type": "ERROR", "object": ApiError::expired("watch fell behind; too old resource version").to_status()}))).await;
                                return;
                            }
                        }
                    }
                    last_rv = last_rv.max(current);
                    if tx.send(line(&spec.bookmark(last_rv, false))).await.is_err() {
                        return;
                    }
                }
                msg = rx.recv() => match msg {
                    Ok(c) => {
                        if c.rv <= last_rv {
                            continue;
                        }
                        last_rv = c.rv;
                        if let Some(ev) = spec.event_for(&c) && tx.send(line(&ev)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(line(&json!({"type": "ERROR", "object": ApiError::expired("watch fell behind; too old resource version").to_status()}))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(body_rx).map(Ok::<Bytes, Infallible>);
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_paths() {
        assert_eq!(
            merge_patch_at(".spec.replicas", json!(3)),
            json!({"spec": {"replicas": 3}})
        );
        assert_eq!(pointer_of(".status.replicas"), "/status/replicas");
    }
}
