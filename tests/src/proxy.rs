//! A fault-injecting proxy between a process under test and the real API server.
//!
//! [`FaultProxy::start`] listens with plain HTTP on a loopback port of its own and forwards every
//! request over one HTTP/2 TLS connection to the cluster's API server, authenticated with the
//! admin client certificate of the cluster's kubeconfig. [`FaultProxy::kubeconfig`] is a
//! kubeconfig (no credentials) pointing at it, for the process whose API traffic is to suffer.
//!
//! [`Rule`]s make it answer requests as a troubled API server does: 500 `InternalError` or
//! 409 `Conflict`, each a proper `Status`, either instead of the request or after forwarding it
//! (a write whose response is lost: it took effect, the client cannot know).
//! [`FaultProxy::close_watches`] ends every open watch cleanly, as an API server restart or a
//! load balancer does, so the clients must re-watch from their last resourceVersion. When the
//! API server cannot be reached the proxy answers 502 with a `Status`, as a load balancer would.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kube::config::{AuthInfo, Kubeconfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsConnector;

use crate::Cluster;

/// The body of every response the proxy sends.
type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;
/// The body of every request it forwards.
type UpstreamBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// How an injected failure answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 500 `InternalError` (as when etcd times out).
    InternalError,
    /// 409 `Conflict`: the optimistic-concurrency failure of a stale `resourceVersion`.
    Conflict,
}

/// Which requests fail, how often and how many times. Built as
/// `Rule::new(Fault::Conflict).verbs(&["patch"]).subresource("status").every(2).times(30)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub fault: Fault,
    /// Kubernetes verbs (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`); empty: every verb.
    pub verbs: Vec<String>,
    /// Plural resource name (`pods`, `keptntasks`); `None`: every resource.
    pub resource: Option<String>,
    /// `Some("status")`: only that subresource; `Some("")`: only the main resource; `None`: both.
    pub subresource: Option<String>,
    /// Only requests in this namespace.
    pub namespace: Option<String>,
    /// Fail the first matching request, then every `every`-th; 0 and 1: every one.
    pub every: u64,
    /// Retire after this many failures; `None`: until [`FaultProxy::clear`].
    pub times: Option<u64>,
    /// Forward the request, then answer with the failure instead of the real response.
    pub after_commit: bool,
}

impl Rule {
    /// Fails every request with `fault` until cleared.
    pub fn new(fault: Fault) -> Rule {
        Rule {
            fault,
            verbs: Vec::new(),
            resource: None,
            subresource: None,
            namespace: None,
            every: 1,
            times: None,
            after_commit: false,
        }
    }

    pub fn verbs(mut self, verbs: &[&str]) -> Rule {
        self.verbs = verbs.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    pub fn resource(mut self, resource: &str) -> Rule {
        self.resource = Some(resource.to_owned());
        self
    }

    pub fn subresource(mut self, subresource: &str) -> Rule {
        self.subresource = Some(subresource.to_owned());
        self
    }

    pub fn namespace(mut self, namespace: &str) -> Rule {
        self.namespace = Some(namespace.to_owned());
        self
    }

    pub fn every(mut self, n: u64) -> Rule {
        self.every = n;
        self
    }

    pub fn times(mut self, n: u64) -> Rule {
        self.times = Some(n);
        self
    }

    pub fn after_commit(mut self) -> Rule {
        self.after_commit = true;
        self
    }

    fn matches(&self, r: &Target) -> bool {
        let is = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
        (self.verbs.is_empty() || self.verbs.iter().any(|v| v == r.verb))
            && is(&self.resource, &r.resource)
            && is(&self.subresource, &r.subresource)
            && is(&self.namespace, &r.namespace)
    }
}

/// A rule with its counters.
struct Armed {
    rule: Rule,
    matched: u64,
    injected: u64,
}

impl Armed {
    fn retired(&self) -> bool {
        self.rule.times.is_some_and(|t| self.injected >= t)
    }
}

/// A resource request as the rules see it (the API server's request info, in short).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    verb: &'static str,
    group: String,
    resource: String,
    subresource: String,
    namespace: String,
    name: String,
}

impl Target {
    /// `None` for discovery, health and the other non-resource paths.
    fn of(method: &Method, path: &str, query: Option<&str>) -> Option<Target> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, rest) = match segments.as_slice() {
            ["api", _version, rest @ ..] => ("", rest),
            ["apis", group, _version, rest @ ..] => (*group, rest),
            _ => return None,
        };
        // The deprecated `/watch/` prefix.
        let (path_watch, rest) = match rest {
            ["watch", rest @ ..] => (true, rest),
            _ => (false, rest),
        };
        // `namespaces/<ns>/<resource>...` is namespaced; `namespaces/<name>/status` (and
        // `/finalize`) is a subresource of the Namespace itself.
        let (namespace, rest) = match rest {
            ["namespaces", ns, next, tail @ ..]
                if !(tail.is_empty() && matches!(*next, "status" | "finalize")) =>
            {
                (*ns, &rest[2..])
            }
            _ => ("", rest),
        };
        let (resource, name, subresource) = match rest {
            [] => return None,
            [resource] => (*resource, "", ""),
            [resource, name] => (*resource, *name, ""),
            [resource, name, subresource, ..] => (*resource, *name, *subresource),
        };
        let watch = path_watch
            || query.is_some_and(|q| {
                q.split('&')
                    .any(|pair| matches!(pair, "watch=true" | "watch=1"))
            });
        let verb = match *method {
            Method::GET if watch => "watch",
            Method::GET if name.is_empty() => "list",
            Method::GET => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if name.is_empty() => "deletecollection",
            Method::DELETE => "delete",
            _ => return None,
        };
        Some(Target {
            verb,
            group: group.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// Where requests go: the API server, over one HTTP/2 connection (re-made when it drops).
struct Upstream {
    /// `host:port` to dial.
    address: String,
    /// `host:port` of the request URIs.
    authority: String,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    connection: tokio::sync::Mutex<Option<SendRequest<UpstreamBody>>>,
}

impl Upstream {
    /// The API server of `kubeconfig`'s current context, authenticated with its client
    /// certificate (file paths or inline data, as the kubeconfig has them).
    fn from_kubeconfig(path: &Path) -> Upstream {
        let config = Kubeconfig::read_from(path).expect("admin kubeconfig");
        let current = config.current_context.as_deref().expect("current context");
        let context = config
            .contexts
            .iter()
            .find(|c| c.name == current)
            .and_then(|c| c.context.as_ref())
            .expect("the current context");
        let cluster = config
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .and_then(|c| c.cluster.as_ref())
            .expect("the context's cluster");
        let user = config
            .auth_infos
            .iter()
            .find(|a| Some(&a.name) == context.user.as_ref())
            .and_then(|a| a.auth_info.as_ref())
            .expect("the context's user");

        let server: Uri = cluster
            .server
            .as_deref()
            .expect("server")
            .parse()
            .expect("server URL");
        let host = server.host().expect("server host").to_owned();
        let port = server.port_u16().unwrap_or(443);
        let authority = server.authority().expect("server authority").to_string();
        let name = cluster.tls_server_name.clone().unwrap_or_else(|| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        });
        let server_name = ServerName::try_from(name).expect("TLS server name");

        let ca = pem_of(
            cluster.certificate_authority_data.as_deref(),
            cluster.certificate_authority.as_deref(),
        )
        .expect("a certificate authority in the kubeconfig");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let (cert, key) = client_identity(user);
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<_, _>>()
            .expect("client certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(&key).expect("client key PEM");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .expect("client certificate");
        tls.alpn_protocols = vec![b"h2".to_vec()];

        Upstream {
            address: format!("{host}:{port}"),
            authority,
            server_name,
            tls: TlsConnector::from(Arc::new(tls)),
            connection: tokio::sync::Mutex::new(None),
        }
    }

    /// A handle on the open connection, or on a new one.
    async fn sender(&self) -> Result<SendRequest<UpstreamBody>, String> {
        let mut slot = self.connection.lock().await;
        if let Some(sender) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(sender.clone());
        }
        let tcp = TcpStream::connect(&self.address)
            .await
            .map_err(|e| format!("connect {}: {e}", self.address))?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS with {}: {e}", self.address))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(format!("{} did not agree to HTTP/2", self.address));
        }
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP/2 with {}: {e}", self.address))?;
        // Ends when every handle and stream is gone, or the server goes away.
        tokio::spawn(connection);
        *slot = Some(sender.clone());
        Ok(sender)
    }

    /// Forwards `req` as it is, but for the hop-by-hop headers.
    async fn forward(&self, req: Request<Incoming>) -> Result<Response<Incoming>, String> {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = format!("https://{}{path}", self.authority)
            .parse()
            .map_err(|e| format!("request URI: {e}"))?;
        parts.version = Version::HTTP_2;
        for h in [
            header::HOST,
            header::CONNECTION,
            header::TRANSFER_ENCODING,
            header::UPGRADE,
            header::TE,
            header::PROXY_AUTHORIZATION,
        ] {
            parts.headers.remove(h);
        }
        parts.headers.remove("keep-alive");
        parts.headers.remove("proxy-connection");
        let mut sender = self.sender().await?;
        sender
            .ready()
            .await
            .map_err(|e| format!("upstream connection: {e}"))?;
        let mut response = sender
            .send_request(Request::from_parts(parts, body.boxed_unsync()))
            .await
            .map_err(|e| format!("upstream: {e}"))?;
        *response.version_mut() = Version::HTTP_11;
        Ok(response)
    }
}

/// The PEM of a kubeconfig `*-data` field (base64) or else of its file.
fn pem_of(data: Option<&str>, file: Option<&str>) -> Option<Vec<u8>> {
    if let Some(data) = data {
        let data: String = data.split_whitespace().collect();
        return Some(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .expect("base64 kubeconfig data"),
        );
    }
    file.map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}")))
}

/// The client certificate and key PEM of an admin kubeconfig user.
fn client_identity(user: &AuthInfo) -> (Vec<u8>, Vec<u8>) {
    let cert = pem_of(
        user.client_certificate_data.as_deref(),
        user.client_certificate.as_deref(),
    )
    .expect("a client certificate in the kubeconfig");
    // `client-key-data` is a secret string; its serialised form is the kubeconfig text.
    let serialised = serde_json::to_value(user).expect("auth info");
    let key = pem_of(
        serialised["client-key-data"].as_str(),
        user.client_key.as_deref(),
    )
    .expect("a client key in the kubeconfig");
    (cert, key)
}

/// The rules in the order added, with their counters.
#[derive(Default)]
struct Rules {
    armed: Mutex<Vec<Armed>>,
    injected: AtomicU64,
}

impl Rules {
    fn lock(&self) -> MutexGuard<'_, Vec<Armed>> {
        self.armed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fault for this request and whether it comes after forwarding: the first active rule
    /// that matches decides (also when its `every` lets this request pass).
    fn decide(&self, target: &Target) -> Option<(Fault, bool)> {
        let mut rules = self.lock();
        let armed = rules
            .iter_mut()
            .find(|a| !a.retired() && a.rule.matches(target))?;
        armed.matched += 1;
        if (armed.matched - 1) % armed.rule.every.max(1) != 0 {
            return None;
        }
        armed.injected += 1;
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some((armed.rule.fault, armed.rule.after_commit))
    }
}

/// The state shared by the proxy's connections and its owner.
struct Shared {
    upstream: Upstream,
    rules: Rules,
    watch_closures: AtomicU64,
    /// Watch streams ended by a closure.
    watches_cut: AtomicU64,
    /// Bumped to end every open watch.
    close: watch::Sender<u64>,
}

impl Shared {
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ProxyBody> {
        // Subscribed before forwarding: a closure while the watch starts ends it too.
        let closer = self.close.subscribe();
        let target = Target::of(req.method(), req.uri().path(), req.uri().query());
        let decision = target.as_ref().and_then(|t| self.rules.decide(t));
        match (target, decision) {
            (Some(target), Some((fault, false))) => {
                // Read the request to its end, so the client's connection stays usable.
                let _ = req.into_body().collect().await;
                fault_response(fault, &target)
            }
            (Some(target), Some((fault, true))) => match self.upstream.forward(req).await {
                // The API server has carried the request out once it answers; its answer is lost.
                Ok(_) => fault_response(fault, &target),
                Err(e) => bad_gateway(&e),
            },
            (target, _) => match self.upstream.forward(req).await {
                Ok(response) if target.is_some_and(|t| t.verb == "watch") => {
                    let shared = self.clone();
                    response.map(|body| Closable::new(body, closer, shared).boxed_unsync())
                }
                Ok(response) => response.map(BodyExt::boxed_unsync),
                Err(e) => bad_gateway(&e),
            },
        }
    }
}

/// A watch response body that ends (cleanly: the client sees the end of the stream) when
/// [`FaultProxy::close_watches`] is called.
struct Closable {
    inner: Incoming,
    /// `None` once closed.
    closed: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Where the closure is counted.
    shared: Arc<Shared>,
}

impl Closable {
    fn new(inner: Incoming, mut closer: watch::Receiver<u64>, shared: Arc<Shared>) -> Closable {
        Closable {
            inner,
            closed: Some(Box::pin(async move {
                // An error means the proxy is gone: end the watch too.
                let _ = closer.changed().await;
            })),
            shared,
        }
    }
}

impl Body for Closable {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(closed) = self.closed.as_mut() else {
            return Poll::Ready(None);
        };
        if closed.as_mut().poll(cx).is_ready() {
            self.closed = None;
            self.shared.watches_cut.fetch_add(1, Ordering::SeqCst);
            return Poll::Ready(None);
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }
}

/// A `Status` response as the API server sends it.
fn status_response(
    code: StatusCode,
    reason: &str,
    message: String,
    details: Value,
) -> Response<ProxyBody> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason,
        "details": details, "code": code.as_u16()
    });
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn fault_response(fault: Fault, target: &Target) -> Response<ProxyBody> {
    let qualified = if target.group.is_empty() {
        target.resource.clone()
    } else {
        format!("{}.{}", target.resource, target.group)
    };
    match fault {
        Fault::Conflict => status_response(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified} \"{}\": the object has been \
                 modified; please apply your changes to the latest version and try again",
                target.name
            ),
            json!({"name": target.name, "group": target.group, "kind": target.resource}),
        ),
        Fault::InternalError => status_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "Internal error occurred: injected by the test's fault proxy".to_owned(),
            json!({"causes": [{"message": "injected by the test's fault proxy"}]}),
        ),
    }
}

fn bad_gateway(error: &str) -> Response<ProxyBody> {
    status_response(
        StatusCode::BAD_GATEWAY,
        "InternalError",
        format!("fault proxy: {error}"),
        json!({}),
    )
}

/// The running proxy; stops (with every connection through it) when dropped.
pub struct FaultProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `cluster`'s API server, no rules yet.
    pub async fn start(cluster: &Cluster) -> FaultProxy {
        let shared = Arc::new(Shared {
            upstream: Upstream::from_kubeconfig(&cluster.kubeconfig()),
            rules: Rules::default(),
            watch_closures: AtomicU64::new(0),
            watches_cut: AtomicU64::new(0),
            close: watch::channel(0).0,
        });
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("proxy listens");
        let address = listener.local_addr().expect("proxy address");
        let accept = tokio::spawn(serve(listener, shared.clone()));

        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        let config = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "fault-proxy", "cluster": {"server": format!("http://{address}")}}],
            "users": [{"name": "fault-proxy", "user": {}}],
            "contexts": [{"name": "fault-proxy", "context": {"cluster": "fault-proxy", "user": "fault-proxy"}}],
            "current-context": "fault-proxy"
        });
        std::fs::write(&kubeconfig, serde_yaml::to_string(&config).expect("yaml"))
            .expect("proxy kubeconfig");
        FaultProxy {
            address,
            shared,
            kubeconfig,
            _dir: dir,
            accept,
        }
    }

    /// Where the proxy listens (plain HTTP).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A kubeconfig whose server is the proxy (no credentials: the proxy authenticates).
    pub fn kubeconfig(&self) -> PathBuf {
        self.kubeconfig.clone()
    }

    /// Adds a rule after the others (the first active rule matching a request decides).
    pub fn add(&self, rule: Rule) {
        self.shared.rules.lock().push(Armed {
            rule,
            matched: 0,
            injected: 0,
        });
    }

    /// Removes every rule; the counters stay.
    pub fn clear(&self) {
        self.shared.rules.lock().clear();
    }

    /// How many failures were injected.
    pub fn injected(&self) -> u64 {
        self.shared.rules.injected.load(Ordering::SeqCst)
    }

    /// How many times [`FaultProxy::close_watches`] was called.
    pub fn watch_closures(&self) -> u64 {
        self.shared.watch_closures.load(Ordering::SeqCst)
    }

    /// How many watch streams [`FaultProxy::close_watches`] has ended.
    pub fn watches_cut(&self) -> u64 {
        self.shared.watches_cut.load(Ordering::SeqCst)
    }

    /// Ends every watch open through the proxy now.
    pub fn close_watches(&self) {
        self.shared.watch_closures.fetch_add(1, Ordering::SeqCst);
        self.shared.close.send_modify(|n| *n += 1);
    }

    /// The rules (not cleared) that have not injected a single failure yet.
    pub fn unfired(&self) -> Vec<Rule> {
        self.shared
            .rules
            .lock()
            .iter()
            .filter(|a| a.injected == 0)
            .map(|a| a.rule.clone())
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Accepts connections until aborted; aborting drops (and so ends) every connection.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or similar: let it pass rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(shared.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(method: Method, uri: &str) -> Option<Target> {
        let uri: Uri = uri.parse().expect("uri");
        Target::of(&method, uri.path(), uri.query())
    }

    #[test]
    fn requests_are_classified_as_the_api_server_does() {
        let t = target(
            Method::PATCH,
            "/apis/lifecycle.keptn.sh/v1/namespaces/a/keptntasks/t/status",
        )
        .expect("resource");
        assert_eq!(
            (
                t.verb,
                t.group.as_str(),
                t.resource.as_str(),
                t.subresource.as_str()
            ),
            ("patch", "lifecycle.keptn.sh", "keptntasks", "status")
        );
        assert_eq!((t.namespace.as_str(), t.name.as_str()), ("a", "t"));
        let t = target(Method::GET, "/api/v1/namespaces/a/pods?watch=true&rv=1").expect("watch");
        assert_eq!((t.verb, t.resource.as_str()), ("watch", "pods"));
        let t = target(Method::GET, "/api/v1/namespaces/a/pods?watch=1").expect("watch");
        assert_eq!(t.verb, "watch");
        let t = target(Method::GET, "/api/v1/watch/namespaces/a/pods").expect("watch");
        assert_eq!((t.verb, t.namespace.as_str()), ("watch", "a"));
        let t = target(Method::GET, "/api/v1/namespaces/a/pods?watch=false").expect("list");
        assert_eq!(t.verb, "list");
        let t = target(Method::PUT, "/api/v1/namespaces/a/finalize").expect("namespace");
        assert_eq!(
            (
                t.verb,
                t.resource.as_str(),
                t.name.as_str(),
                t.subresource.as_str()
            ),
            ("update", "namespaces", "a", "finalize")
        );
        assert_eq!(t.namespace, "");
        let t = target(Method::GET, "/api/v1/namespaces/a").expect("namespace");
        assert_eq!(
            (t.verb, t.resource.as_str(), t.name.as_str()),
            ("get", "namespaces", "a")
        );
        let t = target(Method::POST, "/apis/apps/v1/namespaces/a/deployments").expect("create");
        assert_eq!(
            (t.verb, t.resource.as_str(), t.name.as_str()),
            ("create", "deployments", "")
        );
        let t = target(Method::DELETE, "/api/v1/namespaces/a/pods").expect("collection");
        assert_eq!(t.verb, "deletecollection");
        assert!(target(Method::GET, "/apis/apps/v1").is_none());
        assert!(target(Method::GET, "/readyz").is_none());
        assert!(target(Method::GET, "/version").is_none());
    }

    #[test]
    fn the_first_matching_rule_decides_every_nth_time_until_retired() {
        let rules = Rules::default();
        for rule in [
            Rule::new(Fault::Conflict)
                .verbs(&["patch"])
                .subresource("status")
                .every(2)
                .times(2),
            Rule::new(Fault::InternalError)
                .namespace("a")
                .after_commit(),
        ] {
            rules.lock().push(Armed {
                rule,
                matched: 0,
                injected: 0,
            });
        }
        let status = target(Method::PATCH, "/api/v1/namespaces/a/pods/p/status").expect("status");
        let seen: Vec<_> = (0..5).map(|_| rules.decide(&status)).collect();
        assert_eq!(
            seen,
            [
                Some((Fault::Conflict, false)),
                None,
                Some((Fault::Conflict, false)),
                Some((Fault::InternalError, true)),
                Some((Fault::InternalError, true))
            ]
        );
        let elsewhere = target(Method::PATCH, "/api/v1/namespaces/b/pods/p").expect("pod");
        assert_eq!(rules.decide(&elsewhere), None);
        assert_eq!(rules.injected.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn the_admin_identity_is_read_from_files_or_inline_data() {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("cert");
        let dir = tempfile::tempdir().expect("tempdir");
        let pems = [
            ("ca.crt", ca.pem()),
            ("admin.crt", cert.pem()),
            ("admin.key", key.serialize_pem()),
        ];
        for (file, pem) in &pems {
            std::fs::write(dir.path().join(file), pem).expect("pem");
        }
        let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
        let variants = [
            (
                json!({"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"}),
                json!({"client-certificate": "admin.crt", "client-key": "admin.key"}),
            ),
            (
                json!({"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(&pems[0].1)}),
                json!({"client-certificate-data": b64(&pems[1].1), "client-key-data": b64(&pems[2].1)}),
            ),
        ];
        for (cluster, user) in variants {
            let config = json!({
                "apiVersion": "v1", "kind": "Config", "current-context": "c",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]
            });
            let path = dir.path().join("kubeconfig");
            std::fs::write(&path, serde_yaml::to_string(&config).expect("yaml")).expect("write");
            let upstream = Upstream::from_kubeconfig(&path);
            assert_eq!(upstream.address, "127.0.0.1:6443");
            assert_eq!(upstream.authority, "127.0.0.1:6443");
        }
    }
}
