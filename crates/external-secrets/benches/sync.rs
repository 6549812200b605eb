//! The controller binary on devcluster with N ExternalSecrets (`BENCH_N`, default 1,000) over
//! K distinct remote keys (`BENCH_KEYS`, default 100) of a fake store, whose provider calls the
//! controller counts in `externalsecret_provider_api_calls_count`. Reports:
//! - time until every ExternalSecret is Ready, from the controller's start;
//! - provider calls for that first sync, and during one refresh cycle (`BENCH_INTERVAL`
//!   seconds, default 60): the goal is one per distinct key;
//! - Kubernetes API calls per ExternalSecret (the controller authenticates as its own
//!   ServiceAccount, so devcluster counts its calls apart from the harness's);
//! - resident memory after the sync and CPU seconds used while idle for 10 s;
//! - the time a new ExternalSecret waits for its first sync while a refresh cycle is due.
//!
//! `cargo xtask bench external-secrets` runs it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use strongroom_core::crd::external_secrets::{ExternalSecret, SecretStore};
use strongroom_testkit::{
    free_port, http_get, http_try, rss_mib, service_account_kubeconfig, start_cluster,
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn provider_calls(url: &str) -> f64 {
    let (_, text) = http_get(url).await;
    text.lines()
        .filter(|l| l.starts_with("externalsecret_provider_api_calls_count{call=\"GetSecret\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

async fn count_ready(api: &Api<ExternalSecret>) -> usize {
    api.list(&Default::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|es| {
                    es.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn es(name: &str, key: u64, interval: u64) -> serde_json::Value {
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"refreshInterval": format!("{interval}s"), "secretStoreRef": {"name": "fake"},
                 "data": [{"secretKey": "value", "remoteRef": {"key": format!("key-{key}")}}]}
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env("BENCH_N", 1000);
    let keys = env("BENCH_KEYS", 100);
    let interval = env("BENCH_INTERVAL", 60);
    let (cluster, client) = start_cluster(
        &[
            "deploy/crds/external-secrets.io_externalsecrets.yaml",
            "deploy/crds/external-secrets.io_secretstores.yaml",
            "deploy/crds/external-secrets.io_clustersecretstores.yaml",
        ],
        &[],
    )
    .await;
    let data: Vec<_> = (0..keys)
        .map(|k| json!({"key": format!("key-{k}"), "value": format!("value-{k}-{}", "x".repeat(48))}))
        .collect();
    let store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "fake", "namespace": "default"},
        "spec": {"provider": {"fake": {"data": data}}}
    }))
    .unwrap();
    Api::<SecretStore>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &store)
        .await
        .unwrap();
    let ess: Api<ExternalSecret> = Api::namespaced(client.clone(), "default");
    stream::iter(0..n)
        .map(|i| {
            let ess = ess.clone();
            async move {
                ess.patch(
                    &format!("es-{i}"),
                    &PatchParams::apply("bench"),
                    &Patch::Apply(es(&format!("es-{i}"), i % keys, interval)),
                )
                .await
                .unwrap();
            }
        })
        .buffer_unordered(32)
        .for_each(|_| async {})
        .await;

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let user = service_account_kubeconfig(
        &cluster,
        &client,
        "default",
        "external-secrets",
        &kubeconfig,
    )
    .await;
    let (metrics_port, live_port) = (free_port(), free_port());
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_external-secrets-controller"))
        .args([
            format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            format!("--live-addr=127.0.0.1:{live_port}"),
            "--concurrent=8".into(),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while http_try(&format!("http://127.0.0.1:{live_port}/readyz")).await != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "controller not ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let ready = count_ready(&ess).await;
        if ready as u64 >= n {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "only {ready} of {n} synced"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let synced_after = start.elapsed().as_secs_f64();
    let first_calls = provider_calls(&metrics).await;
    let api_calls: u64 = cluster
        .requests_by_user()
        .get(&user)
        .map(|m| m.values().sum())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_mib(child.id());
    let cpu_before = cpu_seconds(child.id());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu = cpu_seconds(child.id()) - cpu_before;

    // one refresh cycle: every ExternalSecret refreshes once; count provider calls, and time a
    // new ExternalSecret created while the refreshes are due
    let cycle_start = provider_calls(&metrics).await;
    let cycle_began = Instant::now();
    let mut new_wait = None;
    while cycle_began.elapsed() < Duration::from_secs(interval + interval / 5) {
        if new_wait.is_none() && cycle_began.elapsed() >= Duration::from_secs(interval * 8 / 10) {
            let t = Instant::now();
            ess.patch(
                "es-new",
                &PatchParams::apply("bench"),
                &Patch::Apply(es("es-new", 0, interval)),
            )
            .await
            .unwrap();
            loop {
                let ok = ess
                    .get("es-new")
                    .await
                    .ok()
                    .and_then(|e| e.status)
                    .and_then(|s| s.conditions)
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if ok {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            new_wait = Some(t.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cycle_calls = provider_calls(&metrics).await - cycle_start;
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "external-secrets controller, {n} ExternalSecrets over {keys} remote keys, refreshInterval {interval}s"
    );
    println!("  time until all synced:            {synced_after:.1} s (from start)");
    println!(
        "  provider calls, first sync:       {first_calls} ({:.2} per distinct key)",
        first_calls / keys as f64
    );
    println!(
        "  provider calls, one refresh cycle: {cycle_calls} ({:.2} per distinct key)",
        cycle_calls / keys as f64
    );
    println!(
        "  Kubernetes API calls per ES:      {:.2} (first sync, incl. watches)",
        api_calls as f64 / n as f64
    );
    println!("  resident memory after sync:       {rss:.1} MiB");
    println!("  idle CPU over 10 s:               {idle_cpu:.2} s");
    println!(
        "  new ES wait while refreshes due:  {:.3} s",
        new_wait.unwrap_or(f64::NAN)
    );
}
