//! End to end: the real `sealed-secrets-controller` binary against devcluster.
//! (Sealing here uses the same core code `kubeseal` uses; `kubeseal`'s own end-to-end tests
//! cover the CLI.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use strongroom_core::crd::sealed_secret::SealedSecret;
use strongroom_core::sealing::{SealingCertificate, SealingScope, os_rng, seal_to_base64};
use strongroom_devcluster::{DevCluster, Options};

const CANARY: &str = "canary-3d9f-secret-value";

struct Controller {
    child: Child,
    log: PathBuf,
    api: String,
    metrics: String,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn http_get(url: &str) -> (u16, String) {
    http(url, "GET", None).await
}

/// A tiny HTTP/1.1 client over a TCP socket (the controller serves plain HTTP).
async fn http(url: &str, method: &str, body: Option<&str>) -> (u16, String) {
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

async fn start(dir: &Path) -> (DevCluster, Client, Controller) {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let kubeconfig = dir.join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let client = cluster.client().await.unwrap();
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

    let (api_port, metrics_port) = (free_port(), free_port());
    let log = dir.join("controller.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sealed-secrets-controller"))
        .args(["--key-size", "2048", "--resync-period", "3s"])
        .arg("--listen-addr")
        .arg(format!("127.0.0.1:{api_port}"))
        .arg("--listen-metrics-addr")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", "kube-system")
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
    };
    wait_for(
        || async { http_try(&format!("{}/v1/cert.pem", controller.api)).await == Some(200) },
        "certificate served",
    )
    .await;
    (cluster, client, controller)
}

async fn http_try(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let (host, _) = rest.split_once('/')?;
    tokio::net::TcpStream::connect(host).await.ok()?;
    Some(http_get(url).await.0)
}

async fn wait_for<F, Fut>(mut check: F, what: &str)
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

async fn cert(controller: &Controller) -> SealingCertificate {
    let (code, pem) = http_get(&format!("{}/v1/cert.pem", controller.api)).await;
    assert_eq!(code, 200);
    SealingCertificate::from_pem(&pem).unwrap()
}

fn sealed(
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

fn synced(ss: &SealedSecret) -> Option<(String, String)> {
    let c = ss
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Synced")?;
    Some((c.status.clone(), c.message.clone().unwrap_or_default()))
}

#[tokio::test]
async fn unseals_updates_reports_failures_and_keeps_secrets_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client, controller) = start(dir.path()).await;
    let cert = cert(&controller).await;
    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");

    // strict, namespace-wide and cluster-wide seals all unseal into Secrets
    for (scope, name) in [
        (SealingScope::Strict, "strict"),
        (SealingScope::NamespaceWide, "nswide"),
        (SealingScope::ClusterWide, "clusterwide"),
    ] {
        sealed_api
            .create(
                &PostParams::default(),
                &sealed(&cert, scope, "default", name, &[("password", CANARY)]),
            )
            .await
            .unwrap();
    }
    for name in ["strict", "nswide", "clusterwide"] {
        wait_for(
            || async { secrets.get_opt(name).await.unwrap().is_some() },
            name,
        )
        .await;
        let s = secrets.get(name).await.unwrap();
        assert_eq!(s.data.as_ref().unwrap()["password"].0, CANARY.as_bytes());
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(s.labels()["app"], "web");
        let owner = &s.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("SealedSecret", Some(true))
        );
        assert!(
            s.annotations()
                .contains_key("sealedsecrets.strongroom.dev/sealing-key")
        );
        wait_for(
            || async {
                synced(&sealed_api.get(name).await.unwrap()).is_some_and(|(s, _)| s == "True")
            },
            "Synced=True",
        )
        .await;
    }

    // an update adds the new item
    let mut updated = sealed(
        &cert,
        SealingScope::Strict,
        "default",
        "strict",
        &[("password", CANARY), ("user", "app")],
    );
    let current = sealed_api.get("strict").await.unwrap();
    updated.metadata.resource_version = current.metadata.resource_version.clone();
    sealed_api
        .replace("strict", &PostParams::default(), &updated)
        .await
        .unwrap();
    wait_for(
        || async {
            secrets
                .get("strict")
                .await
                .unwrap()
                .data
                .unwrap()
                .contains_key("user")
        },
        "updated Secret",
    )
    .await;

    // tampered and moved SealedSecrets fail with a precise message and write nothing
    let mut tampered = sealed(
        &cert,
        SealingScope::Strict,
        "default",
        "tampered",
        &[("password", CANARY)],
    );
    let blob = tampered.spec.encrypted_data["password"]
        .as_str()
        .unwrap()
        .to_string();
    let mut chars: Vec<char> = blob.chars().collect();
    let i = chars.len() - 6;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    tampered.spec.encrypted_data.insert(
        "password".into(),
        Value::String(chars.into_iter().collect()),
    );
    sealed_api
        .create(&PostParams::default(), &tampered)
        .await
        .unwrap();
    let moved = sealed(
        &cert,
        SealingScope::Strict,
        "staging",
        "moved",
        &[("password", CANARY)],
    );
    let mut moved: SealedSecret = moved;
    moved.metadata.namespace = Some("default".into());
    sealed_api
        .create(&PostParams::default(), &moved)
        .await
        .unwrap();
    wait_for(
        || async {
            synced(&sealed_api.get("tampered").await.unwrap()).is_some_and(|(s, _)| s == "False")
        },
        "tampered Synced=False",
    )
    .await;
    wait_for(
        || async {
            synced(&sealed_api.get("moved").await.unwrap()).is_some_and(|(s, _)| s == "False")
        },
        "moved Synced=False",
    )
    .await;
    let (_, msg) = synced(&sealed_api.get("tampered").await.unwrap()).unwrap();
    assert!(msg.contains("modified after sealing"), "{msg}");
    let (_, msg) = synced(&sealed_api.get("moved").await.unwrap()).unwrap();
    assert!(msg.contains("another namespace or name"), "{msg}");
    assert!(secrets.get_opt("tampered").await.unwrap().is_none());
    assert!(secrets.get_opt("moved").await.unwrap().is_none());

    // a Secret the controller does not manage is left alone
    let foreign: Secret = serde_json::from_value(
        json!({"metadata": {"name": "foreign"}, "stringData": {"keep": "me"}}),
    )
    .unwrap();
    secrets
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    sealed_api
        .create(
            &PostParams::default(),
            &sealed(
                &cert,
                SealingScope::Strict,
                "default",
                "foreign",
                &[("x", "y")],
            ),
        )
        .await
        .unwrap();
    wait_for(
        || async {
            synced(&sealed_api.get("foreign").await.unwrap()).is_some_and(|(s, _)| s == "False")
        },
        "foreign Synced=False",
    )
    .await;
    let (_, msg) = synced(&sealed_api.get("foreign").await.unwrap()).unwrap();
    assert!(
        msg.contains("already exists and is not managed by SealedSecret"),
        "{msg}"
    );
    assert_eq!(
        secrets.get("foreign").await.unwrap().data.unwrap()["keep"].0,
        b"me"
    );

    // Warning events name the failure
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    wait_for(
        || async {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| e.reason.as_deref() == Some("ErrUnsealFailed"))
        },
        "ErrUnsealFailed event",
    )
    .await;

    // /v1/verify and /v1/rotate
    let good = serde_json::to_string(&sealed_api.get("nswide").await.unwrap()).unwrap();
    assert_eq!(
        http(
            &format!("{}/v1/verify", controller.api),
            "POST",
            Some(&good)
        )
        .await
        .0,
        200
    );
    let bad = serde_json::to_string(&sealed_api.get("tampered").await.unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        http(&format!("{}/v1/verify", controller.api), "POST", Some(&bad))
            .await
            .0,
        409
    );
    let (code, rotated) = http(
        &format!("{}/v1/rotate", controller.api),
        "POST",
        Some(&good),
    )
    .await;
    assert_eq!(code, 200, "{rotated}");
    let rotated: SealedSecret = serde_json::from_str(&rotated).unwrap();
    assert_ne!(
        rotated.spec.encrypted_data["password"],
        serde_json::from_str::<SealedSecret>(&good)
            .unwrap()
            .spec
            .encrypted_data["password"]
    );

    // deleting the SealedSecret collects its Secret
    sealed_api
        .delete("clusterwide", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        || async { secrets.get_opt("clusterwide").await.unwrap().is_none() },
        "Secret collected",
    )
    .await;

    // metrics carry upstream names
    let (_, metrics) = http_get(&format!("{}/metrics", controller.metrics)).await;
    assert!(
        metrics.contains("sealed_secrets_controller_unseal_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "sealed_secrets_controller_unseal_errors_total{namespace=\"default\",reason=\"unseal\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("sealed_secrets_controller_condition_info{"),
        "{metrics}"
    );

    // no plaintext anywhere but the Secrets
    let log = std::fs::read_to_string(&controller.log).unwrap();
    assert!(
        !log.contains(CANARY),
        "the canary reached the controller log"
    );
    assert!(!metrics.contains(CANARY));
    for ss in sealed_api.list(&ListParams::default()).await.unwrap().items {
        assert!(!serde_json::to_string(&ss.status).unwrap().contains(CANARY));
    }
    for e in events.list(&ListParams::default()).await.unwrap().items {
        assert!(!serde_json::to_string(&e).unwrap().contains(CANARY));
    }
}

#[tokio::test]
async fn keys_are_generated_once_and_added_keys_load_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client, controller) = start(dir.path()).await;
    let key_secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let keys = key_secrets
        .list(&ListParams::default().labels("sealedsecrets.bitnami.com/sealed-secrets-key=active"))
        .await
        .unwrap()
        .items;
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert!(k.name_any().starts_with("sealed-secrets-key"));
    assert_eq!(k.type_.as_deref(), Some("kubernetes.io/tls"));
    let first = cert(&controller).await;

    // bring-your-own key: a new labelled Secret becomes the sealing key without a restart
    let params = strongroom_core::sealing::KeyGenParams {
        bits: 2048,
        now: chrono::Utc::now() + chrono::Duration::seconds(5),
        ..Default::default()
    };
    let (key, cert_new) = strongroom_core::sealing::generate_key_and_cert(&params).unwrap();
    let secret = strongroom_sealed_secrets::keys::key_secret(
        "kube-system",
        "sealed-secrets-key",
        &key,
        &cert_new.pem,
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    key_secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    wait_for(
        || async { cert(&controller).await.key.fingerprint() == key.fingerprint() },
        "new key served",
    )
    .await;
    assert_ne!(first.key.fingerprint(), key.fingerprint());

    // SealedSecrets sealed with the old key still unseal
    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    sealed_api
        .create(
            &PostParams::default(),
            &sealed(
                &first,
                SealingScope::Strict,
                "default",
                "old-key",
                &[("a", "b")],
            ),
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    wait_for(
        || async { secrets.get_opt("old-key").await.unwrap().is_some() },
        "old-key Secret",
    )
    .await;
}
