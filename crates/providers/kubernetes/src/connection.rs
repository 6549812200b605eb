//! Turning a store's `kubernetes` block into a server URL, TLS trust and credentials: the
//! static checks of `ValidateStore`, and the credential lookups of `NewClient`.

use std::time::{Duration, Instant};

use strongroom_core::crd::external_secrets::{
    KubernetesProvider, SecretKeySelector, ServiceAccountSelector, StoreKind,
};
use strongroom_provider_api::{ProviderEnv, ProviderError, StoreContext, decode_ca_bundle};

use crate::http::{Credentials, Trust};
use crate::kubeconfig::{self, KubeconfigAuth};

/// Where the in-cluster CA and token are mounted.
const IN_CLUSTER_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// Lifetime asked for ServiceAccount tokens (upstream's value).
const TOKEN_SECONDS: i64 = 3600;

/// Everything needed to talk to the API server.
pub(crate) struct Connection {
    /// Base URL without a trailing slash.
    pub base: String,
    /// TLS trust.
    pub trust: Trust,
    /// How requests authenticate.
    pub credentials: Credentials,
    /// When the credentials expire (minted ServiceAccount tokens).
    pub valid_until: Option<Instant>,
}

fn invalid(msg: impl Into<String>) -> ProviderError {
    ProviderError::InvalidConfig(msg.into())
}

/// The store's `kubernetes` block.
pub(crate) fn spec(store: &StoreContext) -> Result<&KubernetesProvider, ProviderError> {
    store
        .provider
        .kubernetes
        .as_ref()
        .ok_or_else(|| invalid("spec.provider.kubernetes is missing"))
}

/// `remoteNamespace`, `default` when empty.
pub(crate) fn remote_namespace(spec: &KubernetesProvider) -> String {
    spec.remote_namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_string()
}

/// The one authentication method a block configures.
pub(crate) enum Method<'a> {
    Token(&'a SecretKeySelector),
    Cert(&'a SecretKeySelector, &'a SecretKeySelector),
    ServiceAccount(&'a ServiceAccountSelector),
    AuthRef(&'a SecretKeySelector),
}

const NEED_ONE: &str = "spec.provider.kubernetes needs exactly one of auth.token, auth.cert, \
                        auth.serviceAccount and authRef";

static EMPTY_SELECTOR: SecretKeySelector = SecretKeySelector {
    name: None,
    namespace: None,
    key: None,
};

/// The authentication method, or `InvalidConfig` when none or several are set.
pub(crate) fn method(spec: &KubernetesProvider) -> Result<Method<'_>, ProviderError> {
    let mut found = Vec::new();
    if let Some(auth) = &spec.auth {
        if let Some(t) = &auth.token {
            found.push(Method::Token(
                t.bearer_token.as_ref().unwrap_or(&EMPTY_SELECTOR),
            ));
        }
        if let Some(c) = &auth.cert {
            found.push(Method::Cert(
                c.client_cert.as_ref().unwrap_or(&EMPTY_SELECTOR),
                c.client_key.as_ref().unwrap_or(&EMPTY_SELECTOR),
            ));
        }
        if let Some(sa) = &auth.service_account {
            found.push(Method::ServiceAccount(sa));
        }
    }
    if let Some(r) = &spec.auth_ref {
        found.push(Method::AuthRef(r));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(invalid(format!("{NEED_ONE}; none is set"))),
        _ => Err(invalid(format!("{NEED_ONE}; several are set"))),
    }
}

/// Whether a ClusterSecretStore's credentials are resolved in the reader's namespace
/// (upstream's `isReferentSpec`, plus `authRef` without a namespace).
pub(crate) fn is_referent(store: &StoreContext, spec: &KubernetesProvider) -> bool {
    if store.kind != StoreKind::ClusterSecretStore {
        return false;
    }
    match method(spec) {
        Ok(Method::Token(s)) | Ok(Method::AuthRef(s)) => s.namespace.is_none(),
        Ok(Method::Cert(c, k)) => c.namespace.is_none() || k.namespace.is_none(),
        Ok(Method::ServiceAccount(sa)) => sa.namespace.is_none(),
        Err(_) => false,
    }
}

/// Upstream's `ValidateSecretSelector` (`referent: false`) and
/// `ValidateReferentSecretSelector` (`referent: true`), plus non-empty name and key.
fn check_selector(
    store: &StoreContext,
    field: &str,
    selector: &SecretKeySelector,
    referent: bool,
) -> Result<(), ProviderError> {
    if selector.name.as_deref().unwrap_or("").is_empty() {
        return Err(invalid(format!("{field}.name cannot be empty")));
    }
    if selector.key.as_deref().unwrap_or("").is_empty() {
        return Err(invalid(format!("{field}.key cannot be empty")));
    }
    check_namespace(store, field, selector.namespace.as_deref(), referent)
}

fn check_namespace(
    store: &StoreContext,
    field: &str,
    namespace: Option<&str>,
    referent: bool,
) -> Result<(), ProviderError> {
    match store.kind {
        StoreKind::ClusterSecretStore if !referent && namespace.is_none() => Err(invalid(format!(
            "{field}.namespace is required with a ClusterSecretStore"
        ))),
        StoreKind::SecretStore
            if namespace.is_some_and(|n| Some(n) != store.namespace.as_deref()) =>
        {
            Err(invalid(format!(
                "{field}.namespace should either be empty or match the namespace of the SecretStore"
            )))
        }
        _ => Ok(()),
    }
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The static checks (no I/O).
pub(crate) fn validate(store: &StoreContext) -> Result<Vec<String>, ProviderError> {
    let spec = spec(store)?;
    let ns = remote_namespace(spec);
    if !is_dns_label(&ns) {
        return Err(invalid(format!(
            "remoteNamespace {ns:?} is not a valid namespace name"
        )));
    }
    let server = spec.server.clone().unwrap_or_default();
    if let Some(url) = server.url.as_deref().filter(|u| !u.is_empty()) {
        base_url(url)?;
    }
    if let Some(bundle) = server.ca_bundle.as_deref().filter(|b| !b.is_empty()) {
        decode_ca_bundle(bundle, "server.caBundle")?;
    }
    if let Some(ca) = &server.ca_provider {
        store.check_ca_provider(ca, "server.caProvider")?;
    }
    match method(spec)? {
        Method::Token(s) => check_selector(store, "auth.token.bearerToken", s, false)?,
        Method::Cert(c, k) => {
            check_selector(store, "auth.cert.clientCert", c, false)?;
            check_selector(store, "auth.cert.clientKey", k, false)?;
        }
        Method::ServiceAccount(sa) => {
            if sa.name.is_empty() {
                return Err(invalid("auth.serviceAccount.name cannot be empty"));
            }
            check_namespace(store, "auth.serviceAccount", sa.namespace.as_deref(), true)?;
        }
        Method::AuthRef(s) => check_selector(store, "authRef", s, true)?,
    }
    Ok(Vec::new())
}

/// `https://` is added to a URL without scheme (as client-go does); the trailing slash goes.
pub(crate) fn base_url(url: &str) -> Result<String, ProviderError> {
    let url = url.trim().trim_end_matches('/');
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    let parsed = reqwest::Url::parse(&full)
        .map_err(|e| invalid(format!("server.url {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Err(invalid(format!("server.url {url:?} is not an http(s) URL")));
    }
    Ok(full)
}

/// Whether `base` names the `kubernetes` Service of the default namespace.
fn names_in_cluster_service(base: &str) -> bool {
    reqwest::Url::parse(base).is_ok_and(|u| {
        matches!(
            u.host_str(),
            Some(
                "kubernetes.default"
                    | "kubernetes.default.svc"
                    | "kubernetes.default.svc.cluster.local"
            )
        )
    })
}

/// The in-cluster API server from the pod's environment.
fn in_cluster_url() -> Result<String, ProviderError> {
    in_cluster_url_from(
        &std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default(),
        &std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default(),
    )
}

/// `https://<host>:<port>`, brackets around an IPv6 host.
fn in_cluster_url_from(host: &str, port: &str) -> Result<String, ProviderError> {
    if host.is_empty() || port.is_empty() {
        return Err(invalid(
            "server.url is empty and KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set \
             (not running in a cluster)",
        ));
    }
    if host.contains(':') {
        Ok(format!("https://[{host}]:{port}"))
    } else {
        Ok(format!("https://{host}:{port}"))
    }
}

/// Reads the credentials and CA the block points at. `store.referent_namespace` must be set
/// for a referent ClusterSecretStore.
pub(crate) async fn resolve(
    store: &StoreContext,
    env: &ProviderEnv,
) -> Result<Connection, ProviderError> {
    let spec = spec(store)?;
    let creds = env.credentials.as_ref();
    let method = method(spec)?;
    if let Method::AuthRef(selector) = method {
        let text = store.secret_key(creds, selector, "authRef").await?;
        let config = kubeconfig::parse(text.expose())?;
        let trust = match config.ca_pem {
            Some(pem) => Trust::Pem(pem),
            None => Trust::System,
        };
        let credentials = match config.auth {
            KubeconfigAuth::Token(t) => Credentials::Bearer(t),
            KubeconfigAuth::Cert { cert, key } => Credentials::ClientCert { cert, key },
        };
        return Ok(Connection {
            base: base_url(&config.server)?,
            trust,
            credentials,
            valid_until: None,
        });
    }

    let server = spec.server.clone().unwrap_or_default();
    let url = server.url.as_deref().filter(|u| !u.is_empty());
    let base = match url {
        Some(u) => base_url(u)?,
        None => in_cluster_url()?,
    };
    let configured = store
        .ca_pem(
            creds,
            server.ca_bundle.as_deref(),
            server.ca_provider.as_ref(),
            "server.",
        )
        .await?;
    let trust = if let Some(pem) = configured {
        Trust::Pem(pem)
    } else if url.is_none() {
        Trust::Pem(std::fs::read(IN_CLUSTER_CA).map_err(|e| {
            invalid(format!(
                "server.url is empty and the in-cluster CA {IN_CLUSTER_CA} cannot be read: {e}"
            ))
        })?)
    } else if names_in_cluster_service(&base) && std::path::Path::new(IN_CLUSTER_CA).exists() {
        // The CRD's default URL `kubernetes.default`: the cluster's own CA signs it.
        Trust::Pem(std::fs::read(IN_CLUSTER_CA).map_err(|e| {
            invalid(format!(
                "the in-cluster CA {IN_CLUSTER_CA} cannot be read: {e}"
            ))
        })?)
    } else {
        Trust::System
    };

    let mut valid_until = None;
    let credentials = match method {
        Method::Token(s) => {
            Credentials::Bearer(store.secret_key(creds, s, "auth.token.bearerToken").await?)
        }
        Method::Cert(c, k) => Credentials::ClientCert {
            cert: store.secret_key(creds, c, "auth.cert.clientCert").await?,
            key: store.secret_key(creds, k, "auth.cert.clientKey").await?,
        },
        Method::ServiceAccount(sa) => {
            let namespace = store
                .credential_namespace(sa.namespace.as_deref())
                .ok_or_else(|| {
                    invalid(
                        "auth.serviceAccount names no namespace and the store is not read from one",
                    )
                })?;
            let audiences = sa.audiences.clone().unwrap_or_default();
            let token = creds
                .service_account_token(&namespace, &sa.name, &audiences, Some(TOKEN_SECONDS))
                .await?;
            // Reconnect well before the token expires.
            valid_until =
                Instant::now().checked_add(Duration::from_secs((TOKEN_SECONDS as u64) * 4 / 5));
            Credentials::Bearer(token)
        }
        Method::AuthRef(_) => return Err(invalid("unreachable: authRef handled above")),
    };
    Ok(Connection {
        base,
        trust,
        credentials,
        valid_until,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use strongroom_core::crd::external_secrets::{
        CaProvider, CaProviderType, KubernetesAuth, KubernetesServer, KubernetesTokenAuth,
        SecretStoreProvider,
    };

    fn store(kind: StoreKind, spec: KubernetesProvider) -> StoreContext {
        StoreContext {
            kind,
            name: "s".into(),
            namespace: (kind == StoreKind::SecretStore).then(|| "team".to_string()),
            referent_namespace: None,
            provider: SecretStoreProvider {
                kubernetes: Some(spec),
                ..SecretStoreProvider::default()
            },
            retry: None,
        }
    }

    fn sel(ns: Option<&str>) -> SecretKeySelector {
        SecretKeySelector {
            name: Some("n".into()),
            key: Some("k".into()),
            namespace: ns.map(str::to_string),
        }
    }

    fn token(ns: Option<&str>) -> KubernetesProvider {
        KubernetesProvider {
            auth: Some(KubernetesAuth {
                token: Some(KubernetesTokenAuth {
                    bearer_token: Some(sel(ns)),
                }),
                ..KubernetesAuth::default()
            }),
            ..KubernetesProvider::default()
        }
    }

    fn sa(ns: Option<&str>) -> KubernetesProvider {
        KubernetesProvider {
            auth: Some(KubernetesAuth {
                service_account: Some(ServiceAccountSelector {
                    name: "reader".into(),
                    namespace: ns.map(str::to_string),
                    audiences: None,
                }),
                ..KubernetesAuth::default()
            }),
            ..KubernetesProvider::default()
        }
    }

    fn err(kind: StoreKind, spec: KubernetesProvider) -> String {
        validate(&store(kind, spec))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn store_rules() {
        use StoreKind::{ClusterSecretStore as C, SecretStore as S};
        assert!(validate(&store(S, token(None))).is_ok());
        assert!(validate(&store(S, token(Some("team")))).is_ok());
        assert!(err(S, token(Some("other"))).contains("match the namespace"));
        assert!(err(C, token(None)).contains("namespace is required"));
        assert!(validate(&store(C, token(Some("x")))).is_ok());
        assert!(validate(&store(C, sa(None))).is_ok());
        assert!(err(S, sa(Some("x"))).contains("match the namespace"));
        assert!(err(S, KubernetesProvider::default()).contains("none is set"));
        let mut both = token(None);
        both.auth_ref = Some(sel(None));
        assert!(err(S, both).contains("several are set"));
        let mut empty_key = token(None);
        empty_key
            .auth
            .as_mut()
            .unwrap()
            .token
            .as_mut()
            .unwrap()
            .bearer_token = Some(SecretKeySelector {
            key: None,
            ..sel(None)
        });
        assert!(err(S, empty_key).contains("bearerToken.key cannot be empty"));
        let with_ca = |ns: Option<&str>| {
            let mut s = token(Some("x"));
            s.server = Some(KubernetesServer {
                ca_provider: Some(CaProvider {
                    type_: CaProviderType::ConfigMap,
                    name: "ca".into(),
                    key: Some("ca.crt".into()),
                    namespace: ns.map(str::to_string),
                }),
                ..KubernetesServer::default()
            });
            s
        };
        assert!(err(C, with_ca(None)).contains("must not be empty"));
        assert!(validate(&store(C, with_ca(Some("x")))).is_ok());
        let mut ss = with_ca(Some("x"));
        ss.auth = token(None).auth;
        assert!(err(S, ss).contains("must be empty with SecretStore"));
        let mut bad_ns = token(None);
        bad_ns.remote_namespace = Some("Not_A_Namespace".into());
        assert!(err(S, bad_ns).contains("remoteNamespace"));
        let mut bad_ca = token(None);
        bad_ca.server = Some(KubernetesServer {
            ca_bundle: Some("!!!".into()),
            ..KubernetesServer::default()
        });
        assert!(err(S, bad_ca).contains("caBundle"));
    }

    #[test]
    fn referent_specs() {
        assert!(is_referent(
            &store(StoreKind::ClusterSecretStore, sa(None)),
            &sa(None)
        ));
        assert!(!is_referent(
            &store(StoreKind::ClusterSecretStore, sa(Some("x"))),
            &sa(Some("x"))
        ));
        assert!(!is_referent(
            &store(StoreKind::SecretStore, sa(None)),
            &sa(None)
        ));
    }

    #[test]
    fn urls_and_bundles() {
        assert_eq!(
            base_url("kubernetes.default").unwrap(),
            "https://kubernetes.default"
        );
        assert_eq!(base_url("https://h:6443/").unwrap(), "https://h:6443");
        assert!(base_url("ftp://h").is_err());
        assert!(names_in_cluster_service("https://kubernetes.default"));
        assert!(names_in_cluster_service(
            "https://kubernetes.default.svc:443"
        ));
        assert!(!names_in_cluster_service("https://example.com"));
    }

    #[test]
    fn in_cluster_server() {
        assert_eq!(
            in_cluster_url_from("10.0.0.1", "443").unwrap(),
            "https://10.0.0.1:443"
        );
        assert_eq!(
            in_cluster_url_from("fd00::1", "6443").unwrap(),
            "https://[fd00::1]:6443"
        );
        assert!(
            in_cluster_url_from("", "")
                .unwrap_err()
                .to_string()
                .contains("not running in a cluster")
        );
    }
}
