//! `auth.ntlm` against a real NTLM acceptor: pyspnego's, behind the testkit's small HTTP server
//! (`crates/testkit/python/ntlm_server.py`), which checks each AUTHENTICATE message against its
//! users and keeps the handshake's state per TCP connection, as IIS does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use strongroom_core::crd::external_secrets::{
    SecretKeySelector, SecretStoreProvider, StoreKind, WebhookAuth, WebhookNtlm,
    WebhookProvider as Spec, WebhookResult,
};
use strongroom_provider_api::conformance::RecordedCalls;
use strongroom_provider_api::{
    CredentialResolver, LabelledSecret, Provider, ProviderEnv, ProviderError, RemoteRef,
    SecretBytes, StoreContext,
};
use strongroom_provider_webhook::WebhookProvider;
use strongroom_testkit::ntlm::{Logged, NtlmOptions, NtlmServer};
use strongroom_testkit::{CANARY, assert_no_canary};

/// The password the server accepts (a canary: it must never show).
const PASSWORD: &str = CANARY;

/// Secret `default/ntlm-creds` (labelled for webhooks): `username` is the test's user name,
/// `password` and `wrong` two passwords.
struct Creds {
    username: String,
}

#[async_trait::async_trait]
impl CredentialResolver for Creds {
    async fn secret_key(&self, _: &str, _: &str, _: &str) -> Result<SecretBytes, ProviderError> {
        Err(ProviderError::Authentication("not used".into()))
    }
    async fn config_map_key(&self, _: &str, _: &str, _: &str) -> Result<String, ProviderError> {
        Err(ProviderError::Authentication("not used".into()))
    }
    async fn service_account_token(
        &self,
        _: &str,
        _: &str,
        _: &[String],
        _: Option<i64>,
    ) -> Result<SecretBytes, ProviderError> {
        Err(ProviderError::Authentication("not used".into()))
    }
    async fn service_account_annotations(
        &self,
        _: &str,
        _: &str,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        Err(ProviderError::Authentication("not used".into()))
    }
    async fn labelled_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<LabelledSecret, ProviderError> {
        assert_eq!((namespace, name), ("default", "ntlm-creds"));
        Ok(LabelledSecret {
            labels: BTreeMap::from([("external-secrets.io/type".into(), "webhook".into())]),
            data: BTreeMap::from([
                ("username".into(), SecretBytes::from(self.username.as_str())),
                ("password".into(), SecretBytes::from(PASSWORD)),
                (
                    "wrong".into(),
                    SecretBytes::from(format!("{PASSWORD}-wrong").as_str()),
                ),
            ]),
        })
    }
}

fn selector(key: &str) -> SecretKeySelector {
    SecretKeySelector {
        name: Some("ntlm-creds".into()),
        key: Some(key.into()),
        ..SecretKeySelector::default()
    }
}

/// A spec reading `$.value` of `url/secret/<key>` with NTLM (`password_key` names the password).
fn spec(url: &str, password_key: &str) -> Spec {
    Spec {
        url: format!("{url}/secret/{{{{ .remoteRef.key }}}}"),
        result: Some(WebhookResult {
            json_path: Some("$.value".into()),
        }),
        // Upstream overwrites a templated Authorization header with the NTLM credentials.
        headers: Some(BTreeMap::from([(
            "Authorization".into(),
            "Bearer not-sent".into(),
        )])),
        auth: Some(WebhookAuth {
            ntlm: Some(WebhookNtlm {
                username_secret: Some(selector("username")),
                password_secret: Some(selector(password_key)),
            }),
        }),
        ..Spec::default()
    }
}

fn store(spec: Spec) -> StoreContext {
    StoreContext {
        kind: StoreKind::SecretStore,
        name: "hook".into(),
        namespace: Some("default".into()),
        referent_namespace: None,
        provider: SecretStoreProvider {
            webhook: Some(spec),
            ..SecretStoreProvider::default()
        },
        retry: None,
    }
}

fn env(username: &str, calls: Arc<RecordedCalls>) -> ProviderEnv {
    ProviderEnv {
        credentials: Arc::new(Creds {
            username: username.into(),
        }),
        calls,
    }
}

async fn read(
    server: &NtlmServer,
    username: &str,
    password_key: &str,
) -> Result<String, ProviderError> {
    let client = WebhookProvider
        .connect(
            &store(spec(&server.url, password_key)),
            env(username, Arc::default()),
        )
        .await?;
    client
        .get_secret(&RemoteRef::key("db"))
        .await
        .map(|v| String::from_utf8(v.expose().to_vec()).unwrap())
}

/// What `Authorization` carried and the status, request by request; asserts that they all
/// came over one TCP connection.
fn auths(requests: &[Logged]) -> Vec<(&str, u16)> {
    let conns: std::collections::BTreeSet<u64> = requests.iter().map(|r| r.conn).collect();
    assert_eq!(conns.len(), 1, "more than one connection: {requests:?}");
    requests
        .iter()
        .map(|r| (r.auth.as_str(), r.status))
        .collect()
}

#[tokio::test]
async fn the_right_password_reads_the_value_over_one_ntlm_authenticated_connection() {
    let server = NtlmServer::start(&NtlmOptions::new(
        &[
            ("CORP", "alice", PASSWORD),
            ("@HOST", "bob", PASSWORD),
            ("", "carol@corp.example", PASSWORD),
        ],
        "the-value",
    ))
    .await;

    // DOMAIN\user: the domain written.
    assert_eq!(
        read(&server, r"CORP\alice", "password").await.unwrap(),
        "the-value"
    );
    let requests = server.requests();
    assert_eq!(
        auths(&requests),
        [
            ("none", 401),
            ("NTLM-negotiate", 401),
            ("NTLM-authenticate", 200)
        ],
        "anonymous first, then NEGOTIATE and AUTHENTICATE on the same connection"
    );
    assert_eq!(requests[2].path, "/secret/db");
    assert_eq!(requests[2].user.as_deref(), Some(r"CORP\alice"));

    // A plain user: the server's domain (its CHALLENGE's target name).
    assert_eq!(read(&server, "bob", "password").await.unwrap(), "the-value");
    let last = server.requests().pop().unwrap();
    assert_eq!((last.status, last.user.is_some()), (200, true));
    assert!(last.user.unwrap().ends_with(r"\bob"));

    // A UPN: sent whole, no domain.
    assert_eq!(
        read(&server, "carol@corp.example", "password")
            .await
            .unwrap(),
        "the-value"
    );
    let last = server.requests().pop().unwrap();
    assert_eq!(
        (last.status, last.user.as_deref()),
        (200, Some("carol@corp.example"))
    );
    assert_no_canary(&[], &[("the NTLM server's log", &server.log())]);
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_error_naming_the_store() {
    let server = NtlmServer::start(&NtlmOptions::new(&[("CORP", "alice", PASSWORD)], "v")).await;
    let e = read(&server, r"CORP\alice", "wrong").await.unwrap_err();
    assert_eq!(e.category(), "authentication", "{e}");
    let text = e.to_string();
    assert!(
        text.contains("SecretStore default/hook")
            && text.contains("refused the auth.ntlm credentials")
            && text.contains("401"),
        "{text}"
    );
    assert!(server.log().contains("InvalidTokenError"));
    assert_no_canary(
        &[],
        &[
            ("the error", &text),
            ("the error's Debug", &format!("{e:?}")),
            ("the NTLM server's log", &server.log()),
        ],
    );
    // A user the server does not know: the same.
    let e = read(&server, r"CORP\mallory", "password")
        .await
        .unwrap_err();
    assert_eq!(e.category(), "authentication", "{e}");
}

#[tokio::test]
async fn negotiate_and_basic_are_answered_as_upstream_answers_them() {
    // Negotiate only: the same NTLM messages under the Negotiate scheme.
    let mut options = NtlmOptions::new(&[("CORP", "alice", PASSWORD)], "negotiated");
    options.offer = vec!["Negotiate".into()];
    let server = NtlmServer::start(&options).await;
    assert_eq!(
        read(&server, r"CORP\alice", "password").await.unwrap(),
        "negotiated"
    );
    assert_eq!(
        auths(&server.requests()),
        [
            ("none", 401),
            ("Negotiate-negotiate", 401),
            ("Negotiate-authenticate", 200)
        ]
    );

    // Basic only: upstream's client sends the credentials as Basic.
    let mut options = NtlmOptions::new(&[("CORP", "alice", PASSWORD)], "basic");
    options.offer = vec!["Basic realm=\"test\"".into()];
    options.basic = true;
    let server = NtlmServer::start(&options).await;
    assert_eq!(
        read(&server, r"CORP\alice", "password").await.unwrap(),
        "basic"
    );
    assert_eq!(auths(&server.requests()), [("none", 401), ("Basic", 200)]);
    let e = read(&server, r"CORP\alice", "wrong").await.unwrap_err();
    assert_eq!(e.category(), "authentication", "{e}");
    assert!(e.to_string().contains("(Basic)"), "{e}");
}

#[tokio::test]
async fn a_server_closing_the_connection_after_the_first_401_gets_the_handshake_on_a_new_one() {
    let mut options = NtlmOptions::new(&[("CORP", "alice", PASSWORD)], "reconnected");
    options.close_anonymous = true;
    let server = NtlmServer::start(&options).await;
    assert_eq!(
        read(&server, r"CORP\alice", "password").await.unwrap(),
        "reconnected"
    );
    let requests = server.requests();
    let steps: Vec<(&str, u16)> = requests
        .iter()
        .map(|r| (r.auth.as_str(), r.status))
        .collect();
    assert_eq!(
        steps,
        [
            ("none", 401),
            ("NTLM-negotiate", 401),
            ("NTLM-authenticate", 200)
        ]
    );
    assert_ne!(
        requests[0].conn, requests[1].conn,
        "a new connection after the close"
    );
    assert_eq!(
        requests[1].conn, requests[2].conn,
        "NEGOTIATE and AUTHENTICATE share one"
    );
}

#[tokio::test]
async fn the_webhook_generator_authenticates_with_ntlm() {
    let server = NtlmServer::start(&NtlmOptions::new(&[("CORP", "alice", PASSWORD)], "gen")).await;
    let mut spec = spec(&server.url, "password");
    spec.result = None;
    let calls = Arc::new(RecordedCalls::default());
    let keys = strongroom_provider_webhook::generator::generate(
        &env(r"CORP\alice", calls.clone()),
        "default",
        &spec,
    )
    .await
    .unwrap();
    assert_eq!(keys["value"].expose(), b"gen");
    assert_eq!(keys["token"].expose(), b"gen-token");
    assert_eq!(
        auths(&server.requests()),
        [
            ("none", 401),
            ("NTLM-negotiate", 401),
            ("NTLM-authenticate", 200)
        ]
    );
    let e = strongroom_provider_webhook::generator::generate(
        &env(r"CORP\alice", calls),
        "default",
        &self::spec(&server.url, "wrong"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.category(), "authentication", "{e}");
    assert!(e.to_string().contains("the Webhook generator"), "{e}");
    assert_no_canary(&[], &[("the error", &e.to_string())]);
}

#[test]
fn a_cluster_store_names_the_namespace_of_its_ntlm_secrets() {
    let mut cluster = store(spec("http://127.0.0.1:1", "password"));
    cluster.kind = StoreKind::ClusterSecretStore;
    cluster.namespace = None;
    let e = WebhookProvider.validate_store(&cluster).unwrap_err();
    assert!(
        e.to_string()
            .contains("auth.ntlm.usernameSecret.namespace is required with ClusterSecretStore"),
        "{e}"
    );
    let ntlm = cluster
        .provider
        .webhook
        .as_mut()
        .unwrap()
        .auth
        .as_mut()
        .unwrap();
    let ntlm = ntlm.ntlm.as_mut().unwrap();
    for selector in [&mut ntlm.username_secret, &mut ntlm.password_secret] {
        selector.as_mut().unwrap().namespace = Some("default".into());
    }
    assert!(WebhookProvider.validate_store(&cluster).is_ok());
}
