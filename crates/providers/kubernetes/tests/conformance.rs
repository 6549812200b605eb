//! The kubernetes provider against devcluster (our in-memory API server, over HTTPS): the
//! provider-api conformance suite through every authentication method, upstream's read and
//! push shapes, error categories, and no secret value in any error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::json;
use strongroom_core::crd::external_secrets::{
    CaProvider, CaProviderType, KubernetesAuth, KubernetesProvider as Spec, KubernetesServer,
    KubernetesTokenAuth, ServiceAccountSelector, StoreKind,
};
use strongroom_provider_api::conformance::{Fixture, run};
use strongroom_provider_api::{FindQuery, Provider, ProviderError, PushRef, RemoteRef, Validation};
use strongroom_provider_kubernetes::KubernetesProvider;
use strongroom_testkit::{CANARY, assert_no_canary, start_cluster};

fn fixture() -> Fixture {
    Fixture {
        plain_key: "app-plain".into(),
        // Without a property a Secret reads as the JSON object of its data (upstream).
        plain_value: r#"{"value":"plain-value"}"#.into(),
        json_key: "app-db".into(),
        json_user: "admin".into(),
        missing_key: "nope".into(),
        find_regexp: Some("^app-".into()),
        push_key: Some("pushed".into()),
    }
}

async fn conforms(
    store: &strongroom_provider_api::StoreContext,
    env: strongroom_provider_api::ProviderEnv,
) {
    KubernetesProvider.validate_store(store).unwrap();
    let client = connect(store, env).await;
    let failures = run(client.as_ref(), &fixture()).await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn conforms_with_bearer_token() {
    let (cluster, kube) = start_cluster(&[], &["remote", "creds"]).await;
    seed(&kube).await;
    put_secret(
        &kube,
        "creds",
        "k8s-token",
        &[("token", cluster.token().as_bytes())],
    )
    .await;
    let (calls, env) = env(&kube);
    conforms(&token_store(&cluster, "k8s-token"), env).await;
    assert_eq!(calls.providers(), ["Kubernetes".to_string()].into());
    let seen = calls.names();
    for call in [
        "CreateSelfSubjectRulesReview",
        "GetSecret",
        "ListSecrets",
        "CreateSecret",
        "UpdateSecret",
        "DeleteSecret",
    ] {
        assert!(seen.contains(call), "{call} not counted: {seen:?}");
    }
}

#[tokio::test]
async fn conforms_with_service_account_and_ca_from_config_map() {
    let (cluster, kube) = start_cluster(&[], &["remote", "creds"]).await;
    seed(&kube).await;
    put_config_map(&kube, "creds", "kube-ca", "ca.crt", &ca_pem(&cluster)).await;
    put_service_account(&kube, "creds", "reader").await;
    // devcluster runs without RBAC enforcement here, but access reviews (store validation)
    // still answer from the RBAC rules: grant what the store needs.
    let verbs = ["get", "list", "create", "update", "delete"];
    grant_secrets(&kube, "remote", "creds", "reader", &verbs).await;
    let spec = Spec {
        server: Some(KubernetesServer {
            url: Some(cluster.url().to_string()),
            ca_provider: Some(CaProvider {
                type_: CaProviderType::ConfigMap,
                name: "kube-ca".into(),
                key: Some("ca.crt".into()),
                namespace: None,
            }),
            ..KubernetesServer::default()
        }),
        auth: Some(KubernetesAuth {
            service_account: Some(ServiceAccountSelector {
                name: "reader".into(),
                namespace: None,
                audiences: Some(vec!["https://kubernetes.default.svc".into()]),
            }),
            ..KubernetesAuth::default()
        }),
        remote_namespace: Some("remote".into()),
        ..Spec::default()
    };
    let (_, env) = env(&kube);
    let store = secret_store(spec);
    let client = connect(&store, env.clone()).await;
    assert!(client.valid_until().is_some(), "minted tokens expire");
    conforms(&store, env).await;
}

#[tokio::test]
async fn conforms_with_auth_ref_kubeconfig() {
    let (cluster, kube) = start_cluster(&[], &["remote", "creds"]).await;
    seed(&kube).await;
    put_secret(
        &kube,
        "creds",
        "kubeconfig",
        &[("config", cluster.kubeconfig().as_bytes())],
    )
    .await;
    let spec = Spec {
        auth_ref: Some(selector("kubeconfig", "config", None)),
        remote_namespace: Some("remote".into()),
        ..Spec::default()
    };
    let (_, env) = env(&kube);
    conforms(&secret_store(spec), env).await;
}

#[tokio::test]
async fn conforms_with_client_certificate() {
    let (cluster, kube) = start_cluster(&[], &["remote", "creds"]).await;
    seed(&kube).await;
    // devcluster authenticates bearer tokens only: an mTLS stand-in in front of it checks the
    // client certificate and forwards as the admin.
    let gate = MtlsGate::start(&cluster).await;
    put_secret(
        &kube,
        "creds",
        "client",
        &[
            ("tls.crt", gate.client_cert.as_bytes()),
            ("tls.key", gate.client_key.as_bytes()),
        ],
    )
    .await;
    let spec = |key_name: &str| Spec {
        server: Some(KubernetesServer {
            url: Some(gate.url.clone()),
            ca_bundle: Some(b64(gate.ca_pem.as_bytes())),
            ..KubernetesServer::default()
        }),
        auth: Some(KubernetesAuth {
            cert: Some(strongroom_core::crd::external_secrets::KubernetesCertAuth {
                client_cert: Some(selector("client", "tls.crt", None)),
                client_key: Some(selector(key_name, "tls.key", None)),
            }),
            ..KubernetesAuth::default()
        }),
        remote_namespace: Some("remote".into()),
        ..Spec::default()
    };
    let (_, env) = env(&kube);
    conforms(&secret_store(spec("client")), env.clone()).await;
    assert!(gate.forwarded() > 0);

    // Without a client certificate the gate refuses the handshake.
    put_secret(&kube, "creds", "anon", &[("token", b"x")]).await;
    let mut anonymous = token_store(&cluster, "anon");
    if let Some(k) = anonymous.provider.kubernetes.as_mut() {
        k.server.as_mut().unwrap().url = Some(gate.url.clone());
        k.server.as_mut().unwrap().ca_bundle = Some(b64(gate.ca_pem.as_bytes()));
    }
    let client = connect(&anonymous, env).await;
    let err = client
        .get_secret(&RemoteRef::key("app-plain"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
}

#[tokio::test]
async fn reads_finds_and_pushes_like_upstream() {
    let (cluster, kube) = start_cluster(&[], &["remote", "creds"]).await;
    seed(&kube).await;
    put_secret(
        &kube,
        "creds",
        "k8s-token",
        &[("token", cluster.token().as_bytes())],
    )
    .await;
    put_secret(
        &kube,
        "remote",
        "bin",
        &[("raw", &[0u8, 159, 146, 150, 255]), ("tls.crt", b"CERT")],
    )
    .await;
    label(
        &kube,
        "remote",
        "app-db",
        &[("team", "a")],
        &[("note", "{\"x\":{\"y\":\"z\"}}")],
    )
    .await;
    label(&kube, "remote", "bin", &[("team", "a")], &[]).await;
    let (calls, env) = env(&kube);
    let client = connect(&token_store(&cluster, "k8s-token"), env).await;

    // Binary-safe maps and exact keys with dots.
    let map = client.get_secret_map(&RemoteRef::key("bin")).await.unwrap();
    assert_eq!(map["raw"].expose(), &[0u8, 159, 146, 150, 255]);
    let crt = RemoteRef {
        property: Some("tls.crt".into()),
        ..RemoteRef::key("bin")
    };
    assert_eq!(client.get_secret(&crt).await.unwrap().expose(), b"CERT");
    // `<key>.<gjson path>` into a JSON value of a key.
    put_secret(
        &kube,
        "remote",
        "cfg",
        &[("config", br#"{"db":{"port":5432}}"#)],
    )
    .await;
    let path = RemoteRef {
        property: Some("config.db.port".into()),
        ..RemoteRef::key("cfg")
    };
    assert_eq!(client.get_secret(&path).await.unwrap().expose(), b"5432");
    let extract = RemoteRef {
        property: Some("config".into()),
        ..RemoteRef::key("cfg")
    };
    let m = client.get_secret_map(&extract).await.unwrap();
    assert_eq!(m["db"].expose(), br#"{"port":5432}"#);

    // metadataPolicy: Fetch.
    let meta = RemoteRef {
        fetch_metadata: true,
        ..RemoteRef::key("app-db")
    };
    assert_eq!(
        client.get_secret(&meta).await.unwrap().expose(),
        br#"{"annotations":{"note":"{\"x\":{\"y\":\"z\"}}"},"labels":{"team":"a"}}"#
    );
    let one = RemoteRef {
        property: Some("annotations.note.x.y".into()),
        ..meta.clone()
    };
    assert_eq!(client.get_secret(&one).await.unwrap().expose(), b"z");
    let labels = RemoteRef {
        property: Some("labels".into()),
        ..meta.clone()
    };
    assert_eq!(
        client.get_secret_map(&labels).await.unwrap()["team"].expose(),
        b"a"
    );
    let m = client.get_secret_map(&meta).await.unwrap();
    assert_eq!(m["labels"].expose(), br#"{"team":"a"}"#);

    // find by tags (server-side label selector), and by tags and name together.
    let by_tags = FindQuery {
        tags: BTreeMap::from([("team".into(), "a".into())]),
        ..FindQuery::default()
    };
    let found = client.get_all(&by_tags).await.unwrap();
    assert_eq!(found.keys().collect::<Vec<_>>(), ["app-db", "bin"]);
    assert_eq!(
        found["app-db"].expose(),
        br#"{"port":"5432","user":"admin"}"#
    );
    let both = FindQuery {
        name_regexp: Some("^app".into()),
        ..by_tags.clone()
    };
    assert_eq!(client.get_all(&both).await.unwrap().len(), 1);

    // push into a property with metadata, keeping the other keys and labels.
    let metadata = json!({
        "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
        "kind": "PushSecretMetadata",
        "spec": {"labels": {"pushed-by": "test"}, "annotations": {"why": "demo"}},
    });
    let target = PushRef {
        remote_key: "bin".into(),
        property: Some("extra".into()),
        metadata: Some(metadata.clone()),
    };
    client.push(&"v1".into(), &target).await.unwrap();
    let updates = calls.count("UpdateSecret");
    client.push(&"v1".into(), &target).await.unwrap();
    assert_eq!(
        calls.count("UpdateSecret"),
        updates,
        "an unchanged push writes nothing"
    );
    let s = Api::<Secret>::namespaced(kube.clone(), "remote")
        .get("bin")
        .await
        .unwrap();
    let labels = s.metadata.labels.clone().unwrap();
    assert_eq!(
        (labels["team"].as_str(), labels["pushed-by"].as_str()),
        ("a", "test")
    );
    assert_eq!(s.metadata.annotations.unwrap()["why"], "demo");
    let data = s.data.unwrap();
    assert_eq!(data["extra"].0, b"v1");
    assert_eq!(data["raw"].0, [0u8, 159, 146, 150, 255]);
    assert!(client.exists(&target).await.unwrap());
    assert!(
        !client
            .exists(&PushRef {
                property: Some("nokey".into()),
                ..target.clone()
            })
            .await
            .unwrap()
    );

    // delete of a property removes the key only; of the last key the Secret.
    client.delete(&target).await.unwrap();
    let data = Api::<Secret>::namespaced(kube.clone(), "remote")
        .get("bin")
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(!data.contains_key("extra") && data.contains_key("raw"));
    let lone = PushRef {
        remote_key: "lone".into(),
        property: Some("k".into()),
        metadata: None,
    };
    client.push(&"x".into(), &lone).await.unwrap();
    let created = Api::<Secret>::namespaced(kube.clone(), "remote")
        .get("lone")
        .await
        .unwrap();
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    client.delete(&lone).await.unwrap();
    assert!(
        Api::<Secret>::namespaced(kube.clone(), "remote")
            .get_opt("lone")
            .await
            .unwrap()
            .is_none()
    );

    // Without a property the push writes key `value`, and delete removes only that key.
    let plain = PushRef {
        remote_key: "bin".into(),
        ..PushRef::default()
    };
    client.push(&"whole".into(), &plain).await.unwrap();
    client.delete(&plain).await.unwrap();
    let data = Api::<Secret>::namespaced(kube.clone(), "remote")
        .get("bin")
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(!data.contains_key("value") && data.contains_key("raw"));

    // remoteNamespace override is for ClusterSecretStores only.
    let mut over = metadata.clone();
    over["spec"]["remoteNamespace"] = json!("creds");
    let elsewhere = PushRef {
        metadata: Some(over),
        ..target.clone()
    };
    assert!(matches!(
        client.push(&"v".into(), &elsewhere).await,
        Err(ProviderError::InvalidConfig(_))
    ));
}

#[tokio::test]
async fn cluster_store_referent_auth_and_namespace_override() {
    let (cluster, kube) = start_cluster(&[], &["remote", "creds", "other"]).await;
    seed(&kube).await;
    put_service_account(&kube, "creds", "reader").await;
    let spec = Spec {
        server: Some(KubernetesServer {
            url: Some(cluster.url().to_string()),
            ca_bundle: Some(b64(ca_pem(&cluster).as_bytes())),
            ..KubernetesServer::default()
        }),
        auth: Some(KubernetesAuth {
            service_account: Some(ServiceAccountSelector {
                name: "reader".into(),
                namespace: None,
                audiences: None,
            }),
            ..KubernetesAuth::default()
        }),
        remote_namespace: Some("remote".into()),
        ..Spec::default()
    };
    let mut store = secret_store(spec);
    store.kind = StoreKind::ClusterSecretStore;
    store.namespace = None;
    KubernetesProvider.validate_store(&store).unwrap();
    let (_, env) = env(&kube);
    // Store validation: no reader, so Unknown, and reads say why they cannot work.
    let unknown = connect(&store, env.clone()).await;
    assert_eq!(unknown.validate().await.unwrap(), Validation::Unknown);
    let err = unknown
        .get_secret(&RemoteRef::key("app-plain"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidConfig(m) if m.contains("referent")),
        "{err}"
    );
    // Read from an ExternalSecret in `creds`: the ServiceAccount is found there.
    store.referent_namespace = Some("creds".into());
    let client = connect(&store, env).await;
    assert_eq!(client.validate().await.unwrap(), Validation::Unknown);
    assert_eq!(
        client
            .get_secret(&RemoteRef {
                property: Some("value".into()),
                ..RemoteRef::key("app-plain")
            })
            .await
            .unwrap()
            .expose(),
        b"plain-value"
    );
    let target = PushRef {
        remote_key: "moved".into(),
        property: Some("k".into()),
        metadata: Some(json!({
            "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
            "kind": "PushSecretMetadata",
            "spec": {"remoteNamespace": "other"},
        })),
    };
    client.push(&"v".into(), &target).await.unwrap();
    assert!(
        Api::<Secret>::namespaced(kube.clone(), "other")
            .get_opt("moved")
            .await
            .unwrap()
            .is_some()
    );
    assert!(client.exists(&target).await.unwrap());
    client.delete(&target).await.unwrap();
    assert!(
        Api::<Secret>::namespaced(kube.clone(), "other")
            .get_opt("moved")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn errors_are_categorised() {
    let (cluster, kube) = start_cluster(&[], &["remote", "creds"]).await;
    seed(&kube).await;
    put_secret(&kube, "creds", "wrong", &[("token", b"not-a-token")]).await;
    put_secret(
        &kube,
        "creds",
        "k8s-token",
        &[("token", cluster.token().as_bytes())],
    )
    .await;
    let (_, env) = env(&kube);

    let wrong = connect(&token_store(&cluster, "wrong"), env.clone()).await;
    let err = wrong
        .get_secret(&RemoteRef::key("app-plain"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Authentication(_)), "{err}");
    assert!(matches!(
        wrong.validate().await,
        Err(ProviderError::Authentication(_))
    ));

    // A missing credential Secret comes from the resolver as Authentication.
    let err = KubernetesProvider
        .connect(&token_store(&cluster, "absent"), env.clone())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ProviderError::Authentication(_)), "{err}");

    // Nothing listens.
    let mut closed = token_store(&cluster, "k8s-token");
    closed
        .provider
        .kubernetes
        .as_mut()
        .unwrap()
        .server
        .as_mut()
        .unwrap()
        .url = Some(format!(
        "https://127.0.0.1:{}",
        strongroom_testkit::free_port()
    ));
    let down = connect(&closed, env.clone()).await;
    let err = down
        .get_secret(&RemoteRef::key("app-plain"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");

    // The server stops while a client is connected.
    let client = connect(&token_store(&cluster, "k8s-token"), env).await;
    client
        .get_secret(&RemoteRef::key("app-plain"))
        .await
        .unwrap();
    cluster.shutdown();
    drop(client);
    let client2 = {
        // A fresh client (no pooled connection) sees the closed port.
        let (_, env) = common::env(&kube);
        KubernetesProvider
            .connect(&token_store(&cluster, "k8s-token"), env)
            .await
    };
    // The resolver itself needs the cluster: either the connect or the read is Unavailable.
    let err = match client2 {
        Err(e) => e,
        Ok(c) => c
            .get_secret(&RemoteRef::key("app-plain"))
            .await
            .unwrap_err(),
    };
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn rbac_denials_are_permission_denied() {
    let (cluster, kube) = start_rbac_cluster(&["remote", "locked", "creds"]).await;
    seed(&kube).await;
    put_secret(&kube, "locked", "hidden", &[("k", b"v")]).await;
    put_service_account(&kube, "creds", "reader").await;
    grant_secret_reads(&kube, "remote", "creds", "reader").await;
    let (_, env) = env(&kube);
    let spec = |ns: &str| Spec {
        server: Some(KubernetesServer {
            url: Some(cluster.url().to_string()),
            ca_bundle: Some(b64(ca_pem(&cluster).as_bytes())),
            ..KubernetesServer::default()
        }),
        auth: Some(KubernetesAuth {
            service_account: Some(ServiceAccountSelector {
                name: "reader".into(),
                namespace: None,
                audiences: None,
            }),
            ..KubernetesAuth::default()
        }),
        remote_namespace: Some(ns.into()),
        ..Spec::default()
    };
    let allowed = connect(&secret_store(spec("remote")), env.clone()).await;
    assert_eq!(allowed.validate().await.unwrap(), Validation::Ready);
    let failures = run(
        allowed.as_ref(),
        &Fixture {
            push_key: None,
            ..fixture()
        },
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
    let denied = connect(&secret_store(spec("locked")), env).await;
    let err = denied
        .get_secret(&RemoteRef::key("hidden"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::PermissionDenied(m) if m.contains("forbidden")),
        "{err}"
    );
    let err = denied.validate().await.unwrap_err();
    assert!(matches!(err, ProviderError::PermissionDenied(_)), "{err}");
    let err = denied.get_all(&FindQuery::default()).await.unwrap_err();
    assert!(matches!(err, ProviderError::PermissionDenied(_)), "{err}");
    let err = allowed
        .push(
            &"x".into(),
            &PushRef {
                remote_key: "new".into(),
                ..PushRef::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::PermissionDenied(_)), "{err}");
}

#[tokio::test]
async fn no_secret_value_in_errors() {
    let (cluster, kube) = start_cluster(&[], &["remote", "creds"]).await;
    seed(&kube).await;
    put_secret(
        &kube,
        "remote",
        "canary",
        &[
            ("password", CANARY.as_bytes()),
            ("json", format!("{{\"a\":\"{CANARY}\"}}").as_bytes()),
        ],
    )
    .await;
    put_secret(
        &kube,
        "creds",
        "canary-token",
        &[("token", CANARY.as_bytes())],
    )
    .await;
    put_secret(
        &kube,
        "creds",
        "k8s-token",
        &[("token", cluster.token().as_bytes())],
    )
    .await;
    let bad_kubeconfig = cluster
        .kubeconfig()
        .replace(cluster.token(), CANARY)
        .replace(
            "current-context: devcluster",
            &format!("current-context: devcluster\nbogus: [{CANARY}"),
        );
    put_secret(
        &kube,
        "creds",
        "bad-kubeconfig",
        &[("config", bad_kubeconfig.as_bytes())],
    )
    .await;
    put_secret(
        &kube,
        "creds",
        "canary-kubeconfig",
        &[(
            "config",
            cluster
                .kubeconfig()
                .replace(cluster.token(), CANARY)
                .as_bytes(),
        )],
    )
    .await;
    put_secret(&kube, "creds", "canary-ca", &[("ca", CANARY.as_bytes())]).await;
    let (_, env) = env(&kube);
    let mut errors: Vec<String> = Vec::new();
    let mut record = |e: ProviderError| {
        errors.push(e.to_string());
        errors.push(format!("{e:?}"));
    };

    let client = connect(&token_store(&cluster, "k8s-token"), env.clone()).await;
    for property in ["nope", "json.b", "password.x"] {
        record(
            client
                .get_secret(&RemoteRef {
                    property: Some(property.into()),
                    ..RemoteRef::key("canary")
                })
                .await
                .unwrap_err(),
        );
    }
    record(
        client
            .get_secret_map(&RemoteRef {
                property: Some("password".into()),
                ..RemoteRef::key("canary")
            })
            .await
            .unwrap_err(),
    );
    let bad_meta = json!({"apiVersion": "kubernetes.external-secrets.io/v1alpha1", "kind": "PushSecretMetadata", "spec": {"labels": {"x": CANARY}, "bogus": CANARY}});
    record(
        client
            .push(
                &CANARY.into(),
                &PushRef {
                    remote_key: "canary".into(),
                    property: Some("p".into()),
                    metadata: Some(bad_meta),
                },
            )
            .await
            .unwrap_err(),
    );
    let bad_label = json!({"apiVersion": "kubernetes.external-secrets.io/v1alpha1", "kind": "PushSecretMetadata", "spec": {"labels": {"x": "not a valid label value!"}}});
    record(
        client
            .push(
                &CANARY.into(),
                &PushRef {
                    remote_key: "canary".into(),
                    property: Some("p".into()),
                    metadata: Some(bad_label),
                },
            )
            .await
            .unwrap_err(),
    );
    // devcluster does not check data key names; a real server answers 422 here.
    if let Err(e) = client
        .push(
            &CANARY.into(),
            &PushRef {
                remote_key: "canary".into(),
                property: Some("bad key!".into()),
                metadata: None,
            },
        )
        .await
    {
        record(e);
    }

    let wrong = connect(&token_store(&cluster, "canary-token"), env.clone()).await;
    record(
        wrong
            .get_secret(&RemoteRef::key("canary"))
            .await
            .unwrap_err(),
    );
    record(wrong.validate().await.unwrap_err());
    for name in ["bad-kubeconfig", "canary-kubeconfig"] {
        let spec = Spec {
            auth_ref: Some(selector(name, "config", None)),
            remote_namespace: Some("remote".into()),
            ..Spec::default()
        };
        match KubernetesProvider
            .connect(&secret_store(spec), env.clone())
            .await
        {
            Err(e) => record(e),
            Ok(c) => record(c.get_secret(&RemoteRef::key("canary")).await.unwrap_err()),
        }
    }
    let mut bad_ca = token_store(&cluster, "k8s-token");
    bad_ca.provider.kubernetes.as_mut().unwrap().server = Some(KubernetesServer {
        url: Some(cluster.url().to_string()),
        ca_provider: Some(CaProvider {
            type_: CaProviderType::Secret,
            name: "canary-ca".into(),
            key: Some("ca".into()),
            namespace: None,
        }),
        ..KubernetesServer::default()
    });
    record(
        KubernetesProvider
            .connect(&bad_ca, env.clone())
            .await
            .err()
            .unwrap(),
    );
    assert!(errors.len() >= 20, "{errors:#?}");
    let texts: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| ("a provider error", e.as_str()))
        .collect();
    assert_no_canary(&[], &texts);
}

#[test]
fn token_spec_shape() {
    // The CRD's `token.bearerToken` selector round-trips through the types the tests build.
    let spec = Spec {
        auth: Some(KubernetesAuth {
            token: Some(KubernetesTokenAuth {
                bearer_token: Some(selector("a", "b", None)),
            }),
            ..KubernetesAuth::default()
        }),
        ..Spec::default()
    };
    let v = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        v,
        json!({"auth": {"token": {"bearerToken": {"name": "a", "key": "b"}}}})
    );
    let _ = Arc::new(KubernetesProvider);
}

/// A plain-HTTP stand-in answering every request with `status` (and `Retry-After: 3`).
async fn answering(status: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"slow down","code":0}"#;
                let reply = format!(
                    "HTTP/1.1 {status}\r\nRetry-After: 3\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(reply.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn throttling_and_server_errors() {
    let (cluster, kube) = start_cluster(&[], &["remote", "creds"]).await;
    put_secret(
        &kube,
        "creds",
        "k8s-token",
        &[("token", cluster.token().as_bytes())],
    )
    .await;
    let (calls, env) = env(&kube);
    for (status, retryable) in [
        ("429 Too Many Requests", true),
        ("503 Service Unavailable", true),
    ] {
        let mut store = token_store(&cluster, "k8s-token");
        store
            .provider
            .kubernetes
            .as_mut()
            .unwrap()
            .server
            .as_mut()
            .unwrap()
            .url = Some(answering(status).await);
        let client = connect(&store, env.clone()).await;
        let err = client.get_secret(&RemoteRef::key("x")).await.unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{err}");
        if status.starts_with("429") {
            assert_eq!(
                err.retry_after(),
                Some(std::time::Duration::from_secs(3)),
                "{err}"
            );
            assert!(err.to_string().contains("slow down"), "{err}");
        } else {
            assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
        }
    }
    assert_eq!(calls.count("GetSecret"), 2);
    assert!(
        calls.all().iter().all(|(_, _, ok)| !ok),
        "failures count as errors"
    );
}
