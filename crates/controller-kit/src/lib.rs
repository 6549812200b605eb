//! Plumbing every Strongroom controller shares, so a controller's crate holds only its own
//! logic. A controller's `main` is, in order:
//!
//! 1. [`shutdown::run_main`] and [`shutdown::on_signal`]: a runtime whose every phase ends
//!    soon after SIGTERM or SIGINT;
//! 2. [`logging::init`] with the common log flags;
//! 3. [`admin::serve`] (`/healthz`, `/readyz`, `/metrics`) and, if it has one, its own API via
//!    [`http::serve`], fed by a [`readiness::Readiness`] that each part reports into (never
//!    tied to leadership);
//! 4. [`leader::run_while_leading`]: the controllers run only while this replica holds the
//!    Lease, are dropped the moment it is lost, and the Lease is released on shutdown;
//! 5. inside, kube-runtime `Controller`s over [`watch::guarded_watch`] (a bad object is
//!    reported and skipped) with [`watch::owned_metadata_cache`] for owned objects, reconciles
//!    wrapped in [`reconcile::ErrorPolicy::observe`], failures handled by
//!    [`reconcile::ErrorPolicy::on_error`], status written with [`status::set_conditions`], and
//!    the queue measured by [`workqueue::WorkQueue::run`] (client-go's `workqueue_*` metrics).
#![forbid(unsafe_code)]

pub mod admin;
pub mod backoff;
pub mod flags;
pub mod http;
pub mod lanes;
pub mod leader;
pub mod logging;
pub mod metrics_auth;
pub mod metrics_tls;
pub mod pod;
pub mod readiness;
pub mod reconcile;
pub mod shutdown;
pub mod status;
pub mod watch;
pub mod workqueue;
