//! Every call to Vault goes through [`run`]: counted under upstream's call names, and its
//! failure sorted into a [`ProviderError`] that never carries what the server sent back.

use std::future::Future;
use std::time::Duration;

use strongroom_provider_api::{ProviderEnv, ProviderError};
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
