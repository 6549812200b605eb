//! High availability and shutdown, tested by breaking them: the Lease taken away from a running
//! leader, a follower that must be ready and serve while another replica leads, and SIGTERM or
//! SIGINT at every phase (key generation, leader wait, first sync, running with work in flight).
//! Each replica authenticates with its own ServiceAccount token, so devcluster's request
//! counts tell which replica wrote what.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use strongroom_core::crd::sealed_secret::SealedSecret;
use strongroom_core::sealing::SealingScope;
use strongroom_testkit::{hand_lease_to, start_cluster, writes};

use common::*;

/// Short leader election timings: a lost Lease shows within 200 ms, expiry takes 3 s.
const FAST_LEASE: &[&str] = &[
    "--leader-election-lease-duration",
    "3s",
    "--leader-election-renew-deadline",
    "2s",
    "--leader-election-retry-period",
    "200ms",
];

async fn lease(client: &kube::Client) -> Option<Lease> {
    Api::<Lease>::namespaced(client.clone(), "kube-system")
        .get_opt("sealed-secrets-controller")
        .await
        .unwrap()
}

async fn holder(client: &kube::Client) -> Option<String> {
    lease(client)
        .await
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

fn pod_name(c: &Controller) -> String {
    format!("replica-{}", c.api_port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_its_lease_stops_writing_and_a_follower_serves_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster(&[CRD], &[]).await;
    let (mut a, user_a) = replica_as(dir.path(), &cluster, &client, "replica-a", FAST_LEASE).await;
    wait_for(|| async { holder(&client).await.is_some() }, "a leader").await;
    let (b, user_b) = replica_as(dir.path(), &cluster, &client, "replica-b", FAST_LEASE).await;
    assert_eq!(
        holder(&client).await,
        Some(pod_name(&a)),
        "the first replica leads"
    );

    // the follower is ready and serves the certificate while the leader holds the Lease;
    // the leader is ready too, with no SealedSecret to unseal (its caches report their sync)
    wait_for(
        || async { http_try(&format!("{}/readyz", b.metrics)).await == Some(200) },
        "follower ready",
    )
    .await;
    wait_for(
        || async { http_try(&format!("{}/readyz", a.metrics)).await == Some(200) },
        "leader ready with nothing to unseal",
    )
    .await;
    let cert_a = cert(&a).await;
    let cert_b = cert(&b).await;
    assert_eq!(
        cert_a.key.fingerprint(),
        cert_b.key.fingerprint(),
        "one key, created once"
    );
    let (code, _) = http(
        &format!("{}/v1/verify", b.api),
        "POST",
        Some(
            &serde_json::to_string(&sealed(
                &cert_b,
                SealingScope::Strict,
                "default",
                "probe",
                &[("k", CANARY)],
            ))
            .unwrap(),
        ),
    )
    .await;
    assert_eq!(code, 200, "the follower verifies with the keys it holds");

    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    sealed_api
        .create(
            &PostParams::default(),
            &sealed(
                &cert_a,
                SealingScope::Strict,
                "default",
                "before",
                &[("k", "v")],
            ),
        )
        .await
        .unwrap();
    wait_for(
        || async { secrets.get_opt("before").await.unwrap().is_some() },
        "the leader unseals",
    )
    .await;
    assert!(
        writes(&cluster, &user_a).contains_key("create secrets"),
        "{:?}",
        writes(&cluster, &user_a)
    );
    let follower_writes = writes(&cluster, &user_b);
    assert!(
        follower_writes.is_empty(),
        "a follower writes nothing: {follower_writes:?}"
    );

    // the Lease is taken away from the running leader
    hand_lease_to(
        &client,
        "kube-system",
        "sealed-secrets-controller",
        Some("intruder"),
    )
    .await;
    let at_handover = writes(&cluster, &user_a);
    let status = a.process.wait_exit(Duration::from_secs(3)).await;
    let status = status.expect("the former leader stops within one lease duration");
    assert!(
        !status.success(),
        "it exits non-zero to restart as a follower"
    );
    let after_loss_a = writes(&cluster, &user_a);
    // between the hand-over and the exit, at most a renewal attempt of the Lease
    for (kind, n) in &after_loss_a {
        let before = at_handover.get(kind).copied().unwrap_or(0);
        assert!(
            *n == before || kind == "update leases",
            "{kind}: {before} -> {n} after the Lease was taken"
        );
    }
    // work arrives that a leader would write for: a new SealedSecret, a deleted Secret
    sealed_api
        .create(
            &PostParams::default(),
            &sealed(
                &cert_a,
                SealingScope::Strict,
                "default",
                "after",
                &[("k", "v")],
            ),
        )
        .await
        .unwrap();
    secrets.delete("before", &Default::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        writes(&cluster, &user_a),
        after_loss_a,
        "no write from the former leader"
    );
    assert!(
        writes(&cluster, &user_b).is_empty(),
        "no write from the follower while someone else holds the Lease"
    );
    assert!(secrets.get_opt("after").await.unwrap().is_none());
    assert!(
        a.process
            .log_text()
            .contains("another replica holds the leader Lease"),
        "the former leader says why it stopped"
    );

    // the intruder lets go: the follower takes over and catches up
    hand_lease_to(&client, "kube-system", "sealed-secrets-controller", None).await;
    wait_for(
        || async { secrets.get_opt("after").await.unwrap().is_some() },
        "the new leader unseals",
    )
    .await;
    wait_for(
        || async { secrets.get_opt("before").await.unwrap().is_some() },
        "the new leader restores the deleted Secret",
    )
    .await;
    assert_eq!(holder(&client).await, Some(pod_name(&b)));
    assert!(writes(&cluster, &user_b).contains_key("create secrets"));
    let keys: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let key_secrets = keys
        .list(
            &kube::api::ListParams::default()
                .labels("sealedsecrets.bitnami.com/sealed-secrets-key"),
        )
        .await
        .unwrap();
    assert_eq!(
        key_secrets.items.len(),
        1,
        "one sealing key, made by the first leader only"
    );
}

/// Signals `c` and asserts it exits 0 within 5 s.
async fn stops_cleanly(c: &mut Controller, signal: &str, when: &str) {
    c.process.signal(signal);
    let status = c.process.wait_exit(Duration::from_secs(5)).await;
    let log = c.process.log_text();
    let status =
        status.unwrap_or_else(|| panic!("still running 5 s after SIG{signal} {when}:\n{log}"));
    assert!(
        status.success(),
        "exit status {status:?} after SIG{signal} {when}:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_stop_every_phase_within_five_seconds_and_release_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster(&[CRD], &[]).await;

    // during key generation (RSA-4096 takes seconds), before anything leads
    let mut keygen = restart_with(dir.path(), &cluster, &["--key-size", "4096"]).await;
    keygen
        .process
        .wait_for_log("generating a new sealing key")
        .await;
    stops_cleanly(&mut keygen, "TERM", "during key generation").await;
    assert_eq!(holder(&client).await, None, "released");

    // idle, 0.3 s and 3 s after the watch starts
    for (delay, signal) in [(300, "TERM"), (3000, "INT")] {
        let mut c = restart(dir.path(), &cluster).await;
        c.process.wait_for_log("watching SealedSecrets").await;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        assert_eq!(holder(&client).await, Some(pod_name(&c)));
        stops_cleanly(
            &mut c,
            signal,
            &format!("{delay} ms after the watch started"),
        )
        .await;
        assert_eq!(holder(&client).await, None, "released");
    }

    // with work in flight: 30 SealedSecrets arrive, the signal follows at once
    let mut busy = restart(dir.path(), &cluster).await;
    busy.process.wait_for_log("watching SealedSecrets").await;
    let cert = cert(&busy).await;
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    for i in 0..30 {
        api.create(
            &PostParams::default(),
            &sealed(
                &cert,
                SealingScope::Strict,
                "default",
                &format!("s{i}"),
                &[("a", "b"), ("c", "d")],
            ),
        )
        .await
        .unwrap();
    }
    stops_cleanly(&mut busy, "TERM", "with 30 SealedSecrets in flight").await;
    assert_eq!(holder(&client).await, None, "released");

    // a follower waiting for the Lease
    let leader = restart(dir.path(), &cluster).await;
    leader.process.wait_for_log("watching SealedSecrets").await;
    let mut follower = restart(dir.path(), &cluster).await;
    follower
        .process
        .wait_for_log("waiting for leadership")
        .await;
    stops_cleanly(&mut follower, "TERM", "while waiting for leadership").await;
    assert_eq!(
        holder(&client).await,
        Some(pod_name(&leader)),
        "the leader keeps the Lease"
    );
}
