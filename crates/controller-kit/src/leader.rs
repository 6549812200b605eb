//! Leader election with a `coordination.k8s.io/v1` Lease, so `replicas: 2` is safe: only the
//! holder of an unexpired Lease writes. Every change goes through optimistic concurrency, so
//! two candidates can never both win.
//!
//! [`run_while_leading`] is the leader-gated runner every controller uses: it campaigns, runs
//! the controller's work only while it holds the Lease, drops that work the moment the Lease is
//! lost (another holder, or no successful renewal within the renew deadline, which is shorter
//! than the lease duration, so the old leader has stopped before anyone else may start), and
//! releases the Lease on shutdown so the next leader starts at once.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, PostParams};

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
    /// How long the holder keeps leading without a successful renewal; shorter than
    /// `lease_duration`, so a leader cut off from the API server stops before its Lease expires.
    pub renew_deadline: Duration,
    /// How often the holder renews and the others retry.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Defaults matching client-go's: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks that the timings make sense: retry < renew deadline < lease duration.
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(
                "the leader election retry period must be shorter than the renew deadline".into(),
            );
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(
                "the leader election renew deadline must be shorter than the lease duration".into(),
            );
        }
        Ok(())
    }
}

/// What one election round decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// We hold the Lease.
    Leading,
    /// Someone else holds an unexpired Lease.
    Following,
    /// The Lease changed between our read and our write (409): try again.
    Conflict,
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
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Conflict),
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
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Conflict),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up so another candidate can take over at once. Does nothing when someone
/// else holds it; retries once when the Lease changed under it (a renewal still in flight).
pub async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<(), kube::Error> {
    for attempt in 0..2 {
        let Some(mut lease) = api.get_opt(&cfg.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        match api
            .replace(&lease.name_any(), &PostParams::default(), &lease)
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 409 && attempt == 0 => continue,
            other => return other.map(|_| ()),
        }
    }
    Ok(())
}

/// How a leader-gated run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Shutdown was requested; the work had its grace period and the Lease was released.
    Shutdown,
    /// The Lease was lost: the work was dropped at once. Exit non-zero so the pod restarts as a
    /// follower with fresh state.
    LostLease,
    /// The work returned on its own.
    Finished,
}

/// Leader election settings for [`run_while_leading`]; `None` there runs without election.
#[derive(Clone)]
pub struct Election {
    /// Client for the Lease.
    pub client: kube::Client,
    /// Which Lease, who we are, and the timings.
    pub lease: LeaseConfig,
}

/// Runs `work` while this replica leads (or at once without `election`) until `shutdown`.
///
/// `work` receives a token that is cancelled when it must stop: on shutdown it then has `grace`
/// to finish in-flight work (the Lease is still renewed and watched meanwhile), after which it
/// is dropped; on Lease loss it is dropped at once, without waiting, because another replica
/// may already be writing. Work that spawns tasks must stop them when the token is cancelled
/// (see [`crate::shutdown::unless_cancelled`]). The Lease is released on every way out except
/// its loss.
pub async fn run_while_leading<F, Fut>(
    election: Option<Election>,
    shutdown: &CancellationToken,
    grace: Duration,
    work: F,
) -> anyhow::Result<Ended>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let Some(election) = election else {
        let stop = shutdown.child_token();
        return run_work(
            work(stop.clone()),
            &stop,
            shutdown,
            grace,
            std::future::pending(),
        )
        .await;
    };
    let api: Api<Lease> = Api::namespaced(election.client.clone(), &election.lease.namespace);
    let cfg = &election.lease;
    let Some(won_at) = campaign(&api, cfg, shutdown).await else {
        // a round interrupted by the signal may still have won the Lease
        release_logged(&api, cfg).await;
        return Ok(Ended::Shutdown);
    };
    tracing::info!(identity = %cfg.identity, lease = %cfg.name, "leading");
    let stop = shutdown.child_token();
    // the keeper has a token of its own: it renews and watches the Lease through the grace
    let keeper_stop = CancellationToken::new();
    let keeper = tokio::spawn(keep_leading(
        api.clone(),
        cfg.clone(),
        won_at,
        keeper_stop.clone(),
    ));
    let ended = run_work(
        work(stop.clone()),
        &stop,
        shutdown,
        grace,
        keeper_lost(keeper),
    )
    .await;
    keeper_stop.cancel();
    if !matches!(ended, Ok(Ended::LostLease)) {
        // hand the Lease over at once instead of making the next leader wait for expiry
        release_logged(&api, cfg).await;
    }
    ended
}

async fn release_logged(api: &Api<Lease>, cfg: &LeaseConfig) {
    match tokio::time::timeout(Duration::from_secs(2), release(api, cfg)).await {
        Ok(Ok(())) => tracing::info!(lease = %cfg.name, "leader Lease released"),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not release the leader Lease"),
        Err(_) => tracing::warn!("releasing the leader Lease timed out"),
    }
}

/// Resolves when the keeper task reports the Lease lost, or dies (nobody renews then).
async fn keeper_lost(keeper: tokio::task::JoinHandle<bool>) {
    match keeper.await {
        Ok(false) => std::future::pending::<()>().await,
        Ok(true) => {}
        Err(e) => tracing::error!(error = %e, "the leader Lease keeper died"),
    }
}

/// Drives `work` until it ends, `lost` resolves (drop it at once) or `shutdown` (grace, then
/// drop; a loss during the grace still drops it at once).
async fn run_work(
    work: impl Future<Output = anyhow::Result<()>>,
    stop: &CancellationToken,
    shutdown: &CancellationToken,
    grace: Duration,
    lost: impl Future<Output = ()>,
) -> anyhow::Result<Ended> {
    tokio::pin!(work);
    tokio::pin!(lost);
    let lost_now = || {
        tracing::error!(
            "lost the leader Lease: stopped all work, exiting so the pod restarts as a follower"
        );
        Ok(Ended::LostLease)
    };
    tokio::select! {
        result = &mut work => {
            stop.cancel();
            result.map(|()| if shutdown.is_cancelled() { Ended::Shutdown } else { Ended::Finished })
        }
        () = &mut lost => {
            stop.cancel();
            lost_now()
        }
        () = shutdown.cancelled() => {
            stop.cancel();
            tokio::select! {
                () = &mut lost => lost_now(),
                finished = tokio::time::timeout(grace, &mut work) => {
                    if finished.is_err() {
                        tracing::warn!(grace_ms = grace.as_millis() as u64, "work still running after the grace period: dropped");
                    }
                    Ok(Ended::Shutdown)
                }
            }
        }
    }
}

/// Campaigns until this replica leads, returning when the winning round started (the Lease's
/// `renewTime` is no earlier), or `None` when shutdown is requested first.
async fn campaign(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    shutdown: &CancellationToken,
) -> Option<tokio::time::Instant> {
    let mut announced = false;
    loop {
        let started = tokio::time::Instant::now();
        let round = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = tokio::time::timeout(cfg.retry_period.max(Duration::from_secs(1)), try_acquire(api, cfg)) => r,
        };
        match round {
            Ok(Ok(Round::Leading)) => return Some(started),
            Ok(Ok(Round::Following | Round::Conflict)) if !announced => {
                tracing::info!(identity = %cfg.identity, lease = %cfg.name, "waiting for leadership");
                announced = true;
            }
            Ok(Ok(Round::Following | Round::Conflict)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, lease = %cfg.name, "leader election round failed")
            }
            Err(_) => tracing::warn!(lease = %cfg.name, "leader election round timed out"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(cfg.retry_period) => {}
        }
    }
}

/// Renews the Lease every retry period. Returns true when the Lease is lost: another holder
/// has it, or no renewal succeeded within the renew deadline, counted from the start of the
/// last successful round (the Lease's `renewTime` is no earlier, so the deadline always ends
/// before the Lease expires for the others). Returns false when stopped.
async fn keep_leading(
    api: Api<Lease>,
    cfg: LeaseConfig,
    won_at: tokio::time::Instant,
    stop: CancellationToken,
) -> bool {
    let mut last_renewal = won_at;
    loop {
        let deadline = last_renewal + cfg.renew_deadline;
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(cfg.retry_period) => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
        if tokio::time::Instant::now() < deadline {
            let started = tokio::time::Instant::now();
            let round = tokio::select! {
                _ = stop.cancelled() => return false,
                r = tokio::time::timeout_at(deadline, try_acquire(&api, &cfg)) => r,
            };
            match round {
                Ok(Ok(Round::Leading)) => last_renewal = started,
                Ok(Ok(Round::Following)) => {
                    tracing::error!(identity = %cfg.identity, lease = %cfg.name, "another replica holds the leader Lease");
                    return true;
                }
                Ok(Ok(Round::Conflict)) => {
                    tracing::info!(lease = %cfg.name, "the leader Lease changed while renewing; retrying")
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, lease = %cfg.name, "renewing the leader Lease failed")
                }
                Err(_) => tracing::warn!(lease = %cfg.name, "renewing the leader Lease timed out"),
            }
        }
        if tokio::time::Instant::now() >= last_renewal + cfg.renew_deadline {
            tracing::error!(lease = %cfg.name, "no renewal of the leader Lease within the renew deadline");
            return true;
        }
    }
}
