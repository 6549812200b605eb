//! Static checks of a webhook spec (store block or generator spec), shared by both.

use std::time::Duration;

use strongroom_core::crd::external_secrets::WebhookProvider as Spec;
use strongroom_provider_api::ProviderError;

/// How long a call may take when the spec sets no `timeout` (upstream waits forever).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The call timeout: `timeout` (a Go duration) or [`DEFAULT_TIMEOUT`].
pub fn timeout(spec: &Spec) -> Result<Duration, ProviderError> {
    match spec.timeout.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => strongroom_core::duration::parse_go_duration(t)
            .map_err(|e| ProviderError::InvalidConfig(format!("timeout: {e}"))),
        None => Ok(DEFAULT_TIMEOUT),
    }
}

/// What is wrong with a spec before any call: no `url`, an unparsable `timeout`, `auth.ntlm`
/// (not implemented), a `secrets[]` entry without a name or Secret name.
pub fn check_spec(spec: &Spec) -> Result<(), ProviderError> {
    if spec.url.trim().is_empty() {
        return Err(ProviderError::InvalidConfig("url must not be empty".into()));
    }
    timeout(spec)?;
    if spec.auth.as_ref().is_some_and(|a| a.ntlm.is_some()) {
        return Err(ProviderError::InvalidConfig(
            "auth.ntlm is not supported by Strongroom (use a templated Authorization header)"
                .into(),
        ));
    }
    for (i, entry) in spec.secrets.iter().flatten().enumerate() {
        if entry.name.is_empty() {
            return Err(ProviderError::InvalidConfig(format!(
                "secrets[{i}].name must not be empty"
            )));
        }
        if entry
            .secret_ref
            .name
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            return Err(ProviderError::InvalidConfig(format!(
                "secrets[{i}].secretRef.name must not be empty"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::crd::external_secrets::{WebhookAuth, WebhookNtlm};

    #[test]
    fn specs_need_a_url_a_valid_timeout_and_no_ntlm() {
        let ok = Spec {
            url: "http://h/{{ .remoteRef.key }}".into(),
            timeout: Some("5s".into()),
            ..Spec::default()
        };
        assert_eq!(check_spec(&ok), Ok(()));
        assert_eq!(timeout(&ok), Ok(Duration::from_secs(5)));
        let message = |s: &Spec| {
            check_spec(s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(message(&Spec::default()).contains("url must not be empty"));
        let bad_timeout = Spec {
            timeout: Some("soon".into()),
            ..ok.clone()
        };
        assert!(message(&bad_timeout).contains("timeout"));
        let ntlm = Spec {
            auth: Some(WebhookAuth {
                ntlm: Some(WebhookNtlm::default()),
            }),
            ..ok
        };
        assert!(message(&ntlm).contains("auth.ntlm is not supported"));
    }
}
