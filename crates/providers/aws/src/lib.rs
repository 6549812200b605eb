//! The `aws` provider: AWS Secrets Manager (`service: SecretsManager`), SSM Parameter Store
//! (`service: ParameterStore`) and AWS Certificate Manager (`service: CertificateManager`)
//! through the AWS SDK for Rust, as upstream's provider does.
//!
//! - Authentication (`auth`): static keys from Secrets (`secretRef`), a ServiceAccount token
//!   exchanged by STS `AssumeRoleWithWebIdentity` for the role its
//!   `eks.amazonaws.com/role-arn` annotation names (`jwt`), else the SDK's default chain. Then
//!   `additionalRoles` and `role` are assumed in turn (`externalID` and session tags on
//!   `role`). Credentials from STS are cached until shortly before they expire; the client
//!   lives as long as the controller keeps it.
//! - Endpoints: `AWS_SECRETSMANAGER_ENDPOINT`, `AWS_SSM_ENDPOINT`, `AWS_STS_ENDPOINT`,
//!   `AWS_ECR_ENDPOINT`, `AWS_ECR_PUBLIC_ENDPOINT`, `AWS_ACM_ENDPOINT`,
//!   `AWS_RESOURCE_GROUPS_TAGGING_API_ENDPOINT` (process-wide, as upstream),
//!   `AWS_CODEARTIFACT_ENDPOINT`, or [`AwsProvider::with_endpoint`] in tests.
//! - Generators: `ECRAuthorizationToken` ([`AwsProvider::ecr_authorization_token`]),
//!   `STSSessionToken` ([`AwsProvider::sts_session_token`]), `STSAssumeRoleToken`
//!   ([`AwsProvider::sts_assume_role_token`]) and `CodeArtifactAuthorizationToken`
//!   ([`AwsProvider::codeartifact_authorization_token`]), authenticated as a store is.
//! - Keys get `prefix` prepended. Reads, `find`, push and delete are described in
//!   [`secretsmanager`], [`parameterstore`] and [`certificatemanager`].
//! - Every backend call is reported as `AWS/SecretsManager`, `AWS/ParameterStore` or
//!   `AWS/CertificateManager` with the API operation as the call label (upstream's names;
//!   `DescribeParameters` is `DescribeParameter` there and here).
//!
//! TLS is rustls on the *ring* provider (aws-smithy-http-client's `rustls-ring`): the SDK's
//! default HTTPS client (aws-lc, a C build) is not compiled in. `HTTP(S)_PROXY`/`NO_PROXY` apply.

mod assume_role_token;
mod auth;
mod certificate_pem;
pub mod certificatemanager;
mod client;
mod codeartifact;
mod config;
mod ecr;
mod error;
mod generator;
pub mod parameterstore;
mod push_meta;
mod replication;
mod resource_policy;
pub mod secretsmanager;
mod session_token;
mod ttl_cache;
mod value;

use std::collections::BTreeMap;

use async_trait::async_trait;
use strongroom_provider_api::{
    Capabilities, Provider, ProviderEnv, ProviderError, SecretMap, SecretsClient, StoreContext,
};

pub use config::Service;

/// The provider-block key.
const ID: &str = "aws";

/// The AWS provider factory.
#[derive(Debug, Default, Clone)]
pub struct AwsProvider {
    /// One endpoint for every AWS service (tests against a local emulator); `None` reads the
    /// per-service environment variables at connect time.
    endpoint: Option<String>,
}

impl AwsProvider {
    /// A provider that sends every AWS call (Secrets Manager, SSM, STS, ECR, ACM, tagging) to
    /// `endpoint`, as if every endpoint variable named it: for tests against an emulator, where a
    /// process-wide variable would leak between tests.
    pub fn with_endpoint(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: Some(endpoint.into()),
        }
    }

    /// Upstream's `ECRAuthorizationToken` generator: `spec` as written in the CRD, credentials
    /// read in `namespace` (the ExternalSecret's). Errors name no token or key.
    pub async fn ecr_authorization_token(
        &self,
        spec: &BTreeMap<String, serde_json::Value>,
        namespace: &str,
        env: ProviderEnv,
    ) -> Result<SecretMap, ProviderError> {
        let endpoints = config::Endpoints::resolve(self.endpoint.as_deref());
        ecr::generate(spec, namespace, &env, &endpoints).await
    }

    /// Upstream's `STSSessionToken` generator: `spec` as written in the CRD, credentials read
    /// in `namespace` (the ExternalSecret's). Errors name no token or key.
    pub async fn sts_session_token(
        &self,
        spec: &BTreeMap<String, serde_json::Value>,
        namespace: &str,
        env: ProviderEnv,
    ) -> Result<SecretMap, ProviderError> {
        let endpoints = config::Endpoints::resolve(self.endpoint.as_deref());
        session_token::generate(spec, namespace, &env, &endpoints).await
    }

    /// Upstream's `STSAssumeRoleToken` generator: `spec` as written in the CRD, credentials
    /// read in `namespace` (the ExternalSecret's). Errors name no token or key.
    pub async fn sts_assume_role_token(
        &self,
        spec: &BTreeMap<String, serde_json::Value>,
        namespace: &str,
        env: ProviderEnv,
    ) -> Result<SecretMap, ProviderError> {
        let endpoints = config::Endpoints::resolve(self.endpoint.as_deref());
        assume_role_token::generate(spec, namespace, &env, &endpoints).await
    }

    /// Upstream's `CodeArtifactAuthorizationToken` generator: `spec` as written in the CRD,
    /// credentials read in `namespace` (the ExternalSecret's). Errors name no token or key.
    pub async fn codeartifact_authorization_token(
        &self,
        spec: &BTreeMap<String, serde_json::Value>,
        namespace: &str,
        env: ProviderEnv,
    ) -> Result<SecretMap, ProviderError> {
        let endpoints = config::Endpoints::resolve(self.endpoint.as_deref());
        codeartifact::generate(spec, namespace, &env, &endpoints).await
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn id(&self) -> &'static str {
        ID
    }

    fn metric_name(&self) -> &'static str {
        // A store is one service or the other; the call metric names the store's own service.
        secretsmanager::METRIC_NAME
    }

    fn capabilities(&self, _store: &StoreContext) -> Capabilities {
        Capabilities::ReadWrite
    }

    fn validate_store(&self, store: &StoreContext) -> Result<Vec<String>, ProviderError> {
        config::Settings::from_store(store).map(|s| s.warnings)
    }

    async fn connect(
        &self,
        store: &StoreContext,
        env: ProviderEnv,
    ) -> Result<Box<dyn SecretsClient>, ProviderError> {
        let settings = config::Settings::from_store(store)?;
        let endpoints = config::Endpoints::resolve(self.endpoint.as_deref());
        let session = auth::connect(store, &settings, &endpoints, &env).await?;
        Ok(match settings.service {
            Service::SecretsManager => Box::new(secretsmanager::SecretsManagerClient::new(
                session,
                &settings,
                &endpoints,
                env,
                store.credential_namespace(None),
            )),
            Service::ParameterStore => Box::new(parameterstore::ParameterStoreClient::new(
                session, &settings, &endpoints, env,
            )),
            Service::CertificateManager => {
                Box::new(certificatemanager::CertificateManagerClient::new(
                    session, &settings, &endpoints, env,
                ))
            }
        })
    }
}
