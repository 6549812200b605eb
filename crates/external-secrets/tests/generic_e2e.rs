//! End to end: generic targets (`spec.target.manifest`) with the controller binary on
//! devcluster, under the chart's RBAC plus what a user grants for the target kinds. Without
//! `--unsafe-allow-generic-targets` nothing is written; with it a ConfigMap is synced and
//! refreshed, and a custom resource gets template output at a nested path, is repaired when
//! edited or deleted, and reports missing RBAC and unknown kinds precisely.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use strongroom_core::crd::external_secrets::{ExternalSecret, SecretStore};
use strongroom_testkit::{CANARY, assert_no_canary, start_cluster_with_rbac, wait_for};

fn store(data: Value) -> SecretStore {
    serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": {"name": "fake", "namespace": "default"},
        "spec": {"provider": {"fake": {"data": data}}}
    }))
    .unwrap()
}

fn store_data(mode: &str) -> Value {
    json!([
        {"key": "db", "value": json!({"user": "admin", "port": "5432", "password": CANARY}).to_string()},
        {"key": "mode", "value": mode},
    ])
}

/// A small namespaced CRD with a structural schema: `spec` keeps anything, `data` holds text.
async fn app_config_crd(client: &Client) {
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_json::from_value(json!({
            "metadata": {"name": "appconfigs.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "appconfigs", "singular": "appconfig", "kind": "AppConfig", "listKind": "AppConfigList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "data": {"type": "object", "additionalProperties": {"type": "string"}},
                    }}}}]}
        }))
        .unwrap();
    Api::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
}

fn app_configs(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("example.com", "v1", "AppConfig"),
            "appconfigs",
        ),
    )
}

/// What a user does to let the controller write a kind: a ClusterRole and its binding to the
/// chart's ServiceAccount.
async fn grant(client: &Client, group: &str, resource: &str) {
    let account = Api::<ServiceAccount>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|sa| sa.name_any())
        .find(|n| n.starts_with("external-secrets"))
        .expect("the chart's ServiceAccount");
    let name = format!("generic-{resource}");
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": name},
        "rules": [{"apiGroups": [group], "resources": [resource],
            "verbs": ["get", "list", "watch", "create", "patch", "delete"]}],
    }))
    .unwrap();
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "default"}],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

async fn warning_about(client: &Client, es: &str, needle: &str) -> bool {
    Api::<Event>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(es)
                && e.note.as_deref().is_some_and(|n| n.contains(needle))
        })
}

async fn touch(client: &Client, es: &str, value: &str) {
    Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .patch(
            es,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"force-sync": value}}})),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_targets_config_maps_and_custom_resources() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    app_config_crd(&client).await;
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    stores
        .create(&PostParams::default(), &store(store_data("prod")))
        .await
        .unwrap();
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), "default");
    let external_secrets = Api::<ExternalSecret>::namespaced(client.clone(), "default");

    // without the flag: a precise condition and Warning event, and nothing written (not
    // even the finalizer)
    let off = start_controller(dir.path(), &cluster, &[]).await;
    apply_es(
        &client,
        es(
            "cm",
            json!({
                "refreshInterval": "2s",
                "secretStoreRef": {"name": "fake"},
                "target": {"name": "app-config", "manifest": {"apiVersion": "v1", "kind": "ConfigMap"}},
                "data": [{"secretKey": "mode", "remoteRef": {"key": "mode"}}],
                "dataFrom": [{"extract": {"key": "db"}}],
            }),
        ),
    )
    .await;
    let message = wait_ready(&client, "cm", "False", "ResourceSyncedError").await;
    assert!(
        message.contains("--unsafe-allow-generic-targets"),
        "{message}"
    );
    wait_for(
        || warning_about(&client, "cm", "--unsafe-allow-generic-targets"),
        "Warning event naming the flag",
    )
    .await;
    assert!(config_maps.get_opt("app-config").await.unwrap().is_none());
    assert!(
        external_secrets
            .get("cm")
            .await
            .unwrap()
            .finalizers()
            .is_empty()
    );
    drop(off);

    // with the flag and the ConfigMap permissions a user grants: synced, owned, refreshed
    grant(&client, "", "configmaps").await;
    let on = start_controller(
        dir.path(),
        &cluster,
        &["--unsafe-allow-generic-targets=true"],
    )
    .await;
    touch(&client, "cm", "1").await;
    wait_ready(&client, "cm", "True", "ResourceSynced").await;
    let cm = config_maps.get("app-config").await.unwrap();
    let data = cm.data.clone().unwrap_or_default();
    assert_eq!(data.get("mode").map(String::as_str), Some("prod"));
    assert_eq!(data.get("user").map(String::as_str), Some("admin"));
    assert_eq!(data.get("port").map(String::as_str), Some("5432"));
    assert_eq!(
        cm.labels()
            .get("reconcile.external-secrets.io/managed")
            .map(String::as_str),
        Some("true")
    );
    assert!(
        cm.labels()
            .contains_key("reconcile.external-secrets.io/created-by")
    );
    assert!(
        cm.annotations()
            .contains_key("reconcile.external-secrets.io/data-hash")
    );
    let es_uid = external_secrets.get("cm").await.unwrap().uid().unwrap();
    assert!(
        cm.owner_references()
            .iter()
            .any(|o| o.uid == es_uid && o.controller == Some(true))
    );
    assert!(
        cm.managed_fields()
            .iter()
            .any(|m| m.manager.as_deref() == Some("externalsecrets.external-secrets.io/cm"))
    );
    let mut store_now = stores.get("fake").await.unwrap();
    store_now.spec = store(store_data("staging")).spec;
    stores
        .replace("fake", &PostParams::default(), &store_now)
        .await
        .unwrap();
    wait_for(
        || async {
            config_maps
                .get("app-config")
                .await
                .ok()
                .and_then(|c| c.data)
                .and_then(|d| d.get("mode").cloned())
                .as_deref()
                == Some("staging")
        },
        "ConfigMap refreshed",
    )
    .await;

    // a custom resource without permissions: the API server's refusal in the condition
    let crs = app_configs(&client);
    apply_es(
        &client,
        es(
            "cr",
            json!({
                "refreshInterval": "1h",
                "secretStoreRef": {"name": "fake"},
                "target": {"name": "app", "manifest": {"apiVersion": "example.com/v1", "kind": "AppConfig"},
                    "template": {"engineVersion": "v2",
                        "metadata": {"labels": {"mode": "{{ .mode }}"}},
                        "templateFrom": [{"target": "spec.database", "literal": "user: {{ .user }}\nport: {{ .port }}\n"}],
                        "data": {"mode": "{{ .mode }}"}}},
                "data": [{"secretKey": "mode", "remoteRef": {"key": "mode"}}],
                "dataFrom": [{"extract": {"key": "db"}}],
            }),
        ),
    )
    .await;
    let message = wait_ready(&client, "cr", "False", "ResourceSyncedError").await;
    assert!(
        message.contains("forbidden") && message.contains("appconfigs"),
        "{message}"
    );
    wait_for(
        || warning_about(&client, "cr", "appconfigs"),
        "Warning event naming the kind",
    )
    .await;

    // granted: the template's output at the nested path, data and templated labels
    grant(&client, "example.com", "appconfigs").await;
    touch(&client, "cr", "1").await;
    wait_ready(&client, "cr", "True", "ResourceSynced").await;
    let app = crs.get("app").await.unwrap();
    assert_eq!(
        app.data["spec"]["database"],
        json!({"user": "admin", "port": 5432})
    );
    assert_eq!(app.data["data"], json!({"mode": "staging"}));
    assert_eq!(
        app.labels().get("mode").map(String::as_str),
        Some("staging")
    );
    assert!(
        app.owner_references()
            .iter()
            .any(|o| o.kind == "ExternalSecret"),
        "creationPolicy Owner"
    );

    // edited or deleted, it is repaired at once (the interval is an hour: the watch does it)
    crs.patch(
        "app",
        &PatchParams::apply("intruder").force(),
        &Patch::Apply(json!({
            "apiVersion": "example.com/v1", "kind": "AppConfig",
            "spec": {"database": {"user": "intruder"}},
        })),
    )
    .await
    .unwrap();
    wait_for(
        || async {
            crs.get("app").await.ok().is_some_and(|a| {
                a.data["spec"]["database"]["user"] == "admin"
                    && !a.data["spec"]["database"].to_string().contains("intruder")
            })
        },
        "edited target repaired",
    )
    .await;
    crs.delete("app", &DeleteParams::default()).await.unwrap();
    wait_for(
        || async { crs.get_opt("app").await.ok().flatten().is_some() },
        "deleted target recreated",
    )
    .await;

    on.process.wait_for_log("watching generic targets").await;

    // deletionPolicy Delete: deleting the ExternalSecret deletes the object it controls
    external_secrets
        .patch(
            "cr",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"target": {"deletionPolicy": "Delete"}}})),
        )
        .await
        .unwrap();
    wait_for(
        || async {
            external_secrets.get("cr").await.ok().is_some_and(|e| {
                e.status
                    .and_then(|s| s.synced_resource_version)
                    .is_some_and(|v| {
                        v.starts_with(&format!("{}-", e.metadata.generation.unwrap_or_default()))
                    })
            })
        },
        "deletionPolicy change synced",
    )
    .await;
    external_secrets
        .delete("cr", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        || async {
            crs.get_opt("app").await.ok().flatten().is_none()
                && external_secrets
                    .get_opt("cr")
                    .await
                    .ok()
                    .flatten()
                    .is_none()
        },
        "target deleted with its ExternalSecret",
    )
    .await;
    wait_for(
        || async {
            Api::<Event>::namespaced(client.clone(), "default")
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("Deleted")
                        && e.note.as_deref()
                            == Some("AppConfig deleted with the ExternalSecret (deletionPolicy: Delete)")
                })
        },
        "the controller deleted it (not only garbage collection)",
    )
    .await;

    // a kind the API server does not serve
    apply_es(
        &client,
        es(
            "unknown",
            json!({
                "secretStoreRef": {"name": "fake"},
                "target": {"manifest": {"apiVersion": "example.com/v1", "kind": "Nope"}},
                "data": [{"secretKey": "mode", "remoteRef": {"key": "mode"}}],
            }),
        ),
    )
    .await;
    let message = wait_ready(&client, "unknown", "False", "ResourceSyncedError").await;
    assert!(message.contains("no such kind"), "{message}");

    // a schema that refuses a secret value: the API server quotes the value it refused, the
    // condition names the field and the rule but not the value
    let strict: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_json::from_value(json!({
            "metadata": {"name": "strictconfigs.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "strictconfigs", "singular": "strictconfig", "kind": "StrictConfig", "listKind": "StrictConfigList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "data": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[0-9]+$"}},
                        }},
                    }}}}]}
        }))
        .unwrap();
    Api::all(client.clone())
        .create(&PostParams::default(), &strict)
        .await
        .unwrap();
    grant(&client, "example.com", "strictconfigs").await;
    apply_es(
        &client,
        es(
            "strict",
            json!({
                "secretStoreRef": {"name": "fake"},
                "target": {"manifest": {"apiVersion": "example.com/v1", "kind": "StrictConfig"}},
                "dataFrom": [{"extract": {"key": "db"}}],
            }),
        ),
    )
    .await;
    let message = wait_ready(&client, "strict", "False", "ResourceSyncedError").await;
    assert!(
        message.contains("spec.data[password]: Invalid value: \"…\"")
            && message.contains("should match"),
        "{message}"
    );

    // values stay out of status, events and the log
    tokio::time::sleep(Duration::from_millis(200)).await;
    let statuses = serde_json::to_string(
        &external_secrets
            .list(&Default::default())
            .await
            .unwrap()
            .items,
    )
    .unwrap();
    let events = serde_json::to_string(
        &Api::<Event>::namespaced(client.clone(), "default")
            .list(&Default::default())
            .await
            .unwrap()
            .items,
    )
    .unwrap();
    assert_no_canary(
        &[],
        &[
            ("status", &statuses),
            ("events", &events),
            ("log", &on.process.log_text()),
        ],
    );
}

/// Whether the ExternalSecret `renamed` last synced to the target `name` (`status.binding`).
async fn bound_to(client: &Client, name: &str) -> bool {
    Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .get("renamed")
        .await
        .unwrap()
        .status
        .and_then(|s| s.binding)
        .and_then(|b| b.name)
        .as_deref()
        == Some(name)
}

/// Renaming a generic target (creationPolicy Owner) deletes the object written before when
/// this ExternalSecret controls it, and keeps one it no longer controls; the kind's watch ends
/// with the last ExternalSecret writing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_generic_target_deletes_the_previous_object() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    Api::<SecretStore>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &store(store_data("prod")))
        .await
        .unwrap();
    let on = start_controller(
        dir.path(),
        &cluster,
        &["--unsafe-allow-generic-targets=true"],
    )
    .await;
    grant(&client, "", "configmaps").await;
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), "default");
    let exists = |name: &'static str| {
        let config_maps = config_maps.clone();
        async move { config_maps.get_opt(name).await.unwrap().is_some() }
    };
    let targeting = |name: &str| {
        es(
            "renamed",
            json!({
                "refreshInterval": "1h",
                "secretStoreRef": {"name": "fake"},
                "target": {"name": name, "manifest": {"apiVersion": "v1", "kind": "ConfigMap"}},
                "data": [{"secretKey": "mode", "remoteRef": {"key": "mode"}}],
            }),
        )
    };
    apply_es(&client, targeting("first")).await;
    wait_for(|| exists("first"), "first target written").await;

    // renamed: the new object is written, the one this ExternalSecret controls is deleted
    apply_es(&client, targeting("second")).await;
    wait_for(
        || async { exists("second").await && !exists("first").await },
        "previous target deleted after the rename",
    )
    .await;
    wait_event(
        &client,
        "default",
        "renamed",
        "Normal",
        "Deleted",
        "previous target ConfigMap \"first\" deleted after the target was renamed",
    )
    .await;

    wait_for(
        || bound_to(&client, "second"),
        "status names the second target",
    )
    .await;

    // someone takes "second" over (no controller reference to us): a rename leaves it
    config_maps
        .patch(
            "second",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"ownerReferences": null}})),
        )
        .await
        .unwrap();
    apply_es(&client, targeting("third")).await;
    wait_for(|| exists("third"), "third target written").await;
    wait_for(
        || bound_to(&client, "third"),
        "status names the third target",
    )
    .await;
    assert!(
        exists("second").await,
        "an object this ExternalSecret does not control is kept"
    );

    // the last ExternalSecret writing ConfigMaps goes: the kind's watch stops
    Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .delete("renamed", &DeleteParams::default())
        .await
        .unwrap();
    on.process
        .wait_for_log("no ExternalSecret writes this kind any more")
        .await;
}

/// Whether the ExternalSecret `moved` last synced to a target of kind `kind`
/// (`status.targetManifest`).
async fn wrote_kind(client: &Client, kind: &str) -> bool {
    Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .get("moved")
        .await
        .unwrap()
        .status
        .and_then(|s| s.target_manifest)
        .is_some_and(|m| m.kind == kind)
}

/// Changing a generic target's kind (creationPolicy Owner), or between a generic target and a
/// Secret, deletes the object of the previous kind when this ExternalSecret controls it, and
/// keeps one it no longer controls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_generic_targets_kind_deletes_the_previous_object() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    app_config_crd(&client).await;
    Api::<SecretStore>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &store(store_data("prod")))
        .await
        .unwrap();
    let _on = start_controller(
        dir.path(),
        &cluster,
        &["--unsafe-allow-generic-targets=true"],
    )
    .await;
    grant(&client, "", "configmaps").await;
    grant(&client, "example.com", "appconfigs").await;
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), "default");
    let app_configs = app_configs(&client);
    let cm_exists = || {
        let config_maps = config_maps.clone();
        async move { config_maps.get_opt("cfg").await.unwrap().is_some() }
    };
    let ac_exists = || {
        let app_configs = app_configs.clone();
        async move { app_configs.get_opt("cfg").await.unwrap().is_some() }
    };
    let writing = |api_version: &str, kind: &str| {
        es(
            "moved",
            json!({
                "refreshInterval": "1h",
                "secretStoreRef": {"name": "fake"},
                "target": {"name": "cfg", "manifest": {"apiVersion": api_version, "kind": kind}},
                "data": [{"secretKey": "mode", "remoteRef": {"key": "mode"}}],
            }),
        )
    };
    apply_es(&client, writing("v1", "ConfigMap")).await;
    wait_for(
        || async { cm_exists().await && wrote_kind(&client, "ConfigMap").await },
        "the ConfigMap written and its kind recorded",
    )
    .await;

    // ConfigMap → AppConfig: the ConfigMap this ExternalSecret controls goes
    apply_es(&client, writing("example.com/v1", "AppConfig")).await;
    wait_for(
        || async { ac_exists().await && !cm_exists().await },
        "the object of the previous kind deleted",
    )
    .await;
    wait_event(
        &client,
        "default",
        "moved",
        "Normal",
        "Deleted",
        "previous target ConfigMap \"cfg\" deleted after the target's kind changed",
    )
    .await;
    wait_for(
        || wrote_kind(&client, "AppConfig"),
        "status records the AppConfig",
    )
    .await;

    // someone takes the AppConfig over (no controller reference to us): a change of kind
    // back to ConfigMap leaves it
    app_configs
        .patch(
            "cfg",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"ownerReferences": null}})),
        )
        .await
        .unwrap();
    apply_es(&client, writing("v1", "ConfigMap")).await;
    wait_for(
        || async { cm_exists().await && wrote_kind(&client, "ConfigMap").await },
        "the ConfigMap written again",
    )
    .await;
    assert!(
        ac_exists().await,
        "an object of the previous kind this ExternalSecret does not control is kept"
    );

    // to and from a Secret target (no manifest) alike
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), "default");
    let secret_exists = || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("cfg").await.unwrap().is_some() }
    };
    let mut to_secret = writing("v1", "ConfigMap");
    to_secret["spec"]["target"]
        .as_object_mut()
        .unwrap()
        .remove("manifest");
    apply_es(&client, to_secret).await;
    wait_for(
        || async { secret_exists().await && !cm_exists().await },
        "ConfigMap → Secret: the ConfigMap deleted",
    )
    .await;
    wait_for(
        || wrote_kind(&client, "Secret"),
        "status records the Secret",
    )
    .await;
    apply_es(&client, writing("v1", "ConfigMap")).await;
    wait_for(
        || async { cm_exists().await && !secret_exists().await },
        "Secret → ConfigMap: the Secret deleted",
    )
    .await;

    // the grant for ConfigMaps goes with a move away from them: the ConfigMap is left with a
    // Warning, the move itself succeeds
    Api::<ClusterRoleBinding>::all(client.clone())
        .delete("generic-configmaps", &DeleteParams::default())
        .await
        .unwrap();
    apply_es(&client, writing("example.com/v1", "AppConfig")).await;
    wait_for(
        || wrote_kind(&client, "AppConfig"),
        "the move without a grant for the previous kind",
    )
    .await;
    wait_event(
        &client,
        "default",
        "moved",
        "Warning",
        "UpdateFailed",
        "previous target ConfigMap \"cfg\" left: no permission to read or delete it",
    )
    .await;
    assert!(cm_exists().await);
}
