//! Every call to Vault goes through [`run`]: counted under upstream's call names, and its
//! failure sorted into a [`ProviderError`] that never carries what the server sent back.

use std::future::Future;
use std::time::Duration;

use strongroom_core::crd::external_secrets::SecretStoreRetrySettings;
use strongroom_provider_api::{ProviderEnv, ProviderError, RetrySettings, StoreContext};
use vaultrs::error::ClientError;

use crate::METRIC_NAME;

/// Upstream's call names (`pkg/constants`, `CallHCVault*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Login,
    RevokeSelf,
    /// Ours: upstream never renews.
    RenewSelf,
    LookupSelf,
    ReadSecretData,
    WriteSecretData,
    DeleteSecret,
    ListSecrets,
    /// Ours: the VaultDynamicSecret generator's request.
    DynamicSecret,
    /// Ours: a generated lease renewed.
    RenewLease,
    /// Ours: a replaced generated lease revoked.
    RevokeLease,
}

impl Call {
    /// The `call` label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Login => "Login",
            Self::RevokeSelf => "RevokeSelf",
            Self::RenewSelf => "RenewSelf",
            Self::LookupSelf => "LookupSelf",
            Self::ReadSecretData => "ReadSecretData",
            Self::WriteSecretData => "WriteSecretData",
            Self::DeleteSecret => "DeleteSecret",
            Self::ListSecrets => "ListSecrets",
            Self::DynamicSecret => "GenerateDynamicSecret",
            Self::RenewLease => "RenewLease",
            Self::RevokeLease => "RevokeLease",
        }
    }
}

/// Runs one Vault call, reports it, and maps its failure. `what` describes the request for
/// messages (`read "secret/app"`). A 404 is an answer, so it counts as a successful call
/// (as upstream, where the Vault client returns no secret and no error).
pub(crate) async fn run<T>(
    env: &ProviderEnv,
    call: Call,
    what: &str,
    fut: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ProviderError> {
    let result = fut.await;
    let ok = match &result {
        Ok(_) => true,
        Err(e) => status(e) == Some(404),
    };
    env.calls.observe(METRIC_NAME, call.name(), ok);
    result.map_err(|e| map_error(&e, what))
}

/// How a store's calls are retried: upstream's Vault client settings for `retrySettings`.
///
/// Without `retrySettings`, as the Vault API client's defaults, 2 retries and a wait of 1 to
/// 1.5 s times the retry's number; with `retrySettings`, `maxRetries` retries (none when
/// unset, upstream then leaves retrying to the next reconcile) and `retryInterval` times the
/// retry's number. Only failures that may pass are retried: the connection failed (refused,
/// reset; not a timeout, whose request may have been applied), 412 (read-your-writes index
/// not replicated yet), 429 and 5xx except 501. A 4xx answer (denied, bad request) is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retries {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The base wait; `None`: 1 to 1.5 s.
    pub interval: Option<Duration>,
}

/// The Vault API client's default retries.
const DEFAULT_RETRIES: u32 = 2;
const DEFAULT_WAIT_MIN: Duration = Duration::from_millis(1000);
const DEFAULT_WAIT_JITTER_MS: u32 = 500;

impl Retries {
    /// The retries of `store` (its `retrySettings` checked).
    pub fn from_store(store: &StoreContext) -> Result<Self, ProviderError> {
        Self::from_spec(store.retry.as_ref())
    }

    /// The retries a `retrySettings` block asks for (a store's, or a VaultDynamicSecret's).
    pub fn from_spec(spec: Option<&SecretStoreRetrySettings>) -> Result<Self, ProviderError> {
        Ok(match RetrySettings::from_spec(spec)? {
            None => Self {
                retries: DEFAULT_RETRIES,
                interval: None,
            },
            Some(s) => Self {
                retries: s.max_retries.unwrap_or(0),
                interval: s.interval,
            },
        })
    }

    /// The wait before retry number `n` (from 1): linear in `n`, as the Vault client's.
    fn wait(&self, n: u32) -> Duration {
        let base = self.interval.unwrap_or_else(|| {
            let jitter = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() % (DEFAULT_WAIT_JITTER_MS * 1_000_000))
                .unwrap_or(0);
            DEFAULT_WAIT_MIN + Duration::from_nanos(u64::from(jitter))
        });
        base.saturating_mul(n)
    }
}

/// [`run`] with retries: `make` builds the request again for every attempt. The call is
/// reported once, with its final outcome (as upstream's client, which retries inside).
pub(crate) async fn run_retried<T, F>(
    env: &ProviderEnv,
    retries: Retries,
    call: Call,
    what: &str,
    make: impl Fn() -> F,
) -> Result<T, ProviderError>
where
    F: Future<Output = Result<T, ClientError>>,
{
    let mut n = 0;
    loop {
        let result = make().await;
        match &result {
            Err(e) if n < retries.retries && retryable(e) => {
                n += 1;
                let wait = retries.wait(n);
                tracing::debug!(
                    call = call.name(),
                    retry = n,
                    wait_seconds = wait.as_secs_f64(),
                    "Vault call failed, retrying: {}",
                    map_error(e, what)
                );
                tokio::time::sleep(wait).await;
            }
            _ => return run(env, call, what, std::future::ready(result)).await,
        }
    }
}

/// Whether a failure may pass when the request is sent again.
fn retryable(e: &ClientError) -> bool {
    if let Some(code) = status(e) {
        return matches!(code, 412 | 429) || (code >= 500 && code != 501);
    }
    match e {
        ClientError::RestClientError {
            source: rustify::errors::ClientError::RequestError { source, .. },
        } => !source
            .downcast_ref::<reqwest::Error>()
            .is_some_and(|r| r.is_timeout() || r.is_builder()),
        _ => false,
    }
}

/// The HTTP status of a failure, when the server answered.
fn status(e: &ClientError) -> Option<u16> {
    match e {
        ClientError::APIError { code, .. } => Some(*code),
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code, .. },
        } => Some(*code),
        _ => None,
    }
}

/// Vault's `errors` strings (they name paths, roles and policies, never stored values).
fn server_message(e: &ClientError) -> Option<String> {
    match e {
        ClientError::APIError { errors, .. } if !errors.is_empty() => {
            Some(errors.join("; ").chars().take(300).collect())
        }
        _ => None,
    }
}

/// The causes of a transport failure (connect refused, timeout, TLS), without any body.
fn transport_text(e: &ClientError) -> String {
    let mut text = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Sorts a vaultrs failure into a category.
pub(crate) fn map_error(e: &ClientError, what: &str) -> ProviderError {
    if let Some(code) = status(e) {
        let detail = match server_message(e) {
            Some(m) => format!("{what}: {m} ({code})"),
            None => format!("{what}: HTTP {code}"),
        };
        return match code {
            404 => ProviderError::not_found(what.to_string()),
            401 | 403 => ProviderError::PermissionDenied(detail),
            429 => ProviderError::Throttled {
                retry_after: Some(Duration::from_secs(1)),
                message: detail,
            },
            // 412: the index asked for (read-your-writes) is not replicated yet.
            412 => ProviderError::Unavailable(detail),
            400 | 405 => ProviderError::InvalidConfig(detail),
            c if c >= 500 => ProviderError::Unavailable(detail),
            _ => ProviderError::Malformed(detail),
        };
    }
    match e {
        ClientError::RestClientError {
            source: rustify::errors::ClientError::RequestError { .. },
        }
        | ClientError::RestClientError {
            source: rustify::errors::ClientError::ResponseError { .. },
        } => ProviderError::Unavailable(format!(
            "{what}: Vault cannot be reached{}",
            transport_text(e)
        )),
        ClientError::RestClientError { .. } | ClientError::JsonParseError { .. } => {
            ProviderError::Malformed(format!("{what}: the answer could not be parsed"))
        }
        ClientError::ResponseEmptyError => {
            ProviderError::Malformed(format!("{what}: the answer was empty"))
        }
        _ => ProviderError::InvalidConfig(format!("{what}: {e}")),
    }
}

/// A failed login: bad credentials are an authentication failure, not a denied read.
pub(crate) fn login_failure(e: ProviderError) -> ProviderError {
    match e {
        ProviderError::PermissionDenied(m) | ProviderError::InvalidConfig(m) => {
            ProviderError::Authentication(m)
        }
        ProviderError::NotFound { key, .. } => {
            ProviderError::Authentication(format!("{key}: the auth mount does not exist (404)"))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn statuses_map_to_categories() {
        let api = |code| ClientError::APIError {
            code,
            errors: vec!["permission denied".into()],
        };
        assert!(matches!(
            map_error(&api(403), "read"),
            ProviderError::PermissionDenied(m) if m.contains("permission denied")
        ));
        assert!(map_error(&api(404), "read \"secret/x\"").is_not_found());
        assert!(map_error(&api(503), "read").is_retryable());
        assert!(map_error(&api(429), "read").retry_after().is_some());
        let raw = ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError {
                code: 404,
                content: Some("{\"data\":{\"data\":null}} canary".into()),
            },
        };
        let e = map_error(&raw, "read");
        assert!(e.is_not_found() && !e.to_string().contains("canary"));
        let parse = ClientError::RestClientError {
            source: rustify::errors::ClientError::ResponseParseError {
                source: anyhow_free(),
                content: Some("canary".into()),
            },
        };
        assert!(!map_error(&parse, "read").to_string().contains("canary"));
        assert!(matches!(
            login_failure(map_error(&api(400), "log in")),
            ProviderError::Authentication(_)
        ));
    }

    fn anyhow_free() -> anyhow::Error {
        anyhow::anyhow!("expected value")
    }
}
