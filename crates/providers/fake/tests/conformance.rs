//! The fake provider passes the provider-api conformance suite. It has no backend: the store
//! spec is the backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use strongroom_core::crd::external_secrets::{
    FakeProvider as FakeSpec, FakeProviderData, SecretStoreProvider, StoreKind,
};
use strongroom_provider_api::conformance::{Fixture, run};
use strongroom_provider_api::{
    CredentialResolver, NoCalls, Provider, ProviderEnv, ProviderError, SecretBytes, StoreContext,
    Validation,
};
use strongroom_provider_fake::FakeProvider;

struct NoCredentials;

#[async_trait::async_trait]
impl CredentialResolver for NoCredentials {
    async fn secret_key(&self, _: &str, _: &str, _: &str) -> Result<SecretBytes, ProviderError> {
        Err(ProviderError::Authentication("no credentials here".into()))
    }
    async fn config_map_key(&self, _: &str, _: &str, _: &str) -> Result<String, ProviderError> {
        Err(ProviderError::Authentication("no credentials here".into()))
    }
    async fn service_account_token(
        &self,
        _: &str,
        _: &str,
        _: &[String],
        _: Option<i64>,
    ) -> Result<SecretBytes, ProviderError> {
        Err(ProviderError::Authentication("no credentials here".into()))
    }
    async fn service_account_annotations(
        &self,
        _: &str,
        _: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, ProviderError> {
        Err(ProviderError::Authentication("no credentials here".into()))
    }
}

fn store(data: Vec<FakeProviderData>) -> StoreContext {
    StoreContext {
        kind: StoreKind::SecretStore,
        name: "fake".into(),
        namespace: Some("default".into()),
        referent_namespace: None,
        provider: SecretStoreProvider {
            fake: Some(FakeSpec {
                data,
                ..FakeSpec::default()
            }),
            ..SecretStoreProvider::default()
        },
        retry: None,
    }
}

fn entry(key: &str, value: &str, version: Option<&str>) -> FakeProviderData {
    FakeProviderData {
        key: key.into(),
        value: Some(value.into()),
        version: version.map(str::to_string),
        ..FakeProviderData::default()
    }
}

fn env() -> ProviderEnv {
    ProviderEnv {
        credentials: Arc::new(NoCredentials),
        calls: Arc::new(NoCalls),
    }
}

#[tokio::test]
async fn fake_conforms() {
    let store = store(vec![
        entry("app-plain", "plain-value", None),
        entry("app-db", r#"{"user":"admin","port":5432}"#, None),
        entry("other", "x", None),
    ]);
    let client = FakeProvider.connect(&store, env()).await;
    let Ok(client) = client else {
        panic!("connect failed");
    };
    let failures = run(
        client.as_ref(),
        &Fixture {
            plain_key: "app-plain".into(),
            plain_value: "plain-value".into(),
            json_key: "app-db".into(),
            json_user: "admin".into(),
            missing_key: "nope".into(),
            find_regexp: Some("^app-".into()),
            push_key: Some("pushed".into()),
        },
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn versions_are_separate_values() {
    let store = store(vec![
        entry("k", "current", None),
        entry("k", "old", Some("v1")),
    ]);
    let Ok(client) = FakeProvider.connect(&store, env()).await else {
        panic!("connect failed");
    };
    let v1 = strongroom_provider_api::RemoteRef {
        version: Some("v1".into()),
        ..strongroom_provider_api::RemoteRef::key("k")
    };
    let got = client.get_secret(&v1).await.map(|v| v.expose().to_vec());
    assert_eq!(got.ok(), Some(b"old".to_vec()));
    let v2 = strongroom_provider_api::RemoteRef {
        version: Some("v2".into()),
        ..strongroom_provider_api::RemoteRef::key("k")
    };
    assert!(
        client
            .get_secret(&v2)
            .await
            .is_err_and(|e| e.is_not_found())
    );
}

/// `validationResult` decides what `validate` says, as upstream's fake provider: 0 (or unset)
/// ready, 1 unknown, 2 an error ("unable to validate").
#[tokio::test]
async fn validation_result_decides_the_store_validation() {
    let validate = |result: Option<i32>| async move {
        let mut store = store(Vec::new());
        if let Some(fake) = store.provider.fake.as_mut() {
            fake.validation_result = result;
        }
        let Ok(client) = FakeProvider.connect(&store, env()).await else {
            panic!("connect failed");
        };
        client.validate().await
    };
    assert_eq!(validate(None).await.ok(), Some(Validation::Ready));
    assert_eq!(validate(Some(0)).await.ok(), Some(Validation::Ready));
    assert_eq!(validate(Some(1)).await.ok(), Some(Validation::Unknown));
    assert!(matches!(
        validate(Some(2)).await,
        Err(ProviderError::InvalidConfig(m)) if m.contains("unable to validate")
    ));
}
