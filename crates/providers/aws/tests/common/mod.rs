//! Test plumbing: moto per test, SDK clients that seed it, a credential resolver stub (the
//! controller's side), a call recorder and store builders.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use strongroom_core::crd::external_secrets::{
    AwsAuth, AwsAuthSecretRef, AwsJwtAuth, AwsProvider as Spec, SecretKeySelector,
    SecretStoreProvider, ServiceAccountSelector, StoreKind,
};
use strongroom_provider_api::{
    CredentialResolver, Provider, ProviderEnv, ProviderError, SecretBytes, SecretsClient,
    StoreContext,
};
use strongroom_provider_aws::AwsProvider;
use strongroom_testkit::backends::Moto;

pub const REGION: &str = "us-east-1";
/// moto's default account.
pub const ACCOUNT: &str = "123456789012";

/// The controller's side, stubbed: Secrets `creds/aws` (`id`, `secret`) hold moto's keys,
/// ServiceAccount `creds/reader` carries a role annotation and gets a fixed token.
#[derive(Default)]
pub struct Resolver {
    pub secrets: BTreeMap<(String, String, String), String>,
    pub annotations: BTreeMap<String, String>,
    pub tokens: Mutex<Vec<(String, Vec<String>)>>,
    /// ConfigMap keys, `(namespace, name, key)` → text.
    pub config_maps: BTreeMap<(String, String, String), String>,
}

impl Resolver {
    pub fn with_keys(id: &str, secret: &str) -> Self {
        let mut r = Self::default();
        r.put("aws", "id", id);
        r.put("aws", "secret", secret);
        r
    }

    pub fn put(&mut self, name: &str, key: &str, value: &str) {
        self.secrets
            .insert(("creds".into(), name.into(), key.into()), value.into());
    }
}

#[async_trait::async_trait]
impl CredentialResolver for Resolver {
    async fn secret_key(
        &self,
        ns: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretBytes, ProviderError> {
        self.secrets
            .get(&(ns.into(), name.into(), key.into()))
            .map(|v| SecretBytes::from(v.as_str()))
            .ok_or_else(|| {
                ProviderError::Authentication(format!("Secret {ns}/{name} has no key {key:?}"))
            })
    }

    async fn config_map_key(
        &self,
        ns: &str,
        name: &str,
        key: &str,
    ) -> Result<String, ProviderError> {
        self.config_maps
            .get(&(ns.into(), name.into(), key.into()))
            .cloned()
            .ok_or_else(|| {
                ProviderError::Authentication(format!("ConfigMap {ns}/{name} not found"))
            })
    }

    async fn service_account_token(
        &self,
        ns: &str,
        name: &str,
        audiences: &[String],
        _: Option<i64>,
    ) -> Result<SecretBytes, ProviderError> {
        self.tokens
            .lock()
            .unwrap()
            .push((format!("{ns}/{name}"), audiences.to_vec()));
        // moto does not verify the token.
        Ok(SecretBytes::from(
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
        ))
    }

    async fn service_account_annotations(
        &self,
        _: &str,
        _: &str,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        Ok(self.annotations.clone())
    }
}

/// Records every call the provider reports.
pub use strongroom_provider_api::conformance::RecordedCalls as Calls;

pub fn provider_env(resolver: Resolver) -> (Arc<Calls>, ProviderEnv) {
    let calls = Arc::new(Calls::default());
    let env = ProviderEnv {
        credentials: Arc::new(resolver),
        calls: calls.clone(),
    };
    (calls, env)
}

fn sel(name: &str, key: &str) -> Option<SecretKeySelector> {
    Some(SecretKeySelector {
        name: Some(name.into()),
        key: Some(key.into()),
        namespace: None,
    })
}

/// An `aws` block with static keys from Secret `creds/aws`.
pub fn static_spec(service: &str) -> Spec {
    Spec {
        service: service.into(),
        region: REGION.into(),
        auth: Some(AwsAuth {
            secret_ref: Some(AwsAuthSecretRef {
                access_key_id_secret_ref: sel("aws", "id"),
                secret_access_key_secret_ref: sel("aws", "secret"),
                session_token_secret_ref: None,
            }),
            jwt: None,
        }),
        ..Spec::default()
    }
}

/// An `aws` block with web identity auth through ServiceAccount `reader`.
pub fn jwt_spec(service: &str) -> Spec {
    Spec {
        service: service.into(),
        region: REGION.into(),
        auth: Some(AwsAuth {
            secret_ref: None,
            jwt: Some(AwsJwtAuth {
                service_account_ref: Some(ServiceAccountSelector {
                    name: "reader".into(),
                    namespace: None,
                    audiences: Some(vec!["extra-aud".into()]),
                }),
            }),
        }),
        ..Spec::default()
    }
}

/// A SecretStore in namespace `creds`.
pub fn store(spec: Spec) -> StoreContext {
    StoreContext {
        kind: StoreKind::SecretStore,
        name: "aws-store".into(),
        namespace: Some("creds".into()),
        referent_namespace: None,
        provider: SecretStoreProvider {
            aws: Some(spec),
            ..SecretStoreProvider::default()
        },
        retry: None,
    }
}

pub async fn connect(
    moto: &Moto,
    store: &StoreContext,
    env: ProviderEnv,
) -> Box<dyn SecretsClient> {
    let provider = AwsProvider::with_endpoint(&moto.endpoint);
    provider.validate_store(store).unwrap();
    provider.connect(store, env).await.unwrap()
}

/// An SDK configuration for seeding moto directly.
pub async fn sdk(moto: &Moto) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(&moto.endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .load()
        .await
}

pub async fn sm(moto: &Moto) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&sdk(moto).await)
}

pub async fn ssm(moto: &Moto) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&sdk(moto).await)
}

pub async fn put_secret(sm: &aws_sdk_secretsmanager::Client, name: &str, value: &str) {
    sm.create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

pub async fn put_param(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

pub async fn tag_param(ssm: &aws_sdk_ssm::Client, name: &str, key: &str, value: &str) {
    let tag = aws_sdk_ssm::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
        .unwrap();
    ssm.add_tags_to_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id(name)
        .tags(tag)
        .send()
        .await
        .unwrap();
}

pub fn text(v: &SecretBytes) -> String {
    String::from_utf8_lossy(v.expose()).into_owned()
}
