//! The VaultDynamicSecret generator against a real OpenBao: PKI certificates with leases
//! (`generate_lease=true`), tokens from `auth/token/create` (`resultType: Auth`), the previous
//! lease revoked when an owner generates again, leases renewed while held, and errors that
//! name the cause and never a value.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use strongroom_provider_api::{ProviderError, SecretMap};
use strongroom_provider_vault::dynamic;
use strongroom_testkit::CANARY;
use strongroom_testkit::backends::{OpenBao, bin_dir};

const GEN_POLICY: &str = r#"
path "pki/issue/web" { capabilities = ["update"] }
path "auth/token/create" { capabilities = ["update"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "auth/token/renew-accessor" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "secret/data/canary" { capabilities = ["read"] }
path "secret/data/nothing" { capabilities = ["read"] }
"#;

/// `bao args` as root; the exit status and stdout.
fn bao_try(bao: &OpenBao, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin_dir().join("bao"))
        .args(args)
        .env("BAO_ADDR", &bao.addr)
        .env("BAO_TOKEN", OpenBao::ROOT)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// PKI at `pki/` with role `web` issuing leased certificates of `ttl`; AppRole `gen`.
fn setup(bao: &OpenBao, env: &Env, ttl: &str) -> Value {
    bao.cli(&["secrets", "enable", "pki"]);
    bao.cli(&["secrets", "tune", "-max-lease-ttl=8760h", "pki"]);
    bao.cli(&[
        "write",
        "pki/root/generate/internal",
        "common_name=example.com",
        "ttl=8760h",
    ]);
    bao.cli(&[
        "write",
        "pki/roles/web",
        "allowed_domains=example.com",
        "allow_subdomains=true",
        "generate_lease=true",
        &format!("ttl={ttl}"),
        "max_ttl=1h",
    ]);
    bao.policy("gen", GEN_POLICY);
    let (role_id, secret_id) = bao.approle("gen", "gen", "1h");
    env.creds.put("team", "gen", "role-id", &role_id);
    env.creds.put("team", "gen", "secret-id", &secret_id);
    json!({
        "server": bao.addr,
        "auth": {"appRole": {
            "roleRef": {"name": "gen", "key": "role-id"},
            "secretRef": {"name": "gen", "key": "secret-id"}
        }}
    })
}

fn text(m: &SecretMap, k: &str) -> String {
    String::from_utf8(m[k].expose().to_vec()).unwrap()
}

/// Whether the certificate `serial` is revoked (its `revocation_time` is set).
fn revoked(bao: &OpenBao, serial: &str) -> bool {
    let out = bao.cli(&[
        "read",
        "-field=revocation_time",
        &format!("pki/cert/{serial}"),
    ]);
    out.trim() != "0"
}

#[tokio::test]
async fn pki_certificates_with_leases_revoked_on_replace() {
    let bao = OpenBao::start().await;
    let env = Env::new(Creds::default());
    // (PKI leases are revocable, not renewable)
    let provider = setup(&bao, &env, "1h");
    let spec = json!({
        "provider": provider, "path": "pki/issue/web", "method": "POST",
        "parameters": {"common_name": "a.example.com"}
    });
    let first = dynamic::generate(&spec, "cert", "team", "es-a#0", env.provider_env())
        .await
        .unwrap();
    for key in [
        "certificate",
        "private_key",
        "serial_number",
        "issuing_ca",
        "expiration",
    ] {
        assert!(first.contains_key(key), "{key} in {:?}", first.keys());
    }
    assert!(text(&first, "certificate").starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(text(&first, "ca_chain").starts_with('['), "lists are JSON");
    let serial1 = text(&first, "serial_number");
    let leases = || {
        bao_try(
            &bao,
            &["list", "-format=json", "sys/leases/lookup/pki/issue/web"],
        )
        .1
        .matches("\"")
        .count()
            / 2
    };
    assert_eq!(leases(), 1);
    // Another owner's lease is left alone.
    let other = dynamic::generate(&spec, "cert", "team", "es-b#0", env.provider_env())
        .await
        .unwrap();
    assert_eq!(leases(), 2);

    assert!(!revoked(&bao, &serial1));

    // The same owner generates again: its previous certificate's lease is revoked.
    let second = dynamic::generate(&spec, "cert", "team", "es-a#0", env.provider_env())
        .await
        .unwrap();
    assert_ne!(text(&second, "serial_number"), serial1);
    assert!(
        revoked(&bao, &serial1),
        "the replaced certificate is revoked"
    );
    assert!(!revoked(&bao, &text(&other, "serial_number")));
    assert_eq!(leases(), 2);
    assert_eq!(env.calls.count("RevokeLease"), 1);
    assert_eq!(
        env.calls.count("Login"),
        1,
        "one login for the generator's auth"
    );

    // Raw: the whole answer.
    let raw = json!({
        "provider": provider, "path": "pki/issue/web", "method": "POST", "resultType": "Raw",
        "parameters": {"common_name": "raw.example.com"}
    });
    let raw = dynamic::generate(&raw, "cert", "team", "es-c#0", env.provider_env())
        .await
        .unwrap();
    assert!(text(&raw, "lease_id").starts_with("pki/issue/web/"));
    assert!(text(&raw, "data").contains("\"certificate\""));
}

#[tokio::test]
async fn tokens_from_auth_token_create_are_renewed_and_revoked_on_replace() {
    let bao = OpenBao::start().await;
    let env = Env::new(Creds::default());
    let provider = setup(&bao, &env, "1h");
    let spec = json!({
        "provider": provider, "path": "auth/token/create", "method": "POST",
        "resultType": "Auth", "parameters": {"ttl": "6s", "policies": ["default"]}
    });
    let first = dynamic::generate(&spec, "tok", "team", "es#0", env.provider_env())
        .await
        .unwrap();
    for key in [
        "client_token",
        "accessor",
        "policies",
        "lease_duration",
        "renewable",
    ] {
        assert!(first.contains_key(key), "{key} in {:?}", first.keys());
    }
    assert_eq!(text(&first, "lease_duration"), "6");
    assert_eq!(text(&first, "renewable"), "true");
    let token1 = text(&first, "client_token");
    // Held past its TTL: renewed (at ~4 s and ~8 s), so still valid.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(env.calls.count("RenewLease") >= 2, "renewed while held");
    assert!(
        bao_try(&bao, &["token", "lookup", &token1]).0,
        "alive past its first TTL"
    );
    let second = dynamic::generate(&spec, "tok", "team", "es#0", env.provider_env())
        .await
        .unwrap();
    let token2 = text(&second, "client_token");
    assert_ne!(token1, token2);
    assert!(
        !bao_try(&bao, &["token", "lookup", &token1]).0,
        "the old token is revoked"
    );
    assert!(bao_try(&bao, &["token", "lookup", &token2]).0);
}

#[tokio::test]
async fn errors_are_clear_and_carry_no_value() {
    let bao = OpenBao::start().await;
    let env = Env::new(Creds::default());
    let provider = setup(&bao, &env, "1h");
    bao.cli(&["kv", "put", "secret/canary", &format!("v={CANARY}")]);
    bao.cli(&["kv", "put", "secret/forbidden", &format!("v={CANARY}")]);
    let run = |spec: Value| {
        let env = env.provider_env();
        async move { dynamic::generate(&spec, "g", "team", "es#0", env).await }
    };
    // A GET of a KV v2 path: Data is the answer's `data` (with its `data` and `metadata`).
    let ok = run(json!({"provider": provider, "path": "secret/data/canary"}))
        .await
        .unwrap();
    assert!(text(&ok, "data").contains(CANARY));
    assert!(ok.contains_key("metadata"));

    let missing = run(json!({"provider": provider, "path": "secret/data/nothing"}))
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("empty response"), "{missing}");
    let allowed = run(json!({"provider": provider, "path": "secret/data/nothing",
                             "allowEmptyResponse": true}))
    .await
    .unwrap();
    assert!(allowed.is_empty());

    let denied = run(json!({"provider": provider, "path": "secret/data/forbidden"}))
        .await
        .unwrap_err();
    assert!(
        matches!(denied, ProviderError::PermissionDenied(_)),
        "{denied}"
    );
    assert!(denied.to_string().contains("permission denied"), "{denied}");

    let no_path = run(json!({"provider": provider})).await.unwrap_err();
    assert!(
        matches!(no_path, ProviderError::InvalidConfig(_)),
        "{no_path}"
    );
    assert!(no_path.to_string().contains("spec.path"), "{no_path}");

    let bad_auth = run(json!({"provider": {"server": bao.addr}, "path": "x"}))
        .await
        .unwrap_err();
    assert!(bad_auth.to_string().contains("auth"), "{bad_auth}");

    for e in [&missing, &denied, &no_path, &bad_auth] {
        assert!(!e.to_string().contains(CANARY) && !format!("{e:?}").contains(CANARY));
    }
}

/// A generator whose login is stuck retrying (its server refuses connections, and its
/// `retrySettings` allow long waits) must not hold up another generator's login: logins wait
/// only for others of the same provider block. (Before, one process-wide lock was held
/// through every login, so one namespace's bad generator stalled them all.)
#[tokio::test]
async fn a_login_stuck_in_retries_does_not_hold_up_other_generators() {
    let bao = OpenBao::start().await;
    let env = Env::new(Creds::default());
    let provider = setup(&bao, &env, "1h");
    let good = json!({
        "provider": provider, "path": "pki/issue/web", "method": "POST",
        "parameters": {"common_name": "a.example.com"}
    });
    let mut unreachable = provider.clone();
    unreachable["server"] = json!(format!(
        "http://127.0.0.1:{}",
        strongroom_testkit::free_port()
    ));
    let stuck_spec = json!({
        "provider": unreachable, "path": "pki/issue/web", "method": "POST",
        "retrySettings": {"maxRetries": 20, "retryInterval": "1s"}
    });
    let stuck_env = env.provider_env();
    let stuck = tokio::spawn(async move {
        dynamic::generate(&stuck_spec, "stuck", "team", "es-stuck#0", stuck_env).await
    });
    // let it start its login and its first retry wait
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        dynamic::generate(&good, "cert", "team", "es-good#0", env.provider_env()),
    )
    .await
    .expect("held up by the other generator's login")
    .unwrap();
    assert!(out.contains_key("certificate"));
    assert!(!stuck.is_finished(), "the other login is still retrying");
    stuck.abort();
}
