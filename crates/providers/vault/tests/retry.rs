//! `retrySettings` against OpenBao behind a fault-injecting proxy: failures that may pass
//! (5xx, 429, refused connections) are retried with the interval, a denial is not, and a
//! store without retries fails at the first error. The proxy counts the requests that reached
//! the server side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use strongroom_core::crd::external_secrets::SecretStoreRetrySettings;
use strongroom_provider_api::{ProviderError, RemoteRef, SecretsClient};
use strongroom_testkit::backends::OpenBao;
use strongroom_testkit::flaky::FlakyProxy;

/// A root-token store on `bao` reached through `proxy`, with `retry`.
async fn client(
    proxy: &FlakyProxy,
    env: &Env,
    retry: Option<(i32, &str)>,
) -> Box<dyn SecretsClient> {
    let mut s = spec_at(&proxy.url, root_auth(env));
    s.path = Some("secret".into());
    let mut store = store(s);
    store.retry = retry.map(|(max, interval)| SecretStoreRetrySettings {
        max_retries: Some(max),
        retry_interval: Some(interval.into()),
    });
    connect(&store, env).await
}

fn spec_at(
    server: &str,
    auth: strongroom_core::crd::external_secrets::VaultAuth,
) -> strongroom_core::crd::external_secrets::VaultProvider {
    strongroom_core::crd::external_secrets::VaultProvider {
        server: server.into(),
        auth: Some(auth),
        ..Default::default()
    }
}

#[tokio::test]
async fn server_errors_are_retried_with_the_interval() {
    let bao = OpenBao::start().await;
    bao.cli(&["kv", "put", "secret/app", "v=1"]);
    let proxy = FlakyProxy::start(&bao.addr);
    let env = Env::new(Creds::default());
    let retried = client(&proxy, &env, Some((3, "300ms"))).await;

    // Three 503s, then the real answer: four requests, waits of 0.3, 0.6 and 0.9 s.
    proxy.fail_next(3, 503);
    let before = proxy.requests();
    let started = Instant::now();
    let v = retried.get_secret(&RemoteRef::key("app")).await.unwrap();
    let took = started.elapsed();
    assert_eq!(v.expose(), br#"{"v":"1"}"#);
    assert_eq!(proxy.requests() - before, 4);
    assert!(took >= Duration::from_millis(1800), "took {took:?}");

    // Four 503s exhaust three retries: the error is the server's, after four requests.
    proxy.fail_next(4, 503);
    let before = proxy.requests();
    let e = retried
        .get_secret(&RemoteRef::key("app"))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable(_)), "{e}");
    assert_eq!(proxy.requests() - before, 4);
    proxy.fail_next(0, 503);

    // 429 is retried too.
    proxy.fail_next(1, 429);
    let before = proxy.requests();
    retried.get_secret(&RemoteRef::key("app")).await.unwrap();
    assert_eq!(proxy.requests() - before, 2);

    // A denial is final: one request, however many retries are allowed.
    proxy.fail_next(1, 403);
    let before = proxy.requests();
    let started = Instant::now();
    let e = retried
        .get_secret(&RemoteRef::key("app"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ProviderError::PermissionDenied(_) | ProviderError::Authentication(_)
        ),
        "{e}"
    );
    // The 403 and the one lookup-self that tells a dead token from a denial.
    assert_eq!(proxy.requests() - before, 2);
    assert!(started.elapsed() < Duration::from_millis(300));
    // A missing key is an answer: one request.
    let before = proxy.requests();
    assert!(
        retried
            .get_secret(&RemoteRef::key("missing"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(proxy.requests() - before, 1);

    // `maxRetries: 0`: the first 503 is final.
    let once = client(&proxy, &env, Some((0, "300ms"))).await;
    proxy.fail_next(1, 503);
    let before = proxy.requests();
    let started = Instant::now();
    let e = once.get_secret(&RemoteRef::key("app")).await.unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable(_)), "{e}");
    assert_eq!(proxy.requests() - before, 1);
    assert!(started.elapsed() < Duration::from_millis(300));

    // No retrySettings: the Vault client's default of two retries, about a second apart.
    let default = client(&proxy, &env, None).await;
    proxy.fail_next(2, 502);
    let before = proxy.requests();
    let started = Instant::now();
    default.get_secret(&RemoteRef::key("app")).await.unwrap();
    assert_eq!(proxy.requests() - before, 3);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "took {took:?}"
    );
}

#[test]
fn bad_retry_settings_are_refused() {
    use strongroom_provider_api::Provider;
    let mut store = store(spec_at("http://127.0.0.1:1", Default::default()));
    store.retry = Some(SecretStoreRetrySettings {
        max_retries: Some(2),
        retry_interval: Some("soon".into()),
    });
    let e = strongroom_provider_vault::VaultProvider
        .validate_store(&store)
        .unwrap_err();
    assert!(
        matches!(&e, ProviderError::InvalidConfig(m) if m.contains("retryInterval")),
        "{e}"
    );
}

#[tokio::test]
async fn a_server_that_comes_back_within_the_retries_is_read() {
    let bao = OpenBao::start().await;
    bao.cli(&["kv", "put", "secret/app", "v=1"]);
    let proxy = FlakyProxy::start(&bao.addr);
    let env = Env::new(Creds::default());
    let retried = client(&proxy, &env, Some((5, "250ms"))).await;
    let once = client(&proxy, &env, Some((0, "250ms"))).await;

    // Connections are refused: without retries the read fails at once.
    proxy.set_down(true);
    let started = Instant::now();
    let e = once.get_secret(&RemoteRef::key("app")).await.unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable(_)), "{e}");
    assert!(started.elapsed() < Duration::from_millis(500));

    // With retries, the read waits for the port to come back (after 1 s).
    let before = proxy.requests();
    let started = Instant::now();
    let back = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.set_down(false);
        proxy
    });
    let v = retried.get_secret(&RemoteRef::key("app")).await.unwrap();
    let proxy = back.await.unwrap();
    assert_eq!(v.expose(), br#"{"v":"1"}"#);
    assert!(started.elapsed() >= Duration::from_secs(1));
    // Refused attempts never reached the server: one request did.
    assert_eq!(proxy.requests() - before, 1);
}

/// Logins are retried as reads are (the store's `retrySettings`): an AppRole login answered
/// 503 twice and then by the server logs in; without retries the first 503 fails the
/// connection; a port that comes back within the retries is waited for; a refused login is
/// final; and a static token's lookup is retried too.
#[tokio::test]
async fn logins_are_retried_as_reads() {
    use strongroom_provider_api::Provider;
    let bao = OpenBao::start().await;
    bao.cli(&["kv", "put", "secret/app", "v=1"]);
    let proxy = FlakyProxy::start(&bao.addr);
    let env = Env::new(Creds::default());
    let auth = approle(&bao, &env, "1h");
    let url = proxy.url.clone();
    let with = |auth: strongroom_core::crd::external_secrets::VaultAuth,
                retry: Option<(i32, &str)>| {
        let mut s = spec_at(&url, auth);
        s.path = Some("secret".into());
        let mut store = store(s);
        store.retry = retry.map(|(max, interval)| SecretStoreRetrySettings {
            max_retries: Some(max),
            retry_interval: Some(interval.into()),
        });
        store
    };

    // Two 503s, then the login: three requests, waits of 0.2 and 0.4 s; the session reads.
    proxy.fail_next(2, 503);
    let before = proxy.requests();
    let started = Instant::now();
    let client = connect(&with(auth.clone(), Some((3, "200ms"))), &env).await;
    assert_eq!(proxy.requests() - before, 3);
    assert!(started.elapsed() >= Duration::from_millis(600));
    let v = client.get_secret(&RemoteRef::key("app")).await.unwrap();
    assert_eq!(v.expose(), br#"{"v":"1"}"#);

    // `maxRetries: 0`: the first 503 fails the login.
    proxy.fail_next(1, 503);
    let before = proxy.requests();
    let e = strongroom_provider_vault::VaultProvider
        .connect(&with(auth.clone(), Some((0, "200ms"))), env.provider_env())
        .await
        .err()
        .expect("the login fails");
    assert!(matches!(e, ProviderError::Unavailable(_)), "{e}");
    assert_eq!(proxy.requests() - before, 1);

    // Refused connections: the login waits for the port to come back (after 1 s).
    proxy.set_down(true);
    let before = proxy.requests();
    let started = Instant::now();
    let back = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.set_down(false);
        proxy
    });
    let client = connect(&with(auth.clone(), Some((6, "250ms"))), &env).await;
    let proxy = back.await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        proxy.requests() - before,
        1,
        "refused attempts never arrived"
    );
    client.get_secret(&RemoteRef::key("app")).await.unwrap();

    // A refused login (a wrong secret id) is final: one request, an authentication error.
    env.creds
        .put("team", "approle", "secret-id", "not-the-secret-id");
    let before = proxy.requests();
    let started = Instant::now();
    let e = strongroom_provider_vault::VaultProvider
        .connect(&with(auth.clone(), Some((3, "300ms"))), env.provider_env())
        .await
        .err()
        .expect("the login is refused");
    assert!(matches!(e, ProviderError::Authentication(_)), "{e}");
    assert_eq!(proxy.requests() - before, 1);
    assert!(started.elapsed() < Duration::from_millis(300));

    // A static token's lookup: one 502, then the answer.
    proxy.fail_next(1, 502);
    let before = proxy.requests();
    let client = connect(&with(root_auth(&env), Some((2, "100ms"))), &env).await;
    assert_eq!(proxy.requests() - before, 2);
    client.get_secret(&RemoteRef::key("app")).await.unwrap();
    // each login reported once, with its final outcome: two that succeeded (the first after
    // two retries), the 503 without retries and the refused one
    assert_eq!(env.calls.count("Login"), 4);
}
