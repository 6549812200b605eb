//! Credentials and the shared SDK configuration of one store's session.
//!
//! The base credentials are static keys, a web identity (a ServiceAccount token exchanged by
//! STS), or the SDK's default chain. Each role of `additionalRoles` then `role` is assumed
//! with the previous credentials. Every provider that calls out (STS, the default chain) sits
//! behind [`Cached`], so the Secrets Manager/SSM client and store validation share one set of
//! credentials, renewed shortly before it expires.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sts::types::Tag;
use aws_smithy_http_client::Connector;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider as TlsProvider, rustls_provider::CryptoMode};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use strongroom_core::crd::external_secrets::ServiceAccountSelector;
use strongroom_provider_api::{
    CredentialResolver, ProviderEnv, ProviderError, RetrySettings, SecretBytes, StoreContext,
};
use tokio::sync::Mutex;

use crate::config::{BaseAuth, Endpoints, RoleHop, Settings};
use crate::error::from_sdk;

/// The ServiceAccount annotation naming the role of web identity auth.
const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The annotation naming the token audience; `sts.amazonaws.com` without it.
const AUDIENCE_ANNOTATION: &str = "eks.amazonaws.com/audience";
const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
/// The STS session name (upstream's).
const SESSION_NAME: &str = "external-secrets-provider-aws";
/// The session length asked of `AssumeRole`: upstream's SDK (aws-sdk-go-v2's `stscreds`) sends
/// 15 minutes, the shortest STS allows. `AssumeRoleWithWebIdentity` is sent without one there
/// and here (STS's default then applies).
const ASSUME_ROLE_SECONDS: i32 = 900;
/// Credentials are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Time limits of every AWS call: an unreachable or hung endpoint fails within
/// [`OPERATION_TIMEOUT`] (retries included) instead of blocking a reconcile.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt's limit.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);
/// The limit of one operation with its retries (without `retrySettings`).
pub(crate) const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// The most one operation may take however many retries `retrySettings` asks for.
const MAX_OPERATION_TIMEOUT: Duration = Duration::from_secs(600);
/// Attempts when `retrySettings` sets no `maxRetries` (upstream's).
const DEFAULT_ATTEMPTS: u32 = 3;
/// The SDK's longest backoff between attempts (standard mode).
const SDK_MAX_BACKOFF: Duration = Duration::from_secs(20);

/// One store's authenticated SDK configuration.
pub(crate) struct Session {
    /// Region, HTTP client, timeouts, retries and the final credentials.
    pub config: SdkConfig,
    /// The final credentials (store validation resolves them).
    pub credentials: SharedCredentialsProvider,
}

/// The SDK configuration loader: region, rustls on ring (and the proxy variables), timeouts,
/// retries.
fn loader(region: &str, retry: Option<RetrySettings>) -> aws_config::ConfigLoader {
    // As Go's default transport (upstream), HTTP(S)_PROXY and NO_PROXY apply.
    let http =
        aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
            let mut b = Connector::builder()
                .tls_provider(TlsProvider::Rustls(CryptoMode::Ring))
                .proxy_config(ProxyConfig::from_env());
            b.set_connector_settings(settings.cloned());
            b.set_sleep_impl(components.and_then(|c| c.sleep_impl()));
            b.build()
        });
    let (retries, operation_timeout) = retries(retry);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(operation_timeout)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .http_client(http)
        .timeout_config(timeouts)
        .retry_config(retries)
}

/// The SDK's retry configuration for a store's `retrySettings`, and the time limit of one
/// operation with all its attempts.
///
/// As upstream (which hands `maxRetries` to the Go SDK's `AddWithMaxAttempts`), `maxRetries`
/// counts every attempt, 3 when unset; at least one attempt is made. `retryInterval` replaces
/// the SDK's jittered exponential backoff by a fixed wait. Without `retrySettings` the SDK's
/// standard mode applies (3 attempts, exponential backoff). The SDK retries transient
/// failures only: connection errors, timeouts, HTTP 500/502/503/504 and throttling errors.
pub(crate) fn retries(retry: Option<RetrySettings>) -> (RetryConfig, Duration) {
    let Some(retry) = retry else {
        return (RetryConfig::standard(), OPERATION_TIMEOUT);
    };
    let attempts = retry.max_retries.unwrap_or(DEFAULT_ATTEMPTS).max(1);
    let mut config = RetryConfig::standard().with_max_attempts(attempts);
    let wait = match retry.interval {
        Some(interval) => {
            config = config
                .with_initial_backoff(interval)
                .with_max_backoff(interval)
                .with_use_static_exponential_base(true);
            interval
        }
        None => SDK_MAX_BACKOFF,
    };
    // Every attempt may use its whole time limit, and every retry waits.
    let needed = ATTEMPT_TIMEOUT
        .saturating_mul(attempts)
        .saturating_add(wait.saturating_mul(attempts - 1));
    (
        config,
        needed.clamp(OPERATION_TIMEOUT, MAX_OPERATION_TIMEOUT),
    )
}

/// Authenticates a store: resolves the credential references and builds the credential chain.
/// Nothing is sent to AWS here; STS is called on first use (or by store validation).
pub(crate) async fn connect(
    store: &StoreContext,
    settings: &Settings,
    endpoints: &Endpoints,
    env: &ProviderEnv,
) -> Result<Session, ProviderError> {
    let base = loader(&settings.region, settings.retry)
        .no_credentials()
        .load()
        .await;
    let sts_client = |creds: Option<SharedCredentialsProvider>| {
        let mut b = aws_sdk_sts::config::Builder::from(&base);
        b.set_endpoint_url(endpoints.sts.clone());
        b.set_credentials_provider(creds);
        aws_sdk_sts::Client::from_conf(b.build())
    };
    let unresolvable = settings.referent && store.referent_namespace.is_none();
    let mut creds: SharedCredentialsProvider = if unresolvable {
        SharedCredentialsProvider::new(Unresolvable)
    } else {
        match &settings.auth {
            BaseAuth::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                let resolver = env.credentials.as_ref();
                let text = |b: SecretBytes, field: &str| {
                    String::from_utf8(b.expose().to_vec())
                        .map(|s| s.trim().to_string())
                        .map_err(|_| {
                            ProviderError::Authentication(format!("{field} is not UTF-8 text"))
                        })
                };
                let id = store
                    .secret_key(
                        resolver,
                        access_key_id,
                        "auth.secretRef.accessKeyIDSecretRef",
                    )
                    .await?;
                let secret = store
                    .secret_key(
                        resolver,
                        secret_access_key,
                        "auth.secretRef.secretAccessKeySecretRef",
                    )
                    .await?;
                let token = match session_token {
                    Some(sel) => Some(text(
                        store
                            .secret_key(resolver, sel, "auth.secretRef.sessionTokenSecretRef")
                            .await?,
                        "auth.secretRef.sessionTokenSecretRef",
                    )?),
                    None => None,
                };
                SharedCredentialsProvider::new(Credentials::new(
                    text(id, "auth.secretRef.accessKeyIDSecretRef")?,
                    text(secret, "auth.secretRef.secretAccessKeySecretRef")?,
                    token.filter(|t| !t.is_empty()),
                    None,
                    "SecretRef",
                ))
            }
            BaseAuth::WebIdentity(sa) => {
                let web =
                    WebIdentity::new(store, sa, env.credentials.clone(), sts_client(None)).await?;
                SharedCredentialsProvider::new(Cached::new(web))
            }
            BaseAuth::DefaultChain => {
                // The loader builds the SDK's default chain with the same HTTP client.
                let chain = loader(&settings.region, settings.retry)
                    .load()
                    .await
                    .credentials_provider()
                    .ok_or_else(|| {
                        ProviderError::Authentication(
                            "the SDK has no default credentials chain".into(),
                        )
                    })?;
                SharedCredentialsProvider::new(Cached::new(chain))
            }
        }
    };
    for hop in &settings.roles {
        creds = SharedCredentialsProvider::new(Cached::new(AssumeRole {
            hop: hop.clone(),
            sts: sts_client(Some(creds)),
        }));
    }
    let config = base
        .to_builder()
        .credentials_provider(creds.clone())
        .build();
    Ok(Session {
        config,
        credentials: creds,
    })
}

/// Credentials of a referent ClusterSecretStore before a reader's namespace is known.
#[derive(Debug)]
struct Unresolvable;

impl ProvideCredentials for Unresolvable {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::ready(Err(CredentialsError::provider_error(
            ProviderError::InvalidConfig(
                "the store's credential references name no namespace (referent authentication): \
                 they are read from the namespace of the ExternalSecret using the store"
                    .into(),
            ),
        )))
    }
}

/// A credentials provider that keeps what it got until [`RENEW_BEFORE`] its expiry.
#[derive(Debug)]
struct Cached<P> {
    inner: P,
    slot: Mutex<Option<Credentials>>,
}

impl<P> Cached<P> {
    fn new(inner: P) -> Self {
        Self {
            inner,
            slot: Mutex::new(None),
        }
    }
}

fn fresh(c: &Credentials) -> bool {
    match c.expiry() {
        None => true,
        Some(at) => at
            .duration_since(SystemTime::now())
            .is_ok_and(|left| left > RENEW_BEFORE),
    }
}

impl<P: ProvideCredentials> ProvideCredentials for Cached<P> {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            let mut slot = self.slot.lock().await;
            if let Some(c) = slot.as_ref().filter(|c| fresh(c)) {
                return Ok(c.clone());
            }
            let got = self.inner.provide_credentials().await?;
            *slot = Some(got.clone());
            Ok(got)
        })
    }
}

fn sts_credentials(
    out: Option<&aws_sdk_sts::types::Credentials>,
    name: &'static str,
) -> Result<Credentials, CredentialsError> {
    let c = out.ok_or_else(|| {
        CredentialsError::provider_error(ProviderError::Malformed(
            "STS answered without credentials".into(),
        ))
    })?;
    let expiry = SystemTime::try_from(*c.expiration()).ok();
    Ok(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        expiry,
        name,
    ))
}

/// STS `AssumeRole` of one hop of the role chain, with the previous hop's credentials.
#[derive(Debug)]
struct AssumeRole {
    hop: RoleHop,
    sts: aws_sdk_sts::Client,
}

impl AssumeRole {
    async fn assume(&self) -> Result<Credentials, CredentialsError> {
        let tags = self
            .hop
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                CredentialsError::provider_error(ProviderError::InvalidConfig(format!(
                    "session tags: {e}"
                )))
            })?;
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.hop.arn)
            .role_session_name(SESSION_NAME)
            .duration_seconds(ASSUME_ROLE_SECONDS)
            .set_external_id(self.hop.external_id.clone())
            .set_tags((!tags.is_empty()).then_some(tags))
            .set_transitive_tag_keys(
                (!self.hop.transitive_tag_keys.is_empty())
                    .then(|| self.hop.transitive_tag_keys.clone()),
            )
            .send()
            .await
            .map_err(|e| {
                CredentialsError::provider_error(sts_error(from_sdk(
                    e,
                    "AssumeRole",
                    &self.hop.arn,
                )))
            })?;
        sts_credentials(out.credentials(), "AssumeRole")
    }
}

impl ProvideCredentials for AssumeRole {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.assume())
    }
}

/// STS refusing to hand out credentials is an authentication failure of the store, whatever
/// AWS called it (AccessDenied on AssumeRole means the trust policy does not allow us).
fn sts_error(e: ProviderError) -> ProviderError {
    match e {
        ProviderError::PermissionDenied(m) | ProviderError::InvalidConfig(m) => {
            ProviderError::Authentication(m)
        }
        ProviderError::NotFound { detail, .. } => ProviderError::Authentication(detail),
        other => other,
    }
}

/// STS `AssumeRoleWithWebIdentity` with a fresh ServiceAccount token each time.
struct WebIdentity {
    resolver: Arc<dyn CredentialResolver>,
    namespace: String,
    name: String,
    audiences: Vec<String>,
    role_arn: String,
    sts: aws_sdk_sts::Client,
}

impl std::fmt::Debug for WebIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebIdentity")
            .field(
                "service_account",
                &format!("{}/{}", self.namespace, self.name),
            )
            .field("role_arn", &self.role_arn)
            .finish()
    }
}

impl WebIdentity {
    /// Reads the ServiceAccount's annotations (role and audience), as upstream does when it
    /// builds a client.
    async fn new(
        store: &StoreContext,
        sa: &ServiceAccountSelector,
        resolver: Arc<dyn CredentialResolver>,
        sts: aws_sdk_sts::Client,
    ) -> Result<Self, ProviderError> {
        let namespace = store
            .credential_namespace(sa.namespace.as_deref())
            .ok_or_else(|| {
                ProviderError::InvalidConfig(
                    "auth.jwt.serviceAccountRef names no namespace and the store is not read from one"
                        .into(),
                )
            })?;
        let annotations: BTreeMap<String, String> = resolver
            .service_account_annotations(&namespace, &sa.name)
            .await?;
        let role_arn = annotations
            .get(ROLE_ARN_ANNOTATION)
            .filter(|r| !r.is_empty())
            .cloned()
            .ok_or_else(|| {
                ProviderError::Authentication(format!(
                    "an IAM role must be associated with service account {}/{}: annotation {ROLE_ARN_ANNOTATION} is missing",
                    namespace, sa.name
                ))
            })?;
        let mut audiences = vec![
            annotations
                .get(AUDIENCE_ANNOTATION)
                .filter(|a| !a.is_empty())
                .cloned()
                .unwrap_or_else(|| DEFAULT_AUDIENCE.into()),
        ];
        audiences.extend(sa.audiences.iter().flatten().cloned());
        Ok(Self {
            resolver,
            namespace,
            name: sa.name.clone(),
            audiences,
            role_arn,
            sts,
        })
    }

    async fn exchange(&self) -> Result<Credentials, CredentialsError> {
        let token = self
            .resolver
            .service_account_token(&self.namespace, &self.name, &self.audiences, None)
            .await
            .map_err(CredentialsError::provider_error)?;
        let token = String::from_utf8(token.expose().to_vec()).map_err(|_| {
            CredentialsError::provider_error(ProviderError::Authentication(
                "the ServiceAccount token is not UTF-8 text".into(),
            ))
        })?;
        let out = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&self.role_arn)
            .role_session_name(SESSION_NAME)
            .web_identity_token(token)
            .send()
            .await
            .map_err(|e| {
                CredentialsError::provider_error(sts_error(from_sdk(
                    e,
                    "AssumeRoleWithWebIdentity",
                    &self.role_arn,
                )))
            })?;
        sts_credentials(out.credentials(), "WebIdentityToken")
    }
}

impl ProvideCredentials for WebIdentity {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.exchange())
    }
}

/// Resolves the session's credentials (STS calls happen here when roles are used): upstream's
/// store validation, `Credentials.Retrieve()`.
pub(crate) async fn check(session: &Session) -> Result<(), ProviderError> {
    match session.credentials.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(e) => Err(crate::error::from_credentials(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_settings_map_onto_the_sdk() {
        let (c, t) = retries(None);
        assert_eq!((c.max_attempts(), t), (3, OPERATION_TIMEOUT));
        let (c, t) = retries(Some(RetrySettings {
            max_retries: Some(5),
            interval: Some(Duration::from_secs(2)),
        }));
        assert_eq!(c.max_attempts(), 5);
        assert_eq!(c.initial_backoff(), Duration::from_secs(2));
        assert_eq!(c.max_backoff(), Duration::from_secs(2));
        // 5 attempts of 4 s and 4 waits of 2 s.
        assert_eq!(t, Duration::from_secs(28));
        let (c, t) = retries(Some(RetrySettings {
            max_retries: Some(0),
            interval: None,
        }));
        assert_eq!((c.max_attempts(), t), (1, OPERATION_TIMEOUT));
        let (c, _) = retries(Some(RetrySettings::default()));
        assert_eq!(c.max_attempts(), 3);
        let (_, t) = retries(Some(RetrySettings {
            max_retries: Some(1000),
            interval: Some(Duration::from_secs(60)),
        }));
        assert_eq!(t, MAX_OPERATION_TIMEOUT);
    }
}
