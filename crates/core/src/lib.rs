//! Strongroom core: the CRD types of all three controller families, their shared
//! constants, and the sealed-secrets crypto. No async runtime and no Kubernetes client here.
//!
//! # Cargo features
//!
//! None is on by default, so a crate that needs only the CRD types links neither OpenSSL nor
//! the template engine:
//!
//! - `sealing`: the `sealing` module, RSA-OAEP + AES-256-GCM sealing byte-compatible with
//!   Bitnami Sealed Secrets (OpenSSL, `rsa`, `aes-gcm`, `x509-parser`);
//! - `template`: the `template` module, Go `text/template` rendering with the sprig
//!   functions (our own evaluator, `bcrypt`, and OpenSSL for sprig's key and cipher functions);
//! - `vendored-openssl`: builds OpenSSL from source and links it statically; implies `sealing`.
//!
//! [`scope`] (sealing scopes and their annotations) is always built: the SealedSecret type
//! reads its scope from them.
#![forbid(unsafe_code)]
// kube-derive `printcolumn(type_ = ...)` repeats keys by design; clippy reads them as duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod crd;
pub mod duration;
pub mod scope;
#[cfg(feature = "sealing")]
pub mod sealing;
pub mod secret;
#[cfg(feature = "template")]
pub mod template;

pub use secret::SecretBytes;
