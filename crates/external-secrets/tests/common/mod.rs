//! What the controller end-to-end tests share: the CRDs, starting the controller binary
//! against devcluster, applying ExternalSecrets and waiting for their Ready condition.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use strongroom_core::crd::external_secrets::ExternalSecret;
use strongroom_testkit::{
    DevCluster, Process, chart_rbac_kubeconfig, free_port, http_get, http_try, wait_for,
};

pub const CRDS: [&str; 3] = [
    "deploy/crds/external-secrets.io_externalsecrets.yaml",
    "deploy/crds/external-secrets.io_secretstores.yaml",
    "deploy/crds/external-secrets.io_clustersecretstores.yaml",
];

/// The values of the devcluster install (leader election on): the chart's RBAC the controller
/// runs under.
const INSTALL_VALUES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/chart/install.yaml"
);

pub struct Controller {
    pub process: Process,
    pub metrics: String,
}

pub async fn start_controller(dir: &Path, cluster: &DevCluster, args: &[&str]) -> Controller {
    start_controller_with_env(dir, cluster, args, &[]).await
}

/// [`start_controller`] with extra environment variables (provider endpoints).
pub async fn start_controller_with_env(
    dir: &Path,
    cluster: &DevCluster,
    args: &[&str],
    extra_env: &[(&str, String)],
) -> Controller {
    // as the chart's ServiceAccount, under the chart's RBAC as the devcluster install renders it
    let kubeconfig = dir.join("kubeconfig");
    chart_rbac_kubeconfig(
        cluster,
        "external-secrets",
        "external-secrets",
        "default",
        &["-f", INSTALL_VALUES],
        &kubeconfig,
    )
    .await;
    let (metrics_port, live_port) = (free_port(), free_port());
    let mut argv: Vec<String> = vec![
        format!("--metrics-addr=127.0.0.1:{metrics_port}"),
        format!("--live-addr=127.0.0.1:{live_port}"),
        "--concurrent=4".into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let process = Process::spawn(
        env!("CARGO_BIN_EXE_external-secrets-controller"),
        &argv,
        &[
            ("KUBECONFIG", kubeconfig.display().to_string()),
            ("POD_NAMESPACE", "default".into()),
            ("RUST_LOG", "debug".into()),
        ]
        .into_iter()
        .chain(extra_env.iter().cloned())
        .collect::<Vec<_>>(),
        dir.join(format!("controller-{metrics_port}.log")),
    );
    let live = format!("http://127.0.0.1:{live_port}");
    wait_for(
        || async { http_try(&format!("{live}/readyz")).await == Some(200) },
        "controller ready",
    )
    .await;
    Controller {
        process,
        metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
    }
}

pub async fn apply_es(client: &Client, es: Value) {
    let name = es["metadata"]["name"].as_str().unwrap().to_string();
    Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .patch(
            &name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&es),
        )
        .await
        .unwrap();
}

pub fn es(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    })
}

pub async fn ready(client: &Client, name: &str) -> Option<(String, String, String)> {
    let es = Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .get(name)
        .await
        .ok()?;
    let c = es
        .status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some((
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    ))
}

pub async fn wait_ready(client: &Client, name: &str, status: &str, reason: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seen = ready(client, name).await;
        match &seen {
            Some((s, r, m)) if s == status && r == reason => return m.clone(),
            _ if std::time::Instant::now() > deadline => {
                panic!("timed out waiting for {name} Ready={status} {reason}; last seen {seen:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub async fn secret_data(
    client: &Client,
    name: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    let s = Api::<Secret>::namespaced(client.clone(), "default")
        .get_opt(name)
        .await
        .unwrap()?;
    Some(
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect(),
    )
}

pub async fn metric_sum(url: &str, prefix: &str) -> f64 {
    let (_, text) = http_get(url).await;
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
