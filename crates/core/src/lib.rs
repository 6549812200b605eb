//! Strongroom core: the CRD types of all three controller families, their shared
//! constants, and the sealed-secrets crypto. No async runtime and no Kubernetes client here.
#![forbid(unsafe_code)]
// kube-derive `printcolumn(type_ = ...)` repeats keys by design; clippy reads them as duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod crd;
pub mod duration;
pub mod sealing;
pub mod secret;
pub mod template;

pub use secret::SecretBytes;
