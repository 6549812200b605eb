//! The HTTPS client: rustls on *ring*, trusting the system roots plus `SSL_CERT_FILE`
//! (upstream's `azurekv` block has no CA field), plus a test's extra CA.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use strongroom_provider_api::ProviderError;

use crate::config::{Endpoints, invalid};

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The usual system bundle files (those Go's `crypto/x509` reads on Linux): read as well when
/// `SSL_CERT_FILE` is set, since rustls-native-certs then reads only that file.
const SYSTEM_BUNDLES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

fn add_pem(roots: &mut rustls::RootCertStore, pem: &[u8]) -> usize {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    roots.add_parsable_certificates(certs).0
}

/// The trusted roots: the system's, `SSL_CERT_FILE`/`SSL_CERT_DIR` when set (in addition,
/// not instead), and `endpoints.extra_ca_pem`.
fn roots(endpoints: &Endpoints) -> Result<rustls::RootCertStore, ProviderError> {
    let mut roots = rustls::RootCertStore::empty();
    if endpoints.process_trust {
        // With SSL_CERT_FILE/SSL_CERT_DIR set this reads those; otherwise the system store.
        let native = rustls_native_certs::load_native_certs();
        let _ = roots.add_parsable_certificates(native.certs);
        let overridden = std::env::var_os("SSL_CERT_FILE").is_some()
            || std::env::var_os("SSL_CERT_DIR").is_some();
        if overridden
            && let Some(bundle) = SYSTEM_BUNDLES.iter().find_map(|p| std::fs::read(p).ok())
        {
            add_pem(&mut roots, &bundle);
        }
    } else {
        let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    if let Some(pem) = &endpoints.extra_ca_pem
        && add_pem(&mut roots, pem) == 0
    {
        return Err(invalid("the extra CA bundle holds no usable certificate"));
    }
    Ok(roots)
}

/// The client every Key Vault, login and IMDS request goes through. Redirects are not
/// followed (a bearer token must not travel to another host).
pub(crate) fn http_client(endpoints: &Endpoints) -> Result<reqwest::Client, ProviderError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(format!("TLS setup failed: {e}")))?
    .with_root_certificates(roots(endpoints)?)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| invalid(format!("HTTP client setup failed: {e}")))
}
