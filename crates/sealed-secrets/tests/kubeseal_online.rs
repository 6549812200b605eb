//! The online `kubeseal` against the real controller, reached through devcluster's service
//! proxy exactly as on a cluster: `--fetch-cert`, sealing without `--cert`, `--validate`,
//! `--re-encrypt`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::core::v1::{Endpoints, Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use strongroom_core::crd::sealed_secret::SealedSecret;

use common::*;

/// The kubeseal binary of this workspace (built on demand when only this crate is tested).
fn kubeseal_bin() -> PathBuf {
    let bin =
        PathBuf::from(env!("CARGO_BIN_EXE_sealed-secrets-controller")).with_file_name("kubeseal");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "strongroom-kubeseal"])
            .status()
            .unwrap();
        assert!(status.success(), "building kubeseal failed");
    }
    bin
}

fn kubeseal(kubeconfig: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(kubeseal_bin())
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--controller-namespace",
            "kube-system",
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "kubeseal failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

// kubeseal runs as a blocking child process: the in-process API server needs its own worker
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeseal_reaches_the_controller_through_the_service_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client, controller) = start(dir.path()).await;
    let kubeconfig = dir.path().join("kubeconfig");
    // the Service kubeseal looks up, and Endpoints pointing at the controller process
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "sealed-secrets-controller"}, "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": "http"}]}})).unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "kube-system");
    let ep: Endpoints = serde_json::from_value(json!({"metadata": {"name": "sealed-secrets-controller"}, "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": controller.api_port}]}]})).unwrap();
    endpoints.create(&PostParams::default(), &ep).await.unwrap();

    let kc = kubeconfig.clone();
    let fetched = tokio::task::spawn_blocking(move || ok(&kubeseal(&kc, &["--fetch-cert"], "")))
        .await
        .unwrap();
    assert_eq!(
        fetched,
        http_get(&format!("{}/v1/cert.pem", controller.api)).await.1
    );

    // seal without --cert: the certificate comes through the proxy
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: online\n  namespace: default\nstringData:\n  token: {CANARY}\n"
    );
    let kc = kubeconfig.clone();
    let sealed_yaml =
        tokio::task::spawn_blocking(move || ok(&kubeseal(&kc, &["-o", "yaml"], &secret)))
            .await
            .unwrap();
    let sealed: SealedSecret =
        serde_yaml_ng::from_str(sealed_yaml.trim_start_matches("---\n")).unwrap();
    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    sealed_api
        .create(&PostParams::default(), &sealed)
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    wait_for(
        || async { secrets.get_opt("online").await.unwrap().is_some() },
        "Secret from the online seal",
    )
    .await;
    assert_eq!(
        secrets.get("online").await.unwrap().data.unwrap()["token"].0,
        CANARY.as_bytes()
    );

    // --validate: 0 for a good one, a clear error for an undecryptable one
    let file = dir.path().join("sealed.yaml");
    std::fs::write(&file, &sealed_yaml).unwrap();
    let (kc, f) = (kubeconfig.clone(), file.clone());
    tokio::task::spawn_blocking(move || {
        ok(&kubeseal(
            &kc,
            &["--validate", "-f", f.to_str().unwrap()],
            "",
        ))
    })
    .await
    .unwrap();
    let broken = sealed_yaml.replace("namespace: default", "namespace: elsewhere");
    let kc = kubeconfig.clone();
    let out = tokio::task::spawn_blocking(move || kubeseal(&kc, &["--validate"], &broken))
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unable to decrypt sealed secret: online"),
        "{err}"
    );

    // --re-encrypt with only -f rewrites the file in place; it still unseals
    let before = std::fs::read_to_string(&file).unwrap();
    let (kc, f) = (kubeconfig.clone(), file.clone());
    tokio::task::spawn_blocking(move || {
        ok(&kubeseal(
            &kc,
            &["--re-encrypt", "-f", f.to_str().unwrap()],
            "",
        ))
    })
    .await
    .unwrap();
    let after = std::fs::read_to_string(&file).unwrap();
    assert_ne!(before, after);
    assert!(after.starts_with("---\n"), "{after}");
    let rotated: SealedSecret = serde_yaml_ng::from_str(after.trim_start_matches("---\n")).unwrap();
    // /v1/verify is rate limited (2 per second): let the bucket refill after the validations
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (code, _) = http(
        &format!("{}/v1/verify", controller.api),
        "POST",
        Some(&serde_json::to_string(&rotated).unwrap()),
    )
    .await;
    assert_eq!(code, 200);
    assert!(!after.contains(CANARY));
}

/// Seals `secret_yaml` with the kubeseal binary and the given certificate file and flags.
async fn kubeseal_seal(kubeconfig: &Path, cert: &Path, flags: &[&str], secret_yaml: &str) -> Value {
    let (kc, cert) = (kubeconfig.to_path_buf(), cert.to_path_buf());
    let mut args = vec!["--cert".to_string(), cert.display().to_string()];
    args.extend(flags.iter().map(|f| f.to_string()));
    let input = secret_yaml.to_string();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&kubeseal(&kc, &args, &input))
    })
    .await
    .unwrap();
    assert!(!out.contains(CANARY));
    serde_json::from_str(&out).unwrap()
}

fn input_secret(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    app: web\ntype: kubernetes.io/basic-auth\nstringData:\n  username: admin\n  password: {CANARY}\n"
    )
}

async fn create(client: &kube::Client, sealed: Value) {
    let ss: SealedSecret = serde_json::from_value(sealed).unwrap();
    let ns = ss.metadata.namespace.clone().unwrap();
    Api::<SealedSecret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &ss)
        .await
        .unwrap();
}

async fn failure_message(client: &kube::Client, ns: &str, name: &str) -> String {
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
    wait_for(
        || async { synced(&api.get(name).await.unwrap()).is_some_and(|(s, _)| s == "False") },
        &format!("{ns}/{name} Synced=False"),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    assert!(
        secrets.get_opt(name).await.unwrap().is_none(),
        "{name}: no Secret is written"
    );
    synced(&api.get(name).await.unwrap()).unwrap().1
}

// kubeseal runs as a blocking child process: the in-process API server needs its own worker
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeseal_seals_every_scope_failures_are_precise_and_renewal_keeps_old_seals() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client, controller) =
        start_with(dir.path(), &["--key-renew-period", "4s"], &["other"]).await;
    let kubeconfig = dir.path().join("kubeconfig");
    let first = http_get(&format!("{}/v1/cert.pem", controller.api)).await.1;
    let cert1 = dir.path().join("cert1.pem");
    std::fs::write(&cert1, &first).unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");

    // every scope: sealed by the binary, applied, unsealed with data, type, labels and owner
    for scope in ["strict", "namespace-wide", "cluster-wide"] {
        let name = format!("s-{scope}");
        let sealed = kubeseal_seal(
            &kubeconfig,
            &cert1,
            &["--scope", scope],
            &input_secret(&name, "default"),
        )
        .await;
        create(&client, sealed).await;
        wait_for(
            || async { secrets.get_opt(&name).await.unwrap().is_some() },
            &name,
        )
        .await;
        let s = secrets.get(&name).await.unwrap();
        let data = s.data.as_ref().unwrap();
        assert_eq!(data["password"].0, CANARY.as_bytes());
        assert_eq!(data["username"].0, b"admin");
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/basic-auth"));
        assert_eq!(s.labels()["app"], "web");
        let owner = &s.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("SealedSecret", name.as_str())
        );
    }

    // a strict seal moved to another namespace
    let mut moved =
        kubeseal_seal(&kubeconfig, &cert1, &[], &input_secret("moved", "default")).await;
    moved["metadata"]["namespace"] = json!("other");
    create(&client, moved).await;
    let msg = failure_message(&client, "other", "moved").await;
    assert!(msg.contains("another namespace or name"), "{msg}");

    // a namespace-wide seal whose annotation was dropped is read as strict
    let mut rescoped = kubeseal_seal(
        &kubeconfig,
        &cert1,
        &["--scope", "namespace-wide"],
        &input_secret("rescoped", "default"),
    )
    .await;
    rescoped["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    create(&client, rescoped).await;
    let msg = failure_message(&client, "default", "rescoped").await;
    assert!(
        msg.contains("sealed with scope namespace-wide") && msg.contains("read as strict"),
        "{msg}"
    );

    // sealed with a certificate whose key the controller does not hold
    let params = strongroom_core::sealing::KeyGenParams {
        bits: 2048,
        ..Default::default()
    };
    let (_, foreign) = strongroom_core::sealing::generate_key_and_cert(&params).unwrap();
    let foreign_cert = dir.path().join("foreign.pem");
    std::fs::write(&foreign_cert, &foreign.pem).unwrap();
    let unknown = kubeseal_seal(
        &kubeconfig,
        &foreign_cert,
        &["--scope", "cluster-wide"],
        &input_secret("unknown-key", "default"),
    )
    .await;
    create(&client, unknown).await;
    let msg = failure_message(&client, "default", "unknown-key").await;
    assert!(msg.contains("does not hold"), "{msg}");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "other");
    wait_for(
        || async {
            events
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("ErrUnsealFailed")
                        && e.type_.as_deref() == Some("Warning")
                })
        },
        "Warning event",
    )
    .await;

    // key renewal: the served certificate changes, new seals use the new key, old seals open
    wait_for(
        || async { http_get(&format!("{}/v1/cert.pem", controller.api)).await.1 != first },
        "renewed key",
    )
    .await;
    let second = http_get(&format!("{}/v1/cert.pem", controller.api)).await.1;
    let cert2 = dir.path().join("cert2.pem");
    std::fs::write(&cert2, &second).unwrap();
    let new_fp = strongroom_core::sealing::SealingCertificate::from_pem(&second)
        .unwrap()
        .key
        .fingerprint()
        .to_string();
    create(
        &client,
        kubeseal_seal(&kubeconfig, &cert2, &[], &input_secret("after", "default")).await,
    )
    .await;
    create(
        &client,
        kubeseal_seal(
            &kubeconfig,
            &cert1,
            &[],
            &input_secret("old-cert", "default"),
        )
        .await,
    )
    .await;
    for name in ["after", "old-cert"] {
        wait_for(
            || async { secrets.get_opt(name).await.unwrap().is_some() },
            name,
        )
        .await;
    }
    let after = secrets.get("after").await.unwrap();
    assert_eq!(
        after.annotations()["sealedsecrets.strongroom.dev/sealing-key"],
        new_fp
    );
    let old = secrets.get("old-cert").await.unwrap();
    assert_ne!(
        old.annotations()["sealedsecrets.strongroom.dev/sealing-key"],
        new_fp
    );
    assert_eq!(old.data.unwrap()["password"].0, CANARY.as_bytes());

    let log = std::fs::read_to_string(&controller.log).unwrap();
    assert!(
        !log.contains(CANARY),
        "the canary reached the controller log"
    );
}
