//! Test-only helpers shared by every controller's end-to-end tests and benchmarks:
//! - [`start_cluster`]: devcluster with CRDs from `deploy/crds/` and extra namespaces;
//! - [`service_account_kubeconfig`]: a kubeconfig with a ServiceAccount's token, so devcluster
//!   counts (and later authorizes) one replica's requests apart from another's;
//! - [`Process`]: a controller binary (its path from `env!("CARGO_BIN_EXE_<name>")` in the
//!   calling test, never `cargo build` from a test) with its log, signals and exit;
//! - [`CANARY`] and [`assert_no_canary`]: secret values that must appear nowhere;
//! - [`writes`]: the write calls one user made, from devcluster's request counts;
//! - small HTTP and polling helpers;
//! - [`helm`]: the real `helm` and `kubectl` for chart tests;
//! - [`backends`]: the real provider backends (moto, OpenBao);
//! - [`flaky`]: a fault-injecting proxy in front of a backend (retry tests);
//! - [`pki`]: a throwaway CA for server and client certificates;
//! - [`recorder`]: a recording HTTP(S) server, the real counterpart of a webhook client;
//! - [`monitoring`]: dashboards' and alert rules' PromQL checked against a `/metrics` scrape;
//! - [`standins`]: stand-ins for clouds without an emulator (GCP Secret Manager, Azure Key Vault).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod backends;
pub mod background;
pub mod flaky;
pub mod helm;
pub mod monitoring;
pub mod ntlm;
pub mod pki;
pub mod recorder;
pub mod standins;
pub mod sts_expiry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
pub use strongroom_devcluster::{DevCluster, Options};

/// A secret value tests put into objects; [`assert_no_canary`] checks it leaks nowhere.
pub const CANARY: &str = "canary-3d9f-secret-value";

/// The repository root (for `deploy/crds/...` and charts).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Starts devcluster, installs the CRDs in `crd_files` (paths relative to the repository root)
/// and creates `namespaces`. RBAC is off: ServiceAccount tokens may do anything (tests that run
/// a controller under its chart's rules use [`start_cluster_with_rbac`]).
pub async fn start_cluster(crd_files: &[&str], namespaces: &[&str]) -> (DevCluster, Client) {
    start_cluster_as(false, crd_files, namespaces).await
}

/// [`start_cluster`] with RBAC enforced: only the admin (the returned client) may do anything;
/// a ServiceAccount may do what the Roles bound to it allow (see [`helm::apply_rbac`]).
pub async fn start_cluster_with_rbac(
    crd_files: &[&str],
    namespaces: &[&str],
) -> (DevCluster, Client) {
    start_cluster_as(true, crd_files, namespaces).await
}

/// The folder where test clusters log the permissions ServiceAccounts exercise
/// (`<target>/rbac-usage`): `cargo xtask rbac-report` compares them with the charts' RBAC.
pub fn permission_log_dir() -> Option<PathBuf> {
    // a test binary runs from <target>/<profile>/deps/<name>
    let exe = std::env::current_exe().ok()?;
    Some(exe.ancestors().nth(3)?.join("rbac-usage"))
}

/// A fresh permission log file for one test cluster, under [`permission_log_dir`].
fn permission_log() -> Option<PathBuf> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
    let dir = permission_log_dir()?;
    std::fs::create_dir_all(&dir).ok()?;
    let exe = std::env::current_exe().ok()?;
    let stem = exe.file_name()?.to_string_lossy().into_owned();
    let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
    Some(dir.join(format!("{stem}-{}-{n}.jsonl", std::process::id())))
}

async fn start_cluster_as(
    rbac: bool,
    crd_files: &[&str],
    namespaces: &[&str],
) -> (DevCluster, Client) {
    let cluster = DevCluster::start(Options {
        rbac,
        permission_log: permission_log(),
        ..Options::default()
    })
    .await
    .unwrap();
    let client = cluster.client().await.unwrap();
    for ns in namespaces {
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::all(client.clone())
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }
    for file in crd_files {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&text).unwrap();
        Api::<CustomResourceDefinition>::all(client.clone())
            .create(&PostParams::default(), &crd)
            .await
            .unwrap();
    }
    (cluster, client)
}

/// Creates ServiceAccount `namespace/name` if needed, requests a token for it and writes a
/// kubeconfig using that token to `path`. Returns the user name devcluster counts it under.
pub async fn service_account_kubeconfig(
    cluster: &DevCluster,
    client: &Client,
    namespace: &str,
    name: &str,
    path: &Path,
) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    if sas.get_opt(name).await.unwrap().is_none() {
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        sas.create(&PostParams::default(), &sa).await.unwrap();
    }
    let token = request_token(client, namespace, name, &[], Some(3600))
        .await
        .unwrap();
    std::fs::write(path, cluster.kubeconfig_with_token(&token)).unwrap();
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Runs a controller under its chart's RBAC: renders `deploy/charts/<chart>` as release
/// `release` in `namespace` with `helm_args` (the real `helm template`), creates the
/// rendering's ServiceAccount, Roles, ClusterRoles and bindings with an admin client of its own,
/// and writes a kubeconfig with the token of the chart's one ServiceAccount to `path`. On a
/// cluster from [`start_cluster_with_rbac`] the controller may then do exactly what the chart
/// grants; every cluster logs what it used for `cargo xtask rbac-report`.
pub async fn chart_rbac_kubeconfig(
    cluster: &DevCluster,
    chart: &str,
    release: &str,
    namespace: &str,
    helm_args: &[&str],
    path: &Path,
) -> String {
    let client = cluster.client().await.unwrap();
    let dir = repo_root().join("deploy/charts").join(chart);
    let rendered = helm::template(dir.to_str().unwrap(), release, namespace, helm_args)
        .unwrap_or_else(|e| panic!("helm template {chart}: {e}"));
    let accounts = helm::apply_rbac(&client, &helm::Objects::parse(&rendered), namespace).await;
    assert_eq!(
        accounts.len(),
        1,
        "the {chart} chart's one ServiceAccount: {accounts:?}"
    );
    service_account_kubeconfig(cluster, &client, namespace, &accounts[0], path).await
}

/// A token for ServiceAccount `namespace/name` from the TokenRequest API: what the
/// controller's credential resolver does for providers.
pub async fn request_token(
    client: &Client,
    namespace: &str,
    name: &str,
    audiences: &[String],
    expiration_seconds: Option<i64>,
) -> Result<String, kube::Error> {
    let request = k8s_openapi::api::authentication::v1::TokenRequest {
        spec: Some(k8s_openapi::api::authentication::v1::TokenRequestSpec {
            audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
            expiration_seconds,
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await?;
    Ok(answer.status.and_then(|s| s.token).unwrap_or_default())
}

/// The devcluster CA certificate (PEM), from its kubeconfig.
pub fn cluster_ca_pem(cluster: &DevCluster) -> String {
    use base64::Engine;
    let config = cluster.kubeconfig();
    let data = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap()
}

/// Write calls (`create`, `update`, `patch`, `delete`, `deletecollection`) per resource made by
/// `user` so far, from devcluster's request counts.
pub fn writes(cluster: &DevCluster, user: &str) -> BTreeMap<String, u64> {
    cluster
        .requests_by_user()
        .get(user)
        .map(|kinds| {
            kinds
                .iter()
                .filter(|(kind, _)| {
                    let verb = kind.split(' ').next().unwrap_or("");
                    matches!(
                        verb,
                        "create" | "update" | "patch" | "delete" | "deletecollection"
                    )
                })
                .map(|(k, v)| (k.clone(), *v))
                .collect()
        })
        .unwrap_or_default()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A controller binary running as a child process; killed when dropped.
pub struct Process {
    /// The child.
    pub child: Child,
    /// Its combined stdout and stderr.
    pub log: PathBuf,
}

impl Process {
    /// Starts `binary` with `args` and `env`, logging to `log`.
    pub fn spawn(binary: &str, args: &[String], env: &[(&str, String)], log: PathBuf) -> Self {
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(binary);
        cmd.args(args)
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`TERM`, `INT`, `KILL`, `STOP`, `CONT`).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} failed");
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the log contains `needle`.
    pub async fn wait_for_log(&self, needle: &str) {
        wait_for(|| async { self.log_text().contains(needle) }, needle).await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Hands Lease `namespace/name` to `holder` (`None`: nobody) for an hour, as an operator or a
/// healed partition would. The current holder may renew between the read and the write: on a
/// conflict the Lease is read again.
pub async fn hand_lease_to(client: &Client, namespace: &str, name: &str, holder: Option<&str>) {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    loop {
        let mut lease = api.get(name).await.unwrap();
        let spec = lease.spec.get_or_insert_with(Default::default);
        spec.holder_identity = holder.map(str::to_string);
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        spec.lease_duration_seconds = Some(3600);
        match api.replace(name, &PostParams::default(), &lease).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => panic!("could not hand Lease {namespace}/{name} over: {e}"),
        }
    }
}

/// Polls `check` every 100 ms for up to 30 s; panics naming `what` on timeout.
pub async fn wait_for<F, Fut>(mut check: F, what: &str)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// `GET url` over plain HTTP: (status, body).
pub async fn http_get(url: &str) -> (u16, String) {
    http(url, "GET", None).await
}

/// A tiny HTTP/1.1 client over a TCP socket (the controllers serve plain HTTP).
pub async fn http(url: &str, method: &str, body: Option<&str>) -> (u16, String) {
    match http_exchange(url, method, body).await {
        Ok(answer) => answer,
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// One request and its (status, body), or what went wrong (refused, reset, no status line).
async fn http_exchange(
    url: &str,
    method: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (host, path) = rest.split_once('/').ok_or("no path")?;
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| e.to_string())?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    stream
        .read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {out:?}"))?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// The status of `GET url`, or `None` when nothing answers there yet (refused, or a connection
/// reset by a server still starting).
pub async fn http_try(url: &str) -> Option<u16> {
    http_exchange(url, "GET", None)
        .await
        .ok()
        .map(|(code, _)| code)
}

/// Panics naming the place when `CANARY` (or any of `values`) appears in one of `texts`
/// (`(where, text)` pairs: a log, the events, a status, the metrics).
pub fn assert_no_canary(values: &[&str], texts: &[(&str, &str)]) {
    for (place, text) in texts {
        for value in std::iter::once(&CANARY).chain(values) {
            assert!(
                !text.contains(value),
                "secret value {value:?} leaked into {place}"
            );
        }
    }
}

/// Resident memory of process `pid` in MiB (0 when unknown).
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
