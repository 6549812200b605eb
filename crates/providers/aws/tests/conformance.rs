//! The aws provider against moto (a real AWS API emulator started per test): the provider-api
//! conformance suite for Secrets Manager and Parameter Store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use strongroom_provider_api::conformance::{Fixture, run};
use strongroom_testkit::backends::Moto;

#[tokio::test]
async fn secrets_manager_conforms() {
    let moto = Moto::start().await;
    let sm = sm(&moto).await;
    put_secret(&sm, "app/plain", "plain-value").await;
    put_secret(&sm, "app/db", r#"{"user":"admin","port":5432}"#).await;
    put_secret(&sm, "other/x", "x").await;
    let (calls, env) = provider_env(Resolver::with_keys("test", "test"));
    let client = connect(&moto, &store(static_spec("SecretsManager")), env).await;
    let failures = run(
        client.as_ref(),
        &Fixture {
            plain_key: "app/plain".into(),
            plain_value: "plain-value".into(),
            json_key: "app/db".into(),
            json_user: "admin".into(),
            missing_key: "app/nope".into(),
            find_regexp: Some("^app/".into()),
            push_key: Some("pushed/one".into()),
        },
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
    let seen = calls.labels();
    for call in [
        "GetSecretValue",
        "ListSecrets",
        "BatchGetSecretValue",
        "DescribeSecret",
        "CreateSecret",
        "PutSecretValue",
        "DeleteSecret",
    ] {
        assert!(
            seen.contains(&("AWS/SecretsManager".into(), call.into())),
            "{call} not counted: {seen:?}"
        );
    }
}

#[tokio::test]
async fn parameter_store_conforms() {
    let moto = Moto::start().await;
    let ssm = ssm(&moto).await;
    put_param(&ssm, "/app/plain", "plain-value").await;
    put_param(&ssm, "/app/db", r#"{"user":"admin","port":5432}"#).await;
    put_param(&ssm, "/other/x", "x").await;
    let (calls, env) = provider_env(Resolver::with_keys("test", "test"));
    let client = connect(&moto, &store(static_spec("ParameterStore")), env).await;
    let failures = run(
        client.as_ref(),
        &Fixture {
            plain_key: "/app/plain".into(),
            plain_value: "plain-value".into(),
            json_key: "/app/db".into(),
            json_user: "admin".into(),
            missing_key: "/app/nope".into(),
            find_regexp: Some("^/app/".into()),
            push_key: Some("/pushed/one".into()),
        },
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
    let seen = calls.labels();
    for call in [
        "GetParameter",
        "GetParametersByPath",
        "PutParameter",
        "ListTagsForResource",
        "DeleteParameter",
    ] {
        assert!(
            seen.contains(&("AWS/ParameterStore".into(), call.into())),
            "{call} not counted: {seen:?}"
        );
    }
}
