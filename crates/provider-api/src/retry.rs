//! A store's `spec.retrySettings`, checked: how often and how far apart a provider retries a
//! request that failed for a reason that may pass (connection refused, 5xx, 429).
//!
//! The controller hands the raw block to providers in [`crate::StoreContext::retry`]; each
//! provider maps it onto its client the way upstream's does (the AWS SDK's attempts and
//! backoff, the Vault client's retries and wait), so the defaults differ per provider.

use std::time::Duration;

use strongroom_core::crd::external_secrets::SecretStoreRetrySettings;
use strongroom_core::duration::parse_go_duration;

use crate::ProviderError;

/// The checked `spec.retrySettings` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetrySettings {
    /// `maxRetries`; `None` when unset (each provider has its own default).
    pub max_retries: Option<u32>,
    /// `retryInterval`; `None` when unset or zero (the provider's own backoff applies).
    pub interval: Option<Duration>,
}

impl RetrySettings {
    /// Checks the block: `maxRetries` must not be negative and `retryInterval` must be a Go
    /// duration. `None` when the store has no `retrySettings`.
    pub fn from_spec(
        spec: Option<&SecretStoreRetrySettings>,
    ) -> Result<Option<Self>, ProviderError> {
        let Some(spec) = spec else {
            return Ok(None);
        };
        let max_retries = match spec.max_retries {
            Some(n) if n < 0 => {
                return Err(ProviderError::InvalidConfig(format!(
                    "retrySettings.maxRetries {n} is negative"
                )));
            }
            Some(n) => Some(n.unsigned_abs()),
            None => None,
        };
        let interval = match spec.retry_interval.as_deref() {
            Some(text) => Some(parse_go_duration(text).map_err(|e| {
                ProviderError::InvalidConfig(format!("retrySettings.retryInterval: {e}"))
            })?),
            None => None,
        }
        .filter(|d| !d.is_zero());
        Ok(Some(Self {
            max_retries,
            interval,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(max: Option<i32>, interval: Option<&str>) -> SecretStoreRetrySettings {
        SecretStoreRetrySettings {
            max_retries: max,
            retry_interval: interval.map(str::to_string),
        }
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!(RetrySettings::from_spec(None).unwrap(), None);
        assert_eq!(
            RetrySettings::from_spec(Some(&spec(Some(5), Some("1.5s")))).unwrap(),
            Some(RetrySettings {
                max_retries: Some(5),
                interval: Some(Duration::from_millis(1500)),
            })
        );
        assert_eq!(
            RetrySettings::from_spec(Some(&spec(None, Some("0s")))).unwrap(),
            Some(RetrySettings::default())
        );
        let bad = RetrySettings::from_spec(Some(&spec(Some(-1), None))).unwrap_err();
        assert!(bad.to_string().contains("maxRetries"), "{bad}");
        let bad = RetrySettings::from_spec(Some(&spec(None, Some("soon")))).unwrap_err();
        assert!(bad.to_string().contains("retryInterval"), "{bad}");
    }
}
