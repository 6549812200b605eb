//! Errors of the sealing crypto. None of them carries plaintext or key material.

use crate::scope::SealingScope;

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    /// The value is not standard padded base64.
    #[error("the sealed value is not valid base64: {0}")]
    InvalidBase64(String),
    /// The blob is shorter than its own length prefix says.
    #[error(
        "the sealed value is truncated: {len} bytes, at least {needed} expected (was it cut when copied?)"
    )]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes the layout needs at the least.
        needed: usize,
    },
    /// No private key is loaded at all.
    #[error("no private key is loaded, so nothing can be unsealed")]
    NoKeys,
    /// The session key decrypted but the data failed its integrity check.
    #[error("the sealed value was modified after sealing (AES-GCM authentication failed)")]
    Tampered,
    /// The value opens, but only under another scope than the object declares.
    #[error(
        "the value was sealed with scope {sealed} but the object is read as {declared}: \
         set the matching scope annotation or seal it again with --scope {declared}"
    )]
    ScopeMismatch {
        /// The scope whose label opens the value.
        sealed: SealingScope,
        /// The scope the object's annotations declare.
        declared: SealingScope,
    },
    /// No key opened the value under the declared scope or any other.
    #[error("{}", no_key_message(*.keys_tried, *.scope))]
    NoKeyCouldDecrypt {
        /// How many private keys were tried.
        keys_tried: usize,
        /// The scope the object declares.
        scope: SealingScope,
    },
}

fn no_key_message(keys_tried: usize, scope: SealingScope) -> String {
    let hint = match scope {
        SealingScope::Strict => {
            "it was sealed for another namespace or name (strict scope binds both), \
             or with a certificate whose private key this controller does not hold"
        }
        SealingScope::NamespaceWide => {
            "it was sealed for another namespace, \
             or with a certificate whose private key this controller does not hold"
        }
        SealingScope::ClusterWide => {
            "it was sealed with a certificate whose private key this controller does not hold"
        }
    };
    format!("no key could decrypt secret ({keys_tried} keys tried): {hint}")
}

impl UnsealError {
    /// A short, stable category name for metrics labels and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidBase64(_) => "invalid-base64",
            Self::Truncated { .. } => "truncated",
            Self::NoKeys => "no-keys",
            Self::Tampered => "tampered",
            Self::ScopeMismatch { .. } => "scope-mismatch",
            Self::NoKeyCouldDecrypt { .. } => "unknown-key",
        }
    }
}

/// Why a value could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The random source failed.
    #[error("the random number generator failed")]
    Random,
    /// RSA-OAEP encryption of the session key failed.
    #[error("RSA-OAEP encryption failed: {0}")]
    Rsa(String),
    /// AES-GCM encryption failed (plaintext too large).
    #[error("AES-GCM encryption failed")]
    Aead,
}

/// Why key or certificate material could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No PEM block of the expected kind was found.
    #[error("no {expected} PEM block found")]
    NoPem {
        /// What was looked for.
        expected: &'static str,
    },
    /// The PEM or DER could not be parsed.
    #[error("cannot parse {what}: {reason}")]
    Parse {
        /// What was parsed.
        what: &'static str,
        /// Parser message (never contains key bytes).
        reason: String,
    },
    /// The key is not an RSA key.
    #[error("the {what} is not an RSA key (only RSA is supported)")]
    NotRsa {
        /// What held the key.
        what: &'static str,
    },
    /// The key size is outside what is supported.
    #[error("unsupported RSA key size {bits} bits (supported: 2048 to 8192)")]
    UnsupportedSize {
        /// Modulus size in bits.
        bits: usize,
    },
    /// Key or certificate generation failed.
    #[error("key generation failed: {0}")]
    Generate(String),
}
