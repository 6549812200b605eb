//! The fold of upstream's `Update` ownership into ours against devcluster: a write that lands
//! between the read and the fold is neither lost nor overwritten (the fold's JSON patch tests
//! the resourceVersion, fails, and is retried on the object read again).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use strongroom_external_secrets::field_takeover::{Takeover, take_over};
use strongroom_testkit::start_cluster;

const MANAGER: &str = "externalsecrets.external-secrets.io/app";

fn operations_of(secret: &Secret, manager: &str) -> Vec<String> {
    secret
        .managed_fields()
        .iter()
        .filter(|m| m.manager.as_deref() == Some(manager))
        .map(|m| m.operation.clone().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_between_read_and_fold_is_kept() {
    let (_cluster, client) = start_cluster(&[], &[]).await;
    let secrets = Api::<Secret>::namespaced(client, "default");
    let upstream: Secret = serde_json::from_value(json!({
        "metadata": {"name": "app"},
        "data": {"a": "YQ==", "c": "Yw=="},
    }))
    .unwrap();
    let pp = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let read = secrets.create(&pp, &upstream).await.unwrap();
    // someone writes after the controller read the Secret
    secrets
        .patch(
            "app",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"d": "ZA=="}})),
        )
        .await
        .unwrap();
    take_over(&secrets, "app", &Takeover::same_manager(MANAGER), &read)
        .await
        .unwrap();
    let now = secrets.get("app").await.unwrap();
    assert_eq!(operations_of(&now, MANAGER), ["Apply"]);
    assert_eq!(
        operations_of(&now, "kubectl-edit"),
        ["Update"],
        "the other writer's entry survives the fold"
    );
    assert!(now.data.unwrap().contains_key("d"));
    // nothing left to fold: no write at all
    let version = now.metadata.resource_version.clone();
    take_over(
        &secrets,
        "app",
        &Takeover::same_manager(MANAGER),
        &secrets.get("app").await.unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        secrets.get("app").await.unwrap().metadata.resource_version,
        version
    );
    // our apply now owns c alone and removes it when it no longer sends it
    let applied = secrets
        .patch(
            "app",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "app"}, "data": {"a": "YQ=="}})),
        )
        .await
        .unwrap();
    let keys: Vec<String> = applied.data.unwrap().into_keys().collect();
    assert_eq!(keys, ["a", "d"]);
}
