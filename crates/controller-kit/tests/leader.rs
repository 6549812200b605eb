//! Leader election against devcluster: one leader among candidates, takeover after expiry,
//! immediate takeover after release.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use strongroom_controller_kit::leader::{self, LeaseConfig, Round};
use strongroom_devcluster::{DevCluster, Options};

fn cfg(identity: &str, secs: u64) -> LeaseConfig {
    LeaseConfig {
        lease_duration: Duration::from_secs(secs),
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

#[tokio::test]
async fn release_hands_over_and_spawned_candidates_agree() {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let client = cluster.client().await.unwrap();
    let (mut a, task_a) = leader::spawn(client.clone(), cfg("a", 15));
    tokio::time::timeout(Duration::from_secs(5), a.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();
    let (b, task_b) = leader::spawn(client.clone(), cfg("b", 15));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!*b.borrow(), "b follows while a renews");
    task_a.abort();
    let api: Api<Lease> = Api::namespaced(client, "kube-system");
    leader::release(&api, &cfg("a", 15)).await.unwrap();
    let mut b = b;
    tokio::time::timeout(Duration::from_secs(5), b.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();
    task_b.abort();
}
