//! The store's `vault` block: static checks, where a key lives (mount and path, upstream's
//! `buildPath` rules), and the HTTP client (trust, client certificate, headers, timeouts).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use strongroom_core::crd::external_secrets::{VaultKvVersion, VaultProvider};
use strongroom_provider_api::{
    ProviderEnv, ProviderError, SecretBytes, StoreContext, decode_ca_bundle,
};

/// Connect timeout of every request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request timeout: a stopped or partitioned server fails the call within this.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn invalid(msg: impl Into<String>) -> ProviderError {
    ProviderError::InvalidConfig(msg.into())
}

/// The store's `vault` block.
pub(crate) fn spec(store: &StoreContext) -> Result<&VaultProvider, ProviderError> {
    store
        .provider
        .vault
        .as_ref()
        .ok_or_else(|| invalid("spec.provider.vault is missing"))
}

/// Where the KV engine is mounted and which version it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kv {
    /// `path` without slashes at either end; `None` when the key names its mount.
    pub mount: Option<String>,
    /// KV v2 unless `version: v1`.
    pub v2: bool,
}

/// One key resolved to the mount and the path inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    /// The engine mount (`secret`, `team/kv`).
    pub mount: String,
    /// The path inside the mount (`app/db`).
    pub path: String,
}

impl Kv {
    /// From the store block.
    pub fn from_spec(spec: &VaultProvider) -> Self {
        Self {
            mount: spec
                .path
                .as_deref()
                .map(|p| p.trim_matches('/').to_string())
                .filter(|p| !p.is_empty()),
            v2: spec.version != Some(VaultKvVersion::V1),
        }
    }

    /// Upstream's `buildPath`: with a mount, a key may repeat it (`secret/x`, on v2 also
    /// `secret/data/x`); without one, the key's first segment is the mount, or on v2 the
    /// part before `/data/` when the key spells it.
    pub fn locate(&self, key: &str) -> Result<Location, ProviderError> {
        let key = key.trim_start_matches('/');
        if let Some(mount) = &self.mount {
            let mut rest = key;
            if let Some(stripped) = rest.strip_prefix(&format!("{mount}/")) {
                rest = stripped;
                if self.v2
                    && let Some(stripped) = rest.strip_prefix("data/")
                {
                    rest = stripped;
                }
            }
            return Ok(Location {
                mount: mount.clone(),
                path: rest.to_string(),
            });
        }
        if self.v2
            && let Some((mount, path)) = key.split_once("/data/")
        {
            return Ok(Location {
                mount: mount.to_string(),
                path: path.to_string(),
            });
        }
        match key.split_once('/') {
            Some((mount, path)) if !mount.is_empty() && !path.is_empty() => Ok(Location {
                mount: mount.to_string(),
                path: path.to_string(),
            }),
            _ => Err(ProviderError::InvalidConfig(format!(
                "key {key:?} names no mount: set the store's path or write the key as <mount>/<path>"
            ))),
        }
    }

    /// Where a `find` lists: the mount and the folder inside it (empty for the root).
    pub fn search_root(&self, find_path: Option<&str>) -> Result<Location, ProviderError> {
        let folder = find_path.unwrap_or("").trim_matches('/');
        match &self.mount {
            Some(mount) => Ok(Location {
                mount: mount.clone(),
                path: folder.to_string(),
            }),
            None => match folder.split_once('/') {
                Some((mount, rest)) => Ok(Location {
                    mount: mount.to_string(),
                    path: rest.to_string(),
                }),
                None if !folder.is_empty() => Ok(Location {
                    mount: folder.to_string(),
                    path: String::new(),
                }),
                None => Err(invalid(
                    "find without the store's path needs find.path starting with the mount",
                )),
            },
        }
    }
}

/// The request headers every call carries: `headers`, and `X-Vault-Inconsistent` for
/// `forwardInconsistent`.
pub(crate) fn default_headers(spec: &VaultProvider) -> Result<HeaderMap, ProviderError> {
    let mut map = HeaderMap::new();
    let empty = BTreeMap::new();
    for (name, value) in spec.headers.as_ref().unwrap_or(&empty) {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("headers: {name:?} is not a header name")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            invalid(format!(
                "headers: the value of {name} is not a header value"
            ))
        })?;
        map.insert(name, value);
    }
    if spec.forward_inconsistent == Some(true) {
        map.insert(
            HeaderName::from_static("x-vault-inconsistent"),
            HeaderValue::from_static("forward-active-node"),
        );
    }
    Ok(map)
}

/// Static checks of the block (no I/O).
pub(crate) fn validate(store: &StoreContext) -> Result<Vec<String>, ProviderError> {
    let spec = spec(store)?;
    server_url(&spec.server)?;
    store.retry_settings()?;
    if let Some(bundle) = spec.ca_bundle.as_deref().filter(|b| !b.is_empty()) {
        decode_ca_bundle(bundle, "caBundle")?;
    }
    if let Some(ca) = &spec.ca_provider {
        store.check_ca_provider(ca, "caProvider")?;
    }
    default_headers(spec)?;
    crate::auth::Method::of(spec)?;
    Ok(Vec::new())
}

/// `server` as an http(s) URL without a trailing slash.
pub(crate) fn server_url(server: &str) -> Result<String, ProviderError> {
    let server = server.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(server)
        .map_err(|e| invalid(format!("server {server:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Err(invalid(format!("server {server:?} is not an http(s) URL")));
    }
    Ok(server.to_string())
}

/// A TLS client certificate: PEM chain and key.
pub(crate) struct ClientCert {
    pub cert: SecretBytes,
    pub key: SecretBytes,
}

fn pem_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, ProviderError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid(format!("{what} is not valid PEM")))?;
    if certs.is_empty() {
        return Err(invalid(format!("{what} holds no PEM certificate")));
    }
    Ok(certs)
}

/// The reqwest client every call of one store goes through: rustls on the ring provider,
/// the store's CA (else the system roots), an optional client certificate (`tls`, or
/// `auth.cert`), the store's headers, and bounded timeouts.
pub(crate) async fn http_client(
    store: &StoreContext,
    spec: &VaultProvider,
    env: &ProviderEnv,
    client_cert: Option<&ClientCert>,
) -> Result<reqwest::Client, ProviderError> {
    let mut roots = rustls::RootCertStore::empty();
    let configured = store
        .ca_pem(
            env.credentials.as_ref(),
            spec.ca_bundle.as_deref(),
            spec.ca_provider.as_ref(),
            "",
        )
        .await?;
    match configured {
        Some(pem) => {
            for cert in pem_certs(&pem, "the server CA bundle")? {
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("the server CA bundle is unusable: {e}")))?;
            }
        }
        None => {
            let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(format!("TLS setup failed: {e}")))?
    .with_root_certificates(roots);
    let mut tls = match client_cert {
        Some(c) => {
            let chain = pem_certs(c.cert.expose(), "the client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(c.key.expose())
                .map_err(|_| invalid("the client key is not a PEM private key"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(format!("the client certificate and key do not fit: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .default_headers(default_headers(spec)?)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| invalid(format!("HTTP client setup failed: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn kv(mount: Option<&str>, v2: bool) -> Kv {
        Kv {
            mount: mount.map(str::to_string),
            v2,
        }
    }

    fn at(kv: &Kv, key: &str) -> (String, String) {
        let l = kv.locate(key).unwrap();
        (l.mount, l.path)
    }

    #[test]
    fn keys_resolve_as_upstream_builds_paths() {
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        let v2 = kv(Some("secret/path"), true);
        assert_eq!(at(&v2, "foo"), s("secret/path", "foo"));
        assert_eq!(at(&v2, "secret/path/foo"), s("secret/path", "foo"));
        assert_eq!(at(&v2, "secret/path/data/foo"), s("secret/path", "foo"));
        let v1 = kv(Some("secret/path"), false);
        assert_eq!(
            at(&v1, "secret/path/data/foo"),
            s("secret/path", "data/foo")
        );
        let bare = kv(None, true);
        assert_eq!(at(&bare, "secret/path/foo"), s("secret", "path/foo"));
        assert_eq!(at(&bare, "secret/path/data/foo"), s("secret/path", "foo"));
        assert_eq!(at(&kv(None, false), "kv/a/b"), s("kv", "a/b"));
        assert!(bare.locate("lonely").is_err());
        assert_eq!(
            Kv::from_spec(&VaultProvider {
                path: Some("/secret/".into()),
                ..VaultProvider::default()
            }),
            kv(Some("secret"), true)
        );
    }

    #[test]
    fn search_roots() {
        let r = kv(None, true).search_root(Some("secret/app")).unwrap();
        assert_eq!((r.mount.as_str(), r.path.as_str()), ("secret", "app"));
        let r = kv(Some("secret"), true).search_root(None).unwrap();
        assert_eq!((r.mount.as_str(), r.path.as_str()), ("secret", ""));
        assert!(kv(None, true).search_root(None).is_err());
    }

    #[test]
    fn headers_and_urls() {
        let spec = VaultProvider {
            headers: Some(BTreeMap::from([("X-Team".into(), "a".into())])),
            forward_inconsistent: Some(true),
            ..VaultProvider::default()
        };
        let h = default_headers(&spec).unwrap();
        assert_eq!(h["x-team"], "a");
        assert_eq!(h["x-vault-inconsistent"], "forward-active-node");
        let bad = VaultProvider {
            headers: Some(BTreeMap::from([("bad name".into(), "canary".into())])),
            ..VaultProvider::default()
        };
        assert!(default_headers(&bad).is_err());
        assert_eq!(server_url("http://h:8200/").unwrap(), "http://h:8200");
        assert!(server_url("ftp://h").is_err());
        assert!(server_url("h:8200").is_err());
    }
}
