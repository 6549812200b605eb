//! Test plumbing: a credential resolver over devcluster (as the controller's would be), a call
//! recorder, object seeding, and an mTLS stand-in for client-certificate auth.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use strongroom_core::crd::external_secrets::{
    KubernetesAuth, KubernetesProvider as Spec, KubernetesServer, KubernetesTokenAuth,
    SecretKeySelector, SecretStoreProvider, StoreKind,
};
use strongroom_provider_api::{
    CredentialResolver, Provider, ProviderEnv, ProviderError, SecretBytes, SecretsClient,
    StoreContext,
};
use strongroom_provider_kubernetes::KubernetesProvider;
use strongroom_testkit::{DevCluster, Options};

/// Reads credentials with the admin client, as the controller does with its own.
pub struct KubeResolver(pub Client);

fn unavailable(e: kube::Error) -> ProviderError {
    ProviderError::Unavailable(format!("credential lookup failed: {e}"))
}

#[async_trait::async_trait]
impl CredentialResolver for KubeResolver {
    async fn secret_key(
        &self,
        ns: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ProviderError> {
        let s = Api::<Secret>::namespaced(self.0.clone(), ns)
            .get_opt(name)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                ProviderError::Authentication(format!("Secret {ns}/{name} not found"))
            })?;
        s.data
            .and_then(|d| d.get(key).cloned())
            .map(|b| SecretBytes::new(b.0))
            .ok_or_else(|| {
                ProviderError::Authentication(format!("Secret {ns}/{name} has no key {key:?}"))
            })
    }

    async fn config_map_key(
        &self,
        ns: &str,
        name: &str,
        key: &str,
    ) -> Result<String, ProviderError> {
        let c = Api::<ConfigMap>::namespaced(self.0.clone(), ns)
            .get_opt(name)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                ProviderError::Authentication(format!("ConfigMap {ns}/{name} not found"))
            })?;
        c.data.and_then(|d| d.get(key).cloned()).ok_or_else(|| {
            ProviderError::Authentication(format!("ConfigMap {ns}/{name} has no key {key:?}"))
        })
    }

    async fn service_account_token(
        &self,
        ns: &str,
        name: &str,
        audiences: &[String],
        expiration_seconds: Option<i64>,
    ) -> Result<SecretBytes, ProviderError> {
        let token =
            strongroom_testkit::request_token(&self.0, ns, name, audiences, expiration_seconds)
                .await
                .map_err(|e| {
                    ProviderError::Authentication(format!("TokenRequest for {ns}/{name}: {e}"))
                })?;
        Ok(SecretBytes::from(token.as_str()))
    }

    async fn service_account_annotations(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let sa = Api::<ServiceAccount>::namespaced(self.0.clone(), ns)
            .get(name)
            .await
            .map_err(unavailable)?;
        Ok(sa.metadata.annotations.unwrap_or_default())
    }
}

/// Records every call the provider reports.
pub use strongroom_provider_api::conformance::RecordedCalls as Calls;

pub fn env(kube: &Client) -> (Arc<Calls>, ProviderEnv) {
    let calls = Arc::new(Calls::default());
    (
        calls.clone(),
        ProviderEnv {
            credentials: Arc::new(KubeResolver(kube.clone())),
            calls,
        },
    )
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The devcluster CA PEM.
pub fn ca_pem(cluster: &DevCluster) -> String {
    strongroom_testkit::cluster_ca_pem(cluster)
}

pub fn selector(name: &str, key: &str, ns: Option<&str>) -> SecretKeySelector {
    SecretKeySelector {
        name: Some(name.into()),
        key: Some(key.into()),
        namespace: ns.map(str::to_string),
    }
}

/// A SecretStore in namespace `creds`.
pub fn secret_store(spec: Spec) -> StoreContext {
    StoreContext {
        kind: StoreKind::SecretStore,
        name: "k8s".into(),
        namespace: Some("creds".into()),
        referent_namespace: None,
        provider: SecretStoreProvider {
            kubernetes: Some(spec),
            ..SecretStoreProvider::default()
        },
        retry: None,
    }
}

/// A SecretStore reading namespace `remote` with the bearer token in Secret `creds/<secret>`
/// (key `token`), trusting devcluster's CA through `caBundle` (base64, as in the CRD).
pub fn token_store(cluster: &DevCluster, secret: &str) -> StoreContext {
    secret_store(Spec {
        server: Some(KubernetesServer {
            url: Some(cluster.url().to_string()),
            ca_bundle: Some(b64(ca_pem(cluster).as_bytes())),
            ..KubernetesServer::default()
        }),
        auth: Some(KubernetesAuth {
            token: Some(KubernetesTokenAuth {
                bearer_token: Some(selector(secret, "token", None)),
            }),
            ..KubernetesAuth::default()
        }),
        remote_namespace: Some("remote".into()),
        ..Spec::default()
    })
}

pub async fn connect(store: &StoreContext, env: ProviderEnv) -> Box<dyn SecretsClient> {
    match KubernetesProvider.connect(store, env).await {
        Ok(c) => c,
        Err(e) => panic!("connect failed: {e}"),
    }
}

pub async fn put_secret(kube: &Client, ns: &str, name: &str, data: &[(&str, &[u8])]) {
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
        .collect();
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    let s = Secret {
        data: Some(data),
        ..s
    };
    Api::<Secret>::namespaced(kube.clone(), ns)
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

pub async fn label(
    kube: &Client,
    ns: &str,
    name: &str,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) {
    let to_map = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
    };
    let patch = json!({"metadata": {"labels": to_map(labels), "annotations": to_map(annotations)}});
    Api::<Secret>::namespaced(kube.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

pub async fn put_config_map(kube: &Client, ns: &str, name: &str, key: &str, value: &str) {
    let c: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {key: value}})).unwrap();
    Api::<ConfigMap>::namespaced(kube.clone(), ns)
        .create(&PostParams::default(), &c)
        .await
        .unwrap();
}

pub async fn put_service_account(kube: &Client, ns: &str, name: &str) {
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<ServiceAccount>::namespaced(kube.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
}

/// The Secrets every conformance run expects in namespace `remote`.
pub async fn seed(kube: &Client) {
    put_secret(kube, "remote", "app-plain", &[("value", b"plain-value")]).await;
    put_secret(
        kube,
        "remote",
        "app-db",
        &[("user", b"admin"), ("port", b"5432")],
    )
    .await;
    put_secret(kube, "remote", "other", &[("x", b"y")]).await;
}

/// devcluster with RBAC enforced (testkit starts it without).
pub async fn start_rbac_cluster(namespaces: &[&str]) -> (DevCluster, Client) {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let kube = cluster.client().await.unwrap();
    for ns in namespaces {
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(kube.clone())
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }
    (cluster, kube)
}

/// Lets ServiceAccount `sa_ns/sa` get and list Secrets of `ns`.
pub async fn grant_secret_reads(kube: &Client, ns: &str, sa_ns: &str, sa: &str) {
    grant_secrets(kube, ns, sa_ns, sa, &["get", "list"]).await;
}

/// Lets ServiceAccount `sa_ns/sa` use `verbs` on Secrets of `ns`.
pub async fn grant_secrets(kube: &Client, ns: &str, sa_ns: &str, sa: &str, verbs: &[&str]) {
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "secret-reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": verbs}],
    }))
    .unwrap();
    Api::<Role>::namespaced(kube.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "secret-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": sa_ns}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(kube.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

/// An HTTPS stand-in that requires a client certificate from its own CA and forwards every
/// request to devcluster as the admin: devcluster authenticates bearer tokens only.
pub struct MtlsGate {
    pub url: String,
    pub ca_pem: String,
    pub client_cert: String,
    pub client_key: String,
    forwarded: Arc<AtomicU64>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl MtlsGate {
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    pub async fn start(cluster: &DevCluster) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "gate-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "pusher");
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca_cert.der().to_vec()))
            .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(server_cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));

        // The forwarder's own client to devcluster.
        let mut upstream_roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem(cluster).as_bytes()) {
            upstream_roots.add(c.unwrap()).unwrap();
        }
        let upstream_tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(upstream_roots)
            .with_no_client_auth();
        let upstream = reqwest::Client::builder()
            .tls_backend_preconfigured(upstream_tls)
            .build()
            .unwrap();
        let target = cluster.url().to_string();
        let token = cluster.token().to_string();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let forwarded = Arc::new(AtomicU64::new(0));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let count = forwarded.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stopped.changed() => break,
                };
                let Ok((tcp, _)) = accepted else { continue };
                let (acceptor, upstream, target, token, count) = (
                    acceptor.clone(),
                    upstream.clone(),
                    target.clone(),
                    token.clone(),
                    count.clone(),
                );
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (upstream, target, token, count) = (
                                upstream.clone(),
                                target.clone(),
                                token.clone(),
                                count.clone(),
                            );
                            async move {
                                use http_body_util::BodyExt;
                                count.fetch_add(1, Ordering::Relaxed);
                                let method = req.method().clone();
                                let path = req
                                    .uri()
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default();
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let answer = upstream
                                    .request(method, format!("{target}{path}"))
                                    .bearer_auth(&token)
                                    .header("content-type", "application/json")
                                    .body(body)
                                    .send()
                                    .await
                                    .unwrap();
                                let status = answer.status();
                                let bytes = answer.bytes().await.unwrap_or_default();
                                let mut response =
                                    hyper::Response::new(http_body_util::Full::new(bytes));
                                *response.status_mut() = status;
                                Ok::<_, std::convert::Infallible>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            url,
            ca_pem: ca_cert.pem(),
            client_cert: client_cert.pem(),
            client_key: client_key.serialize_pem(),
            forwarded,
            stop,
        }
    }
}

impl Drop for MtlsGate {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
