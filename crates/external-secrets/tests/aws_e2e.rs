//! End to end with the aws provider: the `external-secrets-controller` binary against
//! devcluster and moto, the endpoints given by upstream's `AWS_SECRETSMANAGER_ENDPOINT` and
//! `AWS_SSM_ENDPOINT`. Secrets Manager: a sync, a remote change picked up within the refresh
//! interval, an outage that keeps the Secret and says so, recovery, and the call metric.
//! Parameter Store: a PushSecret creates, updates and (deletionPolicy Delete) removes a
//! managed parameter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use common::wait_ready;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use strongroom_core::crd::external_secrets::{ExternalSecret, SecretStore};
use strongroom_testkit::backends::Moto;
use strongroom_testkit::{CANARY, Process, assert_no_canary, http_get, start_cluster, wait_for};

const CRDS: [&str; 4] = [
    "deploy/crds/external-secrets.io_externalsecrets.yaml",
    "deploy/crds/external-secrets.io_secretstores.yaml",
    "deploy/crds/external-secrets.io_clustersecretstores.yaml",
    "deploy/crds/external-secrets.io_pushsecrets.yaml",
];

/// An SDK configuration that seeds and inspects moto directly.
async fn sdk(moto: &Moto) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(&moto.endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .load()
        .await
}

/// Secret `default/<name>` with string data.
async fn put_secret(client: &Client, name: &str, data: serde_json::Value) {
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

/// SecretStore `default/aws` for `service` with the keys of Secret `aws-creds`.
async fn aws_store(client: &Client, service: &str, prefix: &str) {
    put_secret(client, "aws-creds", json!({"id": "test", "secret": "test"})).await;
    let store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "aws", "namespace": "default"},
        "spec": {"provider": {"aws": {"service": service, "region": "us-east-1",
            "prefix": prefix,
            "auth": {"secretRef": {
                "accessKeyIDSecretRef": {"name": "aws-creds", "key": "id"},
                "secretAccessKeySecretRef": {"name": "aws-creds", "key": "secret"}}}}}}
    }))
    .unwrap();
    Api::<SecretStore>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &store)
        .await
        .unwrap();
}

/// The controller with every AWS endpoint at moto; returns it and its metrics URL.
async fn start_controller(
    dir: &std::path::Path,
    cluster: &strongroom_testkit::DevCluster,
    moto: &Moto,
) -> (Process, String) {
    let endpoints = [
        "AWS_SECRETSMANAGER_ENDPOINT",
        "AWS_SSM_ENDPOINT",
        "AWS_STS_ENDPOINT",
    ]
    .map(|k| (k, moto.endpoint.clone()));
    let c = common::start_controller_with_env(dir, cluster, &[], &endpoints).await;
    (c.process, c.metrics)
}

async fn password(client: &Client) -> Option<(String, String)> {
    let s = Api::<Secret>::namespaced(client.clone(), "default")
        .get_opt("db")
        .await
        .unwrap()?;
    let value = s.data.as_ref()?.get("password")?.0.clone();
    Some((
        String::from_utf8_lossy(&value).into_owned(),
        s.resource_version().unwrap_or_default(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_from_secrets_manager_and_survives_an_outage() {
    let started = Instant::now();
    let moto = Moto::start().await;
    let sdk = sdk(&moto).await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    sm.create_secret()
        .name("app/db")
        .secret_string(json!({"password": format!("one-{CANARY}")}).to_string())
        .send()
        .await
        .unwrap();

    let (cluster, client) = start_cluster(&CRDS, &[]).await;
    aws_store(&client, "SecretsManager", "app/").await;
    let dir = tempfile::tempdir().unwrap();
    let (controller, metrics_url) = start_controller(dir.path(), &cluster, &moto).await;

    let es = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": "1s",
            "data": [{"secretKey": "password", "remoteRef": {"key": "db", "property": "password"}}]},
    });
    Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .patch(
            "db",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&es),
        )
        .await
        .unwrap();
    wait_ready(&client, "db", "True", "SecretSynced").await;
    assert_eq!(password(&client).await.unwrap().0, format!("one-{CANARY}"));

    // A new remote value reaches the Secret within a few refresh intervals.
    sm.put_secret_value()
        .secret_id("app/db")
        .secret_string(json!({"password": format!("two-{CANARY}")}).to_string())
        .send()
        .await
        .unwrap();
    let changed = Instant::now();
    wait_for(
        || async {
            password(&client)
                .await
                .is_some_and(|(p, _)| p == format!("two-{CANARY}"))
        },
        "the new remote value in the Secret",
    )
    .await;
    assert!(
        changed.elapsed() < Duration::from_secs(10),
        "{:?}",
        changed.elapsed()
    );
    let (_, version) = password(&client).await.unwrap();

    // moto stops answering: the ExternalSecret says so, the Secret stays as it was.
    moto.process.signal("STOP");
    let message = wait_ready(&client, "db", "False", "SecretSyncedError").await;
    assert!(
        message.contains("unavailable") && message.contains("GetSecretValue"),
        "{message}"
    );
    assert_eq!(
        password(&client).await.unwrap(),
        (format!("two-{CANARY}"), version.clone()),
        "an outage never touches the Secret"
    );
    moto.process.signal("CONT");
    wait_ready(&client, "db", "True", "SecretSynced").await;

    let (_, metrics) = http_get(&metrics_url).await;
    for status in ["success", "error"] {
        let series = format!(
            "externalsecret_provider_api_calls_count{{call=\"GetSecretValue\",provider=\"AWS/SecretsManager\",status=\"{status}\"}}"
        );
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }
    assert_no_canary(&[CANARY], &[("log", &controller.log_text())]);
    eprintln!("aws e2e took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secret_manages_a_parameter() {
    use kube::api::DeleteParams;
    use strongroom_core::crd::external_secrets::PushSecret;
    let moto = Moto::start().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk(&moto).await);
    let (cluster, client) = start_cluster(&CRDS, &[]).await;
    aws_store(&client, "ParameterStore", "/team/").await;
    put_secret(&client, "source", json!({"password": "v1"})).await;
    let dir = tempfile::tempdir().unwrap();
    let (_controller, metrics_url) = start_controller(dir.path(), &cluster, &moto).await;
    let ps: PushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
        "metadata": {"name": "push", "namespace": "default"},
        "spec": {
            "refreshInterval": "1h",
            "deletionPolicy": "Delete",
            "secretStoreRefs": [{"name": "aws", "kind": "SecretStore"}],
            "selector": {"secret": {"name": "source"}},
            "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": "password"}},
                "metadata": {"apiVersion": "kubernetes.external-secrets.io/v1alpha1",
                    "kind": "PushSecretMetadata", "spec": {"secretType": "SecureString"}}}]
        }
    }))
    .unwrap();
    let pss = Api::<PushSecret>::namespaced(client.clone(), "default");
    pss.create(&PostParams::default(), &ps).await.unwrap();
    let remote = || async {
        ssm.get_parameter()
            .name("/team/password")
            .with_decryption(true)
            .send()
            .await
            .ok()
            .and_then(|o| o.parameter().and_then(|p| p.value().map(str::to_string)))
    };
    wait_for(
        || async { remote().await.as_deref() == Some("v1") },
        "pushed",
    )
    .await;
    let tags = ssm
        .list_tags_for_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id("/team/password")
        .send()
        .await
        .unwrap();
    assert!(
        tags.tag_list()
            .iter()
            .any(|t| t.key() == "managed-by" && t.value() == "external-secrets")
    );
    Api::<Secret>::namespaced(client.clone(), "default")
        .patch(
            "source",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "v2"}})),
        )
        .await
        .unwrap();
    wait_for(
        || async { remote().await.as_deref() == Some("v2") },
        "source change pushed",
    )
    .await;
    pss.delete("push", &DeleteParams::default()).await.unwrap();
    wait_for(
        || async { remote().await.is_none() && pss.get_opt("push").await.unwrap().is_none() },
        "parameter removed with the PushSecret",
    )
    .await;
    let (_, metrics) = http_get(&metrics_url).await;
    for call in ["PutParameter", "DeleteParameter"] {
        let series = format!(
            "externalsecret_provider_api_calls_count{{call=\"{call}\",provider=\"AWS/ParameterStore\",status=\"success\"}}"
        );
        assert!(metrics.contains(&series), "{series} missing");
    }
}
