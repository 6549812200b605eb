//! The webhook provider against real HTTP servers: a webhook endpoint is any HTTP server, so
//! the test's server ([`Recorder`]) is a real backend. For the conformance suite it is a small
//! key-value service following the provider's conventions (GET reads a key, 404 when missing;
//! POST stores the body; DELETE removes), with the store's templates mapping remote keys and
//! properties onto it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use strongroom_core::crd::external_secrets::{
    SecretKeySelector, SecretStoreProvider, StoreKind, WebhookProvider as Spec, WebhookResult,
    WebhookSecret,
};
use strongroom_provider_api::conformance::{Fixture, RecordedCalls, run};
use strongroom_provider_api::{
    CredentialResolver, LabelledSecret, Provider, ProviderEnv, ProviderError, PushRef, RemoteRef,
    SecretBytes, SecretsClient, StoreContext, Validation,
};
use strongroom_provider_webhook::WebhookProvider;
use strongroom_testkit::CANARY;
use strongroom_testkit::recorder::{Recorded, Recorder};

/// Credentials: Secret `default/hook-creds` (labelled for webhooks) holding a token, and
/// `default/plain` without the label.
struct Creds;

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
        let labels = match (namespace, name) {
            ("default", "hook-creds") => {
                BTreeMap::from([("external-secrets.io/type".into(), "webhook".into())])
            }
            ("default", "plain") => BTreeMap::new(),
            _ => {
                return Err(ProviderError::Authentication(format!(
                    "Secret {namespace}/{name} not found"
                )));
            }
        };
        Ok(LabelledSecret {
            labels,
            data: BTreeMap::from([("token".into(), SecretBytes::from(CANARY))]),
        })
    }
}

fn store(kind: StoreKind, spec: Spec) -> StoreContext {
    StoreContext {
        kind,
        name: "hook".into(),
        namespace: (kind == StoreKind::SecretStore).then(|| "default".to_string()),
        referent_namespace: None,
        provider: SecretStoreProvider {
            webhook: Some(spec),
            ..SecretStoreProvider::default()
        },
        retry: None,
    }
}

fn env(calls: Arc<RecordedCalls>) -> ProviderEnv {
    ProviderEnv {
        credentials: Arc::new(Creds),
        calls,
    }
}

async fn connect(spec: Spec, calls: Arc<RecordedCalls>) -> Box<dyn SecretsClient> {
    WebhookProvider
        .connect(&store(StoreKind::SecretStore, spec), env(calls))
        .await
        .map_err(|e| e.to_string())
        .unwrap()
}

/// The key-value service: `/secrets/<key>`.
fn key_value_service(seed: &[(&str, &str)]) -> Recorder {
    let values: Mutex<BTreeMap<String, String>> = Mutex::new(
        seed.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    Recorder::start_responding(Box::new(move |r: &Recorded| {
        let path = r.path.split('?').next().unwrap_or("");
        let Some(key) = path.strip_prefix("/secrets/") else {
            return (400, "bad path".into());
        };
        let mut values = values.lock().unwrap();
        match r.method.as_str() {
            "GET" => match values.get(key) {
                Some(v) => (200, v.clone()),
                None => (404, "no such key".into()),
            },
            "POST" => {
                values.insert(key.to_string(), r.body.clone());
                (200, String::new())
            }
            "DELETE" => match values.remove(key) {
                Some(_) => (204, String::new()),
                None => (404, String::new()),
            },
            _ => (405, String::new()),
        }
    }))
}

#[tokio::test]
async fn webhook_conforms() {
    let service = key_value_service(&[
        ("plain", "plain-value"),
        ("db", r#"{"user": "admin", "port": 5432}"#),
    ]);
    let spec = Spec {
        url: format!(
            "{}/secrets/{{{{ if .remoteRef.remoteKey }}}}{{{{ .remoteRef.remoteKey }}}}\
             {{{{ else }}}}{{{{ .remoteRef.key }}}}{{{{ end }}}}",
            service.url
        ),
        result: Some(WebhookResult {
            json_path: Some(
                "{{ if .remoteRef.property }}$['{{ .remoteRef.property }}']{{ end }}".into(),
            ),
        }),
        ..Spec::default()
    };
    let calls = Arc::new(RecordedCalls::default());
    let client = connect(spec, calls.clone()).await;
    let failures = run(
        client.as_ref(),
        &Fixture {
            plain_key: "plain".into(),
            plain_value: "plain-value".into(),
            json_key: "db".into(),
            json_user: "admin".into(),
            missing_key: "nope".into(),
            find_regexp: None,
            push_key: Some("pushed".into()),
        },
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        calls.labels().into_iter().collect::<Vec<_>>(),
        [("Webhook".to_string(), "HTTPRequest".to_string())]
    );
    let methods: Vec<String> = service.requests().into_iter().map(|r| r.method).collect();
    assert!(methods.contains(&"POST".to_string()) && methods.contains(&"DELETE".to_string()));
}

#[tokio::test]
async fn requests_carry_the_rendered_templates_and_errors_no_secret() {
    let hook = Recorder::start(r#"{"data": {"token": "t-1"}, "n": 7}"#);
    let spec = Spec {
        method: Some("POST".into()),
        url: format!(
            "{}/read/{{{{ .remoteRef.key }}}}?v={{{{ .remoteRef.version }}}}&t={{{{ .creds.token }}}}",
            hook.url
        ),
        headers: Some(BTreeMap::from([(
            "Authorization".into(),
            "Bearer {{ .creds.token }}".into(),
        )])),
        body: Some(
            r#"{"ns": "{{ .remoteRef.namespace }}", "p": "{{ .remoteRef.property }}"}"#.into(),
        ),
        result: Some(WebhookResult {
            json_path: Some("$.data".into()),
        }),
        secrets: Some(vec![WebhookSecret {
            name: "creds".into(),
            secret_ref: SecretKeySelector {
                name: Some("hook-creds".into()),
                ..SecretKeySelector::default()
            },
        }]),
        ..Spec::default()
    };
    let client = connect(spec.clone(), Arc::new(RecordedCalls::default())).await;
    let remote = RemoteRef {
        key: "team/db pass".into(),
        version: Some("v1".into()),
        property: Some("token".into()),
        fetch_metadata: false,
    };
    let value = client.get_secret(&remote).await.unwrap();
    assert_eq!(value.expose(), br#"{"token":"t-1"}"#);
    let map = client.get_secret_map(&remote).await.unwrap();
    assert_eq!(map["token"].expose(), b"t-1");
    let sent = hook.requests().remove(0);
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, format!("/read/team%2Fdb+pass?v=v1&t={CANARY}"));
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {CANARY}").as_str())
    );
    assert_eq!(sent.body, r#"{"ns": "default", "p": "token"}"#);

    // non-2xx and malformed answers: clear categories, no secret and no rendered URL
    hook.answer(503, CANARY);
    let e = client.get_secret(&remote).await.unwrap_err();
    assert_eq!(e.category(), "unavailable");
    assert!(e.to_string().contains("endpoint gave error 503"), "{e}");
    hook.answer(403, CANARY);
    let e = client.get_secret_map(&remote).await.unwrap_err();
    assert_eq!(e.category(), "permission_denied");
    hook.answer(404, "");
    assert!(client.get_secret(&remote).await.unwrap_err().is_not_found());
    hook.answer(200, &format!("not json {CANARY}"));
    let malformed = client.get_secret_map(&remote).await.unwrap_err();
    assert_eq!(malformed.category(), "malformed_answer");
    hook.answer(200, r#"{"data": [1]}"#);
    let wrong = client.get_secret_map(&remote).await.unwrap_err();
    assert!(
        wrong.to_string().contains("wrong type: []interface {}"),
        "{wrong}"
    );
    let closed = connect(
        Spec {
            url: "http://127.0.0.1:1/x?t={{ .creds.token }}".into(),
            ..spec.clone()
        },
        Arc::new(RecordedCalls::default()),
    )
    .await;
    let refused = closed.get_secret(&remote).await.unwrap_err();
    assert!(
        refused.to_string().contains("failed to call endpoint"),
        "{refused}"
    );
    assert!(matches!(
        closed.validate().await,
        Err(ProviderError::Unavailable(_))
    ));
    assert_eq!(client.validate().await, Ok(Validation::Ready));
    for e in [e, malformed, wrong, refused] {
        let text = e.to_string();
        assert!(
            !text.contains(CANARY) && !text.contains("127.0.0.1"),
            "{text}"
        );
    }

    // an unlabelled Secret is refused before any call
    let before = hook.requests().len();
    let unlabelled = connect(
        Spec {
            secrets: Some(vec![WebhookSecret {
                name: "creds".into(),
                secret_ref: SecretKeySelector {
                    name: Some("plain".into()),
                    ..SecretKeySelector::default()
                },
            }]),
            ..spec.clone()
        },
        Arc::new(RecordedCalls::default()),
    )
    .await;
    let e = unlabelled
        .get_secret(&remote)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not contain needed label"), "{e}");
    assert_eq!(hook.requests().len(), before);
}

#[tokio::test]
async fn push_sends_the_value_and_stores_are_checked() {
    let hook = Recorder::start("");
    let spec = Spec {
        url: format!("{}/push/{{{{ .remoteRef.remoteKey }}}}", hook.url),
        ..Spec::default()
    };
    let client = connect(spec.clone(), Arc::new(RecordedCalls::default())).await;
    let target = PushRef {
        remote_key: "app-key".into(),
        ..PushRef::default()
    };
    client
        .push(&SecretBytes::from(CANARY), &target)
        .await
        .unwrap();
    let templated = connect(
        Spec {
            method: Some("PUT".into()),
            body: Some(r#"{"name": "{{ .remoteRef.remoteKey }}", "value": "{{ index .remoteRef "app-key" }}"}"#.into()),
            ..spec.clone()
        },
        Arc::new(RecordedCalls::default()),
    )
    .await;
    templated
        .push(&SecretBytes::from("v2"), &target)
        .await
        .unwrap();
    let sent = hook.requests();
    assert_eq!(
        (
            sent[0].method.as_str(),
            sent[0].path.as_str(),
            sent[0].body.as_str()
        ),
        ("POST", "/push/app-key", CANARY)
    );
    assert_eq!(sent[1].method, "PUT");
    assert_eq!(sent[1].body, r#"{"name": "app-key", "value": "v2"}"#);
    hook.answer(500, "");
    let e = client
        .push(&SecretBytes::from(CANARY), &target)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("endpoint gave error 500") && !e.contains(CANARY),
        "{e}"
    );

    // static checks: a ClusterSecretStore's Secrets name their namespace
    let with_secret = Spec {
        secrets: Some(vec![WebhookSecret {
            name: "creds".into(),
            secret_ref: SecretKeySelector {
                name: Some("hook-creds".into()),
                ..SecretKeySelector::default()
            },
        }]),
        ..spec
    };
    let e = WebhookProvider
        .validate_store(&store(StoreKind::ClusterSecretStore, with_secret.clone()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("secrets[0].secretRef.namespace is required"),
        "{e}"
    );
    assert!(
        WebhookProvider
            .validate_store(&store(StoreKind::SecretStore, with_secret))
            .is_ok()
    );
}
