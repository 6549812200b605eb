//! Everything that can go wrong, each with a message that names the problem and what to do.

use std::path::PathBuf;

use strongroom_core::sealing::{KeyError, SealError, UnsealError};

/// A kubeseal failure; printed as one line on stderr, exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Standard input could not be read.
    #[error("cannot read standard input: {0}")]
    Stdin(std::io::Error),
    /// The input is neither YAML nor JSON.
    #[error("{source_name}: not valid YAML or JSON: {reason}")]
    Syntax {
        /// Where the input came from.
        source_name: String,
        /// Parser message.
        reason: String,
    },
    /// A document has the wrong kind.
    #[error("{source_name}: document {index} is {found}, not {expected}")]
    WrongKind {
        /// Where the input came from.
        source_name: String,
        /// 1-based document number.
        index: usize,
        /// What was found.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The input holds no document.
    #[error("{0}: no object found in the input")]
    Empty(String),
    /// A Secret without data.
    #[error(
        "secret {0:?} has no data: nothing to seal (pass --allow-empty-data to seal it anyway)"
    )]
    EmptyData(String),
    /// Name or namespace missing for the scope.
    #[error("{what} is required to seal in {scope} scope: {hint}")]
    MissingIdentity {
        /// `a name` or `a namespace`.
        what: &'static str,
        /// The scope.
        scope: String,
        /// What to do.
        hint: &'static str,
    },
    /// `-n` disagrees with the input.
    #[error(
        "namespace mismatch: input secret is in namespace {input:?} but {flag:?} was specified \
         (a strict or namespace-wide seal only opens in one namespace: drop -n or fix the input)"
    )]
    NamespaceMismatch {
        /// The input's namespace.
        input: String,
        /// The flag's namespace.
        flag: String,
    },
    /// Certificate problems.
    #[error("certificate {source_name}: {reason}")]
    Certificate {
        /// File or URL.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// The certificate has expired.
    #[error(
        "failed to encrypt using an expired certificate on {expired}: fetch the controller's \
         current certificate, or pass --allow-expired-cert to seal anyway"
    )]
    ExpiredCertificate {
        /// When it expired, as upstream prints it.
        expired: String,
    },
    /// The controller could not be reached or answered an error.
    #[error("cannot {what}: {reason}")]
    Controller {
        /// What was being done.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Wrong flag combination.
    #[error("{0}")]
    Usage(String),
    /// Sealing failed.
    #[error("sealing failed: {0}")]
    Seal(#[from] SealError),
    /// A private key could not be used.
    #[error("private key {source_name}: {reason}")]
    PrivateKey {
        /// Where the key came from.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A value could not be unsealed.
    #[error("cannot unseal {namespace}/{name} item {item:?}: {source}")]
    Unseal {
        /// SealedSecret namespace.
        namespace: String,
        /// SealedSecret name.
        name: String,
        /// The item.
        item: String,
        /// Why.
        source: UnsealError,
    },
    /// Output could not be rendered.
    #[error("cannot render output: {0}")]
    Render(String),
}

impl Error {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    /// Wraps a key error with where the key came from.
    pub fn key(source_name: impl Into<String>) -> impl FnOnce(KeyError) -> Self {
        let source_name = source_name.into();
        move |e| Self::PrivateKey {
            source_name,
            reason: e.to_string(),
        }
    }
}

/// Result with kubeseal's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
