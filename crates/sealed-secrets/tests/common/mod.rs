//! Shared helpers of the end-to-end tests: devcluster, the controller binary, plain HTTP.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use strongroom_core::crd::sealed_secret::SealedSecret;
use strongroom_core::sealing::{SealingCertificate, SealingScope, os_rng, seal_to_base64};
use strongroom_devcluster::{DevCluster, Options};

pub const CANARY: &str = "canary-3d9f-secret-value";

pub struct Controller {
    pub child: Child,
    pub log: PathBuf,
    pub api: String,
    pub metrics: String,
    pub api_port: u16,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn http_get(url: &str) -> (u16, String) {
    http(url, "GET", None).await
}

/// A tiny HTTP/1.1 client over a TCP socket (the controller serves plain HTTP).
pub async fn http(url: &str, method: &str, body: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

pub async fn start(dir: &Path) -> (DevCluster, Client, Controller) {
    start_with(dir, &[], &[]).await
}

/// Starts devcluster with the CRD and `namespaces`, then the controller with extra `args`.
pub async fn start_with(
    dir: &Path,
    args: &[&str],
    namespaces: &[&str],
) -> (DevCluster, Client, Controller) {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let client = cluster.client().await.unwrap();
    for ns in namespaces {
        let obj: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::all(client.clone())
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }
    let crd_yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/crds/bitnami.com_sealedsecrets.yaml"
    ))
    .unwrap();
    let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&crd_yaml).unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let controller = restart_with(dir, &cluster, args).await;
    wait_for(
        || async { http_try(&format!("{}/v1/cert.pem", controller.api)).await == Some(200) },
        "certificate served",
    )
    .await;
    (cluster, client, controller)
}

/// Starts one more controller process against `cluster` (a restart, or a second replica).
pub async fn restart(dir: &Path, cluster: &DevCluster) -> Controller {
    restart_with(dir, cluster, &[]).await
}

/// Starts one more controller process with extra `args`.
pub async fn restart_with(dir: &Path, cluster: &DevCluster, args: &[&str]) -> Controller {
    let kubeconfig = dir.join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let (api_port, metrics_port) = (free_port(), free_port());
    let log = dir.join(format!("controller-{api_port}.log"));
    let log_file = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sealed-secrets-controller"))
        .args(["--key-size", "2048", "--resync-period", "3s"])
        .args(args)
        .arg("--listen-addr")
        .arg(format!("127.0.0.1:{api_port}"))
        .arg("--listen-metrics-addr")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", "kube-system")
        .env("POD_NAME", format!("replica-{api_port}"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(log_file.try_clone().unwrap()))
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap();
    let controller = Controller {
        child,
        log,
        api: format!("http://127.0.0.1:{api_port}"),
        metrics: format!("http://127.0.0.1:{metrics_port}"),
        api_port,
    };
    wait_for(
        || async { http_try(&format!("{}/healthz", controller.api)).await == Some(200) },
        "controller up",
    )
    .await;
    controller
}

pub async fn http_try(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let (host, _) = rest.split_once('/')?;
    tokio::net::TcpStream::connect(host).await.ok()?;
    Some(http_get(url).await.0)
}

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

pub async fn cert(controller: &Controller) -> SealingCertificate {
    let (code, pem) = http_get(&format!("{}/v1/cert.pem", controller.api)).await;
    assert_eq!(code, 200);
    SealingCertificate::from_pem(&pem).unwrap()
}

pub fn sealed(
    cert: &SealingCertificate,
    scope: SealingScope,
    ns: &str,
    name: &str,
    items: &[(&str, &str)],
) -> SealedSecret {
    let label = scope.label(ns, name);
    let encrypted: serde_json::Map<String, Value> = items
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Value::String(
                    seal_to_base64(&mut os_rng(), &cert.key, &label, v.as_bytes()).unwrap(),
                ),
            )
        })
        .collect();
    let mut meta = json!({"name": name, "namespace": ns});
    if let Some(a) = scope.annotation() {
        meta["annotations"] = json!({a: "true"});
    }
    serde_json::from_value(json!({
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": meta,
        "spec": {"encryptedData": encrypted, "template": {"type": "Opaque", "metadata": {"labels": {"app": "web"}}}}
    }))
    .unwrap()
}

pub fn synced(ss: &SealedSecret) -> Option<(String, String)> {
    let c = ss
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Synced")?;
    Some((c.status.clone(), c.message.clone().unwrap_or_default()))
}
