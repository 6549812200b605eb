//! End to end with the vault provider: the `external-secrets-controller` binary against
//! devcluster and a real OpenBao (AppRole login). Many ExternalSecrets share one login
//! (counted by OpenBao's audit device), a remote change reaches the Secret within the
//! refresh interval, an outage leaves the Secret alone and says so, and the calls show on
//! `/metrics` under upstream's labels.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::json;
use strongroom_core::crd::external_secrets::SecretStore;
use strongroom_testkit::backends::OpenBao;
use strongroom_testkit::{CANARY, assert_no_canary, http_get, start_cluster, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_from_openbao_with_one_login_and_survives_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster(&CRDS, &[]).await;
    let (bao, audit) = OpenBao::start_audited().await;
    bao.cli(&[
        "kv",
        "put",
        "secret/app/db",
        "user=admin",
        &format!("password={CANARY}"),
    ]);
    bao.policy(
        "reader",
        r#"path "secret/*" { capabilities = ["read", "list"] }"#,
    );
    let (role_id, secret_id) = bao.approle("reader", "reader", "1h");
    let creds: Secret = serde_json::from_value(json!({
        "metadata": {"name": "approle"},
        "stringData": {"role-id": role_id, "secret-id": secret_id}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &creds)
        .await
        .unwrap();
    let store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "bao", "namespace": "default"},
        "spec": {"provider": {"vault": {
            "server": bao.addr, "path": "secret", "version": "v2",
            "auth": {"appRole": {
                "path": "approle",
                "roleRef": {"name": "approle", "key": "role-id"},
                "secretRef": {"name": "approle", "key": "secret-id"}
            }}
        }}}
    }))
    .unwrap();
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    stores.create(&PostParams::default(), &store).await.unwrap();
    let mut controller = start_controller(dir.path(), &cluster, &[]).await;

    // Many ExternalSecrets, one store: they share the store's client and its login.
    const N: usize = 10;
    let spec = |refresh: &str| {
        json!({
            "refreshInterval": refresh,
            "secretStoreRef": {"name": "bao", "kind": "SecretStore"},
            "data": [
                {"secretKey": "user", "remoteRef": {"key": "app/db", "property": "user"}},
                {"secretKey": "password", "remoteRef": {"key": "app/db", "property": "password"}},
            ],
        })
    };
    apply_es(&client, es("db-0", spec("2s"))).await;
    for i in 1..N {
        apply_es(&client, es(&format!("db-{i}"), spec("1h"))).await;
    }
    for i in 0..N {
        wait_ready(&client, &format!("db-{i}"), "True", "SecretSynced").await;
    }
    let data = secret_data(&client, "db-0").await.unwrap();
    assert_eq!(data["user"], "admin");
    assert_eq!(data["password"], CANARY);
    wait_for(
        || async {
            stores
                .get("bao")
                .await
                .ok()
                .and_then(|s| s.status)
                .and_then(|s| s.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        },
        "store Ready",
    )
    .await;
    let logins = OpenBao::audited(&audit, "auth/approle/login");
    let reads = OpenBao::audited(&audit, "secret/data/app/db");
    eprintln!("{N} ExternalSecrets: {logins} login(s), {reads} read(s) of the key");
    assert_eq!(
        logins, 1,
        "one login for the store, whatever the number of readers"
    );

    // A remote change reaches the Secret within the refresh interval.
    bao.cli(&["kv", "put", "secret/app/db", "user=admin2", "password=p2"]);
    let changed = Instant::now();
    wait_for(
        || async {
            secret_data(&client, "db-0")
                .await
                .is_some_and(|d| d["user"] == "admin2")
        },
        "remote change synced",
    )
    .await;
    assert!(
        changed.elapsed() < Duration::from_secs(6),
        "{:?}",
        changed.elapsed()
    );

    let (_, metrics) = http_get(&controller.metrics).await;
    for call in ["Login", "ReadSecretData", "LookupSelf"] {
        let line = format!(
            "externalsecret_provider_api_calls_count{{call=\"{call}\",provider=\"HashiCorp/Vault\",status=\"success\"}}"
        );
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }

    // OpenBao stops: the refresh fails with the cause, the Secret stays as it was.
    let before = Api::<Secret>::namespaced(client.clone(), "default")
        .get("db-0")
        .await
        .unwrap();
    bao.process.signal("STOP");
    let message = wait_ready(&client, "db-0", "False", "SecretSyncedError").await;
    assert!(message.contains("unavailable"), "{message}");
    let after = Api::<Secret>::namespaced(client.clone(), "default")
        .get("db-0")
        .await
        .unwrap();
    assert_eq!(after.resource_version(), before.resource_version());
    assert_eq!(after.data, before.data);

    // It comes back: the next refresh syncs again, still on the same login.
    bao.process.signal("CONT");
    bao.cli(&["kv", "put", "secret/app/db", "user=admin3", "password=p3"]);
    wait_ready(&client, "db-0", "True", "SecretSynced").await;
    wait_for(
        || async {
            secret_data(&client, "db-0")
                .await
                .is_some_and(|d| d["user"] == "admin3")
        },
        "synced after the outage",
    )
    .await;
    assert_eq!(OpenBao::audited(&audit, "auth/approle/login"), 1);
    let login_metric = metric_sum(
        &controller.metrics,
        "externalsecret_provider_api_calls_count{call=\"Login\",provider=\"HashiCorp/Vault\"",
    )
    .await;
    assert_eq!(login_metric, 1.0);
    assert_no_canary(&[CANARY], &[("log", &controller.process.log_text())]);

    // A stop revokes the token the controller logged in for, instead of leaving it to its TTL.
    // (the setup's own `bao` calls revoke tokens too: count from here)
    let revoked_before = OpenBao::audited(&audit, "auth/token/revoke-self");
    controller.process.signal("TERM");
    let status = controller
        .process
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("the controller exits within 5 s");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        OpenBao::audited(&audit, "auth/token/revoke-self"),
        revoked_before + 1,
        "the store's token is revoked on shutdown"
    );
}
