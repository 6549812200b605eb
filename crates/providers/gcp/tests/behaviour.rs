//! The gcp provider's behaviour against the Secret Manager stand-in (no GCP emulator installs
//! here; the stand-in follows the published REST reference): errors as Google returns them,
//! CRC32C checks, token refresh in the middle of a run, version selection, metadata, find by
//! labels, push ownership, and every auth method (Workload Identity with devcluster tokens).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::json;
use strongroom_core::crd::external_secrets::{
    ConfigMapReference, GcpSmAuth, GcpSmProvider as Spec, GcpWorkloadIdentity,
    GcpWorkloadIdentityFederation, ServiceAccountSelector,
};
use strongroom_provider_api::{
    FindQuery, Provider, ProviderError, PushRef, RemoteRef, SecretsClient, Validation,
};
use strongroom_provider_gcp::{Endpoints, GcpProvider};
use strongroom_testkit::CANARY;
use strongroom_testkit::standins::gcp::{GcpStandIn, PROJECT};

fn text(v: &strongroom_provider_api::SecretBytes) -> String {
    String::from_utf8(v.expose().to_vec()).unwrap()
}

async fn key_client(standin: &GcpStandIn) -> (Env, Box<dyn SecretsClient>) {
    let env = Env::new(Creds::default());
    let client = connect(standin, &store(key_spec(standin, &env)), &env).await;
    (env, client)
}

#[tokio::test]
async fn errors_are_mapped_as_google_returns_them() {
    let standin = GcpStandIn::start();
    standin.put(None, "db", b"v");
    standin.put(None, "locked", b"v");
    standin.deny("locked");
    let (env, client) = key_client(&standin).await;

    let missing = client
        .get_secret(&RemoteRef::key("nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, ProviderError::NotFound { key, .. } if key == "nope"),
        "{missing:?}"
    );
    let missing_version = RemoteRef {
        version: Some("7".into()),
        ..RemoteRef::key("db")
    };
    assert!(
        client
            .get_secret(&missing_version)
            .await
            .unwrap_err()
            .is_not_found()
    );

    let denied = client
        .get_secret(&RemoteRef::key("locked"))
        .await
        .unwrap_err();
    assert!(
        matches!(denied, ProviderError::PermissionDenied(_)),
        "{denied:?}"
    );

    standin.fail_next(1, 429, Some(7));
    let throttled = client.get_secret(&RemoteRef::key("db")).await.unwrap_err();
    assert_eq!(
        throttled.retry_after(),
        Some(Duration::from_secs(7)),
        "{throttled:?}"
    );
    assert_eq!(throttled.category(), "throttled");

    for code in [500, 503] {
        standin.fail_next(1, code, None);
        let e = client.get_secret(&RemoteRef::key("db")).await.unwrap_err();
        assert!(matches!(e, ProviderError::Unavailable(_)), "{code}: {e:?}");
        assert!(e.is_retryable());
    }
    // Failed calls are counted as failures.
    assert!(
        env.calls
            .all()
            .iter()
            .any(|(_, c, ok)| c == "AccessSecretVersion" && !ok)
    );
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("db")).await.unwrap()),
        "v"
    );
}

#[tokio::test]
async fn a_corrupted_payload_is_a_clear_error_without_the_value() {
    let standin = GcpStandIn::start();
    standin.put(None, "db", CANARY.as_bytes());
    standin.corrupt_crc("db");
    let (_env, client) = key_client(&standin).await;
    let e = client.get_secret(&RemoteRef::key("db")).await.unwrap_err();
    assert!(matches!(e, ProviderError::Malformed(_)), "{e:?}");
    assert!(e.to_string().contains("CRC32C"), "{e}");
    assert!(!e.to_string().contains(CANARY) && !format!("{e:?}").contains(CANARY));
}

#[tokio::test]
async fn the_canary_appears_in_no_error_or_debug_text() {
    let standin = GcpStandIn::start();
    standin.put(None, "plain", CANARY.as_bytes());
    standin.put(None, "json", format!(r#"{{"user":"{CANARY}"}}"#).as_bytes());
    standin.deny("locked");
    let (env, client) = key_client(&standin).await;
    let typed = strongroom_provider_gcp::GcpSecretsClient::connect(
        &store(key_spec(&standin, &env)),
        env.provider_env(),
        &endpoints(&standin),
    )
    .await
    .unwrap();
    typed.validate().await.unwrap();
    let mut texts = vec![format!("{typed:?}")];
    for r in [
        RemoteRef {
            property: Some("x".into()),
            ..RemoteRef::key("plain")
        },
        RemoteRef {
            property: Some("nope".into()),
            ..RemoteRef::key("json")
        },
        RemoteRef::key("locked"),
        RemoteRef {
            version: Some("9".into()),
            ..RemoteRef::key("plain")
        },
    ] {
        let e = client.get_secret(&r).await.unwrap_err();
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
    }
    let e = client
        .get_secret_map(&RemoteRef::key("plain"))
        .await
        .unwrap_err();
    texts.push(format!("{e:?}"));
    // The key Secret's private key never shows either.
    let key: serde_json::Value = serde_json::from_str(&standin.service_account_key()).unwrap();
    let private = key["private_key"]
        .as_str()
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    for t in &texts {
        assert!(!t.contains(CANARY), "canary in {t}");
        assert!(!t.contains(&private), "private key in {t}");
        assert!(!t.contains("ya29."), "access token in {t}");
    }
}

#[tokio::test]
async fn tokens_are_reused_then_refreshed_before_expiry_and_after_a_401() {
    let standin = GcpStandIn::start();
    standin.set_token_lifetime(Duration::from_secs(3));
    standin.put(None, "db", b"v");
    let (env, client) = key_client(&standin).await;
    assert_eq!(client.validate().await.unwrap(), Validation::Ready);
    // Many concurrent reads share one token exchange.
    let db = RemoteRef::key("db");
    let reads = (0..20).map(|_| client.get_secret(&db));
    for r in futures::future::join_all(reads).await {
        assert_eq!(text(&r.unwrap()), "v");
    }
    assert_eq!(standin.count("Token"), 1, "{:?}", standin.counts());
    // Past four fifths of the lifetime the token is replaced before Google rejects it.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    client.get_secret(&RemoteRef::key("db")).await.unwrap();
    assert_eq!(standin.count("Token"), 2);
    assert_eq!(
        standin.count("Unauthenticated"),
        0,
        "no read used an expired token"
    );
    // Revoked behind our back: one 401, one new token, the read still succeeds.
    standin.revoke_tokens();
    client.get_secret(&RemoteRef::key("db")).await.unwrap();
    assert_eq!(standin.count("Unauthenticated"), 1);
    assert_eq!(standin.count("Token"), 3);
    assert_eq!(env.calls.count("OAuth2Token"), 3);
}

#[tokio::test]
async fn version_selection_as_upstream() {
    let standin = GcpStandIn::start();
    standin.put(None, "db", b"v1");
    standin.put(None, "db", b"v2");
    standin.put(None, "db", b"v3");
    standin.set_version_state(None, "db", 3, "DISABLED");
    let (_env, client) = key_client(&standin).await;
    let pinned = RemoteRef {
        version: Some("1".into()),
        ..RemoteRef::key("db")
    };
    assert_eq!(text(&client.get_secret(&pinned).await.unwrap()), "v1");
    // LatestOrFail (default): a disabled latest is an error, not a missing key.
    let e = client.get_secret(&RemoteRef::key("db")).await.unwrap_err();
    assert!(
        !e.is_not_found() && e.to_string().contains("DISABLED"),
        "{e:?}"
    );

    let env = Env::new(Creds::default());
    let mut spec = key_spec(&standin, &env);
    spec.secret_version_selection_policy = Some("LatestOrFetch".into());
    let fetch = connect(&standin, &store(spec), &env).await;
    assert_eq!(
        text(&fetch.get_secret(&RemoteRef::key("db")).await.unwrap()),
        "v2"
    );
    standin.set_version_state(None, "db", 2, "DESTROYED");
    assert_eq!(
        text(&fetch.get_secret(&RemoteRef::key("db")).await.unwrap()),
        "v1"
    );
    assert!(env.calls.count("ListSecretVersions") >= 2);
    // A pinned version never falls back.
    let pinned3 = RemoteRef {
        version: Some("3".into()),
        ..RemoteRef::key("db")
    };
    assert!(fetch.get_secret(&pinned3).await.is_err());
}

#[tokio::test]
async fn metadata_and_find_by_labels() {
    let standin = GcpStandIn::start();
    standin.set_max_page_size(1);
    for (id, team) in [("a-1", "x"), ("a-2", "y"), ("b-1", "x")] {
        standin.put(None, id, id.as_bytes());
        standin.set_metadata(None, id, &[("team", team)], &[("owner", "ops")]);
    }
    let (_env, client) = key_client(&standin).await;
    let meta = RemoteRef {
        fetch_metadata: true,
        ..RemoteRef::key("a-1")
    };
    let all: serde_json::Value =
        serde_json::from_slice(client.get_secret(&meta).await.unwrap().expose()).unwrap();
    assert_eq!(
        all,
        json!({"annotations": {"owner": "ops"}, "labels": {"team": "x"}})
    );
    let label = RemoteRef {
        property: Some("labels.team".into()),
        ..meta.clone()
    };
    assert_eq!(text(&client.get_secret(&label).await.unwrap()), "x");

    let by_label = FindQuery {
        tags: [("team".to_string(), "x".to_string())].into(),
        ..FindQuery::default()
    };
    let found = client.get_all(&by_label).await.unwrap();
    assert_eq!(found.keys().cloned().collect::<Vec<_>>(), ["a-1", "b-1"]);
    let both = FindQuery {
        name_regexp: Some("^a-".into()),
        ..by_label
    };
    assert_eq!(
        client
            .get_all(&both)
            .await
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        ["a-1"]
    );
    let by_path = FindQuery {
        path: Some("b-".into()),
        name_regexp: Some(".*".into()),
        ..FindQuery::default()
    };
    assert_eq!(
        client
            .get_all(&by_path)
            .await
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        ["b-1"]
    );
}

#[tokio::test]
async fn push_owns_only_managed_secrets_and_adds_versions_only_on_change() {
    let standin = GcpStandIn::start();
    standin.put(None, "foreign", b"theirs");
    let (_env, client) = key_client(&standin).await;
    let target = PushRef {
        remote_key: "pushed".into(),
        ..PushRef::default()
    };
    client.push(&"one".into(), &target).await.unwrap();
    client.push(&"one".into(), &target).await.unwrap();
    assert_eq!(
        standin.versions(None, "pushed").unwrap().len(),
        1,
        "unchanged payload adds no version"
    );
    assert_eq!(
        standin
            .labels(None, "pushed")
            .unwrap()
            .get("managed-by")
            .map(String::as_str),
        Some("external-secrets")
    );
    client.push(&"two".into(), &target).await.unwrap();
    assert_eq!(standin.versions(None, "pushed").unwrap().len(), 2);

    // Property pushes merge into the JSON value.
    let prop = |p: &str| PushRef {
        remote_key: "json".into(),
        property: Some(p.into()),
        ..PushRef::default()
    };
    client.push(&"u".into(), &prop("user")).await.unwrap();
    client.push(&"5432".into(), &prop("port")).await.unwrap();
    client.push(&"5432".into(), &prop("port")).await.unwrap();
    let versions = standin.versions(None, "json").unwrap();
    assert_eq!(versions.len(), 2);
    let last: serde_json::Value = serde_json::from_slice(versions.last().unwrap()).unwrap();
    assert_eq!(last, json!({"user": "u", "port": "5432"}));

    // Labels from PushSecret metadata.
    let with_meta = PushRef {
        remote_key: "labelled".into(),
        metadata: Some(
            json!({"apiVersion": "kubernetes.external-secrets.io/v1alpha1",
            "kind": "PushSecretMetadata", "spec": {"labels": {"env": "prod"}}}),
        ),
        ..PushRef::default()
    };
    client.push(&"v".into(), &with_meta).await.unwrap();
    let labels = standin.labels(None, "labelled").unwrap();
    assert_eq!(labels.get("env").map(String::as_str), Some("prod"));
    assert_eq!(
        labels.get("managed-by").map(String::as_str),
        Some("external-secrets")
    );

    // Unmanaged secrets are refused and never deleted.
    let foreign = PushRef {
        remote_key: "foreign".into(),
        ..PushRef::default()
    };
    let e = client.push(&"mine".into(), &foreign).await.unwrap_err();
    assert!(e.to_string().contains("not managed"), "{e}");
    client.delete(&foreign).await.unwrap();
    assert_eq!(
        standin.versions(None, "foreign").unwrap(),
        vec![b"theirs".to_vec()]
    );
    client.delete(&target).await.unwrap();
    assert!(standin.versions(None, "pushed").is_none());
}

async fn cluster_with_account(
    standin: &GcpStandIn,
) -> (strongroom_testkit::DevCluster, kube::Client) {
    let (cluster, kube) = strongroom_testkit::start_cluster(&[], &["team"]).await;
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "reader"}})).unwrap();
    Api::<ServiceAccount>::namespaced(kube.clone(), "team")
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    standin.trust_cluster(&kube).await;
    (cluster, kube)
}

fn wi_spec() -> Spec {
    Spec {
        project_id: Some(PROJECT.into()),
        auth: Some(GcpSmAuth {
            workload_identity: Some(GcpWorkloadIdentity {
                service_account_ref: ServiceAccountSelector {
                    name: "reader".into(),
                    namespace: None,
                    audiences: None,
                },
                cluster_location: Some("europe-west1".into()),
                cluster_name: Some("prod".into()),
                cluster_project_id: Some(PROJECT.into()),
            }),
            ..GcpSmAuth::default()
        }),
        ..Spec::default()
    }
}

#[tokio::test]
async fn workload_identity_exchanges_a_devcluster_token_and_impersonates() {
    let standin = GcpStandIn::start();
    standin.put(None, "db", b"v");
    let (_cluster, kube) = cluster_with_account(&standin).await;
    let pool = format!("{PROJECT}.svc.id.goog");
    standin.accept_sts_audience(
        &format!("identitynamespace:{pool}:https://container.googleapis.com/v1/projects/{PROJECT}/locations/europe-west1/clusters/prod"),
        &pool,
    );
    let creds = Creds {
        kube: Some(kube),
        ..Creds::default()
    };
    creds.annotations.lock().unwrap().insert(
        ("team".into(), "reader".into()),
        [(
            "iam.gke.io/gcp-service-account".to_string(),
            "eso@strongroom-test.iam.gserviceaccount.com".to_string(),
        )]
        .into(),
    );
    let env = Env::new(creds);
    let client = connect(&standin, &store(wi_spec()), &env).await;
    for _ in 0..3 {
        assert_eq!(
            text(&client.get_secret(&RemoteRef::key("db")).await.unwrap()),
            "v"
        );
    }
    assert_eq!(standin.count("StsToken"), 1);
    assert_eq!(standin.count("GenerateAccessToken"), 1);
    assert_eq!(
        standin.exchanged_subjects(),
        vec![(
            "system:serviceaccount:team:reader".to_string(),
            format!("[\"{pool}\"]")
        )]
    );
    assert_eq!(
        env.creds.token_requests.lock().unwrap()[0].2,
        vec![pool.clone()]
    );
    for call in [
        "GenerateServiceAccountToken",
        "GenerateIDBindToken",
        "GenerateAccessToken",
    ] {
        assert_eq!(env.calls.count(call), 1, "{call}");
    }

    // Without the annotation the federated token is used directly; a wrong audience fails.
    let env = Env::new(Creds {
        kube: env.creds.kube.clone(),
        ..Creds::default()
    });
    let direct = connect(&standin, &store(wi_spec()), &env).await;
    direct.get_secret(&RemoteRef::key("db")).await.unwrap();
    assert_eq!(standin.count("GenerateAccessToken"), 1);
    // Cluster name, location and project left out: read from the metadata server.
    for (path, value) in [
        ("project/project-id", PROJECT),
        ("instance/attributes/cluster-location", "europe-west1"),
        ("instance/attributes/cluster-name", "prod"),
    ] {
        standin.set_metadata_value(path, value);
    }
    let mut bare = wi_spec();
    bare.project_id = None;
    let wi = bare
        .auth
        .as_mut()
        .unwrap()
        .workload_identity
        .as_mut()
        .unwrap();
    (wi.cluster_location, wi.cluster_name, wi.cluster_project_id) = (None, None, None);
    let from_metadata = connect(&standin, &store(bare), &env).await;
    from_metadata
        .get_secret(&RemoteRef::key("db"))
        .await
        .unwrap();
    assert_eq!(standin.count("MetadataValue"), 4, "{:?}", standin.counts());

    let mut wrong = wi_spec();
    wrong
        .auth
        .as_mut()
        .unwrap()
        .workload_identity
        .as_mut()
        .unwrap()
        .cluster_name = Some("other".into());
    let bad = connect(&standin, &store(wrong), &env).await;
    let e = bad.get_secret(&RemoteRef::key("db")).await.unwrap_err();
    assert!(matches!(e, ProviderError::Authentication(_)), "{e:?}");
}

#[tokio::test]
async fn workload_identity_federation_with_a_credential_config() {
    let standin = GcpStandIn::start();
    standin.put(None, "db", b"v");
    let (_cluster, kube) = cluster_with_account(&standin).await;
    let audience = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/k8s/providers/dev";
    standin.accept_sts_audience(audience, audience);
    let creds = Creds {
        kube: Some(kube),
        ..Creds::default()
    };
    let config = json!({
        "type": "external_account",
        "audience": audience,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/v1/token", standin.url),
        "service_account_impersonation_url": format!("{}/v1/projects/-/serviceAccounts/eso@strongroom-test.iam.gserviceaccount.com:generateAccessToken", standin.url),
        "credential_source": {"file": "/var/run/service-account/token", "format": {"type": "text"}}
    });
    creds.put("team", "wif", "config.json", &config.to_string());
    let env = Env::new(creds);
    let spec = Spec {
        project_id: Some(PROJECT.into()),
        auth: Some(GcpSmAuth {
            workload_identity_federation: Some(GcpWorkloadIdentityFederation {
                cred_config: Some(ConfigMapReference {
                    name: "wif".into(),
                    namespace: None,
                    key: "config.json".into(),
                }),
                service_account_ref: Some(ServiceAccountSelector {
                    name: "reader".into(),
                    namespace: None,
                    audiences: None,
                }),
                ..GcpWorkloadIdentityFederation::default()
            }),
            ..GcpSmAuth::default()
        }),
        ..Spec::default()
    };
    let client = connect(&standin, &store(spec.clone()), &env).await;
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("db")).await.unwrap()),
        "v"
    );
    assert_eq!(standin.count("StsToken"), 1);
    assert_eq!(standin.count("GenerateAccessToken"), 1);

    // gcpServiceAccountEmail impersonates without an impersonation URL in the configuration.
    let mut plain = config.clone();
    plain
        .as_object_mut()
        .unwrap()
        .remove("service_account_impersonation_url");
    env.creds
        .put("team", "wif", "config.json", &plain.to_string());
    let mut by_email = spec;
    let wif = by_email
        .auth
        .as_mut()
        .unwrap()
        .workload_identity_federation
        .as_mut()
        .unwrap();
    wif.gcp_service_account_email = Some("eso@strongroom-test.iam.gserviceaccount.com".into());
    let client = connect(&standin, &store(by_email), &env).await;
    client.get_secret(&RemoteRef::key("db")).await.unwrap();
    assert_eq!(standin.count("StsToken"), 2);
    assert_eq!(standin.count("GenerateAccessToken"), 2);
}

#[tokio::test]
async fn application_default_credentials_from_a_file_or_the_metadata_server() {
    let standin = GcpStandIn::start();
    standin.put(None, "db", b"v");
    let dir = std::env::temp_dir().join(format!("gcp-adc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("key.json");
    std::fs::write(&file, standin.service_account_key()).unwrap();
    let endpoints = |adc: Option<std::path::PathBuf>| Endpoints {
        secret_manager: Some(standin.url.clone()),
        metadata_host: Some(standin.url.trim_start_matches("http://").to_string()),
        adc_file: adc,
        ..Endpoints::default()
    };
    // No auth block and no projectID: the key file names the project.
    let env = Env::new(Creds::default());
    let provider = GcpProvider::with_endpoints(endpoints(Some(file)));
    let client = provider
        .connect(&store(Spec::default()), env.provider_env())
        .await
        .unwrap();
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("db")).await.unwrap()),
        "v"
    );
    assert_eq!(standin.count("Token"), 1);

    // The metadata server: the token, and the project the store leaves out.
    let provider = GcpProvider::with_endpoints(endpoints(None));
    let Err(unknown) = provider
        .connect(&store(Spec::default()), env.provider_env())
        .await
    else {
        panic!("no project anywhere must fail");
    };
    assert!(
        unknown.to_string().contains("projectID is required"),
        "{unknown}"
    );
    standin.set_metadata_value("project/project-id", PROJECT);
    let client = provider
        .connect(&store(Spec::default()), env.provider_env())
        .await
        .unwrap();
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("db")).await.unwrap()),
        "v"
    );
    assert_eq!(standin.count("MetadataToken"), 1);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn gcr_access_token_generator_returns_registry_credentials() {
    let standin = GcpStandIn::start();
    standin.set_token_lifetime(Duration::from_secs(600));
    let env = Env::new(Creds::default());
    env.creds.put(
        "team",
        "gcp-key",
        "key.json",
        &standin.service_account_key(),
    );
    let spec: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_value(json!({
        "projectID": PROJECT,
        "auth": {"secretRef": {"secretAccessKeySecretRef": {"name": "gcp-key", "key": "key.json"}}}
    }))
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = provider(&standin)
        .gcr_access_token(&spec, "team", env.provider_env())
        .await
        .unwrap();
    assert_eq!(text(&out["username"]), "oauth2accesstoken");
    assert!(text(&out["password"]).starts_with("ya29."));
    let expiry: u64 = text(&out["expiry"]).parse().unwrap();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "{expiry} vs {now}"
    );
    assert_eq!(standin.count("Token"), 1);
    // A missing key Secret is an authentication error naming it.
    let e = provider(&standin)
        .gcr_access_token(&spec, "other", env.provider_env())
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Authentication(_)), "{e:?}");
}
