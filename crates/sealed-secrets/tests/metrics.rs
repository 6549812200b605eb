//! `/metrics` after each scenario: upstream's names and labels (dashboards and the
//! `SealedSecretsUnsealErrorHigh` alert query them), the condition series of a deleted
//! SealedSecret removed, none without `--update-status`, and no series for paths nobody
//! instruments (one user must not be able to grow the controller's memory through the proxy).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use strongroom_core::crd::sealed_secret::SealedSecret;
use strongroom_core::sealing::SealingScope;

use common::*;

async fn scrape(c: &Controller) -> String {
    http_get(&format!("{}/metrics", c.metrics)).await.1
}

fn labelled(mut ss: SealedSecret, instance: &str) -> SealedSecret {
    ss.metadata.labels = Some(
        [(
            "app.kubernetes.io/instance".to_string(),
            instance.to_string(),
        )]
        .into(),
    );
    ss
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_keep_upstream_names_and_labels_and_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client, mut controller) = start(dir.path()).await;
    let cert = cert(&controller).await;
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &labelled(
            sealed(
                &cert,
                SealingScope::Strict,
                "default",
                "good",
                &[("a", CANARY)],
            ),
            "app1",
        ),
    )
    .await
    .unwrap();
    // sealed for another name: it does not open
    let mut bad = sealed(
        &cert,
        SealingScope::Strict,
        "default",
        "elsewhere",
        &[("a", "b")],
    );
    bad.metadata.name = Some("bad".into());
    api.create(&PostParams::default(), &labelled(bad, "app2"))
        .await
        .unwrap();
    // a SealedSecret that does not read as one: a number where a label value must be a string
    let unreadable: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "unreadable", "namespace": "default"},
        "spec": {"encryptedData": {}, "template": {"metadata": {"labels": {"n": 5}}}}
    }))
    .unwrap();
    let resource = kube::api::ApiResource::erase::<SealedSecret>(&());
    Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), "default", &resource)
        .create(&PostParams::default(), &unreadable)
        .await
        .unwrap();

    let good = r#"sealed_secrets_controller_condition_info{condition="Synced",name="good",namespace="default",ss_app_kubernetes_io_instance="app1"} 1"#;
    let failed = r#"sealed_secrets_controller_condition_info{condition="Synced",name="bad",namespace="default",ss_app_kubernetes_io_instance="app2"} -1"#;
    wait_for(
        || async {
            let m = scrape(&controller).await;
            m.contains(good) && m.contains(failed) && m.contains(r#"reason="fetch""#)
        },
        "condition series for both and the fetch error",
    )
    .await;

    // the API: three instrumented handlers, lower-case methods; other paths leave no series
    let (code, _) = http_get(&format!("{}/v1/cert.pem", controller.api)).await;
    assert_eq!(code, 200);
    let (code, _) = http(&format!("{}/v1/verify", controller.api), "POST", Some("{}")).await;
    assert_eq!(code, 400);
    for path in ["/nope/one", "/v1/cert.pem/extra", "/healthz", "/v1/other"] {
        http_get(&format!("{}{path}", controller.api)).await;
    }
    // invented methods share one label value
    for method in ["PURGE", "XYZZY"] {
        http(&format!("{}/v1/cert.pem", controller.api), method, None).await;
    }
    let m = scrape(&controller).await;
    for want in [
        r#"sealed_secrets_controller_http_requests_total{code="200",method="get",path="/v1/cert.pem"}"#,
        r#"sealed_secrets_controller_http_requests_total{code="400",method="post",path="/v1/verify"}"#,
        r#"sealed_secrets_controller_http_request_duration_seconds_bucket{method="get",path="/v1/cert.pem",le="0.005"}"#,
        r#"sealed_secrets_controller_unseal_errors_total{namespace="default",reason="unseal"}"#,
        r#"sealed_secrets_controller_unseal_errors_total{namespace="default",reason="fetch"}"#,
        "sealed_secrets_controller_unseal_requests_total ",
        "sealed_secrets_controller_build_info{",
        r#"controller_runtime_reconcile_total{controller="sealedsecret",result="success"}"#,
        r#"controller_runtime_reconcile_time_seconds_bucket{controller="sealedsecret""#,
        r#"method="other",path="/v1/cert.pem""#,
        // client-go's workqueue families (ours only: upstream exports none)
        r#"workqueue_depth{controller="sealedsecret",name="sealedsecret",priority=""}"#,
        r#"workqueue_adds_total{controller="sealedsecret",name="sealedsecret"}"#,
        r#"workqueue_queue_duration_seconds_bucket{controller="sealedsecret",name="sealedsecret",le="+Inf"}"#,
        r#"workqueue_work_duration_seconds_count{controller="sealedsecret",name="sealedsecret"}"#,
        r#"workqueue_retries_total{controller="sealedsecret",name="sealedsecret"}"#,
        r#"workqueue_unfinished_work_seconds{controller="sealedsecret",name="sealedsecret"}"#,
        r#"workqueue_longest_running_processor_seconds{controller="sealedsecret",name="sealedsecret"}"#,
    ] {
        assert!(m.contains(want), "missing {want} in:\n{m}");
    }
    // the chart's dashboards and alert rules query only what this scrape exports
    strongroom_testkit::monitoring::assert_chart_queries_exported(
        "sealed-secrets",
        "metrics.dashboards.create=true,metrics.prometheusRule.enabled=true",
        &strongroom_testkit::monitoring::exported_metrics(&m),
        (5, 1),
    );
    for unwanted in [
        "/nope/one",
        "/v1/cert.pem/extra",
        "/healthz",
        "/v1/other",
        "method=\"GET\"",
        "purge",
        "xyzzy",
    ] {
        assert!(!m.contains(unwanted), "a series for {unwanted}:\n{m}");
    }
    assert!(!m.contains(CANARY));

    // a deleted SealedSecret's series goes
    api.delete("good", &DeleteParams::default()).await.unwrap();
    wait_for(
        || async { !scrape(&controller).await.contains(r#"name="good""#) },
        "the deleted SealedSecret's series removed",
    )
    .await;
    assert!(
        scrape(&controller).await.contains(failed),
        "the others stay"
    );

    // without --update-status there is no condition series
    controller.process.signal("TERM");
    controller
        .process
        .wait_exit(Duration::from_secs(5))
        .await
        .unwrap();
    let quiet = restart_with(dir.path(), &cluster, &["--update-status=false"]).await;
    wait_for(
        || async {
            scrape(&quiet).await.contains(
                r#"controller_runtime_reconcile_total{controller="sealedsecret",result="error"}"#,
            )
        },
        "the failing SealedSecret reconciled",
    )
    .await;
    assert!(
        !scrape(&quiet)
            .await
            .contains("sealed_secrets_controller_condition_info{")
    );
}
