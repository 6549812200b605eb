//! `retrySettings` against moto behind a fault-injecting proxy: the SDK retries transient
//! failures (5xx, refused connections) `maxRetries` attempts in all (upstream hands it to the
//! Go SDK as the attempt count) with `retryInterval` between them; a client error is final.
//! The proxy counts what reached the server side, moto's log what it answered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use strongroom_core::crd::external_secrets::SecretStoreRetrySettings;
use strongroom_provider_api::{Provider, ProviderError, RemoteRef, SecretsClient};
use strongroom_provider_aws::AwsProvider;
use strongroom_testkit::backends::Moto;
use strongroom_testkit::flaky::FlakyProxy;

async fn client(proxy: &FlakyProxy, retry: Option<(i32, &str)>) -> Box<dyn SecretsClient> {
    let (_, env) = provider_env(Resolver::with_keys("test", "test"));
    let mut store = store(static_spec("SecretsManager"));
    store.retry = retry.map(|(max, interval)| SecretStoreRetrySettings {
        max_retries: Some(max),
        retry_interval: Some(interval.into()),
    });
    let provider = AwsProvider::with_endpoint(proxy.url.clone());
    provider.validate_store(&store).unwrap();
    provider.connect(&store, env).await.unwrap()
}

#[tokio::test]
async fn server_errors_are_retried_with_the_interval() {
    let moto = Moto::start().await;
    put_secret(&sm(&moto).await, "k", "v").await;
    let proxy = FlakyProxy::start(&moto.endpoint);
    let retried = client(&proxy, Some((4, "300ms"))).await;

    // Three 503s, then moto's answer: four attempts, three fixed waits of 0.3 s.
    proxy.fail_next(3, 503);
    let (before, answered) = (proxy.requests(), moto.requests().len());
    let started = Instant::now();
    let v = retried.get_secret(&RemoteRef::key("k")).await.unwrap();
    let took = started.elapsed();
    assert_eq!(text(&v), "v");
    assert_eq!(proxy.requests() - before, 4);
    assert_eq!(moto.requests().len() - answered, 1);
    assert!(took >= Duration::from_millis(900), "took {took:?}");

    // Four 503s use up the four attempts.
    proxy.fail_next(4, 503);
    let before = proxy.requests();
    let e = retried.get_secret(&RemoteRef::key("k")).await.unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable(_)), "{e}");
    assert_eq!(proxy.requests() - before, 4);
    proxy.fail_next(0, 503);

    // A client error (the secret does not exist) is final: one request.
    let before = proxy.requests();
    let e = retried
        .get_secret(&RemoteRef::key("missing"))
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(proxy.requests() - before, 1);

    // `maxRetries: 1` is one attempt: the 503 is final at once.
    let once = client(&proxy, Some((1, "300ms"))).await;
    proxy.fail_next(1, 503);
    let before = proxy.requests();
    let started = Instant::now();
    let e = once.get_secret(&RemoteRef::key("k")).await.unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable(_)), "{e}");
    assert_eq!(proxy.requests() - before, 1);
    assert!(started.elapsed() < Duration::from_millis(300));

    // No retrySettings: the SDK's standard three attempts.
    let default = client(&proxy, None).await;
    proxy.fail_next(2, 503);
    let before = proxy.requests();
    assert_eq!(
        text(&default.get_secret(&RemoteRef::key("k")).await.unwrap()),
        "v"
    );
    assert_eq!(proxy.requests() - before, 3);
}

#[tokio::test]
async fn a_server_that_comes_back_within_the_retries_is_read() {
    let moto = Moto::start().await;
    put_secret(&sm(&moto).await, "k", "v").await;
    let proxy = FlakyProxy::start(&moto.endpoint);
    let retried = client(&proxy, Some((8, "250ms"))).await;
    let once = client(&proxy, Some((1, "250ms"))).await;
    // Both sessions have connected once.
    retried.get_secret(&RemoteRef::key("k")).await.unwrap();
    once.get_secret(&RemoteRef::key("k")).await.unwrap();

    // Connections are refused: one attempt fails at once.
    proxy.set_down(true);
    let started = Instant::now();
    let e = once.get_secret(&RemoteRef::key("k")).await.unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable(_)), "{e}");
    assert!(started.elapsed() < Duration::from_millis(500));

    // With eight attempts 0.25 s apart, the read waits for the port to come back (after 1 s).
    let before = proxy.requests();
    let started = Instant::now();
    let back = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.set_down(false);
        proxy
    });
    let v = retried.get_secret(&RemoteRef::key("k")).await.unwrap();
    let proxy = back.await.unwrap();
    assert_eq!(text(&v), "v");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(proxy.requests() - before, 1);
}
