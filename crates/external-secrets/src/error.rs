//! Why a reconcile failed: one variant per failed action, each with a metric category, an event
//! reason and a message that is safe to show (no secret values).

use std::time::Duration;

use strongroom_controller_kit::reconcile::ReconcileError;
use strongroom_provider_api::ProviderError;

/// A failed ExternalSecret or store reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec breaks a rule the CRD's validation would have enforced.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The referenced store is missing, not allowed, or not ready.
    #[error("{0}")]
    Store(String),
    /// The store's provider could not be used.
    #[error("{0}")]
    StoreProvider(ProviderError),
    /// Reading a value failed; `at` names the spec entry (`spec.data[0] (key: db)`).
    #[error("error processing {at}: {source}")]
    Fetch {
        /// The spec entry.
        at: String,
        /// The provider's error.
        source: ProviderError,
    },
    /// A fetched value could not be used (decoding, invalid key, null byte).
    #[error("error processing {at}: {message}")]
    Value {
        /// The spec entry.
        at: String,
        /// What is wrong.
        message: String,
    },
    /// The template (or a templateFrom source) could not be rendered.
    #[error("could not apply template: {0}")]
    Template(String),
    /// The target Secret belongs to someone else.
    #[error("{0}")]
    Ownership(String),
    /// The target is immutable and the data changed.
    #[error("could not update secret, target is immutable")]
    Immutable,
    /// `spec.target.manifest` is set but the controller runs without
    /// `--unsafe-allow-generic-targets`.
    #[error(
        "generic targets are disabled: spec.target.manifest needs the controller flag --unsafe-allow-generic-targets"
    )]
    GenericTargetsDisabled,
    /// The generic target's kind cannot be used (not served, cluster-scoped, malformed).
    #[error("{0}")]
    Target(String),
    /// A PushSecret's source Secret (named by `spec.selector.secret.name`) does not exist;
    /// `outcome` says what became of the values pushed from it.
    #[error("source Secret {name:?} not found: {outcome}")]
    SourceMissing {
        /// The Secret's name.
        name: String,
        /// What became of what was pushed.
        outcome: String,
    },
    /// A Kubernetes API call failed.
    #[error("could not {action}: {source}")]
    Kube {
        /// What was being done.
        action: &'static str,
        /// The API error.
        source: kube::Error,
    },
}

impl Error {
    /// A Kubernetes API error while doing `action`.
    pub fn kube(action: &'static str) -> impl FnOnce(kube::Error) -> Self {
        move |source| Self::Kube { action, source }
    }

    /// As [`Error::kube`], for writes of objects holding secret data to a kind whose schema
    /// may refuse a value: the API server quotes the refused value, so it is redacted from the
    /// message and its causes.
    pub fn kube_write(action: &'static str) -> impl FnOnce(kube::Error) -> Self {
        use strongroom_core::secret::redact_field_values;
        move |source| {
            let source = match source {
                kube::Error::Api(mut status) => {
                    status.message = redact_field_values(&status.message);
                    if let Some(details) = status.details.as_mut() {
                        for cause in &mut details.causes {
                            cause.message = redact_field_values(&cause.message);
                        }
                    }
                    kube::Error::Api(status)
                }
                other => other,
            };
            Self::Kube { action, source }
        }
    }

    /// A render failure. The engine scrubs the fetched values from its messages, but a value
    /// the template derived from them (`fromJson`, `b64dec`, `split`) could still be quoted:
    /// every quoted part of the message is dropped.
    pub fn template(message: String) -> Self {
        Self::Template(strongroom_core::secret::redact_quoted(&message))
    }

    /// The `Ready` condition reason of an ExternalSecret failing this way: `generic` for a
    /// generic target (`spec.target.manifest`).
    pub fn es_reason(&self, generic: bool) -> &'static str {
        if generic {
            "ResourceSyncedError"
        } else {
            "SecretSyncedError"
        }
    }
}

impl ReconcileError for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) => "invalid_spec",
            Self::Store(_) => "store",
            Self::StoreProvider(e) | Self::Fetch { source: e, .. } => e.category(),
            Self::Value { .. } => "invalid_value",
            Self::Template(_) => "template",
            Self::Ownership(_) => "ownership",
            Self::Immutable => "immutable",
            Self::GenericTargetsDisabled | Self::Target(_) => "generic_target",
            Self::SourceMissing { .. } => "source_missing",
            Self::Kube { .. } => "kubernetes",
        }
    }

    fn event_reason(&self) -> &'static str {
        "UpdateFailed"
    }

    fn retryable(&self) -> bool {
        match self {
            // fixed by editing the ExternalSecret, which triggers a reconcile
            // (template errors are retried: they often come from remote data or a templateFrom
            // source that is not there yet, neither of which is watched)
            // (a kind that is not served is retried: its CRD may be installed later)
            Self::InvalidSpec(_) | Self::Immutable | Self::GenericTargetsDisabled => false,
            // the controller watches source Secrets: one that appears triggers a reconcile
            Self::SourceMissing { .. } => false,
            _ => true,
        }
    }

    fn requeue_after(&self) -> Option<Duration> {
        match self {
            Self::Fetch { source, .. } | Self::StoreProvider(source) => source.retry_after(),
            _ => None,
        }
    }
}
