//! End to end: the generators that call an HTTP API (Webhook, GithubAccessToken, Grafana,
//! QuayAccessToken, CloudsmithAccessToken, GitlabDeployToken,
//! BeyondtrustWorkloadCredentialsDynamicSecret), through the
//! `external-secrets-controller` binary on devcluster, against real HTTP servers the test
//! starts ([`Recorder`]): a webhook endpoint is any HTTP server, so the test server is the real
//! counterpart; GitHub has no installable counterpart, so its test server is a stand-in that
//! checks the app JWT's RS256 signature with the app's public key, as GitHub does. Grafana is
//! not installable here either: its stand-in keeps service accounts and tokens as Grafana's
//! HTTP API does (search, create account, create and delete token) and checks the caller's
//! credentials. Quay and Cloudsmith stand-ins check the federated ServiceAccount token
//! (signature against devcluster's JWKS, subject and audience) before issuing a token. No
//! GitLab can run here: its stand-in keeps deploy tokens per project and group as GitLab's
//! deploy-token API does (create, revoke) and checks the `PRIVATE-TOKEN` and each request.
//! BeyondTrust Workload Credentials is a hosted service: its stand-in serves the dynamic-secret
//! generate call over HTTPS and checks the bearer API token and the API version header.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use strongroom_core::crd::external_secrets::ExternalSecret;
use strongroom_testkit::recorder::{Recorded, Recorder};
use strongroom_testkit::{CANARY, assert_no_canary, start_cluster_with_rbac, wait_for};

/// Applies a generator object (namespaced in `default`, or a ClusterGenerator).
async fn apply_generator(client: &kube::Client, obj: Value) {
    let kind = obj["kind"].as_str().unwrap().to_string();
    let ar = kube::api::ApiResource {
        group: "generators.external-secrets.io".into(),
        version: "v1alpha1".into(),
        api_version: "generators.external-secrets.io/v1alpha1".into(),
        plural: match kind.as_str() {
            "Webhook" => "webhooks".into(),
            "GithubAccessToken" => "githubaccesstokens".into(),
            "Grafana" => "grafanas".into(),
            "QuayAccessToken" => "quayaccesstokens".into(),
            "CloudsmithAccessToken" => "cloudsmithaccesstokens".into(),
            "GitlabDeployToken" => "gitlabdeploytokens".into(),
            "BeyondtrustWorkloadCredentialsDynamicSecret" => {
                "beyondtrustworkloadcredentialsdynamicsecrets".into()
            }
            _ => "clustergenerators".into(),
        },
        kind: kind.clone(),
    };
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    let api: Api<kube::api::DynamicObject> = if kind == "ClusterGenerator" {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), "default", &ar)
    };
    api.patch(&name, &PatchParams::apply("test"), &Patch::Apply(&obj))
        .await
        .unwrap();
}

fn generator(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn from_generator(kind: &str, name: &str) -> Value {
    json!({"dataFrom": [{"sourceRef": {"generatorRef": {
        "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": kind, "name": name}}}]})
}

async fn create_secret(client: &kube::Client, name: &str, labels: Value, string_data: Value) {
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "stringData": string_data}),
    )
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// Every ExternalSecret status of `default`, as JSON text.
async fn statuses(client: &kube::Client) -> String {
    serde_json::to_string(
        &Api::<ExternalSecret>::namespaced(client.clone(), "default")
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|e| e.status.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_webhook_calls_the_endpoint_and_keeps_the_secret_on_bad_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/generators.external-secrets.io_webhooks.yaml",
        "deploy/crds/generators.external-secrets.io_clustergenerators.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let api_key = format!("key-{CANARY}");
    let generated = format!("pw-{CANARY}");
    let hook = Recorder::start(
        &json!({"data": {"username": "svc", "password": generated, "port": 5432,
            "extra": {"b": 1, "a": true}}, "ignored": 1})
        .to_string(),
    );
    let tls_hook = Recorder::start_tls(&json!({"token": "over-tls"}).to_string());
    let ca_pem = tls_hook.ca_pem.clone().unwrap();
    create_secret(
        &client,
        "hook-creds",
        json!({"external-secrets.io/type": "webhook"}),
        json!({"apiKey": api_key, "user": "ci bot"}),
    )
    .await;
    create_secret(&client, "unlabelled", json!({}), json!({"apiKey": CANARY})).await;
    let ca_map: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "hook-ca"}, "data": {"ca.crt": ca_pem}}),
    )
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &ca_map)
        .await
        .unwrap();
    let creds = json!([{"name": "creds", "secretRef": {"name": "hook-creds", "key": "apiKey"}}]);
    apply_generator(
        &client,
        generator(
            "Webhook",
            "issue",
            json!({
                "method": "POST",
                "url": format!("{}/issue?user={{{{ .creds.user | urlquery }}}}", hook.url),
                "headers": {"X-Api-Key": "{{ .creds.apiKey }}", "Content-Type": "application/json"},
                "body": "{\"for\": \"{{ .creds.user }}\", \"missing\": \"{{ .creds.nope }}\"}",
                "timeout": "5s",
                "result": {"jsonPath": "$.data"},
                "secrets": creds,
            }),
        ),
    )
    .await;
    apply_generator(
        &client,
        generator(
            "Webhook",
            "unlabelled",
            json!({"url": hook.url, "result": {},
                "secrets": [{"name": "creds", "secretRef": {"name": "unlabelled", "key": "apiKey"}}]}),
        ),
    )
    .await;
    apply_generator(
        &client,
        generator(
            "Webhook",
            "tls-bundle",
            json!({"url": format!("{}/bundle", tls_hook.url), "result": {},
                "caBundle": base64::engine::general_purpose::STANDARD.encode(&ca_pem)}),
        ),
    )
    .await;
    apply_generator(
        &client,
        generator(
            "Webhook",
            "tls-untrusted",
            json!({"url": format!("{}/untrusted", tls_hook.url), "result": {}}),
        ),
    )
    .await;
    apply_generator(
        &client,
        json!({"apiVersion": "generators.external-secrets.io/v1alpha1",
        "kind": "ClusterGenerator", "metadata": {"name": "tls-provider"},
        "spec": {"kind": "Webhook", "generator": {"webhookSpec": {
            "url": format!("{}/provider", tls_hook.url), "result": {"jsonPath": "$"},
            "caProvider": {"type": "ConfigMap", "name": "hook-ca", "key": "ca.crt"}}}}}),
    )
    .await;
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    for (es_name, kind, gen_name) in [
        ("hooked", "Webhook", "issue"),
        ("unlabelled", "Webhook", "unlabelled"),
        ("tls-bundle", "Webhook", "tls-bundle"),
        ("tls-untrusted", "Webhook", "tls-untrusted"),
        ("tls-provider", "ClusterGenerator", "tls-provider"),
    ] {
        let mut spec = from_generator(kind, gen_name);
        spec["refreshInterval"] = json!("1h");
        apply_es(&client, es(es_name, spec)).await;
    }

    // the request: method, rendered URL, headers and body with the Secret's values
    wait_ready(&client, "hooked", "True", "SecretSynced").await;
    let requests: Vec<Recorded> = hook.requests();
    let first = requests.first().expect("the endpoint was called");
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/issue?user=ci+bot");
    assert_eq!(first.header("x-api-key"), Some(api_key.as_str()));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.body, r#"{"for": "ci bot", "missing": "<no value>"}"#);
    // the generated keys: the members of `$.data`, as upstream converts them
    let data = secret_data(&client, "hooked").await.unwrap();
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["extra", "password", "port", "username"]
    );
    assert_eq!(data["password"], generated);
    assert_eq!(data["username"], "svc");
    assert_eq!(data["port"], "5432");
    assert_eq!(data["extra"], r#"{"a":true,"b":1}"#);

    // a non-2xx answer: SecretSyncedError and a Warning event naming the ExternalSecret, the
    // Secret kept as it was
    hook.answer(503, r#"{"error": "busy"}"#);
    force_sync(&client, "default", "hooked").await;
    let message = wait_error(&client, "hooked", "endpoint gave error 503").await;
    assert!(message.contains("Webhook \"issue\""), "{message}");
    wait_event(
        &client,
        "default",
        "hooked",
        "Warning",
        "UpdateFailed",
        "endpoint gave error 503",
    )
    .await;
    assert_eq!(secret_data(&client, "hooked").await.unwrap(), data);
    // a malformed answer: the same, with the parse error
    hook.answer(200, &format!("not json {CANARY}"));
    force_sync(&client, "default", "hooked").await;
    wait_error(&client, "hooked", "failed to parse response json").await;
    wait_event(
        &client,
        "default",
        "hooked",
        "Warning",
        "UpdateFailed",
        "failed to parse response json",
    )
    .await;
    // an answer that is JSON but not an object under the path
    hook.answer(200, r#"{"data": [1, 2]}"#);
    force_sync(&client, "default", "hooked").await;
    wait_error(&client, "hooked", "wrong type: []interface {}").await;
    assert_eq!(secret_data(&client, "hooked").await.unwrap(), data);

    // a referenced Secret without the webhook type label is refused before any call
    let message = wait_error(&client, "unlabelled", "does not contain needed label").await;
    assert!(
        message.contains("external-secrets.io/type: webhook"),
        "{message}"
    );
    assert!(
        !hook.requests().iter().any(|r| r.path == "/"),
        "no call with an unlabelled Secret"
    );

    // HTTPS: the given CA (caBundle, caProvider) is trusted, the system roots alone are not
    wait_ready(&client, "tls-bundle", "True", "SecretSynced").await;
    assert_eq!(
        secret_data(&client, "tls-bundle").await.unwrap()["token"],
        "over-tls"
    );
    wait_ready(&client, "tls-provider", "True", "SecretSynced").await;
    assert_eq!(
        secret_data(&client, "tls-provider").await.unwrap()["token"],
        "over-tls"
    );
    let message = wait_error(&client, "tls-untrusted", "failed to call endpoint").await;
    assert!(message.contains("certificate"), "{message}");
    assert!(secret_data(&client, "tls-untrusted").await.is_none());
    let paths: Vec<String> = tls_hook.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.contains(&"/bundle".to_string()), "{paths:?}");
    assert!(!paths.contains(&"/untrusted".to_string()), "{paths:?}");

    assert_no_canary(
        &[],
        &[
            ("log", &controller.process.log_text()),
            ("events", &events_json(&client, "default").await),
            ("statuses", &statuses(&client).await),
        ],
    );
}

/// The GitHub stand-in's answer to an installation-token request: 201 with a token when the
/// bearer JWT is RS256-signed by the app's key for app `app_id` and the path names install
/// `install_id`, else GitHub's 401.
fn github_answer(
    r: &Recorded,
    public_der: &[u8],
    app_id: &str,
    install_id: &str,
    token: &str,
) -> (u16, String) {
    let refused = || {
        (
            401,
            json!({"message": "A JSON web token could not be decoded"}).to_string(),
        )
    };
    if r.method != "POST" || r.path != format!("/app/installations/{install_id}/access_tokens") {
        return (404, json!({"message": "Not Found"}).to_string());
    }
    let Some(jwt) = r
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
    else {
        return refused();
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_der(public_der);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[app_id]);
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    match jsonwebtoken::decode::<Value>(jwt, &key, &validation) {
        Ok(claims) => {
            let c = claims.claims;
            let lifetime = c["exp"].as_i64().unwrap_or(0) - c["iat"].as_i64().unwrap_or(0);
            if lifetime > 600 {
                return refused();
            }
            (
                201,
                json!({"token": token, "expires_at": "2099-01-01T00:00:00Z"}).to_string(),
            )
        }
        Err(_) => refused(),
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_github_access_token_signs_the_app_jwt() {
    use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/generators.external-secrets.io_githubaccesstokens.yaml",
        "deploy/crds/generators.external-secrets.io_clustergenerators.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    // the app's key pair, and another key GitHub does not know
    let app_key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap();
    let other_key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap();
    let public_der = app_key
        .to_public_key()
        .to_pkcs1_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let app_pem = pem(
        "RSA PRIVATE KEY",
        app_key.to_pkcs1_der().unwrap().as_bytes(),
    );
    let other_pem = pem(
        "RSA PRIVATE KEY",
        other_key.to_pkcs1_der().unwrap().as_bytes(),
    );
    let token = format!("ghs_{CANARY}");
    let answer_token = token.clone();
    // no real GitHub here: a stand-in that checks the JWT as GitHub does
    let github = Recorder::start_responding(Box::new(move |r| {
        github_answer(r, &public_der, "4242", "77", &answer_token)
    }));
    create_secret(
        &client,
        "gh-app",
        json!({}),
        json!({"key.pem": app_pem, "wrong.pem": other_pem, "junk": CANARY}),
    )
    .await;
    let spec = |key: &str| {
        json!({"appID": "4242", "installID": "77", "url": github.url,
            "auth": {"privateKey": {"secretRef": {"name": "gh-app", "key": key}}}})
    };
    let mut narrowed = spec("key.pem");
    narrowed["repositories"] = json!(["infra", "docs"]);
    narrowed["permissions"] = json!({"contents": "read"});
    apply_generator(
        &client,
        generator("GithubAccessToken", "app", spec("key.pem")),
    )
    .await;
    apply_generator(
        &client,
        generator("GithubAccessToken", "wrong-key", spec("wrong.pem")),
    )
    .await;
    apply_generator(
        &client,
        generator("GithubAccessToken", "junk", spec("junk")),
    )
    .await;
    apply_generator(
        &client,
        json!({"apiVersion": "generators.external-secrets.io/v1alpha1",
        "kind": "ClusterGenerator", "metadata": {"name": "narrowed"},
        "spec": {"kind": "GithubAccessToken", "generator": {"githubAccessTokenSpec": narrowed}}}),
    )
    .await;
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    for (es_name, kind, gen_name) in [
        ("gh", "GithubAccessToken", "app"),
        ("gh-wrong-key", "GithubAccessToken", "wrong-key"),
        ("gh-junk", "GithubAccessToken", "junk"),
        ("gh-narrowed", "ClusterGenerator", "narrowed"),
    ] {
        apply_es(&client, es(es_name, from_generator(kind, gen_name))).await;
    }
    wait_ready(&client, "gh", "True", "SecretSynced").await;
    let data = secret_data(&client, "gh").await.unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data["token"], token);
    let requests = github.requests();
    let plain = requests
        .iter()
        .find(|r| r.body.is_empty())
        .expect("a request without narrowing");
    assert_eq!(
        plain.header("accept"),
        Some("application/vnd.github.v3+json")
    );
    wait_ready(&client, "gh-narrowed", "True", "SecretSynced").await;
    let narrowed_body: Value = github
        .requests()
        .iter()
        .find(|r| !r.body.is_empty())
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .unwrap();
    assert_eq!(
        narrowed_body,
        json!({"repositories": ["infra", "docs"], "permissions": {"contents": "read"}})
    );
    // a JWT signed by a key GitHub does not know: GitHub's message and status
    let message = wait_error(&client, "gh-wrong-key", "response code: 401").await;
    assert!(
        message.contains("GithubAccessToken \"wrong-key\"")
            && message.contains("A JSON web token could not be decoded"),
        "{message}"
    );
    wait_event(
        &client,
        "default",
        "gh-wrong-key",
        "Warning",
        "UpdateFailed",
        "response code: 401",
    )
    .await;
    assert!(secret_data(&client, "gh-wrong-key").await.is_none());
    wait_error(&client, "gh-junk", "error parsing RSA private key").await;
    assert_no_canary(
        &[],
        &[
            ("log", &controller.process.log_text()),
            ("events", &events_json(&client, "default").await),
            ("statuses", &statuses(&client).await),
        ],
    );
}

/// The Grafana stand-in's state: service accounts (id, name, login, role) and live tokens
/// (id, account id, key).
#[derive(Default)]
struct GrafanaState {
    accounts: Vec<(i64, String, String, String)>,
    tokens: Vec<(i64, i64, String)>,
    next: i64,
}

/// The Grafana stand-in: Grafana's service-account API for a caller with bearer `admin`.
fn grafana_answer(
    r: &Recorded,
    state: &std::sync::Mutex<GrafanaState>,
    admin: &str,
) -> (u16, String) {
    let msg = |status: u16, m: &str| (status, json!({"message": m}).to_string());
    if r.header("authorization") != Some(format!("Bearer {admin}").as_str()) {
        return msg(401, "Unauthorized");
    }
    let mut s = state.lock().unwrap();
    let path = r.path.as_str();
    let parts: Vec<&str> = path.trim_start_matches("/api/").split('/').collect();
    match (r.method.as_str(), parts.as_slice()) {
        ("GET", [sa, search]) if *sa == "serviceaccounts" && search.starts_with("search") => {
            let query = search
                .split("query=")
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let found: Vec<Value> = s
                .accounts
                .iter()
                .filter(|a| a.1.contains(&query))
                .map(|a| json!({"id": a.0, "name": a.1, "login": a.2, "role": a.3}))
                .collect();
            (200, json!({"totalCount": found.len(), "serviceAccounts": found, "page": 1, "perPage": 1000}).to_string())
        }
        ("POST", ["serviceaccounts"]) => {
            let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
            s.next += 1;
            let id = s.next;
            let name = body["name"].as_str().unwrap_or_default().to_string();
            let login = format!("sa-{name}");
            let role = body["role"].as_str().unwrap_or_default().to_string();
            s.accounts
                .push((id, name.clone(), login.clone(), role.clone()));
            (
                201,
                json!({"id": id, "name": name, "login": login, "role": role}).to_string(),
            )
        }
        ("POST", ["serviceaccounts", id, "tokens"]) => {
            let id: i64 = id.parse().unwrap_or(-1);
            if !s.accounts.iter().any(|a| a.0 == id) {
                return msg(404, "service account not found");
            }
            s.next += 1;
            let token_id = s.next;
            let key = format!("glsa_{token_id}_{CANARY}");
            s.tokens.push((token_id, id, key.clone()));
            let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
            (
                200,
                json!({"id": token_id, "name": body["name"], "key": key}).to_string(),
            )
        }
        ("DELETE", ["serviceaccounts", id, "tokens", token]) => {
            let (id, token): (i64, i64) = (id.parse().unwrap_or(-1), token.parse().unwrap_or(-1));
            let before = s.tokens.len();
            s.tokens.retain(|t| !(t.0 == token && t.1 == id));
            if s.tokens.len() == before {
                return msg(404, "service account token not found");
            }
            msg(200, "Service account token deleted")
        }
        _ => msg(404, "Not found"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_grafana_creates_tokens_and_deletes_replaced_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/generators.external-secrets.io_grafanas.yaml",
        "deploy/crds/generators.external-secrets.io_generatorstates.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let admin = format!("admin-{CANARY}");
    let state = std::sync::Arc::new(std::sync::Mutex::new(GrafanaState::default()));
    let (shared, admin_token) = (state.clone(), admin.clone());
    // no real Grafana here: a stand-in of its service-account API
    let grafana =
        Recorder::start_responding(Box::new(move |r| grafana_answer(r, &shared, &admin_token)));
    create_secret(
        &client,
        "grafana-admin",
        json!({}),
        json!({"token": admin, "wrong": "not-the-admin-token"}),
    )
    .await;
    let spec = |key: &str| {
        json!({"url": grafana.url, "auth": {"token": {"name": "grafana-admin", "key": key}},
            "serviceAccount": {"name": "eso-ci", "role": "Viewer"}})
    };
    apply_generator(&client, generator("Grafana", "ci", spec("token"))).await;
    apply_generator(&client, generator("Grafana", "denied", spec("wrong"))).await;
    let controller =
        start_controller(dir.path(), &cluster, &["--generator-gc-grace-period=0s"]).await;
    apply_es(&client, es("grafana", from_generator("Grafana", "ci"))).await;
    apply_es(
        &client,
        es("grafana-denied", from_generator("Grafana", "denied")),
    )
    .await;
    wait_ready(&client, "grafana", "True", "SecretSynced").await;
    let first = secret_data(&client, "grafana").await.unwrap();
    assert_eq!(first["login"], "sa-eso-ci");
    {
        let s = state.lock().unwrap();
        assert_eq!(s.accounts.len(), 1);
        assert_eq!(s.accounts[0].3, "Viewer");
        assert_eq!(s.tokens.len(), 1);
        assert_eq!(first["token"], s.tokens[0].2);
    }
    // a refresh makes a new token on the same account and deletes the replaced one
    force_sync(&client, "default", "grafana").await;
    wait_for(
        || async {
            secret_data(&client, "grafana")
                .await
                .is_some_and(|d| d["token"] != first["token"])
        },
        "a new Grafana token",
    )
    .await;
    let second = secret_data(&client, "grafana").await.unwrap();
    wait_for(
        || async {
            let s = state.lock().unwrap();
            s.tokens.len() == 1 && s.tokens[0].2 == second["token"]
        },
        "the replaced Grafana token deleted",
    )
    .await;
    assert_eq!(
        state.lock().unwrap().accounts.len(),
        1,
        "the account is reused"
    );
    let methods: Vec<String> = grafana
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        methods.contains(&"GET /api/serviceaccounts/search?query=eso-ci".to_string()),
        "{methods:?}"
    );
    // refused credentials: Grafana's status and message, no Secret
    let message = wait_error(&client, "grafana-denied", "[401] Unauthorized").await;
    assert!(message.contains("Grafana \"denied\""), "{message}");
    assert!(secret_data(&client, "grafana-denied").await.is_none());
    assert_no_canary(
        &[],
        &[
            ("log", &controller.process.log_text()),
            ("events", &events_json(&client, "default").await),
            ("statuses", &statuses(&client).await),
        ],
    );
}

/// A deploy token the GitLab stand-in keeps: id, where (`projects/<escaped id>` or
/// `groups/<escaped id>`), the create request's body, and the token.
struct DeployToken {
    id: i64,
    at: String,
    request: Value,
    token: String,
}

/// The GitLab stand-in's state: live deploy tokens and the last id handed out.
#[derive(Default)]
struct GitlabState {
    tokens: Vec<DeployToken>,
    next: i64,
}

/// The GitLab stand-in: the deploy-token API of projects `group/project` and group `42` for a
/// caller whose `PRIVATE-TOKEN` is `admin`. Creating checks the JSON body as GitLab's API
/// reference describes it (name, scopes, optional username and ISO 8601 `expires_at`).
fn gitlab_answer(
    r: &Recorded,
    state: &std::sync::Mutex<GitlabState>,
    admin: &str,
) -> (u16, String) {
    let msg = |status: u16, m: &str| (status, json!({"message": m}).to_string());
    if r.header("private-token") != Some(admin) {
        return msg(401, "401 Unauthorized");
    }
    let mut s = state.lock().unwrap();
    let parts: Vec<&str> = r.path.trim_start_matches("/api/v4/").split('/').collect();
    let (at, rest) = match parts.as_slice() {
        [kind @ ("projects" | "groups"), id, rest @ ..] => (format!("{kind}/{id}"), rest),
        _ => return msg(404, "404 Not Found"),
    };
    if at != "projects/group%2Fproject" && at != "groups/42" {
        return msg(404, "404 Project Not Found");
    }
    match (r.method.as_str(), rest) {
        ("POST", ["deploy_tokens"]) => {
            let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
            if r.header("content-type") != Some("application/json")
                || !body["name"].is_string()
                || body["scopes"].as_array().is_none_or(Vec::is_empty)
            {
                return (
                    400,
                    json!({"error": "name, scopes are missing"}).to_string(),
                );
            }
            s.next += 1;
            let id = s.next;
            let username = body["username"]
                .as_str()
                .map_or_else(|| format!("gitlab+deploy-token-{id}"), str::to_string);
            let token = format!("gldt-{id}-{CANARY}");
            s.tokens.push(DeployToken {
                id,
                at,
                request: body.clone(),
                token: token.clone(),
            });
            (
                201,
                json!({"id": id, "name": body["name"], "username": username,
                    "expires_at": body["expires_at"], "token": token, "revoked": false,
                    "expired": false, "scopes": body["scopes"]})
                .to_string(),
            )
        }
        ("DELETE", ["deploy_tokens", id]) => {
            let id: i64 = id.parse().unwrap_or(-1);
            let before = s.tokens.len();
            s.tokens.retain(|t| !(t.id == id && t.at == at));
            if s.tokens.len() == before {
                return msg(404, "404 Deploy Token Not Found");
            }
            (204, String::new())
        }
        _ => msg(404, "404 Not Found"),
    }
}

/// GitlabDeployToken against the GitLab stand-in: the request GitLab gets (escaped project
/// path, access token, name, scopes, username, expiry in UTC), upstream's output keys, the
/// GeneratorState (where the token was made and its id, never a token), a refresh revoking the
/// replaced token, a group token, deleting the ExternalSecret revoking its token, and bad
/// generators as conditions naming the object; no token in the log, events or statuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_gitlab_deploy_token_revokes_replaced_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/generators.external-secrets.io_gitlabdeploytokens.yaml",
        "deploy/crds/generators.external-secrets.io_generatorstates.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let admin = format!("glpat-{CANARY}");
    let state = std::sync::Arc::new(std::sync::Mutex::new(GitlabState::default()));
    let (shared, admin_token) = (state.clone(), admin.clone());
    // no GitLab here: a stand-in of its deploy-token API
    let gitlab =
        Recorder::start_responding(Box::new(move |r| gitlab_answer(r, &shared, &admin_token)));
    create_secret(
        &client,
        "gitlab-admin",
        json!({}),
        json!({"token": admin, "wrong": "glpat-not-the-admin"}),
    )
    .await;
    let auth = |key: &str| json!({"token": {"secretRef": {"name": "gitlab-admin", "key": key}}});
    let url = format!("{}/", gitlab.url);
    for (name, spec) in [
        (
            "deploy",
            json!({"url": url, "projectID": "group/project", "name": "eso-ci",
                "scopes": ["read_repository", "read_registry"], "username": "ci-bot",
                "expiresAt": "2030-01-02T03:04:05+01:00", "auth": auth("token")}),
        ),
        (
            "group",
            json!({"url": url, "groupID": "42", "name": "eso-group",
                "scopes": ["read_package_registry"], "auth": auth("token")}),
        ),
        (
            "denied",
            json!({"url": url, "projectID": "group/project", "name": "x",
                "scopes": ["read_repository"], "auth": auth("wrong")}),
        ),
        (
            "both",
            json!({"url": url, "projectID": "1", "groupID": "2", "name": "x",
                "scopes": ["read_repository"], "auth": auth("token")}),
        ),
    ] {
        apply_generator(&client, generator("GitlabDeployToken", name, spec)).await;
    }
    let controller =
        start_controller(dir.path(), &cluster, &["--generator-gc-grace-period=0s"]).await;
    for name in ["deploy", "group", "denied", "both"] {
        apply_es(
            &client,
            es(
                &format!("gl-{name}"),
                from_generator("GitlabDeployToken", name),
            ),
        )
        .await;
    }
    wait_ready(&client, "gl-deploy", "True", "SecretSynced").await;
    let first = secret_data(&client, "gl-deploy").await.unwrap();
    assert_eq!(first.keys().collect::<Vec<_>>(), ["token", "username"]);
    assert_eq!(first["username"], "ci-bot");
    // the project's and the group's tokens are made concurrently: either may get id 1
    let project_token_id = {
        let s = state.lock().unwrap();
        let made: Vec<&DeployToken> = s
            .tokens
            .iter()
            .filter(|t| t.at == "projects/group%2Fproject")
            .collect();
        assert_eq!(made.len(), 1);
        assert_eq!(first["token"], made[0].token);
        assert_eq!(
            made[0].request,
            json!({"name": "eso-ci", "scopes": ["read_repository", "read_registry"],
                "username": "ci-bot", "expires_at": "2030-01-02T02:04:05Z"})
        );
        made[0].id
    };
    // the GeneratorState says where the token is and its id, not the token
    let states = Api::<strongroom_core::crd::generators::GeneratorState>::namespaced(
        client.clone(),
        "default",
    );
    let items = states.list(&Default::default()).await.unwrap().items;
    let recorded = serde_json::to_string(&items).unwrap();
    assert!(
        items.iter().any(|g| g.spec.state.0
            == json!({"url": url, "projectID": "group/project", "tokenID": project_token_id})
            && g.spec.resource.0["kind"] == "GitlabDeployToken"),
        "{recorded}"
    );
    assert!(!recorded.contains(CANARY), "{recorded}");

    // a refresh makes a new token and revokes the replaced one
    force_sync(&client, "default", "gl-deploy").await;
    wait_for(
        || async {
            secret_data(&client, "gl-deploy")
                .await
                .is_some_and(|d| d["token"] != first["token"])
        },
        "a new deploy token",
    )
    .await;
    let second = secret_data(&client, "gl-deploy").await.unwrap();
    let project_tokens = |s: &GitlabState| -> Vec<String> {
        s.tokens
            .iter()
            .filter(|t| t.at == "projects/group%2Fproject")
            .map(|t| t.token.clone())
            .collect()
    };
    wait_for(
        || async { project_tokens(&state.lock().unwrap()) == [second["token"].clone()] },
        "the replaced deploy token revoked",
    )
    .await;
    let calls: Vec<String> = gitlab
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        calls.contains(&format!(
            "DELETE /api/v4/projects/group%2Fproject/deploy_tokens/{project_token_id}"
        )),
        "{calls:?}"
    );

    // a group token, GitLab's default username
    wait_ready(&client, "gl-group", "True", "SecretSynced").await;
    let group = secret_data(&client, "gl-group").await.unwrap();
    assert!(
        group["username"].starts_with("gitlab+deploy-token-"),
        "{group:?}"
    );

    // deleting the ExternalSecret revokes its current token
    Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .delete("gl-deploy", &Default::default())
        .await
        .unwrap();
    wait_for(
        || async { project_tokens(&state.lock().unwrap()).is_empty() },
        "the deleted ExternalSecret's deploy token revoked",
    )
    .await;

    // refused access token and a bad spec: conditions naming the generator, no Secret
    let message = wait_error(&client, "gl-denied", "401 Unauthorized").await;
    assert!(
        message.contains("GitlabDeployToken \"denied\"") && message.contains("response code: 401"),
        "{message}"
    );
    let message = wait_error(&client, "gl-both", "exactly one of projectID or groupID").await;
    assert!(message.contains("GitlabDeployToken \"both\""), "{message}");
    for name in ["gl-denied", "gl-both"] {
        assert!(secret_data(&client, name).await.is_none());
    }
    let recorded =
        serde_json::to_string(&states.list(&Default::default()).await.unwrap().items).unwrap();
    assert_no_canary(
        &[],
        &[
            ("log", &controller.process.log_text()),
            ("events", &events_json(&client, "default").await),
            ("statuses", &statuses(&client).await),
            ("generator states", &recorded),
        ],
    );
}

/// The BeyondTrust stand-in's site.
const BT_SITE: &str = "a1b2c3d4-e5f6-4890-abcd-ef1234567890";

/// The BeyondTrust Workload Credentials stand-in: the dynamic-secret generate call of
/// definition `prod/aws/aws-temp` for a caller whose bearer token is `api`, with upstream's
/// API version header; each call hands out new credentials (`generated` counts them).
fn beyondtrust_answer(
    r: &Recorded,
    generated: &std::sync::atomic::AtomicU32,
    api: &str,
) -> (u16, String) {
    let err =
        |status: u16, e: &str, m: &str| (status, json!({"error": e, "message": m}).to_string());
    if r.header("authorization") != Some(format!("Bearer {api}").as_str()) {
        return err(401, "unauthorized", "invalid API token");
    }
    if r.header("bt-secrets-api-version") != Some("2026-04-28") {
        return err(400, "bad_request", "unsupported API version");
    }
    let prefix = format!("/{BT_SITE}/secrets/dynamic/");
    match (r.method.as_str(), r.path.strip_prefix(&prefix)) {
        ("POST", Some("aws-temp/generate?folder=prod%2Faws")) => {
            let n = generated.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            (
                201,
                json!({"secret": {"accessKeyId": format!("ASIABT{n}"),
                    "secretAccessKey": format!("sk-{n}-{CANARY}"),
                    "sessionToken": format!("st-{n}-{CANARY}"),
                    "leaseId": format!("lease-{n}"), "expiration": "2030-01-01T00:00:00Z"}})
                .to_string(),
            )
        }
        ("POST", Some(_)) => err(404, "not_found", "dynamic secret definition not found"),
        _ => err(404, "not_found", "no such route"),
    }
}

/// BeyondtrustWorkloadCredentialsDynamicSecret against the stand-in over HTTPS: upstream's
/// output keys, new credentials at each refresh, the CA from `caBundle` or a ConfigMap
/// (`caProvider`), through a ClusterGenerator, and failures (an untrusted server, an unknown
/// definition, a plain-HTTP apiUrl) as conditions naming the generator; no credential or API
/// token in the log, events or statuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_beyondtrust_dynamic_secret_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/generators.external-secrets.io_beyondtrustworkloadcredentialsdynamicsecrets.yaml",
        "deploy/crds/generators.external-secrets.io_clustergenerators.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let api = format!("bt-api-{CANARY}");
    let generated = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (count, api_token) = (generated.clone(), api.clone());
    // no BeyondTrust here: a stand-in of its generate call
    let bt = Recorder::start_tls_responding(Box::new(move |r| {
        beyondtrust_answer(r, &count, &api_token)
    }));
    let ca_pem = bt.ca_pem.clone().unwrap();
    create_secret(&client, "bt-api", json!({}), json!({"token": api})).await;
    let ca_map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "bt-ca"}, "data": {"ca.crt": ca_pem}}))
            .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &ca_map)
        .await
        .unwrap();
    let provider = |path: &str, url: &str, ca: Value| {
        let mut p = json!({"auth": {"apikey": {"token": {"name": "bt-api", "key": "token"}}},
            "server": {"apiUrl": url, "siteId": BT_SITE}, "folderPath": path});
        p.as_object_mut()
            .unwrap()
            .extend(ca.as_object().cloned().unwrap_or_default());
        p
    };
    let bundle = json!({"caBundle": base64::engine::general_purpose::STANDARD.encode(&ca_pem)});
    let kind = "BeyondtrustWorkloadCredentialsDynamicSecret";
    for (name, p) in [
        (
            "aws",
            provider("prod/aws/aws-temp", &bt.url, bundle.clone()),
        ),
        (
            "via-configmap",
            provider(
                "prod/aws/aws-temp",
                &bt.url,
                json!({"caProvider": {"type": "ConfigMap", "name": "bt-ca", "key": "ca.crt"}}),
            ),
        ),
        (
            "untrusted",
            provider("prod/aws/aws-temp", &bt.url, json!({})),
        ),
        (
            "unknown",
            provider("prod/aws/nope", &bt.url, bundle.clone()),
        ),
        (
            "plain-http",
            provider("prod/aws/aws-temp", "http://127.0.0.1:9", json!({})),
        ),
    ] {
        apply_generator(&client, generator(kind, name, json!({"provider": p}))).await;
    }
    apply_generator(
        &client,
        json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "ClusterGenerator",
            "metadata": {"name": "bt-cluster"},
            "spec": {"kind": kind, "generator": {"beyondtrustWorkloadCredentialsDynamicSecretSpec":
                {"provider": provider("prod/aws/aws-temp", &bt.url, bundle.clone())}}}}),
    )
    .await;
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    for name in ["aws", "via-configmap", "untrusted", "unknown", "plain-http"] {
        apply_es(
            &client,
            es(&format!("bt-{name}"), from_generator(kind, name)),
        )
        .await;
    }
    apply_es(
        &client,
        es(
            "bt-cluster",
            from_generator("ClusterGenerator", "bt-cluster"),
        ),
    )
    .await;

    wait_ready(&client, "bt-aws", "True", "SecretSynced").await;
    let first = secret_data(&client, "bt-aws").await.unwrap();
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        [
            "accessKeyId",
            "expiration",
            "leaseId",
            "secretAccessKey",
            "sessionToken"
        ]
    );
    assert!(first["accessKeyId"].starts_with("ASIABT"), "{first:?}");
    assert_eq!(first["expiration"], "2030-01-01T00:00:00Z");
    // each refresh asks for new credentials
    force_sync(&client, "default", "bt-aws").await;
    wait_for(
        || async {
            secret_data(&client, "bt-aws")
                .await
                .is_some_and(|d| d["leaseId"] != first["leaseId"])
        },
        "new BeyondTrust credentials",
    )
    .await;
    for name in ["bt-via-configmap", "bt-cluster"] {
        wait_ready(&client, name, "True", "SecretSynced").await;
        assert!(secret_data(&client, name).await.unwrap()["secretAccessKey"].starts_with("sk-"));
    }
    let message = wait_error(&client, "bt-untrusted", "unable to generate dynamic secret").await;
    assert!(
        message.contains(&format!("{kind} \"untrusted\"")),
        "{message}"
    );
    let message = wait_error(&client, "bt-unknown", "HTTP 404").await;
    assert!(
        message.contains("dynamic secret definition not found at path \"prod/aws\"")
            && message.contains(&format!("{kind} \"unknown\"")),
        "{message}"
    );
    let message = wait_error(&client, "bt-plain-http", "must be an https URL").await;
    assert!(
        message.contains(&format!("{kind} \"plain-http\"")),
        "{message}"
    );
    for name in ["bt-untrusted", "bt-unknown", "bt-plain-http"] {
        assert!(secret_data(&client, name).await.is_none());
    }
    assert!(
        bt.requests()
            .iter()
            .all(|r| r.path.starts_with(&format!("/{BT_SITE}/secrets/dynamic/"))),
        "only generate calls"
    );
    assert_no_canary(
        &[],
        &[
            ("log", &controller.process.log_text()),
            ("events", &events_json(&client, "default").await),
            ("statuses", &statuses(&client).await),
        ],
    );
}

/// Whether `token` is a ServiceAccount token of devcluster (signed by a key of `jwks`) for
/// `subject` with `audience`.
fn federated_token_ok(jwks: &Value, token: &str, subject: &str, audience: &str) -> bool {
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return false;
    };
    let Ok(set) = serde_json::from_value::<jsonwebtoken::jwk::JwkSet>(jwks.clone()) else {
        return false;
    };
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    set.keys.iter().any(|jwk| {
        jsonwebtoken::DecodingKey::from_jwk(jwk)
            .ok()
            .and_then(|key| jsonwebtoken::decode::<Value>(token, &key, &validation).ok())
            .is_some_and(|t| t.claims["sub"] == subject)
    })
}

/// A registry token as Quay and Cloudsmith issue them: a JWT with `exp`.
fn issued_jwt(exp: i64) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"exp": exp, "sub": "robot", "nonce": CANARY}),
        &jsonwebtoken::EncodingKey::from_secret(b"stand-in"),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_quay_and_cloudsmith_exchange_the_service_account_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/generators.external-secrets.io_quayaccesstokens.yaml",
        "deploy/crds/generators.external-secrets.io_cloudsmithaccesstokens.yaml",
        "deploy/crds/generators.external-secrets.io_clustergenerators.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let jwks: Value = serde_json::from_str(
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
    create_service_account(&client, "quay-ci", json!({})).await;
    create_service_account(&client, "cs-ci", json!({})).await;
    // no real Quay or Cloudsmith here: stand-ins that check the federated identity
    let quay_jwks = jwks.clone();
    let quay = Recorder::start_tls_responding(Box::new(move |r| {
        let refused = (401, json!({"error": "invalid federated token"}).to_string());
        if r.method != "GET" || r.path != "/oauth2/federation/robot/token" {
            return (404, "{}".to_string());
        }
        let Some((robot, token)) = r
            .header("authorization")
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| {
                t.split_once(':')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
        else {
            return refused;
        };
        let sub = "system:serviceaccount:default:quay-ci";
        if robot != "acme+ci" || !federated_token_ok(&quay_jwks, &token, sub, "quay.example") {
            return refused;
        }
        (200, json!({"token": issued_jwt(4102444800)}).to_string())
    }));
    let cs_jwks = jwks.clone();
    let cloudsmith = Recorder::start_responding(Box::new(move |r| {
        if r.method != "POST" || r.path != "/openid/acme/" {
            return (404, "{}".to_string());
        }
        let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
        let token = body["oidc_token"].as_str().unwrap_or_default();
        let sub = "system:serviceaccount:default:cs-ci";
        if body["service_slug"] != "ci-bot"
            || !federated_token_ok(&cs_jwks, token, sub, "cloudsmith")
        {
            return (401, json!({"detail": "Invalid OIDC token"}).to_string());
        }
        (201, json!({"token": issued_jwt(4102444801)}).to_string())
    }));
    let ca_file = dir.path().join("stand-in-ca.pem");
    std::fs::write(&ca_file, quay.ca_pem.clone().unwrap()).unwrap();
    let quay_host = quay.url.trim_start_matches("https://").to_string();
    apply_generator(
        &client,
        generator(
            "QuayAccessToken",
            "quay",
            json!({
        "url": quay.url, "robotAccount": "acme+ci",
        "serviceAccountRef": {"name": "quay-ci", "audiences": ["quay.example"]}}),
        ),
    )
    .await;
    apply_generator(
        &client,
        generator(
            "QuayAccessToken",
            "quay-wrong-sa",
            json!({
        "url": quay_host, "robotAccount": "acme+ci",
        "serviceAccountRef": {"name": "cs-ci", "audiences": ["quay.example"]}}),
        ),
    )
    .await;
    apply_generator(
        &client,
        generator(
            "CloudsmithAccessToken",
            "cs",
            json!({
        "apiUrl": format!("{}/", cloudsmith.url), "orgSlug": "acme", "serviceSlug": "ci-bot",
        "serviceAccountRef": {"name": "cs-ci", "audiences": ["cloudsmith"]}}),
        ),
    )
    .await;
    apply_generator(
        &client,
        json!({"apiVersion": "generators.external-secrets.io/v1alpha1",
        "kind": "ClusterGenerator", "metadata": {"name": "cs-wrong-slug"},
        "spec": {"kind": "CloudsmithAccessToken", "generator": {"cloudsmithAccessTokenSpec": {
            "apiUrl": cloudsmith.url, "orgSlug": "acme", "serviceSlug": "other",
            "serviceAccountRef": {"name": "cs-ci", "audiences": ["cloudsmith"]}}}}}),
    )
    .await;
    // the stand-in's CA is a system root for the controller (SSL_CERT_FILE), as a public
    // Quay's is: upstream calls Quay over HTTPS with the system roots
    let controller = start_controller_with_env(
        dir.path(),
        &cluster,
        &[],
        &[("SSL_CERT_FILE", ca_file.display().to_string())],
    )
    .await;
    for (es_name, kind, gen_name) in [
        ("quay", "QuayAccessToken", "quay"),
        ("quay-wrong-sa", "QuayAccessToken", "quay-wrong-sa"),
        ("cs", "CloudsmithAccessToken", "cs"),
        ("cs-wrong-slug", "ClusterGenerator", "cs-wrong-slug"),
    ] {
        apply_es(&client, es(es_name, from_generator(kind, gen_name))).await;
    }
    wait_ready(&client, "quay", "True", "SecretSynced").await;
    let data = secret_data(&client, "quay").await.unwrap();
    assert_eq!(data["registry"], quay_host);
    assert_eq!(data["expiry"], "4102444800");
    let auth = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&data["auth"])
            .unwrap(),
    )
    .unwrap();
    let (robot, token) = auth.split_once(':').unwrap();
    assert_eq!(robot, "acme+ci");
    assert!(token.contains('.') && token.len() > 40, "a JWT");
    wait_ready(&client, "cs", "True", "SecretSynced").await;
    let data = secret_data(&client, "cs").await.unwrap();
    assert_eq!(data["expiry"], "4102444801");
    let auth = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&data["auth"])
            .unwrap(),
    )
    .unwrap();
    assert!(auth.starts_with("token:ey"), "token:<JWT>");
    // the wrong identity or service: the stand-in's refusal, no Secret
    let message = wait_error(&client, "quay-wrong-sa", "unexpected status: 401").await;
    assert!(
        message.contains("QuayAccessToken \"quay-wrong-sa\""),
        "{message}"
    );
    let message = wait_error(&client, "cs-wrong-slug", "unexpected status: 401").await;
    assert!(
        message.contains("unable to exchange OIDC token"),
        "{message}"
    );
    assert!(secret_data(&client, "quay-wrong-sa").await.is_none());
    assert!(secret_data(&client, "cs-wrong-slug").await.is_none());
    assert_no_canary(
        &[],
        &[
            ("log", &controller.process.log_text()),
            ("events", &events_json(&client, "default").await),
            ("statuses", &statuses(&client).await),
        ],
    );
}
