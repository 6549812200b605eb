//! The chart's Grafana dashboard and PrometheusRule query only metrics the controller exports:
//! the binary runs on devcluster through a sync, a failing sync and a broken store (so every
//! family has series), its `/metrics` is scraped, and every PromQL expression of the rendered
//! dashboard and rules is parsed and its metric names looked up in the scrape.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use kube::api::{Api, PostParams};
use serde_json::json;
use strongroom_core::crd::external_secrets::{ClusterSecretStore, SecretStore};
use strongroom_testkit::monitoring::{assert_chart_queries_exported, exported_metrics};
use strongroom_testkit::{http_get, start_cluster_with_rbac, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_alert_rules_query_only_exported_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let store = |name: &str, provider: serde_json::Value| -> SecretStore {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"provider": provider}
        }))
        .unwrap()
    };
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    let fake = json!({"fake": {"data": [{"key": "k", "value": "v"}]}});
    stores
        .create(&PostParams::default(), &store("fake", fake.clone()))
        .await
        .unwrap();
    stores
        .create(
            &PostParams::default(),
            &store("broken", json!({"onepassword": {"vaults": {"x": 1}}})),
        )
        .await
        .unwrap();
    let css: ClusterSecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": "shared"}, "spec": {"provider": fake}
    }))
    .unwrap();
    Api::<ClusterSecretStore>::all(client.clone())
        .create(&PostParams::default(), &css)
        .await
        .unwrap();
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    let data = |key: &str| json!([{"secretKey": "k", "remoteRef": {"key": key}}]);
    apply_es(
        &client,
        es(
            "ok",
            json!({"secretStoreRef": {"name": "fake"}, "data": data("k")}),
        ),
    )
    .await;
    apply_es(
        &client,
        es(
            "missing",
            json!({"secretStoreRef": {"name": "fake"}, "data": data("nope")}),
        ),
    )
    .await;
    wait_ready(&client, "ok", "True", "SecretSynced").await;
    wait_ready(&client, "missing", "False", "SecretSyncedError").await;
    wait_for(
        || async {
            let text = http_get(&controller.metrics).await.1;
            text.contains("clustersecretstore_status_condition{")
                && text.contains("secretstore_status_condition{")
                && text.contains("externalsecret_sync_calls_error{")
        },
        "every family has series",
    )
    .await;
    // client-go's workqueue families, one queue per controller under upstream's names; the
    // failing ExternalSecret's retries are counted, and an idle controller's queue is empty
    let text = http_get(&controller.metrics).await.1;
    for name in ["externalsecret", "secretstore", "clustersecretstore"] {
        let labels = format!(r#"controller="{name}",name="{name}""#);
        for family in [
            "workqueue_adds_total",
            "workqueue_retries_total",
            "workqueue_queue_duration_seconds_count",
            "workqueue_work_duration_seconds_count",
            "workqueue_unfinished_work_seconds",
            "workqueue_longest_running_processor_seconds",
        ] {
            assert!(
                text.contains(&format!("{family}{{{labels}}}")),
                "{family} of {name} missing:\n{text}"
            );
        }
        assert!(
            series_value(&text, &format!("workqueue_adds_total{{{labels}}}")) >= 1.0,
            "{name}: every object was queued at least once"
        );
        // controller-runtime names one controller per kind in its reconcile metrics too
        assert!(
            series_value(
                &text,
                &format!(
                    r#"controller_runtime_reconcile_total{{controller="{name}",result="success"}}"#
                )
            ) >= 1.0,
            "{name}: its reconciles are counted under its own controller name:\n{text}"
        );
    }
    assert!(
        series_value(
            &text,
            r#"workqueue_retries_total{controller="externalsecret",name="externalsecret"}"#
        ) >= 1.0,
        "the failing ExternalSecret's retry is counted"
    );
    assert!(
        series_value(
            &text,
            r#"workqueue_work_duration_seconds_count{controller="externalsecret",name="externalsecret"}"#
        ) >= 2.0,
        "both ExternalSecrets reconciled"
    );
    wait_for(
        || async {
            let text = http_get(&controller.metrics).await.1;
            ["externalsecret", "secretstore", "clustersecretstore"]
                .iter()
                .all(|name| {
                    series_value(
                        &text,
                        &format!(
                            r#"workqueue_depth{{controller="{name}",name="{name}",priority=""}}"#
                        ),
                    ) == 0.0
                })
        },
        "the queues drain once the objects are reconciled",
    )
    .await;
    let exported = exported_metrics(&http_get(&controller.metrics).await.1);

    let objects = assert_chart_queries_exported(
        "external-secrets",
        "grafanaDashboard.enabled=true,prometheusRule.enabled=true",
        &exported,
        (10, 5),
    );
    let dashboard = objects.get("ConfigMap", "external-secrets-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");

    // a deleted store's series leave with it
    stores.delete("broken", &Default::default()).await.unwrap();
    wait_for(
        || async {
            let text = http_get(&controller.metrics).await.1;
            !text
                .lines()
                .any(|l| l.starts_with("secretstore_") && l.contains(r#"name="broken""#))
                && text.contains(r#"name="fake""#)
        },
        "the deleted store's series removed",
    )
    .await;
}

/// The PushSecret, ClusterExternalSecret and ClusterPushSecret families upstream exports: their
/// series appear once the objects reconcile, carry the object's `app.kubernetes.io/*` labels
/// with `--enable-extended-metric-labels`, never a secret value, and leave with the objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_cluster_kinds_export_upstream_series_and_drop_them_on_deletion() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::DeleteParams;
    use strongroom_core::crd::external_secrets::{
        ClusterExternalSecret, ClusterPushSecret, PushSecret,
    };
    const CANARY: &str = "canary-7f3a9e-never-in-metrics";
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/external-secrets.io_clusterexternalsecrets.yaml",
        "deploy/crds/external-secrets.io_pushsecrets.yaml",
        "deploy/crds/external-secrets.io_clusterpushsecrets.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &["team"]).await;
    let css: ClusterSecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": "shared"},
        "spec": {"provider": {"fake": {"data": [{"key": "k", "value": CANARY}]}}}
    }))
    .unwrap();
    Api::<ClusterSecretStore>::all(client.clone())
        .create(&PostParams::default(), &css)
        .await
        .unwrap();
    let source: Secret = serde_json::from_value(json!({
        "metadata": {"name": "source", "namespace": "team"},
        "stringData": {"password": CANARY}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "team")
        .create(&PostParams::default(), &source)
        .await
        .unwrap();
    let controller = start_controller(
        dir.path(),
        &cluster,
        &["--enable-extended-metric-labels=true"],
    )
    .await;
    let app_labels = json!({
        "app.kubernetes.io/name": "billing",
        "app.kubernetes.io/part-of": "shop",
        "team": CANARY,
    });
    let push_spec = json!({
        "refreshInterval": "1h",
        "secretStoreRefs": [{"name": "shared", "kind": "ClusterSecretStore"}],
        "selector": {"secret": {"name": "source"}},
        "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": "pushed"}}}]
    });
    let ps: PushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
        "metadata": {"name": "push", "namespace": "team", "labels": app_labels},
        "spec": push_spec
    }))
    .unwrap();
    let pss = Api::<PushSecret>::namespaced(client.clone(), "team");
    pss.create(&PostParams::default(), &ps).await.unwrap();
    let ces: ClusterExternalSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
        "metadata": {"name": "fan", "labels": app_labels},
        "spec": {
            "namespaces": ["team"],
            "refreshTime": "1h",
            "externalSecretSpec": {
                "secretStoreRef": {"name": "shared", "kind": "ClusterSecretStore"},
                "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}]
            }
        }
    }))
    .unwrap();
    let cess = Api::<ClusterExternalSecret>::all(client.clone());
    cess.create(&PostParams::default(), &ces).await.unwrap();
    let cps: ClusterPushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
        "metadata": {"name": "fan-push"},
        "spec": {
            "namespaceSelectors": [{"matchLabels": {"kubernetes.io/metadata.name": "team"}}],
            "refreshTime": "1h",
            "pushSecretSpec": push_spec
        }
    }))
    .unwrap();
    let cpss = Api::<ClusterPushSecret>::all(client.clone());
    cpss.create(&PostParams::default(), &cps).await.unwrap();

    let extended = r#"app_kubernetes_io_component="",app_kubernetes_io_instance="",app_kubernetes_io_managed_by="",app_kubernetes_io_name="billing",app_kubernetes_io_part_of="shop",app_kubernetes_io_version="""#;
    let expected = [
        format!(
            r#"pushsecret_status_condition{{{extended},condition="Ready",name="push",namespace="team",status="True"}} 1"#
        ),
        format!(
            r#"pushsecret_status_condition{{{extended},condition="Ready",name="push",namespace="team",status="False"}} 0"#
        ),
        format!(
            r#"clusterexternalsecret_status_condition{{{extended},condition="Ready",name="fan",namespace="",status="True"}} 1"#
        ),
        r#"clusterpushsecret_status_condition{app_kubernetes_io_component="",app_kubernetes_io_instance="",app_kubernetes_io_managed_by="",app_kubernetes_io_name="",app_kubernetes_io_part_of="",app_kubernetes_io_version="",condition="Ready",name="fan-push",namespace="",status="True"} 1"#.to_string(),
    ];
    wait_for(
        || async {
            let text = http_get(&controller.metrics).await.1;
            expected.iter().all(|line| text.contains(line.as_str()))
        },
        "the PushSecret, ClusterExternalSecret and ClusterPushSecret series",
    )
    .await;
    let text = http_get(&controller.metrics).await.1;
    for family in [
        "pushsecret_reconcile_duration{",
        "clusterexternalsecret_reconcile_duration{",
        "clusterpushsecret_reconcile_duration{",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(family))
            .unwrap_or_else(|| panic!("{family} missing:\n{text}"));
        assert!(line.contains("app_kubernetes_io_name="), "{line}");
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(value > 0.0, "{line}");
    }
    // the child ExternalSecret's series carry the extended labels too (empty: it has none);
    // the ClusterExternalSecret is Ready once its children exist, maybe before they synced
    wait_for(
        || async {
            let text = http_get(&controller.metrics).await.1;
            text.lines().any(|l| {
                l.starts_with("externalsecret_sync_calls_total{")
                    && l.contains(r#"app_kubernetes_io_name="""#)
                    && l.contains(r#"name="fan""#)
            })
        },
        "the child ExternalSecret's series with the extended labels",
    )
    .await;
    let text = http_get(&controller.metrics).await.1;
    assert!(
        !text.contains(CANARY),
        "a secret or label value outside app.kubernetes.io/* in /metrics"
    );

    // deleted objects take their series with them
    pss.delete("push", &DeleteParams::default()).await.unwrap();
    cess.delete("fan", &DeleteParams::default()).await.unwrap();
    cpss.delete("fan-push", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        || async {
            let text = http_get(&controller.metrics).await.1;
            !text.lines().any(|l| {
                (l.starts_with("pushsecret_") && l.contains(r#"name="push""#))
                    || l.starts_with("clusterexternalsecret_")
                    || (l.starts_with("clusterpushsecret_") && !l.starts_with('#'))
            })
        },
        "the deleted objects' series removed",
    )
    .await;
    // the CES's child ExternalSecret went with it (garbage collection aside, the controller
    // deletes it), and so did its series; the store's stay
    wait_for(
        || async {
            let text = http_get(&controller.metrics).await.1;
            !text.lines().any(|l| {
                l.starts_with("externalsecret_status_condition{") && l.contains(r#"name="fan""#)
            }) && text.contains(r#"clustersecretstore_status_condition{"#)
        },
        "the child ExternalSecret's series removed",
    )
    .await;
}

/// The value of the series that starts with `series` (name and labels) in a scrape.
fn series_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
}

/// `--metrics-secure`: `/metrics` is served over HTTPS, with the certificate and key of
/// `--metrics-cert-dir` (trusted here as their own CA) or a self-signed one; plain HTTP gets
/// no answer there, and the probes stay plain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_secure_serves_https_with_the_given_or_a_self_signed_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(certs.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    let (cluster, _client) = start_cluster_with_rbac(&CRDS, &[]).await;

    let scrape = |url: String, client: reqwest::Client| async move {
        let answer = client.get(url).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        answer.text().await.unwrap()
    };
    let given = start_controller(
        dir.path(),
        &cluster,
        &[
            "--metrics-secure=true",
            &format!("--metrics-cert-dir={}", certs.display()),
            "--metrics-cert-name=cert.pem",
            "--metrics-key-name=key.pem",
        ],
    )
    .await;
    let https = given.metrics.replacen("http://", "https://", 1);
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let text = scrape(https.clone(), trusting).await;
    assert!(text.contains("workqueue_adds_total"), "{text}");
    // not plain HTTP
    assert!(reqwest::get(&given.metrics).await.is_err());
    // a client trusting nothing of ours refuses the certificate
    assert!(reqwest::get(&https).await.is_err());
    drop(given);

    let self_signed = start_controller(dir.path(), &cluster, &["--metrics-secure"]).await;
    let https = self_signed.metrics.replacen("http://", "https://", 1);
    let any = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let text = scrape(https, any).await;
    assert!(text.contains("workqueue_adds_total"), "{text}");
}

/// `--metrics-auth` (with `--metrics-secure`): a scrape needs a bearer token the API server
/// accepts for a user allowed `get` on `/metrics` (TokenReview, then SubjectAccessReview, under
/// the chart's RBAC for the flag). Without `--metrics-secure` the controller refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_auth_lets_only_allowed_service_accounts_scrape() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    for name in ["prometheus", "nosy"] {
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"}}))
                .unwrap();
        Api::<ServiceAccount>::namespaced(client.clone(), "default")
            .create(&PostParams::default(), &sa)
            .await
            .unwrap();
    }
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "metrics-reader"},
        "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    }))
    .unwrap();
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "prometheus-reads-metrics"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "metrics-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "default"}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let token = |name: &'static str| {
        let client = client.clone();
        async move {
            strongroom_testkit::request_token(&client, "default", name, &[], None)
                .await
                .unwrap()
        }
    };
    let (allowed, denied) = (token("prometheus").await, token("nosy").await);

    let controller = start_controller_with_values(
        dir.path(),
        &cluster,
        &["--metrics-secure", "--metrics-auth"],
        &["--set", "extraArgs.metrics-auth=true"],
    )
    .await;
    let url = controller.metrics.replacen("http://", "https://", 1);
    let any = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let scrape = |bearer: Option<String>| {
        let (any, url) = (any.clone(), url.clone());
        async move {
            let mut request = any.get(url);
            if let Some(b) = bearer {
                request = request.bearer_auth(b);
            }
            let answer = request.send().await.unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };
    assert_eq!(scrape(None).await.0, 401);
    assert_eq!(scrape(Some("not-a-token".into())).await.0, 401);
    let (code, body) = scrape(Some(denied)).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("system:serviceaccount:default:nosy"),
        "{body}"
    );
    // twice: the second answer comes from the cache and is the same
    for _ in 0..2 {
        let (code, body) = scrape(Some(allowed.clone())).await;
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("workqueue_adds_total"), "{body}");
    }
    drop(controller);

    // without TLS the flag is refused at start
    let mut plain = strongroom_testkit::Process::spawn(
        env!("CARGO_BIN_EXE_external-secrets-controller"),
        &[
            "--metrics-auth".to_string(),
            "--metrics-addr=127.0.0.1:0".to_string(),
            "--live-addr=127.0.0.1:0".to_string(),
        ],
        &[(
            "KUBECONFIG",
            dir.path().join("kubeconfig").display().to_string(),
        )],
        dir.path().join("plain.log"),
    );
    let status = plain.wait_exit(std::time::Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| !s.success()));
    assert!(
        plain.log_text().contains("needs --metrics-secure"),
        "{}",
        plain.log_text()
    );
}
