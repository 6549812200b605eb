//! What can go wrong talking to a provider, sorted into categories the controller acts on.

use std::time::Duration;

/// A provider failure. Messages never carry secret values: providers describe what they asked
/// for (key names, HTTP status), never what came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The remote key (or version, or property) does not exist. Drives `deletionPolicy`.
    #[error("remote key {key:?} not found{}", detail_suffix(.detail))]
    NotFound {
        /// The key asked for.
        key: String,
        /// What exactly was missing (a version, a property), if more than the key.
        detail: String,
    },
    /// The credentials work but may not read (or write) this key.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The provider asked us to slow down.
    #[error("throttled by the provider{}: {message}", retry_suffix(.retry_after))]
    Throttled {
        /// When the provider said to try again, if it did.
        retry_after: Option<Duration>,
        /// What the provider said.
        message: String,
    },
    /// The provider could not be reached or failed on its side; retry later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The store's provider block is wrong (the user must fix the store).
    #[error("invalid provider configuration: {0}")]
    InvalidConfig(String),
    /// Logging in failed (bad or expired credentials, missing credential Secret).
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// The provider answered, but with something we cannot use (not JSON, wrong shape).
    #[error("malformed provider answer: {0}")]
    Malformed(String),
    /// The provider does not do this (pushing to a read-only provider, `find` without support).
    #[error("not supported by this provider: {0}")]
    Unsupported(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

fn retry_suffix(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (retry after {}s)", d.as_secs().max(1)),
        None => String::new(),
    }
}

impl ProviderError {
    /// A missing key.
    pub fn not_found(key: impl Into<String>) -> Self {
        Self::NotFound {
            key: key.into(),
            detail: String::new(),
        }
    }

    /// A key that exists without the asked-for part (`what` names it, e.g. `property "user"`).
    pub fn not_found_in(key: impl Into<String>, what: impl Into<String>) -> Self {
        Self::NotFound {
            key: key.into(),
            detail: what.into(),
        }
    }

    /// The metric label and `reason` suffix of this failure.
    pub fn category(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::PermissionDenied(_) => "permission_denied",
            Self::Throttled { .. } => "throttled",
            Self::Unavailable(_) => "unavailable",
            Self::InvalidConfig(_) => "invalid_config",
            Self::Authentication(_) => "authentication",
            Self::Malformed(_) => "malformed_answer",
            Self::Unsupported(_) => "unsupported",
        }
    }

    /// Whether trying again later can succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unavailable(_))
    }

    /// The wait the provider asked for, when it throttled us.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the failure says the key is missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_key_and_the_wait() {
        assert_eq!(
            ProviderError::not_found_in("db", "property \"user\"").to_string(),
            "remote key \"db\" not found (property \"user\")"
        );
        let throttled = ProviderError::Throttled {
            retry_after: Some(Duration::from_millis(1500)),
            message: "rate exceeded".into(),
        };
        assert_eq!(
            throttled.to_string(),
            "throttled by the provider (retry after 1s): rate exceeded"
        );
        assert!(throttled.is_retryable());
        assert_eq!(throttled.category(), "throttled");
        assert!(!ProviderError::InvalidConfig("x".into()).is_retryable());
    }
}
