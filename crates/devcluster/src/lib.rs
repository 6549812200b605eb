//! `devcluster`: a single-process Kubernetes API server for the demo and the end-to-end tests.
//!
//! Real clients (kube-rs, kubectl, helm) talk to it over HTTPS with a bearer token, as to a
//! cluster. It keeps every object in memory, with one resourceVersion sequence, watches,
//! patches (merge, JSON, strategic, server-side apply), status subresources, finalizers,
//! garbage collection, CRDs, and just enough workload controllers for rollouts to complete.
#![forbid(unsafe_code)]

pub mod discovery;
pub mod escalation;
pub mod fields;
pub mod openapi;
pub mod partial;
pub mod patch;
pub mod protobuf;
pub mod proxy;
pub mod rbac;
pub mod resources;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod timeout;
pub mod tls;
pub mod tokens;
pub mod validation;
pub mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use server::Api;
use store::Store;

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Serve HTTPS (true) or plain HTTP.
    pub tls: bool,
    /// Admin bearer token; generated when `None`.
    pub token: Option<String>,
    /// Watch events kept for resuming watches.
    pub history: usize,
    /// How often watches that ask for bookmarks get one.
    pub bookmark_interval: Duration,
    /// Directory where the state is kept across restarts; in memory only when `None`.
    pub data_dir: Option<PathBuf>,
    /// Authorize ServiceAccount and configured users by RBAC (the default); `false` lets every
    /// authenticated user do anything.
    pub rbac: bool,
    /// Extra users authenticated by static bearer tokens: token to user and groups.
    pub users: std::collections::BTreeMap<String, rbac::UserInfo>,
    /// A file to which each permission a user (but the admin) exercises for the first time is
    /// appended as a JSON line (`{"user": ..., "rbac": <enforced>, "verb": ..., ...}`), so a test run's usage can be
    /// compared with what a chart grants after the process is gone.
    pub permission_log: Option<PathBuf>,
    /// How long a request that is not long-running (watches, proxies, exec, logs) may take
    /// before it is answered 504 (the real server's `--request-timeout`, 60 s by default); a
    /// request's `?timeout=` may shorten it.
    pub request_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            token: None,
            history: store::DEFAULT_HISTORY,
            bookmark_interval: Duration::from_secs(30),
            data_dir: None,
            rbac: true,
            users: Default::default(),
            permission_log: None,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A running server. Dropping it stops it.
pub struct DevCluster {
    url: String,
    token: String,
    ca_pem: Option<String>,
    store: Arc<Store>,
    api: Arc<Api>,
    stop: watch::Sender<bool>,
    snapshot_file: Option<PathBuf>,
}

impl DevCluster {
    /// Starts serving on `options.listen` and returns once the port accepts connections.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(options.listen).await?;
        let addr = listener.local_addr()?;
        let token = options
            .token
            .clone()
            .unwrap_or_else(|| format!("admin-{}", uuid::Uuid::new_v4().simple()));
        let store = Arc::new(Store::new(options.history));
        let snapshot_file = options.data_dir.as_ref().map(|d| d.join("state.json"));
        if let Some(file) = &snapshot_file {
            load_snapshot(&store, file)?;
        }
        let api = Arc::new(Api {
            store: store.clone(),
            admin_token: token.clone(),
            bookmark_interval: options.bookmark_interval,
            tokens: tokens::TokenIssuer::generate()?,
            requests: Default::default(),
            requests_by_kind: Default::default(),
            requests_by_user: Default::default(),
            rbac: options.rbac,
            users: options.users.clone().into_iter().collect(),
            permissions_used: Default::default(),
            permissions_denied: Default::default(),
            permission_log: options.permission_log.clone(),
            request_timeout: options.request_timeout,
        });
        let api_handle = api.clone();
        let tls = if options.tls {
            Some(tls::generate()?)
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{addr}");
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config));
        let (stop, mut stopped) = watch::channel(false);
        if let Some(file) = snapshot_file.clone() {
            spawn_snapshots(store.clone(), file, stop.subscribe());
        }
        tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stopped.changed() => break,
                };
                let Ok((tcp, _)) = accepted else { continue };
                let api = api.clone();
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| api.clone().handle(req));
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
                while connections.try_join_next().is_some() {}
            }
            connections.abort_all();
        });
        Ok(Self {
            url,
            token,
            ca_pem,
            store,
            api: api_handle,
            stop,
            snapshot_file,
        })
    }

    /// Base URL, e.g. `https://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admin bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// API requests answered so far.
    pub fn requests(&self) -> u64 {
        self.api.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// API requests answered so far by `verb resource` (e.g. `patch secrets`).
    pub fn requests_by_kind(&self) -> std::collections::BTreeMap<String, u64> {
        self.api
            .requests_by_kind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// API requests answered so far per user, then per `verb resource`: the user is `admin` for
    /// the admin token and `system:serviceaccount:<ns>:<name>` for a ServiceAccount token.
    pub fn requests_by_user(&self) -> server::RequestsByUser {
        self.api
            .requests_by_user
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The permissions (verb, group, resource, subresource, namespace) each user (but the
    /// admin) exercised in allowed requests so far: compare them with what a chart grants.
    pub fn permissions_used(&self) -> server::PermissionsByUser {
        self.api
            .permissions_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The permissions each user was denied (403) so far.
    pub fn permissions_denied(&self) -> server::PermissionsByUser {
        self.api
            .permissions_denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The object store (for benchmarks and white-box checks).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// A kubeconfig that kube-rs, kubectl and helm accept, authenticated as the admin.
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig_with_token(&self.token)
    }

    /// A kubeconfig that authenticates with `token` (a ServiceAccount token, say).
    pub fn kubeconfig_with_token(&self, token: &str) -> String {
        let ca = match &self.ca_pem {
            Some(pem) => format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            ),
            None => String::new(),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: devcluster\n  cluster:\n    server: {}\n{ca}\
             contexts:\n- name: devcluster\n  context:\n    cluster: devcluster\n    user: admin\n    namespace: default\n\
             current-context: devcluster\npreferences: {{}}\nusers:\n- name: admin\n  user:\n    token: {}\n",
            self.url, token
        )
    }

    /// A kube-rs client authenticated as the admin (feature `client`).
    #[cfg(feature = "client")]
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig())?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Writes the kubeconfig to `path`, readable by the owner only.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.kubeconfig())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }

    /// Stops accepting connections and closes open ones; with a data directory, the state is
    /// saved first.
    pub fn shutdown(&self) {
        if let Some(file) = &self.snapshot_file
            && let Err(e) = save_snapshot(&self.store, file)
        {
            tracing::error!(error = %e, file = %file.display(), "could not save the state");
        }
        let _ = self.stop.send(true);
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn load_snapshot(store: &Store, file: &Path) -> anyhow::Result<()> {
    match std::fs::read(file) {
        Ok(bytes) => {
            let snapshot: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!("{}: not a devcluster snapshot: {e}", file.display())
            })?;
            store
                .import(&snapshot)
                .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.message))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", file.display())),
    }
}

/// Writes the state atomically (temporary file, then rename).
fn save_snapshot(store: &Store, file: &Path) -> anyhow::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&store.export())?)?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}

/// Saves the state once a second while it changes.
fn spawn_snapshots(store: Arc<Store>, file: PathBuf, mut stopped: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut saved_rv = store.current_rv();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.changed() => return,
            }
            let rv = store.current_rv();
            if rv != saved_rv {
                let (store, file) = (store.clone(), file.clone());
                let result =
                    tokio::task::spawn_blocking(move || save_snapshot(&store, &file)).await;
                match result {
                    Ok(Ok(())) => saved_rv = rv,
                    Ok(Err(e)) => tracing::error!(error = %e, "could not save the state"),
                    Err(e) => tracing::error!(error = %e, "snapshot task failed"),
                }
            }
        }
    });
}
