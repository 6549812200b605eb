//! End to end: the `reloader` binary against devcluster. Each annotation mode and strategy,
//! every workload kind it rolls, changes that must roll nothing, a burst that rolls once,
//! restarts with and without changes while down, and workloads upstream already rolled.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use strongroom_testkit::{
    CANARY, DevCluster, Process, chart_rbac_kubeconfig, free_port, http_get, http_try,
    start_cluster_with_rbac, wait_for,
};

struct Reloader {
    process: Process,
    url: String,
}

/// The values of the devcluster install.
const INSTALL_VALUES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/chart/install.yaml"
);

/// The chart values (`--set`) that turn on the features `args` use, so the chart grants what
/// they need and nothing else: HA, Argo Rollouts, CSI and namespace selection.
fn chart_values_for(args: &[&str]) -> String {
    let mut values = Vec::new();
    for arg in args {
        let (flag, value) = arg.split_once('=').unwrap_or((arg, "true"));
        match flag {
            "--enable-ha" => values.push(format!("reloader.enableHA={value}")),
            "--is-Argo-Rollouts" => values.push(format!("reloader.isArgoRollouts={value}")),
            "--enable-csi-integration" => {
                values.push(format!("reloader.enableCSIIntegration={value}"))
            }
            "--namespace-selector" => values.push(format!(
                "reloader.namespaceSelector={}",
                value.replace(',', "\\,")
            )),
            _ => {}
        }
    }
    values.join(",")
}

async fn start_reloader(dir: &Path, cluster: &DevCluster, args: &[&str]) -> Reloader {
    start_reloader_with_env(dir, cluster, args, &[]).await
}

async fn start_reloader_with_env(
    dir: &Path,
    cluster: &DevCluster,
    args: &[&str],
    extra_env: &[(&str, String)],
) -> Reloader {
    // as the chart's ServiceAccount, under the RBAC the chart renders for these flags
    let kubeconfig = dir.join("kubeconfig");
    let values = chart_values_for(args);
    let mut helm_args = vec!["-f", INSTALL_VALUES];
    if !values.is_empty() {
        helm_args.extend(["--set", &values]);
    }
    chart_rbac_kubeconfig(
        cluster,
        "reloader",
        "reloader",
        "kube-system",
        &helm_args,
        &kubeconfig,
    )
    .await;
    let port = free_port();
    let mut argv: Vec<String> = vec![
        format!("--listen-addr=127.0.0.1:{port}"),
        "--coalesce-window=1s".into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let mut env = vec![
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("POD_NAMESPACE", "kube-system".into()),
        ("RUST_LOG", "debug".into()),
    ];
    env.extend(extra_env.iter().cloned());
    let process = Process::spawn(
        env!("CARGO_BIN_EXE_reloader"),
        &argv,
        &env,
        dir.join(format!("reloader-{port}.log")),
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_for(
        || async { http_try(&format!("{url}/readyz")).await == Some(200) },
        "reloader ready",
    )
    .await;
    Reloader { process, url }
}

async fn secret(client: &Client, name: &str, data: &[(&str, &str)], annotations: Value) {
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "stringData": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

async fn set_secret(client: &Client, name: &str, data: &[(&str, &str)]) {
    let patch = json!({"stringData": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()});
    Api::<Secret>::namespaced(client.clone(), "default")
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

fn pod_template(container: Value) -> Value {
    json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [container],
        "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}]}})
}

async fn deployment(client: &Client, name: &str, annotations: Value, container: Value) {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": pod_template(container)}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
}

async fn template_of(client: &Client, name: &str) -> (i64, Value) {
    let d = Api::<Deployment>::namespaced(client.clone(), "default")
        .get(name)
        .await
        .unwrap();
    (
        d.metadata.generation.unwrap_or(0),
        serde_json::to_value(d.spec.template).unwrap(),
    )
}

fn env_value(template: &Value, var: &str) -> Option<String> {
    template["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
        .find(|e| e["name"] == var)
        .and_then(|e| e["value"].as_str().map(str::to_string))
}

fn sha1_of(entries: &[&str]) -> String {
    // upstream's format: sorted `k=v` joined by `;`
    let mut e: Vec<&str> = entries.to_vec();
    e.sort();
    use sha1::Digest;
    sha1::Sha1::digest(e.join(";").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn uses_db() -> Value {
    json!({"name": "app", "image": "x", "envFrom": [{"secretRef": {"name": "db"}}],
        "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_rolls_each_kind_once_per_burst_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&[], &[]).await;
    secret(&client, "db", &[("password", "one")], json!({})).await;
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}})).unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let auto = json!({"reloader.stakater.com/auto": "true"});
    deployment(&client, "web", auto.clone(), uses_db()).await;
    deployment(&client, "unannotated", json!({}), uses_db()).await;
    deployment(
        &client,
        "cm-only",
        json!({"configmap.reloader.stakater.com/auto": "true"}),
        uses_db(),
    )
    .await;
    for (kind, body) in [
        (
            "daemonset",
            json!({"metadata": {"name": "agent", "annotations": auto}, "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": pod_template(uses_db())}}),
        ),
        (
            "statefulset",
            json!({"metadata": {"name": "store", "annotations": auto}, "spec": {"serviceName": "s", "selector": {"matchLabels": {"app": "x"}}, "template": pod_template(uses_db())}}),
        ),
        (
            "cronjob",
            json!({"metadata": {"name": "nightly", "annotations": auto}, "spec": {"schedule": "@daily", "suspend": true, "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [uses_db()]}}}}}}),
        ),
    ] {
        match kind {
            "daemonset" => {
                Api::<DaemonSet>::namespaced(client.clone(), "default")
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(body).unwrap(),
                    )
                    .await
                    .unwrap();
            }
            "statefulset" => {
                Api::<StatefulSet>::namespaced(client.clone(), "default")
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(body).unwrap(),
                    )
                    .await
                    .unwrap();
            }
            _ => {
                Api::<CronJob>::namespaced(client.clone(), "default")
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(body).unwrap(),
                    )
                    .await
                    .unwrap();
            }
        }
    }
    let reloader = start_reloader(dir.path(), &cluster, &[]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (gen0, t0) = template_of(&client, "web").await;
    assert_eq!(
        env_value(&t0, "STAKATER_DB_SECRET"),
        None,
        "start-up rolls nothing"
    );

    // a change of the Secret: the workloads that use it and opted in roll
    set_secret(&client, "db", &[("password", CANARY)]).await;
    let want = sha1_of(&[&format!("password={CANARY}")]);
    wait_for(
        || async {
            env_value(&template_of(&client, "web").await.1, "STAKATER_DB_SECRET").as_deref()
                == Some(want.as_str())
        },
        "web rolled with upstream's hash",
    )
    .await;
    let (gen1, _) = template_of(&client, "web").await;
    assert_eq!(gen1, gen0 + 1);
    // the workloads are written one after another: wait for the last of them
    wait_for(
        || async {
            let cron = Api::<CronJob>::namespaced(client.clone(), "default")
                .get("nightly")
                .await
                .unwrap();
            let template =
                serde_json::to_value(&cron).unwrap()["spec"]["jobTemplate"]["spec"]["template"]
                    .clone();
            env_value(&template, "STAKATER_DB_SECRET").as_deref() == Some(want.as_str())
        },
        "every opted-in kind rolled",
    )
    .await;
    let ds = Api::<DaemonSet>::namespaced(client.clone(), "default")
        .get("agent")
        .await
        .unwrap();
    assert_eq!(
        env_value(
            &serde_json::to_value(ds.spec.template).unwrap(),
            "STAKATER_DB_SECRET"
        )
        .as_deref(),
        Some(want.as_str())
    );
    let sts = Api::<StatefulSet>::namespaced(client.clone(), "default")
        .get("store")
        .await
        .unwrap();
    assert_eq!(
        env_value(
            &serde_json::to_value(sts.spec.template).unwrap(),
            "STAKATER_DB_SECRET"
        )
        .as_deref(),
        Some(want.as_str())
    );
    let cron = Api::<CronJob>::namespaced(client.clone(), "default")
        .get("nightly")
        .await
        .unwrap();
    let spec = cron.spec;
    assert_eq!(
        spec.suspend,
        Some(true),
        "a suspended CronJob stays suspended"
    );
    assert_eq!(
        env_value(
            &serde_json::to_value(spec.job_template.spec.unwrap().template).unwrap(),
            "STAKATER_DB_SECRET"
        )
        .as_deref(),
        Some(want.as_str()),
        "the CronJob's job template is patched"
    );
    assert_eq!(
        env_value(
            &template_of(&client, "unannotated").await.1,
            "STAKATER_DB_SECRET"
        ),
        None
    );
    assert_eq!(
        env_value(
            &template_of(&client, "cm-only").await.1,
            "STAKATER_DB_SECRET"
        ),
        None,
        "typed auto of the other kind"
    );

    // a label-only change and a no-op rewrite roll nothing
    Api::<Secret>::namespaced(client.clone(), "default")
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    set_secret(&client, "db", &[("password", CANARY)]).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        template_of(&client, "web").await.0,
        gen1,
        "no data change, no rollout"
    );

    // a burst of 20 changes to the Secret and the ConfigMap within the window: one rollout
    for i in 0..20 {
        if i % 2 == 0 {
            set_secret(&client, "db", &[("password", &format!("burst-{i}"))]).await;
        } else {
            Api::<ConfigMap>::namespaced(client.clone(), "default")
                .patch(
                    "cfg",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"data": {"a": format!("{i}")}})),
                )
                .await
                .unwrap();
        }
    }
    let last = sha1_of(&["password=burst-18"]);
    wait_for(
        || async {
            env_value(&template_of(&client, "web").await.1, "STAKATER_DB_SECRET").as_deref()
                == Some(last.as_str())
        },
        "web rolled after the burst",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (gen2, t2) = template_of(&client, "web").await;
    assert_eq!(gen2, gen1 + 1, "twenty changes, one rollout");
    assert!(
        env_value(&t2, "STAKATER_CFG_CONFIGMAP").is_some(),
        "both sources in the one patch"
    );

    // metrics and events as upstream names them; the canary appears nowhere
    let metrics = http_get(&format!("{}/metrics", reloader.url)).await.1;
    for want in [
        "reloader_reload_executed_total{success=\"true\"}",
        "reloader_reload_executed_total{success=\"false\"} 0",
        "reloader_action_total{result=\"success\",workload_kind=\"Deployment\"}",
        "reloader_skipped_total{reason=\"no_data_change\"}",
        "reloader_events_received_total{event_type=\"update\",resource_type=\"secrets\"}",
    ] {
        assert!(metrics.contains(want), "missing {want}:\n{metrics}");
    }
    let events = Api::<Event>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap();
    let reloaded: Vec<&Event> = events
        .items
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some("Reloaded")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web")
        })
        .collect();
    assert!(!reloaded.is_empty());
    assert!(
        reloaded[0]
            .note
            .as_deref()
            .unwrap()
            .contains("Changes detected in 'db' of type 'SECRET' in namespace 'default'")
    );
    let everything = format!(
        "{}{}{:?}",
        reloader.process.log_text(),
        metrics,
        events.items
    );
    strongroom_testkit::assert_no_canary(&[], &[("logs, metrics and events", &everything)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_search_ignore_exclude_and_the_annotations_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&[], &[]).await;
    secret(&client, "db-main", &[("k", "1")], json!({})).await;
    secret(
        &client,
        "matched",
        &[("k", "1")],
        json!({"reloader.stakater.com/match": "true"}),
    )
    .await;
    secret(
        &client,
        "ignored",
        &[("k", "1")],
        json!({"reloader.stakater.com/ignore": "true"}),
    )
    .await;
    let none = json!({"name": "app", "image": "x",
        "envFrom": [{"secretRef": {"name": "matched"}}, {"secretRef": {"name": "ignored"}}]});
    deployment(
        &client,
        "named",
        json!({"secret.reloader.stakater.com/reload": "db-.*"}),
        json!({"name": "app", "image": "x"}),
    )
    .await;
    deployment(
        &client,
        "search",
        json!({"reloader.stakater.com/search": "true"}),
        none.clone(),
    )
    .await;
    deployment(
        &client,
        "auto",
        json!({"reloader.stakater.com/auto": "true",
        "secrets.exclude.reloader.stakater.com/reload": "matched"}),
        none,
    )
    .await;
    let _reloader = start_reloader(dir.path(), &cluster, &["--reload-strategy=annotations"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for name in ["db-main", "matched", "ignored"] {
        set_secret(&client, name, &[("k", "2")]).await;
    }
    let annotation = |t: &Value| {
        t["metadata"]["annotations"]["reloader.stakater.com/last-reloaded-from"]
            .as_str()
            .map(str::to_string)
    };
    wait_for(
        || async { annotation(&template_of(&client, "named").await.1).is_some() },
        "named reload",
    )
    .await;
    wait_for(
        || async { annotation(&template_of(&client, "search").await.1).is_some() },
        "search + match reload",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let named: Value =
        serde_json::from_str(&annotation(&template_of(&client, "named").await.1).unwrap()).unwrap();
    assert_eq!(named["type"], "SECRET");
    assert_eq!(named["name"], "db-main");
    assert_eq!(named["hash"], sha1_of(&["k=2"]));
    assert_eq!(
        named["containerRefs"],
        json!(["app"]),
        "named mode without a reference: the first container"
    );
    let search: Value =
        serde_json::from_str(&annotation(&template_of(&client, "search").await.1).unwrap())
            .unwrap();
    assert_eq!(search["name"], "matched");
    assert_eq!(
        template_of(&client, "auto").await.0,
        1,
        "excluded and ignored sources roll nothing"
    );
    // the applied hashes are recorded on the workload's metadata, so a restart knows them
    let d = Api::<Deployment>::namespaced(client.clone(), "default")
        .get("search")
        .await
        .unwrap();
    let applied = &d.metadata.annotations.unwrap()["reloader.strongroom.dev/applied-hashes"];
    assert!(applied.contains("secret/matched"), "{applied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_roll_only_what_changed_while_down_and_upstreams_workloads_do_not_roll() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&[], &[]).await;
    secret(&client, "db", &[("password", "one")], json!({})).await;
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}})).unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    // rolled by upstream before the switch: its variable holds upstream's hash of today's data
    let mut rolled_by_upstream = uses_db();
    rolled_by_upstream["env"] =
        json!([{"name": "STAKATER_DB_SECRET", "value": sha1_of(&["password=one"])}]);
    deployment(
        &client,
        "migrated",
        json!({"reloader.stakater.com/auto": "true"}),
        rolled_by_upstream,
    )
    .await;
    deployment(
        &client,
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
        uses_db(),
    )
    .await;
    let mut first = start_reloader(dir.path(), &cluster, &[]).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        template_of(&client, "migrated").await.0,
        1,
        "the switch rolls nothing"
    );
    set_secret(&client, "db", &[("password", "two")]).await;
    let two = sha1_of(&["password=two"]);
    for name in ["web", "migrated"] {
        wait_for(
            || async {
                env_value(&template_of(&client, name).await.1, "STAKATER_DB_SECRET").as_deref()
                    == Some(two.as_str())
            },
            "rolled",
        )
        .await;
    }

    // restart without changes: nothing rolls, no workload is written
    first.process.signal("TERM");
    assert!(
        first
            .process
            .wait_exit(Duration::from_secs(5))
            .await
            .unwrap()
            .success()
    );
    let patches_before = cluster
        .requests_by_kind()
        .get("patch deployments")
        .copied()
        .unwrap_or(0);
    let mut second = start_reloader(dir.path(), &cluster, &[]).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        cluster
            .requests_by_kind()
            .get("patch deployments")
            .copied()
            .unwrap_or(0),
        patches_before
    );

    // a change while it is down: the next start rolls those workloads once
    second.process.signal("TERM");
    assert!(
        second
            .process
            .wait_exit(Duration::from_secs(5))
            .await
            .unwrap()
            .success()
    );
    set_secret(&client, "db", &[("password", "three")]).await;
    let (gen_before, _) = template_of(&client, "web").await;
    let _third = start_reloader(dir.path(), &cluster, &[]).await;
    let three = sha1_of(&["password=three"]);
    wait_for(
        || async {
            env_value(&template_of(&client, "web").await.1, "STAKATER_DB_SECRET").as_deref()
                == Some(three.as_str())
        },
        "caught up after the restart",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(template_of(&client, "web").await.0, gen_before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_on_create_and_delete_and_two_replicas_with_ha() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&[], &[]).await;
    deployment(
        &client,
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
        uses_db(),
    )
    .await;
    let ha = [
        "--enable-ha",
        "--reload-on-create=true",
        "--reload-on-delete=true",
        "--leader-election-lease-duration=3s",
        "--leader-election-renew-deadline=2s",
        "--leader-election-retry-period=200ms",
    ];
    let mut a = start_reloader(dir.path(), &cluster, &ha).await;
    let b = start_reloader(dir.path(), &cluster, &ha).await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-system");
    wait_for(
        || async {
            leases
                .get_opt("stakater-reloader-lock")
                .await
                .unwrap()
                .is_some()
        },
        "the Lease upstream names",
    )
    .await;
    // the first replica leads; its watches have listed before the Secret appears
    a.process.wait_for_log("every watch listed").await;
    // the Secret the Deployment waits for is created: with reload-on-create it rolls
    secret(&client, "db", &[("password", "one")], json!({})).await;
    let one = sha1_of(&["password=one"]);
    wait_for(
        || async {
            env_value(&template_of(&client, "web").await.1, "STAKATER_DB_SECRET").as_deref()
                == Some(one.as_str())
        },
        "rolled on create",
    )
    .await;
    // the leader stops; the other replica takes over and handles the next change
    a.process.signal("TERM");
    assert!(
        a.process
            .wait_exit(Duration::from_secs(5))
            .await
            .unwrap()
            .success()
    );
    set_secret(&client, "db", &[("password", "two")]).await;
    let two = sha1_of(&["password=two"]);
    wait_for(
        || async {
            env_value(&template_of(&client, "web").await.1, "STAKATER_DB_SECRET").as_deref()
                == Some(two.as_str())
        },
        "the new leader rolls",
    )
    .await;
    // deleted: the variable goes (a rollout, as upstream)
    Api::<Secret>::namespaced(client.clone(), "default")
        .delete("db", &Default::default())
        .await
        .unwrap();
    wait_for(
        || async {
            env_value(&template_of(&client, "web").await.1, "STAKATER_DB_SECRET").is_none()
        },
        "variable removed on delete",
    )
    .await;
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_rollouts_are_rolled_as_untyped_objects() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&[], &[]).await;
    // a minimal Rollout CRD: the reloader reads Rollouts untyped and needs no schema
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_json::from_value(json!({
            "metadata": {"name": "rollouts.argoproj.io"},
            "spec": {"group": "argoproj.io", "scope": "Namespaced",
                "names": {"plural": "rollouts", "singular": "rollout", "kind": "Rollout", "listKind": "RolloutList"},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        }))
        .unwrap();
    Api::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    secret(&client, "db", &[("password", "one")], json!({})).await;
    let rollouts = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        "default",
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"),
            "rollouts",
        ),
    );
    let rollout: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "canary", "namespace": "default", "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}]}}, "template": {"spec": {"containers": [
            {"name": "app", "image": "x", "env": [{"name": "KEEP", "value": "me"}], "envFrom": [{"secretRef": {"name": "db"}}]},
            {"name": "side", "image": "y"}]}}}
    }))
    .unwrap();
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .unwrap();
    // rollout-strategy: restart rolls by spec.restartAt and leaves the template alone
    let restarter: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "restarter", "namespace": "default", "annotations": {
            "reloader.stakater.com/auto": "true", "reloader.stakater.com/rollout-strategy": "restart"}},
        "spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "x", "envFrom": [{"secretRef": {"name": "db"}}]}]}}}
    }))
    .unwrap();
    rollouts
        .create(&PostParams::default(), &restarter)
        .await
        .unwrap();
    let reloader = start_reloader(dir.path(), &cluster, &["--is-Argo-Rollouts=true"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    set_secret(&client, "db", &[("password", "two")]).await;
    let two = sha1_of(&["password=two"]);
    wait_for(
        || async {
            let r = rollouts.get("canary").await.unwrap();
            env_value(&r.data["spec"]["template"], "STAKATER_DB_SECRET").as_deref()
                == Some(two.as_str())
        },
        "the Rollout's template carries the hash",
    )
    .await;
    let r = rollouts.get("canary").await.unwrap();
    let containers = r.data["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(containers.len(), 2, "the other container is kept");
    assert_eq!(
        env_value(&r.data["spec"]["template"], "KEEP").as_deref(),
        Some("me"),
        "other variables are kept"
    );
    assert_eq!(
        r.data["spec"]["strategy"]["canary"]["steps"][0]["setWeight"],
        20
    );

    wait_for(
        || async {
            let r = rollouts.get("restarter").await.unwrap();
            r.data["spec"]["restartAt"].is_string()
        },
        "the restart-strategy Rollout gets spec.restartAt",
    )
    .await;
    let r = rollouts.get("restarter").await.unwrap();
    assert_eq!(
        env_value(&r.data["spec"]["template"], "STAKATER_DB_SECRET"),
        None,
        "a restart leaves the template alone"
    );
    let restart_at = r.data["spec"]["restartAt"].clone();
    let applied =
        kube::ResourceExt::annotations(&r)["reloader.strongroom.dev/applied-hashes"].clone();
    assert!(applied.contains(&two), "the hash is recorded: {applied}");
    // a restart of the reloader restarts nothing again (upstream's does, #1089)
    drop(reloader);
    let _reloader = start_reloader(dir.path(), &cluster, &["--is-Argo-Rollouts=true"]).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = rollouts.get("restarter").await.unwrap();
    assert_eq!(
        r.data["spec"]["restartAt"], restart_at,
        "not restarted again"
    );
}

fn job_spec(container: Value) -> Value {
    json!({"template": {"metadata": {"labels": {"app": "x"}},
        "spec": {"restartPolicy": "Never", "containers": [container]}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_made_again_and_cronjobs_run_now_when_asked() {
    use k8s_openapi::api::batch::v1::Job;
    use kube::ResourceExt;
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&[], &[]).await;
    secret(&client, "db", &[("password", "one")], json!({})).await;
    let container =
        json!({"name": "task", "image": "x", "envFrom": [{"secretRef": {"name": "db"}}]});
    let auto = json!({"reloader.stakater.com/auto": "true"});
    let jobs = Api::<Job>::namespaced(client.clone(), "default");
    let crons = Api::<CronJob>::namespaced(client.clone(), "default");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "migrate", "annotations": auto, "labels": {"app": "m"}},
        "spec": job_spec(container.clone())
    }))
    .unwrap();
    let old_uid = jobs
        .create(&PostParams::default(), &job)
        .await
        .unwrap()
        .uid()
        .unwrap();
    let cron: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "nightly", "annotations": auto},
        "spec": {"schedule": "0 1 * * *", "suspend": true,
            "jobTemplate": {"metadata": {"labels": {"team": "a"}}, "spec": job_spec(container.clone())}}
    }))
    .unwrap();
    let cron_uid = crons
        .create(&PostParams::default(), &cron)
        .await
        .unwrap()
        .uid()
        .unwrap();
    // a Job the CronJob ran: rolled through its CronJob, never made again by itself
    let child: Job = serde_json::from_value(json!({
        "metadata": {"name": "nightly-1", "annotations": auto, "ownerReferences": [{"apiVersion": "batch/v1",
            "kind": "CronJob", "name": "nightly", "uid": cron_uid, "controller": true}]},
        "spec": job_spec(container.clone())
    }))
    .unwrap();
    let child_uid = jobs
        .create(&PostParams::default(), &child)
        .await
        .unwrap()
        .uid()
        .unwrap();

    let args = ["--cronjob-reload=run-now"];
    let reloader = start_reloader(dir.path(), &cluster, &args).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    set_secret(&client, "db", &[("password", "two")]).await;
    let two = sha1_of(&["password=two"]);
    let var_of = |j: &Job| {
        env_value(
            &serde_json::to_value(j).unwrap()["spec"]["template"],
            "STAKATER_DB_SECRET",
        )
    };
    wait_for(
        || async {
            jobs.get_opt("migrate")
                .await
                .unwrap()
                .is_some_and(|j| var_of(&j).as_deref() == Some(two.as_str()))
        },
        "the Job made again with the hash",
    )
    .await;
    let migrate = jobs.get("migrate").await.unwrap();
    assert_ne!(
        migrate.uid().unwrap(),
        old_uid,
        "a new Job under the same name"
    );
    assert_eq!(migrate.labels()["app"], "m");

    let run_now = || async {
        jobs.list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|j| {
                j.annotations().get("cronjob.kubernetes.io/instantiate") == Some(&"manual".into())
            })
            .collect::<Vec<_>>()
    };
    wait_for(
        || async { !run_now().await.is_empty() },
        "a Job run now from the CronJob",
    )
    .await;
    let made = run_now().await;
    assert_eq!(made.len(), 1);
    assert!(made[0].name_any().starts_with("nightly-"));
    assert_eq!(var_of(&made[0]).as_deref(), Some(two.as_str()));
    assert_eq!(made[0].labels()["team"], "a");
    assert_eq!(made[0].owner_references()[0].uid, cron_uid);
    let cron = crons.get("nightly").await.unwrap();
    assert!(
        cron.annotations()["reloader.strongroom.dev/applied-hashes"].contains(&two),
        "the CronJob records what it ran"
    );
    let template = serde_json::to_value(&cron).unwrap()["spec"]["jobTemplate"].clone();
    assert_eq!(
        env_value(&template["spec"]["template"], "STAKATER_DB_SECRET"),
        None,
        "run-now leaves the CronJob's template alone"
    );
    assert_eq!(
        jobs.get("nightly-1").await.unwrap().uid().unwrap(),
        child_uid
    );

    // a restart runs nothing again
    drop(reloader);
    let _reloader = start_reloader(dir.path(), &cluster, &args).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(run_now().await.len(), 1, "no second Job after a restart");
    assert_eq!(jobs.get("migrate").await.unwrap().uid(), migrate.uid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_selector_limits_reloads_and_the_meta_info_config_map_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&[], &[]).await;
    for (ns, labels) in [
        ("team-a", json!({"team": "a"})),
        ("team-b", json!({"team": "b"})),
    ] {
        let n: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns, "labels": labels}})).unwrap();
        Api::all(client.clone())
            .create(&PostParams::default(), &n)
            .await
            .unwrap();
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": "db"}, "stringData": {"password": "one"}
        }))
        .unwrap();
        Api::<Secret>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &s)
            .await
            .unwrap();
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "annotations": {"reloader.stakater.com/auto": "true"}},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": pod_template(uses_db())}
        }))
        .unwrap();
        Api::<Deployment>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
    }
    // upstream's legacy form `k:v`
    let _reloader = start_reloader_with_env(
        dir.path(),
        &cluster,
        &["--namespace-selector=team:a"],
        &[
            ("RELOADER_NAMESPACE", "kube-system".into()),
            ("RELOADER_DEPLOYMENT_NAME", "reloader".into()),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for ns in ["team-a", "team-b"] {
        Api::<Secret>::namespaced(client.clone(), ns)
            .patch(
                "db",
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"password": "two"}})),
            )
            .await
            .unwrap();
    }
    let var = |ns: &'static str| {
        let client = client.clone();
        async move {
            let d = Api::<Deployment>::namespaced(client, ns)
                .get("web")
                .await
                .unwrap();
            env_value(
                &serde_json::to_value(&d).unwrap()["spec"]["template"],
                "STAKATER_DB_SECRET",
            )
        }
    };
    wait_for(
        || async { var("team-a").await.is_some() },
        "the selected namespace's Deployment rolled",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        var("team-b").await,
        None,
        "a namespace the selector leaves out rolls nothing"
    );

    let cm = Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
        .get("reloader-meta-info")
        .await
        .unwrap();
    assert_eq!(
        cm.metadata.labels.unwrap()["reloader.stakater.com/meta-info"],
        "reloader"
    );
    let data = cm.data.unwrap();
    let options: Value = serde_json::from_str(&data["reloaderOptions"]).unwrap();
    assert_eq!(options["namespaceSelectors"], json!(["team:a"]));
    assert_eq!(options["reloadStrategy"], "env-vars");
    let deployment: Value = serde_json::from_str(&data["deploymentInfo"]).unwrap();
    assert_eq!(
        deployment,
        json!({"name": "reloader", "namespace": "kube-system"})
    );
    assert!(serde_json::from_str::<Value>(&data["buildInfo"]).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_period_pauses_collects_and_resumes_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&[], &[]).await;
    secret(&client, "db", &[("password", "one")], json!({})).await;
    deployment(
        &client,
        "paused",
        json!({"reloader.stakater.com/auto": "true", "deployment.reloader.stakater.com/pause-period": "4s"}),
        uses_db(),
    )
    .await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), "default");
    let state = || async {
        let d = deployments.get("paused").await.unwrap();
        let at = d
            .metadata
            .annotations
            .unwrap_or_default()
            .get("deployment.reloader.stakater.com/paused-at")
            .cloned();
        (d.spec.paused == Some(true), at)
    };
    let mut first = start_reloader(dir.path(), &cluster, &[]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    set_secret(&client, "db", &[("password", "two")]).await;
    wait_for(|| async { state().await.0 }, "paused by the reload").await;
    assert!(state().await.1.is_some(), "paused-at recorded");
    assert_eq!(
        env_value(
            &template_of(&client, "paused").await.1,
            "STAKATER_DB_SECRET"
        ),
        Some(sha1_of(&["password=two"]))
    );
    // the reloader restarts inside the window: the resume is read back from the Deployment
    first.process.signal("TERM");
    assert!(
        first
            .process
            .wait_exit(Duration::from_secs(5))
            .await
            .unwrap()
            .success()
    );
    let _second = start_reloader(dir.path(), &cluster, &[]).await;
    wait_for(
        || async { state().await == (false, None) },
        "resumed after the period",
    )
    .await;
}

/// A local HTTP receiver standing in for Slack or a webhook endpoint: it answers 200 and
/// hands over each request body.
async fn receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            let _ = tx.send(body[..len].to_string());
                            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_after_reloads_and_the_webhook_instead_of_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&[], &[]).await;
    secret(&client, "db", &[("password", "one")], json!({})).await;
    deployment(
        &client,
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
        uses_db(),
    )
    .await;
    // alerts to a Slack-shaped receiver
    let (slack, mut alerts) = receiver().await;
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let port = free_port();
    let alerting = Process::spawn(
        env!("CARGO_BIN_EXE_reloader"),
        &[
            format!("--listen-addr=127.0.0.1:{port}"),
            "--coalesce-window=200ms".into(),
        ],
        &[
            ("KUBECONFIG", kubeconfig.display().to_string()),
            ("ALERT_ON_RELOAD", "true".into()),
            ("ALERT_SINK", "slack".into()),
            ("ALERT_WEBHOOK_URL", slack),
            ("ALERT_ADDITIONAL_INFO", "prod".into()),
        ],
        dir.path().join("alerting.log"),
    );
    wait_for(
        || async { http_try(&format!("http://127.0.0.1:{port}/readyz")).await == Some(200) },
        "ready",
    )
    .await;
    set_secret(&client, "db", &[("password", "two")]).await;
    let got = tokio::time::timeout(Duration::from_secs(20), alerts.recv()).await;
    let body: Value = serde_json::from_str(&got.unwrap().unwrap()).unwrap();
    assert_eq!(
        body["attachments"][0]["text"],
        "prod : Reloader detected changes in *db* of type *SECRET* in namespace *default*. Hence reloaded *web* of type *Deployment* in namespace *default*"
    );
    drop(alerting);

    // webhook mode: a POST per changed source, and no rollout
    let (hook, mut posts) = receiver().await;
    let (generation, _) = template_of(&client, "web").await;
    let _hooked = start_reloader(dir.path(), &cluster, &[&format!("--webhook-url={hook}")]).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    set_secret(&client, "db", &[("password", "three")]).await;
    let body: Value = serde_json::from_str(
        &tokio::time::timeout(Duration::from_secs(20), posts.recv())
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["webhook"], "update successful");
    assert_eq!(body["name"], "db");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        template_of(&client, "web").await.0,
        generation,
        "the webhook replaces the reload"
    );
}

/// A CRD that keeps whatever it is given (the reloader reads these kinds untyped).
async fn open_crd(client: &Client, group: &str, kind: &str, plural: &str) {
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_json::from_value(json!({
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {"group": group, "scope": "Namespaced",
                "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind, "listKind": format!("{kind}List")},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        }))
        .unwrap();
    Api::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csi_rotations_reload_workloads_that_mount_the_class() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&[], &[]).await;
    let group = "secrets-store.csi.x-k8s.io";
    open_crd(
        &client,
        group,
        "SecretProviderClass",
        "secretproviderclasses",
    )
    .await;
    open_crd(
        &client,
        group,
        "SecretProviderClassPodStatus",
        "secretproviderclasspodstatuses",
    )
    .await;
    let api = |kind: &str, plural: &str| {
        Api::<kube::api::DynamicObject>::namespaced_with(
            client.clone(),
            "default",
            &kube::api::ApiResource::from_gvk_with_plural(
                &kube::core::GroupVersionKind::gvk(group, "v1", kind),
                plural,
            ),
        )
    };
    let classes = api("SecretProviderClass", "secretproviderclasses");
    let statuses = api(
        "SecretProviderClassPodStatus",
        "secretproviderclasspodstatuses",
    );
    let create = |api: Api<kube::api::DynamicObject>, body: Value| async move {
        let obj: kube::api::DynamicObject = serde_json::from_value(body).unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
    };
    for class in ["vault-db", "quiet"] {
        let annotations = if class == "quiet" {
            json!({"reloader.stakater.com/ignore": "true"})
        } else {
            json!({})
        };
        create(classes.clone(), json!({"apiVersion": format!("{group}/v1"), "kind": "SecretProviderClass",
            "metadata": {"name": class, "annotations": annotations}, "spec": {"provider": "vault"}}))
        .await;
    }
    let status = |pod: &str, class: &str, version: &str| {
        json!({"apiVersion": format!("{group}/v1"), "kind": "SecretProviderClassPodStatus",
            "metadata": {"name": format!("{pod}-default-{class}")},
            "status": {"podName": pod, "secretProviderClassName": class, "mounted": true,
                "objects": [{"id": "secret/db", "version": version}]}})
    };
    create(statuses.clone(), status("web-1", "vault-db", "1")).await;
    create(statuses.clone(), status("web-1", "quiet", "1")).await;
    let csi = |class: &str| {
        json!({"name": class, "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": true,
            "volumeAttributes": {"secretProviderClass": class}}})
    };
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {
            "metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "app", "image": "x", "volumeMounts": [
                {"name": "vault-db", "mountPath": "/secrets"}, {"name": "quiet", "mountPath": "/quiet"}]}],
                "volumes": [csi("vault-db"), csi("quiet")]}}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let _reloader = start_reloader(dir.path(), &cluster, &["--enable-csi-integration"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // a new pod's status reloads nothing
    create(statuses.clone(), status("web-2", "vault-db", "1")).await;
    // the driver rotated the object: the class's hash changes
    let rotate = |name: &str, version: &str| {
        let statuses = statuses.clone();
        let name = name.to_string();
        let patch = json!({"status": {"objects": [{"id": "secret/db", "version": version}]}});
        async move {
            statuses
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .unwrap();
        }
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(template_of(&client, "web").await.0, 1, "nothing rolled yet");
    rotate("web-1-default-vault-db", "2").await;
    rotate("web-1-default-quiet", "2").await;
    let want = sha1_of(&["secret/db=2", "SecretProviderClassName=vault-db"]);
    wait_for(
        || async {
            env_value(
                &template_of(&client, "web").await.1,
                "STAKATER_VAULT_DB_SECRETPROVIDERCLASS",
            )
            .as_deref()
                == Some(want.as_str())
        },
        "the Deployment carries the class's hash",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (generation, template) = template_of(&client, "web").await;
    assert_eq!(generation, 2, "one rollout");
    assert_eq!(
        env_value(&template, "STAKATER_QUIET_SECRETPROVIDERCLASS"),
        None,
        "a class marked ignore reloads nothing"
    );
    // a pod that still mounts the older version: its new status rolls nothing either
    create(statuses.clone(), status("web-3", "vault-db", "1")).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        template_of(&client, "web").await.0,
        2,
        "a new status with other versions rolls nothing"
    );
}

/// The chart's Grafana dashboard and PrometheusRule query only metrics the binary exports,
/// scraped after a reload and a change that rolls nothing (so every family has series).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_alert_rules_query_only_exported_metrics() {
    use strongroom_testkit::monitoring::{assert_chart_queries_exported, exported_metrics};

    let dir = tempfile::tempdir().unwrap();
    let (cluster, client) = start_cluster_with_rbac(&[], &[]).await;
    secret(&client, "db", &[("password", "one")], json!({})).await;
    deployment(
        &client,
        "app",
        json!({"reloader.stakater.com/auto": "true"}),
        uses_db(),
    )
    .await;
    let reloader = start_reloader(dir.path(), &cluster, &[]).await;
    let before = template_of(&client, "app").await.1;
    set_secret(&client, "db", &[("password", "two")]).await;
    wait_for(
        || async { template_of(&client, "app").await.1 != before },
        "the Deployment rolled",
    )
    .await;
    // a metadata-only change: skipped, nothing rolls
    Api::<Secret>::namespaced(client.clone(), "default")
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    let metrics = format!("{}/metrics", reloader.url);
    wait_for(
        || async {
            http_get(&metrics)
                .await
                .1
                .contains("reloader_skipped_total{")
        },
        "the skip counted",
    )
    .await;
    let exported = exported_metrics(&http_get(&metrics).await.1);

    let objects = assert_chart_queries_exported(
        "reloader",
        "reloader.grafanaDashboard.enabled=true,reloader.prometheusRule.enabled=true",
        &exported,
        (10, 4),
    );
    let dashboard = objects.get("ConfigMap", "reloader-reloader-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
}
