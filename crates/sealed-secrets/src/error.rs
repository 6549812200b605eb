//! Why a reconcile failed.

use strongroom_controller_kit::reconcile::ReconcileError;

use crate::desired::UnsealFailure;

/// Why a reconcile failed; each variant is the action that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unsealing failed.
    #[error("{0}")]
    Unseal(#[from] UnsealFailure),
    /// The Secret exists and is someone else's.
    #[error("Resource \"{0}\" already exists and is not managed by SealedSecret")]
    Unmanaged(String),
    /// The Secret is immutable and differs from what the SealedSecret now holds.
    #[error(
        "the Secret \"{0}\" is immutable and cannot be updated: delete it and the controller creates it again"
    )]
    Immutable(String),
    /// Reading or writing the Secret failed.
    #[error("{0}")]
    Update(kube::Error),
    /// Writing the status failed.
    #[error("status update failed: {0}")]
    Status(kube::Error),
}

impl Error {
    /// The `reason` label of `sealed_secrets_controller_unseal_errors_total`.
    pub fn reason(&self) -> &'static str {
        self.category()
    }
}

impl ReconcileError for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::Unseal(_) => "unseal",
            Self::Unmanaged(_) => "unmanaged",
            Self::Immutable(_) | Self::Update(_) => "update",
            Self::Status(_) => "status",
        }
    }

    fn event_reason(&self) -> &'static str {
        match self {
            Self::Unseal(_) => "ErrUnsealFailed",
            _ => "ErrUpdateFailed",
        }
    }

    fn event_note(&self) -> String {
        match self {
            Self::Unseal(_) => format!("Failed to unseal: {self}"),
            _ => self.to_string(),
        }
    }

    /// An immutable Secret does not change by retrying: wait for the SealedSecret to change.
    fn retryable(&self) -> bool {
        !matches!(self, Self::Immutable(_))
    }
}
