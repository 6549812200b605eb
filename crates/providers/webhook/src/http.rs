//! The HTTP side of a webhook: the client (the spec's CA, else the system roots; the
//! timeout) and one call, its answer's status sorted into [`ProviderError`]s.
//!
//! Statuses as upstream reads them: 2xx is the answer, 404 "does not exist" (a
//! [`ProviderError::NotFound`]), everything else "endpoint gave error <status>": 401 and 403
//! as permission denied, 429 as throttling (with `Retry-After`), others (304 too, which
//! upstream reports as "not modified") as unavailable, so the target Secret is kept.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use strongroom_core::crd::external_secrets::WebhookProvider as Spec;
use strongroom_provider_api::{CallObserver, ProviderError};

use crate::connection::Connection;
use crate::handshake;
use crate::ntlm::NtlmCredentials;
use crate::template::TemplateData;

/// The largest answer read (a Secret holds at most 1 MiB).
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// The metric labels of a call, as upstream counts it.
pub const METRIC: (&str, &str) = ("Webhook", "HTTPRequest");

/// One rendered request. Its `Debug` shows the method and header names only: the URL, header
/// values and body may hold credentials or the pushed value.
#[derive(Clone)]
pub struct Request {
    /// The HTTP method.
    pub method: String,
    /// The rendered URL (never shown in messages).
    pub url: String,
    /// Rendered headers, in the spec's order.
    pub headers: Vec<(String, String)>,
    /// The rendered body (not sent when empty on GET and HEAD).
    pub body: String,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Request {
    /// Renders `spec`'s URL, headers and `body` (a template) with `data`; the method is the
    /// spec's, else `default_method`. `hidden` are further values no message may show.
    pub fn render(
        spec: &Spec,
        data: &TemplateData,
        default_method: &str,
        body: &str,
        hidden: &[&str],
    ) -> Result<Self, ProviderError> {
        let method = spec
            .method
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or(default_method)
            .to_string();
        let url = data.render_url(&spec.url, hidden)?;
        let body = data.render("body", body, hidden)?;
        let mut headers = Vec::new();
        for (name, template) in spec.headers.iter().flatten() {
            let value = data.render(&format!("header {name}"), template, hidden)?;
            headers.push((name.clone(), value));
        }
        Ok(Self {
            method,
            url,
            headers,
            body,
        })
    }
}

/// An HTTP client for one spec.
#[derive(Clone)]
pub struct Endpoint {
    client: reqwest::Client,
    /// The TLS setup, for the connections of NTLM calls.
    tls: rustls::ClientConfig,
    timeout: Duration,
}

fn setup(msg: String) -> ProviderError {
    ProviderError::InvalidConfig(msg)
}

fn call_failed(e: reqwest::Error) -> ProviderError {
    ProviderError::Unavailable(format!("failed to call endpoint: {}", transport_error(e)))
}

/// A [`Request`] checked once and sent as often as a handshake needs.
pub struct Prepared {
    method: reqwest::Method,
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    body: Option<String>,
}

impl Prepared {
    /// Checks `request`'s method, URL and headers.
    fn new(request: Request) -> Result<Self, ProviderError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            setup(format!(
                "failed to create request: invalid method {:?}",
                request.method
            ))
        })?;
        let url = reqwest::Url::parse(&request.url).map_err(|e| {
            setup(format!(
                "failed to create request: the rendered url is not a URL: {e}"
            ))
        })?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &request.headers {
            let header =
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    setup(format!(
                        "failed to create request: invalid header name {name:?}"
                    ))
                })?;
            let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                setup(format!(
                    "failed to create request: invalid value for header {name}"
                ))
            })?;
            headers.append(header, value);
        }
        let body = (!request.body.is_empty()
            || !matches!(method, reqwest::Method::GET | reqwest::Method::HEAD))
        .then_some(request.body);
        Ok(Self {
            method,
            url,
            headers,
            body,
        })
    }

    /// Sends the request through `client` as it is.
    async fn send(&self, client: &reqwest::Client) -> Result<reqwest::Response, ProviderError> {
        let mut builder = client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone());
        if let Some(body) = &self.body {
            builder = builder.body(body.clone());
        }
        builder.send().await.map_err(call_failed)
    }

    /// The method.
    pub fn method(&self) -> &reqwest::Method {
        &self.method
    }

    /// The URL.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// The spec's headers.
    pub fn headers(&self) -> &reqwest::header::HeaderMap {
        &self.headers
    }

    /// The body, when one is sent.
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }
}

/// Appends `chunk` to an answer's `body`, refusing an answer larger than [`MAX_ANSWER_BYTES`].
pub(crate) fn append_limited(body: &mut Vec<u8>, chunk: &[u8]) -> Result<(), ProviderError> {
    if body.len() + chunk.len() > MAX_ANSWER_BYTES {
        return Err(ProviderError::Malformed(format!(
            "the answer is larger than {MAX_ANSWER_BYTES} bytes"
        )));
    }
    body.extend_from_slice(chunk);
    Ok(())
}

/// A whole answer: status, headers and body (at most [`MAX_ANSWER_BYTES`]).
pub struct Answer {
    /// The status.
    pub status: reqwest::StatusCode,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// Reads `response` to the end.
    async fn read(mut response: reqwest::Response) -> Result<Self, ProviderError> {
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            ProviderError::Unavailable(format!("failed to read the answer: {}", transport_error(e)))
        })? {
            append_limited(&mut body, &chunk)?;
        }
        Ok(Self {
            status,
            headers,
            body,
        })
    }
}

impl Endpoint {
    /// A client trusting `ca_pem` (PEM certificates) instead of the system roots when given,
    /// giving up a call after `timeout`.
    pub fn new(ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Self, ProviderError> {
        let tls = tls_config(ca_pem)?;
        let client = client(tls.clone(), timeout)?;
        Ok(Self {
            client,
            tls,
            timeout,
        })
    }

    /// Sends `request` and returns the body of a 2xx answer. `subject` names what was asked
    /// for in a 404's [`ProviderError::NotFound`]. Each call is reported to `calls`.
    pub async fn fetch(
        &self,
        request: Request,
        subject: &str,
        calls: &dyn CallObserver,
    ) -> Result<Vec<u8>, ProviderError> {
        self.fetch_as(request, None, subject, calls).await
    }

    /// [`Endpoint::fetch`], authenticating with `ntlm` when given: the handshake of
    /// [`crate::handshake`] on one connection of its own ([`Connection`]), the spec's
    /// `Authorization` header left out as upstream overwrites it; the timeout covers the whole
    /// handshake. A 401 after the credentials were sent is a
    /// [`ProviderError::Authentication`] naming the credentials' owner.
    pub async fn fetch_as(
        &self,
        request: Request,
        ntlm: Option<&NtlmCredentials>,
        subject: &str,
        calls: &dyn CallObserver,
    ) -> Result<Vec<u8>, ProviderError> {
        let prepared = Prepared::new(request)?;
        let (answer, credentials_sent) = match ntlm {
            None => {
                let sent = prepared.send(&self.client).await;
                calls.observe(METRIC.0, METRIC.1, sent.is_ok());
                (Answer::read(sent?).await?, None)
            }
            Some(creds) => {
                let handshake = async {
                    let mut connection = Connection::open(prepared.url(), &self.tls).await?;
                    handshake::send(&mut connection, &prepared, creds).await
                };
                let sent = tokio::time::timeout(self.timeout, handshake)
                    .await
                    .unwrap_or_else(|_| {
                        Err(ProviderError::Unavailable(format!(
                            "failed to call endpoint: no answer in {:?}",
                            self.timeout
                        )))
                    });
                calls.observe(METRIC.0, METRIC.1, sent.is_ok());
                sent?
            }
        };
        let status = answer.status;
        if let (reqwest::StatusCode::UNAUTHORIZED, Some(scheme), Some(creds)) =
            (status, credentials_sent, ntlm)
        {
            return Err(ProviderError::Authentication(format!(
                "{}: the endpoint refused the auth.ntlm credentials ({scheme}): endpoint gave \
                 error {status}",
                creds.owner()
            )));
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ProviderError::not_found_in(
                subject,
                "the endpoint answered 404 Not Found",
            ));
        }
        if !status.is_success() {
            return Err(status_error(status, &answer.headers));
        }
        Ok(answer.body)
    }
}

/// An HTTP client (rustls on ring, HTTP/2 or 1.1) trusting `ca_pem` (PEM certificates) when
/// given, else the system roots (which honour `SSL_CERT_FILE` and `SSL_CERT_DIR`), giving up a
/// call after `timeout`. The controller's generators use it too.
pub fn http_client(
    ca_pem: Option<&[u8]>,
    timeout: Duration,
) -> Result<reqwest::Client, ProviderError> {
    client(tls_config(ca_pem)?, timeout)
}

/// The TLS setup (rustls on ring) trusting `ca_pem` when given, else the system roots.
fn tls_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, ProviderError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| setup("the CA bundle is not valid PEM".into()))?;
            if certs.is_empty() {
                return Err(setup(
                    "failed to append cabundle: it holds no PEM certificate".into(),
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| setup(format!("failed to append cabundle: {e}")))?;
            }
        }
        None => {
            let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| setup(format!("TLS setup failed: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// A client on `tls` (HTTP/2 or 1.1 by ALPN).
fn client(
    mut tls: rustls::ClientConfig,
    timeout: Duration,
) -> Result<reqwest::Client, ProviderError> {
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .build()
        .map_err(|e| setup(format!("HTTP client setup failed: {e}")))
}

/// A non-2xx status other than 404, in upstream's words ("endpoint gave error 503 Service
/// Unavailable").
fn status_error(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
) -> ProviderError {
    let message = format!("endpoint gave error {status}");
    match status.as_u16() {
        401 | 403 => ProviderError::PermissionDenied(message),
        429 => ProviderError::Throttled {
            retry_after: headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
            message,
        },
        _ => ProviderError::Unavailable(message),
    }
}

/// A transport error with its causes (a TLS or connection error says why), without the URL
/// (a rendered URL may hold a secret value).
pub fn transport_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_debug_shows_no_url_header_value_or_body() {
        let req = Request {
            method: "POST".into(),
            url: "https://h/?token=url-canary".into(),
            headers: vec![("Authorization".into(), "Bearer header-canary".into())],
            body: "body-canary".into(),
        };
        let shown = format!("{req:?}");
        assert!(
            shown.contains("POST") && shown.contains("Authorization"),
            "{shown}"
        );
        assert!(!shown.contains("canary"), "{shown}");
    }

    #[test]
    fn statuses_sort_into_categories() {
        let none = reqwest::header::HeaderMap::new();
        let e = status_error(reqwest::StatusCode::SERVICE_UNAVAILABLE, &none);
        assert_eq!(
            e,
            ProviderError::Unavailable("endpoint gave error 503 Service Unavailable".into())
        );
        assert_eq!(
            status_error(reqwest::StatusCode::FORBIDDEN, &none).category(),
            "permission_denied"
        );
        let mut retry = reqwest::header::HeaderMap::new();
        retry.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("7"),
        );
        assert_eq!(
            status_error(reqwest::StatusCode::TOO_MANY_REQUESTS, &retry).retry_after(),
            Some(Duration::from_secs(7))
        );
        assert!(status_error(reqwest::StatusCode::NOT_MODIFIED, &none).is_retryable());
    }
}
