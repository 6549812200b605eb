//! End to end with the azurekv provider: the `external-secrets-controller` binary against
//! devcluster and the Azure stand-in (Key Vault has no emulator; the stand-in follows
//! Microsoft's REST reference), reached the way the real cloud is: `SSL_CERT_FILE` names the
//! stand-in's CA, `AZURE_AUTHORITY_HOST` its login authority, `AZURE_POD_IDENTITY_AUTHORITY_HOST`
//! its IMDS. One SecretStore per auth method (client secret, client certificate, workload
//! identity with a TokenRequest token from devcluster checked against devcluster's JWKS,
//! managed identity): each syncs, picks up a remote change, keeps its Secret through a 429,
//! and exchanges a token once per token lifetime rather than per reconcile. An ACRAccessToken
//! generator exchanges a service principal's token at the stand-in's registry endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use strongroom_core::crd::external_secrets::SecretStore;
use strongroom_testkit::standins::azure::{AzureStandIn, Fault, Options};
use strongroom_testkit::{CANARY, assert_no_canary, http_get, start_cluster_with_rbac, wait_for};

const CLIENT_PEM: &str = include_str!("../../providers/azure/tests/fixtures/client.pem");
const TOKEN_SECONDS: u64 = 4;

async fn create<K>(client: &Client, value: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let obj: K = serde_json::from_value(value).unwrap();
    Api::<K>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

async fn store(client: &Client, name: &str, azurekv: serde_json::Value) {
    create::<SecretStore>(
        client,
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"provider": {"azurekv": azurekv}}}),
    )
    .await;
}

async fn password(client: &Client, name: &str) -> Option<String> {
    secret_data(client, name).await?.get("password").cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_with_every_auth_method_and_one_token_per_lifetime() {
    let started = Instant::now();
    let standin = AzureStandIn::start(Options {
        token_lifetime: Duration::from_secs(TOKEN_SECONDS),
        ..Options::default()
    })
    .await;
    standin.set_secret(
        "db",
        &json!({"password": format!("one-{CANARY}")}).to_string(),
    );
    let tenant = standin.tenant().to_string();

    let crds: Vec<&str> = CRDS
        .iter()
        .copied()
        .chain(["deploy/crds/generators.external-secrets.io_acraccesstokens.yaml"])
        .collect();
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    // The applications the stand-in knows.
    standin.register_client_secret("app-secret", &format!("sp-{CANARY}"));
    let cert_only = CLIENT_PEM.split("-----BEGIN PRIVATE KEY").next().unwrap();
    standin.register_client_certificate("app-cert", cert_only);
    let jwks: serde_json::Value = serde_json::from_str(
        &client
            .request_text(
                http::Request::get("/openid/v1/jwks")
                    .body(Vec::new())
                    .unwrap(),
            )
            .await
            .unwrap(),
    )
    .unwrap();
    standin.register_federated(
        "app-wi",
        "system:serviceaccount:default:reader",
        Some("https://kubernetes.default.svc.cluster.local"),
        jwks,
    );
    standin.allow_managed_identity(Some("mi-1"));

    create::<Secret>(
        &client,
        json!({"metadata": {"name": "sp"}, "stringData": {
            "secret-id": "app-secret", "secret": format!("sp-{CANARY}"),
            "cert-id": "app-cert", "cert": CLIENT_PEM}}),
    )
    .await;
    create::<ServiceAccount>(
        &client,
        json!({"metadata": {"name": "reader", "annotations": {
            "azure.workload.identity/client-id": "app-wi",
            "azure.workload.identity/tenant-id": tenant}}}),
    )
    .await;
    let vault = standin.vault_url.clone();
    store(
        &client,
        "sp-secret",
        json!({"vaultUrl": vault, "tenantId": tenant,
        "authSecretRef": {"clientId": {"name": "sp", "key": "secret-id"},
                          "clientSecret": {"name": "sp", "key": "secret"}}}),
    )
    .await;
    store(
        &client,
        "sp-cert",
        json!({"vaultUrl": vault, "tenantId": tenant,
        "authSecretRef": {"clientId": {"name": "sp", "key": "cert-id"},
                          "clientCertificate": {"name": "sp", "key": "cert"}}}),
    )
    .await;
    store(
        &client,
        "wi",
        json!({"vaultUrl": vault, "authType": "WorkloadIdentity",
        "serviceAccountRef": {"name": "reader"}}),
    )
    .await;
    store(
        &client,
        "mi",
        json!({"vaultUrl": vault, "authType": "ManagedIdentity",
        "identityId": "mi-1"}),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("standin-ca.pem");
    std::fs::write(&ca_file, &standin.ca_pem).unwrap();
    let controller = start_controller_with_env(
        dir.path(),
        &cluster,
        &[],
        &[
            ("SSL_CERT_FILE", ca_file.display().to_string()),
            ("AZURE_AUTHORITY_HOST", standin.authority.clone()),
            (
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                standin.imds_host.clone(),
            ),
        ],
    )
    .await;

    let stores = ["sp-secret", "sp-cert", "wi", "mi"];
    for name in stores {
        apply_es(
            &client,
            es(name, json!({"secretStoreRef": {"name": name}, "refreshInterval": "1s",
                "data": [{"secretKey": "password", "remoteRef": {"key": "secret/db", "property": "password"}}]})),
        )
        .await;
    }
    for name in stores {
        wait_ready(&client, name, "True", "SecretSynced").await;
        assert_eq!(
            password(&client, name).await.unwrap(),
            format!("one-{CANARY}"),
            "{name}"
        );
    }
    let counts = standin.counts();
    for op in [
        "token:client_secret",
        "token:client_certificate",
        "token:federated",
        "token:imds",
    ] {
        assert!(
            counts.get(op).copied().unwrap_or(0) >= 1,
            "{op} missing: {counts:?}"
        );
    }

    // The ACRAccessToken generator: an ACR refresh token for the service principal.
    let registry = standin.vault_url.trim_start_matches("https://").to_string();
    create::<strongroom_core::crd::generators::AcrAccessToken>(
        &client,
        json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "ACRAccessToken",
            "metadata": {"name": "acr", "namespace": "default"},
            "spec": {"registry": registry, "tenantId": tenant,
                "auth": {"servicePrincipal": {"secretRef": {
                    "clientId": {"name": "sp", "key": "secret-id"},
                    "clientSecret": {"name": "sp", "key": "secret"}}}}}}),
    )
    .await;
    apply_es(
        &client,
        es("acr", json!({"refreshInterval": "1h", "dataFrom": [{"sourceRef": {"generatorRef": {
            "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "ACRAccessToken", "name": "acr"}}}]})),
    )
    .await;
    wait_ready(&client, "acr", "True", "SecretSynced").await;
    let acr = secret_data(&client, "acr").await.unwrap();
    assert_eq!(acr["username"], "00000000-0000-0000-0000-000000000000");
    assert!(
        acr["password"].starts_with("acr-refresh-"),
        "{:?}",
        acr.keys()
    );
    assert!(standin.count("acr:exchange") >= 1);

    // A remote change reaches every Secret.
    standin.set_secret(
        "db",
        &json!({"password": format!("two-{CANARY}")}).to_string(),
    );
    for name in stores {
        wait_for(
            || async { password(&client, name).await == Some(format!("two-{CANARY}")) },
            "the new remote value",
        )
        .await;
    }

    // Throttled: the Secrets stay as they are, the stores resume after Retry-After.
    standin.fault(Fault {
        path_contains: "/secrets/db".into(),
        status: 429,
        retry_after: Some(2),
        times: 4,
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in stores {
        assert_eq!(
            password(&client, name).await.unwrap(),
            format!("two-{CANARY}"),
            "{name} kept"
        );
    }
    for name in stores {
        wait_ready(&client, name, "True", "SecretSynced").await;
    }
    assert!(standin.count("fault:429") >= 1, "{:?}", standin.counts());

    // Run a few token lifetimes: reads every second, token exchanges once per lifetime.
    standin.reset_counts();
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(3 * TOKEN_SECONDS)).await;
    let elapsed = window.elapsed().as_secs_f64();
    let counts = standin.counts();
    let reads = counts.get("GetSecret").copied().unwrap_or(0);
    let exchanges = standin.token_exchanges();
    // Refresh at four fifths of the lifetime: at most elapsed / (0.8 * lifetime) + 1 per store.
    let bound = (4.0 * (elapsed / (0.8 * TOKEN_SECONDS as f64) + 1.0)).ceil() as u64;
    assert!(
        exchanges >= 4 && exchanges <= bound,
        "{exchanges} exchanges (bound {bound}) in {elapsed:.1}s: {counts:?}"
    );
    assert!(
        reads >= 3 * exchanges,
        "{reads} reads vs {exchanges} exchanges: {counts:?}"
    );
    assert_eq!(
        counts.get("challenge").copied().unwrap_or(0),
        0,
        "no expired token was sent: {counts:?}"
    );
    eprintln!(
        "azure e2e window: {elapsed:.1}s, {reads} GetSecret, {exchanges} token exchanges: {counts:?}"
    );

    let (_, metrics) = http_get(&controller.metrics).await;
    for status in ["success", "error"] {
        let series = format!(
            "externalsecret_provider_api_calls_count{{call=\"GetSecret\",provider=\"Azure/KeyVault\",status=\"{status}\"}}"
        );
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }
    assert_no_canary(&[CANARY], &[("log", &controller.process.log_text())]);
    eprintln!("azure e2e took {:?}", started.elapsed());
}
