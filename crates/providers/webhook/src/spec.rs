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

/// What is wrong with a spec before any call: no `url`, an unparsable `timeout`, an
/// `auth.ntlm` without both Secret keys, a `secrets[]` entry without a name or Secret name.
pub fn check_spec(spec: &Spec) -> Result<(), ProviderError> {
    if spec.url.trim().is_empty() {
        return Err(ProviderError::InvalidConfig("url must not be empty".into()));
    }
    timeout(spec)?;
    if let Some(ntlm) = spec.auth.as_ref().and_then(|a| a.ntlm.as_ref()) {
        for (field, selector) in crate::ntlm::selectors(ntlm) {
            let named = selector.is_some_and(|s| {
                !s.name.as_deref().unwrap_or_default().is_empty()
                    && !s.key.as_deref().unwrap_or_default().is_empty()
            });
            if !named {
                return Err(ProviderError::InvalidConfig(format!(
                    "auth.ntlm.{field} must name a Secret and a key"
                )));
            }
        }
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
    use strongroom_core::crd::external_secrets::{SecretKeySelector, WebhookAuth, WebhookNtlm};

    #[test]
    fn specs_need_a_url_a_valid_timeout_and_complete_ntlm_selectors() {
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
        let selector = |name: &str, key: &str| SecretKeySelector {
            name: Some(name.into()),
            key: Some(key.into()),
            ..SecretKeySelector::default()
        };
        let ntlm = |password_key: &str| Spec {
            auth: Some(WebhookAuth {
                ntlm: Some(WebhookNtlm {
                    username_secret: Some(selector("creds", "user")),
                    password_secret: Some(selector("creds", password_key)),
                }),
            }),
            ..ok.clone()
        };
        assert_eq!(check_spec(&ntlm("password")), Ok(()));
        assert!(
            message(&ntlm("")).contains("auth.ntlm.passwordSecret must name a Secret and a key")
        );
    }
}
