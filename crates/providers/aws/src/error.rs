//! SDK failures sorted into [`ProviderError`] categories, and call counting.
//!
//! Messages carry the operation, the key and AWS's error code and message, never a request or
//! response body: AWS error messages name resources, not values.

use std::error::Error as StdError;
use std::sync::Arc;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use strongroom_provider_api::{CallObserver, ProviderError};

/// Error codes meaning the key (or the version asked for) does not exist.
const NOT_FOUND: [&str; 5] = [
    "ResourceNotFoundException",
    // SSM's answer to tag operations on a missing parameter.
    "InvalidResourceId",
    "ParameterNotFound",
    "ParameterVersionNotFound",
    "ParameterVersionLabelNotFound",
];
/// Error codes of a throttled request.
const THROTTLED: [&str; 6] = [
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ThrottledException",
    "RequestThrottledException",
];
/// Error codes of credentials AWS does not accept.
const AUTHENTICATION: [&str; 7] = [
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
];
/// Error codes of credentials that work but may not do this.
const DENIED: [&str; 4] = [
    "AccessDeniedException",
    "AccessDenied",
    "DecryptionFailure",
    "KMSAccessDeniedException",
];

/// A failed SDK call of `op` on `key`, as a [`ProviderError`].
pub(crate) fn from_sdk<E>(err: SdkError<E, HttpResponse>, op: &str, key: &str) -> ProviderError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let context = || format!("{op} {key:?}");
    match &err {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            let code = err.code().unwrap_or_default().to_string();
            let message = err.message().unwrap_or_default().to_string();
            let status = err.raw_response().map(|r| r.status().as_u16());
            classify(&code, &message, status, &context())
        }
        SdkError::TimeoutError(_) => {
            ProviderError::Unavailable(format!("{}: timed out", context()))
        }
        _ => from_chain(&err, &context()),
    }
}

/// An error AWS reported inside a successful answer (`BatchGetSecretValue`'s `Errors`).
pub(crate) fn from_code(code: &str, message: &str, context: &str) -> ProviderError {
    classify(code, message, None, context)
}

/// Sorts one AWS error answer.
fn classify(code: &str, message: &str, status: Option<u16>, context: &str) -> ProviderError {
    let what = if code.is_empty() && message.is_empty() {
        // An answer without an error document AWS's protocol reads (an emulator's XML
        // error to a JSON call): the status is all there is.
        format!(
            "{context}: HTTP {}",
            status.map_or_else(|| "?".into(), |s| s.to_string())
        )
    } else if message.is_empty() {
        format!("{context}: {code}")
    } else {
        format!("{context}: {code}: {message}")
    };
    if NOT_FOUND.contains(&code)
        || (code == "InvalidRequestException"
            && (message.contains("marked for deletion") || message.contains("marked deleted")))
    {
        return ProviderError::NotFound {
            key: String::new(),
            detail: what,
        };
    }
    if THROTTLED.contains(&code) || status == Some(429) {
        return ProviderError::Throttled {
            retry_after: None,
            message: what,
        };
    }
    if AUTHENTICATION.contains(&code) {
        return ProviderError::Authentication(what);
    }
    if DENIED.contains(&code) || status == Some(403) {
        return ProviderError::PermissionDenied(what);
    }
    match status {
        Some(400..=499) => ProviderError::InvalidConfig(what),
        Some(_) | None if code.is_empty() => ProviderError::Unavailable(format!(
            "{context}: unexpected answer (HTTP {})",
            status.map_or_else(|| "?".into(), |s| s.to_string())
        )),
        _ => ProviderError::Unavailable(what),
    }
}

/// A failure before or while sending: a credential failure keeps its own category (ours
/// travels inside the SDK's error chain), anything else means AWS was not reached.
fn from_chain(err: &(dyn StdError + 'static), context: &str) -> ProviderError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    let mut credentials: Option<&CredentialsError> = None;
    while let Some(e) = source {
        if let Some(ours) = e.downcast_ref::<ProviderError>() {
            return ours.clone();
        }
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            credentials.get_or_insert(c);
        }
        source = e.source();
    }
    let chain = chain_text(err);
    match credentials {
        Some(CredentialsError::ProviderTimedOut(_)) => {
            ProviderError::Unavailable(format!("{context}: credentials: {chain}"))
        }
        Some(_) => ProviderError::Authentication(format!("{context}: credentials: {chain}")),
        None => ProviderError::Unavailable(format!("{context}: {chain}")),
    }
}

/// Credentials that could not be resolved, as a [`ProviderError`].
pub(crate) fn from_credentials(err: &CredentialsError) -> ProviderError {
    from_chain(err, "resolving AWS credentials")
}

/// The messages of an error and its sources, joined.
fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// A [`ProviderError::NotFound`] from [`from_sdk`] names no key; this names `key`.
pub(crate) fn with_key(err: ProviderError, key: &str) -> ProviderError {
    match err {
        ProviderError::NotFound { key: k, detail } if k.is_empty() => ProviderError::NotFound {
            key: key.into(),
            detail,
        },
        other => other,
    }
}

/// Counts calls for one service (`AWS/SecretsManager` or `AWS/ParameterStore`).
#[derive(Clone)]
pub(crate) struct Calls {
    pub provider: &'static str,
    pub observer: Arc<dyn CallObserver>,
}

impl Calls {
    /// Reports one SDK call of `call` on `key` and maps its failure.
    pub(crate) fn sdk<T, E>(
        &self,
        call: &str,
        key: &str,
        result: Result<T, SdkError<E, HttpResponse>>,
    ) -> Result<T, ProviderError>
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        self.observer.observe(self.provider, call, result.is_ok());
        result.map_err(|e| with_key(from_sdk(e, call, key), key))
    }
}

/// `None` for a [`ProviderError::NotFound`]: the key (or version) does not exist.
pub(crate) fn found<T>(result: Result<T, ProviderError>) -> Result<Option<T>, ProviderError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The token of the next page, if there is one.
pub(crate) fn next_page(token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_categories() {
        let c = |code: &str, msg: &str, status| {
            classify(code, msg, Some(status), "GetSecretValue \"k\"")
        };
        assert!(c("ResourceNotFoundException", "", 400).is_not_found());
        assert!(
            c("InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.", 400)
                .is_not_found()
        );
        assert!(matches!(
            c("ThrottlingException", "Rate exceeded", 400),
            ProviderError::Throttled { .. }
        ));
        assert!(matches!(
            c("AccessDeniedException", "no", 400),
            ProviderError::PermissionDenied(_)
        ));
        assert!(matches!(
            c("UnrecognizedClientException", "bad", 400),
            ProviderError::Authentication(_)
        ));
        assert!(matches!(
            c("ValidationException", "bad name", 400),
            ProviderError::InvalidConfig(_)
        ));
        assert!(matches!(
            c("InternalServiceError", "", 500),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(c("", "", 502), ProviderError::Unavailable(_)));
        let e = c("", "", 403);
        assert!(
            matches!(&e, ProviderError::PermissionDenied(m) if m.ends_with("HTTP 403")),
            "{e}"
        );
        let e = c("AccessDeniedException", "not allowed", 400).to_string();
        assert!(
            e.contains("GetSecretValue \"k\"") && e.contains("not allowed"),
            "{e}"
        );
    }

    #[test]
    fn our_errors_survive_the_chain() {
        let inner = ProviderError::Authentication("Secret ns/creds not found".into());
        let wrapped = CredentialsError::provider_error(inner.clone());
        assert_eq!(from_chain(&wrapped, "op"), inner);
        let other = CredentialsError::not_loaded("no creds");
        assert!(matches!(
            from_chain(&other, "op"),
            ProviderError::Authentication(_)
        ));
    }
}
