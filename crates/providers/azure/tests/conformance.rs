//! The azure provider against the Azure stand-in (Key Vault has no emulator; the stand-in
//! follows Microsoft's REST reference): the provider-api conformance suite, once per auth method.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use strongroom_provider_api::conformance::{Fixture, run};

fn seed(standin: &AzureStandIn) -> Fixture {
    standin.set_secret("app-plain", "plain-value");
    standin.set_secret("app-db", r#"{"user":"admin","port":5432}"#);
    standin.set_secret("other", "x");
    Fixture {
        plain_key: "app-plain".into(),
        plain_value: "plain-value".into(),
        json_key: "secret/app-db".into(),
        json_user: "admin".into(),
        missing_key: "app-nope".into(),
        find_regexp: Some("^app-".into()),
        push_key: Some("pushed-one".into()),
    }
}

async fn conforms(
    standin: &AzureStandIn,
    client: Box<dyn strongroom_provider_api::SecretsClient>,
    calls: &Calls,
) {
    let fixture = seed(standin);
    let failures = run(client.as_ref(), &fixture).await;
    assert!(failures.is_empty(), "{failures:#?}");
    let seen = calls.labels();
    for call in ["GetSecret", "GetSecrets", "SetSecret", "DeleteSecret"] {
        assert!(
            seen.contains(&("Azure/KeyVault".into(), call.into())),
            "{call} not counted: {seen:?}"
        );
    }
    assert_eq!(calls.providers().len(), 1);
}

#[tokio::test]
async fn service_principal_with_client_secret_conforms() {
    let standin = AzureStandIn::start(Options::default()).await;
    standin.register_client_secret(CLIENT_ID, CLIENT_SECRET);
    let (calls, env) = provider_env(Resolver::with_service_principal(CLIENT_SECRET));
    let client = connect(&standin, secret_spec(&standin), env).await;
    conforms(&standin, client, &calls).await;
    assert_eq!(
        standin.count("token:client_secret"),
        1,
        "{:?}",
        standin.counts()
    );
}

#[tokio::test]
async fn service_principal_with_client_certificate_conforms() {
    let standin = AzureStandIn::start(Options::default()).await;
    let cert_only = CLIENT_PEM.split("-----BEGIN PRIVATE KEY").next().unwrap();
    standin.register_client_certificate(CLIENT_ID, cert_only);
    let (calls, env) = provider_env(Resolver::with_service_principal("unused"));
    let client = connect(&standin, cert_spec(&standin), env).await;
    conforms(&standin, client, &calls).await;
    assert_eq!(
        standin.count("token:client_certificate"),
        1,
        "{:?}",
        standin.counts()
    );
}

#[tokio::test]
async fn workload_identity_conforms() {
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
    resolver.annotations.insert(
        "azure.workload.identity/tenant-id".into(),
        standin.tenant().into(),
    );
    let (calls, env) = provider_env(resolver);
    let client = connect(&standin, workload_spec(&standin), env).await;
    conforms(&standin, client, &calls).await;
    assert_eq!(
        standin.count("token:federated"),
        1,
        "{:?}",
        standin.counts()
    );
}

#[tokio::test]
async fn managed_identity_conforms() {
    let standin = AzureStandIn::start(Options::default()).await;
    standin.allow_managed_identity(Some("mi-client"));
    let (calls, env) = provider_env(Resolver::new());
    let client = connect(&standin, managed_spec(&standin, Some("mi-client")), env).await;
    conforms(&standin, client, &calls).await;
    assert_eq!(standin.count("token:imds"), 1, "{:?}", standin.counts());
}
