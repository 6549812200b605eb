//! The vault provider against a real OpenBao dev server: the provider-api conformance suite
//! on KV v2 and KV v1, through static-token and AppRole logins.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use strongroom_provider_api::conformance::{Fixture, run};
use strongroom_testkit::backends::OpenBao;

/// Without a property a key reads as the JSON of its data map (upstream), so the "plain"
/// key is a one-field map. Pushing needs a JSON object without a property (upstream), which
/// the suite's plain-text push is not: push is covered by tests/kv.rs instead.
fn fixture(prefix: &str) -> Fixture {
    Fixture {
        plain_key: format!("{prefix}app/plain"),
        plain_value: r#"{"value":"plain-value"}"#.into(),
        json_key: format!("{prefix}app/db"),
        json_user: "admin".into(),
        missing_key: format!("{prefix}app/nope"),
        find_regexp: Some("app/(plain|db)$".into()),
        push_key: None,
    }
}

fn seed(bao: &OpenBao, mount: &str) {
    bao.cli(&[
        "kv",
        "put",
        &format!("{mount}/app/plain"),
        "value=plain-value",
    ]);
    bao.cli(&[
        "kv",
        "put",
        &format!("{mount}/app/db"),
        "user=admin",
        "port=5432",
    ]);
    bao.cli(&["kv", "put", &format!("{mount}/other/x"), "value=x"]);
}

#[tokio::test]
async fn conforms_on_kv_v2_with_approle() {
    let bao = OpenBao::start().await;
    seed(&bao, "secret");
    let env = Env::new(Creds::default());
    let auth = approle(&bao, &env, "1h");
    let client = connect(&store(spec(&bao, Some("secret"), auth)), &env).await;
    assert!(
        client.renews_itself(),
        "a login token is renewed by the client"
    );
    let failures = run(client.as_ref(), &fixture("")).await;
    assert!(failures.is_empty(), "{failures:#?}");
    for call in [
        "Login",
        "LookupSelf",
        "ReadSecretData",
        "ListSecrets",
        "RevokeSelf",
    ] {
        assert!(env.calls.count(call) > 0, "{call} not counted");
    }
    assert_eq!(env.calls.count("Login"), 1);
    assert_eq!(
        env.calls.providers(),
        ["HashiCorp/Vault".to_string()].into()
    );
}

#[tokio::test]
async fn conforms_on_kv_v2_with_the_mount_in_the_key() {
    let bao = OpenBao::start().await;
    seed(&bao, "secret");
    let env = Env::new(Creds::default());
    let auth = root_auth(&env);
    let client = connect(&store(spec(&bao, None, auth)), &env).await;
    assert!(client.valid_until().is_none(), "a static token is kept");
    let mut fx = fixture("secret/");
    fx.find_regexp = None;
    let failures = run(client.as_ref(), &fx).await;
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        env.calls.count("RevokeSelf"),
        0,
        "a static token is never revoked"
    );
}

#[tokio::test]
async fn conforms_on_kv_v1() {
    let bao = OpenBao::start().await;
    bao.cli(&["secrets", "enable", "-path=kv1", "-version=1", "kv"]);
    seed(&bao, "kv1");
    let env = Env::new(Creds::default());
    let mut spec = spec(&bao, Some("kv1"), root_auth(&env));
    spec.version = Some(strongroom_core::crd::external_secrets::VaultKvVersion::V1);
    let client = connect(&store(spec), &env).await;
    let failures = run(client.as_ref(), &fixture("")).await;
    assert!(failures.is_empty(), "{failures:#?}");
}
