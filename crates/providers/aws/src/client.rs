//! What the Secrets Manager and Parameter Store clients share: the session, the key prefix,
//! call counting and store validation.

use strongroom_provider_api::{ProviderEnv, ProviderError, Validation};

use crate::auth::{self, Session};
use crate::config::Settings;
use crate::error::Calls;

/// One store's session and settings, as both services' clients use them.
pub(crate) struct Common {
    pub session: Session,
    pub prefix: String,
    pub calls: Calls,
    pub referent: bool,
}

impl Common {
    pub(crate) fn new(
        session: Session,
        settings: &Settings,
        provider: &'static str,
        env: ProviderEnv,
    ) -> Self {
        Self {
            session,
            prefix: settings.prefix.clone(),
            calls: Calls {
                provider,
                observer: env.calls,
            },
            referent: settings.referent,
        }
    }

    /// The remote name of `key`.
    pub(crate) fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Upstream's store validation: `Unknown` for referent authentication, else the
    /// credentials must resolve.
    pub(crate) async fn validate(&self) -> Result<Validation, ProviderError> {
        if self.referent {
            return Ok(Validation::Unknown);
        }
        auth::check(&self.session).await?;
        Ok(Validation::Ready)
    }
}
