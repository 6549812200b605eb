//! Shared helpers of the end-to-end tests: devcluster, the controller binary, plain HTTP.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use kube::Client;
use serde_json::{Value, json};
use strongroom_core::crd::sealed_secret::SealedSecret;
use strongroom_core::sealing::{SealingCertificate, SealingScope, os_rng, seal_to_base64};
pub use strongroom_testkit::{
    CANARY, DevCluster, Process, free_port, helm, http, http_get, http_try, wait_for,
};

/// The SealedSecret CRD, as generated.
pub const CRD: &str = "deploy/crds/bitnami.com_sealedsecrets.yaml";

/// One controller process and its addresses.
pub struct Controller {
    pub process: Process,
    pub log: std::path::PathBuf,
    pub api: String,
    pub metrics: String,
    pub api_port: u16,
}

pub async fn start(dir: &Path) -> (DevCluster, Client, Controller) {
    start_with(dir, &[], &[]).await
}

/// Starts devcluster (RBAC enforced) with the CRD and `namespaces`, creates the chart's
/// ServiceAccount and RBAC objects as `helm template` renders them with default values, then
/// the controller with extra `args`, authenticated with that ServiceAccount's token: it may do
/// exactly what the chart grants.
pub async fn start_with(
    dir: &Path,
    args: &[&str],
    namespaces: &[&str],
) -> (DevCluster, Client, Controller) {
    start_with_values(dir, args, namespaces, &[]).await
}

/// [`start_with`] with the chart rendered with `helm_args` (`--set ...`), for controller
/// arguments that need more rights than the defaults grant.
pub async fn start_with_values(
    dir: &Path,
    args: &[&str],
    namespaces: &[&str],
    helm_args: &[&str],
) -> (DevCluster, Client, Controller) {
    let (cluster, client) = strongroom_testkit::start_cluster_with_rbac(&[CRD], namespaces).await;
    let chart = strongroom_testkit::repo_root().join("deploy/charts/sealed-secrets");
    // kubeseal's default controller name, as most users install it
    let rendered = helm::template(
        chart.to_str().unwrap(),
        "sealed-secrets-controller",
        "kube-system",
        helm_args,
    )
    .unwrap_or_else(|e| panic!("helm template: {e}"));
    let accounts = helm::apply_rbac(&client, &helm::Objects::parse(&rendered), "kube-system").await;
    assert_eq!(
        accounts.len(),
        1,
        "the chart's one ServiceAccount: {accounts:?}"
    );
    strongroom_testkit::service_account_kubeconfig(
        &cluster,
        &client,
        "kube-system",
        &accounts[0],
        &dir.join("kubeconfig"),
    )
    .await;
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

/// Starts one more controller process with extra `args`: as the chart's ServiceAccount when
/// [`start_with`] set the cluster up, else as the admin.
pub async fn restart_with(dir: &Path, cluster: &DevCluster, args: &[&str]) -> Controller {
    let kubeconfig = dir.join("kubeconfig");
    if !kubeconfig.exists() {
        cluster.write_kubeconfig(&kubeconfig).unwrap();
    }
    launch(dir, &kubeconfig, args).await
}

/// Starts a replica authenticated as its own ServiceAccount `kube-system/<name>`, so
/// devcluster counts its calls apart; returns it and its user name.
pub async fn replica_as(
    dir: &Path,
    cluster: &DevCluster,
    client: &Client,
    name: &str,
    args: &[&str],
) -> (Controller, String) {
    let kubeconfig = dir.join(format!("kubeconfig-{name}"));
    let user = strongroom_testkit::service_account_kubeconfig(
        cluster,
        client,
        "kube-system",
        name,
        &kubeconfig,
    )
    .await;
    (launch(dir, &kubeconfig, args).await, user)
}

async fn launch(dir: &Path, kubeconfig: &Path, args: &[&str]) -> Controller {
    let (api_port, metrics_port) = (free_port(), free_port());
    let log = dir.join(format!("controller-{api_port}.log"));
    let mut argv: Vec<String> = ["--key-size", "2048", "--resync-period", "3s"]
        .iter()
        .chain(args)
        .map(|a| a.to_string())
        .collect();
    argv.extend([
        "--listen-addr".to_string(),
        format!("127.0.0.1:{api_port}"),
        "--listen-metrics-addr".to_string(),
        format!("127.0.0.1:{metrics_port}"),
    ]);
    let process = Process::spawn(
        env!("CARGO_BIN_EXE_sealed-secrets-controller"),
        &argv,
        &[
            ("KUBECONFIG", kubeconfig.display().to_string()),
            ("POD_NAMESPACE", "kube-system".to_string()),
            ("POD_NAME", format!("replica-{api_port}")),
            ("RUST_LOG", "debug".to_string()),
        ],
        log.clone(),
    );
    let controller = Controller {
        process,
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
