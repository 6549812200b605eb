//! The reloader: rolls Deployments, DaemonSets, StatefulSets, CronJobs and Argo Rollouts when
//! the ConfigMaps and Secrets they use change, with Stakater Reloader's annotations, hash and
//! strategies, so a swap of images rolls nothing.
//!
//! Pure parts: [`hash`] (upstream's SHA-1 and the env var name), [`annotations`] (the decision
//! order), [`references`] (which container uses a source, which keys), [`workloads`] (the slim
//! view of a workload), [`plan`] (what a workload needs, storm-free), [`patch`] (the write).
//! [`engine`] runs the watches, the reverse index, the coalescing queue and the writes.
#![forbid(unsafe_code)]

pub mod annotations;
pub mod engine;
pub mod hash;
pub mod meta_info;
pub mod metrics;
pub mod notify;
pub mod patch;
pub mod plan;
pub mod references;
pub mod workloads;

/// Name of the leader election Lease, as upstream.
pub const LEASE_NAME: &str = "stakater-reloader-lock";
