//! An access token and its cache: one per store client, refreshed shortly before it expires
//! (or when Secret Manager rejects it), by one caller while the others wait for it. No
//! process-wide lock: stores never wait for each other.

use std::time::{Duration, Instant};

use strongroom_provider_api::ProviderError;
use tokio::sync::Mutex;

use crate::auth::Source;

/// A bearer token. Its Debug output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AccessToken {
    value: String,
    expires: Instant,
    lifetime: Duration,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// The most a token is refreshed ahead of its expiry (Google's libraries use 3 m 45 s).
const MAX_MARGIN: Duration = Duration::from_secs(225);

impl AccessToken {
    /// A token valid for `lifetime` from now.
    pub(crate) fn new(value: String, lifetime: Duration) -> Self {
        Self {
            value,
            expires: Instant::now() + lifetime,
            lifetime,
        }
    }

    /// The `Authorization` header value.
    pub(crate) fn bearer(&self) -> String {
        format!("Bearer {}", self.value)
    }

    /// The raw token (the GCRAccessToken generator's password).
    pub(crate) fn secret(&self) -> &str {
        &self.value
    }

    /// How long the token was valid for when obtained.
    pub(crate) fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Whether the token is still good for a while: refreshed when less than a fifth of its
    /// lifetime (at most [`MAX_MARGIN`]) is left.
    fn fresh(&self) -> bool {
        let margin = (self.lifetime / 5).min(MAX_MARGIN);
        self.expires
            .checked_duration_since(Instant::now())
            .is_some_and(|left| left > margin)
    }
}

/// Where a client's tokens come from, and the current one.
pub(crate) struct Tokens {
    source: Source,
    current: Mutex<Option<AccessToken>>,
}

impl Tokens {
    /// A cache over `source`, empty until the first call.
    pub(crate) fn new(source: Source) -> Self {
        Self {
            source,
            current: Mutex::new(None),
        }
    }

    /// A fresh token: the cached one, or a new one from the source.
    pub(crate) async fn get(&self) -> Result<AccessToken, ProviderError> {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref().filter(|t| t.fresh()) {
            return Ok(t.clone());
        }
        let token = self.source.fetch().await?;
        tracing::debug!(lifetime = ?token.lifetime, "GCP access token obtained");
        *current = Some(token.clone());
        Ok(token)
    }

    /// Forgets `used` (rejected by the server) unless another caller already replaced it.
    pub(crate) async fn reject(&self, used: &AccessToken) {
        let mut current = self.current.lock().await;
        if current.as_ref() == Some(used) {
            *current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn refreshed_before_expiry_and_redacted() {
        let long = AccessToken::new("ya29.secret".into(), Duration::from_secs(3600));
        assert!(long.fresh());
        let nearly_gone = AccessToken {
            expires: Instant::now() + Duration::from_secs(100),
            ..long.clone()
        };
        assert!(!nearly_gone.fresh(), "refreshed 225 s ahead of expiry");
        assert!(!format!("{long:?}").contains("ya29"));
    }
}
