//! The azure provider's behaviour against the Azure stand-in (Key Vault has no emulator; the
//! stand-in follows Microsoft's REST reference): errors as Key Vault returns them, the 401
//! challenge on a host outside azure.net, token caching and refresh, TLS trust, object
//! types, metadata, find with paging, push ownership, and no secret in any message or log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::json;
use strongroom_provider_api::{FindQuery, ProviderError, PushRef, RemoteRef, SecretsClient};
use strongroom_provider_azure::{AzureProvider, AzureSecretsClient, Endpoints};
use strongroom_testkit::CANARY;

fn text(v: &strongroom_provider_api::SecretBytes) -> String {
    String::from_utf8_lossy(v.expose()).into_owned()
}

async fn sp_client(standin: &AzureStandIn) -> (Arc<Calls>, Box<dyn SecretsClient>) {
    standin.register_client_secret(CLIENT_ID, CLIENT_SECRET);
    let (calls, env) = provider_env(Resolver::with_service_principal(CLIENT_SECRET));
    (calls, connect(standin, secret_spec(standin), env).await)
}

#[tokio::test]
async fn key_vault_errors_map_to_categories() {
    let standin = AzureStandIn::start(Options::default()).await;
    let (calls, client) = sp_client(&standin).await;
    standin.set_secret("db", "v");
    let db = RemoteRef::key("db");
    let get = || client.get_secret(&db);
    let missing = client
        .get_secret(&RemoteRef::key("nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, ProviderError::NotFound { key, .. } if key == "nope"),
        "{missing:?}"
    );
    standin.fault(Fault {
        path_contains: "/secrets/db".into(),
        status: 403,
        retry_after: None,
        times: 1,
    });
    let e = get().await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::PermissionDenied(m) if m.contains("AccessDenied")),
        "{e:?}"
    );
    standin.fault(Fault {
        path_contains: String::new(),
        status: 429,
        retry_after: Some(7),
        times: 1,
    });
    let e = get().await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)), "{e:?}");
    assert_eq!(e.category(), "throttled");
    for status in [500, 503] {
        standin.fault(Fault {
            path_contains: String::new(),
            status,
            retry_after: None,
            times: 1,
        });
        let e = get().await.unwrap_err();
        assert!(
            matches!(e, ProviderError::Unavailable(_)),
            "{status}: {e:?}"
        );
    }
    standin.set_enabled("db", false);
    let e = get().await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::PermissionDenied(m) if m.contains("SecretDisabled")),
        "{e:?}"
    );
    standin.set_enabled("db", true);
    assert_eq!(text(&get().await.unwrap()), "v");
    // Failed calls are counted as errors, under upstream's names.
    let all = calls.all();
    assert!(
        all.iter()
            .any(|(p, c, ok)| p == "Azure/KeyVault" && c == "GetSecret" && !ok)
    );
    assert!(all.iter().any(|(_, c, ok)| c == "GetSecret" && *ok));
}

#[tokio::test]
async fn challenge_on_a_non_azure_host_is_followed() {
    // The vault at https://localhost:<port> asks for tokens for https://localhost.
    let standin = AzureStandIn::start(Options {
        resource: "https://localhost".into(),
        ..Options::default()
    })
    .await;
    let (_, client) = sp_client(&standin).await;
    standin.set_secret("db", "v");
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("db")).await.unwrap()),
        "v"
    );
    assert_eq!(standin.count("challenge"), 1, "{:?}", standin.counts());
    for _ in 0..5 {
        client.get_secret(&RemoteRef::key("db")).await.unwrap();
    }
    // One token for the cloud's default resource (refused), one for the challenged one.
    assert_eq!(standin.count("challenge"), 1);
    assert_eq!(standin.token_exchanges(), 2, "{:?}", standin.counts());
}

#[tokio::test]
async fn challenge_for_another_domain_is_refused() {
    let standin = AzureStandIn::start(Options {
        resource: "https://management.example.test".into(),
        ..Options::default()
    })
    .await;
    let (_, client) = sp_client(&standin).await;
    standin.set_secret("db", "v");
    let e = client.get_secret(&RemoteRef::key("db")).await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Authentication(m) if m.contains("management.example.test")),
        "{e:?}"
    );
    assert_eq!(
        standin.token_exchanges(),
        1,
        "no token for the foreign resource: {:?}",
        standin.counts()
    );
}

#[tokio::test]
async fn tokens_are_cached_then_refreshed_mid_run() {
    let standin = AzureStandIn::start(Options {
        token_lifetime: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    let (_, client) = sp_client(&standin).await;
    standin.set_secret("db", "v");
    let db = RemoteRef::key("db");
    let reads = (0..20).map(|_| client.get_secret(&db));
    for r in futures_join(reads).await {
        r.unwrap();
    }
    assert_eq!(standin.token_exchanges(), 1, "{:?}", standin.counts());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    client.get_secret(&RemoteRef::key("db")).await.unwrap();
    assert_eq!(standin.token_exchanges(), 2, "refreshed before expiry");
    assert_eq!(standin.count("challenge"), 0, "never sent an expired token");
    // A token the vault stops accepting is replaced on the 401, once.
    standin.expire_tokens();
    client.get_secret(&RemoteRef::key("db")).await.unwrap();
    assert_eq!(standin.token_exchanges(), 3);
    assert_eq!(standin.count("challenge"), 1);
}

async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.collect();
    let mut out = Vec::new();
    // Poll them together: join_all without a futures dependency.
    let joined = async {
        let mut pinned: Vec<_> = handles.into_iter().map(Box::pin).collect();
        let mut results: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (i, f) in pinned.iter_mut().enumerate() {
                if results[i].is_none() {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => results[i] = Some(v),
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        results.into_iter().map(Option::unwrap).collect::<Vec<_>>()
    };
    out.extend(joined.await);
    out
}

#[tokio::test]
async fn tls_is_refused_without_the_ca() {
    let standin = AzureStandIn::start(Options::default()).await;
    standin.register_client_secret(CLIENT_ID, CLIENT_SECRET);
    standin.set_secret("db", "v");
    let untrusting = AzureProvider::with_endpoints(Endpoints {
        authority_host: Some(standin.authority.clone()),
        ..Endpoints::default()
    });
    let (_, env) = provider_env(Resolver::with_service_principal(CLIENT_SECRET));
    let client = try_connect(&untrusting, secret_spec(&standin), env)
        .await
        .unwrap();
    let e = client.get_secret(&RemoteRef::key("db")).await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Unavailable(m) if m.to_lowercase().contains("certificate")),
        "{e:?}"
    );
    assert!(client.validate().await.is_err());
    assert_eq!(standin.token_exchanges(), 0);
    // Plain HTTP vaults are refused before any request.
    let mut http = secret_spec(&standin);
    http.vault_url = standin.vault_url.replace("https://", "http://");
    let (_, env) = provider_env(Resolver::with_service_principal(CLIENT_SECRET));
    assert!(matches!(
        try_connect(&untrusting, http, env).await,
        Err(ProviderError::InvalidConfig(_))
    ));
}

#[tokio::test]
async fn bad_credentials_fail_authentication() {
    let standin = AzureStandIn::start(Options::default()).await;
    standin.register_client_secret(CLIENT_ID, "the-right-one");
    standin.set_secret("db", "v");
    let (_, env) = provider_env(Resolver::with_service_principal("a-wrong-one"));
    let client = connect(&standin, secret_spec(&standin), env).await;
    let e = client.validate().await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Authentication(m) if m.contains("AADSTS7000215")),
        "{e:?}"
    );
    // An assertion signed by a key that is not the registered certificate's.
    let cert_only = CLIENT_PEM.split("-----BEGIN PRIVATE KEY").next().unwrap();
    standin.register_client_certificate("app-2", cert_only);
    let mut resolver = Resolver::new();
    resolver.put("sp", "client-id", "app-2");
    resolver.put("sp", "client-cert", &format!("{cert_only}{OTHER_KEY_PEM}"));
    let (_, env) = provider_env(resolver);
    let client = connect(&standin, cert_spec(&standin), env).await;
    let e = client.get_secret(&RemoteRef::key("db")).await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Authentication(m) if m.contains("AADSTS700027")),
        "{e:?}"
    );
    // A user-assigned identity IMDS does not know.
    let (_, env) = provider_env(Resolver::new());
    let client = connect(&standin, managed_spec(&standin, Some("unknown")), env).await;
    assert!(matches!(
        client.validate().await,
        Err(ProviderError::Authentication(_))
    ));
    // A federated token for another ServiceAccount.
    let mut resolver = Resolver::new();
    standin.register_federated(
        "app-3",
        "system:serviceaccount:creds:someone-else",
        None,
        resolver.issuer.jwks.clone(),
    );
    resolver
        .annotations
        .insert("azure.workload.identity/client-id".into(), "app-3".into());
    let mut spec = workload_spec(&standin);
    spec.tenant_id = Some(standin.tenant().into());
    let (_, env) = provider_env(resolver);
    let client = connect(&standin, spec, env).await;
    let e = client.validate().await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Authentication(m) if m.contains("AADSTS70021")),
        "{e:?}"
    );
    assert_eq!(standin.token_exchanges(), 0);
}

#[tokio::test]
async fn workload_identity_mints_tokens_for_the_exchange_audience_and_reads_the_webhook_file() {
    let standin = AzureStandIn::start(Options::default()).await;
    let mut resolver = Resolver::new();
    standin.register_federated(
        CLIENT_ID,
        "system:serviceaccount:creds:reader",
        Some(ISSUER),
        resolver.issuer.jwks.clone(),
    );
    resolver
        .annotations
        .insert("azure.workload.identity/client-id".into(), CLIENT_ID.into());
    let file_token = resolver.issuer.token(
        "system:serviceaccount:creds:reader",
        &["api://AzureADTokenExchange".into()],
    );
    let resolver = Arc::new(resolver);
    let env = strongroom_provider_api::ProviderEnv {
        credentials: resolver.clone(),
        calls: Arc::new(Calls::default()),
    };
    let mut spec = workload_spec(&standin);
    spec.tenant_id = Some(standin.tenant().into());
    if let Some(sa) = spec.service_account_ref.as_mut() {
        sa.audiences = Some(vec!["extra".into()]);
    }
    standin.set_secret("db", "v");
    let client = connect(&standin, spec, env.clone()).await;
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("db")).await.unwrap()),
        "v"
    );
    let minted = resolver.tokens.lock().unwrap().clone();
    assert_eq!(
        minted,
        [(
            "creds/reader".to_string(),
            vec!["api://AzureADTokenExchange".to_string(), "extra".into()]
        )]
    );
    // Without serviceAccountRef: AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE.
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(file_token.as_bytes()).unwrap();
    let mut endpoints = endpoints(&standin);
    endpoints.workload_client_id = Some(CLIENT_ID.into());
    endpoints.workload_tenant_id = Some(standin.tenant().into());
    endpoints.workload_token_file = Some(file.path().to_path_buf());
    let mut spec = workload_spec(&standin);
    spec.service_account_ref = None;
    let client = try_connect(
        &AzureProvider::with_endpoints(endpoints),
        spec.clone(),
        env.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("db")).await.unwrap()),
        "v"
    );
    assert_eq!(standin.count("token:federated"), 2);
    let none = AzureProvider::with_endpoints(Endpoints::default());
    let Err(e) = try_connect(&none, spec, env).await else {
        panic!("connected without the workload identity environment");
    };
    assert!(e.to_string().contains("AZURE_FEDERATED_TOKEN_FILE"), "{e}");
}

#[tokio::test]
async fn certificates_keys_versions_and_metadata() {
    let standin = AzureStandIn::start(Options::default()).await;
    let (_, client) = sp_client(&standin).await;
    let der = rustls_pem_der(CLIENT_PEM);
    standin.set_certificate("tls", &der, BTreeMap::from([("team".into(), "a".into())]));
    standin.set_key(
        "sign",
        json!({"kty": "RSA", "key_ops": ["sign", "verify"], "n": "AQAB", "e": "AQAB"}),
        BTreeMap::new(),
    );
    let v1 = standin.set_secret("db", r#"{"user":"one"}"#);
    standin.set_secret_with(
        "db",
        r#"{"user":"two"}"#,
        BTreeMap::from([
            ("env".into(), "prod".into()),
            ("conf".into(), r#"{"x":"y"}"#.into()),
        ]),
        Some("application/json"),
    );
    standin.set_times("db", Some(1_900_000_000), None);

    assert_eq!(
        client
            .get_secret(&RemoteRef::key("cert/tls"))
            .await
            .unwrap()
            .expose(),
        der.as_slice()
    );
    let key = text(
        &client
            .get_secret(&RemoteRef::key("key/sign"))
            .await
            .unwrap(),
    );
    assert!(
        key.starts_with(&format!(r#"{{"kid":"{}/keys/sign/"#, standin.vault_url)),
        "{key}"
    );
    assert!(
        key.ends_with(r#","kty":"RSA","key_ops":["sign","verify"],"n":"AQAB","e":"AQAB"}"#),
        "{key}"
    );
    let kty = RemoteRef {
        property: Some("kty".into()),
        ..RemoteRef::key("key/sign")
    };
    assert_eq!(text(&client.get_secret(&kty).await.unwrap()), "RSA");
    let old = RemoteRef {
        version: Some(v1),
        property: Some("user".into()),
        ..RemoteRef::key("secret/db")
    };
    assert_eq!(text(&client.get_secret(&old).await.unwrap()), "one");
    assert_eq!(
        text(
            &client
                .get_secret(&RemoteRef {
                    property: Some("user".into()),
                    ..RemoteRef::key("db")
                })
                .await
                .unwrap()
        ),
        "two"
    );

    let meta = RemoteRef {
        fetch_metadata: true,
        ..RemoteRef::key("db")
    };
    let all: serde_json::Value =
        serde_json::from_slice(client.get_secret(&meta).await.unwrap().expose()).unwrap();
    assert_eq!(all["env"], "prod");
    assert_eq!(all["attribute.expires"], "2030-03-17T17:46:40Z");
    assert!(all["attribute.created"].as_str().unwrap().ends_with('Z'));
    let one = RemoteRef {
        property: Some("conf.x".into()),
        ..meta.clone()
    };
    assert_eq!(text(&client.get_secret(&one).await.unwrap()), "y");
    let map = client.get_secret_map(&meta).await.unwrap();
    assert_eq!(text(&map["db_env"]), "prod");
    assert_eq!(text(&map["db_conf_x"]), "y");
    assert!(map.contains_key("db_attribute.expires"));
    let cert_meta = RemoteRef {
        fetch_metadata: true,
        property: Some("team".into()),
        ..RemoteRef::key("cert/tls")
    };
    assert_eq!(text(&client.get_secret(&cert_meta).await.unwrap()), "a");
    assert!(matches!(
        client.get_secret_map(&RemoteRef::key("cert/tls")).await,
        Err(ProviderError::InvalidConfig(_))
    ));
    assert!(matches!(
        client.get_secret(&RemoteRef::key("blob/x")).await,
        Err(ProviderError::InvalidConfig(_))
    ));
}

fn rustls_pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .unwrap()
        .split("-----END CERTIFICATE-----")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[tokio::test]
async fn find_filters_by_name_and_tags_across_pages() {
    let standin = AzureStandIn::start(Options {
        max_page: 2,
        ..Options::default()
    })
    .await;
    let (_, client) = sp_client(&standin).await;
    let team = |t: &str| BTreeMap::from([("team".to_string(), t.to_string())]);
    for (name, t) in [
        ("a-1", "x"),
        ("a-2", "y"),
        ("a-3", "x"),
        ("b-1", "x"),
        ("b-2", "y"),
    ] {
        standin.set_secret_with(name, &format!("value-{name}"), team(t), None);
    }
    standin.set_enabled("a-3", false);
    let q = FindQuery {
        tags: team("x"),
        ..FindQuery::default()
    };
    let found = client.get_all(&q).await.unwrap();
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["a-1", "b-1"],
        "disabled a-3 skipped"
    );
    assert_eq!(standin.count("GetSecrets"), 3, "three pages of two");
    let q = FindQuery {
        name_regexp: Some("^a-".into()),
        ..FindQuery::default()
    };
    let found = client.get_all(&q).await.unwrap();
    assert_eq!(found.keys().collect::<Vec<_>>(), ["a-1", "a-2"]);
    assert_eq!(text(&found["a-2"]), "value-a-2");
}

#[tokio::test]
async fn push_writes_managed_objects_only() {
    let standin = AzureStandIn::start(Options::default()).await;
    let (_, client) = sp_client(&standin).await;
    standin.set_secret("theirs", "keep-me");
    let target = |k: &str| PushRef {
        remote_key: k.into(),
        ..PushRef::default()
    };
    let e = client
        .push(&"new".into(), &target("theirs"))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::PermissionDenied(_)), "{e:?}");
    assert!(client.delete(&target("theirs")).await.is_err());
    assert_eq!(standin.secret("theirs").unwrap()["value"], "keep-me");

    let meta = json!({"apiVersion": "kubernetes.external-secrets.io/v1alpha1", "kind": "PushSecretMetadata",
        "spec": {"expirationDate": "2030-01-01T00:00:00Z", "contentType": "text/plain", "tags": {"team": "a"}}});
    let mine = PushRef {
        remote_key: "secret/mine".into(),
        metadata: Some(meta),
        ..PushRef::default()
    };
    client.push(&"v1".into(), &mine).await.unwrap();
    let stored = standin.secret("mine").unwrap();
    assert_eq!(stored["value"], "v1");
    assert_eq!(stored["contentType"], "text/plain");
    assert_eq!(
        stored["tags"],
        json!({"managed-by": "external-secrets", "team": "a"})
    );
    assert_eq!(stored["attributes"]["exp"], 1_893_456_000);
    client.push(&"v1".into(), &mine).await.unwrap();
    assert_eq!(
        standin.count("SetSecret"),
        1,
        "an unchanged value is not written again"
    );
    client.push(&"v2".into(), &mine).await.unwrap();
    assert_eq!(standin.count("SetSecret"), 2);
    let owned = json!({"apiVersion": "kubernetes.external-secrets.io/v1alpha1", "kind": "PushSecretMetadata", "spec": {"tags": {"managed-by": "me"}}});
    assert!(
        client
            .push(
                &"v".into(),
                &PushRef {
                    metadata: Some(owned),
                    ..target("mine")
                }
            )
            .await
            .is_err()
    );

    // Certificates: PEM (with its key) imported, the DER read back, unchanged ones skipped.
    client
        .push(&CLIENT_PEM.into(), &target("cert/pushed"))
        .await
        .unwrap();
    let der = rustls_pem_der(CLIENT_PEM);
    assert_eq!(
        client
            .get_secret(&RemoteRef::key("cert/pushed"))
            .await
            .unwrap()
            .expose(),
        der.as_slice()
    );
    client
        .push(&CLIENT_PEM.into(), &target("cert/pushed"))
        .await
        .unwrap();
    assert_eq!(standin.count("ImportCertificate"), 1);
    // Keys: a PEM RSA key imported as a JWK; the public part read back.
    client
        .push(&OTHER_KEY_PEM.into(), &target("key/pushed"))
        .await
        .unwrap();
    let jwk: serde_json::Value = serde_json::from_slice(
        client
            .get_secret(&RemoteRef::key("key/pushed"))
            .await
            .unwrap()
            .expose(),
    )
    .unwrap();
    assert_eq!(jwk["kty"], "RSA");
    assert!(jwk.get("d").is_none());
    client
        .push(&OTHER_KEY_PEM.into(), &target("key/pushed"))
        .await
        .unwrap();
    assert_eq!(standin.count("ImportKey"), 1);
    assert_eq!(
        standin.key("pushed").unwrap()["tags"]["managed-by"],
        "external-secrets"
    );
    for k in ["mine", "cert/pushed", "key/pushed"] {
        client.delete(&target(k)).await.unwrap();
        assert!(!client.exists(&target(k)).await.unwrap(), "{k}");
    }
    // Pushing onto a soft-deleted managed secret recovers it first, as upstream.
    client.push(&"v3".into(), &mine).await.unwrap();
    assert_eq!(standin.count("conflict"), 1);
    assert_eq!(standin.count("RecoverSecret"), 1);
    assert_eq!(standin.secret("mine").unwrap()["value"], "v3");
}

/// Collects everything written through `tracing` while a test runs.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_canary_never_appears_in_errors_or_logs() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let standin = AzureStandIn::start(Options {
        resource: "https://localhost".into(),
        ..Options::default()
    })
    .await;
    standin.register_client_secret(CLIENT_ID, CANARY);
    let (_, env) = provider_env(Resolver::with_service_principal(CANARY));
    let client =
        AzureSecretsClient::connect(&store(secret_spec(&standin)), env, endpoints(&standin))
            .await
            .unwrap();
    standin.set_secret_with(
        "plain",
        CANARY,
        BTreeMap::from([("t".into(), CANARY.into())]),
        Some(CANARY),
    );
    let mut texts = Vec::new();
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("plain")).await.unwrap()),
        CANARY
    );
    let property = RemoteRef {
        property: Some("x".into()),
        ..RemoteRef::key("plain")
    };
    texts.push(client.get_secret(&property).await.unwrap_err().to_string());
    texts.push(
        client
            .get_secret_map(&RemoteRef::key("plain"))
            .await
            .unwrap_err()
            .to_string(),
    );
    let tag = RemoteRef {
        fetch_metadata: true,
        property: Some("nope".into()),
        ..RemoteRef::key("plain")
    };
    texts.push(client.get_secret(&tag).await.unwrap_err().to_string());
    texts.push(
        client
            .push(
                &CANARY.into(),
                &PushRef {
                    remote_key: "cert/c".into(),
                    ..PushRef::default()
                },
            )
            .await
            .unwrap_err()
            .to_string(),
    );
    texts.push(
        client
            .push(
                &CANARY.into(),
                &PushRef {
                    remote_key: "plain".into(),
                    ..PushRef::default()
                },
            )
            .await
            .unwrap_err()
            .to_string(),
    );
    for status in [403, 429, 500] {
        standin.fault(Fault {
            path_contains: String::new(),
            status,
            retry_after: Some(1),
            times: 1,
        });
        texts.push(
            client
                .get_secret(&RemoteRef::key("plain"))
                .await
                .unwrap_err()
                .to_string(),
        );
    }
    texts.push(format!("{client:?}"));
    // A refused client secret: the authority's answer, never the secret.
    let (_, env) = provider_env(Resolver::with_service_principal(&format!("{CANARY}-wrong")));
    let wrong =
        AzureSecretsClient::connect(&store(secret_spec(&standin)), env, endpoints(&standin))
            .await
            .unwrap();
    texts.push(wrong.validate().await.unwrap_err().to_string());
    texts.push(format!("{wrong:?}"));
    drop(_guard);
    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logged.contains("following the vault's authentication challenge"),
        "logs captured: {logged}"
    );
    for t in texts.iter().chain([&logged]) {
        assert!(!t.contains(CANARY), "canary leaked: {t}");
        assert!(!t.contains("standin-"), "token leaked: {t}");
    }
}
