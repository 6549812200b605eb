//! Sealed-secrets crypto, byte-compatible with Bitnami Sealed Secrets.
//!
//! A sealed value is `u16 BE length ‖ RSA-OAEP-SHA256(session key, label) ‖
//! AES-256-GCM(plaintext, zero nonce) ‖ tag`, base64-encoded in `encryptedData`. The OAEP
//! label binds the value to a namespace and name according to its [`SealingScope`].

mod cert;
mod error;
mod hybrid;
mod keyring;
mod keys;

pub use crate::scope::{
    CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, SealingScope, UnknownScope,
};
pub use cert::{KeyGenParams, SealingCertificate, generate_key_and_cert, self_signed_certificate};
pub use error::{KeyError, SealError, UnsealError};
pub use hybrid::{
    SESSION_KEY_LEN, SealedParts, TAG_LEN, decode_base64, seal_bytes, seal_to_base64, split,
};
pub use keyring::{KeyRing, SealTarget, Unsealed};
pub use keys::{Fingerprint, PrivateSealingKey, PublicSealingKey};

/// The operating system's random source, for sealing outside tests.
pub fn os_rng() -> getrandom::SysRng {
    getrandom::SysRng
}
