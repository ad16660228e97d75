//! The HTTPS server on a loopback port: TLS 1.2 and 1.3, ALPN h2 and http/1.1, PKCS#8 and
//! PKCS#1 keys, certificate rotation without restart (rcgen certificates in a temp dir, swapped
//! the way Kubernetes swaps a Secret volume), slow clients, graceful drain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use webhook::cluster::Offline;
use webhook::metrics::Metrics;
use webhook::server::{self, App, Limits};
use webhook::snapshot::MemorySnapshot;
use webhook::tls::{Certificates, TlsError, server_config};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let _ = rustls::crypto::CryptoProvider::install_default((*provider).clone());
    provider
}

struct Pair {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

fn self_signed(name: &str) -> Pair {
    let certified = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    Pair {
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
        der: certified.cert.der().to_vec(),
    }
}

/// A Secret volume: `tls.crt`/`tls.key` are symlinks through `..data` into a timestamped
/// directory; an update writes a new directory and swaps `..data` atomically.
struct SecretVolume {
    dir: tempfile::TempDir,
    generation: usize,
}

impl SecretVolume {
    fn new(pair: &Pair) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut volume = Self { dir, generation: 0 };
        volume.update(&pair.cert_pem, &pair.key_pem);
        for file in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{file}"), volume.dir.path().join(file))
                .unwrap();
        }
        volume
    }

    fn update(&mut self, cert: &str, key: &str) {
        self.generation += 1;
        let data = self.dir.path().join(format!("..2026_{}", self.generation));
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("tls.crt"), cert).unwrap();
        std::fs::write(data.join("tls.key"), key).unwrap();
        let tmp = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("..data")).unwrap();
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    metrics: Arc<Metrics>,
}

async fn start(cert: &Path, key: &Path, limits: Limits) -> Running {
    let provider = provider();
    let certificates = Arc::new(Certificates::load(cert, key, provider.clone()).unwrap());
    let metrics = Arc::new(Metrics::new());
    tokio::spawn(
        certificates
            .clone()
            .watch(Duration::from_millis(50), metrics.clone()),
    );
    let config = Arc::new(server_config(certificates, provider).unwrap());
    let app = Arc::new(App {
        snapshot: Arc::new(MemorySnapshot::complete()),
        cluster: Arc::new(Offline),
        metrics: metrics.clone(),
        ready: Arc::new(|| true),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(
        listener,
        config,
        server::router(app, limits),
        limits,
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        stop: Some(stop),
        task,
        metrics,
    }
}

const LIMITS: Limits = Limits {
    body_bytes: 1024 * 1024,
    header_read: Duration::from_secs(5),
    request: Duration::from_secs(5),
    drain: Duration::from_secs(5),
};

/// Accepts any server certificate: the tests look at which one was presented.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn connect(
    addr: SocketAddr,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Tls {
    let provider = provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

async fn presented(addr: SocketAddr) -> Vec<u8> {
    let tls = connect(addr, &[&rustls::version::TLS13], &[b"http/1.1"]).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

async fn http1_get(tls: &mut Tls, path: &str) -> String {
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tls.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn tls12_and_tls13_with_http1_and_h2() {
    let pair = self_signed("localhost");
    let volume = SecretVolume::new(&pair);
    let server = start(&volume.cert(), &volume.key(), LIMITS).await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut tls = connect(server.addr, &[version], &[b"http/1.1"]).await;
        assert_eq!(
            tls.get_ref().1.protocol_version(),
            Some(version.version),
            "negotiated version"
        );
        let response = http1_get(&mut tls, "/healthz").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("ok"), "{response}");
    }
    let tls = connect(
        server.addr,
        &[&rustls::version::TLS13],
        &[b"h2", b"http/1.1"],
    )
    .await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // A real HTTP/2 exchange through reqwest, trusting the self-signed certificate.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pair.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", server.addr)
        .build()
        .unwrap();
    let response = client
        .get(format!("https://localhost:{}/readyz", server.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn certificate_rotated_without_restart() {
    let first = self_signed("localhost");
    let mut volume = SecretVolume::new(&first);
    let server = start(&volume.cert(), &volume.key(), LIMITS).await;
    assert_eq!(presented(server.addr).await, first.der);

    // A half-written update (garbage) is rejected and the current certificate kept.
    volume.update("not a certificate", "not a key");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .metrics
        .encode()
        .contains("portcullis_webhook_certificate_loads_total{outcome=\"error\"} 1")
    {
        assert!(Instant::now() < deadline, "bad certificate never noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(presented(server.addr).await, first.der);

    let second = self_signed("localhost");
    volume.update(&second.cert_pem, &second.key_pem);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if presented(server.addr).await == second.der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rotated certificate never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pkcs1_and_pkcs8_keys_are_accepted() {
    let provider = provider();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls");
    let key = std::fs::read_to_string(dir.join("rsa-pkcs1.key")).unwrap();
    assert!(
        key.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "a PKCS#1 key"
    );
    let server = start(
        &dir.join("rsa-pkcs1.crt"),
        &dir.join("rsa-pkcs1.key"),
        LIMITS,
    )
    .await;
    let mut tls = connect(server.addr, &[&rustls::version::TLS12], &[b"http/1.1"]).await;
    assert!(
        http1_get(&mut tls, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );

    let pair = self_signed("localhost");
    assert!(
        pair.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
        "a PKCS#8 key"
    );
    let volume = SecretVolume::new(&pair);
    assert!(Certificates::load(&volume.cert(), &volume.key(), provider).is_ok());
}

#[tokio::test]
async fn invalid_certificates_rejected_at_start() {
    let provider = provider();
    let a = self_signed("localhost");
    let b = self_signed("localhost");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cert_a = write("a.crt", &a.cert_pem);
    let key_b = write("b.key", &b.key_pem);
    let junk = write("junk", "hello");
    let missing = dir.path().join("missing");
    match Certificates::load(&cert_a, &key_b, provider.clone()) {
        Err(TlsError::Mismatch(_)) => {}
        other => panic!("mismatched key accepted: {other:?}"),
    }
    match Certificates::load(&junk, &key_b, provider.clone()) {
        Err(TlsError::NoCertificate { .. }) => {}
        other => panic!("{other:?}"),
    }
    match Certificates::load(&cert_a, &junk, provider.clone()) {
        Err(TlsError::NoKey { .. }) => {}
        other => panic!("{other:?}"),
    }
    match Certificates::load(&missing, &key_b, provider) {
        Err(TlsError::Read { .. }) => {}
        other => panic!("{other:?}"),
    }
}

async fn read_until_closed(tls: &mut Tls, within: Duration) -> String {
    let mut out = Vec::new();
    let result = tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(result.is_ok(), "the server kept a stalled client open");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let pair = self_signed("localhost");
    let volume = SecretVolume::new(&pair);
    let limits = Limits {
        header_read: Duration::from_millis(300),
        ..LIMITS
    };
    let server = start(&volume.cert(), &volume.key(), limits).await;
    let mut tls = connect(server.addr, &[&rustls::version::TLS13], &[b"http/1.1"]).await;
    tls.write_all(b"POST /mutate-v1-pod HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut tls, Duration::from_secs(10)).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn slow_body_gets_408() {
    let pair = self_signed("localhost");
    let volume = SecretVolume::new(&pair);
    let limits = Limits {
        request: Duration::from_millis(300),
        ..LIMITS
    };
    let server = start(&volume.cert(), &volume.key(), limits).await;
    let mut tls = connect(server.addr, &[&rustls::version::TLS13], &[b"http/1.1"]).await;
    tls.write_all(b"POST /mutate-v1-pod HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"apiVersion\"")
        .await
        .unwrap();
    let answer = read_until_closed(&mut tls, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn sigterm_drain_finishes_in_flight_requests() {
    let pair = self_signed("localhost");
    let volume = SecretVolume::new(&pair);
    let mut server = start(&volume.cert(), &volume.key(), LIMITS).await;
    // A request in flight: headers sent, body not yet complete.
    let mut tls = connect(server.addr, &[&rustls::version::TLS13], &[b"http/1.1"]).await;
    let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
    tls.write_all(
        format!(
            "POST /mutate-v1-pod HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tls.write_all(&body[..10]).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.take().unwrap().send(()).unwrap();
    // New connections are refused once the listener is dropped.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(server.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tls.write_all(&body[10..]).await.unwrap();
    let answer = read_until_closed(&mut tls, Duration::from_secs(10)).await;
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "in-flight request answered: {answer}"
    );
    assert!(
        answer.contains("the AdmissionReview has no request"),
        "{answer}"
    );
    tokio::time::timeout(Duration::from_secs(10), &mut server.task)
        .await
        .expect("serve returned after the drain")
        .unwrap();
}
