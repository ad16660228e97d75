//! One webhook call (F15, F16, F18): the `AdmissionReview` v1 request over HTTPS with the
//! `caBundle` as the only trust root and the service's DNS name checked against the certificate,
//! and the verification of the response. Error texts follow those of a real server (a Go client),
//! e.g. `failed to call webhook: Post "https://svc.ns.svc:443/p?timeout=10s": context deadline exceeded`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::AdmissionAttributes;
use super::config::Hook;
use crate::status::ApiError;

/// Why a webhook did not let the request through.
#[derive(Debug)]
pub(super) enum CallError {
    /// The call itself failed (`ErrCallingWebhook`): subject to the failure policy. Holds the
    /// reason that follows `failed calling webhook "<name>": `.
    Calling(String),
    /// A denial or an error that stands whatever the failure policy.
    Status(ApiError),
}

/// A webhook's successful answer.
#[derive(Debug, Default)]
pub(super) struct Reply {
    /// The decoded JSON Patch bytes (mutating webhooks only).
    pub patch: Option<Vec<u8>>,
    pub warnings: Vec<String>,
}

/// Where and how to reach a webhook.
struct Target {
    /// `https://host:port/path?timeout=Ns`, as shown in errors.
    url: String,
    host: String,
    /// The resolved address of a service reference (DNS is used for `url`).
    addr: Option<SocketAddr>,
}

/// Calls `hook` for the request with `object` as the (possibly already mutated) object.
pub(super) async fn call_webhook(
    resolver: &dyn super::ServiceResolver,
    hook: &Hook,
    attrs: &AdmissionAttributes,
    object: Option<&Value>,
    mutating: bool,
) -> Result<Reply, CallError> {
    if attrs.dry_run {
        match hook.spec.side_effects.as_deref() {
            None => return Err(CallError::Calling("Webhook SideEffects is nil".into())),
            Some("None" | "NoneOnDryRun") => {}
            Some(_) => {
                return Err(CallError::Status(ApiError::bad_request(format!(
                    "admission webhook \"{}\" does not support dry run",
                    hook.spec.name
                ))));
            }
        }
    }
    let versions = &hook.spec.admission_review_versions;
    if !versions.iter().any(|v| v == "v1") {
        let why = if versions.iter().any(|v| v == "v1beta1") {
            "kubesim does not implement AdmissionReview v1beta1"
        } else {
            "webhook does not accept known AdmissionReview versions"
        };
        return Err(CallError::Calling(format!(
            "could not create admission objects: {why}"
        )));
    }
    let uid = fresh_uid();
    let review = review_request(&uid, attrs, object);
    let (target, client) = client_for(resolver, hook)?;
    let addr = target.addr;
    let post = |detail: String| {
        CallError::Calling(format!(
            "failed to call webhook: Post \"{}\": {detail}",
            target.url
        ))
    };
    let send = async {
        let response = client
            .post(&target.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, */*")
            .body(review.to_string())
            .send()
            .await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, content_type, body))
    };
    let (status, content_type, body) = match tokio::time::timeout(hook.timeout(), send).await {
        Err(_) => return Err(post("context deadline exceeded".into())),
        Ok(Err(e)) => return Err(post(transport_error(&e, &target.host, addr))),
        Ok(Ok(answer)) => answer,
    };
    if !(200..=206).contains(&status) {
        return Err(CallError::Calling(format!(
            "failed to call webhook: {}",
            unexpected_status(status, &content_type, &body)
        )));
    }
    verify_response(&hook.spec.name, &uid, &body, mutating)
}

/// Builds the URL and a client that trusts only the `caBundle` and reaches a service through the
/// resolver while verifying the certificate for `<service>.<namespace>.svc`.
fn client_for(
    resolver: &dyn super::ServiceResolver,
    hook: &Hook,
) -> Result<(Target, reqwest::Client), CallError> {
    let cc = &hook.spec.client_config;
    let timeout = format!("timeout={}s", hook.timeout().as_secs());
    let rest = |why: String| CallError::Calling(format!("could not get REST client: {why}"));
    let target = if let Some(svc) = &cc.service {
        let host = format!("{}.{}.svc", svc.name, svc.namespace);
        let port = svc.port.unwrap_or(443);
        let path = svc.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/");
        let url = format!("https://{host}:{port}{path}?{timeout}");
        let Some(addr) = resolver.resolve(&svc.namespace, &svc.name, port) else {
            return Err(CallError::Calling(format!(
                "failed to call webhook: Post \"{url}\": service \"{}\" not found",
                svc.name
            )));
        };
        Target {
            url,
            host,
            addr: Some(addr),
        }
    } else if let Some(raw) = cc.url.as_deref().filter(|u| !u.is_empty()) {
        let parsed = reqwest::Url::parse(raw).map_err(|e| rest(format!("Unparsable URL: {e}")))?;
        if parsed.scheme() != "https" {
            return Err(rest(format!(
                "'https' is the only allowed URL scheme, got {:?}",
                parsed.scheme()
            )));
        }
        let host = parsed.host_str().unwrap_or("").to_string();
        let authority = match parsed.port() {
            Some(p) => format!("{}:{p}", host_for_url(&host)),
            None => host_for_url(&host),
        };
        // A real server keeps only scheme, host and path of the URL.
        Target {
            url: format!("https://{authority}{}?{timeout}", parsed.path()),
            host,
            addr: None,
        }
    } else {
        return Err(rest("webhook configuration has no URL".into()));
    };
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .no_proxy();
    if let Some(bundle) = cc.ca_bundle.as_deref().filter(|b| !b.is_empty()) {
        let pem = STANDARD
            .decode(bundle)
            .map_err(|e| rest(format!("unable to load root certificates: {e}")))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                rest("unable to load root certificates: unable to parse bytes as PEM block".into())
            })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(addr) = target.addr {
        builder = builder.resolve(&target.host, addr);
    }
    let client = builder.build().map_err(|e| rest(e.to_string()))?;
    Ok((target, client))
}

fn host_for_url(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The `AdmissionReview` v1 request body (F16).
fn review_request(uid: &str, attrs: &AdmissionAttributes, object: Option<&Value>) -> Value {
    let kind =
        json!({"group": attrs.kind.group, "version": attrs.kind.version, "kind": attrs.kind.kind});
    let resource = json!({
        "group": attrs.resource.group,
        "version": attrs.resource.version,
        "resource": attrs.resource.resource,
    });
    let mut request = Map::new();
    request.insert("uid".into(), json!(uid));
    request.insert("kind".into(), kind.clone());
    request.insert("resource".into(), resource.clone());
    if !attrs.sub_resource.is_empty() {
        request.insert("subResource".into(), json!(attrs.sub_resource));
    }
    // No conversion happens, so the request's own kind and resource are also what was requested.
    request.insert("requestKind".into(), kind);
    request.insert("requestResource".into(), resource);
    if !attrs.sub_resource.is_empty() {
        request.insert("requestSubResource".into(), json!(attrs.sub_resource));
    }
    // `name` and `namespace` are omitted when empty, as Go's `omitempty` does.
    if !attrs.name.is_empty() {
        request.insert("name".into(), json!(attrs.name));
    }
    if !attrs.namespace.is_empty() {
        request.insert("namespace".into(), json!(attrs.namespace));
    }
    request.insert("operation".into(), json!(attrs.operation.as_str()));
    let user_info = if attrs.user_info.is_null() {
        json!({})
    } else {
        attrs.user_info.clone()
    };
    request.insert("userInfo".into(), user_info);
    request.insert("object".into(), object.cloned().unwrap_or(Value::Null));
    request.insert(
        "oldObject".into(),
        attrs.old_object.clone().unwrap_or(Value::Null),
    );
    request.insert("dryRun".into(), json!(attrs.dry_run));
    request.insert(
        "options".into(),
        attrs.options.clone().unwrap_or(Value::Null),
    );
    json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request})
}

/// Checks a 2xx answer as `VerifyAdmissionResponse` does and extracts the patch and warnings,
/// or the denial.
fn verify_response(
    webhook: &str,
    uid: &str,
    body: &[u8],
    mutating: bool,
) -> Result<Reply, CallError> {
    let decode = |why: String| CallError::Calling(format!("failed to call webhook: {why}"));
    let invalid =
        |why: String| CallError::Calling(format!("received invalid webhook response: {why}"));
    let review: Value = serde_json::from_slice(body)
        .map_err(|e| decode(format!("couldn't get version/kind; json parse error: {e}")))?;
    let Some(review) = review.as_object() else {
        return Err(decode(
            "couldn't get version/kind; json parse error: expected a JSON object".into(),
        ));
    };
    let response = match review.get("response") {
        None | Some(Value::Null) => None,
        Some(Value::Object(r)) => Some(r),
        Some(other) => {
            return Err(decode(format!(
                "cannot unmarshal {} into AdmissionResponse",
                json_type(other)
            )));
        }
    };
    let text = |r: &Map<String, Value>, field: &str| -> Result<String, CallError> {
        match r.get(field) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(decode(format!(
                "cannot unmarshal {} into {field} of type string",
                json_type(other)
            ))),
        }
    };
    // Decoding happens before verification, so a malformed patch fails first.
    let patch = match response {
        Some(r) => match text(r, "patch")? {
            p if p.is_empty() => None,
            p => Some(STANDARD.decode(&p).map_err(|e| decode(base64_error(&e)))?),
        },
        None => None,
    };
    let Some(response) = response else {
        return Err(invalid("webhook response was absent".into()));
    };
    let got_uid = text(response, "uid")?;
    if got_uid != uid {
        return Err(invalid(format!(
            "expected response.uid=\"{uid}\", got \"{got_uid}\""
        )));
    }
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = review.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        return Err(invalid(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {group}/{version}, Kind={kind}"
        )));
    }
    let patch_type = text(response, "patchType")?;
    if patch.is_some() || !patch_type.is_empty() {
        if !mutating {
            return Err(invalid(
                "unsupported fields in validating webhook response: patch, patchType".into(),
            ));
        }
        if patch_type.is_empty() {
            return Err(invalid(
                "webhook returned response.patch but not response.patchType".into(),
            ));
        }
        if patch.is_none() {
            return Err(invalid(
                "webhook returned response.patchType but not response.patch".into(),
            ));
        }
        if patch_type != "JSONPatch" {
            return Err(invalid(format!(
                "webhook returned invalid response.patchType of \"{patch_type}\""
            )));
        }
    }
    let warnings = match response.get("warnings") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|w| w.as_str().map(str::to_string))
            .collect(),
        Some(other) => {
            return Err(decode(format!(
                "cannot unmarshal {} into warnings",
                json_type(other)
            )));
        }
    };
    let allowed = match response.get("allowed") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(decode(format!(
                "cannot unmarshal {} into allowed of type bool",
                json_type(other)
            )));
        }
    };
    if !allowed {
        return Err(CallError::Status(denial(webhook, response.get("status"))));
    }
    Ok(Reply { patch, warnings })
}

/// `webhookerrors.ToStatusErr`: the denial as the user sees it.
fn denial(webhook: &str, status: Option<&Value>) -> ApiError {
    let field = |name: &str| {
        status
            .and_then(|s| s.get(name))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let code = status
        .and_then(|s| s.get("code"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let code = if code < 400 {
        400
    } else {
        u16::try_from(code).unwrap_or(500)
    };
    let (message, reason) = (field("message"), field("reason"));
    let denied = format!("admission webhook \"{webhook}\" denied the request");
    let message = match (message, reason) {
        (m, _) if !m.is_empty() => format!("{denied}: {m}"),
        (_, r) if !r.is_empty() => format!("{denied}: {r}"),
        _ => format!("{denied} without explanation"),
    };
    let mut err = ApiError::new(code, reason, message);
    if let Some(details) = status
        .and_then(|s| s.get("details"))
        .filter(|d| !d.is_null())
    {
        err = err.with_details(details.clone());
    }
    err
}

/// The message a Go REST client gives for a non-2xx answer (`NewGenericServerResponse`, or the
/// answer's own `Status` message).
fn unexpected_status(code: u16, content_type: &str, body: &[u8]) -> String {
    if let Ok(status) = serde_json::from_slice::<Value>(body)
        && status.get("kind").and_then(Value::as_str) == Some("Status")
        && status.get("status").and_then(Value::as_str) == Some("Failure")
    {
        return status
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
    }
    let media = content_type.split(';').next().unwrap_or("").trim();
    let server_message = if content_type.is_empty() || media.starts_with("text/") {
        let n = body.len().min(1024);
        String::from_utf8_lossy(&body[..n]).trim().to_string()
    } else {
        "unknown".to_string()
    };
    match code {
        409 => "the server reported a conflict".into(),
        404 => "the server could not find the requested resource".into(),
        400 => "the server rejected our request for an unknown reason".into(),
        401 => "the server has asked for the client to provide credentials".into(),
        403 | 415 => server_message,
        406 if server_message.is_empty() || server_message == "unknown" => {
            "the server was unable to respond with a content type that the client supports".into()
        }
        406 => server_message,
        405 => "the server does not allow this method on the requested resource".into(),
        422 => "the server rejected our request due to an error in our request".into(),
        503 => "the server is currently unable to handle the request".into(),
        504 => {
            "the server was unable to return a response in the time allotted, but may still be processing the request"
                .into()
        }
        429 => "the server has received too many requests and has asked us to try again later".into(),
        c if c >= 500 => format!("an error on the server (\"{server_message}\") has prevented the request from succeeding"),
        c => format!("the server responded with the status code {c} but did not return more information"),
    }
}

/// Describes a failed request the way Go's HTTP client does (`dial tcp …: connect: connection
/// refused`, `tls: failed to verify certificate: x509: …`).
fn transport_error(err: &reqwest::Error, host: &str, addr: Option<SocketAddr>) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return tls_error(tls, host);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            // hyper-rustls wraps the TLS error in io errors, whose `source` skips the wrapped error.
            let mut inner = io.get_ref();
            while let Some(wrapped) = inner {
                if let Some(tls) = wrapped.downcast_ref::<rustls::Error>() {
                    return tls_error(tls, host);
                }
                inner = wrapped
                    .downcast_ref::<std::io::Error>()
                    .and_then(std::io::Error::get_ref);
            }
            let dial = addr.map(|a| format!("dial tcp {a}: ")).unwrap_or_default();
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return format!("{dial}connect: connection refused");
                }
                std::io::ErrorKind::ConnectionReset => {
                    return "read: connection reset by peer".into();
                }
                _ => {}
            }
        }
        source = e.source();
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    text
}

fn tls_error(err: &rustls::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    let x509 = match err {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "certificate signed by unknown authority".to_string(),
            C::NotValidForNameContext { presented, .. } if !presented.is_empty() => {
                let names: Vec<String> = presented.iter().map(|p| presented_name(p)).collect();
                format!("certificate is valid for {}, not {host}", names.join(", "))
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate relies on legacy Common Name field, use SANs instead".to_string()
            }
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => {
                "certificate has expired or is not yet valid".to_string()
            }
            other => other.to_string(),
        },
        other => return format!("remote error: tls: {other}"),
    };
    format!("tls: failed to verify certificate: x509: {x509}")
}

/// rustls renders presented names as e.g. `DnsName("a.b")`; Go shows the bare name.
fn presented_name(p: &str) -> String {
    p.split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map(|inner| inner.trim_matches('"').to_string())
        .unwrap_or_else(|| p.to_string())
}

fn base64_error(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => {
            format!("illegal base64 data at input byte {at}")
        }
        other => format!("illegal base64 data: {other}"),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A random version-4 UUID for `request.uid`, from the standard library's per-process random
/// hash keys and a counter (no RNG crate needed).
fn fresh_uid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let word = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        h.finish()
    };
    let (hi, lo) = (word(1), word(2));
    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}
