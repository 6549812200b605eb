//! The online flags: the controller is reached through the API server's service proxy
//! (`/api/v1/namespaces/<ns>/services/http:<name>:<port>/proxy/v1/...`), as upstream does.

use serde_json::Value;

use crate::cli::Args;
use crate::error::{Error, Result};

/// A connection to the cluster and the controller's Service.
pub struct Controller {
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
    namespace: String,
    name: String,
}

fn unreachable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Controller {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

impl Controller {
    /// Connects with the kubeconfig and the kubectl-style connection flags.
    pub fn connect(args: &Args) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| unreachable("start the client", e))?;
        let client = runtime.block_on(client(args))?;
        Ok(Self {
            runtime,
            client,
            namespace: args.controller_namespace.clone(),
            name: args.controller_name.clone(),
        })
    }

    fn target(&self) -> String {
        format!("service {}/{}", self.namespace, self.name)
    }

    /// The proxy URL path of `path` on the controller.
    async fn proxy_path(&self, path: &str) -> Result<String> {
        let services: kube::Api<k8s_openapi::api::core::v1::Service> =
            kube::Api::namespaced(self.client.clone(), &self.namespace);
        let svc = services
            .get(&self.name)
            .await
            .map_err(|e| Error::Controller {
                what: format!("find the controller ({})", self.target()),
                reason: format!("{e}; check --controller-name and --controller-namespace"),
            })?;
        let port = svc
            .spec
            .and_then(|s| s.ports)
            .and_then(|p| p.into_iter().next())
            .and_then(|p| p.name)
            .unwrap_or_default();
        Ok(format!(
            "/api/v1/namespaces/{}/services/http:{}:{port}/proxy{path}",
            self.namespace, self.name
        ))
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, String)> {
        let url = self.proxy_path(path).await?;
        let req = http::Request::builder()
            .method(method)
            .uri(url)
            .header("Accept", "application/x-pem-file, */*")
            .header("Content-Type", "application/json")
            .body(body.unwrap_or_default())
            .map_err(|e| unreachable("build the request", e))?;
        match self.client.request_text(req).await {
            Ok(text) => Ok((200, text)),
            Err(kube::Error::Api(s)) => Ok((s.code, s.message.clone())),
            Err(e) => Err(Error::Controller {
                what: format!("reach the controller ({})", self.target()),
                reason: e.to_string(),
            }),
        }
    }

    /// `GET /v1/cert.pem`.
    pub fn fetch_cert(&self) -> Result<String> {
        let (code, text) =
            self.runtime
                .block_on(self.call(http::Method::GET, "/v1/cert.pem", None))?;
        if code != 200 {
            return Err(Error::Controller {
                what: format!("fetch the certificate from {}", self.target()),
                reason: format!("HTTP {code}: {}", text.trim()),
            });
        }
        Ok(text)
    }

    /// `POST /v1/verify`: whether the controller can decrypt `sealed`.
    pub fn verify(&self, sealed: &Value) -> Result<bool> {
        let body = serde_json::to_vec(sealed).map_err(|e| Error::Render(e.to_string()))?;
        let (code, text) =
            self.runtime
                .block_on(self.call(http::Method::POST, "/v1/verify", Some(body)))?;
        match code {
            200 => Ok(true),
            409 => Ok(false),
            other => Err(Error::Controller {
                what: format!("validate with {}", self.target()),
                reason: format!("HTTP {other}: {}", text.trim()),
            }),
        }
    }

    /// `POST /v1/rotate`: `sealed` re-encrypted with the newest key.
    pub fn rotate(&self, sealed: &Value) -> Result<Value> {
        let name = sealed
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let body = serde_json::to_vec(sealed).map_err(|e| Error::Render(e.to_string()))?;
        let (code, text) =
            self.runtime
                .block_on(self.call(http::Method::POST, "/v1/rotate", Some(body)))?;
        match code {
            200 => serde_json::from_str(&text).map_err(|e| Error::Render(e.to_string())),
            409 => Err(Error::Usage(format!(
                "unable to decrypt sealed secret: {name}"
            ))),
            other => Err(Error::Controller {
                what: format!("re-encrypt with {}", self.target()),
                reason: format!("HTTP {other}: {}", text.trim()),
            }),
        }
    }
}

async fn client(args: &Args) -> Result<kube::Client> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kubeconfig = if args.kubeconfig.is_empty() {
        Kubeconfig::read()
    } else {
        Kubeconfig::read_from(&args.kubeconfig)
    }
    .map_err(|e| unreachable("read the kubeconfig", e))?;
    let opts = KubeConfigOptions {
        context: Some(args.context.clone()).filter(|c| !c.is_empty()),
        cluster: Some(args.cluster.clone()).filter(|c| !c.is_empty()),
        user: Some(args.user.clone()).filter(|c| !c.is_empty()),
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &opts)
        .await
        .map_err(|e| unreachable("load the kubeconfig", e))?;
    if !args.server.is_empty() {
        config.cluster_url = args
            .server
            .parse()
            .map_err(|e| unreachable("parse --server", e))?;
    }
    if !args.token.is_empty() {
        config.auth_info.token = Some(args.token.expose().to_string().into());
    }
    if args.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
    }
    kube::Client::try_from(config).map_err(|e| unreachable("create the client", e))
}
