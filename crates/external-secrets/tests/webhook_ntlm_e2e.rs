//! End to end: `auth.ntlm` of the webhook provider and of the Webhook generator through the
//! `external-secrets-controller` binary on devcluster, against a real NTLM acceptor
//! (pyspnego's, behind `crates/testkit/python/ntlm_server.py`).
//!
//! Covered: a SecretStore with `auth.ntlm` syncing a value (user name and password from a
//! labelled Secret; the handshake anonymous, NEGOTIATE, AUTHENTICATE on one connection); a
//! store with the wrong password failing with an authentication error naming the store and a
//! Warning event; a Webhook generator with `auth.ntlm`; no password in logs, events or statuses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use strongroom_core::crd::external_secrets::ExternalSecret;
use strongroom_testkit::ntlm::{NtlmOptions, NtlmServer};
use strongroom_testkit::{CANARY, assert_no_canary, start_cluster_with_rbac};

/// Applies Webhook generator `name` in `default`.
async fn apply_webhook_generator(client: &kube::Client, name: &str, spec: Value) {
    let ar = kube::api::ApiResource {
        group: "generators.external-secrets.io".into(),
        version: "v1alpha1".into(),
        api_version: "generators.external-secrets.io/v1alpha1".into(),
        plural: "webhooks".into(),
        kind: "Webhook".into(),
    };
    let obj = json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Webhook",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec});
    Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), "default", &ar)
        .patch(name, &PatchParams::apply("test"), &Patch::Apply(&obj))
        .await
        .unwrap();
}

/// Every ExternalSecret status of `default`, as JSON text.
async fn statuses(client: &kube::Client) -> String {
    serde_json::to_string(
        &Api::<ExternalSecret>::namespaced(client.clone(), "default")
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|e| e.status.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap()
}

fn ntlm_auth(password_key: &str) -> Value {
    json!({"ntlm": {
        "usernameSecret": {"name": "ntlm-creds", "key": "username"},
        "passwordSecret": {"name": "ntlm-creds", "key": password_key}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_store_and_generator_authenticate_with_ntlm() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.push("deploy/crds/generators.external-secrets.io_webhooks.yaml");
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let password = format!("pw-{CANARY}");
    let server = NtlmServer::start(&NtlmOptions::new(
        &[("CORP", "alice", &password)],
        "synced-over-ntlm",
    ))
    .await;
    let creds: Secret = serde_json::from_value(json!({"metadata": {"name": "ntlm-creds",
        "labels": {"external-secrets.io/type": "webhook"}},
        "stringData": {"username": r"CORP\alice", "password": password,
            "wrong": format!("{password}-wrong")}}))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &creds)
        .await
        .unwrap();
    for (store, password_key) in [("ntlm", "password"), ("ntlm-wrong", "wrong")] {
        create_store(
            &client,
            store,
            json!({"webhook": {
                "url": format!("{}/secret/{{{{ .remoteRef.key }}}}", server.url),
                "result": {"jsonPath": "$.value"},
                "auth": ntlm_auth(password_key),
                "timeout": "5s"}}),
        )
        .await;
    }
    apply_webhook_generator(
        &client,
        "ntlm-gen",
        json!({"url": format!("{}/generate", server.url), "result": {},
            "auth": ntlm_auth("password")}),
    )
    .await;
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    for store in ["ntlm", "ntlm-wrong"] {
        wait_store_ready(&client, store, "True").await;
    }
    let store_ref = |name: &str| json!({"name": name, "kind": "SecretStore"});
    for (es_name, store) in [("via-ntlm", "ntlm"), ("wrong-ntlm", "ntlm-wrong")] {
        apply_es(
            &client,
            es(
                es_name,
                json!({"refreshInterval": "1h", "secretStoreRef": store_ref(store),
                    "data": [{"secretKey": "value", "remoteRef": {"key": "db"}}]}),
            ),
        )
        .await;
    }
    apply_es(
        &client,
        es(
            "gen-ntlm",
            json!({"refreshInterval": "1h", "dataFrom": [{"sourceRef": {"generatorRef": {
                "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Webhook",
                "name": "ntlm-gen"}}}]}),
        ),
    )
    .await;

    // the store: the value, fetched after the NTLM handshake on one connection
    wait_ready(&client, "via-ntlm", "True", "SecretSynced").await;
    let data = secret_data(&client, "via-ntlm").await.unwrap();
    assert_eq!(data["value"], "synced-over-ntlm");
    let handshake: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/secret/db" && r.user.as_deref() == Some(r"CORP\alice"))
        .collect();
    assert!(!handshake.is_empty(), "{:?}", server.requests());
    let conn = handshake[0].conn;
    let on_conn: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.conn == conn)
        .map(|r| (r.auth, r.status))
        .collect();
    assert_eq!(
        on_conn,
        [
            ("none".to_string(), 401),
            ("NTLM-negotiate".to_string(), 401),
            ("NTLM-authenticate".to_string(), 200)
        ]
    );

    // the wrong password: an authentication error naming the store, a Warning event
    let message = wait_error(&client, "wrong-ntlm", "refused the auth.ntlm credentials").await;
    assert!(
        message.contains("SecretStore default/ntlm-wrong"),
        "{message}"
    );
    wait_event(
        &client,
        "default",
        "wrong-ntlm",
        "Warning",
        "UpdateFailed",
        "refused the auth.ntlm credentials",
    )
    .await;
    assert!(secret_data(&client, "wrong-ntlm").await.is_none());

    // the generator: the JSON answer's keys, after the handshake
    wait_ready(&client, "gen-ntlm", "True", "SecretSynced").await;
    let generated = secret_data(&client, "gen-ntlm").await.unwrap();
    assert_eq!(generated["value"], "synced-over-ntlm");
    assert_eq!(generated["token"], "synced-over-ntlm-token");
    assert_eq!(generated["user"], r"CORP\alice");
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path == "/generate" && r.auth == "NTLM-authenticate" && r.status == 200)
    );

    assert_no_canary(
        &[&password],
        &[
            ("log", &controller.process.log_text()),
            ("events", &events_json(&client, "default").await),
            ("statuses", &statuses(&client).await),
            ("the NTLM server's log", &server.log()),
        ],
    );
}
