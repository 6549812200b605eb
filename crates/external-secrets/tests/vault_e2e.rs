//! End to end with the vault provider: the `external-secrets-controller` binary against
//! devcluster and a real OpenBao (AppRole login). Many ExternalSecrets share one login
//! (counted by OpenBao's audit device), a remote change reaches the Secret within the
//! refresh interval, an outage leaves the Secret alone and says so, and the calls show on
//! `/metrics` under upstream's labels.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::json;
use strongroom_core::crd::external_secrets::PushSecret;
use strongroom_testkit::backends::OpenBao;
use strongroom_testkit::{CANARY, assert_no_canary, http_get, start_cluster_with_rbac, wait_for};

/// SecretStore `default/<name>` on `bao`'s KV v2 at `secret/`, logging in with `auth`.
async fn bao_store(client: &kube::Client, name: &str, bao: &OpenBao, auth: serde_json::Value) {
    create_store(
        client,
        name,
        json!({"vault": {"server": bao.addr, "path": "secret", "version": "v2", "auth": auth}}),
    )
    .await;
}

/// AppRole `role` on `bao` with token policy `policy`, its ids in Secret `approle`, and
/// SecretStore `default/<name>` logging in with them.
async fn approle_store(client: &kube::Client, bao: &OpenBao, name: &str, policy: &str) {
    let (role_id, secret_id) = bao.approle(policy, policy, "1h");
    put_secret(
        client,
        "approle",
        json!({"role-id": role_id, "secret-id": secret_id}),
    )
    .await;
    bao_store(
        client,
        name,
        bao,
        json!({"appRole": {
            "path": "approle",
            "roleRef": {"name": "approle", "key": "role-id"},
            "secretRef": {"name": "approle", "key": "secret-id"}
        }}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_from_openbao_with_one_login_and_survives_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let (bao, audit) = OpenBao::start_audited().await;
    bao.cli(&[
        "kv",
        "put",
        "secret/app/db",
        "user=admin",
        &format!("password={CANARY}"),
    ]);
    bao.policy(
        "reader",
        r#"path "secret/*" { capabilities = ["read", "list"] }"#,
    );
    approle_store(&client, &bao, "bao", "reader").await;
    let mut controller = start_controller(dir.path(), &cluster, &[]).await;

    // Many ExternalSecrets, one store: they share the store's client and its login.
    const N: usize = 10;
    let spec = |refresh: &str| {
        json!({
            "refreshInterval": refresh,
            "secretStoreRef": {"name": "bao", "kind": "SecretStore"},
            "data": [
                {"secretKey": "user", "remoteRef": {"key": "app/db", "property": "user"}},
                {"secretKey": "password", "remoteRef": {"key": "app/db", "property": "password"}},
            ],
        })
    };
    apply_es(&client, es("db-0", spec("2s"))).await;
    for i in 1..N {
        apply_es(&client, es(&format!("db-{i}"), spec("1h"))).await;
    }
    for i in 0..N {
        wait_ready(&client, &format!("db-{i}"), "True", "SecretSynced").await;
    }
    let data = secret_data(&client, "db-0").await.unwrap();
    assert_eq!(data["user"], "admin");
    assert_eq!(data["password"], CANARY);
    wait_store_ready(&client, "bao", "True").await;
    let logins = OpenBao::audited(&audit, "auth/approle/login");
    let reads = OpenBao::audited(&audit, "secret/data/app/db");
    eprintln!("{N} ExternalSecrets: {logins} login(s), {reads} read(s) of the key");
    assert_eq!(
        logins, 1,
        "one login for the store, whatever the number of readers"
    );

    // A remote change reaches the Secret within the refresh interval.
    bao.cli(&["kv", "put", "secret/app/db", "user=admin2", "password=p2"]);
    let changed = Instant::now();
    wait_for(
        || async {
            secret_data(&client, "db-0")
                .await
                .is_some_and(|d| d["user"] == "admin2")
        },
        "remote change synced",
    )
    .await;
    assert!(
        changed.elapsed() < Duration::from_secs(6),
        "{:?}",
        changed.elapsed()
    );

    let (_, metrics) = http_get(&controller.metrics).await;
    for call in ["Login", "ReadSecretData", "LookupSelf"] {
        let line = format!(
            "externalsecret_provider_api_calls_count{{call=\"{call}\",provider=\"HashiCorp/Vault\",status=\"success\"}}"
        );
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }

    // OpenBao stops: the refresh fails with the cause, the Secret stays as it was.
    let before = Api::<Secret>::namespaced(client.clone(), "default")
        .get("db-0")
        .await
        .unwrap();
    bao.process.signal("STOP");
    let message = wait_ready(&client, "db-0", "False", "SecretSyncedError").await;
    assert!(message.contains("unavailable"), "{message}");
    let after = Api::<Secret>::namespaced(client.clone(), "default")
        .get("db-0")
        .await
        .unwrap();
    assert_eq!(after.resource_version(), before.resource_version());
    assert_eq!(after.data, before.data);

    // It comes back: the next refresh syncs again, still on the same login.
    bao.process.signal("CONT");
    bao.cli(&["kv", "put", "secret/app/db", "user=admin3", "password=p3"]);
    wait_ready(&client, "db-0", "True", "SecretSynced").await;
    wait_for(
        || async {
            secret_data(&client, "db-0")
                .await
                .is_some_and(|d| d["user"] == "admin3")
        },
        "synced after the outage",
    )
    .await;
    assert_eq!(OpenBao::audited(&audit, "auth/approle/login"), 1);
    let login_metric = metric_sum(
        &controller.metrics,
        "externalsecret_provider_api_calls_count{call=\"Login\",provider=\"HashiCorp/Vault\"",
    )
    .await;
    assert_eq!(login_metric, 1.0);
    assert_no_canary(&[CANARY], &[("log", &controller.process.log_text())]);

    // A stop revokes the token the controller logged in for, instead of leaving it to its TTL.
    // (the setup's own `bao` calls revoke tokens too: count from here)
    let revoked_before = OpenBao::audited(&audit, "auth/token/revoke-self");
    controller.process.signal("TERM");
    let status = controller
        .process
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("the controller exits within 5 s");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        OpenBao::audited(&audit, "auth/token/revoke-self"),
        revoked_before + 1,
        "the store's token is revoked on shutdown"
    );
}

/// The Warning events so far: (name, reason, note, series count).
async fn warning_events(
    client: &kube::Client,
) -> Vec<(Option<String>, Option<String>, Option<String>, Option<i32>)> {
    Api::<Event>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| (e.metadata.name, e.reason, e.note, e.series.map(|s| s.count)))
        .collect()
}

/// Tokens of 3 s (at most 8 s) while an ExternalSecret refreshes every second for 15 s and
/// the remote value changes once: the Secret follows, the ExternalSecret is never failed, and
/// OpenBao sees a login per max TTL (renewals in between), not one per refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_never_fail_a_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let (bao, audit) = OpenBao::start_audited().await;
    bao.cli(&["kv", "put", "secret/app", &format!("v={CANARY}-1")]);
    bao.policy("reader", r#"path "secret/*" { capabilities = ["read"] }"#);
    bao.cli(&["auth", "enable", "userpass"]);
    bao.cli(&[
        "write",
        "auth/userpass/users/eso",
        "password=pw-1",
        "token_policies=reader",
        "token_ttl=3s",
        "token_max_ttl=8s",
    ]);
    put_secret(&client, "up", json!({"password": "pw-1"})).await;
    bao_store(
        &client,
        "bao",
        &bao,
        json!({"userPass": {"username": "eso", "secretRef": {"name": "up", "key": "password"}}}),
    )
    .await;
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    apply_es(
        &client,
        es(
            "short",
            json!({
                "refreshInterval": "1s",
                "secretStoreRef": {"name": "bao", "kind": "SecretStore"},
                "data": [{"secretKey": "v", "remoteRef": {"key": "app", "property": "v"}}],
            }),
        ),
    )
    .await;
    wait_ready(&client, "short", "True", "SecretSynced").await;
    // (a reconcile may fail before the store's first validation: count from here)
    let errors_before = metric_sum(&controller.metrics, "externalsecret_sync_calls_error{").await;
    let warnings_before = warning_events(&client).await;
    let started = Instant::now();
    let mut changed = None;
    let mut polls = 0;
    while started.elapsed() < Duration::from_secs(15) {
        let seen = ready(&client, "short").await;
        assert!(
            seen.as_ref().is_some_and(|(s, _, _)| s == "True"),
            "failed after {:?}: {seen:?}",
            started.elapsed()
        );
        if changed.is_none() && started.elapsed() > Duration::from_secs(7) {
            bao.cli(&["kv", "put", "secret/app", &format!("v={CANARY}-2")]);
            changed = Some(Instant::now());
        }
        polls += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let data = secret_data(&client, "short").await.unwrap();
    assert_eq!(
        data["v"],
        format!("{CANARY}-2"),
        "the Secret follows the change"
    );
    let logins = OpenBao::audited(&audit, "auth/userpass/login/eso");
    let renewals = OpenBao::audited(&audit, "auth/token/renew-self");
    let reads = OpenBao::audited(&audit, "secret/data/app");
    let syncs = metric_sum(
        &controller.metrics,
        "externalsecret_sync_calls_total{name=\"short\"",
    )
    .await;
    let errors =
        metric_sum(&controller.metrics, "externalsecret_sync_calls_error{").await - errors_before;
    eprintln!(
        "15 s, refresh 1 s, token ttl 3 s / max 8 s: {polls} status polls, {syncs} syncs, \
         {reads} reads, {logins} logins, {renewals} renewals, {errors} sync errors"
    );
    assert!(reads >= 10, "the ExternalSecret refreshed: {reads} reads");
    // Logins at ~0 s, ~7.4 s and ~14.9 s (max TTL 8 s), renewals every 2 s in between.
    assert!((2..=3).contains(&logins), "logins: {logins}");
    assert!(renewals >= 2, "renewals: {renewals}");
    let log = controller.process.log_text();
    for line in log
        .lines()
        .filter(|l| l.contains("vault login") || l.contains("vault token"))
    {
        eprintln!("{line}");
    }
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert_eq!(errors, 0.0, "no failed sync: {warned:#?}");
    let events = Api::<Event>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap();
    let warnings = warning_events(&client).await;
    assert_eq!(warnings, warnings_before, "no Warning event during the run");
    let events_text = serde_json::to_string(&events.items).unwrap();
    assert_no_canary(&[CANARY], &[("log", &log), ("events", &events_text)]);
}

const GENERATOR_POLICY: &str = r#"
path "pki/issue/web" { capabilities = ["update"] }
path "auth/token/create" { capabilities = ["update"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "auth/token/renew-accessor" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }
"#;

/// `bao args` as root; whether it succeeded.
fn bao_ok(bao: &OpenBao, args: &[&str]) -> bool {
    bao_try(bao, args).is_some()
}

/// `bao args` as root: its stdout, or `None` when it failed.
fn bao_try(bao: &OpenBao, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(strongroom_testkit::backends::bin_dir().join("bao"))
        .args(args)
        .env("BAO_ADDR", &bao.addr)
        .env("BAO_TOKEN", OpenBao::ROOT)
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The VaultDynamicSecret generator through the controller: PKI certificates (Data) and tokens
/// (Auth, through a ClusterGenerator) in Secrets, the previous certificate revoked and the
/// previous token invalid after a refresh, and failures reported on the ExternalSecret naming
/// the generator, with no generated value in logs, events or status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_dynamic_secret_generator() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.push("deploy/crds/generators.external-secrets.io_vaultdynamicsecrets.yaml");
    crds.push("deploy/crds/generators.external-secrets.io_clustergenerators.yaml");
    crds.push("deploy/crds/generators.external-secrets.io_generatorstates.yaml");
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let bao = OpenBao::start().await;
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
        "ttl=1h",
    ]);
    bao.policy("gen", GENERATOR_POLICY);
    let (role_id, secret_id) = bao.approle("gen", "gen", "1h");
    let creds: Secret = serde_json::from_value(json!({
        "metadata": {"name": "approle"},
        "stringData": {"role-id": role_id, "secret-id": secret_id}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &creds)
        .await
        .unwrap();
    let provider = json!({
        "server": bao.addr,
        "auth": {"appRole": {
            "roleRef": {"name": "approle", "key": "role-id"},
            "secretRef": {"name": "approle", "key": "secret-id"}
        }}
    });
    let generators = kube::Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        "default",
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "generators.external-secrets.io",
            "v1alpha1",
            "VaultDynamicSecret",
        )),
    );
    for (name, path) in [("cert", "pki/issue/web"), ("denied", "pki/issue/other")] {
        let g: kube::api::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "VaultDynamicSecret",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"provider": provider, "path": path, "method": "POST",
                     "parameters": {"common_name": "app.example.com"}}
        }))
        .unwrap();
        generators.create(&PostParams::default(), &g).await.unwrap();
    }
    let cluster_generators = kube::Api::<kube::api::DynamicObject>::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "generators.external-secrets.io",
            "v1alpha1",
            "ClusterGenerator",
        )),
    );
    let g: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "ClusterGenerator",
        "metadata": {"name": "token"},
        "spec": {"kind": "VaultDynamicSecret", "generator": {"vaultDynamicSecretSpec": {
            "provider": provider, "path": "auth/token/create", "method": "POST",
            "resultType": "Auth", "parameters": {"ttl": "10m", "policies": ["default"]}
        }}}
    }))
    .unwrap();
    cluster_generators
        .create(&PostParams::default(), &g)
        .await
        .unwrap();
    // A replaced lease is revoked as soon as its GeneratorState is flagged.
    let controller =
        start_controller(dir.path(), &cluster, &["--generator-gc-grace-period=0s"]).await;
    let started = Instant::now();
    let from = |kind: &str, name: &str| {
        json!({"sourceRef": {"generatorRef": {
            "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": kind, "name": name}}})
    };
    apply_es(
        &client,
        es(
            "cert",
            json!({"refreshInterval": "3s", "dataFrom": [from("VaultDynamicSecret", "cert")]}),
        ),
    )
    .await;
    apply_es(
        &client,
        es(
            "token",
            json!({"refreshInterval": "3s", "dataFrom": [from("ClusterGenerator", "token")]}),
        ),
    )
    .await;
    apply_es(
        &client,
        es(
            "denied",
            json!({"refreshInterval": "1h", "dataFrom": [from("VaultDynamicSecret", "denied")]}),
        ),
    )
    .await;
    wait_ready(&client, "cert", "True", "SecretSynced").await;
    wait_ready(&client, "token", "True", "SecretSynced").await;
    let cert = secret_data(&client, "cert").await.unwrap();
    for key in ["certificate", "private_key", "serial_number", "issuing_ca"] {
        assert!(cert.contains_key(key), "{key} in {:?}", cert.keys());
    }
    let serial = cert["serial_number"].clone();
    let token = secret_data(&client, "token").await.unwrap();
    for key in ["client_token", "accessor", "policies", "lease_duration"] {
        assert!(token.contains_key(key), "{key} in {:?}", token.keys());
    }
    let first_token = token["client_token"].clone();
    assert!(bao_ok(&bao, &["token", "lookup", &first_token]));

    // The next refresh writes new values and revokes the previous ones.
    wait_for(
        || async {
            secret_data(&client, "cert")
                .await
                .is_some_and(|d| d["serial_number"] != serial)
        },
        "a new certificate",
    )
    .await;
    wait_for(
        || async {
            secret_data(&client, "token")
                .await
                .is_some_and(|d| d["client_token"] != first_token)
        },
        "a new token",
    )
    .await;
    let revocation = bao.cli(&[
        "read",
        "-field=revocation_time",
        &format!("pki/cert/{serial}"),
    ]);
    assert_ne!(
        revocation.trim(),
        "0",
        "the replaced certificate is revoked"
    );
    assert!(
        !bao_ok(&bao, &["token", "lookup", &first_token]),
        "the replaced token is revoked"
    );
    let current = secret_data(&client, "token").await.unwrap();
    assert!(bao_ok(&bao, &["token", "lookup", &current["client_token"]]));
    // One generation per refresh (every 3 s), not one per reconcile of any kind.
    let since_start = started.elapsed().as_secs_f64();
    let generated = metric_sum(
        &controller.metrics,
        "externalsecret_provider_api_calls_count{call=\"GenerateDynamicSecret\",provider=\"HashiCorp/Vault\",status=\"success\"",
    )
    .await;
    let revoked = metric_sum(
        &controller.metrics,
        "externalsecret_provider_api_calls_count{call=\"RevokeLease\"",
    )
    .await;
    eprintln!("{since_start:.1} s: {generated} successful generations, {revoked} leases revoked");
    assert!(
        generated <= 2.0 * (since_start / 3.0).ceil() + 3.0,
        "{generated} generations in {since_start:.1} s"
    );

    // A refused request fails the ExternalSecret, naming the generator and the cause.
    let message = wait_ready(&client, "denied", "False", "SecretSyncedError").await;
    assert!(
        message.contains("VaultDynamicSecret \"denied\"") && message.contains("permission denied"),
        "{message}"
    );

    // No generated value outside the Secrets.
    let events = Api::<Event>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap();
    let statuses = serde_json::to_string(
        &Api::<strongroom_core::crd::external_secrets::ExternalSecret>::namespaced(
            client.clone(),
            "default",
        )
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.status.clone())
        .collect::<Vec<_>>(),
    )
    .unwrap();
    let key_line = cert["private_key"]
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert_no_canary(
        &[&first_token, &current["client_token"], &key_line],
        &[
            ("log", &controller.process.log_text()),
            ("events", &serde_json::to_string(&events.items).unwrap()),
            ("status", &statuses),
        ],
    );
}

/// The GeneratorStates of `namespace`: `(name, deadline set, state)`.
async fn generator_states(client: &kube::Client) -> Vec<(String, bool, serde_json::Value)> {
    Api::<strongroom_core::crd::generators::GeneratorState>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|g| g.metadata.deletion_timestamp.is_none())
        .map(|g| {
            (
                g.name_any(),
                g.spec.garbage_collection_deadline.is_some(),
                g.spec.state.0.clone(),
            )
        })
        .collect()
}

/// GeneratorStates keep the leases of VaultDynamicSecret generations in the cluster: a lease
/// replaced while the controller is down is revoked by the next controller after the new
/// generation, a state whose deadline passed while no controller ran is cleaned up when one
/// starts, and deleting the ExternalSecret revokes its current lease. The states hold token
/// accessors, never a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_states_revoke_across_restarts_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.push("deploy/crds/generators.external-secrets.io_vaultdynamicsecrets.yaml");
    crds.push("deploy/crds/generators.external-secrets.io_generatorstates.yaml");
    // RBAC enforced: start_controller runs the controller under the chart's RBAC.
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let bao = OpenBao::start().await;
    bao.policy("gen", GENERATOR_POLICY);
    let (role_id, secret_id) = bao.approle("gen", "gen", "1h");
    let creds: Secret = serde_json::from_value(json!({
        "metadata": {"name": "approle"},
        "stringData": {"role-id": role_id, "secret-id": secret_id}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &creds)
        .await
        .unwrap();
    let generators = kube::Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        "default",
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "generators.external-secrets.io",
            "v1alpha1",
            "VaultDynamicSecret",
        )),
    );
    let g: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "VaultDynamicSecret",
        "metadata": {"name": "token", "namespace": "default"},
        "spec": {"provider": {"server": bao.addr, "auth": {"appRole": {
                    "roleRef": {"name": "approle", "key": "role-id"},
                    "secretRef": {"name": "approle", "key": "secret-id"}}}},
                 "path": "auth/token/create", "method": "POST", "resultType": "Auth",
                 "parameters": {"ttl": "30m", "policies": ["default"]}}
    }))
    .unwrap();
    generators.create(&PostParams::default(), &g).await.unwrap();
    let grace = ["--generator-gc-grace-period=4s"];
    let first = start_controller(dir.path(), &cluster, &grace).await;
    let spec = json!({"refreshInterval": "1h", "dataFrom": [{"sourceRef": {"generatorRef": {
        "apiVersion": "generators.external-secrets.io/v1alpha1",
        "kind": "VaultDynamicSecret", "name": "token"}}}]});
    apply_es(&client, es("t", spec.clone())).await;
    wait_ready(&client, "t", "True", "SecretSynced").await;
    let t1 = secret_data(&client, "t").await.unwrap();
    let states = generator_states(&client).await;
    assert_eq!(states.len(), 1, "{states:?}");
    assert_eq!(states[0].2["tokenAccessor"], t1["accessor"].as_str());
    let recorded = serde_json::to_string(&states).unwrap();
    assert!(
        !recorded.contains(&t1["client_token"]),
        "no token in a GeneratorState"
    );

    // The controller dies (no shutdown); the ExternalSecret is forced to refresh meanwhile.
    first.process.signal("KILL");
    let mut forced = spec.clone();
    forced["refreshInterval"] = json!("1h");
    let mut object = es("t", forced);
    object["metadata"]["annotations"] = json!({"force-sync": "1"});
    apply_es(&client, object).await;
    let second = start_controller(dir.path(), &cluster, &grace).await;
    wait_for(
        || async {
            secret_data(&client, "t")
                .await
                .is_some_and(|d| d["client_token"] != t1["client_token"])
        },
        "a new token after the restart",
    )
    .await;
    let t2 = secret_data(&client, "t").await.unwrap();
    // The first state is flagged with a deadline 4 s out; the controller dies before it.
    wait_for(
        || async {
            let s = generator_states(&client).await;
            s.len() == 2 && s.iter().filter(|(_, flagged, _)| *flagged).count() == 1
        },
        "the replaced state flagged",
    )
    .await;
    let flagged_at = Instant::now();
    second.process.signal("KILL");
    let checked_alive = flagged_at.elapsed() < Duration::from_secs(3);
    if checked_alive {
        assert!(
            bao_ok(&bao, &["token", "lookup", &t1["client_token"]]),
            "the replaced token lives until its deadline"
        );
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Its deadline passed with no controller running: the next one revokes it.
    let third = start_controller(dir.path(), &cluster, &grace).await;
    let restarted = Instant::now();
    wait_for(
        || async { !bao_ok(&bao, &["token", "lookup", &t1["client_token"]]) },
        "the replaced token revoked after the restart",
    )
    .await;
    eprintln!(
        "replaced token checked alive at the kill: {checked_alive}; revoked {:.2} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    wait_for(
        || async { generator_states(&client).await.len() == 1 },
        "the replaced state deleted",
    )
    .await;
    assert!(bao_ok(&bao, &["token", "lookup", &t2["client_token"]]));

    // A generation whose ExternalSecret then fails (its next entry names no generator) is
    // never written anywhere: its token is revoked at once and no state is kept.
    let accessors = || {
        let out = bao.cli(&["list", "-format=json", "auth/token/accessors"]);
        serde_json::from_str::<Vec<String>>(&out).unwrap().len()
    };
    let baseline = accessors();
    let revoked_before = metric_sum(
        &third.metrics,
        "externalsecret_provider_api_calls_count{call=\"RevokeLease\"",
    )
    .await;
    let entry = |name: &str| {
        json!({"sourceRef": {"generatorRef": {
            "apiVersion": "generators.external-secrets.io/v1alpha1",
            "kind": "VaultDynamicSecret", "name": name}}})
    };
    apply_es(
        &client,
        es(
            "u",
            json!({"refreshInterval": "1h", "dataFrom": [entry("token"), entry("missing")]}),
        ),
    )
    .await;
    let message = wait_ready(&client, "u", "False", "SecretSyncedError").await;
    assert!(message.contains("missing"), "{message}");
    wait_for(
        || async {
            metric_sum(
                &third.metrics,
                "externalsecret_provider_api_calls_count{call=\"RevokeLease\"",
            )
            .await
                > revoked_before
        },
        "the unused token revoked",
    )
    .await;
    assert_eq!(accessors(), baseline, "no token left behind");
    assert_eq!(generator_states(&client).await.len(), 1);
    Api::<strongroom_core::crd::external_secrets::ExternalSecret>::namespaced(
        client.clone(),
        "default",
    )
    .delete("u", &Default::default())
    .await
    .unwrap();

    // Deleting the ExternalSecret revokes its current token and removes its state.
    Api::<strongroom_core::crd::external_secrets::ExternalSecret>::namespaced(
        client.clone(),
        "default",
    )
    .delete("t", &Default::default())
    .await
    .unwrap();
    let deleted = Instant::now();
    wait_for(
        || async { !bao_ok(&bao, &["token", "lookup", &t2["client_token"]]) },
        "the current token revoked with its ExternalSecret",
    )
    .await;
    eprintln!(
        "current token revoked {:.2} s after the ExternalSecret's deletion",
        deleted.elapsed().as_secs_f64()
    );
    wait_for(
        || async {
            Api::<strongroom_core::crd::generators::GeneratorState>::namespaced(
                client.clone(),
                "default",
            )
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
        },
        "no GeneratorState left",
    )
    .await;
    assert_no_canary(
        &[&t1["client_token"], &t2["client_token"]],
        &[("log", &third.process.log_text())],
    );
}

/// The `Ready` condition of the GeneratorState `name`: status, reason, message.
async fn state_ready(client: &kube::Client, name: &str) -> Option<(String, String, String)> {
    let api = Api::<strongroom_core::crd::generators::GeneratorState>::namespaced(
        client.clone(),
        "default",
    );
    ready_condition(&api, name).await
}

/// A lease generated by a controller that then died is renewed by the next one: a token of
/// 20 s created by the first controller still works 35 s later, the Secret still holds it,
/// and its GeneratorState says it is the current one (`Ready`, `Created`). Without the
/// takeover nobody would renew it and it would expire while the Secret still hands it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_renews_the_leases_it_finds() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.push("deploy/crds/generators.external-secrets.io_vaultdynamicsecrets.yaml");
    crds.push("deploy/crds/generators.external-secrets.io_generatorstates.yaml");
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let bao = OpenBao::start().await;
    bao.policy("gen", GENERATOR_POLICY);
    let (role_id, secret_id) = bao.approle("gen", "gen", "1h");
    let creds: Secret = serde_json::from_value(json!({
        "metadata": {"name": "approle"},
        "stringData": {"role-id": role_id, "secret-id": secret_id}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &creds)
        .await
        .unwrap();
    let generators = kube::Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        "default",
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "generators.external-secrets.io",
            "v1alpha1",
            "VaultDynamicSecret",
        )),
    );
    let g: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "VaultDynamicSecret",
        "metadata": {"name": "short", "namespace": "default"},
        "spec": {"provider": {"server": bao.addr, "auth": {"appRole": {
                    "roleRef": {"name": "approle", "key": "role-id"},
                    "secretRef": {"name": "approle", "key": "secret-id"}}}},
                 "path": "auth/token/create", "method": "POST", "resultType": "Auth",
                 "parameters": {"ttl": "20s", "explicit_max_ttl": "10m", "policies": ["default"]}}
    }))
    .unwrap();
    generators.create(&PostParams::default(), &g).await.unwrap();
    let first = start_controller(dir.path(), &cluster, &[]).await;
    apply_es(
        &client,
        es(
            "t",
            json!({"refreshInterval": "1h", "dataFrom": [{"sourceRef": {"generatorRef": {
                "apiVersion": "generators.external-secrets.io/v1alpha1",
                "kind": "VaultDynamicSecret", "name": "short"}}}]}),
        ),
    )
    .await;
    wait_ready(&client, "t", "True", "SecretSynced").await;
    let token = secret_data(&client, "t").await.unwrap()["client_token"].clone();
    let states = generator_states(&client).await;
    assert_eq!(states.len(), 1, "{states:?}");
    let state = states[0].0.clone();
    wait_for(
        || async {
            state_ready(&client, &state).await
                == Some((
                    "True".into(),
                    "Created".into(),
                    "GeneratorState created".into(),
                ))
        },
        "the GeneratorState's condition",
    )
    .await;

    // The controller dies; the next one finds the state and renews its token from then on.
    first.process.signal("KILL");
    let killed = Instant::now();
    let second = start_controller(dir.path(), &cluster, &[]).await;
    wait_for(
        || async {
            second
                .process
                .log_text()
                .contains("renewing the lease of a generator state recorded before")
        },
        "the lease taken over",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(35).saturating_sub(killed.elapsed())).await;
    assert!(
        bao_ok(&bao, &["token", "lookup", &token]),
        "the 20 s token lives on {:.0} s after its controller died",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(
        secret_data(&client, "t").await.unwrap()["client_token"],
        token,
        "no new generation: the Secret still holds the renewed token"
    );
    assert_eq!(generator_states(&client).await.len(), 1);
    let renewed = metric_sum(
        &second.metrics,
        "externalsecret_provider_api_calls_count{call=\"RenewLease\"",
    )
    .await;
    assert!(renewed >= 2.0, "{renewed} renewals");

    // Deleting the ExternalSecret still revokes it, and stops its renewal.
    Api::<strongroom_core::crd::external_secrets::ExternalSecret>::namespaced(
        client.clone(),
        "default",
    )
    .delete("t", &Default::default())
    .await
    .unwrap();
    wait_for(
        || async { !bao_ok(&bao, &["token", "lookup", &token]) },
        "the adopted token revoked with its ExternalSecret",
    )
    .await;
    assert_no_canary(&[&token], &[("log", &second.process.log_text())]);
}

/// A GeneratorState whose cleanup fails says so on its `Ready` condition (upstream's `Error`
/// reason) and is kept, with its finalizer, for the next try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_generator_state_cleanup_shows_on_its_condition() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.push("deploy/crds/generators.external-secrets.io_generatorstates.yaml");
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let token: Secret = serde_json::from_value(json!({
        "metadata": {"name": "vault-token"}, "stringData": {"token": CANARY}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &token)
        .await
        .unwrap();
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    // a lease on a Vault that is not there, past its deadline
    let gs: strongroom_core::crd::generators::GeneratorState = serde_json::from_value(json!({
        "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "GeneratorState",
        "metadata": {"name": "gone", "namespace": "default",
                     "finalizers": ["generatorstate.externalsecrets.io/finalizer"]},
        "spec": {
            "garbageCollectionDeadline": "2020-01-01T00:00:00Z",
            "resource": {"apiVersion": "generators.external-secrets.io/v1alpha1",
                "kind": "VaultDynamicSecret", "metadata": {"name": "gen", "namespace": "default"},
                "spec": {"provider": {"server": "http://127.0.0.1:1", "auth": {
                    "tokenSecretRef": {"name": "vault-token", "key": "token"}}},
                    "retrySettings": {"maxRetries": 0, "retryInterval": "1s"},
                    "path": "database/creds/app"}},
            "state": {"leaseID": "database/creds/app/abc"}
        }
    }))
    .unwrap();
    let states = Api::<strongroom_core::crd::generators::GeneratorState>::namespaced(
        client.clone(),
        "default",
    );
    states.create(&PostParams::default(), &gs).await.unwrap();
    wait_for(
        || async {
            state_ready(&client, "gone").await.is_some_and(|(s, r, m)| {
                s == "False"
                    && r == "Error"
                    && m.starts_with(
                        "could not cleanup generator state: VaultDynamicSecret \"gen\"",
                    )
            })
        },
        "the failed cleanup on the condition",
    )
    .await;
    let kept = states.get("gone").await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_some());
    assert!(
        kept.finalizers()
            .iter()
            .any(|f| f == "generatorstate.externalsecrets.io/finalizer")
    );
    let status = serde_json::to_string(&kept.status).unwrap();
    assert_no_canary(
        &[CANARY],
        &[("log", &controller.process.log_text()), ("status", &status)],
    );
    // let it go
    states
        .patch(
            "gone",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
}

/// The `Ready` condition of PushSecret `default/<name>`: status, reason, message.
async fn push_ready(client: &kube::Client, name: &str) -> Option<(String, String, String)> {
    ready_condition(
        &Api::<PushSecret>::namespaced(client.clone(), "default"),
        name,
    )
    .await
}

/// `bao kv get` of `path` as JSON (`data.data`, `data.metadata`), or `None` when there is none.
fn kv_get(bao: &OpenBao, path: &str) -> Option<serde_json::Value> {
    let out = bao_try(bao, &["kv", "get", "-format=json", path])?;
    Some(serde_json::from_str(&out).unwrap())
}

/// `bao kv metadata get` of `path` as JSON (`data.custom_metadata`, `data.current_version`).
fn kv_metadata(bao: &OpenBao, path: &str) -> Option<serde_json::Value> {
    let out = bao_try(bao, &["kv", "metadata", "get", "-format=json", path])?;
    Some(serde_json::from_str(&out).unwrap())
}

/// A PushSecret of Secret `source`'s `password` to property `password` of `remote_key`.
fn push_secret(name: &str, remote_key: &str) -> PushSecret {
    serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "refreshInterval": "1h",
            "deletionPolicy": "Delete",
            "secretStoreRefs": [{"name": "bao", "kind": "SecretStore"}],
            "selector": {"secret": {"name": "source"}},
            "data": [{"match": {"secretKey": "password",
                "remoteRef": {"remoteKey": remote_key, "property": "password"}}}]
        }
    }))
    .unwrap()
}

/// PushSecret to OpenBao's KV v2 and back through an ExternalSecret: the pushed key carries
/// `custom_metadata.managed-by=external-secrets`, a change of the source Secret reaches
/// OpenBao and then the read-back Secret, a push onto a key that exists unmanaged is refused
/// on the PushSecret's condition with the remote value untouched, and deletionPolicy Delete
/// removes the remote key with the PushSecret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secret_to_openbao_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut crds = CRDS.to_vec();
    crds.push("deploy/crds/external-secrets.io_pushsecrets.yaml");
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    let bao = OpenBao::start().await;
    bao.policy(
        "pusher",
        r#"path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }"#,
    );
    approle_store(&client, &bao, "bao", "pusher").await;
    // a key someone else wrote: no PushSecret may take it over
    bao.cli(&["kv", "put", "secret/team/legacy", "password=keep-me"]);
    put_secret(
        &client,
        "source",
        json!({"password": format!("{CANARY}-1")}),
    )
    .await;
    let controller = start_controller(dir.path(), &cluster, &[]).await;
    let pushes = Api::<PushSecret>::namespaced(client.clone(), "default");
    pushes
        .create(&PostParams::default(), &push_secret("push", "team/db"))
        .await
        .unwrap();
    apply_es(
        &client,
        es(
            "back",
            json!({"refreshInterval": "1s",
                "secretStoreRef": {"name": "bao", "kind": "SecretStore"},
                "data": [{"secretKey": "password",
                    "remoteRef": {"key": "team/db", "property": "password"}}]}),
        ),
    )
    .await;

    // Pushed, marked as managed, and read back.
    let remote_password =
        || kv_get(&bao, "secret/team/db").map(|v| v["data"]["data"]["password"].clone());
    wait_for(
        || async { remote_password() == Some(json!(format!("{CANARY}-1"))) },
        "pushed to OpenBao",
    )
    .await;
    let pushed = kv_get(&bao, "secret/team/db").unwrap();
    assert_eq!(
        pushed["data"]["metadata"]["custom_metadata"]["managed-by"], "external-secrets",
        "{pushed}"
    );
    assert_eq!(
        pushed["data"]["data"].as_object().unwrap().len(),
        1,
        "only the pushed property: {}",
        pushed["data"]["data"]
    );
    wait_for(
        || async {
            push_ready(&client, "push")
                .await
                .is_some_and(|(s, r, _)| s == "True" && r == "Synced")
        },
        "PushSecret Ready",
    )
    .await;
    wait_ready(&client, "back", "True", "SecretSynced").await;
    assert_eq!(
        secret_data(&client, "back").await.unwrap()["password"],
        format!("{CANARY}-1")
    );

    // The source changes: OpenBao, then the read-back Secret, follow.
    let changed = Instant::now();
    Api::<Secret>::namespaced(client.clone(), "default")
        .patch(
            "source",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"stringData": {"password": format!("{CANARY}-2")}})),
        )
        .await
        .unwrap();
    wait_for(
        || async { remote_password() == Some(json!(format!("{CANARY}-2"))) },
        "the source change pushed",
    )
    .await;
    let in_bao = changed.elapsed();
    wait_for(
        || async {
            secret_data(&client, "back")
                .await
                .is_some_and(|d| d["password"] == format!("{CANARY}-2"))
        },
        "the change read back",
    )
    .await;
    eprintln!(
        "source change: in OpenBao after {:.2} s, read back after {:.2} s",
        in_bao.as_secs_f64(),
        changed.elapsed().as_secs_f64()
    );
    assert_eq!(
        kv_metadata(&bao, "secret/team/db").unwrap()["data"]["current_version"],
        2,
        "one new version per change"
    );

    // A key that exists unmanaged is refused, and left as it was.
    pushes
        .create(
            &PostParams::default(),
            &push_secret("intruder", "team/legacy"),
        )
        .await
        .unwrap();
    wait_for(
        || async {
            push_ready(&client, "intruder")
                .await
                .is_some_and(|(s, _, _)| s == "False")
        },
        "the push onto an unmanaged key refused",
    )
    .await;
    let (_, reason, message) = push_ready(&client, "intruder").await.unwrap();
    assert_eq!(reason, "Errored");
    assert!(
        message.contains("team/legacy") && message.contains("not managed by external-secrets"),
        "{message}"
    );
    let legacy = kv_get(&bao, "secret/team/legacy").unwrap();
    assert_eq!(legacy["data"]["data"], json!({"password": "keep-me"}));
    assert_eq!(legacy["data"]["metadata"]["version"], 1, "{legacy}");
    assert!(
        legacy["data"]["metadata"]["custom_metadata"].is_null(),
        "{legacy}"
    );
    // deleting the refused PushSecret (deletionPolicy Delete) deletes nothing it did not push
    pushes
        .delete("intruder", &Default::default())
        .await
        .unwrap();
    wait_for(
        || async { pushes.get_opt("intruder").await.unwrap().is_none() },
        "the refused PushSecret gone",
    )
    .await;
    assert_eq!(
        kv_get(&bao, "secret/team/legacy").unwrap()["data"]["data"],
        json!({"password": "keep-me"})
    );

    // deletionPolicy Delete: the remote key goes with the PushSecret.
    pushes.delete("push", &Default::default()).await.unwrap();
    wait_for(
        || async {
            kv_metadata(&bao, "secret/team/db").is_none()
                && pushes.get_opt("push").await.unwrap().is_none()
        },
        "the remote key deleted with the PushSecret",
    )
    .await;
    let (_, metrics) = http_get(&controller.metrics).await;
    for call in ["WriteSecretData", "DeleteSecret"] {
        let series = format!(
            "externalsecret_provider_api_calls_count{{call=\"{call}\",provider=\"HashiCorp/Vault\",status=\"success\"}}"
        );
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }
    let statuses =
        serde_json::to_string(&pushes.list(&Default::default()).await.unwrap().items).unwrap();
    assert_no_canary(
        &[CANARY],
        &[
            ("log", &controller.process.log_text()),
            ("PushSecrets", &statuses),
        ],
    );
}

/// Stores for the Vault auth methods that go through the Kubernetes API, plus a static token,
/// each through the controller under the chart's RBAC:
/// - `kubernetes` with `serviceAccountRef`: the controller mints a token with TokenRequest and
///   OpenBao's kubernetes method checks it with devcluster's TokenReview;
/// - `jwt` with `kubernetesServiceAccountToken`: a minted token (audience `vault`) that
///   OpenBao's jwt method verifies with devcluster's published signing keys (JWKS) and issuer;
/// - `tokenSecretRef`: a token from a Secret, never a login.
///
/// Each store turns Ready and syncs an ExternalSecret; each login method logs in once, with one
/// TokenRequest each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_per_auth_method_kubernetes_jwt_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let (bao, audit) = OpenBao::start_audited().await;
    bao.cli(&["kv", "put", "secret/app", &format!("v={CANARY}")]);
    bao.policy("reader", r#"path "secret/*" { capabilities = ["read"] }"#);
    let ca = strongroom_testkit::cluster_ca_pem(&cluster);
    for sa in ["eso-k8s", "eso-jwt"] {
        create_service_account(&client, sa, json!({})).await;
    }

    // kubernetes: OpenBao reviews the presented token at devcluster (admin as the reviewer).
    bao.cli(&["auth", "enable", "kubernetes"]);
    bao.cli(&[
        "write",
        "auth/kubernetes/config",
        &format!("kubernetes_host={}", cluster.url()),
        &format!("kubernetes_ca_cert={ca}"),
        &format!("token_reviewer_jwt={}", cluster.token()),
    ]);
    bao.cli(&[
        "write",
        "auth/kubernetes/role/reader",
        "bound_service_account_names=eso-k8s",
        "bound_service_account_namespaces=default",
        "token_policies=reader",
        "token_ttl=10m",
    ]);
    bao_store(
        &client,
        "k8s",
        &bao,
        json!({"kubernetes": {"mountPath": "kubernetes", "role": "reader",
            "serviceAccountRef": {"name": "eso-k8s"}}}),
    )
    .await;

    // jwt: OpenBao fetches devcluster's JWKS (the jwks_uri of its OIDC discovery document) and
    // checks the issuer, the audience and the subject.
    bao.cli(&["auth", "enable", "jwt"]);
    bao.cli(&[
        "write",
        "auth/jwt/config",
        &format!("jwks_url={}/openid/v1/jwks", cluster.url()),
        &format!("jwks_ca_pem={ca}"),
        "bound_issuer=https://kubernetes.default.svc.cluster.local",
    ]);
    bao.cli(&[
        "write",
        "auth/jwt/role/reader",
        "role_type=jwt",
        "user_claim=sub",
        "bound_audiences=vault",
        "bound_subject=system:serviceaccount:default:eso-jwt",
        "token_policies=reader",
        "token_ttl=10m",
    ]);
    bao_store(
        &client,
        "jwt",
        &bao,
        json!({"jwt": {"path": "jwt", "role": "reader",
            "kubernetesServiceAccountToken": {"serviceAccountRef": {"name": "eso-jwt"}}}}),
    )
    .await;

    // tokenSecretRef: a token made for the reader policy.
    let token = bao.cli(&[
        "token",
        "create",
        "-policy=reader",
        "-ttl=1h",
        "-field=token",
    ]);
    put_secret(&client, "bao-token", json!({"token": token.trim()})).await;
    bao_store(
        &client,
        "token",
        &bao,
        json!({"tokenSecretRef": {"name": "bao-token", "key": "token"}}),
    )
    .await;

    let controller = start_controller(dir.path(), &cluster, &[]).await;
    for store in ["k8s", "jwt", "token"] {
        apply_es(
            &client,
            es(
                store,
                json!({"refreshInterval": "1h",
                    "secretStoreRef": {"name": store, "kind": "SecretStore"},
                    "data": [{"secretKey": "v", "remoteRef": {"key": "app", "property": "v"}}]}),
            ),
        )
        .await;
    }
    for store in ["k8s", "jwt", "token"] {
        wait_store_ready(&client, store, "True").await;
        wait_ready(&client, store, "True", "SecretSynced").await;
        assert_eq!(
            secret_data(&client, store).await.unwrap()["v"],
            CANARY,
            "synced through store {store}"
        );
    }
    let kubernetes_logins = OpenBao::audited(&audit, "auth/kubernetes/login");
    let jwt_logins = OpenBao::audited(&audit, "auth/jwt/login");
    let minted = token_requests(&cluster);
    eprintln!(
        "kubernetes logins {kubernetes_logins}, jwt logins {jwt_logins}, TokenRequests {minted}"
    );
    assert_eq!(kubernetes_logins, 1);
    assert_eq!(jwt_logins, 1);
    assert_eq!(minted, 2, "one TokenRequest per login");
    assert_no_canary(&[CANARY], &[("log", &controller.process.log_text())]);
}

/// ConfigMap `default/<name>` with `data`.
async fn put_config_map(client: &kube::Client, name: &str, data: serde_json::Value) {
    let map: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap();
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &map)
        .await
        .unwrap();
}

/// Successful logins at `path` in `audit`, by the `cert_name` (role) OpenBao matched.
fn cert_logins(audit: &std::path::Path, role: &str) -> usize {
    OpenBao::audit_entries(audit)
        .iter()
        .filter(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "auth/cert/login"
                && e["auth"]["metadata"]["cert_name"] == role
        })
        .count()
}

/// A base64 line from the middle of a PEM key: must appear in no log.
fn key_canary(pem: &str) -> String {
    pem.lines().nth(1).unwrap().to_string()
}

/// `auth.cert` through the controller against OpenBao's HTTPS listener (a CA made here): one
/// store trusts the server CA from `caBundle`, one from `caProvider` (a ConfigMap); each logs in
/// with the client certificate and key from Secrets, through its own CA role, exactly once for
/// its three ExternalSecrets (OpenBao's audit device). A store whose client certificate comes
/// from another CA stays not Ready, and its ExternalSecret's condition names the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_auth_over_tls_with_ca_bundle_and_ca_provider() {
    use strongroom_testkit::backends::TlsListener;
    use strongroom_testkit::pki::TestCa;
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let ca = TestCa::new("strongroom-test-ca");
    let (bao, audit, tls_addr) = OpenBao::start_audited_with_tls(&TlsListener {
        server: ca.server(),
        client_ca_pem: None,
        require_client_cert: false,
    })
    .await;
    bao.cli(&["kv", "put", "secret/app", &format!("v={CANARY}")]);
    bao.policy("reader", r#"path "secret/*" { capabilities = ["read"] }"#);
    bao.cli(&["auth", "enable", "cert"]);
    for role in ["bundle", "provider"] {
        bao.cli(&[
            "write",
            &format!("auth/cert/certs/{role}"),
            &format!("certificate={}", ca.pem()),
            "token_policies=reader",
            "token_ttl=10m",
        ]);
    }
    let good = ca.client("eso", 7001);
    let rogue = TestCa::new("rogue-ca").client("eso", 7002);
    for (name, cert) in [("client-cert", &good), ("rogue-cert", &rogue)] {
        put_secret(
            &client,
            name,
            json!({"tls.crt": cert.cert_pem, "tls.key": cert.key_pem}),
        )
        .await;
    }
    put_config_map(&client, "bao-ca", json!({"ca.crt": ca.pem()})).await;
    let bundle = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(ca.pem())
    };
    let cert_auth = |role: &str, secret: &str| {
        json!({"cert": {"path": "cert", "vaultRole": role,
            "clientCert": {"name": secret, "key": "tls.crt"},
            "secretRef": {"name": secret, "key": "tls.key"}}})
    };
    let store = |auth: serde_json::Value, trust: serde_json::Value| {
        let mut vault =
            json!({"server": tls_addr, "path": "secret", "version": "v2", "auth": auth});
        vault
            .as_object_mut()
            .unwrap()
            .extend(trust.as_object().unwrap().clone());
        json!({ "vault": vault })
    };
    create_store(
        &client,
        "bundle",
        store(
            cert_auth("bundle", "client-cert"),
            json!({"caBundle": bundle}),
        ),
    )
    .await;
    create_store(
        &client,
        "provider",
        store(
            cert_auth("provider", "client-cert"),
            json!({"caProvider": {"type": "ConfigMap", "name": "bao-ca", "key": "ca.crt"}}),
        ),
    )
    .await;
    create_store(
        &client,
        "rogue",
        store(
            cert_auth("bundle", "rogue-cert"),
            json!({"caBundle": bundle}),
        ),
    )
    .await;

    let controller = start_controller(dir.path(), &cluster, &[]).await;
    let names: Vec<(String, &str)> = ["bundle", "provider"]
        .iter()
        .flat_map(|s| (0..3).map(move |i| (format!("{s}-{i}"), *s)))
        .chain([("rogue-0".to_string(), "rogue")])
        .collect();
    for (name, store) in &names {
        apply_es(
            &client,
            es(
                name,
                json!({"refreshInterval": "1h",
                    "secretStoreRef": {"name": store, "kind": "SecretStore"},
                    "data": [{"secretKey": "v", "remoteRef": {"key": "app", "property": "v"}}]}),
            ),
        )
        .await;
    }
    for store in ["bundle", "provider"] {
        wait_store_ready(&client, store, "True").await;
    }
    for (name, store) in names.iter().filter(|(_, s)| *s != "rogue") {
        wait_ready(&client, name, "True", "SecretSynced").await;
        assert_eq!(
            secret_data(&client, name).await.unwrap()["v"],
            CANARY,
            "synced through store {store}"
        );
    }
    let message = wait_store_ready(&client, "rogue", "False").await;
    eprintln!("rogue store: {message}");
    assert!(
        message.contains("certificate") && message.contains("log in"),
        "the store says its certificate login failed: {message}"
    );
    let es_message = wait_ready(&client, "rogue-0", "False", "SecretSyncedError").await;
    eprintln!("rogue ExternalSecret: {es_message}");
    assert!(
        es_message.contains("rogue"),
        "names the store: {es_message}"
    );
    assert!(secret_data(&client, "rogue-0").await.is_none());

    let (bundle_logins, provider_logins) = (
        cert_logins(&audit, "bundle"),
        cert_logins(&audit, "provider"),
    );
    eprintln!("cert logins: bundle {bundle_logins}, provider {provider_logins}");
    assert_eq!(bundle_logins, 1, "one login for the caBundle store");
    assert_eq!(provider_logins, 1, "one login for the caProvider store");
    assert_no_canary(
        &[&key_canary(&good.key_pem), &key_canary(&rogue.key_pem)],
        &[
            ("log", &controller.process.log_text()),
            ("message", &message),
            ("message", &es_message),
        ],
    );
}

/// The store's `tls` client certificate (mutual TLS) against an HTTPS listener that requires
/// one, and `headers` on every request: each request the controller makes (the AppRole login
/// and the reads) reaches OpenBao with the store's certificate (its serial number in the audit
/// log) and the custom header (audited through `sys/config/auditing/request-headers`). A store
/// without the `tls` block is refused by the listener and stays not Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_client_certificate_and_headers_on_every_request() {
    use strongroom_testkit::backends::TlsListener;
    use strongroom_testkit::pki::TestCa;
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    let ca = TestCa::new("strongroom-test-ca");
    let (bao, audit, tls_addr) = OpenBao::start_audited_with_tls(&TlsListener {
        server: ca.server(),
        client_ca_pem: Some(ca.pem().to_string()),
        require_client_cert: true,
    })
    .await;
    bao.cli(&["kv", "put", "secret/app", &format!("v={CANARY}")]);
    bao.policy("reader", r#"path "secret/*" { capabilities = ["read"] }"#);
    bao.cli(&[
        "write",
        "sys/config/auditing/request-headers/x-strongroom-team",
        "hmac=false",
    ]);
    let (role_id, secret_id) = bao.approle("reader", "reader", "1h");
    put_secret(
        &client,
        "approle",
        json!({"role-id": role_id, "secret-id": secret_id}),
    )
    .await;
    let store_cert = ca.client("strongroom-store", 9001);
    put_secret(
        &client,
        "store-cert",
        json!({"tls.crt": store_cert.cert_pem, "tls.key": store_cert.key_pem}),
    )
    .await;
    put_secret(&client, "bao-ca", json!({"ca.crt": ca.pem()})).await;
    let vault = |tls: bool| {
        let mut v = json!({"server": tls_addr, "path": "secret", "version": "v2",
            "caProvider": {"type": "Secret", "name": "bao-ca", "key": "ca.crt"},
            "headers": {"X-Strongroom-Team": "blue"},
            "auth": {"appRole": {"path": "approle",
                "roleRef": {"name": "approle", "key": "role-id"},
                "secretRef": {"name": "approle", "key": "secret-id"}}}});
        if tls {
            v["tls"] = json!({"certSecretRef": {"name": "store-cert"},
                "keySecretRef": {"name": "store-cert"}});
        }
        json!({ "vault": v })
    };
    create_store(&client, "mtls", vault(true)).await;
    create_store(&client, "no-cert", vault(false)).await;
    let setup_entries = OpenBao::audit_entries(&audit).len();

    let controller = start_controller(dir.path(), &cluster, &[]).await;
    for i in 0..2 {
        apply_es(
            &client,
            es(
                &format!("mtls-{i}"),
                json!({"refreshInterval": "1h",
                    "secretStoreRef": {"name": "mtls", "kind": "SecretStore"},
                    "data": [{"secretKey": "v", "remoteRef": {"key": "app", "property": "v"}}]}),
            ),
        )
        .await;
    }
    wait_store_ready(&client, "mtls", "True").await;
    for i in 0..2 {
        let name = format!("mtls-{i}");
        wait_ready(&client, &name, "True", "SecretSynced").await;
        assert_eq!(secret_data(&client, &name).await.unwrap()["v"], CANARY);
    }
    let message = wait_store_ready(&client, "no-cert", "False").await;
    eprintln!("store without a client certificate: {message}");
    // TLS 1.3: the server drops the connection after the handshake, so the client sees a
    // closed connection rather than the server's alert.
    assert!(
        message.contains("log in with AppRole") && message.contains("cannot be reached"),
        "the refused connection shows on the store: {message}"
    );

    let requests: Vec<serde_json::Value> = OpenBao::audit_entries(&audit)
        .into_iter()
        .skip(setup_entries)
        .filter(|e| e["type"] == "request")
        .collect();
    let paths: Vec<&str> = requests
        .iter()
        .map(|e| e["request"]["path"].as_str().unwrap_or(""))
        .collect();
    eprintln!("controller requests: {paths:?}");
    assert_eq!(
        paths.iter().filter(|p| **p == "auth/approle/login").count(),
        1,
        "one login"
    );
    assert!(paths.contains(&"secret/data/app"), "{paths:?}");
    for e in &requests {
        let path = &e["request"]["path"];
        assert_eq!(
            e["request"]["headers"]["x-strongroom-team"],
            json!(["blue"]),
            "the custom header on {path}"
        );
        assert_eq!(
            e["request"]["client_certificate_serial_number"], store_cert.serial,
            "the store's client certificate on {path}"
        );
    }
    assert_no_canary(
        &[&key_canary(&store_cert.key_pem)],
        &[
            ("log", &controller.process.log_text()),
            ("message", &message),
        ],
    );
}
