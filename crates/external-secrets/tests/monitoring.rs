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
