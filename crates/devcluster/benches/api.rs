//! devcluster throughput and latency, measured with the real kube-rs client over HTTPS:
//! storing 100k objects, 10 concurrent watchers, listing 10k Secrets, and the latency from
//! a create to its watch event. Run with `cargo xtask bench devcluster`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use strongroom_devcluster::{DevCluster, Options};

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn client(cluster: &DevCluster) -> Client {
    let kc = Kubeconfig::from_yaml(&cluster.kubeconfig()).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn secret(name: String) -> Secret {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"bench": "yes"}}, "data": {"k": "dmFsdWUtdmFsdWUtdmFsdWU="}})).unwrap()
}

async fn create_many(
    client: &Client,
    ns: &str,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> Duration {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let name = format!("{prefix}-{i}");
            async move {
                api.create(&PostParams::default(), &secret(name))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(concurrency)
        .for_each(|_| async {})
        .await;
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let rss_start = rss_mib();
    let cluster = DevCluster::start(Options {
        history: 10_000,
        ..Options::default()
    })
    .await
    .unwrap();
    let client = client(&cluster).await;

    // 1. store 100k objects (ConfigMaps) through the API
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let n = 100_000;
    let start = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let cms = cms.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": format!("cm-{i}")}, "data": {"a": "b"}}),
                )
                .unwrap();
                cms.create(&PostParams::default(), &cm).await.unwrap()
            }
        })
        .buffer_unordered(32)
        .for_each(|_| async {})
        .await;
    let store_time = start.elapsed();
    println!(
        "store 100k ConfigMaps via HTTPS: {:.1} s ({:.0} creates/s); server objects {}; process RSS {:.0} MiB (was {:.0})",
        store_time.as_secs_f64(),
        n as f64 / store_time.as_secs_f64(),
        cluster.store().len(),
        rss_mib(),
        rss_start
    );

    // 2. list 10k Secrets
    let t = create_many(&client, "kube-public", "list", 10_000, 32).await;
    println!("create 10k Secrets: {:.1} s", t.as_secs_f64());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-public");
    let rounds = 10;
    let start = Instant::now();
    for _ in 0..rounds {
        let l = secrets.list(&ListParams::default()).await.unwrap();
        assert_eq!(l.items.len(), 10_000);
    }
    println!(
        "list 10k Secrets: {:.1} ms per list (kube-rs, decode included)",
        start.elapsed().as_secs_f64() * 1000.0 / rounds as f64
    );

    // 3. ten concurrent watchers each see 1000 creates
    let watch_api: Api<Secret> = Api::namespaced(client.clone(), "kube-node-lease");
    let rv = watch_api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let events = 1000usize;
    let mut watchers = Vec::new();
    for _ in 0..10 {
        let stream = watch_api
            .watch(&WatchParams::default().timeout(290), &rv)
            .await
            .unwrap();
        watchers.push(tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut seen = 0usize;
            while seen < events {
                if let Some(WatchEvent::Added(_)) = stream.try_next().await.unwrap() {
                    seen += 1;
                }
            }
            Instant::now()
        }));
    }
    let start = Instant::now();
    create_many(&client, "kube-node-lease", "w", events, 16).await;
    let mut last = start;
    for w in watchers {
        last = last.max(w.await.unwrap());
    }
    println!(
        "10 watchers x 1000 creates: all events delivered {:.2} s after the first create ({:.0} events/s delivered)",
        (last - start).as_secs_f64(),
        (10 * events) as f64 / (last - start).as_secs_f64()
    );

    // 4. create -> watch event latency
    let lat_api: Api<Secret> = Api::namespaced(client.clone(), "default");
    let rv = lat_api
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = lat_api
        .watch(&WatchParams::default().timeout(290), &rv)
        .await
        .unwrap()
        .boxed();
    let mut samples = Vec::new();
    for i in 0..500 {
        let start = Instant::now();
        lat_api
            .create(&PostParams::default(), &secret(format!("lat-{i}")))
            .await
            .unwrap();
        loop {
            if let Some(WatchEvent::Added(_)) = stream.try_next().await.unwrap() {
                break;
            }
        }
        samples.push(start.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
    println!(
        "create -> watch event latency (500 samples, includes the create round trip): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "final process RSS {:.0} MiB with {} objects",
        rss_mib(),
        cluster.store().len()
    );
}
