//! The sealed-secrets controller's logic: key Secrets (loading, choosing the newest, minting),
//! the Secret a SealedSecret unseals into, and the ownership rules for existing Secrets.
//! The reconcile loop, HTTP endpoints and binary build on these pure pieces.
#![forbid(unsafe_code)]

pub mod controller;
pub mod desired;
pub mod gc;
pub mod http;
pub mod keys;
pub mod keystore;
pub mod metrics;
pub mod ownership;
pub mod secret_index;
pub mod tolerant_watch;
pub mod write;
