//! The HTTP(S) side of a Prometheus query: [`Prometheus::fetch`] makes the call that
//! [`query::api_request`] describes and reads the answer with [`query::evaluate`].

use std::time::Duration;

use jiff::Timestamp;
use reqwest::{Certificate, Client, Url};

use crate::query::{self, QueryError, RangeQuery};

/// How long one request may take, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest answer read; a longer one is an error rather than memory use without bound.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// HTTP clients for Prometheus-compatible servers, built once and shared (they pool
/// connections): one verifying TLS certificates, one that does not (a provider's
/// `insecureSkipTlsVerify: true`).
#[derive(Clone, Debug)]
pub struct Prometheus {
    verifying: Client,
    insecure: Client,
}

/// A successful query.
#[derive(Clone, Debug, PartialEq)]
pub struct Fetched {
    /// The value for `status.value` ([`query::format_value`]).
    pub value: String,
    /// The JSON body of the answer, as received (for `status.rawValue`).
    pub raw: Vec<u8>,
}

/// Why the HTTP clients could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the Prometheus HTTP client: {0}")]
pub struct BuildError(#[source] reqwest::Error);

/// Why a query gave no value. Every message names the URL asked (without its parameters, and
/// with any password in it masked).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid targetServer {target:?}: {reason}")]
    InvalidUrl { target: String, reason: String },
    /// The request could not be made: the range reaches before the earliest supported time.
    #[error("{0}")]
    Request(QueryError),
    /// Connecting, TLS, or sending failed.
    #[error("cannot reach Prometheus at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("Prometheus at {url} did not answer within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout { url: String },
    /// An HTTP status other than 2xx, with Prometheus's `errorType: error` when the body has
    /// them, else the start of the body.
    #[error("Prometheus at {url} answered HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("reading the answer of Prometheus at {url}: {message}")]
    Body { url: String, message: String },
    /// A 2xx answer that gives no value: an API error, no or several series, not a number...
    #[error("Prometheus at {url}: {source}")]
    Answer {
        url: String,
        #[source]
        source: QueryError,
    },
}

impl Prometheus {
    /// Clients whose verifying one trusts the system's root certificates (`SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` are honoured), or Mozilla's (webpki-root-certs) when none can be loaded.
    pub fn new() -> Result<Prometheus, BuildError> {
        Prometheus::with_roots(system_roots())
    }

    /// Clients whose verifying one trusts exactly `roots`.
    pub fn with_roots(roots: Vec<Certificate>) -> Result<Prometheus, BuildError> {
        let builder = || {
            Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .user_agent(concat!("portcullis-metrics/", env!("CARGO_PKG_VERSION")))
        };
        let mut verifying = builder();
        for root in roots {
            verifying = verifying.add_root_certificate(root);
        }
        Ok(Prometheus {
            verifying: verifying.build().map_err(BuildError)?,
            insecure: builder()
                .danger_accept_invalid_certs(true)
                .build()
                .map_err(BuildError)?,
        })
    }

    /// Asks the server at `target_server` (an `http://` or `https://` URL, with or without a
    /// trailing `/`, possibly with a path prefix) for `query` at `now`: an instant query, or a
    /// range query when `range` is given. `basic_auth` is (user, password); `insecure` skips
    /// certificate verification.
    pub async fn fetch(
        &self,
        target_server: &str,
        basic_auth: Option<(&str, &str)>,
        insecure: bool,
        query: &str,
        range: Option<&RangeQuery>,
        now: Timestamp,
    ) -> Result<Fetched, FetchError> {
        let request = query::api_request(query, range, now).map_err(FetchError::Request)?;
        let url = parse_target(target_server, request.path)?;
        let shown = display_url(&url);
        let client = if insecure {
            &self.insecure
        } else {
            &self.verifying
        };
        let mut builder = client.get(url).query(&request.params);
        if let Some((user, password)) = basic_auth {
            builder = builder.basic_auth(user, Some(password));
        }
        tracing::debug!(url = %shown, query, ?range, "querying Prometheus");
        let mut response = builder
            .send()
            .await
            .map_err(|e| transport_error(&shown, &e))?;
        let status = response.status();
        let mut raw = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if raw.len() + chunk.len() > MAX_ANSWER_BYTES {
                        return Err(FetchError::Body {
                            url: shown,
                            message: format!("the answer is longer than {MAX_ANSWER_BYTES} bytes"),
                        });
                    }
                    raw.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(FetchError::Timeout { url: shown }),
                Err(e) => {
                    return Err(FetchError::Body {
                        url: shown,
                        message: error_chain(&e),
                    });
                }
            }
        }
        if !status.is_success() {
            let message = match query::api_error(&raw) {
                Some((error_type, error)) => format!("{error_type}: {error}"),
                None => body_excerpt(&raw),
            };
            return Err(FetchError::Http {
                url: shown,
                status: status.as_u16(),
                message,
            });
        }
        let value = query::evaluate(&raw, range)
            .map_err(|source| FetchError::Answer { url: shown, source })?;
        Ok(Fetched {
            value: query::format_value(value),
            raw,
        })
    }
}

/// The system's trust roots, or Mozilla's when the system gives none.
fn system_roots() -> Vec<Certificate> {
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "loading the system's root certificates");
    }
    let roots: Vec<Certificate> = native
        .certs
        .iter()
        .filter_map(|der| Certificate::from_der(der).ok())
        .collect();
    if !roots.is_empty() {
        return roots;
    }
    tracing::warn!("no system root certificates: trusting Mozilla's (webpki-root-certs)");
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| Certificate::from_der(der).ok())
        .collect()
}

fn parse_target(target_server: &str, path: &str) -> Result<Url, FetchError> {
    let invalid = |reason: String| FetchError::InvalidUrl {
        target: target_server.to_owned(),
        reason,
    };
    let url = Url::parse(&query::endpoint(target_server.trim(), path))
        .map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".to_owned()));
    }
    Ok(url)
}

/// The URL without query and fragment, its password masked.
fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    if shown.password().is_some() {
        let _ = shown.set_password(Some("xxxxx"));
    }
    shown.to_string()
}

fn transport_error(url: &str, e: &reqwest::Error) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout {
            url: url.to_owned(),
        }
    } else {
        FetchError::Unreachable {
            url: url.to_owned(),
            message: error_chain(e),
        }
    }
}

/// The causes of a reqwest error, outermost first, without the outer message (which repeats the
/// URL with all its parameters): `client error (Connect): tcp connect error: Connection refused`.
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// The body of an error answer as text, trimmed and cut to 512 characters.
fn body_excerpt(raw: &[u8]) -> String {
    const MAX: usize = 512;
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        for (target, want) in [
            ("http://prom:9090", Ok("http://prom:9090/api/v1/query")),
            ("http://prom:9090/", Ok("http://prom:9090/api/v1/query")),
            (" https://h/prefix/ ", Ok("https://h/prefix/api/v1/query")),
            (
                "http://u:secret@prom:9090",
                Ok("http://u:xxxxx@prom:9090/api/v1/query"),
            ),
            (
                "prom:9090",
                Err("invalid targetServer \"prom:9090\": scheme \"prom\" is not http or https"),
            ),
            (
                "ftp://prom",
                Err("invalid targetServer \"ftp://prom\": scheme \"ftp\" is not http or https"),
            ),
            (
                "",
                Err("invalid targetServer \"\": relative URL without a base"),
            ),
        ] {
            let got = parse_target(target, query::QUERY_PATH)
                .map(|u| display_url(&u))
                .map_err(|e| e.to_string());
            assert_eq!(
                got,
                want.map(str::to_owned).map_err(str::to_owned),
                "{target:?}"
            );
        }
    }

    #[test]
    fn excerpts() {
        assert_eq!(body_excerpt(b"  Unauthorized\n"), "Unauthorized");
        assert_eq!(body_excerpt(b""), "(empty body)");
        let long = "x".repeat(600);
        assert_eq!(
            body_excerpt(long.as_bytes()),
            format!("{}...", &long[..512])
        );
    }

    #[test]
    fn clients_build() {
        Prometheus::new().expect("clients");
    }
}
