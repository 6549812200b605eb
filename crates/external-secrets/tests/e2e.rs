//! End to end: the `external-secrets-controller` binary against devcluster with the fake
//! provider (the store spec is its backend, so no mock is involved). Sync with templates,
//! upstream's labels, hash and field manager; bad inputs that must leave the Secret alone;
//! a store that turns Ready; creation and deletion policies; drift repair; one provider call
//! for many readers of one key; a restart that repeats no provider call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use strongroom_core::crd::external_secrets::{
    ClusterSecretStore, EXTERNAL_SECRET_FINALIZER, ExternalSecret, SecretStore,
};
use strongroom_testkit::{
    CANARY, assert_no_canary, hand_lease_to, http_get, start_cluster_with_rbac, wait_for,
};

fn fake_store(name: &str, data: Value) -> SecretStore {
    serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"provider": {"fake": {"data": data}}}
    }))
    .unwrap()
}

/// Gives the fake store `name` new data (its spec is its backend).
async fn replace_fake_data(stores: &Api<SecretStore>, name: &str, data: Value) {
    let mut current = stores.get(name).await.unwrap();
    current.spec = fake_store(name, data).spec;
    stores
        .replace(name, &PostParams::default(), &current)
        .await
        .unwrap();
}

/// Waits for the store `name` to be Ready with reason `Valid`.
async fn wait_store_valid(stores: &Api<SecretStore>, name: &str) {
    wait_for(
        || async {
            stores
                .get(name)
                .await
                .ok()
                .and_then(|s| s.status)
                .and_then(|s| s.conditions)
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        c.type_ == "Ready"
                            && c.status == "True"
                            && c.reason.as_deref() == Some("Valid")
                    })
                })
        },
        "store Valid",
    )
    .await;
}

/// Creates the Secret `name` in `default` with `string_data`, as another writer would.
async fn create_foreign_secret(client: &kube::Client, name: &str, string_data: Value) {
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": string_data}))
            .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

fn sha3_224_hex(text: &str) -> String {
    use sha3::Digest;
    sha3::Sha3_224::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_like_upstream_and_bad_input_leaves_the_secret_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    stores
        .create(
            &PostParams::default(),
            &fake_store(
                "fake",
                json!([
                    {"key": "db", "value": format!("{{\"user\":\"admin\",\"password\":\"{CANARY}\"}}")},
                    {"key": "api-token", "value": CANARY},
                    {"key": "app/config", "value": "{\"mode\":\"prod\",\"level\":\"3\"}"},
                ]),
            ),
        )
        .await
        .unwrap();
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    wait_store_valid(&stores, "fake").await;

    // data[] with property, dataFrom extract, a template with templated metadata
    apply_es(
        &client,
        es(
            "app",
            json!({
                "refreshInterval": "1h",
                "secretStoreRef": {"name": "fake", "kind": "SecretStore"},
                "target": {"name": "app-secret", "template": {
                    "metadata": {"labels": {"mode": "{{ .mode }}"}},
                    "mergePolicy": "Merge",
                    "data": {"dsn": "postgres://{{ .user }}:{{ .password }}@db"}
                }},
                "data": [
                    {"secretKey": "user", "remoteRef": {"key": "db", "property": "user"}},
                    {"secretKey": "password", "remoteRef": {"key": "db", "property": "password"}},
                ],
                "dataFrom": [{"extract": {"key": "app/config"}}],
            }),
        ),
    )
    .await;
    wait_ready(&client, "app", "True", "SecretSynced").await;
    let data = secret_data(&client, "app-secret").await.unwrap();
    assert_eq!(data["user"], "admin");
    assert_eq!(data["mode"], "prod");
    assert_eq!(data["dsn"], format!("postgres://admin:{CANARY}@db"));
    let secret = Api::<Secret>::namespaced(client.clone(), "default")
        .get("app-secret")
        .await
        .unwrap();
    let es_obj = Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .get("app")
        .await
        .unwrap();
    // upstream's labels, annotation and field manager, computed as upstream computes them
    assert_eq!(
        secret.labels()["reconcile.external-secrets.io/managed"],
        "true"
    );
    assert_eq!(secret.labels()["mode"], "prod");
    assert_eq!(
        secret.labels()["reconcile.external-secrets.io/created-by"],
        sha3_224_hex("default/app")
    );
    let go_text = format!(
        "map[{}]",
        secret
            .data
            .clone()
            .unwrap()
            .iter()
            .map(|(k, v)| format!(
                "{k}:[{}]",
                v.0.iter().map(u8::to_string).collect::<Vec<_>>().join(" ")
            ))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert_eq!(
        secret.annotations()["reconcile.external-secrets.io/data-hash"],
        sha3_224_hex(&go_text)
    );
    assert_eq!(secret.owner_references()[0].uid, es_obj.uid().unwrap());
    assert!(
        secret
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some("externalsecrets.external-secrets.io/app")),
        "field manager as upstream"
    );
    assert!(
        es_obj
            .finalizers()
            .contains(&"externalsecrets.external-secrets.io/externalsecret-cleanup".to_string())
    );
    let status = es_obj.status.clone().unwrap();
    assert!(
        status
            .synced_resource_version
            .unwrap()
            .starts_with(&format!("{}-", es_obj.metadata.generation.unwrap()))
    );

    // a missing remote key: a precise condition naming data[i], the Secret stays as it was
    let before = secret.resource_version();
    apply_es(
        &client,
        es(
            "app",
            json!({
                "secretStoreRef": {"name": "fake"},
                "target": {"name": "app-secret"},
                "data": [
                    {"secretKey": "user", "remoteRef": {"key": "db", "property": "user"}},
                    {"secretKey": "gone", "remoteRef": {"key": "no-such-key"}},
                ],
            }),
        ),
    )
    .await;
    let message = wait_ready(&client, "app", "False", "SecretSyncedError").await;
    assert!(
        message.contains("spec.data[1] (key: gone)") && message.contains("no-such-key"),
        "{message}"
    );
    // each bad input: upstream's Warning event (UpdateFailed) about that ExternalSecret, with
    // the cause
    let warned = |name: &'static str, note: &'static str| {
        let client = client.clone();
        async move { wait_event(&client, "default", name, "Warning", "UpdateFailed", note).await }
    };
    warned("app", "spec.data[1] (key: gone)").await;
    // a template that fails: the condition names the template, the value stays secret
    apply_es(
        &client,
        es(
            "app",
            json!({
                "secretStoreRef": {"name": "fake"},
                "target": {"name": "app-secret", "template": {"data": {"x": "{{ fail .token }}"}}},
                "data": [{"secretKey": "token", "remoteRef": {"key": "api-token"}}],
            }),
        ),
    )
    .await;
    wait_for(
        || async {
            ready(&client, "app")
                .await
                .is_some_and(|(s, _, m)| s == "False" && m.contains("template"))
        },
        "template error condition",
    )
    .await;
    warned("app", "could not apply template").await;
    // a provider answer that cannot be used: a property of a value that is not JSON
    apply_es(
        &client,
        es(
            "app",
            json!({
                "secretStoreRef": {"name": "fake"},
                "target": {"name": "app-secret"},
                "data": [{"secretKey": "user", "remoteRef": {"key": "api-token", "property": "user"}}],
            }),
        ),
    )
    .await;
    wait_for(
        || async {
            ready(&client, "app").await.is_some_and(|(s, r, m)| {
                s == "False" && r == "SecretSyncedError" && m.contains("is not JSON")
            })
        },
        "malformed answer condition",
    )
    .await;
    warned(
        "app",
        "spec.data[0] (key: user): malformed provider answer: value of remote key \"api-token\" is not JSON",
    )
    .await;
    // an unknown store
    apply_es(
        &client,
        es("other", json!({"secretStoreRef": {"name": "nowhere"}, "data": [{"secretKey": "a", "remoteRef": {"key": "db"}}]})),
    )
    .await;
    let message = wait_ready(&client, "other", "False", "SecretSyncedError").await;
    assert!(message.contains("\"nowhere\" not found"), "{message}");
    warned("other", "SecretStore \"nowhere\" not found").await;
    assert!(
        event_notes(&client, "default", "app", "Warning", "UpdateFailed")
            .await
            .iter()
            .all(|n| !n.contains("nowhere")),
        "events go to the ExternalSecret that failed"
    );
    let after = Api::<Secret>::namespaced(client.clone(), "default")
        .get("app-secret")
        .await
        .unwrap();
    assert_eq!(
        after.resource_version(),
        before,
        "failures never touch the target"
    );

    // canary values never leave the Secret
    let events = Api::<Event>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap();
    let events_text = serde_json::to_string(&events.items).unwrap();
    let statuses = serde_json::to_string(
        &Api::<ExternalSecret>::namespaced(client.clone(), "default")
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|e| e.status.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let (_, metrics) = http_get(&controller.metrics).await;
    assert!(metrics.contains("externalsecret_sync_calls_total"));
    assert!(metrics.contains("externalsecret_provider_api_calls_count{call=\"GetSecret\",provider=\"Fake\",status=\"success\"}"));
    assert_no_canary(
        &[CANARY],
        &[
            ("log", &controller.process.log_text()),
            ("events", &events_text),
            ("status", &statuses),
            ("metrics", &metrics),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_store_readiness_drift_shared_reads_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    // a store that names no provider is not Ready; ExternalSecrets wait for it
    let broken: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "s", "namespace": "default"},
        "spec": {"provider": {"onepassword": {"vaults": {"x": 1}}}}
    }))
    .unwrap();
    stores
        .create(&PostParams::default(), &broken)
        .await
        .unwrap();
    let mut controller = start_controller(dir.path(), &cluster, &[]).await;
    apply_es(&client, es("waits", json!({"secretStoreRef": {"name": "s"}, "data": [{"secretKey": "k", "remoteRef": {"key": "shared"}}]}))).await;
    let message = wait_ready(&client, "waits", "False", "SecretSyncedError").await;
    assert!(message.contains("is not ready"), "{message}");
    let store_msg = stores
        .get("s")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .unwrap()[0]
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        store_msg.contains("\"onepassword\" is not implemented"),
        "{store_msg}"
    );
    wait_event(
        &client,
        "default",
        "waits",
        "Warning",
        "UpdateFailed",
        "SecretStore \"s\" is not ready",
    )
    .await;
    // fixing the store syncs the waiting ExternalSecret without waiting out its backoff: it
    // fails ten times in a row first (each change of it is a reconcile), so its next retry is
    // minutes away (0.5 s doubling: 256 s ± 20 %), and only the store watch can be this quick
    let errors = "externalsecret_sync_calls_error{name=\"waits\",namespace=\"default\"}";
    for i in 0..10 {
        let failed = metric_sum(&controller.metrics, errors).await;
        Api::<ExternalSecret>::namespaced(client.clone(), "default")
            .patch(
                "waits",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"attempt": i.to_string()}}})),
            )
            .await
            .unwrap();
        wait_for(
            || async { metric_sum(&controller.metrics, errors).await > failed },
            "one more failure",
        )
        .await;
    }
    assert!(metric_sum(&controller.metrics, errors).await >= 10.0);
    let fixed_at = std::time::Instant::now();
    replace_fake_data(
        &stores,
        "s",
        json!([{"key": "shared", "value": "v1"}, {"key": "gone-soon", "value": "x"}]),
    )
    .await;
    wait_ready(&client, "waits", "True", "SecretSynced").await;
    assert!(
        fixed_at.elapsed() < Duration::from_secs(15),
        "synced {:?} after the store turned Ready",
        fixed_at.elapsed()
    );

    // many readers of one key: one provider call
    let calls_before = metric_sum(
        &controller.metrics,
        "externalsecret_provider_api_calls_count{call=\"GetSecret\"",
    )
    .await;
    for i in 0..20 {
        apply_es(&client, es(&format!("reader-{i}"), json!({"secretStoreRef": {"name": "s"}, "data": [{"secretKey": "k", "remoteRef": {"key": "shared"}}]}))).await;
    }
    for i in 0..20 {
        wait_ready(&client, &format!("reader-{i}"), "True", "SecretSynced").await;
    }
    let calls = metric_sum(
        &controller.metrics,
        "externalsecret_provider_api_calls_count{call=\"GetSecret\"",
    )
    .await
        - calls_before;
    assert!(
        calls <= 2.0,
        "20 readers of one key cost {calls} provider calls"
    );

    // drift: a deleted target comes back; an edited one is repaired
    secrets
        .delete("reader-0", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        || async { secret_data(&client, "reader-0").await.is_some() },
        "deleted target recreated",
    )
    .await;
    secrets
        .patch(
            "reader-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"k": "tampered"}})),
        )
        .await
        .unwrap();
    wait_for(
        || async {
            secret_data(&client, "reader-1")
                .await
                .is_some_and(|d| d["k"] == "v1")
        },
        "edited target repaired",
    )
    .await;

    // renaming the target (creationPolicy Owner) deletes the Secret written before
    apply_es(&client, es("reader-2", json!({"secretStoreRef": {"name": "s"}, "target": {"name": "renamed"}, "data": [{"secretKey": "k", "remoteRef": {"key": "shared"}}]}))).await;
    wait_for(
        || async {
            secret_data(&client, "renamed").await.is_some()
                && secret_data(&client, "reader-2").await.is_none()
        },
        "old target deleted after a rename",
    )
    .await;

    // creationPolicy Merge: never creates, keeps foreign keys
    apply_es(&client, es("merge", json!({"secretStoreRef": {"name": "s"}, "refreshInterval": "2s", "target": {"name": "preexisting", "creationPolicy": "Merge"}, "data": [{"secretKey": "k", "remoteRef": {"key": "shared"}}]}))).await;
    wait_ready(&client, "merge", "True", "SecretMissing").await;
    assert!(secret_data(&client, "preexisting").await.is_none());
    create_foreign_secret(&client, "preexisting", json!({"mine": "keep"})).await;
    wait_for(
        || async {
            secret_data(&client, "preexisting").await.is_some_and(|d| {
                d.get("k").map(String::as_str) == Some("v1") && d["mine"] == "keep"
            })
        },
        "merged into the existing Secret",
    )
    .await;
    // deletionPolicy Delete: the provider losing the key deletes the Secret
    apply_es(&client, es("deleting", json!({"secretStoreRef": {"name": "s"}, "refreshInterval": "1s", "target": {"deletionPolicy": "Delete"}, "data": [{"secretKey": "k", "remoteRef": {"key": "gone-soon"}}]}))).await;
    wait_ready(&client, "deleting", "True", "SecretSynced").await;
    assert!(secret_data(&client, "deleting").await.is_some());
    replace_fake_data(&stores, "s", json!([{"key": "shared", "value": "v1"}])).await;
    wait_ready(&client, "deleting", "True", "SecretDeleted").await;
    assert!(secret_data(&client, "deleting").await.is_none());
    // the default (Retain) with a key that is there (no data under Retain:
    // deletion_policies_merge_retain_and_immutable_targets)
    apply_es(&client, es("retain", json!({"secretStoreRef": {"name": "s"}, "data": [{"secretKey": "k", "remoteRef": {"key": "shared"}}]}))).await;
    wait_ready(&client, "retain", "True", "SecretSynced").await;

    // a restart repeats no provider call for ExternalSecrets that are in sync (the ones with
    // second-long intervals go first: they are due anyway)
    for short in ["merge", "deleting"] {
        Api::<ExternalSecret>::namespaced(client.clone(), "default")
            .delete(short, &DeleteParams::default())
            .await
            .unwrap();
    }
    wait_for(
        || async {
            Api::<ExternalSecret>::namespaced(client.clone(), "default")
                .get_opt("merge")
                .await
                .unwrap()
                .is_none()
        },
        "short-interval ExternalSecrets gone",
    )
    .await;
    controller.process.signal("TERM");
    assert!(
        controller
            .process
            .wait_exit(Duration::from_secs(10))
            .await
            .is_some()
    );
    let restarted = start_controller(dir.path(), &cluster, &[]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_restart = metric_sum(
        &restarted.metrics,
        "externalsecret_provider_api_calls_count{call=\"GetSecret\"",
    )
    .await;
    assert_eq!(
        after_restart, 0.0,
        "in-sync ExternalSecrets cost no provider call after a restart"
    );
    // deleting an ExternalSecret (Owner) releases its finalizer
    Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .delete("retain", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        || async {
            Api::<ExternalSecret>::namespaced(client.clone(), "default")
                .get_opt("retain")
                .await
                .unwrap()
                .is_none()
        },
        "finalizer released",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_external_secrets_fan_out_and_withdraw() {
    use k8s_openapi::api::core::v1::Namespace;
    use strongroom_core::crd::external_secrets::ClusterExternalSecret;
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/external-secrets.io_clusterexternalsecrets.yaml",
        "deploy/crds/external-secrets.io_pushsecrets.yaml",
        "deploy/crds/external-secrets.io_clusterpushsecrets.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &["team-a", "team-b", "other"]).await;
    let label = |ns: &str, team: bool| {
        let client = client.clone();
        let ns = ns.to_string();
        async move {
            let labels = if team {
                json!({"team": "yes"})
            } else {
                json!({"team": null})
            };
            Api::<Namespace>::all(client)
                .patch(
                    &ns,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": labels}})),
                )
                .await
                .unwrap();
        }
    };
    label("team-a", true).await;
    label("team-b", true).await;
    let css: ClusterSecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": "shared"},
        "spec": {"provider": {"fake": {"data": [{"key": "k", "value": "v"}]}}}
    }))
    .unwrap();
    Api::<ClusterSecretStore>::all(client.clone())
        .create(&PostParams::default(), &css)
        .await
        .unwrap();
    // team-b already has an ExternalSecret of that name: reported, never taken over
    let theirs = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "shared-creds", "namespace": "team-b"},
        "spec": {"secretStoreRef": {"name": "shared", "kind": "ClusterSecretStore"}, "data": [{"secretKey": "mine", "remoteRef": {"key": "k"}}]}
    });
    Api::<ExternalSecret>::namespaced(client.clone(), "team-b")
        .patch(
            "shared-creds",
            &PatchParams::apply("someone"),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap();
    let _controller = start_controller(dir.path(), &cluster, &[]).await;
    let ces: ClusterExternalSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
        "metadata": {"name": "shared-creds"},
        "spec": {
            "namespaceSelectors": [{"matchLabels": {"team": "yes"}}],
            "refreshTime": "1s",
            "externalSecretMetadata": {"labels": {"from": "ces"}},
            "externalSecretSpec": {
                "secretStoreRef": {"name": "shared", "kind": "ClusterSecretStore"},
                "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}]
            }
        }
    }))
    .unwrap();
    let cess = Api::<ClusterExternalSecret>::all(client.clone());
    cess.create(&PostParams::default(), &ces).await.unwrap();
    let secret_in = |ns: &str| {
        let client = client.clone();
        let ns = ns.to_string();
        async move {
            Api::<Secret>::namespaced(client, &ns)
                .get_opt("shared-creds")
                .await
                .unwrap()
                .and_then(|s| s.data)
                .and_then(|d| d.get("k").map(|v| v.0.clone()))
        }
    };
    wait_for(
        || async { secret_in("team-a").await == Some(b"v".to_vec()) },
        "team-a synced",
    )
    .await;
    wait_for(
        || async {
            cess.get("shared-creds")
                .await
                .ok()
                .and_then(|c| c.status)
                .is_some_and(|s| {
                    s.provisioned_namespaces == Some(vec!["team-a".into()])
                        && s.failed_namespaces
                            .is_some_and(|f| f.len() == 1 && f[0].namespace == "team-b")
                })
        },
        "status lists provisioned and failed namespaces",
    )
    .await;
    // upstream's per-Namespace finalizer on each provisioned Namespace, no other
    const NS_FINALIZER: &str = "externalsecrets.external-secrets.io/ces-shared-creds";
    let namespaces = Api::<Namespace>::all(client.clone());
    let held = |ns: &str| {
        let namespaces = namespaces.clone();
        let ns = ns.to_string();
        async move {
            namespaces
                .get_opt(&ns)
                .await
                .unwrap()
                .is_some_and(|n| n.finalizers().iter().any(|f| f == NS_FINALIZER))
        }
    };
    assert!(held("team-a").await);
    assert!(!held("team-b").await, "team-b is not provisioned");
    assert!(!held("other").await);
    let theirs_now = Api::<ExternalSecret>::namespaced(client.clone(), "team-b")
        .get("shared-creds")
        .await
        .unwrap();
    assert!(
        theirs_now.owner_references().is_empty(),
        "the existing ExternalSecret was not taken over"
    );
    assert!(
        Api::<ExternalSecret>::namespaced(client.clone(), "other")
            .get_opt("shared-creds")
            .await
            .unwrap()
            .is_none()
    );
    // ClusterPushSecret: the same fan-out for PushSecrets
    use strongroom_core::crd::external_secrets::{ClusterPushSecret, PushSecret};
    let cps: ClusterPushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
        "metadata": {"name": "push-all"},
        "spec": {
            "namespaceSelectors": [{"matchLabels": {"team": "yes"}}],
            "refreshTime": "1s",
            "pushSecretSpec": {
                "secretStoreRefs": [{"name": "shared", "kind": "ClusterSecretStore"}],
                "selector": {"secret": {"name": "shared-creds"}},
                "data": [{"match": {"secretKey": "k", "remoteRef": {"remoteKey": "copied"}}}]
            }
        }
    }))
    .unwrap();
    Api::<ClusterPushSecret>::all(client.clone())
        .create(&PostParams::default(), &cps)
        .await
        .unwrap();
    wait_for(
        || async {
            Api::<PushSecret>::namespaced(client.clone(), "team-a")
                .get_opt("push-all")
                .await
                .unwrap()
                .and_then(|p| p.status)
                .and_then(|s| s.conditions)
                .is_some_and(|c| c.iter().any(|c| c.reason.as_deref() == Some("Synced")))
        },
        "ClusterPushSecret child synced in team-a",
    )
    .await;
    wait_for(
        || async {
            let got = Api::<ClusterPushSecret>::all(client.clone())
                .get("push-all")
                .await
                .ok()
                .and_then(|c| c.status);
            got.is_some_and(|s| {
                s.provisioned_namespaces.is_some_and(|p| {
                    p.contains(&"team-a".to_string()) && p.contains(&"team-b".to_string())
                })
            })
        },
        "ClusterPushSecret status",
    )
    .await;

    // a namespace that stops matching loses its ExternalSecret (and, through it, its Secret)
    label("team-a", false).await;
    label("other", true).await;
    wait_for(
        || async {
            Api::<ExternalSecret>::namespaced(client.clone(), "team-a")
                .get_opt("shared-creds")
                .await
                .unwrap()
                .is_none()
                && secret_in("other").await == Some(b"v".to_vec())
        },
        "withdrawn from team-a, provisioned in other",
    )
    .await;
    wait_for(
        || async { !held("team-a").await && held("other").await },
        "the Namespace finalizer follows the selection",
    )
    .await;
    // a provisioned Namespace being deleted is released (else it would stay Terminating)
    namespaces
        .delete("other", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        || async { namespaces.get_opt("other").await.unwrap().is_none() },
        "deleted Namespace released",
    )
    .await;
    // the ClusterExternalSecret going releases every Namespace it held
    label("team-a", true).await;
    wait_for(|| held("team-a"), "team-a held again").await;
    cess.delete("shared-creds", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        || async { cess.get_opt("shared-creds").await.unwrap().is_none() && !held("team-a").await },
        "Namespaces released with the ClusterExternalSecret",
    )
    .await;
}

/// A SecretStore `other-ns` in `namespace` whose kubernetes provider reads and writes the
/// Secrets of `remote` on the same cluster (its token in the Secret `creds`).
async fn kubernetes_store(
    cluster: &strongroom_testkit::DevCluster,
    client: &kube::Client,
    namespace: &str,
    remote: &str,
) {
    let creds: Secret = serde_json::from_value(
        json!({"metadata": {"name": "creds"}, "stringData": {"token": cluster.token()}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &creds)
        .await
        .unwrap();
    let ca = cluster
        .kubeconfig()
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("certificate-authority-data: ")
                .map(str::to_string)
        })
        .unwrap();
    let store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "other-ns", "namespace": namespace, "labels": {"push-target": "yes"}},
        "spec": {"provider": {"kubernetes": {
            "remoteNamespace": remote,
            "server": {"url": cluster.url(), "caBundle": ca},
            "auth": {"token": {"bearerToken": {"name": "creds", "key": "token"}}}
        }}}
    }))
    .unwrap();
    Api::<SecretStore>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &store)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secret_and_read_back_through_the_kubernetes_provider() {
    use strongroom_core::crd::external_secrets::PushSecret;
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.push("deploy/crds/external-secrets.io_pushsecrets.yaml");
    let (cluster, client) = start_cluster_with_rbac(&crds, &["apps", "remote"]).await;
    let apps = Api::<Secret>::namespaced(client.clone(), "apps");
    let remote = Api::<Secret>::namespaced(client.clone(), "remote");
    let put = |name: &str, data: Value| {
        let apps = apps.clone();
        let s: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .unwrap();
        async move { apps.create(&PostParams::default(), &s).await.unwrap() }
    };
    put("source", json!({"password": "v1", "user": "app"})).await;
    kubernetes_store(&cluster, &client, "apps", "remote").await;
    let _controller = start_controller(dir.path(), &cluster, &[]).await;
    let ps: PushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
        "metadata": {"name": "push", "namespace": "apps"},
        "spec": {
            "refreshInterval": "1h",
            "deletionPolicy": "Delete",
            "secretStoreRefs": [{"name": "other-ns", "kind": "SecretStore"}],
            "selector": {"secret": {"name": "source"}},
            "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": "pushed", "property": "password"}}}]
        }
    }))
    .unwrap();
    let pss = Api::<PushSecret>::namespaced(client.clone(), "apps");
    pss.create(&PostParams::default(), &ps).await.unwrap();
    let remote_value = || async {
        remote
            .get_opt("pushed")
            .await
            .unwrap()
            .and_then(|s| s.data)
            .and_then(|d| {
                d.get("password")
                    .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            })
    };
    wait_for(
        || async { remote_value().await.as_deref() == Some("v1") },
        "pushed to the other namespace",
    )
    .await;
    wait_for(
        || async {
            pss.get("push")
                .await
                .ok()
                .and_then(|p| p.status)
                .is_some_and(|s| {
                    s.synced_push_secrets.is_some_and(|m| {
                        m.get("SecretStore/other-ns")
                            .is_some_and(|e| e.contains_key("pushed/password"))
                    }) && s
                        .conditions
                        .is_some_and(|c| c.iter().any(|c| c.reason.as_deref() == Some("Synced")))
                })
        },
        "PushSecret status as upstream",
    )
    .await;
    // a changed source is pushed at once, not at the next (hourly) refresh
    apps.patch(
        "source",
        &PatchParams::default(),
        &Patch::Merge(json!({"stringData": {"password": "v2"}})),
    )
    .await
    .unwrap();
    wait_for(
        || async { remote_value().await.as_deref() == Some("v2") },
        "source change pushed",
    )
    .await;
    // an ExternalSecret reads it back through the same store
    let es_api = Api::<ExternalSecret>::namespaced(client.clone(), "apps");
    let back = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "back", "namespace": "apps"},
        "spec": {"secretStoreRef": {"name": "other-ns"},
                 "data": [{"secretKey": "pw", "remoteRef": {"key": "pushed", "property": "password"}}],
                 "dataFrom": [{"extract": {"key": "pushed"}}]}
    });
    es_api
        .patch("back", &PatchParams::apply("test"), &Patch::Apply(&back))
        .await
        .unwrap();
    wait_for(
        || async {
            apps.get_opt("back")
                .await
                .unwrap()
                .and_then(|s| s.data)
                .is_some_and(|d| {
                    d.get("pw").map(|v| v.0.clone()) == Some(b"v2".to_vec())
                        && d.get("password").map(|v| v.0.clone()) == Some(b"v2".to_vec())
                })
        },
        "read back through the kubernetes provider",
    )
    .await;
    // deletionPolicy Delete: deleting the PushSecret removes what it pushed
    pss.delete("push", &DeleteParams::default()).await.unwrap();
    wait_for(
        || async { remote_value().await.is_none() && pss.get_opt("push").await.unwrap().is_none() },
        "pushed value removed with the PushSecret",
    )
    .await;
}

/// `secretstore.externalsecrets.io/finalizer`, as upstream: a store used by a PushSecret with
/// `deletionPolicy: Delete` keeps the finalizer, so deleting the store waits until the
/// PushSecret is gone and has deleted what it pushed through that store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_stays_while_delete_policy_push_secrets_use_it() {
    use strongroom_core::crd::external_secrets::PushSecret;
    const FINALIZER: &str = "secretstore.externalsecrets.io/finalizer";
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.push("deploy/crds/external-secrets.io_pushsecrets.yaml");
    let (cluster, client) = start_cluster_with_rbac(&crds, &["apps", "remote"]).await;
    let apps = Api::<Secret>::namespaced(client.clone(), "apps");
    let remote = Api::<Secret>::namespaced(client.clone(), "remote");
    let source: Secret = serde_json::from_value(
        json!({"metadata": {"name": "source"}, "stringData": {"password": "v1"}}),
    )
    .unwrap();
    apps.create(&PostParams::default(), &source).await.unwrap();
    kubernetes_store(&cluster, &client, "apps", "remote").await;
    let stores = Api::<SecretStore>::namespaced(client.clone(), "apps");
    let _controller = start_controller(dir.path(), &cluster, &[]).await;
    let finalized = || async {
        stores
            .get_opt("other-ns")
            .await
            .unwrap()
            .map(|s| s.finalizers().iter().any(|f| f == FINALIZER))
    };
    // a store no PushSecret uses has no finalizer
    wait_for(
        || async {
            stores
                .get("other-ns")
                .await
                .ok()
                .and_then(|s| s.status)
                .is_some()
        },
        "store validated",
    )
    .await;
    assert_eq!(finalized().await, Some(false));
    let ps: PushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
        "metadata": {"name": "push", "namespace": "apps"},
        "spec": {
            "refreshInterval": "1h",
            "deletionPolicy": "Delete",
            "secretStoreRefs": [{"labelSelector": {"matchLabels": {"push-target": "yes"}}}],
            "selector": {"secret": {"name": "source"}},
            "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": "pushed"}}}]
        }
    }))
    .unwrap();
    let pss = Api::<PushSecret>::namespaced(client.clone(), "apps");
    pss.create(&PostParams::default(), &ps).await.unwrap();
    wait_for(
        || async { remote.get_opt("pushed").await.unwrap().is_some() },
        "pushed",
    )
    .await;
    wait_for(
        || async { finalized().await == Some(true) },
        "finalizer added for the Delete-policy PushSecret (selected by labels)",
    )
    .await;
    // deletionPolicy None: the store is released; Delete again: held again
    for (policy, held) in [("None", false), ("Delete", true)] {
        pss.patch(
            "push",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"deletionPolicy": policy}})),
        )
        .await
        .unwrap();
        wait_for(
            || async { finalized().await == Some(held) },
            &format!("finalizer follows deletionPolicy {policy}"),
        )
        .await;
    }
    // the same for a ClusterSecretStore, released when its PushSecret goes
    let css_api = Api::<ClusterSecretStore>::all(client.clone());
    let mut css = serde_json::to_value(stores.get("other-ns").await.unwrap().spec).unwrap();
    css["provider"]["kubernetes"]["auth"]["token"]["bearerToken"]["namespace"] = json!("apps");
    let css: ClusterSecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": "shared"}, "spec": css
    }))
    .unwrap();
    css_api.create(&PostParams::default(), &css).await.unwrap();
    let mut to_css = serde_json::to_value(&ps).unwrap();
    to_css["metadata"] = json!({"name": "push-cluster", "namespace": "apps"});
    to_css["spec"]["secretStoreRefs"] = json!([{"name": "shared", "kind": "ClusterSecretStore"}]);
    to_css["spec"]["data"][0]["match"]["remoteRef"]["remoteKey"] = json!("pushed-cluster");
    pss.create(
        &PostParams::default(),
        &serde_json::from_value(to_css).unwrap(),
    )
    .await
    .unwrap();
    let css_finalized = || async {
        css_api
            .get("shared")
            .await
            .unwrap()
            .finalizers()
            .iter()
            .any(|f| f == FINALIZER)
    };
    wait_for(css_finalized, "ClusterSecretStore held").await;
    pss.delete("push-cluster", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        || async { !css_finalized().await },
        "ClusterSecretStore released",
    )
    .await;
    assert!(remote.get_opt("pushed-cluster").await.unwrap().is_none());
    // deleting the store waits for the PushSecret
    stores
        .delete("other-ns", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = stores.get("other-ns").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(held.finalizers().iter().any(|f| f == FINALIZER));
    // the PushSecret goes, deleting what it pushed through the store, and then the store goes
    pss.delete("push", &DeleteParams::default()).await.unwrap();
    wait_for(
        || async {
            remote.get_opt("pushed").await.unwrap().is_none()
                && pss.get_opt("push").await.unwrap().is_none()
        },
        "pushed value removed through the store being deleted",
    )
    .await;
    wait_for(
        || async { stores.get_opt("other-ns").await.unwrap().is_none() },
        "store deleted once no PushSecret holds it",
    )
    .await;
}

/// Upstream v2 (`handleSourceSecretDeleted`): when the Secret a PushSecret names is gone, under
/// `deletionPolicy: Delete` what its status records is deleted remotely and the record cleared;
/// under `None` everything stays. Beyond upstream: nothing goes under `IfNotExists` (its status
/// also records values it found already there), and the condition says what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secret_source_deleted_follows_the_deletion_policy() {
    use strongroom_core::crd::external_secrets::PushSecret;
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.push("deploy/crds/external-secrets.io_pushsecrets.yaml");
    let (cluster, client) = start_cluster_with_rbac(&crds, &["apps", "remote"]).await;
    let apps = Api::<Secret>::namespaced(client.clone(), "apps");
    let remote = Api::<Secret>::namespaced(client.clone(), "remote");
    let put = |api: &Api<Secret>, name: &str, data: Value| {
        let api = api.clone();
        let s: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .unwrap();
        async move { api.create(&PostParams::default(), &s).await.unwrap() }
    };
    for name in ["src-del", "src-keep", "src-ifne"] {
        put(&apps, name, json!({"password": CANARY})).await;
    }
    // remote values no PushSecret wrote: a key beside a pushed one, a Secret of its own, and
    // the target of the IfNotExists PushSecret (which then pushes nothing)
    put(&remote, "pushed-del", json!({"other": "keep-me"})).await;
    put(&remote, "untouched", json!({"password": "keep-me"})).await;
    put(&remote, "pushed-ifne", json!({"password": "was-there"})).await;
    kubernetes_store(&cluster, &client, "apps", "remote").await;
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    let pss = Api::<PushSecret>::namespaced(client.clone(), "apps");
    for (name, deletion, update) in [
        ("del", "Delete", "Replace"),
        ("keep", "None", "Replace"),
        ("ifne", "Delete", "IfNotExists"),
    ] {
        let ps: PushSecret = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
            "metadata": {"name": name, "namespace": "apps"},
            "spec": {
                "refreshInterval": "1h",
                "deletionPolicy": deletion,
                "updatePolicy": update,
                "secretStoreRefs": [{"name": "other-ns", "kind": "SecretStore"}],
                "selector": {"secret": {"name": format!("src-{name}")}},
                "data": [{"match": {"secretKey": "password",
                    "remoteRef": {"remoteKey": format!("pushed-{name}"), "property": "password"}}}]
            }
        }))
        .unwrap();
        pss.create(&PostParams::default(), &ps).await.unwrap();
    }
    for name in ["del", "keep", "ifne"] {
        wait_for(
            || async {
                push_ready(&pss, name)
                    .await
                    .is_some_and(|(s, r, _)| s == "True" && r == "Synced")
                    && synced_keys(&pss, name).await == vec![format!("pushed-{name}/password")]
            },
            "pushed and recorded",
        )
        .await;
    }
    let remote_text = |name: &'static str| {
        let remote = remote.clone();
        async move { text_data(&remote, name).await }
    };
    assert_eq!(
        remote_text("pushed-del").await.unwrap().get("password"),
        Some(&CANARY.to_string())
    );
    assert_eq!(
        remote_text("pushed-ifne").await.unwrap().get("password"),
        Some(&"was-there".to_string())
    );

    for name in ["src-del", "src-keep", "src-ifne"] {
        apps.delete(name, &DeleteParams::default()).await.unwrap();
    }
    // Delete: the pushed key goes (at once: the source Secret is watched), the key beside it
    // stays, the record is cleared and the condition says why
    wait_for(
        || async {
            remote_text("pushed-del")
                .await
                .is_some_and(|d| !d.contains_key("password"))
        },
        "pushed value deleted with its source",
    )
    .await;
    let expected = (
        "False".to_string(),
        "Errored".to_string(),
        "source Secret \"src-del\" not found: deleted the 1 pushed value (deletionPolicy: Delete)"
            .to_string(),
    );
    wait_for(
        || async {
            push_ready(&pss, "del").await.as_ref() == Some(&expected)
                && synced_keys(&pss, "del").await.is_empty()
        },
        "source-deleted condition and cleared record",
    )
    .await;
    assert_eq!(
        remote_text("pushed-del").await,
        Some(BTreeMap::from([(
            "other".to_string(),
            "keep-me".to_string()
        )]))
    );
    // None: kept, still recorded; IfNotExists: kept (it never wrote there)
    wait_for(
        || async {
            push_ready(&pss, "keep").await.is_some_and(|(s, r, m)| {
                s == "False"
                    && r == "Errored"
                    && m == "source Secret \"src-keep\" not found: the 1 pushed value stays \
                            (deletionPolicy: None)"
            }) && push_ready(&pss, "ifne").await.is_some_and(|(s, _, m)| {
                s == "False"
                    && m.starts_with("source Secret \"src-ifne\" not found: the 1 recorded value stays (updatePolicy: IfNotExists")
            })
        },
        "kept under None and IfNotExists, and said so",
    )
    .await;
    assert_eq!(
        synced_keys(&pss, "keep").await,
        vec!["pushed-keep/password"]
    );
    assert_eq!(
        remote_text("pushed-keep").await.unwrap().get("password"),
        Some(&CANARY.to_string())
    );
    assert_eq!(
        remote_text("pushed-ifne").await.unwrap().get("password"),
        Some(&"was-there".to_string())
    );
    assert_eq!(
        remote_text("untouched").await.unwrap().get("password"),
        Some(&"keep-me".to_string())
    );
    wait_for(
        || async {
            Api::<Event>::namespaced(client.clone(), "apps")
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| {
                    // (an earlier Warning of the same reason is counted up as a series and
                    // keeps its first note, so the note is checked in the log)
                    e.type_.as_deref() == Some("Warning")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("del")
                })
                && controller
                    .process
                    .log_text()
                    .contains("source Secret \"src-del\" not found: deleted the 1 pushed value")
        },
        "Warning event about the PushSecret, the cause in the log",
    )
    .await;
    // the condition stays put (no reconcile loop rewrites it) ...
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(push_ready(&pss, "del").await, Some(expected));

    // ... and a source that comes back is pushed again at once
    put(&apps, "src-del", json!({"password": "back"})).await;
    wait_for(
        || async {
            remote_text("pushed-del")
                .await
                .is_some_and(|d| d.get("password").map(String::as_str) == Some("back"))
                && push_ready(&pss, "del")
                    .await
                    .is_some_and(|(s, r, _)| s == "True" && r == "Synced")
                && synced_keys(&pss, "del").await == vec!["pushed-del/password"]
        },
        "source back: pushed and recorded again",
    )
    .await;

    let events = events_json(&client, "apps").await;
    let statuses = serde_json::to_string(
        &pss.list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| p.status.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_no_canary(
        &[CANARY],
        &[
            ("log", &controller.process.log_text()),
            ("events", &events),
            ("status", &statuses),
        ],
    );
}

/// The values of the Secret `name` of `api`, as text (`None` when there is none).
async fn text_data(api: &Api<Secret>, name: &str) -> Option<BTreeMap<String, String>> {
    Some(
        api.get_opt(name)
            .await
            .unwrap()?
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect(),
    )
}

/// The Ready condition of a PushSecret: status, reason, message.
async fn push_ready(
    api: &Api<strongroom_core::crd::external_secrets::PushSecret>,
    name: &str,
) -> Option<(String, String, String)> {
    ready_condition(api, name).await
}

/// The remote keys a PushSecret's status records for the store `SecretStore/other-ns`.
async fn synced_keys(
    api: &Api<strongroom_core::crd::external_secrets::PushSecret>,
    name: &str,
) -> Vec<String> {
    api.get_opt(name)
        .await
        .unwrap()
        .and_then(|p| p.status)
        .and_then(|s| s.synced_push_secrets)
        .and_then(|m| m.get("SecretStore/other-ns").cloned())
        .map(|e| e.into_keys().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secret_bulk_label_selected_and_generated_sources() {
    use k8s_openapi::api::core::v1::Namespace;
    use strongroom_core::crd::external_secrets::{ClusterPushSecret, PushSecret};
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/external-secrets.io_pushsecrets.yaml",
        "deploy/crds/external-secrets.io_clusterpushsecrets.yaml",
        "deploy/crds/generators.external-secrets.io_passwords.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &["apps", "remote"]).await;
    let apps = Api::<Secret>::namespaced(client.clone(), "apps");
    let remote = Api::<Secret>::namespaced(client.clone(), "remote");
    let put = |name: &str, labels: Value, data: Value| {
        let apps = apps.clone();
        let s: Secret = serde_json::from_value(
            json!({"metadata": {"name": name, "labels": labels}, "stringData": data}),
        )
        .unwrap();
        async move { apps.create(&PostParams::default(), &s).await.unwrap() }
    };
    kubernetes_store(&cluster, &client, "apps", "remote").await;
    put(
        "bulk-src",
        json!({}),
        json!({"db-host": "h", "db-port": "5432", "db-password": CANARY, "api-key": CANARY}),
    )
    .await;
    put(
        "team-a",
        json!({"push": "yes"}),
        json!({"alpha-token": CANARY}),
    )
    .await;
    put("team-b", json!({"push": "yes"}), json!({"beta-token": "b"})).await;
    put("not-me", json!({"push": "no"}), json!({"never": "x"})).await;
    let password = json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password",
        "metadata": {"name": "pw", "namespace": "apps"}, "spec": {"length": 24}});
    let passwords = kube::api::ApiResource {
        group: "generators.external-secrets.io".into(),
        version: "v1alpha1".into(),
        api_version: "generators.external-secrets.io/v1alpha1".into(),
        kind: "Password".into(),
        plural: "passwords".into(),
    };
    Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), "apps", &passwords)
        .patch("pw", &PatchParams::apply("test"), &Patch::Apply(&password))
        .await
        .unwrap();
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    let pss = Api::<PushSecret>::namespaced(client.clone(), "apps");
    let create = |name: &str, spec: Value| {
        let pss = pss.clone();
        let ps: PushSecret = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
            "metadata": {"name": name, "namespace": "apps"}, "spec": spec
        }))
        .unwrap();
        async move { pss.create(&PostParams::default(), &ps).await.unwrap() }
    };
    let value_of = |name: &str, key: &str| {
        let (remote, name, key) = (remote.clone(), name.to_string(), key.to_string());
        async move {
            text_data(&remote, &name)
                .await
                .and_then(|d| d.get(&key).cloned())
        }
    };

    // dataTo: the keys matching a regexp, rewritten, with metadata; an explicit data entry
    // wins for its source key
    create(
        "bulk",
        json!({
            "deletionPolicy": "Delete",
            "secretStoreRefs": [{"name": "other-ns"}],
            "selector": {"secret": {"name": "bulk-src"}},
            "dataTo": [{
                "storeRef": {"name": "other-ns"},
                "match": {"regexp": "^db-"},
                "rewrite": [{"regexp": {"source": "^db-", "target": "bulk-db-"}}],
                "metadata": {"apiVersion": "kubernetes.external-secrets.io/v1alpha1",
                    "kind": "PushSecretMetadata", "spec": {"labels": {"pushed-by": "bulk"}}}
            }],
            "data": [{"match": {"secretKey": "db-host", "remoteRef": {"remoteKey": "custom-host", "property": "host"}}}]
        }),
    )
    .await;
    wait_for(
        || async {
            value_of("bulk-db-port", "value").await.as_deref() == Some("5432")
                && value_of("bulk-db-password", "value").await.as_deref() == Some(CANARY)
                && value_of("custom-host", "host").await.as_deref() == Some("h")
        },
        "dataTo keys pushed under their rewritten names",
    )
    .await;
    for absent in ["bulk-db-host", "db-host", "api-key", "bulk-api-key"] {
        assert!(
            remote.get_opt(absent).await.unwrap().is_none(),
            "{absent} must not be pushed"
        );
    }
    let labels = remote.get("bulk-db-port").await.unwrap().labels().clone();
    assert_eq!(labels.get("pushed-by").map(String::as_str), Some("bulk"));
    wait_for(
        || async {
            synced_keys(&pss, "bulk").await
                == ["bulk-db-password", "bulk-db-port", "custom-host/host"]
        },
        "every expanded entry in status.syncedPushSecrets",
    )
    .await;
    // a key added to the source is pushed at once; a removed one is deleted (deletionPolicy)
    apps.patch(
        "bulk-src",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"db-port": null}, "stringData": {"db-user": "u"}})),
    )
    .await
    .unwrap();
    wait_for(
        || async {
            value_of("bulk-db-user", "value").await.as_deref() == Some("u")
                && remote.get_opt("bulk-db-port").await.unwrap().is_none()
        },
        "added key pushed, removed key deleted",
    )
    .await;

    // a label selector: every matching Secret of the namespace, to stores selected by label
    let by_label = json!({"matchLabels": {"push-target": "yes"}});
    create(
        "selected",
        json!({
            "secretStoreRefs": [{"labelSelector": by_label}],
            "selector": {"secret": {"selector": {"matchLabels": {"push": "yes"}}}},
            "dataTo": [{"storeRef": {"labelSelector": by_label}}]
        }),
    )
    .await;
    wait_for(
        || async {
            value_of("alpha-token", "value").await.as_deref() == Some(CANARY)
                && value_of("beta-token", "value").await.as_deref() == Some("b")
        },
        "every selected Secret pushed",
    )
    .await;
    assert!(remote.get_opt("never").await.unwrap().is_none());
    // a Secret that starts matching is pushed at once (not at the hourly refresh)
    put(
        "team-c",
        json!({"push": "yes"}),
        json!({"gamma-token": "c"}),
    )
    .await;
    wait_for(
        || async { value_of("gamma-token", "value").await.as_deref() == Some("c") },
        "a newly labelled Secret pushed",
    )
    .await;
    wait_for(
        || async {
            synced_keys(&pss, "selected").await == ["alpha-token", "beta-token", "gamma-token"]
        },
        "status lists the pushes of every selected Secret",
    )
    .await;

    // ClusterPushSecret hands dataTo (here with a template rewrite) and selectors to its
    // PushSecrets unchanged
    Api::<Namespace>::all(client.clone())
        .patch(
            "apps",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"push-from": "yes"}}})),
        )
        .await
        .unwrap();
    let cps: ClusterPushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
        "metadata": {"name": "cluster-bulk"},
        "spec": {
            "namespaceSelectors": [{"matchLabels": {"push-from": "yes"}}],
            "pushSecretSpec": {
                "secretStoreRefs": [{"name": "other-ns"}],
                "selector": {"secret": {"selector": {"matchLabels": {"push": "yes"}}}},
                "dataTo": [{"storeRef": {"name": "other-ns"}, "match": {"regexp": "^alpha"},
                    "rewrite": [{"transform": {"template": "cluster-{{ .value }}"}}]}]
            }
        }
    }))
    .unwrap();
    Api::<ClusterPushSecret>::all(client.clone())
        .create(&PostParams::default(), &cps)
        .await
        .unwrap();
    wait_for(
        || async { value_of("cluster-alpha-token", "value").await.as_deref() == Some(CANARY) },
        "ClusterPushSecret's PushSecret pushed with dataTo",
    )
    .await;

    // a generator: run when a push is due, not at every event
    create(
        "generated",
        json!({
            "secretStoreRefs": [{"name": "other-ns"}],
            "selector": {"generatorRef": {"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password", "name": "pw"}},
            "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": "generated", "property": "password"}}}]
        }),
    )
    .await;
    wait_for(
        || async {
            value_of("generated", "password")
                .await
                .is_some_and(|p| p.chars().count() == 24)
                && synced_keys(&pss, "generated").await == ["generated/password"]
        },
        "generated password pushed",
    )
    .await;
    let first = value_of("generated", "password").await.unwrap();
    assert_eq!(
        push_ready(&pss, "generated").await.map(|r| r.1).as_deref(),
        Some("Synced")
    );
    // an event that changes neither spec, labels nor annotations (a finalizer) pushes nothing
    pss.patch(
        "generated",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        value_of("generated", "password").await.as_deref(),
        Some(first.as_str()),
        "no new value without a change or the end of the refresh interval"
    );
    // a change of the PushSecret (a force-sync annotation) pushes a new value
    pss.patch(
        "generated",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"force-sync": "1"}}})),
    )
    .await
    .unwrap();
    wait_for(
        || async {
            value_of("generated", "password")
                .await
                .is_some_and(|p| p != first && p.chars().count() == 24)
        },
        "regenerated on a change of the PushSecret",
    )
    .await;
    let second = value_of("generated", "password").await.unwrap();

    // an invalid regexp: a clear condition and Warning event, and nothing pushed (not even the
    // explicit entry)
    create(
        "bad",
        json!({
            "secretStoreRefs": [{"name": "other-ns"}],
            "selector": {"secret": {"name": "bulk-src"}},
            "dataTo": [{"storeRef": {"name": "other-ns"}, "match": {"regexp": "[bad("}}],
            "data": [{"match": {"secretKey": "db-host", "remoteRef": {"remoteKey": "bad-explicit", "property": "host"}}}]
        }),
    )
    .await;
    wait_for(
        || async {
            push_ready(&pss, "bad")
                .await
                .is_some_and(|(s, r, _)| s == "False" && r == "Errored")
        },
        "invalid regexp condition",
    )
    .await;
    let message = push_ready(&pss, "bad").await.unwrap().2;
    assert!(
        message.contains("spec.dataTo[0].match.regexp \"[bad(\" is invalid"),
        "{message}"
    );
    wait_for(
        || async {
            Api::<Event>::namespaced(client.clone(), "apps")
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("bad")
                        && e.note
                            .as_deref()
                            .is_some_and(|n| n.contains("match.regexp"))
                })
        },
        "Warning event naming the PushSecret",
    )
    .await;
    assert!(remote.get_opt("bad-explicit").await.unwrap().is_none());
    assert!(synced_keys(&pss, "bad").await.is_empty());

    // no secret value in events, status or logs
    let events = events_json(&client, "apps").await;
    let statuses = serde_json::to_string(
        &pss.list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| p.status.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_no_canary(
        &[CANARY, &first, &second],
        &[
            ("log", &controller.process.log_text()),
            ("events", &events),
            ("status", &statuses),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_password_uuid_and_cluster_generator() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/generators.external-secrets.io_passwords.yaml",
        "deploy/crds/generators.external-secrets.io_uuids.yaml",
        "deploy/crds/generators.external-secrets.io_clustergenerators.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let apply = |obj: Value| {
        let client = client.clone();
        async move {
            let api_version = obj["apiVersion"].as_str().unwrap().to_string();
            let kind = obj["kind"].as_str().unwrap().to_string();
            let (group, version) = api_version.split_once('/').unwrap();
            let ar = kube::api::ApiResource {
                group: group.into(),
                version: version.into(),
                api_version: api_version.clone(),
                kind: kind.clone(),
                plural: match kind.as_str() {
                    "Password" => "passwords".into(),
                    "UUID" => "uuids".into(),
                    _ => "clustergenerators".into(),
                },
            };
            let name = obj["metadata"]["name"].as_str().unwrap().to_string();
            let api: Api<kube::api::DynamicObject> = if kind == "ClusterGenerator" {
                Api::all_with(client, &ar)
            } else {
                Api::namespaced_with(client, "default", &ar)
            };
            api.patch(&name, &PatchParams::apply("test"), &Patch::Apply(&obj))
                .await
                .unwrap();
        }
    };
    apply(json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password",
        "metadata": {"name": "pw", "namespace": "default"},
        "spec": {"length": 32, "digits": 4, "symbols": 0, "noUpper": false, "allowRepeat": true, "secretKeys": ["db-password", "api-password"]}}))
    .await;
    apply(
        json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "UUID",
        "metadata": {"name": "id", "namespace": "default"}, "spec": {}}),
    )
    .await;
    apply(
        json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "ClusterGenerator",
        "metadata": {"name": "static"},
        "spec": {"kind": "Fake", "generator": {"fakeSpec": {"data": {"region": "eu-1"}}}}}),
    )
    .await;
    let _controller = start_controller(dir.path(), &cluster, &[]).await;
    let generated = |name: &str, kind: &str| json!({"sourceRef": {"generatorRef": {"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": kind, "name": name}}});
    apply_es(
        &client,
        es(
            "generated",
            json!({
                "refreshPolicy": "CreatedOnce",
                "dataFrom": [generated("pw", "Password"), generated("id", "UUID"), generated("static", "ClusterGenerator")]
            }),
        ),
    )
    .await;
    wait_ready(&client, "generated", "True", "SecretSynced").await;
    let data = secret_data(&client, "generated").await.unwrap();
    assert_eq!(data["db-password"].len(), 32);
    assert_ne!(data["db-password"], data["api-password"]);
    assert_eq!(
        data["db-password"]
            .chars()
            .filter(char::is_ascii_digit)
            .count(),
        4
    );
    assert_eq!(data["uuid"].len(), 36);
    assert_eq!(data["region"], "eu-1");
    // CreatedOnce: a force-sync does not regenerate
    Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .patch(
            "generated",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"force-sync": "1"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        secret_data(&client, "generated").await.unwrap()["db-password"],
        data["db-password"]
    );
    // a generator that does not exist is a clear condition naming it
    apply_es(
        &client,
        es(
            "missing",
            json!({"dataFrom": [generated("x", "BeyondtrustWorkloadCredentialsDynamicSecret")]}),
        ),
    )
    .await;
    let message = wait_ready(&client, "missing", "False", "SecretSyncedError").await;
    assert!(
        message.contains("BeyondtrustWorkloadCredentialsDynamicSecret \"x\" not found"),
        "{message}"
    );
}

/// Applies a generator object (namespaced in `default`, or a ClusterGenerator) by server-side
/// apply.
async fn apply_generator(client: &kube::Client, obj: Value) {
    let kind = obj["kind"].as_str().unwrap().to_string();
    let ar = kube::api::ApiResource {
        group: "generators.external-secrets.io".into(),
        version: "v1alpha1".into(),
        api_version: "generators.external-secrets.io/v1alpha1".into(),
        plural: match kind.as_str() {
            "SSHKey" => "sshkeys".into(),
            "MFA" => "mfas".into(),
            _ => "clustergenerators".into(),
        },
        kind: kind.clone(),
    };
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    let api: Api<kube::api::DynamicObject> = if kind == "ClusterGenerator" {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), "default", &ar)
    };
    api.patch(&name, &PatchParams::apply("test"), &Patch::Apply(&obj))
        .await
        .unwrap();
}

/// The private key in `data` loads, and its public half is the `publicKey` line.
fn assert_ssh_pair(data: &BTreeMap<String, String>, algorithm: &str, comment: &str) {
    let private = ssh_key::PrivateKey::from_openssh(&data["privateKey"]).unwrap();
    assert!(data["privateKey"].starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
    assert_eq!(private.algorithm().as_str(), algorithm);
    assert_eq!(private.comment().as_bytes(), comment.as_bytes());
    let public = ssh_key::PublicKey::from_openssh(data["publicKey"].trim_end()).unwrap();
    assert_eq!(public.key_data(), private.public_key().key_data());
    // `<algorithm> <base64>[ <comment>]` and a newline, as upstream writes it
    assert_eq!(
        data["publicKey"],
        format!("{}\n", public.to_openssh().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_ssh_key_and_mfa() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/generators.external-secrets.io_sshkeys.yaml",
        "deploy/crds/generators.external-secrets.io_mfas.yaml",
        "deploy/crds/generators.external-secrets.io_clustergenerators.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    // the RFC 6238 SHA-1 seed ("12345678901234567890"), and one that is not base32
    let seeds: Secret = serde_json::from_value(json!({"metadata": {"name": "otp-seed"},
        "stringData": {"seed": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "bad": CANARY}}))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &seeds)
        .await
        .unwrap();
    let g = |kind: &str, name: &str, spec: Value| {
        json!({"apiVersion": "generators.external-secrets.io/v1alpha1",
        "kind": kind, "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    };
    apply_generator(
        &client,
        g(
            "SSHKey",
            "deploy",
            json!({"keyType": "ed25519", "comment": "deploy@ci"}),
        ),
    )
    .await;
    apply_generator(
        &client,
        g(
            "MFA",
            "otp",
            json!({"secret": {"name": "otp-seed", "key": "seed"},
        "length": 8, "when": "1970-01-01T00:00:59Z"}),
        ),
    )
    .await;
    apply_generator(
        &client,
        g(
            "MFA",
            "otp-bad",
            json!({"secret": {"name": "otp-seed", "key": "bad"}}),
        ),
    )
    .await;
    apply_generator(
        &client,
        g(
            "MFA",
            "otp-missing",
            json!({"secret": {"name": "otp-seed", "key": "nope"}}),
        ),
    )
    .await;
    apply_generator(&client, json!({"apiVersion": "generators.external-secrets.io/v1alpha1",
        "kind": "ClusterGenerator", "metadata": {"name": "host-keys"},
        "spec": {"kind": "SSHKey", "generator": {"sshKeySpec": {"keyType": "rsa", "keySize": 2048}}}})).await;
    apply_generator(&client, json!({"apiVersion": "generators.external-secrets.io/v1alpha1",
        "kind": "ClusterGenerator", "metadata": {"name": "otp-now"},
        "spec": {"kind": "MFA", "generator": {"mfaSpec": {"secret": {"name": "otp-seed", "key": "seed"}}}}})).await;
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    let generated = |name: &str, kind: &str| json!({"sourceRef": {"generatorRef": {"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": kind, "name": name}}});
    for (es_name, gen_name, kind) in [
        ("ssh", "deploy", "SSHKey"),
        ("ssh-cluster", "host-keys", "ClusterGenerator"),
        ("otp", "otp", "MFA"),
        ("otp-cluster", "otp-now", "ClusterGenerator"),
        ("otp-bad", "otp-bad", "MFA"),
        ("otp-missing", "otp-missing", "MFA"),
    ] {
        let spec = json!({"refreshPolicy": "CreatedOnce", "dataFrom": [generated(gen_name, kind)]});
        apply_es(&client, es(es_name, spec)).await;
    }
    wait_ready(&client, "ssh", "True", "SecretSynced").await;
    assert_ssh_pair(
        &secret_data(&client, "ssh").await.unwrap(),
        "ssh-ed25519",
        "deploy@ci",
    );
    wait_ready(&client, "ssh-cluster", "True", "SecretSynced").await;
    let data = secret_data(&client, "ssh-cluster").await.unwrap();
    assert_ssh_pair(&data, "ssh-rsa", "");
    let rsa = ssh_key::PrivateKey::from_openssh(&data["privateKey"]).unwrap();
    assert_eq!(rsa.key_data().rsa().map(|k| k.key_size()), Some(2048));
    wait_ready(&client, "otp", "True", "SecretSynced").await;
    let data = secret_data(&client, "otp").await.unwrap();
    assert_eq!(
        (data["token"].as_str(), data["timeLeft"].as_str()),
        ("94287082", "1")
    );
    wait_ready(&client, "otp-cluster", "True", "SecretSynced").await;
    let data = secret_data(&client, "otp-cluster").await.unwrap();
    assert_eq!(data["token"].len(), 6);
    assert!(data["token"].chars().all(|c| c.is_ascii_digit()));
    let left: u32 = data["timeLeft"].parse().unwrap();
    assert!((1..=30).contains(&left), "{left}");
    // a seed that is not base32 and a missing key: conditions naming the generator, no value
    let message = wait_ready(&client, "otp-bad", "False", "SecretSyncedError").await;
    assert!(message.contains("MFA \"otp-bad\""), "{message}");
    assert!(
        message.contains("illegal base32 data at input byte 6"),
        "{message}"
    );
    let message = wait_ready(&client, "otp-missing", "False", "SecretSyncedError").await;
    assert!(message.contains("MFA \"otp-missing\""), "{message}");
    assert!(
        message.contains("secret key nope does not exist"),
        "{message}"
    );
    assert!(secret_data(&client, "otp-bad").await.is_none());
    let events = events_json(&client, "default").await;
    let statuses = serde_json::to_string(
        &Api::<ExternalSecret>::namespaced(client.clone(), "default")
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|e| e.status.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_no_canary(
        &[],
        &[
            ("log", &controller.process.log_text()),
            ("events", &events),
            ("statuses", &statuses),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_outage_keeps_the_secret_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    // the backend: a second API server, read through the kubernetes provider
    let (backend, backend_client) = start_cluster_with_rbac(&[], &["vault"]).await;
    let remote: Secret = serde_json::from_value(
        json!({"metadata": {"name": "db"}, "stringData": {"password": CANARY}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(backend_client.clone(), "vault")
        .create(&PostParams::default(), &remote)
        .await
        .unwrap();
    let creds: Secret = serde_json::from_value(
        json!({"metadata": {"name": "backend-token"}, "stringData": {"token": backend.token()}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &creds)
        .await
        .unwrap();
    let ca = backend
        .kubeconfig()
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("certificate-authority-data: ")
                .map(str::to_string)
        })
        .unwrap();
    let store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "backend", "namespace": "default"},
        "spec": {"provider": {"kubernetes": {"remoteNamespace": "vault",
            "server": {"url": backend.url(), "caBundle": ca},
            "auth": {"token": {"bearerToken": {"name": "backend-token", "key": "token"}}}}}}
    }))
    .unwrap();
    Api::<SecretStore>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &store)
        .await
        .unwrap();
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    let spec = json!({"secretStoreRef": {"name": "backend"}, "data": [{"secretKey": "password", "remoteRef": {"key": "db", "property": "password"}}]});
    apply_es(&client, es("db", spec.clone())).await;
    wait_ready(&client, "db", "True", "SecretSynced").await;
    let before = Api::<Secret>::namespaced(client.clone(), "default")
        .get("db")
        .await
        .unwrap();

    // the backend goes away; a forced refresh fails with the real cause, the Secret stays
    backend.shutdown();
    let mut forced = es("db", spec);
    forced["metadata"]["annotations"] = json!({"force-sync": "1"});
    apply_es(&client, forced).await;
    let message = wait_ready(&client, "db", "False", "SecretSyncedError").await;
    assert!(
        message.contains("spec.data[0] (key: password)") && message.contains("unavailable"),
        "{message}"
    );
    let after = Api::<Secret>::namespaced(client.clone(), "default")
        .get("db")
        .await
        .unwrap();
    assert_eq!(
        after.resource_version(),
        before.resource_version(),
        "an outage never touches the Secret"
    );
    assert_eq!(after.data, before.data);
    assert_no_canary(&[CANARY], &[("log", &controller.process.log_text())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_stops_at_once() {
    use k8s_openapi::api::coordination::v1::Lease;
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    Api::<SecretStore>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &fake_store("fake", json!([{"key": "k", "value": "v"}])),
        )
        .await
        .unwrap();
    let mut controller = start_controller(
        dir.path(),
        &cluster,
        &[
            "--enable-leader-election=true",
            "--leader-election-lease-duration=3s",
            "--leader-election-renew-deadline=2s",
            "--leader-election-retry-period=500ms",
        ],
    )
    .await;
    let leases = Api::<Lease>::namespaced(client.clone(), "default");
    wait_for(
        || async {
            leases
                .get_opt("external-secrets-controller")
                .await
                .unwrap()
                .and_then(|l| l.spec?.holder_identity)
                .is_some()
        },
        "the controller leads",
    )
    .await;
    apply_es(&client, es("before", json!({"secretStoreRef": {"name": "fake"}, "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}]}))).await;
    wait_ready(&client, "before", "True", "SecretSynced").await;
    // the Lease is taken away: the controller stops and exits non-zero, writing nothing more
    hand_lease_to(
        &client,
        "default",
        "external-secrets-controller",
        Some("intruder"),
    )
    .await;
    let status = controller.process.wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| !s.success()),
        "the former leader exits non-zero: {status:?}"
    );
    apply_es(&client, es("after", json!({"secretStoreRef": {"name": "fake"}, "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}]}))).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        secret_data(&client, "after").await.is_none(),
        "nothing is written without the Lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_merge_and_custom_template_delimiters() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    Api::<SecretStore>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &fake_store(
                "fake",
                json!([
                    {"key": "creds", "value": json!({
                        "mongo": {"user": "m-user", "password": CANARY},
                        "redis": {"host": "redis.local", "port": 6379},
                    }).to_string()},
                    {"key": "clash", "value": json!({
                        "a": {"host": "h-a", "token": CANARY},
                        "b": {"host": "h-b"},
                    }).to_string()},
                ]),
            ),
        )
        .await
        .unwrap();
    let controller = start_controller(
        dir.path(),
        &cluster,
        &[
            "--template-left-delimiter=[[",
            "--template-right-delimiter=]]",
        ],
    )
    .await;

    // merge (Extract) hoists the members; merge (JSON) writes them under `into`; the target
    // template uses the custom delimiters, where `{{` is plain text; a transform rewrite
    // keeps `{{ }}`, as upstream
    apply_es(
        &client,
        es(
            "merged",
            json!({
                "secretStoreRef": {"name": "fake"},
                "target": {"name": "merged-secret", "template": {
                    "mergePolicy": "Merge",
                    "metadata": {"labels": {"db-user": "[[ .user ]]"}},
                    "data": {"dsn": "mongodb://[[ .user ]]:[[ .password ]]@[[ .host ]]:[[ .port ]] {{ .user }}"},
                }},
                "dataFrom": [
                    {"extract": {"key": "creds"}, "rewrite": [{"merge": {}}]},
                    {"extract": {"key": "creds"}, "rewrite": [
                        {"merge": {"strategy": "JSON", "into": "all"}},
                        {"transform": {"template": "{{ .value | replace \"mongo\" \"db\" }}"}},
                    ]},
                ],
            }),
        ),
    )
    .await;
    wait_ready(&client, "merged", "True", "SecretSynced").await;
    let data = secret_data(&client, "merged-secret").await.unwrap();
    assert_eq!(data["user"], "m-user");
    assert_eq!(data["password"], CANARY);
    assert_eq!(data["port"], "6379");
    assert_eq!(
        data["dsn"],
        format!("mongodb://m-user:{CANARY}@redis.local:6379 {{{{ .user }}}}")
    );
    assert_eq!(
        data["all"],
        format!(r#"{{"host":"redis.local","password":"{CANARY}","port":6379,"user":"m-user"}}"#)
    );
    assert!(
        data.contains_key("db") && data.contains_key("redis") && !data.contains_key("mongo"),
        "{:?}",
        data.keys()
    );
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    assert_eq!(
        secrets.get("merged-secret").await.unwrap().labels()["db-user"],
        "m-user"
    );

    // a conflict the ExternalSecret ignores syncs, the later key winning
    let clash = |conflict: Option<&str>| {
        let mut merge = json!({});
        if let Some(policy) = conflict {
            merge["conflictPolicy"] = json!(policy);
        }
        es(
            "clash",
            json!({
                "secretStoreRef": {"name": "fake"},
                "target": {"name": "clash-secret"},
                "dataFrom": [{"extract": {"key": "clash"}, "rewrite": [{"merge": merge}]}],
            }),
        )
    };
    apply_es(&client, clash(Some("Ignore"))).await;
    wait_ready(&client, "clash", "True", "SecretSynced").await;
    let before = secrets.get("clash-secret").await.unwrap();
    let data = secret_data(&client, "clash-secret").await.unwrap();
    assert_eq!(
        (data["host"].as_str(), data["token"].as_str()),
        ("h-b", CANARY)
    );
    // by default a conflict fails the sync: a Warning event names it, the Secret stays
    apply_es(&client, clash(None)).await;
    let message = wait_ready(&client, "clash", "False", "SecretSyncedError").await;
    assert!(
        message.contains("merge failed with conflicts: host"),
        "{message}"
    );
    let events = Api::<Event>::namespaced(client.clone(), "default");
    wait_for(
        || async {
            events
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.reason.as_deref() == Some("UpdateFailed")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("clash")
                        && e.note
                            .as_deref()
                            .is_some_and(|n| n.contains("merge failed with conflicts: host"))
                })
        },
        "Warning event for the conflict",
    )
    .await;
    let after = secrets.get("clash-secret").await.unwrap();
    assert_eq!(after.resource_version(), before.resource_version());
    assert_eq!(after.data, before.data);

    let events_text =
        serde_json::to_string(&events.list(&Default::default()).await.unwrap().items).unwrap();
    let statuses = serde_json::to_string(
        &Api::<ExternalSecret>::namespaced(client.clone(), "default")
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|e| e.status.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_no_canary(
        &[CANARY],
        &[
            ("log", &controller.process.log_text()),
            ("events", &events_text),
            ("status", &statuses),
        ],
    );
}

/// The ExternalSecret `name` reading the remote key `k` into the Secret `target` under
/// `creationPolicy: policy`.
fn reads_k(name: &str, target: &str, policy: &str) -> Value {
    es(
        name,
        json!({
            "secretStoreRef": {"name": "s"},
            "target": {"name": target, "creationPolicy": policy},
            "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}],
        }),
    )
}

/// Upstream's creation policies besides Owner and Merge: Orphan writes without an owner (the
/// Secret outlives the ExternalSecret), None writes nothing, CreateOrMerge creates a missing
/// target, merges into an existing one (keeping foreign keys, no owner) and recreates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_policies_orphan_none_and_create_or_merge() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    stores
        .create(
            &PostParams::default(),
            &fake_store("s", json!([{"key": "k", "value": "v1"}])),
        )
        .await
        .unwrap();
    create_foreign_secret(&client, "shared", json!({"mine": "keep"})).await;
    let _controller = start_controller(dir.path(), &cluster, &[]).await;
    apply_es(&client, reads_k("orphan", "orphan-target", "Orphan")).await;
    apply_es(&client, reads_k("none", "none-target", "None")).await;
    apply_es(
        &client,
        reads_k("com-new", "com-new-target", "CreateOrMerge"),
    )
    .await;
    apply_es(&client, reads_k("com-existing", "shared", "CreateOrMerge")).await;
    for name in ["orphan", "none", "com-new", "com-existing"] {
        assert_eq!(
            wait_ready(&client, name, "True", "SecretSynced").await,
            "secret synced",
            "{name}"
        );
    }
    let unowned = |name: &'static str| {
        let secrets = secrets.clone();
        async move {
            let s = secrets.get(name).await.unwrap();
            assert!(s.owner_references().is_empty(), "{name}: no ownerReference");
            assert!(
                !s.labels()
                    .contains_key("reconcile.external-secrets.io/created-by"),
                "{name}: created-by is for Owner only"
            );
            assert_eq!(
                s.labels()["reconcile.external-secrets.io/managed"],
                "true",
                "{name}"
            );
        }
    };

    // Orphan: created without an owner
    assert_eq!(
        secret_data(&client, "orphan-target").await.unwrap()["k"],
        "v1"
    );
    unowned("orphan-target").await;
    wait_event(&client, "default", "orphan", "Normal", "Created", "").await;
    // None: read (Ready says synced), nothing written
    assert!(secret_data(&client, "none-target").await.is_none());
    // CreateOrMerge: a missing target is created, an existing one merged into
    assert_eq!(
        secret_data(&client, "com-new-target").await,
        Some(BTreeMap::from([("k".to_string(), "v1".to_string())]))
    );
    unowned("com-new-target").await;
    assert_eq!(
        secret_data(&client, "shared").await,
        Some(BTreeMap::from([
            ("k".to_string(), "v1".to_string()),
            ("mine".to_string(), "keep".to_string()),
        ]))
    );
    unowned("shared").await;
    // ... and a deleted target is created again
    secrets
        .delete("com-new-target", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        || async {
            secret_data(&client, "com-new-target")
                .await
                .is_some_and(|d| d.get("k").map(String::as_str) == Some("v1"))
        },
        "CreateOrMerge target recreated",
    )
    .await;
    unowned("com-new-target").await;

    // a remote change reaches every writer, and still nothing for None
    replace_fake_data(&stores, "s", json!([{"key": "k", "value": "v2"}])).await;
    for name in ["orphan", "none", "com-new", "com-existing"] {
        force_sync(&client, "default", name).await;
    }
    wait_for(
        || async {
            let v2 = |d: Option<BTreeMap<String, String>>| {
                d.is_some_and(|d| d.get("k").map(String::as_str) == Some("v2"))
            };
            v2(secret_data(&client, "orphan-target").await)
                && v2(secret_data(&client, "com-new-target").await)
                && secret_data(&client, "shared").await.is_some_and(|d| {
                    d.get("k").map(String::as_str) == Some("v2") && d["mine"] == "keep"
                })
        },
        "remote change written",
    )
    .await;
    assert!(secret_data(&client, "none-target").await.is_none());

    // deleting the Orphan ExternalSecret leaves its Secret (the garbage collector has no
    // owner to follow)
    let es_api = Api::<ExternalSecret>::namespaced(client.clone(), "default");
    es_api
        .delete("orphan", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        || async { es_api.get_opt("orphan").await.unwrap().is_none() },
        "Orphan ExternalSecret gone",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        secret_data(&client, "orphan-target").await.unwrap()["k"],
        "v2",
        "an Orphan target outlives its ExternalSecret"
    );
}

/// deletionPolicy Merge: a remote key that goes away takes only its key out of the Secret
/// (foreign keys stay; upstream's `MissingProviderSecret` event), and no data at all leaves the
/// Secret with foreign keys only. Retain with no data keeps the Secret as it is, with
/// upstream's condition. `target.immutable`: an immutable Secret, and a remote change that
/// fails as upstream's does without touching it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policies_merge_retain_and_immutable_targets() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    let remote = |a: Option<&str>, obj: &str, imm: &str| {
        let mut data = vec![
            json!({"key": "b", "value": "vb"}),
            json!({"key": "obj", "value": obj}),
            json!({"key": "imm", "value": imm}),
        ];
        if let Some(a) = a {
            data.push(json!({"key": "a", "value": a}));
        }
        json!(data)
    };
    stores
        .create(
            &PostParams::default(),
            &fake_store("s", remote(Some("va"), r#"{"x":"1"}"#, CANARY)),
        )
        .await
        .unwrap();
    create_foreign_secret(&client, "merged", json!({"mine": "keep"})).await;
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    apply_es(
        &client,
        es(
            "merge",
            json!({
                "secretStoreRef": {"name": "s"},
                "target": {"name": "merged", "creationPolicy": "Merge", "deletionPolicy": "Merge"},
                "data": [
                    {"secretKey": "ka", "remoteRef": {"key": "a"}},
                    {"secretKey": "kb", "remoteRef": {"key": "b"}},
                ],
            }),
        ),
    )
    .await;
    apply_es(
        &client,
        es(
            "retain",
            json!({
                "secretStoreRef": {"name": "s"},
                "target": {"deletionPolicy": "Retain"},
                "dataFrom": [{"extract": {"key": "obj"}}],
            }),
        ),
    )
    .await;
    apply_es(
        &client,
        es(
            "imm",
            json!({
                "secretStoreRef": {"name": "s"},
                "target": {"immutable": true},
                "data": [{"secretKey": "token", "remoteRef": {"key": "imm"}}],
            }),
        ),
    )
    .await;
    for name in ["merge", "retain", "imm"] {
        wait_ready(&client, name, "True", "SecretSynced").await;
    }
    let text = |pairs: &[(&str, &str)]| {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    assert_eq!(
        secret_data(&client, "merged").await,
        text(&[("ka", "va"), ("kb", "vb"), ("mine", "keep")])
    );
    assert_eq!(secret_data(&client, "retain").await, text(&[("x", "1")]));
    let imm_before = secrets.get("imm").await.unwrap();
    assert_eq!(imm_before.immutable, Some(true));
    assert_eq!(
        secret_data(&client, "imm").await,
        text(&[("token", CANARY)])
    );

    // the remote key `a` goes, `obj` turns empty, `imm` changes
    replace_fake_data(&stores, "s", remote(None, "{}", "changed")).await;
    for name in ["merge", "retain", "imm"] {
        force_sync(&client, "default", name).await;
    }
    // Merge: only the key of the missing remote key goes, with upstream's event
    wait_for(
        || async {
            secret_data(&client, "merged").await == text(&[("kb", "vb"), ("mine", "keep")])
        },
        "the missing key's Secret key removed, the others kept",
    )
    .await;
    wait_event(
        &client,
        "default",
        "merge",
        "Normal",
        "MissingProviderSecret",
        "spec.data[0] (key: ka)",
    )
    .await;
    assert_eq!(
        wait_ready(&client, "merge", "True", "SecretSynced").await,
        "secret synced"
    );
    // Retain with no data: the Secret stays as it was, and the condition says why
    assert_eq!(
        wait_ready_message(
            &client,
            "retain",
            "secret retained due to DeletionPolicy=Retain"
        )
        .await,
        ("True".to_string(), "SecretSynced".to_string())
    );
    assert_eq!(secret_data(&client, "retain").await, text(&[("x", "1")]));
    // immutable: upstream's condition, a Warning event, the Secret untouched
    assert_eq!(
        wait_ready(&client, "imm", "False", "SecretSyncedError").await,
        "could not update secret, target is immutable"
    );
    wait_event(
        &client,
        "default",
        "imm",
        "Warning",
        "UpdateFailed",
        "target is immutable",
    )
    .await;
    let imm_after = secrets.get("imm").await.unwrap();
    assert_eq!(imm_after.resource_version(), imm_before.resource_version());
    assert_eq!(imm_after.data, imm_before.data);

    // Merge with no data at all: every key of ours goes, the Secret and foreign keys stay
    let forced = es(
        "merge",
        json!({
            "secretStoreRef": {"name": "s"},
            "target": {"name": "merged", "creationPolicy": "Merge", "deletionPolicy": "Merge"},
            "data": [{"secretKey": "ka", "remoteRef": {"key": "a"}}],
        }),
    );
    apply_es(&client, forced).await;
    wait_for(
        || async { secret_data(&client, "merged").await == text(&[("mine", "keep")]) },
        "only foreign keys left",
    )
    .await;

    let events = events_json(&client, "default").await;
    assert_no_canary(
        &[CANARY],
        &[("log", &controller.process.log_text()), ("events", &events)],
    );
}

/// Waits for the ExternalSecret `name`'s Ready condition to carry `message`; returns its
/// status and reason.
async fn wait_ready_message(client: &kube::Client, name: &str, message: &str) -> (String, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seen = ready(client, name).await;
        match seen {
            Some((s, r, m)) if m == message => return (s, r),
            _ if std::time::Instant::now() > deadline => {
                panic!("timed out waiting for {name} to say {message:?}; last seen {seen:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A ClusterSecretStore's `conditions` (`namespaces`, `namespaceRegexes`,
/// `namespaceSelector`): an ExternalSecret in an allowed namespace syncs; one in any other gets
/// upstream's denial as its condition and Warning event, and no Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_store_conditions_allow_and_deny_namespaces() {
    use k8s_openapi::api::core::v1::Namespace;
    use strongroom_core::crd::external_secrets::ClusterSecretStore;
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) =
        start_cluster_with_rbac(&CRDS, &["named", "team-x", "labelled", "outsider"]).await;
    Api::<Namespace>::all(client.clone())
        .patch(
            "labelled",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"access": "granted"}}})),
        )
        .await
        .unwrap();
    let css_api = Api::<ClusterSecretStore>::all(client.clone());
    for (name, condition) in [
        ("by-name", json!({"namespaces": ["named"]})),
        ("by-regex", json!({"namespaceRegexes": ["^team-"]})),
        (
            "by-label",
            json!({"namespaceSelector": {"matchLabels": {"access": "granted"}}}),
        ),
    ] {
        let css: ClusterSecretStore = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
            "metadata": {"name": name},
            "spec": {
                "conditions": [condition],
                "provider": {"fake": {"data": [{"key": "k", "value": "v"}]}}
            }
        }))
        .unwrap();
        css_api.create(&PostParams::default(), &css).await.unwrap();
    }
    let _controller = start_controller(dir.path(), &cluster, &[]).await;
    let reader = |ns: &str, store: &str| {
        let mut obj = es(
            store,
            json!({
                "secretStoreRef": {"name": store, "kind": "ClusterSecretStore"},
                "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}],
            }),
        );
        obj["metadata"]["namespace"] = json!(ns);
        obj
    };
    let cases = [
        ("by-name", "named"),
        ("by-regex", "team-x"),
        ("by-label", "labelled"),
    ];
    for (store, allowed) in cases {
        apply_es(&client, reader(allowed, store)).await;
        apply_es(&client, reader("outsider", store)).await;
    }
    for (store, allowed) in cases {
        wait_ready_in(&client, allowed, store, "True", "SecretSynced").await;
        assert_eq!(
            secret_data_in(&client, allowed, store).await.unwrap()["k"],
            "v"
        );
        let denial = format!(
            "using cluster store {store:?} is not allowed from namespace \"outsider\": denied by spec.condition"
        );
        let message = wait_ready_in(&client, "outsider", store, "False", "SecretSyncedError").await;
        assert_eq!(message, denial);
        wait_event(
            &client,
            "outsider",
            store,
            "Warning",
            "UpdateFailed",
            &denial,
        )
        .await;
        assert!(secret_data_in(&client, "outsider", store).await.is_none());
    }
    // a namespace that gains the label is allowed from then on
    Api::<Namespace>::all(client.clone())
        .patch(
            "outsider",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"access": "granted"}}})),
        )
        .await
        .unwrap();
    force_sync(&client, "outsider", "by-label").await;
    wait_ready_in(&client, "outsider", "by-label", "True", "SecretSynced").await;
    assert!(
        secret_data_in(&client, "outsider", "by-name")
            .await
            .is_none()
    );
}

/// Read paths through the controller: `dataFrom.find` by name with a `data[]` entry of the
/// same key winning over it, a `data[]` entry reading another store through
/// `sourceRef.storeRef`, a store of another controller class left alone (no status, and its
/// ExternalSecret untouched), and refresh policies: `Periodic` follows a remote change,
/// `OnChange` does not until the ExternalSecret itself changes, nor does `Periodic` inside a
/// deny `syncWindows` window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_source_refs_controller_class_and_refresh_policies() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let main_data = |db_pass: &str| {
        json!({"fake": {"data": [
            {"key": "db-user", "value": "u"},
            {"key": "db-pass", "value": db_pass},
            {"key": "app-x", "value": "x"},
        ]}})
    };
    create_store(&client, "main", main_data("p1")).await;
    create_store(
        &client,
        "other",
        json!({"fake": {"data": [{"key": "k", "value": "from-other"}]}}),
    )
    .await;
    let classy: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "classy", "namespace": "default"},
        "spec": {"controller": "team-b",
                 "provider": {"fake": {"data": [{"key": "k", "value": "v"}]}}}
    }))
    .unwrap();
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    stores
        .create(&PostParams::default(), &classy)
        .await
        .unwrap();
    let _controller = start_controller(dir.path(), &cluster, &[]).await;

    apply_es(
        &client,
        es(
            "found",
            json!({
                "secretStoreRef": {"name": "main"},
                "dataFrom": [{"find": {"name": {"regexp": "^db-"}}}],
                "data": [
                    {"secretKey": "db-user", "remoteRef": {"key": "app-x"}},
                    {"secretKey": "elsewhere", "remoteRef": {"key": "k"},
                     "sourceRef": {"storeRef": {"name": "other", "kind": "SecretStore"}}},
                ],
            }),
        ),
    )
    .await;
    let policy = |policy: &str| {
        json!({
            "secretStoreRef": {"name": "main"},
            "refreshInterval": "1s",
            "refreshPolicy": policy,
            "data": [{"secretKey": "pass", "remoteRef": {"key": "db-pass"}}],
        })
    };
    apply_es(&client, es("periodic", policy("Periodic"))).await;
    apply_es(&client, es("on-change", policy("OnChange"))).await;
    // a deny window that is always open: the first sync happens, refreshes do not
    let mut denied = policy("Periodic");
    denied["syncWindows"] =
        json!({"kind": "deny", "windows": [{"schedule": "@every 1h", "duration": "1h"}]});
    apply_es(&client, es("denied", denied)).await;
    apply_es(
        &client,
        es(
            "not-ours",
            json!({
                "secretStoreRef": {"name": "classy"},
                "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}],
            }),
        ),
    )
    .await;

    wait_ready(&client, "found", "True", "SecretSynced").await;
    let found = secret_data(&client, "found").await.unwrap();
    assert_eq!(found["db-pass"], "p1", "{found:?}");
    assert_eq!(
        found["db-user"], "x",
        "data[] wins over dataFrom: {found:?}"
    );
    assert_eq!(found["elsewhere"], "from-other", "{found:?}");
    assert!(!found.contains_key("app-x"), "{found:?}");
    for name in ["periodic", "on-change", "denied"] {
        wait_ready(&client, name, "True", "SecretSynced").await;
        assert_eq!(secret_data(&client, name).await.unwrap()["pass"], "p1");
    }

    // the remote value changes: Periodic follows within its interval, OnChange does not
    stores
        .patch(
            "main",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"provider": main_data("p2")}})),
        )
        .await
        .unwrap();
    let start = std::time::Instant::now();
    while secret_data(&client, "periodic").await.unwrap()["pass"] != "p2" {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "Periodic did not follow the remote change"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        secret_data(&client, "on-change").await.unwrap()["pass"],
        "p1",
        "OnChange refreshed without a change of the ExternalSecret"
    );
    assert_eq!(
        secret_data(&client, "denied").await.unwrap()["pass"],
        "p1",
        "a refresh went through a deny window"
    );
    force_sync(&client, "default", "on-change").await;
    let start = std::time::Instant::now();
    while secret_data(&client, "on-change").await.unwrap()["pass"] != "p2" {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "OnChange did not read again after the ExternalSecret changed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // the other class's store and its ExternalSecret were never touched
    assert!(store_ready(&client, "classy").await.is_none());
    assert!(ready(&client, "not-ours").await.is_none());
    assert!(secret_data(&client, "not-ours").await.is_none());
}

/// `--namespace`: the controller serves one namespace only. Its ExternalSecret syncs; one in
/// another namespace, with a store of its own, is never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_flag_limits_the_controller_to_one_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &["team-a", "team-b"]).await;
    for ns in ["team-a", "team-b"] {
        let store: SecretStore = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": {"name": "s", "namespace": ns},
            "spec": {"provider": {"fake": {"data": [{"key": "k", "value": "v"}]}}}
        }))
        .unwrap();
        Api::<SecretStore>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &store)
            .await
            .unwrap();
        let mut obj = es(
            "e",
            json!({
                "secretStoreRef": {"name": "s"},
                "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}],
            }),
        );
        obj["metadata"]["namespace"] = json!(ns);
        apply_es(&client, obj).await;
    }
    let _controller = start_controller(dir.path(), &cluster, &["--namespace=team-a"]).await;
    wait_ready_in(&client, "team-a", "e", "True", "SecretSynced").await;
    assert_eq!(
        secret_data_in(&client, "team-a", "e").await.unwrap()["k"],
        "v"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(ready_in(&client, "team-b", "e").await.is_none());
    assert!(secret_data_in(&client, "team-b", "e").await.is_none());
    let other_store = Api::<SecretStore>::namespaced(client.clone(), "team-b");
    assert!(ready_condition(&other_store, "s").await.is_none());
}

/// A SecretStore's `refreshInterval` (seconds) re-validates it that often; without one, the
/// store waits `--store-requeue-interval` (5m by default): counted by the store controller's
/// reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refresh_interval_revalidates_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "often", "namespace": "default"},
        "spec": {"refreshInterval": 1,
                 "provider": {"fake": {"data": [{"key": "k", "value": "v"}]}}}
    }))
    .unwrap();
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    stores.create(&PostParams::default(), &store).await.unwrap();
    create_store(
        &client,
        "default-interval",
        json!({"fake": {"data": [{"key": "k", "value": "v"}]}}),
    )
    .await;
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    wait_store_ready(&client, "often", "True").await;
    wait_store_ready(&client, "default-interval", "True").await;
    let reconciles = || {
        metric_sum(
            &controller.metrics,
            r#"controller_runtime_reconcile_total{controller="secretstore""#,
        )
    };
    let before = reconciles().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = reconciles().await - before;
    // one store every second, the other not at all: about 5
    assert!(
        (3.0..=8.0).contains(&during),
        "{during} store reconciles in 5 s"
    );
}

/// `--enable-*-reconciler=false` turns a kind off (its objects get no status, as upstream; an
/// ExternalSecret using a ClusterSecretStore is skipped with the cluster-store reconciler
/// off), the flood gate refuses a store no reconciler has found Ready, and
/// `--enable-flood-gate=false` reads through it anyway. With the defaults every kind runs,
/// and the store reports `capabilities`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_flags_and_the_flood_gate() {
    use strongroom_core::crd::external_secrets::{ClusterExternalSecret, PushSecret};
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/external-secrets.io_clusterexternalsecrets.yaml",
        "deploy/crds/external-secrets.io_pushsecrets.yaml",
        "deploy/crds/external-secrets.io_clusterpushsecrets.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &["fan"]).await;
    let fake = json!({"fake": {"data": [{"key": "k", "value": "v"}]}});
    let store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "local", "namespace": "default"}, "spec": {"provider": fake}
    }))
    .unwrap();
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    stores.create(&PostParams::default(), &store).await.unwrap();
    let css: ClusterSecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": "shared"}, "spec": {"provider": fake}
    }))
    .unwrap();
    let csss = Api::<ClusterSecretStore>::all(client.clone());
    csss.create(&PostParams::default(), &css).await.unwrap();
    let ess = Api::<ExternalSecret>::namespaced(client.clone(), "default");
    for (name, kind, store) in [
        ("via-store", "SecretStore", "local"),
        ("via-cluster", "ClusterSecretStore", "shared"),
    ] {
        let es = json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"refreshInterval": "1s", "secretStoreRef": {"name": store, "kind": kind},
                     "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}]}
        });
        ess.patch(name, &PatchParams::apply("test"), &Patch::Apply(&es))
            .await
            .unwrap();
    }
    let ces: ClusterExternalSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
        "metadata": {"name": "fanned"},
        "spec": {"namespaces": ["fan"], "externalSecretSpec": {
            "secretStoreRef": {"name": "shared", "kind": "ClusterSecretStore"},
            "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}]}}
    }))
    .unwrap();
    let cess = Api::<ClusterExternalSecret>::all(client.clone());
    cess.create(&PostParams::default(), &ces).await.unwrap();
    put_secret(&client, "src", json!({"k": "pushed"})).await;
    let ps: PushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
        "metadata": {"name": "push", "namespace": "default"},
        "spec": {"secretStoreRefs": [{"name": "local"}], "selector": {"secret": {"name": "src"}},
                 "data": [{"match": {"secretKey": "k", "remoteRef": {"remoteKey": "r"}}}]}
    }))
    .unwrap();
    let pss = Api::<PushSecret>::namespaced(client.clone(), "default");
    pss.create(&PostParams::default(), &ps).await.unwrap();
    let off = [
        "--enable-secret-store-reconciler=false",
        "--enable-cluster-store-reconciler=false",
        "--enable-cluster-external-secret-reconciler=false",
        "--enable-push-secret-reconciler=false",
        "--enable-cluster-push-secret-reconciler=false",
    ];

    // 1. every kind but ExternalSecret off, flood gate on: no store was found Ready
    let controller = start_controller(dir.path(), &cluster, &off).await;
    let message = wait_ready(&client, "via-store", "False", "SecretSyncedError").await;
    assert!(message.contains("not ready"), "{message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(stores.get("local").await.unwrap().status.is_none());
    assert!(csss.get("shared").await.unwrap().status.is_none());
    assert!(cess.get("fanned").await.unwrap().status.is_none());
    assert!(pss.get("push").await.unwrap().status.is_none());
    assert!(
        ess.get("via-cluster").await.unwrap().status.is_none(),
        "an ExternalSecret on a ClusterSecretStore is skipped with its reconciler off"
    );
    assert!(
        Api::<ExternalSecret>::namespaced(client.clone(), "fan")
            .get_opt("fanned")
            .await
            .unwrap()
            .is_none()
    );
    drop(controller);

    // 2. the flood gate off: read through the store no reconciler validated
    let mut args = off.to_vec();
    args.push("--enable-flood-gate=false");
    let controller = start_controller(dir.path(), &cluster, &args).await;
    wait_ready(&client, "via-store", "True", "SecretSynced").await;
    assert!(stores.get("local").await.unwrap().status.is_none());
    assert!(ess.get("via-cluster").await.unwrap().status.is_none());
    drop(controller);

    // 3. the defaults: every kind runs, and the stores report their capabilities
    let _controller = start_controller(dir.path(), &cluster, &[]).await;
    wait_ready(&client, "via-cluster", "True", "SecretSynced").await;
    wait_for(
        || async {
            let local = stores.get("local").await.unwrap().status;
            let shared = csss.get("shared").await.unwrap().status;
            [local, shared].iter().all(|s| {
                s.as_ref()
                    .and_then(|s| s.capabilities.as_deref())
                    .is_some_and(|c| c == "ReadWrite")
            })
        },
        "stores report capabilities ReadWrite",
    )
    .await;
    wait_for(
        || async {
            cess.get("fanned")
                .await
                .unwrap()
                .status
                .and_then(|s| s.provisioned_namespaces)
                == Some(vec!["fan".to_string()])
        },
        "ClusterExternalSecret provisioned",
    )
    .await;
    wait_for(
        || async {
            ready_condition(&pss, "push")
                .await
                .is_some_and(|c| c.0 == "True")
        },
        "PushSecret synced",
    )
    .await;
}

/// The controller's own writes (its finalizer, its Secret) trigger no second reconcile, while
/// a Secret changed or deleted by someone else is still repaired at once. (A watch event that
/// arrives before the write's answer is not recognised and costs one extra reconcile, so the
/// count is checked against the two per ExternalSecret every sync cost before.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_writes_trigger_nothing_and_foreign_edits_are_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    stores
        .create(
            &PostParams::default(),
            &fake_store("fake", json!([{"key": "k", "value": "v"}])),
        )
        .await
        .unwrap();
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    wait_for(
        || async {
            ready_condition(&stores, "fake")
                .await
                .is_some_and(|c| c.0 == "True")
        },
        "store Ready",
    )
    .await;
    let ess = Api::<ExternalSecret>::namespaced(client.clone(), "default");
    const N: usize = 10;
    for i in 0..N {
        let es = json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": format!("es-{i}"), "namespace": "default"},
            "spec": {"refreshInterval": "1h", "secretStoreRef": {"name": "fake"},
                     "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}]}
        });
        ess.patch(
            &format!("es-{i}"),
            &PatchParams::apply("test"),
            &Patch::Apply(&es),
        )
        .await
        .unwrap();
    }
    for i in 0..N {
        wait_ready(&client, &format!("es-{i}"), "True", "SecretSynced").await;
    }
    let reconciles = || async {
        let (_, text) = http_get(&controller.metrics).await;
        text.lines()
            .filter(|l| {
                l.starts_with("controller_runtime_reconcile_total{controller=\"externalsecret\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let done = reconciles().await;
    assert!(
        done >= N as f64 && done < 2.0 * N as f64,
        "{done} reconciles for {N} ExternalSecrets"
    );
    // someone else's edit and deletion are repaired
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    secrets
        .patch(
            "es-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "ZWRpdGVk"}})),
        )
        .await
        .unwrap();
    secrets
        .delete("es-1", &DeleteParams::default())
        .await
        .unwrap();
    let value = |name: &'static str| {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt(name)
                .await
                .unwrap()
                .and_then(|s| s.data)
                .and_then(|d| d.get("k").map(|v| v.0.clone()))
        }
    };
    wait_for(
        || async {
            value("es-0").await == Some(b"v".to_vec()) && value("es-1").await == Some(b"v".to_vec())
        },
        "foreign edit and deletion repaired",
    )
    .await;
}

/// A kind whose CRD is not installed (here PushSecret, ClusterExternalSecret and
/// ClusterPushSecret: only three CRDs are) is retried with backoff, not in a loop. A watch
/// without backoff re-listed thousands of times a second, burnt a third of a core and grew
/// the controller's memory without bound while nothing was due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_crd_is_retried_with_backoff_not_in_a_loop() {
    const MISSING: [&str; 3] = [
        "pushsecrets",
        "clusterexternalsecrets",
        "clusterpushsecrets",
    ];
    let dir = tempfile::tempdir().unwrap();
    let (cluster, _client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let _controller = start_controller(dir.path(), &cluster, &[]).await;
    let lists = |cluster: &strongroom_testkit::DevCluster| {
        let by_kind = cluster
            .requests_by_user()
            .remove("system:serviceaccount:default:external-secrets")
            .unwrap_or_default();
        MISSING.map(|kind| by_kind.get(&format!("list {kind}")).copied().unwrap_or(0))
    };
    let before = lists(&cluster);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = lists(&cluster);
    for (i, kind) in MISSING.iter().enumerate() {
        let tries = after[i] - before[i];
        // backoff from 0.8 s doubling: about four tries in 8 s, never hundreds
        assert!(
            tries <= 12,
            "{kind} listed {tries} times in 8 s without its CRD"
        );
    }
    // the missing kinds were tried at all (the test would prove nothing otherwise)
    assert!(after[0] >= 1, "pushsecrets never listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_from_select_filters_the_rewritten_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    Api::<SecretStore>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &fake_store(
                "fake",
                json!([{"key": "app", "value": json!({
                    "db_host": "db.local", "db_port": "5432", "db_password": CANARY,
                    "app_name": "shop", "_version": "42",
                }).to_string()}]),
            ),
        )
        .await
        .unwrap();
    let _controller = start_controller(dir.path(), &cluster, &[]).await;

    // select sees the keys as the rewrite left them: include `db-*`, then drop one by name
    let selected = |select: serde_json::Value| {
        es(
            "selected",
            json!({
                "secretStoreRef": {"name": "fake"},
                "target": {"name": "selected-secret"},
                "dataFrom": [{
                    "extract": {"key": "app"},
                    "rewrite": [{"regexp": {"source": "^db_", "target": "db-"}}],
                    "select": select,
                }],
            }),
        )
    };
    apply_es(
        &client,
        selected(json!([
            {"regexp": "^db-", "operation": "Include"},
            {"names": ["db-password"], "operation": "Exclude"},
        ])),
    )
    .await;
    wait_ready(&client, "selected", "True", "SecretSynced").await;
    let data = secret_data(&client, "selected-secret").await.unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["db-host", "db-port"],
        "only the included keys, minus the excluded one"
    );

    // a regexp that does not compile fails the sync with a message naming it; the Secret stays
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    let before = secrets.get("selected-secret").await.unwrap();
    apply_es(
        &client,
        selected(json!([{"regexp": "(", "operation": "Exclude"}])),
    )
    .await;
    let message = wait_ready(&client, "selected", "False", "SecretSyncedError").await;
    assert!(
        message.contains("spec.dataFrom[0]")
            && message.contains("select[0].regexp \"(\" is invalid"),
        "{message}"
    );
    let after = secrets.get("selected-secret").await.unwrap();
    assert_eq!(after.data, before.data);
}

/// After the swap from upstream: the target Secret as upstream's controller leaves it (written
/// by create/update under the same field manager name, so an `Update` entry in managedFields)
/// with a key the provider no longer has. The first sync takes that entry's fields over, so
/// the dropped key goes, the provider's values are written, and a key another manager wrote
/// stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_upstream_wrote_are_released_after_the_swap() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    let manager = "externalsecrets.external-secrets.io/migrated";
    stores
        .create(
            &PostParams::default(),
            &fake_store(
                "s",
                json!([{"key": "ka", "value": CANARY}, {"key": "kb", "value": "b-now"}]),
            ),
        )
        .await
        .unwrap();
    apply_es(
        &client,
        es(
            "migrated",
            json!({"secretStoreRef": {"name": "s"}, "refreshInterval": "1h",
                   "data": [{"secretKey": "a", "remoteRef": {"key": "ka"}},
                            {"secretKey": "b", "remoteRef": {"key": "kb"}}]}),
        ),
    )
    .await;
    let uid = Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .get("migrated")
        .await
        .unwrap()
        .uid()
        .unwrap();
    // what upstream left: keys a, b, c, its labels, hash and owner reference, all written
    // with operation Update under the manager name this controller uses
    let upstream: Secret = serde_json::from_value(json!({
        "metadata": {
            "name": "migrated",
            "labels": {"reconcile.external-secrets.io/managed": "true",
                       "reconcile.external-secrets.io/created-by": sha3_224_hex("default/migrated"),
                       "team": "copied-from-the-external-secret-back-then"},
            "annotations": {"reconcile.external-secrets.io/data-hash": "stale",
                            "note": "copied-from-the-external-secret-back-then"},
            "ownerReferences": [{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "name": "migrated", "uid": uid, "controller": true, "blockOwnerDeletion": true}],
        },
        "type": "Opaque",
        "data": {"a": "YS10aGVu", "b": "Yi1ub3c=", "c": "ZHJvcHBlZC1mcm9tLXRoZS1wcm92aWRlcg=="},
    }))
    .unwrap();
    secrets
        .create(
            &PostParams {
                field_manager: Some(manager.into()),
                ..Default::default()
            },
            &upstream,
        )
        .await
        .unwrap();
    // a key someone added with kubectl
    secrets
        .patch(
            "migrated",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"added-by-hand": "a2VwdA=="}})),
        )
        .await
        .unwrap();
    let before = secrets.get("migrated").await.unwrap();
    assert!(
        before.managed_fields().iter().any(|m| {
            m.manager.as_deref() == Some(manager) && m.operation.as_deref() == Some("Update")
        }),
        "the setup is upstream's: an Update entry of the manager"
    );

    let controller = start_controller(dir.path(), &cluster, &[]).await;
    wait_ready(&client, "migrated", "True", "SecretSynced").await;
    let data = secret_data(&client, "migrated").await.unwrap();
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a", "added-by-hand", "b"],
        "the key the provider dropped is gone, the hand-written one stays"
    );
    assert_eq!(data["a"], CANARY);
    assert_eq!(data["b"], "b-now");
    assert_eq!(data["added-by-hand"], "kept");
    let after = secrets.get("migrated").await.unwrap();
    let ours: Vec<_> = after
        .managed_fields()
        .iter()
        .filter(|m| m.manager.as_deref() == Some(manager))
        .map(|m| m.operation.clone().unwrap_or_default())
        .collect();
    assert_eq!(ours, ["Apply"], "no Update entry of the manager remains");
    assert_eq!(
        after
            .labels()
            .get("reconcile.external-secrets.io/managed")
            .map(String::as_str),
        Some("true")
    );
    assert_ne!(
        after
            .annotations()
            .get("reconcile.external-secrets.io/data-hash")
            .map(String::as_str),
        Some("stale")
    );
    assert!(after.owner_references().iter().any(|o| o.uid == uid));
    assert!(
        !after.labels().contains_key("team") && !after.annotations().contains_key("note"),
        "a label and an annotation the ExternalSecret no longer has are gone"
    );
    assert_no_canary(&[], &[("log", &controller.process.log_text())]);
}

/// After the swap from upstream: the children of a ClusterExternalSecret and a
/// ClusterPushSecret as upstream's fan-out leaves them (created and updated without a field
/// manager, so an `Update` entry named after its User-Agent, `external-secrets`, next to the
/// finalizer upstream's ExternalSecret controller added under the same name), with a label, an
/// annotation and a spec field the parents no longer have. The first fan-out takes the fields
/// upstream's fan-out wrote over, so those go; the finalizer stays upstream's entry's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_upstream_wrote_into_fanned_out_children_leave_after_the_swap() {
    use k8s_openapi::api::core::v1::Namespace;
    use strongroom_core::crd::external_secrets::{
        ClusterExternalSecret, ClusterPushSecret, PushSecret,
    };
    const UPSTREAM: &str = "external-secrets";
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/external-secrets.io_clusterexternalsecrets.yaml",
        "deploy/crds/external-secrets.io_pushsecrets.yaml",
        "deploy/crds/external-secrets.io_clusterpushsecrets.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &["team-a"]).await;
    Api::<Namespace>::all(client.clone())
        .patch(
            "team-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "yes"}}})),
        )
        .await
        .unwrap();
    let css: ClusterSecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": "shared"},
        "spec": {"provider": {"fake": {"data": [{"key": "k", "value": "v"}]}}}
    }))
    .unwrap();
    Api::<ClusterSecretStore>::all(client.clone())
        .create(&PostParams::default(), &css)
        .await
        .unwrap();
    let es_spec = json!({
        "refreshInterval": "1h",
        "secretStoreRef": {"name": "shared", "kind": "ClusterSecretStore"},
        "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}]
    });
    let ces: ClusterExternalSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
        "metadata": {"name": "shared-creds"},
        "spec": {"namespaces": ["team-a"],
                 "externalSecretMetadata": {"labels": {"from": "ces"}},
                 "externalSecretSpec": es_spec}
    }))
    .unwrap();
    let ces_uid = Api::<ClusterExternalSecret>::all(client.clone())
        .create(&PostParams::default(), &ces)
        .await
        .unwrap()
        .uid()
        .unwrap();
    let ps_spec = json!({
        "secretStoreRefs": [{"name": "shared", "kind": "ClusterSecretStore"}],
        "selector": {"secret": {"name": "shared-creds"}},
        "data": [{"match": {"secretKey": "k", "remoteRef": {"remoteKey": "copied"}}}]
    });
    let cps: ClusterPushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
        "metadata": {"name": "push-all"},
        "spec": {"namespaceSelectors": [{"matchLabels": {"team": "yes"}}],
                 "pushSecretMetadata": {"labels": {"from": "cps"}},
                 "pushSecretSpec": ps_spec}
    }))
    .unwrap();
    let cps_uid = Api::<ClusterPushSecret>::all(client.clone())
        .create(&PostParams::default(), &cps)
        .await
        .unwrap()
        .uid()
        .unwrap();
    // what upstream left, written as its fan-out writes: no field manager, so the server's
    // User-Agent-derived name, operation Update
    let as_upstream = PostParams {
        field_manager: Some(UPSTREAM.into()),
        ..Default::default()
    };
    let child =
        |kind: &str, api_version: &str, name: &str, parent: (&str, &str, &str), mut spec: Value| {
            spec["refreshPolicy"] = json!("Periodic");
            if kind == "PushSecret" {
                spec["updatePolicy"] = json!("IfNotExists");
                spec.as_object_mut().unwrap().remove("refreshPolicy");
            }
            json!({
                "apiVersion": api_version, "kind": kind,
                "metadata": {"name": name, "namespace": "team-a",
                    "labels": {"from": "before", "retired": "yes"},
                    "annotations": {"retired-note": "dropped from the parent"},
                    "ownerReferences": [{"apiVersion": parent.0, "kind": parent.1, "name": name,
                        "uid": parent.2, "controller": true, "blockOwnerDeletion": true}]},
                "spec": spec,
            })
        };
    let children = Api::<ExternalSecret>::namespaced(client.clone(), "team-a");
    let upstream_es: ExternalSecret = serde_json::from_value(child(
        "ExternalSecret",
        "external-secrets.io/v1",
        "shared-creds",
        ("external-secrets.io/v1", "ClusterExternalSecret", &ces_uid),
        es_spec.clone(),
    ))
    .unwrap();
    children.create(&as_upstream, &upstream_es).await.unwrap();
    // upstream's ExternalSecret controller adds its finalizer under the same name
    children
        .patch(
            "shared-creds",
            &PatchParams {
                field_manager: Some(UPSTREAM.into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"metadata": {"finalizers": [EXTERNAL_SECRET_FINALIZER]}})),
        )
        .await
        .unwrap();
    let pushes = Api::<PushSecret>::namespaced(client.clone(), "team-a");
    let upstream_ps: PushSecret = serde_json::from_value(child(
        "PushSecret",
        "external-secrets.io/v1alpha1",
        "push-all",
        (
            "external-secrets.io/v1alpha1",
            "ClusterPushSecret",
            &cps_uid,
        ),
        ps_spec.clone(),
    ))
    .unwrap();
    pushes.create(&as_upstream, &upstream_ps).await.unwrap();

    let _controller = start_controller(dir.path(), &cluster, &[]).await;
    let cleaned = |meta: &kube::api::ObjectMeta, from: &str| {
        let labels = meta.labels.clone().unwrap_or_default();
        let annotations = meta.annotations.clone().unwrap_or_default();
        labels.get("from").map(String::as_str) == Some(from)
            && !labels.contains_key("retired")
            && !annotations.contains_key("retired-note")
    };
    wait_for(
        || async {
            let es = children.get("shared-creds").await.unwrap();
            cleaned(&es.metadata, "ces") && es.spec.refresh_policy.is_none()
        },
        "the label, annotation and spec field upstream wrote are gone from the ExternalSecret",
    )
    .await;
    wait_for(
        || async {
            let ps = pushes.get("push-all").await.unwrap();
            let spec = serde_json::to_value(&ps.spec).unwrap();
            cleaned(&ps.metadata, "cps") && spec.get("updatePolicy").is_none()
        },
        "the label, annotation and spec field upstream wrote are gone from the PushSecret",
    )
    .await;
    let es = children.get("shared-creds").await.unwrap();
    assert!(
        es.finalizers()
            .iter()
            .any(|f| f == EXTERNAL_SECRET_FINALIZER),
        "the finalizer stays"
    );
    let upstream_entry = es
        .managed_fields()
        .iter()
        .find(|m| {
            m.manager.as_deref() == Some(UPSTREAM) && m.operation.as_deref() == Some("Update")
        })
        .and_then(|m| m.fields_v1.clone())
        .expect("upstream's entry keeps the finalizer")
        .0;
    assert!(upstream_entry["f:metadata"].get("f:finalizers").is_some());
    assert!(upstream_entry.get("f:spec").is_none(), "{upstream_entry}");
    assert!(
        upstream_entry["f:metadata"].get("f:labels").is_none(),
        "{upstream_entry}"
    );
}
