//! End to end with the gcpsm provider: the `external-secrets-controller` binary against
//! devcluster and the Secret Manager stand-in (no GCP emulator installs here; the stand-in in
//! strongroom-testkit follows the published REST reference). One store per auth method —
//! service-account key, GKE Workload Identity (a devcluster TokenRequest token exchanged at the
//! stand-in's STS, then impersonation), Workload Identity Federation (credential config in a
//! ConfigMap) and Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`) — with
//! short-lived tokens refreshed mid-run, one token exchange per token lifetime, and the calls on
//! `/metrics` under upstream's labels.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::json;
use strongroom_core::crd::external_secrets::SecretStore;
use strongroom_testkit::standins::gcp::{GcpStandIn, PROJECT};
use strongroom_testkit::{CANARY, assert_no_canary, http_get, start_cluster_with_rbac, wait_for};

const WIF_AUDIENCE: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/dev/providers/devcluster";

async fn create<K>(client: &kube::Client, obj: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let obj: K = serde_json::from_value(obj).unwrap();
    Api::<K>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

fn store(name: &str, gcpsm: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"provider": {"gcpsm": gcpsm}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_from_secret_manager_with_every_auth_method() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.push("deploy/crds/generators.external-secrets.io_gcraccesstokens.yaml");
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let standin = GcpStandIn::start();
    standin.set_token_lifetime(Duration::from_secs(4));
    standin.trust_cluster(&client).await;
    let pool = format!("{PROJECT}.svc.id.goog");
    standin.accept_sts_audience(
        &format!("identitynamespace:{pool}:https://container.googleapis.com/v1/projects/{PROJECT}/locations/europe-west1/clusters/dev"),
        &pool,
    );
    standin.accept_sts_audience(WIF_AUDIENCE, WIF_AUDIENCE);
    standin.put(
        None,
        "app-db",
        format!(r#"{{"user":"admin","password":"{CANARY}"}}"#).as_bytes(),
    );

    // secretRef: the service-account key in a Secret.
    create::<Secret>(
        &client,
        json!({"metadata": {"name": "gcp-key"},
        "stringData": {"key.json": standin.service_account_key()}}),
    )
    .await;
    // workloadIdentity: a KSA annotated with the GSA to impersonate.
    create::<ServiceAccount>(
        &client,
        json!({"metadata": {"name": "gcp-wi", "annotations":
        {"iam.gke.io/gcp-service-account": "eso@strongroom-test.iam.gserviceaccount.com"}}}),
    )
    .await;
    // workloadIdentityFederation: a credential configuration and a KSA whose token it uses.
    create::<ServiceAccount>(&client, json!({"metadata": {"name": "gcp-wif"}})).await;
    let config = json!({
        "type": "external_account",
        "audience": WIF_AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/v1/token", standin.url),
        "credential_source": {"file": "/var/run/secrets/tokens/gcp-token", "format": {"type": "text"}}
    });
    create::<ConfigMap>(
        &client,
        json!({"metadata": {"name": "gcp-wif"},
        "data": {"config.json": config.to_string()}}),
    )
    .await;
    // ADC: the controller's own key file.
    let adc = dir.path().join("adc.json");
    std::fs::write(&adc, standin.service_account_key()).unwrap();

    let stores = [
        store(
            "key",
            json!({"projectID": PROJECT, "auth": {"secretRef":
            {"secretAccessKeySecretRef": {"name": "gcp-key", "key": "key.json"}}}}),
        ),
        store(
            "wi",
            json!({"projectID": PROJECT, "auth": {"workloadIdentity": {
            "serviceAccountRef": {"name": "gcp-wi"},
            "clusterLocation": "europe-west1", "clusterName": "dev", "clusterProjectID": PROJECT}}}),
        ),
        store(
            "wif",
            json!({"projectID": PROJECT, "auth": {"workloadIdentityFederation": {
            "credConfig": {"name": "gcp-wif", "key": "config.json"},
            "serviceAccountRef": {"name": "gcp-wif"}}}}),
        ),
        store("adc", json!({"projectID": PROJECT})),
    ];
    let store_api = Api::<SecretStore>::namespaced(client.clone(), "default");
    for s in &stores {
        let s: SecretStore = serde_json::from_value(s.clone()).unwrap();
        store_api.create(&PostParams::default(), &s).await.unwrap();
    }
    let mut controller = start_controller_with_env(
        dir.path(),
        &cluster,
        &[],
        &[
            ("GCP_SECRETMANAGER_ENDPOINT", standin.url.clone()),
            ("GCP_STS_ENDPOINT", standin.url.clone()),
            ("GCP_IAMCREDENTIALS_ENDPOINT", standin.url.clone()),
            ("GOOGLE_APPLICATION_CREDENTIALS", adc.display().to_string()),
        ],
    )
    .await;

    const PER_STORE: usize = 3;
    let names = ["key", "wi", "wif", "adc"];
    for s in names {
        for i in 0..PER_STORE {
            apply_es(
                &client,
                es(
                    &format!("{s}-{i}"),
                    json!({
                        "refreshInterval": "1s",
                        "secretStoreRef": {"name": s, "kind": "SecretStore"},
                        "data": [
                            {"secretKey": "user", "remoteRef": {"key": "app-db", "property": "user"}},
                            {"secretKey": "password", "remoteRef": {"key": "app-db", "property": "password"}},
                        ],
                    }),
                ),
            )
            .await;
        }
    }
    for s in names {
        for i in 0..PER_STORE {
            wait_ready(&client, &format!("{s}-{i}"), "True", "SecretSynced").await;
            let data = secret_data(&client, &format!("{s}-{i}")).await.unwrap();
            assert_eq!(data["user"], "admin", "{s}-{i}");
            assert_eq!(data["password"], CANARY, "{s}-{i}");
        }
    }
    wait_for(
        || async {
            let mut ready = 0;
            for s in names {
                let st = store_api.get(s).await.ok().and_then(|s| s.status);
                if st
                    .and_then(|s| s.conditions)
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                {
                    ready += 1;
                }
            }
            ready == names.len()
        },
        "every store Ready",
    )
    .await;

    // Workload Identity: the STS accepted a devcluster-issued token of the right KSA and
    // audience (the stand-in verified its signature against devcluster's JWKS).
    let subjects = standin.exchanged_subjects();
    assert!(
        subjects.contains(&(
            "system:serviceaccount:default:gcp-wi".into(),
            format!("[\"{pool}\"]")
        )),
        "{subjects:?}"
    );
    assert!(
        subjects
            .iter()
            .any(|(sub, aud)| sub == "system:serviceaccount:default:gcp-wif"
                && aud.contains(WIF_AUDIENCE)),
        "{subjects:?}"
    );
    assert!(standin.count("GenerateAccessToken") >= 1, "impersonated");

    // A remote change arrives; tokens (4 s) expire and are refreshed during the run, one
    // exchange per token lifetime per store, not one per reconcile.
    standin.reset_counts();
    standin.put(None, "app-db", br#"{"user":"admin2","password":"p2"}"#);
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    for s in names {
        for i in 0..PER_STORE {
            let data = secret_data(&client, &format!("{s}-{i}")).await.unwrap();
            assert_eq!(data["user"], "admin2", "{s}-{i}");
        }
    }
    let counts = standin.counts();
    let accesses = counts.get("AccessSecretVersion").copied().unwrap_or(0);
    let exchanges = |m: &str| counts.get(m).copied().unwrap_or(0);
    eprintln!("in {window:?}: {counts:?}");
    // Key and ADC stores: JWT exchanges; WI: STS + impersonation; WIF: STS.
    let per_store_max = (window.as_secs_f64() / (4.0 * 0.8)).ceil() as usize + 1;
    assert!(
        exchanges("Token") >= 2,
        "key and adc tokens were refreshed mid-run"
    );
    assert!(exchanges("Token") <= 2 * per_store_max, "{counts:?}");
    assert!(
        exchanges("StsToken") >= 2 && exchanges("StsToken") <= 2 * per_store_max,
        "{counts:?}"
    );
    assert!(
        accesses > 4 * exchanges("Token"),
        "reads outnumber token exchanges: {counts:?}"
    );
    assert_eq!(
        exchanges("Unauthenticated"),
        0,
        "no read used an expired token"
    );

    let (_, metrics) = http_get(&controller.metrics).await;
    for call in [
        "AccessSecretVersion",
        "OAuth2Token",
        "GenerateIDBindToken",
        "GenerateAccessToken",
        "GenerateServiceAccountToken",
    ] {
        let line = format!(
            "externalsecret_provider_api_calls_count{{call=\"{call}\",provider=\"GCP/SecretManager\",status=\"success\"}}"
        );
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }

    // Throttled: a 429 with Retry-After pauses that store's calls and keeps its Secrets as
    // they are (still the previous value) until the wait is over; then the change arrives.
    standin.fail_next(1, 429, Some(3));
    standin.put(None, "app-db", br#"{"user":"admin3","password":"p3"}"#);
    wait_for(
        || some_throttled(&client),
        "a throttled refresh is reported",
    )
    .await;
    for s in names {
        for i in 0..PER_STORE {
            let data = secret_data(&client, &format!("{s}-{i}")).await.unwrap();
            assert!(
                ["admin2", "admin3"].contains(&data["user"].as_str()),
                "{s}-{i}: kept, never emptied"
            );
        }
    }
    wait_for(
        || async {
            let mut all = true;
            for s in names {
                for i in 0..PER_STORE {
                    all &= secret_data(&client, &format!("{s}-{i}"))
                        .await
                        .is_some_and(|d| d["user"] == "admin3");
                }
            }
            all
        },
        "every Secret synced after the pause",
    )
    .await;

    // The GCRAccessToken generator: registry credentials from a fresh token of the same auth.
    let gcr: strongroom_core::crd::generators::GcrAccessToken = serde_json::from_value(json!({
        "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "GCRAccessToken",
        "metadata": {"name": "gcr", "namespace": "default"},
        "spec": {"projectID": PROJECT, "auth": {"secretRef":
            {"secretAccessKeySecretRef": {"name": "gcp-key", "key": "key.json"}}}}
    }))
    .unwrap();
    Api::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &gcr)
        .await
        .unwrap();
    apply_es(
        &client,
        es(
            "registry",
            json!({
                "refreshInterval": "1h",
                "dataFrom": [{"sourceRef": {"generatorRef": {
                    "apiVersion": "generators.external-secrets.io/v1alpha1",
                    "kind": "GCRAccessToken", "name": "gcr"}}}],
            }),
        ),
    )
    .await;
    wait_ready(&client, "registry", "True", "SecretSynced").await;
    let registry = secret_data(&client, "registry").await.unwrap();
    assert_eq!(registry["username"], "oauth2accesstoken");
    assert!(registry["password"].starts_with("ya29."), "an access token");
    assert!(registry["expiry"].parse::<u64>().is_ok());

    assert_no_canary(
        &[CANARY, registry["password"].as_str()],
        &[("log", &controller.process.log_text())],
    );
    controller.process.signal("TERM");
    let status = controller.process.wait_exit(Duration::from_secs(5)).await;
    assert!(status.is_some_and(|s| s.success()));
}

/// Whether any ExternalSecret reports the provider's throttling.
async fn some_throttled(client: &kube::Client) -> bool {
    for s in ["key", "wi", "wif", "adc"] {
        for i in 0..3 {
            if let Some((_, _, m)) = ready(client, &format!("{s}-{i}")).await
                && m.contains("throttled")
            {
                return true;
            }
        }
    }
    false
}
