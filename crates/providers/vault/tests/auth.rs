//! Logins against a real OpenBao: one login per client whatever the number of reads
//! (counted by the server's audit device), revocation at close, and each auth method.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use strongroom_core::crd::external_secrets::{
    ServiceAccountSelector, VaultAuth, VaultJwtAuth, VaultKubernetesAuth, VaultUserPassAuth,
};
use strongroom_provider_api::{Provider, ProviderError, RemoteRef, Validation};
use strongroom_provider_vault::VaultProvider;
use strongroom_testkit::backends::OpenBao;
use strongroom_testkit::start_cluster;

fn value(key: &str) -> RemoteRef {
    RemoteRef {
        property: Some("v".into()),
        ..RemoteRef::key(key)
    }
}

#[tokio::test]
async fn one_login_per_client_and_close_revokes() {
    let (bao, log) = OpenBao::start_audited().await;
    bao.cli(&["kv", "put", "secret/app", "v=1"]);
    let env = Env::new(Creds::default());
    let auth = approle(&bao, &env, "1h");
    // The CLI's own requests while seeding.
    let seeded = OpenBao::audited(&log, "secret/data/app");
    let cli_lookups = OpenBao::audited(&log, "auth/token/lookup-self");
    // The dev server revokes its generated root token at start.
    let dev_revokes = OpenBao::audited(&log, "auth/token/revoke-self");
    let store = store(spec(&bao, Some("secret"), auth));
    let client = connect(&store, &env).await;
    // The client renews its token itself: the controller keeps it while the store is unchanged.
    assert!(client.valid_until().is_none() && client.renews_itself());
    assert_eq!(client.validate().await.unwrap(), Validation::Ready);
    for _ in 0..50 {
        client.get_secret(&value("app")).await.unwrap();
    }
    assert_eq!(
        OpenBao::audited(&log, "auth/approle/login"),
        1,
        "one login on the server"
    );
    assert_eq!(OpenBao::audited(&log, "secret/data/app") - seeded, 50);
    assert_eq!(
        OpenBao::audited(&log, "auth/token/lookup-self") - cli_lookups,
        1,
        "validate only"
    );
    assert_eq!(env.calls.count("Login"), 1);
    assert_eq!(env.calls.count("ReadSecretData"), 50);

    client.close().await;
    client.close().await;
    assert_eq!(
        OpenBao::audited(&log, "auth/token/revoke-self") - dev_revokes,
        1
    );
    assert_eq!(env.calls.count("RevokeSelf"), 1);
    let e = client.get_secret(&value("app")).await.unwrap_err();
    assert!(
        matches!(e, ProviderError::Authentication(_)),
        "a revoked token reads nothing, and the controller reconnects: {e}"
    );
}

#[tokio::test]
async fn bad_credentials_are_an_authentication_failure() {
    let bao = OpenBao::start().await;
    let env = Env::new(Creds::default());
    let auth = approle(&bao, &env, "1h");
    env.creds.put("team", "approle", "secret-id", "wrong");
    let e = VaultProvider
        .connect(&store(spec(&bao, Some("secret"), auth)), env.provider_env())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, ProviderError::Authentication(_)), "{e}");
    assert_eq!(env.calls.count("Login"), 1);
}

#[tokio::test]
async fn userpass_login() {
    let bao = OpenBao::start().await;
    bao.cli(&["kv", "put", "secret/app", "v=up"]);
    reader_policy(&bao, "reader");
    bao.cli(&["auth", "enable", "userpass"]);
    bao.cli(&[
        "write",
        "auth/userpass/users/eso",
        "password=pw-1",
        "token_policies=reader",
    ]);
    let env = Env::new(Creds::default());
    env.creds.put("team", "up", "password", "pw-1");
    let auth = VaultAuth {
        user_pass: Some(VaultUserPassAuth {
            path: None,
            username: "eso".into(),
            secret_ref: Some(selector("up", "password")),
        }),
        ..VaultAuth::default()
    };
    bao.cli(&["secrets", "enable", "-path=private", "kv-v2"]);
    bao.cli(&["kv", "put", "private/x", "v=no"]);
    // No mount on the store: keys name theirs.
    let client = connect(&store(spec(&bao, None, auth)), &env).await;
    let got = client.get_secret(&value("secret/app")).await.unwrap();
    assert_eq!(got.expose(), b"up");
    // A path the policy forbids is a denied read, not a dead token.
    let e = client.get_secret(&value("private/x")).await.unwrap_err();
    assert!(matches!(e, ProviderError::PermissionDenied(_)), "{e}");
    client.close().await;
}

/// A JWT signed with a key pair made here, checked by OpenBao against its public key.
fn signed_jwt(key: &rcgen::KeyPair, sub: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"sub": sub, "aud": "vault", "iat": now, "exp": now + 600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap()
}

fn jwt_mount(bao: &OpenBao, public_pem: &str) {
    reader_policy(bao, "reader");
    bao.cli(&["auth", "enable", "jwt"]);
    bao.cli(&[
        "write",
        "auth/jwt/config",
        &format!("jwt_validation_pubkeys={public_pem}"),
    ]);
    bao.cli(&[
        "write",
        "auth/jwt/role/reader",
        "role_type=jwt",
        "user_claim=sub",
        "bound_audiences=vault",
        "token_policies=reader",
        "token_ttl=10m",
    ]);
}

#[tokio::test]
async fn jwt_login_from_a_secret() {
    let bao = OpenBao::start().await;
    bao.cli(&["kv", "put", "secret/app", "v=jwt"]);
    let key = rcgen::KeyPair::generate().unwrap();
    jwt_mount(&bao, &key.public_key_pem());
    let env = Env::new(Creds::default());
    env.creds
        .put("team", "jwt", "token", &signed_jwt(&key, "eso"));
    let auth = VaultAuth {
        jwt: Some(VaultJwtAuth {
            path: None,
            role: Some("reader".into()),
            secret_ref: Some(selector("jwt", "token")),
            kubernetes_service_account_token: None,
        }),
        ..VaultAuth::default()
    };
    let client = connect(&store(spec(&bao, Some("secret"), auth)), &env).await;
    assert_eq!(
        client.get_secret(&value("app")).await.unwrap().expose(),
        b"jwt"
    );
    client.close().await;
    assert_eq!(env.calls.count("RevokeSelf"), 1);
}

/// devcluster signs ServiceAccount tokens and answers TokenReview; OpenBao's kubernetes auth
/// reviews the minted token there.
#[tokio::test]
async fn kubernetes_login_with_a_minted_service_account_token() {
    let (cluster, kube) = start_cluster(&[], &["team"]).await;
    let sa: k8s_openapi::api::core::v1::ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "eso"}})).unwrap();
    kube::Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(kube.clone(), "team")
        .create(&Default::default(), &sa)
        .await
        .unwrap();
    let bao = OpenBao::start().await;
    bao.cli(&["kv", "put", "secret/app", "v=k8s"]);
    reader_policy(&bao, "reader");
    bao.cli(&["auth", "enable", "kubernetes"]);
    let ca = strongroom_testkit::cluster_ca_pem(&cluster);
    bao.cli(&[
        "write",
        "auth/kubernetes/config",
        &format!("kubernetes_host={}", cluster.url()),
        &format!("kubernetes_ca_cert={ca}"),
        &format!("token_reviewer_jwt={}", cluster.token()),
    ]);
    bao.cli(&[
        "write",
        "auth/kubernetes/role/reader",
        "bound_service_account_names=eso",
        "bound_service_account_namespaces=team",
        "token_policies=reader",
        "token_ttl=10m",
    ]);
    let env = Env::new(Creds {
        kube: Some(kube),
        ..Creds::default()
    });
    let auth = VaultAuth {
        kubernetes: Some(VaultKubernetesAuth {
            mount_path: None,
            role: "reader".into(),
            service_account_ref: Some(ServiceAccountSelector {
                name: "eso".into(),
                namespace: None,
                audiences: None,
            }),
            secret_ref: None,
        }),
        ..VaultAuth::default()
    };
    let client = connect(&store(spec(&bao, Some("secret"), auth)), &env).await;
    assert_eq!(
        client.get_secret(&value("app")).await.unwrap().expose(),
        b"k8s"
    );
    assert_eq!(
        env.creds.token_requests.lock().unwrap().clone(),
        [("team".to_string(), "eso".to_string(), Vec::<String>::new())]
    );
    client.close().await;
}

/// `namespace` sends `X-Vault-Namespace` on every call; `auth.namespace` moves only the login
/// (here to the root namespace, whose token reaches the child namespace through its policy).
#[tokio::test]
async fn namespaces_for_reads_and_for_the_login() {
    let bao = OpenBao::start().await;
    bao.cli(&["namespace", "create", "team"]);
    bao.cli(&[
        "secrets",
        "enable",
        "-namespace=team",
        "-path=kv",
        "-version=2",
        "kv",
    ]);
    bao.cli(&["kv", "put", "-namespace=team", "kv/app", "v=in-team"]);
    bao.policy(
        "team-reader",
        r#"path "team/kv/*" { capabilities = ["read", "list"] }"#,
    );
    bao.cli(&["auth", "enable", "userpass"]);
    bao.cli(&[
        "write",
        "auth/userpass/users/root-user",
        "password=pw-root",
        "token_policies=team-reader",
    ]);
    let in_team = "path \"kv/*\" { capabilities = [\"read\", \"list\"] }";
    let file = std::env::temp_dir().join(format!("bao-ns-policy-{}.hcl", std::process::id()));
    std::fs::write(&file, in_team).unwrap();
    bao.cli(&[
        "policy",
        "write",
        "-namespace=team",
        "reader",
        file.to_str().unwrap(),
    ]);
    bao.cli(&["auth", "enable", "-namespace=team", "userpass"]);
    bao.cli(&[
        "write",
        "-namespace=team",
        "auth/userpass/users/team-user",
        "password=pw-team",
        "token_policies=reader",
    ]);
    let env = Env::new(Creds::default());
    env.creds.put("team", "up", "root", "pw-root");
    env.creds.put("team", "up", "team", "pw-team");
    let login = |user: &str, key: &str, namespace: Option<&str>| VaultAuth {
        namespace: namespace.map(str::to_string),
        user_pass: Some(VaultUserPassAuth {
            path: None,
            username: user.into(),
            secret_ref: Some(selector("up", key)),
        }),
        ..VaultAuth::default()
    };
    for auth in [
        login("team-user", "team", None),
        login("root-user", "root", Some("")),
    ] {
        let mut spec = spec(&bao, Some("kv"), auth);
        spec.namespace = Some("team".into());
        let client = connect(&store(spec), &env).await;
        let got = client.get_secret(&value("app")).await.unwrap();
        assert_eq!(got.expose(), b"in-team");
        client.close().await;
    }
    assert_eq!(env.calls.count("Login"), 2);
    assert_eq!(env.calls.count("RevokeSelf"), 2);
}

/// Static checks name the problem; a referent ClusterSecretStore validated without a reader
/// is Unknown and logs in nowhere.
#[tokio::test]
async fn store_checks_and_referent_stores() {
    use strongroom_core::crd::external_secrets::{StoreKind, VaultIamAuth};
    let spec_with =
        |auth: Option<VaultAuth>| strongroom_core::crd::external_secrets::VaultProvider {
            server: "http://127.0.0.1:1".into(),
            auth,
            ..Default::default()
        };
    let error = |auth: Option<VaultAuth>| {
        VaultProvider
            .validate_store(&store(spec_with(auth)))
            .unwrap_err()
            .to_string()
    };
    assert!(error(None).contains("auth is missing"));
    assert!(error(Some(VaultAuth::default())).contains("none is set"));
    let both = VaultAuth {
        token_secret_ref: Some(selector("a", "b")),
        user_pass: Some(VaultUserPassAuth::default()),
        ..VaultAuth::default()
    };
    assert!(error(Some(both)).contains("several are set"));
    let iam = VaultAuth {
        iam: Some(VaultIamAuth::default()),
        ..VaultAuth::default()
    };
    assert!(error(Some(iam)).contains("not implemented"));
    let mut bad_server = spec_with(Some(VaultAuth {
        token_secret_ref: Some(selector("a", "b")),
        ..VaultAuth::default()
    }));
    bad_server.server = "vault:8200".into();
    assert!(VaultProvider.validate_store(&store(bad_server)).is_err());

    let env = Env::new(Creds::default());
    let mut cluster_store = store(spec_with(Some(VaultAuth {
        token_secret_ref: Some(selector("token", "t")),
        ..VaultAuth::default()
    })));
    cluster_store.kind = StoreKind::ClusterSecretStore;
    cluster_store.namespace = None;
    let client = connect(&cluster_store, &env).await;
    assert_eq!(client.validate().await.unwrap(), Validation::Unknown);
    assert!(matches!(
        client.get_secret(&value("secret/app")).await,
        Err(ProviderError::InvalidConfig(_))
    ));
    assert_eq!(env.calls.all(), []);
}

/// `forwardInconsistent` reaches the server as `X-Vault-Inconsistent: forward-active-node`
/// (seen by OpenBao's audit device, told to record that header).
#[tokio::test]
async fn forward_inconsistent_header_reaches_the_server() {
    let (bao, log) = OpenBao::start_audited().await;
    bao.cli(&["kv", "put", "secret/app", "v=1"]);
    bao.cli(&[
        "write",
        "sys/config/auditing/request-headers/x-vault-inconsistent",
        "hmac=false",
    ]);
    let env = Env::new(Creds::default());
    let with_header = |on: bool| {
        let mut s = spec(&bao, Some("secret"), root_auth(&env));
        s.forward_inconsistent = Some(on);
        store(s)
    };
    let headers_seen = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == "request" && v["request"]["path"] == "secret/data/app")
            .map(|v| v["request"]["headers"]["x-vault-inconsistent"].clone())
            .collect::<Vec<_>>()
    };
    let before = headers_seen().len();
    let client = connect(&with_header(true), &env).await;
    client.get_secret(&value("app")).await.unwrap();
    let client = connect(&with_header(false), &env).await;
    client.get_secret(&value("app")).await.unwrap();
    let seen = headers_seen();
    assert_eq!(seen.len(), before + 2);
    assert_eq!(seen[before], serde_json::json!(["forward-active-node"]));
    assert!(seen[before + 1].is_null(), "{:?}", seen[before + 1]);
}
