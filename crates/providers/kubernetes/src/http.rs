//! The HTTP side: a rustls client (ring provider, built here rather than taken from a
//! process-wide default), and mapping API server answers to [`ProviderError`]s.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use strongroom_provider_api::{ProviderError, SecretBytes};

/// Where TLS trust comes from.
pub(crate) enum Trust {
    /// These PEM certificates only.
    Pem(Vec<u8>),
    /// The system's roots (a server URL given without any CA).
    System,
}

/// How requests authenticate.
pub(crate) enum Credentials {
    /// `Authorization: Bearer`.
    Bearer(SecretBytes),
    /// A TLS client certificate (PEM chain and key).
    ClientCert {
        /// Certificate chain PEM.
        cert: SecretBytes,
        /// Private key PEM.
        key: SecretBytes,
    },
}

fn invalid(msg: impl Into<String>) -> ProviderError {
    ProviderError::InvalidConfig(msg.into())
}

/// The certificates in a PEM bundle; `what` names its source in messages.
pub(crate) fn pem_certs(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, ProviderError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid(format!("{what} is not valid PEM")))?;
    if certs.is_empty() {
        return Err(invalid(format!("{what} holds no PEM certificate")));
    }
    Ok(certs)
}

/// A reqwest client trusting `trust` and presenting `credentials`' certificate, if any.
pub(crate) fn client(
    trust: &Trust,
    credentials: &Credentials,
) -> Result<reqwest::Client, ProviderError> {
    let mut roots = rustls::RootCertStore::empty();
    match trust {
        Trust::Pem(pem) => {
            for cert in pem_certs(pem, "the server CA bundle")? {
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("the server CA bundle is unusable: {e}")))?;
            }
        }
        Trust::System => {
            let native = rustls_native_certs::load_native_certs();
            let _ = roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(invalid(
                    "no CA given (server.caBundle, server.caProvider) and no system roots found",
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots);
    let mut config = match credentials {
        Credentials::ClientCert { cert, key } => {
            let chain = pem_certs(cert.expose(), "the client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(key.expose())
                .map_err(|_| invalid("the client key is not a PEM private key"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(format!("the client certificate and key do not fit: {e}")))?
        }
        Credentials::Bearer(_) => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| invalid(format!("HTTP client setup failed: {e}")))
}

/// The `message` of a Kubernetes `Status` body, if the body is one. API server messages name
/// objects, users and fields, never Secret values.
fn status_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if v.get("kind").and_then(|k| k.as_str()) != Some("Status") {
        return None;
    }
    v.get("message")
        .and_then(|m| m.as_str())
        .map(|m| m.chars().take(400).collect())
}

/// Maps a non-success answer to an error. `what` describes the request (`get Secret "ns/x"`).
pub(crate) fn status_error(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    what: &str,
) -> ProviderError {
    let message = status_message(body);
    let detail = |fallback: &str| match &message {
        Some(m) => format!("{what}: {m}"),
        None => format!("{what}: {fallback}"),
    };
    match status {
        401 => ProviderError::Authentication(format!(
            "{what}: the API server rejected the credentials (401 Unauthorized)"
        )),
        403 => ProviderError::PermissionDenied(detail("403 Forbidden")),
        429 => ProviderError::Throttled {
            retry_after: retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
            message: detail("429 Too Many Requests"),
        },
        409 => ProviderError::Unavailable(detail("409 Conflict")),
        400 | 422 => ProviderError::InvalidConfig(detail(&format!("{status} from the API server"))),
        s if s >= 500 => ProviderError::Unavailable(detail(&format!("{s} from the API server"))),
        s => ProviderError::Malformed(detail(&format!("unexpected HTTP status {s}"))),
    }
}

/// Maps a transport failure (connect, TLS, timeout) to an error, with its causes.
pub(crate) fn transport_error(e: &reqwest::Error, what: &str) -> ProviderError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_builder() {
        ProviderError::InvalidConfig(format!("{what}: {text}"))
    } else {
        ProviderError::Unavailable(format!("{what}: {text}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const FORBIDDEN: &str = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"secrets \"x\" is forbidden: User \"u\" cannot get resource \"secrets\"","reason":"Forbidden","code":403}"#;

    #[test]
    fn statuses_map_to_categories() {
        let w = "get Secret \"ns/x\"";
        assert!(matches!(
            status_error(401, None, b"", w),
            ProviderError::Authentication(_)
        ));
        let denied = status_error(403, None, FORBIDDEN.as_bytes(), w);
        assert!(
            matches!(&denied, ProviderError::PermissionDenied(m) if m.contains("cannot get resource")),
            "{denied}"
        );
        assert_eq!(
            status_error(429, Some("7"), b"", w).retry_after(),
            Some(Duration::from_secs(7))
        );
        assert_eq!(status_error(429, Some("soon"), b"", w).retry_after(), None);
        for s in [500, 502, 503, 504, 409] {
            assert!(status_error(s, None, b"oops", w).is_retryable(), "{s}");
        }
        assert!(matches!(
            status_error(422, None, b"", w),
            ProviderError::InvalidConfig(_)
        ));
        assert!(matches!(
            status_error(418, None, b"", w),
            ProviderError::Malformed(_)
        ));
    }

    #[test]
    fn bodies_that_are_not_status_stay_out_of_messages() {
        let body = br#"{"kind":"Secret","data":{"k":"c2VjcmV0"},"message":"secret"}"#;
        let e = status_error(500, None, body, "get").to_string();
        assert!(!e.contains("c2VjcmV0") && !e.contains("secret\""), "{e}");
    }

    #[test]
    fn pem_errors_do_not_quote_the_input() {
        let e = pem_certs(b"not a pem sekret", "the server CA bundle").unwrap_err();
        assert!(!e.to_string().contains("sekret"));
        let bad_key = Credentials::ClientCert {
            cert: SecretBytes::from(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            ),
            key: SecretBytes::from("sekret"),
        };
        let e = client(&Trust::System, &bad_key)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!e.contains("sekret"), "{e}");
    }
}
