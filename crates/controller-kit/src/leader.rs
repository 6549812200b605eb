//! Leader election with a `coordination.k8s.io/v1` Lease, so `replicas: 2` is safe: only the
//! holder of an unexpired Lease writes. Every change goes through optimistic concurrency, so
//! two candidates can never both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

/// Where the Lease lives and how it is held.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews and the others retry.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Defaults matching client-go's: 15 s lease, 2 s retry.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What one election round decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// We hold the Lease.
    Leading,
    /// Someone else holds an unexpired Lease.
    Following,
}

/// Runs one election round: create, renew or take over the Lease.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<Round, kube::Error> {
    let now = Timestamp::now();
    let duration = i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: kube::api::ObjectMeta {
                name: Some(cfg.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Round::Leading),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Following),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let expired = spec.renew_time.as_ref().is_none_or(|t| {
        let secs = i64::from(spec.lease_duration_seconds.unwrap_or(duration));
        t.0.as_second() + secs < now.as_second()
    });
    if holder != cfg.identity {
        if !holder.is_empty() && !expired {
            return Ok(Round::Following);
        }
        spec.holder_identity = Some(cfg.identity.clone());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(duration);
    match api
        .replace(&lease.name_any(), &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(Round::Leading),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Following),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up so another candidate can take over at once.
pub async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<(), kube::Error> {
    if let Some(mut lease) = api.get_opt(&cfg.name).await? {
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() == Some(cfg.identity.as_str()) {
            spec.holder_identity = None;
            api.replace(&lease.name_any(), &PostParams::default(), &lease)
                .await?;
        }
    }
    Ok(())
}

/// Campaigns forever, publishing whether we lead. A leader that cannot renew for a whole lease
/// duration steps down, so it never writes alongside a new leader.
pub fn spawn(
    client: Client,
    cfg: LeaseConfig,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
        let mut last_success = tokio::time::Instant::now();
        loop {
            match try_acquire(&api, &cfg).await {
                Ok(Round::Leading) => {
                    last_success = tokio::time::Instant::now();
                    tx.send_if_modified(|l| !std::mem::replace(l, true));
                }
                Ok(Round::Following) => {
                    tx.send_if_modified(|l| std::mem::replace(l, false));
                }
                Err(e) => {
                    tracing::warn!(error = %e, lease = %cfg.name, "leader election round failed");
                    if last_success.elapsed() > cfg.lease_duration {
                        tx.send_if_modified(|l| std::mem::replace(l, false));
                    }
                }
            }
            tokio::time::sleep(cfg.retry_period).await;
        }
    });
    (rx, task)
}
