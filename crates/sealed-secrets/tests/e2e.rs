//! End to end: the real `sealed-secrets-controller` binary against devcluster.
//! (Sealing here uses the same core code `kubeseal` uses; `kubeseal`'s own end-to-end tests
//! cover the CLI.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use strongroom_core::crd::sealed_secret::SealedSecret;
use strongroom_core::sealing::SealingScope;

use common::*;

#[tokio::test]
async fn unseals_updates_reports_failures_and_keeps_secrets_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client, controller) = start(dir.path()).await;
    let cert = cert(&controller).await;
    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");

    // strict, namespace-wide and cluster-wide seals all unseal into Secrets
    for (scope, name) in [
        (SealingScope::Strict, "strict"),
        (SealingScope::NamespaceWide, "nswide"),
        (SealingScope::ClusterWide, "clusterwide"),
    ] {
        sealed_api
            .create(
                &PostParams::default(),
                &sealed(&cert, scope, "default", name, &[("password", CANARY)]),
            )
            .await
            .unwrap();
    }
    for name in ["strict", "nswide", "clusterwide"] {
        wait_for(
            || async { secrets.get_opt(name).await.unwrap().is_some() },
            name,
        )
        .await;
        let s = secrets.get(name).await.unwrap();
        assert_eq!(s.data.as_ref().unwrap()["password"].0, CANARY.as_bytes());
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(s.labels()["app"], "web");
        let owner = &s.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("SealedSecret", Some(true))
        );
        assert!(
            s.annotations()
                .contains_key("sealedsecrets.strongroom.dev/sealing-key")
        );
        wait_for(
            || async {
                synced(&sealed_api.get(name).await.unwrap()).is_some_and(|(s, _)| s == "True")
            },
            "Synced=True",
        )
        .await;
    }

    // an update adds the new item
    let mut updated = sealed(
        &cert,
        SealingScope::Strict,
        "default",
        "strict",
        &[("password", CANARY), ("user", "app")],
    );
    let current = sealed_api.get("strict").await.unwrap();
    updated.metadata.resource_version = current.metadata.resource_version.clone();
    sealed_api
        .replace("strict", &PostParams::default(), &updated)
        .await
        .unwrap();
    wait_for(
        || async {
            secrets
                .get("strict")
                .await
                .unwrap()
                .data
                .unwrap()
                .contains_key("user")
        },
        "updated Secret",
    )
    .await;

    // tampered and moved SealedSecrets fail with a precise message and write nothing
    let mut tampered = sealed(
        &cert,
        SealingScope::Strict,
        "default",
        "tampered",
        &[("password", CANARY)],
    );
    let blob = tampered.spec.encrypted_data["password"]
        .as_str()
        .unwrap()
        .to_string();
    let mut chars: Vec<char> = blob.chars().collect();
    let i = chars.len() - 6;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    tampered.spec.encrypted_data.insert(
        "password".into(),
        Value::String(chars.into_iter().collect()),
    );
    sealed_api
        .create(&PostParams::default(), &tampered)
        .await
        .unwrap();
    let moved = sealed(
        &cert,
        SealingScope::Strict,
        "staging",
        "moved",
        &[("password", CANARY)],
    );
    let mut moved: SealedSecret = moved;
    moved.metadata.namespace = Some("default".into());
    sealed_api
        .create(&PostParams::default(), &moved)
        .await
        .unwrap();
    wait_for(
        || async {
            synced(&sealed_api.get("tampered").await.unwrap()).is_some_and(|(s, _)| s == "False")
        },
        "tampered Synced=False",
    )
    .await;
    wait_for(
        || async {
            synced(&sealed_api.get("moved").await.unwrap()).is_some_and(|(s, _)| s == "False")
        },
        "moved Synced=False",
    )
    .await;
    let (_, msg) = synced(&sealed_api.get("tampered").await.unwrap()).unwrap();
    assert!(msg.contains("modified after sealing"), "{msg}");
    let (_, msg) = synced(&sealed_api.get("moved").await.unwrap()).unwrap();
    assert!(msg.contains("another namespace or name"), "{msg}");
    assert!(secrets.get_opt("tampered").await.unwrap().is_none());
    assert!(secrets.get_opt("moved").await.unwrap().is_none());

    // a Secret the controller does not manage is left alone
    let foreign: Secret = serde_json::from_value(
        json!({"metadata": {"name": "foreign"}, "stringData": {"keep": "me"}}),
    )
    .unwrap();
    secrets
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    sealed_api
        .create(
            &PostParams::default(),
            &sealed(
                &cert,
                SealingScope::Strict,
                "default",
                "foreign",
                &[("x", "y")],
            ),
        )
        .await
        .unwrap();
    wait_for(
        || async {
            synced(&sealed_api.get("foreign").await.unwrap()).is_some_and(|(s, _)| s == "False")
        },
        "foreign Synced=False",
    )
    .await;
    let (_, msg) = synced(&sealed_api.get("foreign").await.unwrap()).unwrap();
    assert!(
        msg.contains("already exists and is not managed by SealedSecret"),
        "{msg}"
    );
    assert_eq!(
        secrets.get("foreign").await.unwrap().data.unwrap()["keep"].0,
        b"me"
    );

    // Warning events name the failure
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    wait_for(
        || async {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| e.reason.as_deref() == Some("ErrUnsealFailed"))
        },
        "ErrUnsealFailed event",
    )
    .await;

    // /v1/verify and /v1/rotate
    let good = serde_json::to_string(&sealed_api.get("nswide").await.unwrap()).unwrap();
    assert_eq!(
        http(
            &format!("{}/v1/verify", controller.api),
            "POST",
            Some(&good)
        )
        .await
        .0,
        200
    );
    let bad = serde_json::to_string(&sealed_api.get("tampered").await.unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        http(&format!("{}/v1/verify", controller.api), "POST", Some(&bad))
            .await
            .0,
        409
    );
    let (code, rotated) = http(
        &format!("{}/v1/rotate", controller.api),
        "POST",
        Some(&good),
    )
    .await;
    assert_eq!(code, 200, "{rotated}");
    let rotated: SealedSecret = serde_json::from_str(&rotated).unwrap();
    assert_ne!(
        rotated.spec.encrypted_data["password"],
        serde_json::from_str::<SealedSecret>(&good)
            .unwrap()
            .spec
            .encrypted_data["password"]
    );

    // deleting the SealedSecret collects its Secret
    sealed_api
        .delete("clusterwide", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        || async { secrets.get_opt("clusterwide").await.unwrap().is_none() },
        "Secret collected",
    )
    .await;

    // metrics carry upstream names
    let (_, metrics) = http_get(&format!("{}/metrics", controller.metrics)).await;
    assert!(
        metrics.contains("sealed_secrets_controller_unseal_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "sealed_secrets_controller_unseal_errors_total{namespace=\"default\",reason=\"unseal\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("sealed_secrets_controller_condition_info{"),
        "{metrics}"
    );

    // no plaintext anywhere but the Secrets
    let log = std::fs::read_to_string(&controller.log).unwrap();
    assert!(
        !log.contains(CANARY),
        "the canary reached the controller log"
    );
    assert!(!metrics.contains(CANARY));
    for ss in sealed_api.list(&ListParams::default()).await.unwrap().items {
        assert!(!serde_json::to_string(&ss.status).unwrap().contains(CANARY));
    }
    for e in events.list(&ListParams::default()).await.unwrap().items {
        assert!(!serde_json::to_string(&e).unwrap().contains(CANARY));
    }
}

#[tokio::test]
async fn keys_are_generated_once_and_added_keys_load_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client, controller) = start(dir.path()).await;
    let key_secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let keys = key_secrets
        .list(&ListParams::default().labels("sealedsecrets.bitnami.com/sealed-secrets-key=active"))
        .await
        .unwrap()
        .items;
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert!(k.name_any().starts_with("sealed-secrets-key"));
    assert_eq!(k.type_.as_deref(), Some("kubernetes.io/tls"));
    let first = cert(&controller).await;

    // bring-your-own key: a new labelled Secret becomes the sealing key without a restart
    let params = strongroom_core::sealing::KeyGenParams {
        bits: 2048,
        now: chrono::Utc::now() + chrono::Duration::seconds(5),
        ..Default::default()
    };
    let (key, cert_new) = strongroom_core::sealing::generate_key_and_cert(&params).unwrap();
    let secret = strongroom_sealed_secrets::keys::key_secret(
        "kube-system",
        "sealed-secrets-key",
        &key,
        &cert_new.pem,
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    key_secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    wait_for(
        || async { cert(&controller).await.key.fingerprint() == key.fingerprint() },
        "new key served",
    )
    .await;
    assert_ne!(first.key.fingerprint(), key.fingerprint());

    // SealedSecrets sealed with the old key still unseal
    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    sealed_api
        .create(
            &PostParams::default(),
            &sealed(
                &first,
                SealingScope::Strict,
                "default",
                "old-key",
                &[("a", "b")],
            ),
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    wait_for(
        || async { secrets.get_opt("old-key").await.unwrap().is_some() },
        "old-key Secret",
    )
    .await;
}

fn terminate(controller: &mut Controller) {
    controller.process.signal("TERM");
    let _ = controller.process.child.wait();
}

// terminate() blocks on the child: the in-process API server needs a worker of its own
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_repeats_no_work_and_deleted_secrets_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client, mut controller) = start(dir.path()).await;
    let cert = cert(&controller).await;
    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    sealed_api
        .create(
            &PostParams::default(),
            &sealed(
                &cert,
                SealingScope::Strict,
                "default",
                "steady",
                &[("a", "b")],
            ),
        )
        .await
        .unwrap();
    wait_for(
        || async { secrets.get_opt("steady").await.unwrap().is_some() },
        "Secret",
    )
    .await;
    // drift repair: a deleted Secret is recreated
    secrets
        .delete("steady", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        || async { secrets.get_opt("steady").await.unwrap().is_some() },
        "recreated Secret",
    )
    .await;
    // drift repair: a value edited by hand is put back at once
    secrets
        .patch(
            "steady",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"data": {"a": "ZWRpdGVk"}})),
        )
        .await
        .unwrap();
    wait_for(
        || async { secrets.get("steady").await.unwrap().data.unwrap()["a"].0 == b"b" },
        "edited value restored",
    )
    .await;
    let rv_before = secrets.get("steady").await.unwrap().resource_version();

    // a restarted controller finds the Secret in place and does not write it again
    terminate(&mut controller);
    let calls_before = cluster.requests_by_kind();
    let second = restart(dir.path(), &cluster).await;
    let metrics_url = format!("{}/metrics", second.metrics);
    wait_for(
        || async {
            http_get(&metrics_url)
                .await
                .1
                .contains("sealed_secrets_controller_condition_info{")
        },
        "first reconcile after restart",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        secrets.get("steady").await.unwrap().resource_version(),
        rv_before
    );
    // and makes no per-object API call: no Secret read or write, no status write
    let calls_after = cluster.requests_by_kind();
    for kind in [
        "get secrets",
        "create secrets",
        "patch secrets",
        "update secrets",
        "patch sealedsecrets/status",
    ] {
        let delta = calls_after.get(kind).copied().unwrap_or(0)
            - calls_before.get(kind).copied().unwrap_or(0);
        // reads: the test's own, and the controller's start-up read of the legacy key Secret
        let allowed = if kind == "get secrets" { 2 } else { 0 };
        assert!(delta <= allowed, "{kind}: {delta} calls after the restart");
    }
}

#[tokio::test]
async fn immutable_secrets_report_a_clear_error_instead_of_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client, controller) = start(dir.path()).await;
    let cert = cert(&controller).await;
    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let mut ss = sealed(
        &cert,
        SealingScope::Strict,
        "default",
        "frozen",
        &[("a", "1")],
    );
    ss.spec.template.as_mut().unwrap().immutable = Some(true);
    sealed_api
        .create(&PostParams::default(), &ss)
        .await
        .unwrap();
    wait_for(
        || async { secrets.get_opt("frozen").await.unwrap().is_some() },
        "immutable Secret",
    )
    .await;
    assert_eq!(secrets.get("frozen").await.unwrap().immutable, Some(true));
    let mut changed = sealed(
        &cert,
        SealingScope::Strict,
        "default",
        "frozen",
        &[("a", "2")],
    );
    changed.spec.template.as_mut().unwrap().immutable = Some(true);
    changed.metadata.resource_version = sealed_api
        .get("frozen")
        .await
        .unwrap()
        .metadata
        .resource_version;
    sealed_api
        .replace("frozen", &PostParams::default(), &changed)
        .await
        .unwrap();
    wait_for(
        || async {
            synced(&sealed_api.get("frozen").await.unwrap()).is_some_and(|(s, _)| s == "False")
        },
        "Synced=False",
    )
    .await;
    let (_, msg) = synced(&sealed_api.get("frozen").await.unwrap()).unwrap();
    assert!(
        msg.contains("is immutable") && msg.contains("delete it"),
        "{msg}"
    );
    assert_eq!(
        secrets.get("frozen").await.unwrap().data.unwrap()["a"].0,
        b"1",
        "the stored value is kept"
    );
}

async fn synced_to(api: &Api<SealedSecret>, name: &str, want: &str) -> String {
    wait_for(
        || async {
            api.get_opt(name)
                .await
                .unwrap()
                .and_then(|s| synced(&s))
                .is_some_and(|(s, _)| s == want)
        },
        &format!("{name} Synced={want}"),
    )
    .await;
    synced(&api.get(name).await.unwrap()).unwrap().1
}

#[tokio::test]
async fn templates_and_replace_and_patch_modes_follow_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client, controller) = start(dir.path()).await;
    let cert = cert(&controller).await;
    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");

    // template.data is rendered with Go templates over the items
    let mut ss = sealed(
        &cert,
        SealingScope::Strict,
        "default",
        "dsn",
        &[("user", "app"), ("password", CANARY)],
    );
    ss.spec.template.as_mut().unwrap().data = Some(
        [(
            "url".to_string(),
            "postgres://{{ .user }}:{{ .password | urlquery }}@db/{{ \"app\" | upper }}"
                .to_string(),
        )]
        .into(),
    );
    sealed_api
        .create(&PostParams::default(), &ss)
        .await
        .unwrap();
    synced_to(&sealed_api, "dsn", "True").await;
    let data = secrets.get("dsn").await.unwrap().data.unwrap();
    assert_eq!(
        data["url"].0,
        format!("postgres://app:{CANARY}@db/APP").as_bytes()
    );
    // /v1/rotate re-encrypts the items and keeps the template a template
    let current = serde_json::to_string(&sealed_api.get("dsn").await.unwrap()).unwrap();
    let (code, rotated) = http(
        &format!("{}/v1/rotate", controller.api),
        "POST",
        Some(&current),
    )
    .await;
    assert_eq!(code, 200, "{rotated}");
    let rotated: SealedSecret = serde_json::from_str(&rotated).unwrap();
    assert_eq!(
        rotated.spec.encrypted_data.keys().collect::<Vec<_>>(),
        ["password", "user"]
    );
    assert!(
        rotated.spec.template.unwrap().data.unwrap()["url"].contains("{{ .user }}"),
        "template kept"
    );
    // a template that fails names the key, writes nothing and leaks nothing
    let mut bad = sealed(
        &cert,
        SealingScope::Strict,
        "default",
        "bad-template",
        &[("password", CANARY)],
    );
    bad.spec.template.as_mut().unwrap().data =
        // fails in Go too (`atoi` of a non-number gives 0 there), quoting the value: scrubbed
        Some([("n".to_string(), "{{ fail (printf \"bad %s\" .password) }}".to_string())].into());
    sealed_api
        .create(&PostParams::default(), &bad)
        .await
        .unwrap();
    let msg = synced_to(&sealed_api, "bad-template", "False").await;
    assert!(msg.contains("template") && msg.contains("\"n\""), "{msg}");
    assert!(!msg.contains(CANARY), "{msg}");
    assert!(secrets.get_opt("bad-template").await.unwrap().is_none());

    // replace mode (managed: "true"): keys and labels added by hand are replaced away
    let managed: Secret = serde_json::from_value(json!({"metadata": {"name": "managed",
        "annotations": {"sealedsecrets.bitnami.com/managed": "true"}, "labels": {"by-hand": "x"}},
        "stringData": {"stale": "old", "a": "0"}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &managed)
        .await
        .unwrap();
    let mut ss = sealed(
        &cert,
        SealingScope::Strict,
        "default",
        "managed",
        &[("a", "1")],
    );
    ss.spec
        .template
        .as_mut()
        .unwrap()
        .metadata
        .as_mut()
        .unwrap()
        .annotations = Some(
        [(
            "sealedsecrets.bitnami.com/managed".to_string(),
            "true".to_string(),
        )]
        .into(),
    );
    sealed_api
        .create(&PostParams::default(), &ss)
        .await
        .unwrap();
    synced_to(&sealed_api, "managed", "True").await;
    let s = secrets.get("managed").await.unwrap();
    let data = s.data.as_ref().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(data["a"].0, b"1");
    assert!(!s.labels().contains_key("by-hand"));
    assert_eq!(s.labels()["app"], "web");

    // patch mode: keys are merged one by one, the rest is kept
    let patched: Secret = serde_json::from_value(json!({"metadata": {"name": "patched",
        "annotations": {"sealedsecrets.bitnami.com/patch": "true"}, "labels": {"by-hand": "x"}},
        "stringData": {"keep": "me", "a": "0"}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &patched)
        .await
        .unwrap();
    sealed_api
        .create(
            &PostParams::default(),
            &sealed(
                &cert,
                SealingScope::Strict,
                "default",
                "patched",
                &[("a", "1")],
            ),
        )
        .await
        .unwrap();
    synced_to(&sealed_api, "patched", "True").await;
    let s = secrets.get("patched").await.unwrap();
    let data = s.data.as_ref().unwrap();
    assert_eq!(
        (data["keep"].0.as_slice(), data["a"].0.as_slice()),
        (&b"me"[..], &b"1"[..])
    );
    assert_eq!(
        (s.labels()["by-hand"].as_str(), s.labels()["app"].as_str()),
        ("x", "web")
    );
    assert!(
        s.owner_references().is_empty(),
        "patch without managed adds no owner"
    );
    let log = std::fs::read_to_string(&controller.log).unwrap();
    assert!(
        !log.contains(CANARY),
        "the canary reached the controller log"
    );
}

#[tokio::test]
async fn additional_namespaces_narrow_the_watch_as_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client, controller) = start_with_values(
        dir.path(),
        &[
            "--all-namespaces=false",
            "--additional-namespaces",
            "team-a,missing",
        ],
        &["team-a", "team-b"],
        &["--set", "additionalNamespaces={team-a,missing}"],
    )
    .await;
    let cert = cert(&controller).await;
    for ns in ["team-a", "team-b", "kube-system"] {
        let api: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
        api.create(
            &PostParams::default(),
            &sealed(&cert, SealingScope::Strict, ns, "app", &[("a", "1")]),
        )
        .await
        .unwrap();
    }
    for ns in ["team-a", "kube-system"] {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        wait_for(
            || async { secrets.get_opt("app").await.unwrap().is_some() },
            &format!("Secret in {ns}"),
        )
        .await;
    }
    // team-b is not watched: after the others are done, it still has no Secret and no status
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b: Api<Secret> = Api::namespaced(client.clone(), "team-b");
    assert!(b.get_opt("app").await.unwrap().is_none());
    let b: Api<SealedSecret> = Api::namespaced(client.clone(), "team-b");
    assert!(b.get("app").await.unwrap().status.is_none());
    // the chart's namespaced Roles give no right to read Namespaces: the controller says it
    // cannot check the missing one and watches it anyway (with the right, it would skip it)
    let log = std::fs::read_to_string(&controller.log).unwrap();
    assert!(
        log.contains("cannot check additional namespace") && log.contains("\"missing\""),
        "{log}"
    );
}

#[tokio::test]
async fn old_gc_behavior_deletes_secrets_without_owner_references() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client, controller) = start_with_values(
        dir.path(),
        &["--old-gc-behavior=true"],
        &[],
        &["--set", "extraArgs={--old-gc-behavior=true}"],
    )
    .await;
    let cert = cert(&controller).await;
    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    // a Secret without an ownerReference (skip-set-owner-references + managed, as upstream
    // documents), and a patch-mode Secret that was someone else's first
    let mut loose = sealed(
        &cert,
        SealingScope::Strict,
        "default",
        "loose",
        &[("a", "1")],
    );
    loose
        .spec
        .template
        .as_mut()
        .unwrap()
        .metadata
        .as_mut()
        .unwrap()
        .annotations = Some(
        [
            (
                "sealedsecrets.bitnami.com/skip-set-owner-references".to_string(),
                "true".to_string(),
            ),
            (
                "sealedsecrets.bitnami.com/managed".to_string(),
                "true".to_string(),
            ),
        ]
        .into(),
    );
    sealed_api
        .create(&PostParams::default(), &loose)
        .await
        .unwrap();
    let shared: Secret = serde_json::from_value(json!({"metadata": {"name": "shared",
        "annotations": {"sealedsecrets.bitnami.com/patch": "true"}}, "stringData": {"keep": "me"}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &shared)
        .await
        .unwrap();
    sealed_api
        .create(
            &PostParams::default(),
            &sealed(
                &cert,
                SealingScope::Strict,
                "default",
                "shared",
                &[("a", "1")],
            ),
        )
        .await
        .unwrap();
    synced_to(&sealed_api, "loose", "True").await;
    synced_to(&sealed_api, "shared", "True").await;
    assert!(
        secrets
            .get("loose")
            .await
            .unwrap()
            .owner_references()
            .is_empty()
    );

    for name in ["loose", "shared"] {
        sealed_api
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    wait_for(
        || async { secrets.get_opt("loose").await.unwrap().is_none() },
        "Secret deleted with its SealedSecret",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kept = secrets.get("shared").await.unwrap();
    assert_eq!(
        kept.data.unwrap()["keep"].0,
        b"me",
        "patch-mode Secret kept"
    );
}

#[tokio::test]
async fn an_unreadable_sealed_secret_is_reported_and_does_not_stall_the_others() {
    use kube::api::{ApiResource, DynamicObject};
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, client, controller) = start(dir.path()).await;
    let cert = cert(&controller).await;
    // the API server keeps unknown fields under template.metadata, so a numeric label passes
    let resource = ApiResource::erase::<SealedSecret>(&());
    let raw: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let mut bad = serde_json::to_value(sealed(
        &cert,
        SealingScope::Strict,
        "default",
        "bad-labels",
        &[("a", "1")],
    ))
    .unwrap();
    bad["spec"]["template"]["metadata"]["labels"] = json!({"app": 5});
    raw.create(
        &PostParams::default(),
        &serde_json::from_value(bad).unwrap(),
    )
    .await
    .unwrap();
    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), "default");
    sealed_api
        .create(
            &PostParams::default(),
            &sealed(
                &cert,
                SealingScope::Strict,
                "default",
                "good",
                &[("a", "1")],
            ),
        )
        .await
        .unwrap();
    synced_to(&sealed_api, "good", "True").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    assert!(secrets.get_opt("good").await.unwrap().is_some());
    // the bad one: Synced=False naming the problem, a Warning event, no Secret
    wait_for(
        || async {
            raw.get("bad-labels")
                .await
                .unwrap()
                .data
                .pointer("/status/conditions/0/message")
                .and_then(Value::as_str)
                .is_some_and(|m| m.contains("cannot be read"))
        },
        "bad-labels Synced=False",
    )
    .await;
    assert!(secrets.get_opt("bad-labels").await.unwrap().is_none());
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    wait_for(
        || async {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                            == Some("bad-labels")
                })
        },
        "Warning event for bad-labels",
    )
    .await;
    let log = std::fs::read_to_string(&controller.log).unwrap();
    assert!(log.contains("invalid SealedSecret skipped") && log.contains("default/bad-labels"));
}
