//! Token upkeep against a real OpenBao with short TTLs: one login renewed in place, a new
//! login once the max TTL is reached, static tokens renewed but never replaced; reads never
//! fail meanwhile. Logins and renewals are counted by the server's audit device and by the
//! call metric.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use strongroom_core::crd::external_secrets::{VaultAuth, VaultUserPassAuth};
use strongroom_provider_api::{RemoteRef, SecretsClient};
use strongroom_testkit::backends::OpenBao;

const LOGIN: &str = "auth/userpass/login/eso";
const RENEW: &str = "auth/token/renew-self";
const REVOKE: &str = "auth/token/revoke-self";

fn value(key: &str) -> RemoteRef {
    RemoteRef {
        property: Some("v".into()),
        ..RemoteRef::key(key)
    }
}

/// Userpass user `eso` (policy `reader`) whose tokens live `ttl`, at most `max_ttl`.
fn userpass(bao: &OpenBao, env: &Env, ttl: &str, max_ttl: &str) -> VaultAuth {
    reader_policy(bao, "reader");
    bao.cli(&["auth", "enable", "userpass"]);
    bao.cli(&[
        "write",
        "auth/userpass/users/eso",
        "password=pw-1",
        "token_policies=reader",
        &format!("token_ttl={ttl}"),
        &format!("token_max_ttl={max_ttl}"),
    ]);
    env.creds.put("team", "up", "password", "pw-1");
    VaultAuth {
        user_pass: Some(VaultUserPassAuth {
            path: None,
            username: "eso".into(),
            secret_ref: Some(selector("up", "password")),
        }),
        ..VaultAuth::default()
    }
}

/// Reads `secret/app` every 200 ms for `how_long`; every read must succeed.
async fn read_for(client: &dyn SecretsClient, how_long: Duration) -> usize {
    let started = Instant::now();
    let mut reads = 0;
    while started.elapsed() < how_long {
        let got = client.get_secret(&value("app")).await;
        let got = got
            .unwrap_or_else(|e| panic!("read {reads} failed after {:?}: {e}", started.elapsed()));
        assert_eq!(got.expose(), b"1");
        reads += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    reads
}

/// Requests to `path` the audit device saw since `base` were taken.
fn since(log: &Path, path: &str, base: usize) -> usize {
    OpenBao::audited(log, path) - base
}

#[tokio::test]
async fn one_login_renewed_in_place() {
    let (bao, log) = OpenBao::start_audited().await;
    bao.cli(&["kv", "put", "secret/app", "v=1"]);
    let env = Env::new(Creds::default());
    let auth = userpass(&bao, &env, "4s", "30s");
    let revokes = OpenBao::audited(&log, REVOKE);
    let client = connect(&store(spec(&bao, Some("secret"), auth)), &env).await;
    assert!(client.renews_itself());
    let reads = read_for(client.as_ref(), Duration::from_secs(12)).await;
    assert!(reads > 40, "{reads}");
    assert_eq!(OpenBao::audited(&log, LOGIN), 1, "one login on the server");
    let renewals = OpenBao::audited(&log, RENEW);
    // Renewed at two thirds of 4 s: about 4 times in 12 s.
    eprintln!("12 s: {reads} reads, 1 login, {renewals} renewals");
    assert!((2..=6).contains(&renewals), "renewals: {renewals}");
    assert_eq!(env.calls.count("Login"), 1);
    assert_eq!(env.calls.count("RenewSelf"), renewals);
    assert_eq!(
        since(&log, REVOKE, revokes),
        0,
        "nothing revoked while in use"
    );
    client.close().await;
    assert_eq!(since(&log, REVOKE, revokes), 1, "close revokes the token");
    // The upkeep stopped with the client: no more renewals.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(OpenBao::audited(&log, RENEW), renewals);
}

#[tokio::test]
async fn max_ttl_reached_means_a_new_login() {
    let (bao, log) = OpenBao::start_audited().await;
    bao.cli(&["kv", "put", "secret/app", "v=1"]);
    let env = Env::new(Creds::default());
    let auth = userpass(&bao, &env, "4s", "10s");
    let revokes = OpenBao::audited(&log, REVOKE);
    let client = connect(&store(spec(&bao, Some("secret"), auth)), &env).await;
    // Login at 0 s; renewals at ~2.7 s and ~5.3 s; the one at ~8 s is capped at 10 s, so a
    // login at ~9.3 s replaces the token, and the old one is revoked.
    let reads = read_for(client.as_ref(), Duration::from_secs(14)).await;
    eprintln!(
        "14 s at max TTL 10 s: {reads} reads, {} logins, {} renewals",
        OpenBao::audited(&log, LOGIN),
        OpenBao::audited(&log, RENEW)
    );
    assert_eq!(OpenBao::audited(&log, LOGIN), 2, "a new login at max TTL");
    assert!(OpenBao::audited(&log, RENEW) >= 3);
    assert_eq!(env.calls.count("Login"), 2);
    assert_eq!(
        since(&log, REVOKE, revokes),
        1,
        "the replaced token is revoked"
    );
    client.close().await;
    assert_eq!(since(&log, REVOKE, revokes), 2);
}

#[tokio::test]
async fn static_tokens_are_renewed_never_replaced() {
    let (bao, log) = OpenBao::start_audited().await;
    bao.cli(&["kv", "put", "secret/app", "v=1"]);
    reader_policy(&bao, "reader");
    let token = bao.cli(&[
        "token",
        "create",
        "-policy=reader",
        "-ttl=4s",
        "-explicit-max-ttl=1h",
        "-field=token",
    ]);
    let env = Env::new(Creds::default());
    env.creds.put("team", "static", "token", token.trim());
    let auth = VaultAuth {
        token_secret_ref: Some(selector("static", "token")),
        ..VaultAuth::default()
    };
    let renewals = OpenBao::audited(&log, RENEW);
    let revokes = OpenBao::audited(&log, REVOKE);
    let client = connect(&store(spec(&bao, Some("secret"), auth)), &env).await;
    // kept alive, but not by logins: the controller still ages the client out, so a token
    // rotated in its Secret is read again
    assert!(!client.renews_itself());
    read_for(client.as_ref(), Duration::from_secs(10)).await;
    assert!(
        since(&log, RENEW, renewals) >= 2,
        "a renewable static token is renewed"
    );
    assert_eq!(env.calls.count("Login"), 0, "never a login");
    client.close().await;
    assert_eq!(since(&log, REVOKE, revokes), 0, "never revoked");

    // The root token has no TTL: no upkeep at all.
    let env = Env::new(Creds::default());
    let client = connect(&store(spec(&bao, Some("secret"), root_auth(&env))), &env).await;
    let before = OpenBao::audited(&log, RENEW);
    read_for(client.as_ref(), Duration::from_secs(2)).await;
    assert_eq!(OpenBao::audited(&log, RENEW), before);
}
