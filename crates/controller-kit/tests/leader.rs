//! Leader election against devcluster: one leader among candidates, takeover after expiry,
//! immediate takeover after release, and the leader-gated runner broken on purpose: the Lease
//! taken away by hand, the API server gone, shutdown while leading and while waiting.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strongroom_controller_kit::leader::{Election, Ended, run_while_leading};
use strongroom_controller_kit::shutdown::CancellationToken;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use strongroom_controller_kit::leader::{self, LeaseConfig, Round};
use strongroom_devcluster::{DevCluster, Options};

fn cfg(identity: &str, secs: u64) -> LeaseConfig {
    LeaseConfig {
        lease_duration: Duration::from_secs(secs),
        renew_deadline: Duration::from_millis(secs * 1000 * 2 / 3),
        retry_period: Duration::from_millis(200),
        ..LeaseConfig::new("kube-system", "demo-controller", identity)
    }
}

#[tokio::test]
async fn exactly_one_candidate_leads() {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let api: Api<Lease> = Api::namespaced(cluster.client().await.unwrap(), "kube-system");
    let mut leaders = 0;
    for id in ["a", "b", "c"] {
        if leader::try_acquire(&api, &cfg(id, 15)).await.unwrap() == Round::Leading {
            leaders += 1;
        }
    }
    assert_eq!(leaders, 1);
    // the holder renews; the others keep following
    assert_eq!(
        leader::try_acquire(&api, &cfg("a", 15)).await.unwrap(),
        Round::Leading
    );
    assert_eq!(
        leader::try_acquire(&api, &cfg("b", 15)).await.unwrap(),
        Round::Following
    );
}

#[tokio::test]
async fn a_lease_that_is_not_renewed_is_taken_over() {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let api: Api<Lease> = Api::namespaced(cluster.client().await.unwrap(), "kube-system");
    assert_eq!(
        leader::try_acquire(&api, &cfg("a", 1)).await.unwrap(),
        Round::Leading
    );
    assert_eq!(
        leader::try_acquire(&api, &cfg("b", 1)).await.unwrap(),
        Round::Following
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        leader::try_acquire(&api, &cfg("b", 1)).await.unwrap(),
        Round::Leading
    );
    let lease = api.get("demo-controller").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
}

/// Work that counts ticks until it is stopped or dropped.
fn ticking(
    ticks: Arc<AtomicU64>,
) -> impl FnOnce(
    CancellationToken,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>> {
    move |stop: CancellationToken| {
        Box::pin(async move {
            while !stop.is_cancelled() {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        })
    }
}

fn holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref().and_then(|s| s.holder_identity.clone())
}

#[tokio::test]
async fn a_leader_whose_lease_is_taken_stops_its_work_at_once() {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let client = cluster.client().await.unwrap();
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let ticks = Arc::new(AtomicU64::new(0));
    let shutdown = CancellationToken::new();
    let election = Election {
        client: client.clone(),
        lease: cfg("a", 15),
    };
    let run = tokio::spawn({
        let (ticks, shutdown) = (ticks.clone(), shutdown.clone());
        async move {
            run_while_leading(
                Some(election),
                &shutdown,
                Duration::from_secs(5),
                ticking(ticks),
            )
            .await
        }
    });
    while ticks.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // someone else takes the Lease by hand (a partition healed, an operator, a paused process)
    // (the holder may renew between our read and our write: read again on a conflict)
    loop {
        let mut lease = api.get("demo-controller").await.unwrap();
        let spec = lease.spec.as_mut().unwrap();
        spec.holder_identity = Some("intruder".into());
        spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        match api
            .replace("demo-controller", &Default::default(), &lease)
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => panic!("could not take the Lease: {e}"),
        }
    }
    let taken = tokio::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ended, Ended::LostLease);
    assert!(
        taken.elapsed() < Duration::from_secs(2),
        "noticed within a retry period: {:?}",
        taken.elapsed()
    );
    let after = ticks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ticks.load(Ordering::SeqCst), after, "the work was dropped");
    // the Lease stays the intruder's: a replica that lost it does not release someone else's
    assert_eq!(
        holder(&api.get("demo-controller").await.unwrap()).as_deref(),
        Some("intruder")
    );
}

#[tokio::test]
async fn a_leader_cut_off_from_the_api_server_stops_before_its_lease_expires() {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let client = cluster.client().await.unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    let shutdown = CancellationToken::new();
    // lease 3 s, renew deadline 2 s
    let election = Election {
        client,
        lease: cfg("a", 3),
    };
    let run = tokio::spawn({
        let (ticks, shutdown) = (ticks.clone(), shutdown.clone());
        async move {
            run_while_leading(
                Some(election),
                &shutdown,
                Duration::from_secs(5),
                ticking(ticks),
            )
            .await
        }
    });
    while ticks.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.shutdown();
    let cut = tokio::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ended, Ended::LostLease);
    let waited = cut.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "stopped within the lease duration: {waited:?}"
    );
}

#[tokio::test]
async fn shutdown_releases_the_lease_and_the_follower_takes_over_at_once() {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let client = cluster.client().await.unwrap();
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let (ticks_a, ticks_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let run_a = tokio::spawn({
        let (t, s, e) = (
            ticks_a.clone(),
            stop_a.clone(),
            Election {
                client: client.clone(),
                lease: cfg("a", 15),
            },
        );
        async move { run_while_leading(Some(e), &s, Duration::from_secs(5), ticking(t)).await }
    });
    while ticks_a.load(Ordering::SeqCst) < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let run_b = tokio::spawn({
        let (t, s, e) = (
            ticks_b.clone(),
            stop_b.clone(),
            Election {
                client: client.clone(),
                lease: cfg("b", 15),
            },
        );
        async move { run_while_leading(Some(e), &s, Duration::from_secs(5), ticking(t)).await }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(ticks_b.load(Ordering::SeqCst), 0, "b waits while a leads");
    stop_a.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(3), run_a)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ended, Ended::Shutdown);
    // released: b (campaigning every 200 ms) may already hold it, but a does not
    assert_ne!(
        holder(&api.get("demo-controller").await.unwrap()).as_deref(),
        Some("a"),
        "released"
    );
    // b takes over within a retry period or two, not after the 15 s lease
    tokio::time::timeout(Duration::from_secs(2), async {
        while ticks_b.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    // shutdown of b while it leads; and a candidate waiting for leadership stops at once too
    let run_c = tokio::spawn({
        let s = CancellationToken::new();
        let s2 = s.clone();
        let e = Election {
            client: client.clone(),
            lease: cfg("c", 15),
        };
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            s2.cancel();
        });
        async move {
            run_while_leading(
                Some(e),
                &s,
                Duration::from_secs(5),
                ticking(Arc::new(AtomicU64::new(0))),
            )
            .await
        }
    });
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(2), run_c)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        Ended::Shutdown
    );
    stop_b.cancel();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(3), run_b)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        Ended::Shutdown
    );
}

#[tokio::test]
async fn work_that_ignores_the_stop_token_is_dropped_after_the_grace_period() {
    let shutdown = CancellationToken::new();
    let stopper = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stopper.cancel();
    });
    let start = tokio::time::Instant::now();
    let ended = run_while_leading(None, &shutdown, Duration::from_millis(300), |_stop| async {
        std::future::pending::<()>().await;
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(ended, Ended::Shutdown);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}
