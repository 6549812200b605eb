//! What the controller end-to-end tests share: the CRDs, starting the controller binary
//! against devcluster, applying ExternalSecrets and waiting for their Ready condition.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use strongroom_core::crd::external_secrets::{ExternalSecret, SecretStore};
use strongroom_testkit::{
    DevCluster, Process, chart_rbac_kubeconfig, free_port, http_get, http_try,
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

/// [`start_controller`] under the RBAC the chart renders with `helm_args` added to the
/// devcluster install's values.
pub async fn start_controller_with_values(
    dir: &Path,
    cluster: &DevCluster,
    args: &[&str],
    helm_args: &[&str],
) -> Controller {
    start_controller_with(dir, cluster, args, &[], helm_args).await
}

/// [`start_controller`] with extra environment variables (provider endpoints).
pub async fn start_controller_with_env(
    dir: &Path,
    cluster: &DevCluster,
    args: &[&str],
    extra_env: &[(&str, String)],
) -> Controller {
    start_controller_with(dir, cluster, args, extra_env, &[]).await
}

async fn start_controller_with(
    dir: &Path,
    cluster: &DevCluster,
    args: &[&str],
    extra_env: &[(&str, String)],
    helm_args: &[&str],
) -> Controller {
    // as the chart's ServiceAccount, under the chart's RBAC as the devcluster install renders it
    let kubeconfig = dir.join("kubeconfig");
    let mut values = vec!["-f", INSTALL_VALUES];
    values.extend_from_slice(helm_args);
    chart_rbac_kubeconfig(
        cluster,
        "external-secrets",
        "external-secrets",
        "default",
        &values,
        &kubeconfig,
    )
    .await;
    // a port another test takes between `free_port` and the controller's bind ends the
    // controller at once: start it again on other ports (three tries)
    for attempt in 1..=3 {
        let (metrics_port, live_port) = (free_port(), free_port());
        let mut argv: Vec<String> = vec![
            format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            format!("--live-addr=127.0.0.1:{live_port}"),
            "--concurrent=4".into(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        let mut process = Process::spawn(
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
        for _ in 0..300 {
            if http_try(&format!("{live}/readyz")).await == Some(200) {
                return Controller {
                    process,
                    metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
                };
            }
            if matches!(process.child.try_wait(), Ok(Some(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = process.log_text();
        let exited = matches!(process.child.try_wait(), Ok(Some(_)));
        if !exited || attempt == 3 {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "timed out waiting for controller ready (exited: {exited}); its log ends:\n{}",
                tail.join("\n")
            );
        }
    }
    unreachable!("three attempts either return or panic")
}

/// Applies an ExternalSecret (server-side apply) in the namespace its metadata names
/// (`default` when none).
pub async fn apply_es(client: &Client, es: Value) {
    let name = es["metadata"]["name"].as_str().unwrap().to_string();
    let ns = es["metadata"]["namespace"].as_str().unwrap_or("default");
    Api::<ExternalSecret>::namespaced(client.clone(), ns)
        .patch(
            &name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&es),
        )
        .await
        .unwrap();
}

/// Forces a refresh of the ExternalSecret `ns/name` the documented way: a new value of its
/// `force-sync` annotation.
pub async fn force_sync(client: &Client, ns: &str, name: &str) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_string();
    Api::<ExternalSecret>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"force-sync": stamp}}})),
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
    ready_in(client, "default", name).await
}

/// The Ready condition (status, reason, message) of the ExternalSecret `ns/name`.
pub async fn ready_in(client: &Client, ns: &str, name: &str) -> Option<(String, String, String)> {
    ready_condition(&Api::<ExternalSecret>::namespaced(client.clone(), ns), name).await
}

/// The Ready condition (status, reason, message) of the object `name` of any kind with
/// `status.conditions`; `None` while it or the condition is missing.
pub async fn ready_condition<K>(api: &Api<K>, name: &str) -> Option<(String, String, String)>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object = serde_json::to_value(api.get_opt(name).await.ok()??).ok()?;
    let c = object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    let text = |field: &str| c[field].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}

pub async fn wait_ready(client: &Client, name: &str, status: &str, reason: &str) -> String {
    wait_ready_in(client, "default", name, status, reason).await
}

/// Waits (30 s) for the ExternalSecret `ns/name` to be Ready `status` with `reason`; returns
/// the condition's message.
pub async fn wait_ready_in(
    client: &Client,
    ns: &str,
    name: &str,
    status: &str,
    reason: &str,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seen = ready_in(client, ns, name).await;
        match &seen {
            Some((s, r, m)) if s == status && r == reason => return m.clone(),
            _ if std::time::Instant::now() > deadline => {
                panic!(
                    "timed out waiting for {ns}/{name} Ready={status} {reason}; last seen {seen:?}"
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits for the Ready condition of ExternalSecret `name` to be False/SecretSyncedError with a
/// message containing `text`; returns the message.
pub async fn wait_error(client: &kube::Client, name: &str, text: &str) -> String {
    strongroom_testkit::wait_for(
        || async {
            ready(client, name).await.is_some_and(|(s, r, m)| {
                s == "False" && r == "SecretSyncedError" && m.contains(text)
            })
        },
        &format!("{name}: SecretSyncedError with {text:?}"),
    )
    .await;
    ready(client, name).await.unwrap().2
}

/// The events (events.k8s.io/v1) about the object `name` in `ns`, of `type_` and `reason`:
/// their notes.
pub async fn event_notes(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    reason: &str,
) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.type_.as_deref() == Some(type_)
                && e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .map(|e| e.note.unwrap_or_default())
        .collect()
}

/// Every event (events.k8s.io/v1) of `ns`, as JSON text (to look for canaries in).
pub async fn events_json(client: &Client, ns: &str) -> String {
    serde_json::to_string(
        &Api::<Event>::namespaced(client.clone(), ns)
            .list(&Default::default())
            .await
            .unwrap()
            .items,
    )
    .unwrap()
}

/// Waits for an event about the object `ns/name` of `type_` and `reason` whose note contains
/// `note`.
pub async fn wait_event(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    reason: &str,
    note: &str,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let notes = event_notes(client, ns, name, type_, reason).await;
        if notes.iter().any(|n| n.contains(note)) {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!("no {type_} {reason} event about {ns}/{name} with {note:?}; seen {notes:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn secret_data(
    client: &Client,
    name: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    secret_data_in(client, "default", name).await
}

/// The values of the Secret `ns/name`, as text (`None` when there is none).
pub async fn secret_data_in(
    client: &Client,
    ns: &str,
    name: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
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

/// Creates Secret `default/<name>` with string data.
pub async fn put_secret(client: &Client, name: &str, data: Value) {
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
        .expect("a Secret");
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&kube::api::PostParams::default(), &s)
        .await
        .unwrap();
}

/// Creates SecretStore `default/<name>` with `provider` (the `spec.provider` object).
pub async fn create_store(client: &Client, name: &str, provider: Value) {
    let store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"provider": provider}
    }))
    .expect("a SecretStore");
    Api::<SecretStore>::namespaced(client.clone(), "default")
        .create(&kube::api::PostParams::default(), &store)
        .await
        .unwrap();
}

/// The `Ready` condition of SecretStore `default/<name>`: status, reason, message.
pub async fn store_ready(client: &Client, name: &str) -> Option<(String, String, String)> {
    ready_condition(
        &Api::<SecretStore>::namespaced(client.clone(), "default"),
        name,
    )
    .await
}

/// Waits (30 s at most) for SecretStore `default/<name>`'s Ready condition to be `status`;
/// returns its message. A timeout names the last condition seen.
pub async fn wait_store_ready(client: &Client, name: &str, status: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seen = store_ready(client, name).await;
        match &seen {
            Some((s, _, m)) if s == status => return m.clone(),
            _ if std::time::Instant::now() > deadline => {
                panic!("timed out waiting for store {name} Ready={status}; last seen {seen:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The user devcluster counts the controller's requests under (the chart's ServiceAccount).
pub const CONTROLLER_USER: &str = "system:serviceaccount:default:external-secrets";

/// TokenRequests (`create serviceaccounts/token`) the controller made so far.
pub fn token_requests(cluster: &DevCluster) -> u64 {
    cluster
        .requests_by_user()
        .get(CONTROLLER_USER)
        .and_then(|kinds| kinds.get("create serviceaccounts/token").copied())
        .unwrap_or(0)
}

/// Creates ServiceAccount `default/<name>` with `annotations`.
pub async fn create_service_account(client: &Client, name: &str, annotations: Value) {
    let sa: k8s_openapi::api::core::v1::ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name, "annotations": annotations}}))
            .expect("a ServiceAccount");
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), "default")
        .create(&kube::api::PostParams::default(), &sa)
        .await
        .unwrap();
}
