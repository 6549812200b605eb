//! The reloader binary on devcluster with N Secrets and N ConfigMaps of 4 KiB (default 5,000
//! each, `BENCH_N`) and D Deployments (default 1,000, `BENCH_DEPLOYMENTS`), each Deployment
//! using one Secret and one ConfigMap and annotated `auto`. Reports the reloader's resident
//! memory after the initial lists, the time from a Secret change to the Deployment's patch as
//! seen by a watch (median and p99 over `BENCH_CHANGES` changes, default 200, one at a time),
//! and the API calls the reloader makes per change. `cargo xtask bench reloader` runs it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use strongroom_testkit::{free_port, http_try, rss_mib, start_cluster};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn admin_calls(cluster: &strongroom_testkit::DevCluster) -> u64 {
    cluster
        .requests_by_user()
        .get("admin")
        .map(|m| m.values().sum::<u64>())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env("BENCH_N", 5000);
    let deployments = env("BENCH_DEPLOYMENTS", 1000);
    let changes = env("BENCH_CHANGES", 200);
    let (cluster, client) = start_cluster(&[], &[]).await;
    let value = "x".repeat(4096);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    stream::iter(0..n)
        .map(|i| {
            let (secrets, config_maps, value) =
                (secrets.clone(), config_maps.clone(), value.clone());
            async move {
                let s: Secret = serde_json::from_value(
                    json!({"metadata": {"name": format!("s{i}")}, "stringData": {"v": value}}),
                )
                .unwrap();
                secrets.create(&PostParams::default(), &s).await.unwrap();
                let c: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": format!("c{i}")}, "data": {"v": value}}),
                )
                .unwrap();
                config_maps
                    .create(&PostParams::default(), &c)
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(32)
        .for_each(|_| async {})
        .await;
    stream::iter(0..deployments)
        .map(|i| {
            let deploys = deploys.clone();
            async move {
                let d: Deployment = serde_json::from_value(json!({
                    "metadata": {"name": format!("d{i}"), "annotations": {"reloader.stakater.com/auto": "true"}},
                    "spec": {"selector": {"matchLabels": {"app": format!("d{i}")}}, "template": {
                        "metadata": {"labels": {"app": format!("d{i}")}},
                        "spec": {"containers": [{"name": "app", "image": "x",
                            "envFrom": [{"secretRef": {"name": format!("s{i}")}}, {"configMapRef": {"name": format!("c{i}")}}]}]}}}
                }))
                .unwrap();
                deploys.create(&PostParams::default(), &d).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .for_each(|_| async {})
        .await;

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let port = free_port();
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_reloader"))
        .args([
            format!("--listen-addr=127.0.0.1:{port}"),
            "--coalesce-window=0s".into(),
            "--max-rollouts-per-second=0".into(),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while http_try(&format!("http://127.0.0.1:{port}/readyz")).await != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "reloader not ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready_after = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_mib(child.id());

    // one change at a time: Secret patch -> the Deployment's template changes (seen by a watch)
    let mut rolled = watcher(deploys.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    // drain the initial list
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), rolled.next()).await {}
    let calls_before = admin_calls(&cluster);
    let mut latencies = Vec::with_capacity(changes);
    for c in 0..changes {
        let i = c % deployments;
        let name = format!("d{i}");
        let t = Instant::now();
        secrets
            .patch(
                &format!("s{i}"),
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"v": format!("{value}{c}")}})),
            )
            .await
            .unwrap();
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(30), rolled.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if ev.metadata.name.as_deref() == Some(name.as_str()) {
                break;
            }
        }
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // the reloader and this harness share the admin identity: the harness made one patch per
    // change; its watch is one long request
    let reloader_calls = admin_calls(&cluster) - calls_before - changes as u64;
    let rss_after = rss_mib(child.id());
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{n} Secrets + {n} ConfigMaps of 4 KiB, {deployments} Deployments: ready after {ready_after:.1} s; RSS {rss_idle:.0} MiB after the lists, {rss_after:.0} MiB after {changes} changes"
    );
    println!(
        "change -> Deployment patched (seen by a watch): p50 {:.1} ms, p99 {:.1} ms; {:.2} reloader API calls per change ({reloader_calls} for {changes})",
        pct(0.5),
        pct(0.99),
        reloader_calls as f64 / changes as f64
    );
    let _ = child.kill();
    let _ = child.wait();
}
