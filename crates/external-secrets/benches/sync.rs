//! The controller binary on devcluster with N ExternalSecrets (`BENCH_N`, default 1,000) over
//! K distinct remote keys (`BENCH_KEYS`, default 100) of one store: `BENCH_PROVIDER=fake` (the
//! default: the store spec is the backend), `aws` (Secrets Manager on a real moto server),
//! `vault` (KV v2 on a real OpenBao dev server, AppRole login), `gcp` (the Secret Manager
//! stand-in, a service-account key, tokens living `BENCH_GCP_TOKEN_SECONDS`, default 20) or
//! `azure` (the Azure Key Vault stand-in, service principal with a client secret;
//! `BENCH_TOKEN_SECONDS` sets its token lifetime, default 3600). Provider calls are counted by
//! the controller (`externalsecret_provider_api_calls_count`) and, for moto, OpenBao and the
//! stand-ins, on the server side too (moto's request log; OpenBao's audit device, logins apart;
//! the stand-ins' counters, token exchanges as logins). Reports:
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
use strongroom_testkit::backends::{Moto, OpenBao};
use strongroom_testkit::standins::azure::{AzureStandIn, Options as AzureOptions};
use strongroom_testkit::standins::gcp::{GcpStandIn, PROJECT};
use strongroom_testkit::{
    free_port, http_get, http_try, rss_mib, service_account_kubeconfig, start_cluster,
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every provider call the controller counted (any call, any status).
async fn provider_calls(url: &str) -> f64 {
    metric_sum(url, "externalsecret_provider_api_calls_count{").await
}

/// The sum of every series whose line starts with `prefix`.
async fn metric_sum(url: &str, prefix: &str) -> f64 {
    let (_, text) = http_get(url).await;
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const ES_RECONCILES: &str = "controller_runtime_reconcile_total{controller=\"externalsecret\"";

/// The backend behind the store, and how to count its calls on its side.
enum Backend {
    Fake,
    Aws(Moto),
    /// The server (kept running until the end) and its audit log.
    Vault(#[allow(dead_code)] OpenBao, std::path::PathBuf),
    Gcp(GcpStandIn),
    /// The stand-in and the directory holding its CA file (for `SSL_CERT_FILE`).
    Azure(AzureStandIn, tempfile::TempDir),
}

impl Backend {
    /// Starts the backend named by `BENCH_PROVIDER`, seeds `keys` values and returns the
    /// store's provider block (credentials go into Secret `default/bench-creds`).
    async fn start(keys: u64, client: &kube::Client) -> (Self, serde_json::Value) {
        let value = |k: u64| format!("value-{k}-{}", "x".repeat(48));
        let creds = |data: serde_json::Value| {
            let client = client.clone();
            async move {
                let s: k8s_openapi::api::core::v1::Secret = serde_json::from_value(
                    json!({"metadata": {"name": "bench-creds"}, "stringData": data}),
                )
                .unwrap();
                Api::namespaced(client, "default")
                    .create(&PostParams::default(), &s)
                    .await
                    .unwrap();
            }
        };
        match std::env::var("BENCH_PROVIDER").as_deref() {
            Ok("aws") => {
                let moto = Moto::start().await;
                let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new("us-east-1"))
                    .credentials_provider(aws_credential_types::Credentials::new(
                        "test", "test", None, None, "bench",
                    ))
                    .endpoint_url(&moto.endpoint)
                    .http_client(aws_smithy_http_client::Builder::new().build_http())
                    .load()
                    .await;
                let sm = aws_sdk_secretsmanager::Client::new(&sdk);
                for k in 0..keys {
                    sm.create_secret()
                        .name(format!("key-{k}"))
                        .secret_string(value(k))
                        .send()
                        .await
                        .unwrap();
                }
                creds(json!({"id": "test", "secret": "test"})).await;
                let block = json!({"aws": {"service": "SecretsManager", "region": "us-east-1",
                    "auth": {"secretRef": {
                        "accessKeyIDSecretRef": {"name": "bench-creds", "key": "id"},
                        "secretAccessKeySecretRef": {"name": "bench-creds", "key": "secret"}}}}});
                (Self::Aws(moto), block)
            }
            Ok("vault") => {
                let (bao, audit) = OpenBao::start_audited().await;
                for k in 0..keys {
                    bao.cli(&[
                        "kv",
                        "put",
                        &format!("secret/key-{k}"),
                        &format!("value={}", value(k)),
                    ]);
                }
                bao.policy(
                    "reader",
                    r#"path "secret/*" { capabilities = ["read", "list"] }"#,
                );
                let (role_id, secret_id) = bao.approle("reader", "reader", "1h");
                creds(json!({"role-id": role_id, "secret-id": secret_id})).await;
                let block = json!({"vault": {"server": bao.addr, "path": "secret", "version": "v2",
                    "auth": {"appRole": {"path": "approle",
                        "roleRef": {"name": "bench-creds", "key": "role-id"},
                        "secretRef": {"name": "bench-creds", "key": "secret-id"}}}}});
                (Self::Vault(bao, audit), block)
            }
            Ok("gcp") => {
                let standin = GcpStandIn::start();
                standin.set_token_lifetime(Duration::from_secs(env("BENCH_GCP_TOKEN_SECONDS", 20)));
                for k in 0..keys {
                    standin.put(None, &format!("key-{k}"), value(k).as_bytes());
                }
                creds(json!({"key.json": standin.service_account_key()})).await;
                let block = json!({"gcpsm": {"projectID": PROJECT, "auth": {"secretRef":
                    {"secretAccessKeySecretRef": {"name": "bench-creds", "key": "key.json"}}}}});
                (Self::Gcp(standin), block)
            }
            Ok("azure") => {
                let standin = AzureStandIn::start(AzureOptions {
                    token_lifetime: Duration::from_secs(env("BENCH_TOKEN_SECONDS", 3600)),
                    ..AzureOptions::default()
                })
                .await;
                for k in 0..keys {
                    standin.set_secret(&format!("key-{k}"), &value(k));
                }
                standin.register_client_secret("bench-app", "bench-secret");
                creds(json!({"id": "bench-app", "secret": "bench-secret"})).await;
                let dir = tempfile::tempdir().unwrap();
                std::fs::write(dir.path().join("ca.pem"), &standin.ca_pem).unwrap();
                let block = json!({"azurekv": {"vaultUrl": standin.vault_url, "tenantId": standin.tenant(),
                    "authSecretRef": {"clientId": {"name": "bench-creds", "key": "id"},
                        "clientSecret": {"name": "bench-creds", "key": "secret"}}}});
                (Self::Azure(standin, dir), block)
            }
            _ => {
                let data: Vec<_> = (0..keys)
                    .map(|k| json!({"key": format!("key-{k}"), "value": value(k)}))
                    .collect();
                (Self::Fake, json!({"fake": {"data": data}}))
            }
        }
    }

    /// The property ExternalSecrets read (vault: a key of the KV map).
    fn property(&self) -> Option<&'static str> {
        matches!(self, Self::Vault(..)).then_some("value")
    }

    /// Server-side counts so far: (reads, logins); `None` for the fake provider.
    fn server_counts(&self) -> Option<(usize, usize)> {
        match self {
            Self::Fake => None,
            Self::Aws(moto) => Some((moto.requests().len(), 0)),
            Self::Gcp(standin) => Some((
                standin.count("AccessSecretVersion"),
                standin.token_exchanges(),
            )),
            Self::Azure(standin, _) => Some((
                standin.count("GetSecret") as usize,
                standin.token_exchanges() as usize,
            )),
            Self::Vault(_, audit) => {
                let text = std::fs::read_to_string(audit).unwrap_or_default();
                let requests: Vec<serde_json::Value> = text
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .filter(|v: &serde_json::Value| v["type"] == "request")
                    .collect();
                let path =
                    |v: &serde_json::Value| v["request"]["path"].as_str().unwrap_or("").to_string();
                let reads = requests
                    .iter()
                    .filter(|v| path(v).starts_with("secret/data/"))
                    .count();
                let logins = requests
                    .iter()
                    .filter(|v| path(v).ends_with("/login"))
                    .count();
                Some((reads, logins))
            }
        }
    }
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

fn es(name: &str, key: u64, interval: u64, property: Option<&str>) -> serde_json::Value {
    let mut remote = json!({"key": format!("key-{key}")});
    if let Some(p) = property {
        remote["property"] = json!(p);
    }
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"refreshInterval": format!("{interval}s"), "secretStoreRef": {"name": "bench"},
                 "data": [{"secretKey": "value", "remoteRef": remote}]}
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
    let (backend, provider) = Backend::start(keys, &client).await;
    let property = backend.property();
    let store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {"provider": provider}
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
                    &Patch::Apply(es(&format!("es-{i}"), i % keys, interval, property)),
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
    let server_before = backend.server_counts();
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_external-secrets-controller"))
        .args([
            format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            format!("--live-addr=127.0.0.1:{live_port}"),
            "--concurrent=8".into(),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .envs(match &backend {
            Backend::Aws(moto) => vec![("AWS_SECRETSMANAGER_ENDPOINT", moto.endpoint.clone())],
            Backend::Gcp(standin) => vec![("GCP_SECRETMANAGER_ENDPOINT", standin.url.clone())],
            Backend::Azure(standin, dir) => vec![
                (
                    "SSL_CERT_FILE",
                    dir.path().join("ca.pem").display().to_string(),
                ),
                ("AZURE_AUTHORITY_HOST", standin.authority.clone()),
            ],
            _ => vec![],
        })
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
    let server_first = backend.server_counts();
    let api_calls: u64 = cluster
        .requests_by_user()
        .get(&user)
        .map(|m| m.values().sum())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_mib(child.id());
    let reconciles_synced = metric_sum(&metrics, ES_RECONCILES).await;
    let cpu_before = cpu_seconds(child.id());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu = cpu_seconds(child.id()) - cpu_before;
    let idle_reconciles = metric_sum(&metrics, ES_RECONCILES).await - reconciles_synced;

    // one refresh cycle: every ExternalSecret refreshes once; count provider calls, and time a
    // new ExternalSecret created while the refreshes are due
    let cycle_start = provider_calls(&metrics).await;
    let server_cycle_start = backend.server_counts();
    let cycle_began = Instant::now();
    let mut new_wait = None;
    while cycle_began.elapsed() < Duration::from_secs(interval + interval / 5) {
        if new_wait.is_none() && cycle_began.elapsed() >= Duration::from_secs(interval * 8 / 10) {
            let t = Instant::now();
            ess.patch(
                "es-new",
                &PatchParams::apply("bench"),
                &Patch::Apply(es("es-new", 0, interval, property)),
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
    let server_cycle_end = backend.server_counts();
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "external-secrets controller, {n} ExternalSecrets over {keys} remote keys of a {} store, refreshInterval {interval}s",
        std::env::var("BENCH_PROVIDER").unwrap_or_else(|_| "fake".into())
    );
    if let (Some(b), Some(f), Some(cs), Some(ce)) = (
        server_before,
        server_first,
        server_cycle_start,
        server_cycle_end,
    ) {
        println!(
            "  server side, first sync:          {} requests, {} logins",
            f.0 - b.0,
            f.1 - b.1
        );
        println!(
            "  server side, one refresh cycle:   {} requests, {} logins",
            ce.0 - cs.0,
            ce.1 - cs.1
        );
    }
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
        "  ExternalSecret reconciles:        {:.2} per ES until synced, {idle_reconciles:.0} in the idle 10 s",
        reconciles_synced / n as f64
    );
    println!(
        "  new ES wait while refreshes due:  {:.3} s",
        new_wait.unwrap_or(f64::NAN)
    );
}
