//! The online `kubeseal` against the real controller, reached through devcluster's service
//! proxy exactly as on a cluster: `--fetch-cert`, sealing without `--cert`, `--validate`,
//! `--re-encrypt`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::core::v1::{Endpoints, Secret, Service};
use kube::api::{Api, PostParams};
use serde_json::json;
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
