//! End to end: the webhook provider (`spec.provider.webhook`) through the
//! `external-secrets-controller` binary on devcluster. A webhook endpoint is any HTTP server,
//! so the servers this test starts ([`Recorder`]) are real backends: one checks a bearer token
//! and serves a JSON document per key; one serves over HTTPS with its own CA.
//!
//! Covered: `data` (one property each, through a templated `result.jsonPath`) and
//! `dataFrom.extract` from one store; templated URL and headers with a token from a
//! `secrets[]` Secret; `caBundle`; a store without the CA failing on the certificate; a non-2xx
//! answer giving SecretSyncedError and a Warning event with the Secret kept; a PushSecret
//! sending a value (and deleting it with the PushSecret); no canary in logs, events or
//! statuses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use strongroom_core::crd::external_secrets::{ExternalSecret, PushSecret};
use strongroom_testkit::recorder::{Recorded, Recorder};
use strongroom_testkit::{CANARY, assert_no_canary, start_cluster_with_rbac, wait_for};

/// Every ExternalSecret and PushSecret status of `default`, as JSON text.
async fn statuses(client: &kube::Client) -> String {
    let es: Vec<Value> = Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| serde_json::to_value(&e.status).unwrap())
        .collect();
    let ps: Vec<Value> = Api::<PushSecret>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| serde_json::to_value(&p.status).unwrap())
        .collect();
    json!({"externalSecrets": es, "pushSecrets": ps}).to_string()
}

/// The token-checking service: `GET /secrets/<key>?version=<v>` with `Authorization: Bearer
/// <token>` answers `{"data": {...}}` for key `db-creds`, 404 for others, 401 without the
/// token; `POST /pushed/<key>` and `DELETE /pushed/<key>` are accepted. While `failing` is
/// set it answers 503 with a canary in the body.
fn service(token: String, password: String, failing: Arc<AtomicBool>) -> Recorder {
    Recorder::start_responding(Box::new(move |r: &Recorded| {
        if failing.load(Ordering::SeqCst) {
            return (503, json!({"error": CANARY}).to_string());
        }
        if r.header("authorization") != Some(format!("Bearer {token}").as_str()) {
            return (401, json!({"error": "unauthorized"}).to_string());
        }
        let path = r.path.split('?').next().unwrap_or("");
        match (r.method.as_str(), path) {
            ("GET", "/secrets/db-creds") => (
                200,
                json!({"data": {"username": "svc", "password": password, "port": 5432}})
                    .to_string(),
            ),
            ("POST" | "DELETE", p) if p.starts_with("/pushed/") => (200, String::new()),
            _ => (404, json!({"error": "no such key"}).to_string()),
        }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_store_reads_pushes_and_keeps_the_secret_on_bad_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.push("deploy/crds/external-secrets.io_pushsecrets.yaml");
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let token = format!("tok-{CANARY}");
    let password = format!("pw-{CANARY}");
    let failing = Arc::new(AtomicBool::new(false));
    let hook = service(token.clone(), password.clone(), failing.clone());
    let tls_hook = Recorder::start_tls(&json!({"token": "over-tls"}).to_string());
    let ca_pem = tls_hook.ca_pem.clone().unwrap();
    let creds: Secret = serde_json::from_value(json!({"metadata": {"name": "hook-creds",
        "labels": {"external-secrets.io/type": "webhook"}}, "stringData": {"token": token}}))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &creds)
        .await
        .unwrap();
    put_secret(
        &client,
        "to-push",
        json!({"apiKey": format!("push-{CANARY}")}),
    )
    .await;
    create_store(
        &client,
        "hook",
        json!({"webhook": {
            "url": format!("{}/secrets/{{{{ .remoteRef.key }}}}?version={{{{ .remoteRef.version }}}}", hook.url),
            "headers": {"Authorization": "Bearer {{ .creds.token }}"},
            "result": {"jsonPath":
                "{{ if .remoteRef.property }}$.data.{{ .remoteRef.property }}{{ else }}$.data{{ end }}"},
            "secrets": [{"name": "creds", "secretRef": {"name": "hook-creds"}}],
            "timeout": "5s"}}),
    )
    .await;
    create_store(
        &client,
        "hook-push",
        json!({"webhook": {
            "url": format!("{}/pushed/{{{{ .remoteRef.remoteKey }}}}", hook.url),
            "headers": {"Authorization": "Bearer {{ .creds.token }}"},
            "body": "{\"name\": \"{{ .remoteRef.remoteKey }}\", \"value\": \"{{ index .remoteRef \"api-key\" }}\"}",
            "secrets": [{"name": "creds", "secretRef": {"name": "hook-creds"}}]}}),
    )
    .await;
    create_store(
        &client,
        "hook-tls",
        json!({"webhook": {"url": format!("{}/token", tls_hook.url),
            "result": {"jsonPath": "$.token"},
            "caBundle": base64::engine::general_purpose::STANDARD.encode(&ca_pem)}}),
    )
    .await;
    create_store(
        &client,
        "hook-untrusted",
        json!({"webhook": {"url": format!("{}/untrusted", tls_hook.url),
            "result": {"jsonPath": "$.token"}}}),
    )
    .await;
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    for store in ["hook", "hook-push", "hook-tls", "hook-untrusted"] {
        wait_store_ready(&client, store, "True").await;
    }
    let store_ref = |name: &str| json!({"name": name, "kind": "SecretStore"});
    apply_es(
        &client,
        es(
            "from-hook",
            json!({"refreshInterval": "1h", "secretStoreRef": store_ref("hook"),
                "data": [
                    {"secretKey": "user", "remoteRef": {"key": "db-creds", "property": "username", "version": "v 1"}},
                    {"secretKey": "pw", "remoteRef": {"key": "db-creds", "property": "password"}}],
                "dataFrom": [{"extract": {"key": "db-creds"}}]}),
        ),
    )
    .await;
    apply_es(
        &client,
        es(
            "over-tls",
            json!({"refreshInterval": "1h", "secretStoreRef": store_ref("hook-tls"),
                "data": [{"secretKey": "token", "remoteRef": {"key": "any"}}]}),
        ),
    )
    .await;
    apply_es(
        &client,
        es(
            "untrusted",
            json!({"refreshInterval": "1h", "secretStoreRef": store_ref("hook-untrusted"),
                "data": [{"secretKey": "token", "remoteRef": {"key": "any"}}]}),
        ),
    )
    .await;

    // data (a property each, through the templated jsonPath) and dataFrom (the object)
    wait_ready(&client, "from-hook", "True", "SecretSynced").await;
    let data = secret_data(&client, "from-hook").await.unwrap();
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["password", "port", "pw", "user", "username"]
    );
    assert_eq!(data["user"], "svc");
    assert_eq!(data["pw"], password);
    assert_eq!(data["password"], password);
    assert_eq!(data["port"], "5432");
    // the requests: templated URL (query-escaped version) and header from the Secret
    let requests = hook.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/secrets/db-creds?version=v+1"),
        "{:?}",
        requests.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some(format!("Bearer {token}").as_str()))
    );

    // HTTPS with the store's caBundle; without it the certificate is refused
    wait_ready(&client, "over-tls", "True", "SecretSynced").await;
    assert_eq!(
        secret_data(&client, "over-tls").await.unwrap()["token"],
        "over-tls"
    );
    let message = wait_error(&client, "untrusted", "failed to call endpoint").await;
    assert!(message.contains("certificate"), "{message}");
    assert!(secret_data(&client, "untrusted").await.is_none());

    // a non-2xx answer: SecretSyncedError, a Warning event, the Secret kept
    failing.store(true, Ordering::SeqCst);
    force_sync(&client, "default", "from-hook").await;
    wait_error(&client, "from-hook", "endpoint gave error 503").await;
    wait_event(
        &client,
        "default",
        "from-hook",
        "Warning",
        "UpdateFailed",
        "endpoint gave error 503",
    )
    .await;
    assert_eq!(secret_data(&client, "from-hook").await.unwrap(), data);
    failing.store(false, Ordering::SeqCst);

    // PushSecret: the value in the templated body, the key in the URL; DELETE with the
    // PushSecret (deletionPolicy Delete)
    let ps: PushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
        "metadata": {"name": "push", "namespace": "default"},
        "spec": {"refreshInterval": "1h", "deletionPolicy": "Delete",
            "secretStoreRefs": [{"name": "hook-push", "kind": "SecretStore"}],
            "selector": {"secret": {"name": "to-push"}},
            "data": [{"match": {"secretKey": "apiKey", "remoteRef": {"remoteKey": "api-key"}}}]}
    }))
    .unwrap();
    let pss = Api::<PushSecret>::namespaced(client.clone(), "default");
    pss.create(&PostParams::default(), &ps).await.unwrap();
    let pushed = || {
        hook.requests()
            .into_iter()
            .filter(|r| r.path == "/pushed/api-key")
            .map(|r| (r.method, r.body))
            .collect::<Vec<_>>()
    };
    wait_for(
        || async { pushed().iter().any(|(m, _)| m == "POST") },
        "value pushed",
    )
    .await;
    let (_, body) = pushed().into_iter().find(|(m, _)| m == "POST").unwrap();
    assert_eq!(
        body,
        format!(r#"{{"name": "api-key", "value": "push-{CANARY}"}}"#)
    );
    pss.delete("push", &DeleteParams::default()).await.unwrap();
    wait_for(
        || async { pushed().iter().any(|(m, _)| m == "DELETE") },
        "pushed value deleted with the PushSecret",
    )
    .await;

    assert_no_canary(
        &[],
        &[
            ("log", &controller.process.log_text()),
            ("events", &events_json(&client, "default").await),
            ("statuses", &statuses(&client).await),
        ],
    );
}
