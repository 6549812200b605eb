//! The controller binary on devcluster: N SealedSecrets of 3 items, with 1 key and with 13 keys
//! (a year of renewals). Reports time until every Secret exists, unseals per second, the
//! controller's resident memory, and API calls. `cargo xtask bench sealed` runs it next to
//! `openssl speed rsa4096`. N defaults to 1,000 (`BENCH_N=10000` for the large run).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use strongroom_core::crd::sealed_secret::SealedSecret;
use strongroom_core::sealing::{
    KeyGenParams, SealingCertificate, generate_key_and_cert, os_rng, seal_to_base64,
};
use strongroom_devcluster::store::Selection;
use strongroom_sealed_secrets::keys::key_secret;
use strongroom_testkit::{free_port, rss_mib, start_cluster};

async fn scenario(n: usize, keys: usize) {
    let (cluster, client) =
        start_cluster(&["deploy/crds/bitnami.com_sealedsecrets.yaml"], &[]).await;

    // keys: one per month of a year, oldest first; the newest seals (as kubeseal would use it)
    let key_api: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let mut newest: Option<SealingCertificate> = None;
    for i in 0..keys {
        let age = chrono::Duration::days(30 * (keys - 1 - i) as i64);
        let (key, cert) = generate_key_and_cert(&KeyGenParams {
            now: chrono::Utc::now() - age,
            ..KeyGenParams::default()
        })
        .unwrap();
        let s = key_secret(
            "kube-system",
            "sealed-secrets-key",
            &key,
            &cert.pem,
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
        key_api.create(&PostParams::default(), &s).await.unwrap();
        newest = Some(cert);
    }
    let cert = newest.unwrap();

    // the SealedSecrets exist before the controller starts: the start-up case
    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    stream::iter(0..n)
        .map(|i| {
            let (api, cert) = (sealed_api.clone(), cert.clone());
            async move {
                let name = format!("s{i}");
                let label = format!("default/{name}");
                let mut enc = serde_json::Map::new();
                for item in ["user", "password", "url"] {
                    enc.insert(item.into(), Value::String(seal_to_base64(&mut os_rng(), &cert.key, label.as_bytes(), b"value-0123456789").unwrap()));
                }
                let ss: SealedSecret = serde_json::from_value(json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "metadata": {"name": name, "namespace": "default"}, "spec": {"encryptedData": enc}})).unwrap();
                api.create(&PostParams::default(), &ss).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .for_each(|_| async {})
        .await;

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let calls_before = cluster.requests();
    let kinds_before = cluster.requests_by_kind();
    let start = Instant::now();
    // BENCH_WRAPPER runs the controller under a profiler, e.g. BENCH_WRAPPER=heaptrack
    let binary = env!("CARGO_BIN_EXE_sealed-secrets-controller");
    let mut command = match std::env::var("BENCH_WRAPPER") {
        Ok(wrapper) if !wrapper.is_empty() => {
            let mut c = Command::new(wrapper);
            c.arg(binary);
            c
        }
        _ => Command::new(binary),
    };
    let mut child = command
        .arg("--listen-addr")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--listen-metrics-addr")
        .arg(format!("127.0.0.1:{}", free_port()))
        .args(["--concurrency", "4", "--leader-elect", "false"])
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", "kube-system")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // poll the store directly, so the API-call figures are the controller's alone
    let store = cluster.store().clone();
    let secrets_rt = store.resource("", "v1", "secrets").unwrap();
    let in_default = Selection {
        namespace: Some("default".into()),
        ..Default::default()
    };
    let mut peak_rss = 0f64;
    loop {
        peak_rss = peak_rss.max(rss_mib(child.id()));
        if store.count(&secrets_rt, &in_default) >= n {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(1800), "timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    // let the status writes and events of the last objects land before counting
    tokio::time::sleep(Duration::from_secs(2)).await;
    peak_rss = peak_rss.max(rss_mib(child.id()));
    let calls = cluster.requests() - calls_before;
    let after = cluster.requests_by_kind();
    let mut by_kind: Vec<(String, u64)> = after
        .into_iter()
        .map(|(k, v)| {
            let before = kinds_before.get(&k).copied().unwrap_or(0);
            (k, v - before)
        })
        .filter(|(_, v)| *v > 0)
        .collect();
    by_kind.sort_by_key(|(_, v)| std::cmp::Reverse(*v));
    println!(
        "{n} SealedSecrets x 3 items, {keys} key(s): all Secrets in {elapsed:.1} s from controller start; {:.0} unseals/s; controller peak RSS {peak_rss:.0} MiB; {calls} API calls by the controller ({:.2} per SealedSecret)",
        (3 * n) as f64 / elapsed,
        calls as f64 / n as f64,
    );
    let breakdown: Vec<String> = by_kind.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("  API calls by verb: {}", breakdown.join(", "));
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // BENCH_KEYS=1 runs one scenario only
    let keys = std::env::var("BENCH_KEYS").unwrap_or_else(|_| "1,13".into());
    for k in keys.split(',').filter_map(|k| k.trim().parse().ok()) {
        scenario(n, k).await;
    }
}
