//! Plumbing every Strongroom controller shares: the admin HTTP server (`/healthz`, `/readyz`,
//! `/metrics`), Lease-based leader election, per-object exponential backoff with jitter,
//! tracing setup with the common log flags, and graceful shutdown.
#![forbid(unsafe_code)]

pub mod admin;
pub mod backoff;
pub mod leader;
pub mod logging;
pub mod shutdown;
