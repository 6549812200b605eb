//! The Helm chart (`deploy/charts/reloader`), rendered by the real `helm` (from `cargo xtask
//! tools`, or `$STRONGROOM_TOOLS`): `helm lint --strict`, upstream's values keys with their
//! meaning, scoped mode's Roles, the schema, the values the chart refuses (and that those are
//! exactly what the binary refuses), the reloader's flag parser fed the rendered arguments, and
//! an install and upgrade on devcluster with the binary run as the Deployment says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use strongroom_testkit::helm::{self, Objects, ToolEnv, str_of, strings};
use strongroom_testkit::{
    DevCluster, Process, free_port, http_get, http_try, service_account_kubeconfig, start_cluster,
    wait_for,
};

fn chart() -> String {
    format!(
        "{}/../../deploy/charts/reloader",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/chart/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Every values file of the fixtures.
const FIXTURES: &[&str] = &[
    "upstream-defaults.yaml",
    "flags.yaml",
    "pod.yaml",
    "scoped.yaml",
    "monitoring.yaml",
    "install.yaml",
    "upgrade.yaml",
];

/// `helm template` of this chart: the output, or the error text.
fn template(release: &str, namespace: &str, args: &[&str]) -> Result<String, String> {
    helm::template(&chart(), release, namespace, args)
}

/// The rendered objects of a release `rl` in `ops` with `args` (values files, --set).
fn render(args: &[&str]) -> Objects {
    render_as("rl", "ops", args)
}

fn render_as(release: &str, namespace: &str, args: &[&str]) -> Objects {
    let text = template(release, namespace, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    Objects::parse(&text)
}

/// The error of a rendering that must fail.
fn refused(args: &[&str]) -> String {
    match template("rl", "ops", args) {
        Ok(out) => panic!("{args:?} rendered instead of failing:\n{out}"),
        Err(e) => e,
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A Role's rules as "group/resource" → verbs.
fn grants(role: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                let key = if group.is_empty() {
                    resource
                } else {
                    format!("{group}/{resource}")
                };
                out.entry(key).or_default().extend(strings(&rule["verbs"]));
            }
        }
    }
    out
}

fn grants_of(pairs: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
    pairs
        .iter()
        .map(|(k, verbs)| (k.to_string(), set(verbs)))
        .collect()
}

/// What the reloader needs for the sources and workloads it handles by default.
fn default_grants() -> BTreeMap<String, BTreeSet<String>> {
    grants_of(&[
        ("configmaps", &["get", "list", "watch"]),
        ("secrets", &["get", "list", "watch"]),
        ("apps/deployments", &["get", "list", "watch", "patch"]),
        ("apps/daemonsets", &["get", "list", "watch", "patch"]),
        ("apps/statefulsets", &["get", "list", "watch", "patch"]),
        ("batch/cronjobs", &["get", "list", "watch", "patch"]),
        ("batch/jobs", &["get", "list", "watch", "create", "delete"]),
        ("events.k8s.io/events", &["create", "patch"]),
    ])
}

fn lease_grants() -> BTreeMap<String, BTreeSet<String>> {
    grants_of(&[("coordination.k8s.io/leases", &["create", "get", "update"])])
}

#[test]
fn lint_strict_passes_with_defaults_and_every_fixture() {
    let mut runs = vec![Vec::new()];
    for f in FIXTURES {
        runs.push(vec!["-f".to_string(), fixture(f)]);
    }
    for extra in runs {
        let out = Command::new(helm::tools().join("helm"))
            .args(["lint", "--strict", &chart()])
            .args(&extra)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "lint {extra:?}: {text}");
        assert!(text.contains("0 chart(s) failed"), "{text}");
    }
}

/// A user who copied upstream's values.yaml gets exactly what the defaults give.
#[test]
fn upstream_values_file_at_its_defaults_renders_as_the_defaults() {
    let defaults = render(&[]);
    let upstream = render(&["-f", &fixture("upstream-defaults.yaml")]);
    assert_eq!(defaults.0, upstream.0);
}

#[test]
fn names_follow_upstream_rule() {
    let ids = |o: &Objects| {
        o.ids()
            .into_iter()
            .map(|(k, n, _)| format!("{k} {n}"))
            .collect::<BTreeSet<_>>()
    };
    // "<release>-reloader", even when the release name contains "reloader" (as upstream)
    let objects = render_as("reloader", "ops", &[]);
    assert_eq!(
        ids(&objects),
        set(&[
            "ServiceAccount reloader-reloader",
            "ClusterRole reloader-reloader-role",
            "ClusterRoleBinding reloader-reloader-role-binding",
            "Role reloader-reloader-meta-info",
            "RoleBinding reloader-reloader-meta-info",
            "Deployment reloader-reloader",
        ])
    );
    let objects = render(&["--set", "fullnameOverride=reloader"]);
    assert!(ids(&objects).contains("Deployment reloader"));
    assert!(ids(&objects).contains("ClusterRole reloader-role"));
    let objects = render(&["--set", "nameOverride=rl8r,reloader.serviceAccount.name=sa"]);
    assert!(ids(&objects).contains("Deployment rl-rl8r"));
    assert!(ids(&objects).contains("ServiceAccount sa"));
    assert_eq!(
        objects.get("ClusterRoleBinding", "rl-rl8r-role-binding")["subjects"],
        json!([{"kind": "ServiceAccount", "name": "sa", "namespace": "ops"}])
    );
    // no ServiceAccount created: the named one (or "default") is used
    let objects = render(&["--set", "reloader.serviceAccount.create=false"]);
    assert!(objects.of_kind("ServiceAccount").is_empty());
    assert_eq!(
        objects.deployment()["spec"]["template"]["spec"]["serviceAccountName"],
        "default"
    );
    // a namespace value moves the namespaced objects
    let objects = render(&["--set", "namespace=elsewhere"]);
    assert_eq!(objects.deployment()["metadata"]["namespace"], "elsewhere");
}

#[test]
fn defaults_render_a_least_privilege_non_root_reloader() {
    let objects = render(&[]);
    assert_eq!(
        objects.ids(),
        [
            ("ServiceAccount", "rl-reloader", "ops"),
            ("ClusterRole", "rl-reloader-role", ""),
            ("ClusterRoleBinding", "rl-reloader-role-binding", ""),
            ("Role", "rl-reloader-meta-info", "ops"),
            ("RoleBinding", "rl-reloader-meta-info", "ops"),
            ("Deployment", "rl-reloader", "ops"),
        ]
        .iter()
        .map(|(k, n, ns)| (k.to_string(), n.to_string(), ns.to_string()))
        .collect()
    );
    assert_eq!(
        grants(objects.get("ClusterRole", "rl-reloader-role")),
        default_grants()
    );
    let binding = objects.get("ClusterRoleBinding", "rl-reloader-role-binding");
    assert_eq!(binding["roleRef"]["name"], "rl-reloader-role");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "rl-reloader", "namespace": "ops"}])
    );

    let deployment = objects.deployment();
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["revisionHistoryLimit"], 2);
    // upstream's selector, so an upgrade from upstream's chart keeps the Deployment
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        json!({"app": "rl-reloader", "release": "rl"})
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(pod["serviceAccountName"], "rl-reloader");
    assert!(pod.get("affinity").is_none(), "{pod}");
    let c = objects.container();
    assert_eq!(c["image"], "ghcr.io/strongroom/reloader:0.1.0");
    assert!(c.get("command").is_none(), "the image's entrypoint runs");
    assert_eq!(c["args"], json!(["--log-level=info"]));
    assert_eq!(
        c["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}})
    );
    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": 9090, "protocol": "TCP"}])
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/live", "port": "http"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "http"})
    );
    assert_eq!(c["livenessProbe"]["timeoutSeconds"], 5);
    assert_eq!(c["readinessProbe"]["initialDelaySeconds"], 10);
    assert_eq!(
        c["env"],
        json!([
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "RELOADER_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "RELOADER_DEPLOYMENT_NAME", "value": "rl-reloader"},
        ])
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "tmp", "mountPath": "/tmp"}])
    );
    assert_eq!(pod["volumes"], json!([{"name": "tmp", "emptyDir": {}}]));
}

/// Every RBAC rule the chart renders has a comment above it saying why.
#[test]
fn every_rbac_rule_is_commented() {
    for args in [
        vec![],
        vec!["-f".to_string(), fixture("flags.yaml")],
        vec!["-f".to_string(), fixture("scoped.yaml")],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = template("rl", "ops", &args).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut rules = 0;
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("- apiGroups:") {
                rules += 1;
                assert!(
                    lines[i - 1].trim_start().starts_with('#'),
                    "{args:?}: rule without a comment: {}\n{}",
                    lines[i - 1],
                    line
                );
            }
        }
        assert!(rules >= 4, "{args:?}: {rules} rules");
    }
}

#[test]
fn flag_values_become_upstream_flags() {
    let objects = render(&["-f", &fixture("flags.yaml")]);
    assert_eq!(
        objects.args(),
        [
            "--log-format=json",
            "--log-level=debug",
            "--resources-to-ignore=secrets",
            "--ignored-workload-types=jobs,cronjobs",
            "--namespaces-to-ignore=kube-system,monitoring",
            "--namespace-selector=team=a,env:*",
            "--resource-label-selector=reloader=enabled,team:*",
            "--auto-annotation=my.company.com/auto",
            "--configmap-annotation=my.company.com/configmap",
            "--configmap-auto-annotation=my.company.com/configmap-auto",
            "--ignore-annotation=my.company.com/ignore",
            "--search-match-annotation=my.company.com/match",
            "--auto-search-annotation=my.company.com/search",
            "--secret-annotation=my.company.com/secret",
            "--secret-auto-annotation=my.company.com/secret-auto",
            "--is-Argo-Rollouts=true",
            "--reload-on-create=true",
            "--reload-on-delete=true",
            "--sync-after-restart=true",
            "--reload-strategy=annotations",
            "--enable-ha=true",
            "--auto-reload-all=true",
            "--enable-csi-integration=true",
            "--enable-pprof=true",
            "--pprof-addr=:6060",
        ]
    );
    let env = &objects.container()["env"];
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!({"name": "METRICS_COUNT_BY_NAMESPACE", "value": "enabled"})),
        "{env}"
    );
    // ignoreSecrets: no Secrets; ignoreCronJobs, ignoreJobs: neither; isArgoRollouts:
    // Rollouts; namespaceSelector: namespaces
    let mut expected = default_grants();
    expected.remove("secrets");
    expected.remove("batch/cronjobs");
    expected.remove("batch/jobs");
    expected.insert("namespaces".into(), set(&["get", "list", "watch"]));
    for csi in ["secretproviderclasspodstatuses", "secretproviderclasses"] {
        expected.insert(
            format!("secrets-store.csi.x-k8s.io/{csi}"),
            set(&["get", "list", "watch"]),
        );
    }
    expected.insert(
        "argoproj.io/rollouts".into(),
        set(&["get", "list", "watch", "patch"]),
    );
    assert_eq!(
        grants(objects.get("ClusterRole", "rl-reloader-role")),
        expected
    );
    // enableHA: the Lease, in the release namespace only, by name where a name can be given
    let lease = objects.get("Role", "rl-reloader-leader-election");
    assert_eq!(lease["metadata"]["namespace"], "ops");
    assert_eq!(grants(lease), lease_grants());
    let named: Vec<&Value> = lease["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("resourceNames").is_some())
        .collect();
    assert_eq!(named.len(), 1);
    assert_eq!(named[0]["resourceNames"], json!(["stakater-reloader-lock"]));
    assert_eq!(named[0]["verbs"], json!(["get", "update"]));
    let binding = objects.get("RoleBinding", "rl-reloader-leader-election");
    assert_eq!(binding["roleRef"]["name"], "rl-reloader-leader-election");
    // the default anti-affinity of HA, as upstream
    let affinity = &objects.deployment()["spec"]["template"]["spec"]["affinity"];
    assert_eq!(
        affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
            ["topologyKey"],
        "kubernetes.io/hostname"
    );

    // the other forms of the same keys
    let objects = render(&[
        "--set",
        "reloader.ignoreConfigMaps=true,reloader.ignoreJobs=true,reloader.reloadStrategy=env-vars,reloader.webhookUrl=http://hook.example/x",
    ]);
    assert_eq!(
        objects.args(),
        [
            "--log-level=info",
            "--resources-to-ignore=configmaps",
            "--ignored-workload-types=jobs",
            "--reload-strategy=env-vars",
            "--webhook-url=http://hook.example/x",
        ]
    );
    let mut expected = default_grants();
    expected.remove("configmaps");
    expected.remove("batch/jobs");
    assert_eq!(
        grants(objects.get("ClusterRole", "rl-reloader-role")),
        expected
    );
    // more than one replica turns on HA even without enableHA (upstream: only the flag)
    let objects = render(&["--set", "reloader.deployment.replicas=2"]);
    assert_eq!(objects.deployment()["spec"]["replicas"], 2);
    assert!(objects.args().contains(&"--enable-ha=true".to_string()));
    assert_eq!(
        grants(objects.get("Role", "rl-reloader-leader-election")),
        lease_grants()
    );
    // the false forms render nothing
    let objects = render(&["--set", "reloader.logLevel=info,reloader.enableHA=false"]);
    assert_eq!(objects.args(), ["--log-level=info"]);
}

#[test]
fn pod_values_shape_the_pod() {
    let objects = render(&["-f", &fixture("pod.yaml")]);
    let deployment = objects.deployment();
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["spec"]["revisionHistoryLimit"], 5);
    assert_eq!(
        deployment["metadata"]["annotations"],
        json!({"example.com/deployment": "yes"})
    );
    assert_eq!(deployment["metadata"]["labels"]["cost-center"], "42");
    // matchLabels join the selector, as upstream
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        json!({"app": "rl-reloader", "release": "rl", "team": "platform"})
    );
    let template = &deployment["spec"]["template"];
    let labels = &template["metadata"]["labels"];
    for (k, v) in [
        ("app", "rl-reloader"),
        ("release", "rl"),
        ("team", "platform"),
        ("tier", "control"),
        ("provider", "stakater"),
    ] {
        assert_eq!(labels[k], v, "{labels}");
    }
    assert_eq!(
        template["metadata"]["annotations"],
        json!({"example.com/owner": "platform"})
    );
    let pod = &template["spec"];
    assert_eq!(
        pod["imagePullSecrets"],
        json!([{"name": "regcred"}, {"name": "other"}])
    );
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(
        pod["tolerations"][0]["key"],
        "node-role.kubernetes.io/infra"
    );
    // the given affinity replaces HA's default anti-affinity
    assert!(pod["affinity"].get("podAntiAffinity").is_none());
    assert!(pod["affinity"].get("nodeAffinity").is_some());
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 1000, "fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    let c = objects.container();
    assert_eq!(
        c["image"],
        "registry.example.com/mirror/strongroom-reloader:0.1.0-rc1"
    );
    assert_eq!(c["imagePullPolicy"], "Always");
    // the values are merged over the restricted defaults
    assert_eq!(
        c["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": false, "runAsGroup": 1000, "capabilities": {"drop": ["ALL"]}})
    );
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
    );
    assert_eq!(c["livenessProbe"]["periodSeconds"], 30);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/live");
    assert_eq!(c["readinessProbe"]["failureThreshold"], 3);
    let env: BTreeMap<String, Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (str_of(&e["name"]), e.clone()))
        .collect();
    assert_eq!(env["RUST_LOG"]["value"], "info");
    assert_eq!(
        env["TOKEN"]["valueFrom"]["secretKeyRef"],
        json!({"name": "rl-reloader", "key": "TOKEN"})
    );
    assert_eq!(
        env["API_KEY"]["valueFrom"]["secretKeyRef"],
        json!({"name": "shared-secret", "key": "api-key"})
    );
    assert_eq!(
        env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert!(env.contains_key("POD_NAME") && env.contains_key("POD_NAMESPACE"));
    // env.secret's values live in the release's Secret, as upstream
    let secret = objects.get("Secret", "rl-reloader");
    assert_eq!(secret["data"], json!({"TOKEN": "czNjcjN0"}));
    // extra volumes come after /tmp
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "tmp", "mountPath": "/tmp"}, {"name": "extra", "mountPath": "/etc/extra"}])
    );
    assert_eq!(pod["volumes"][1]["configMap"]["name"], "extra");
    // a digest pins the image
    let digest = format!("sha256:{}", "a".repeat(64));
    let objects = render(&["--set", &format!("image.digest={digest}")]);
    assert_eq!(
        objects.container()["image"],
        format!("ghcr.io/strongroom/reloader@{digest}")
    );
    // older upstream charts' reloader.deployment.image
    let objects = render(&[
        "--set",
        "reloader.deployment.image.name=mirror.example/reloader,reloader.deployment.image.tag=v9",
    ]);
    assert_eq!(objects.container()["image"], "mirror.example/reloader:v9");
}

#[test]
fn scoped_mode_renders_roles_per_namespace_and_no_cluster_role() {
    for args in [
        vec!["-f".to_string(), fixture("scoped.yaml")],
        // the comma separated form, with blanks and a duplicate
        vec![
            "--set".to_string(),
            "reloader.watchGlobally=false,reloader.deployment.replicas=2".to_string(),
            "--set-string".to_string(),
            r"reloader.namespaces=team-b\, team-a\,team-b\, ".to_string(),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let objects = render(&args);
        assert!(objects.of_kind("ClusterRole").is_empty(), "{args:?}");
        assert!(objects.of_kind("ClusterRoleBinding").is_empty(), "{args:?}");
        assert!(
            objects
                .args()
                .contains(&"--namespaces=team-a,team-b".to_string()),
            "{:?}",
            objects.args()
        );
        for ns in ["team-a", "team-b"] {
            let role = objects
                .of_kind("Role")
                .into_iter()
                .find(|r| r["metadata"]["namespace"] == ns)
                .unwrap_or_else(|| panic!("no Role in {ns}"));
            assert_eq!(role["metadata"]["name"], "rl-reloader-role");
            assert_eq!(grants(role), default_grants());
            let binding = objects
                .of_kind("RoleBinding")
                .into_iter()
                .find(|r| r["metadata"]["namespace"] == ns)
                .unwrap();
            assert_eq!(
                binding["roleRef"],
                json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rl-reloader-role"})
            );
            assert_eq!(
                binding["subjects"],
                json!([{"kind": "ServiceAccount", "name": "rl-reloader", "namespace": "ops"}])
            );
        }
        // the release namespace gets the Lease and the meta-info ConfigMap only (it is not watched)
        let in_ops: Vec<String> = objects
            .ids()
            .into_iter()
            .filter(|(k, _, ns)| ns == "ops" && k.starts_with("Role"))
            .map(|(k, n, _)| format!("{k} {n}"))
            .collect();
        assert_eq!(
            in_ops,
            [
                "Role rl-reloader-leader-election",
                "Role rl-reloader-meta-info",
                "RoleBinding rl-reloader-leader-election",
                "RoleBinding rl-reloader-meta-info"
            ]
        );
    }
    // watchGlobally false without a list: the release namespace only
    let objects = render(&[
        "--set",
        "reloader.watchGlobally=false,reloader.ignoreNamespaces=x",
    ]);
    assert!(objects.of_kind("ClusterRole").is_empty());
    assert_eq!(objects.args(), ["--log-level=info", "--namespaces=ops"]);
    let role = objects.get("Role", "rl-reloader-role");
    assert_eq!(role["metadata"]["namespace"], "ops");
    assert_eq!(grants(role), default_grants());
    // rbac.enabled false: no RBAC at all
    let objects = render(&[
        "-f",
        &fixture("scoped.yaml"),
        "--set",
        "reloader.rbac.enabled=false",
    ]);
    assert!(
        objects.ids().iter().all(|(k, _, _)| !k.contains("Role")),
        "{:?}",
        objects.ids()
    );
}

#[test]
fn monitoring_values_render_service_monitors_and_pdb() {
    let objects = render(&["-f", &fixture("monitoring.yaml")]);
    let service = objects.get("Service", "rl-reloader");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http", "port": 9090, "protocol": "TCP", "targetPort": "http"}])
    );
    assert_eq!(
        service["spec"]["selector"],
        json!({"app": "rl-reloader", "release": "rl"})
    );
    assert_eq!(service["metadata"]["labels"]["scrape"], "yes");
    assert_eq!(
        service["metadata"]["annotations"],
        json!({"example.com/svc": "metrics"})
    );
    let sm = objects.get("ServiceMonitor", "rl-reloader");
    assert_eq!(sm["metadata"]["namespace"], "monitoring");
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        sm["spec"]["endpoints"],
        json!([{"port": "http", "path": "/metrics", "honorLabels": true, "interval": "30s", "scrapeTimeout": "10s"}])
    );
    assert_eq!(
        sm["spec"]["namespaceSelector"],
        json!({"matchNames": ["ops"]})
    );
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        json!({"app": "rl-reloader", "release": "rl"})
    );
    let pm = objects.get("PodMonitor", "rl-reloader");
    assert_eq!(pm["metadata"]["namespace"], "ops");
    assert_eq!(
        pm["spec"]["podMetricsEndpoints"],
        json!([{"port": "http", "path": "/metrics", "honorLabels": true, "interval": "15s"}])
    );
    let pdb = objects.get("PodDisruptionBudget", "rl-reloader");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert!(pdb["spec"].get("maxUnavailable").is_none());
    // both given: maxUnavailable, as upstream
    let objects = render(&[
        "--set",
        "reloader.podDisruptionBudget.enabled=true,reloader.podDisruptionBudget.minAvailable=1",
        "--set-string",
        "reloader.podDisruptionBudget.maxUnavailable=50%",
    ]);
    let pdb = objects.get("PodDisruptionBudget", "rl-reloader");
    assert_eq!(
        pdb["spec"],
        json!({"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "rl-reloader", "release": "rl"}}})
    );
    // rbac and service account labels and annotations
    let objects = render(&["-f", &fixture("monitoring.yaml")]);
    assert_eq!(
        objects.get("ClusterRole", "rl-reloader-role")["metadata"]["labels"]["rbac"],
        "yes"
    );
    let sa = objects.get("ServiceAccount", "reloader-sa");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/reloader"
    );
}

/// Runs the reloader binary with `args` and the literal and downward-API variables of
/// `container`; without a cluster it stops at the Kubernetes client (exit 1). Returns the exit
/// code and the output.
fn run_binary(args: &[String], container: Option<&Value>) -> (i32, String) {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reloader"));
    cmd.args(args)
        .arg("--listen-addr=127.0.0.1:0")
        .env_clear()
        .env("HOME", home.path())
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("RUST_LOG", "info");
    if let Some(c) = container {
        for var in c["env"].as_array().unwrap() {
            let name = str_of(&var["name"]);
            if let Some(v) = var["value"].as_str() {
                cmd.env(&name, v);
            } else if var["valueFrom"]["fieldRef"].is_object() {
                cmd.env(&name, "from-the-downward-api");
            } else {
                cmd.env(&name, "from-a-secret");
            }
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The arguments the chart renders are what the reloader's flag parser and settings accept: it
/// gets to the point where it looks for a cluster (exit 1), never a parse error (exit 2).
#[test]
fn rendered_args_are_accepted_by_the_reloader() {
    let mut runs: Vec<Vec<String>> = vec![vec![]];
    for f in FIXTURES {
        runs.push(vec!["-f".into(), fixture(f)]);
    }
    runs.push(vec![
        "--set".into(),
        "reloader.ignoreConfigMaps=true,reloader.reloadStrategy=env-vars,reloader.ignoreJobs=true"
            .into(),
    ]);
    for values in runs {
        let args: Vec<&str> = values.iter().map(String::as_str).collect();
        let objects = render(&args);
        let flags = objects.args();
        let (code, output) = run_binary(&flags, Some(objects.container()));
        assert_eq!(code, 1, "{values:?} {flags:?}: {output}");
        assert!(
            output.contains("reloader starting"),
            "{values:?} {flags:?}: {output}"
        );
    }
}

/// The keys whose flag the binary may refuse: the chart refuses the key exactly when the
/// binary (as built now) refuses the flag, and renders the flag otherwise.
#[test]
fn refused_keys_are_exactly_the_flags_the_binary_refuses() {
    for (set, flag, key) in [
        (
            "reloader.webhookUrl=http://hook.example/reload",
            "--webhook-url=http://hook.example/reload",
            "reloader.webhookUrl",
        ),
        (
            "reloader.namespaceSelector=team=a",
            "--namespace-selector=team=a",
            "reloader.namespaceSelector",
        ),
        (
            "reloader.enableCSIIntegration=true",
            "--enable-csi-integration=true",
            "reloader.enableCSIIntegration",
        ),
    ] {
        let (code, output) = run_binary(&[flag.to_string()], None);
        assert_ne!(code, 2, "{flag}: {output}");
        let binary_refuses = !output.contains("reloader starting");
        match template("rl", "ops", &["--set", set]) {
            Err(e) => {
                assert!(
                    binary_refuses,
                    "the binary now takes {flag}: render it instead of refusing {key}: {e}"
                );
                assert!(e.contains(key), "{e}");
                assert!(e.contains("does not"), "{e}");
            }
            Ok(text) => {
                assert!(
                    !binary_refuses,
                    "{set} renders {flag}, which the binary refuses: {output}"
                );
                let args = Objects::parse(&text).args();
                assert!(args.contains(&flag.to_string()), "{args:?}");
            }
        }
    }
}

#[test]
fn values_that_cannot_apply_are_refused_with_a_reason() {
    for (args, message) in [
        (
            vec!["--set", "reloader.isOpenshift=true"],
            "DeploymentConfigs",
        ),
        (
            vec!["--set", "reloader.legacy.rbac=true"],
            "removed in Kubernetes 1.22",
        ),
        (
            vec![
                "--set",
                "reloader.ignoreSecrets=true,reloader.ignoreConfigMaps=true",
            ],
            "nothing would be watched",
        ),
        (
            vec!["--set", "reloader.namespaces={a}"],
            "set reloader.watchGlobally=false",
        ),
        (
            vec!["--set", "reloader.netpol.enabled=true"],
            "NetworkPolicy",
        ),
        (
            vec!["--set", "reloader.verticalPodAutoscaler.enabled=true"],
            "VerticalPodAutoscaler",
        ),
        (
            vec!["--set", "reloader.serviceMonitor.enabled=true"],
            "needs reloader.service",
        ),
        (
            vec!["--set", "image.repository=ghcr.io/stakater/reloader"],
            "is upstream's image",
        ),
        (
            vec!["--set", "reloader.deployment.image.name=stakater/reloader"],
            "is upstream's image",
        ),
    ] {
        let e = refused(&args);
        assert!(e.contains(message), "{args:?}: {e}");
    }
}

#[test]
fn schema_refuses_typos_and_wrong_types() {
    for (set, message) in [
        (
            "reloader.watchGloballly=false",
            "additional properties 'watchGloballly' not allowed",
        ),
        (
            "reloadOnCreate=true",
            "additional properties 'reloadOnCreate' not allowed",
        ),
        (
            "reloader.deployment.replica=2",
            "additional properties 'replica' not allowed",
        ),
        (
            "reloader.rbac.enable=false",
            "additional properties 'enable' not allowed",
        ),
        (
            "reloader.podMonitor.enable=true",
            "additional properties 'enable' not allowed",
        ),
        (
            "reloader.custom_annotations.config_map=x",
            "additional properties 'config_map' not allowed",
        ),
        (
            "reloader.deployment.replicas=two",
            "/reloader/deployment/replicas",
        ),
        (
            "reloader.reloadStrategy=rolling",
            "/reloader/reloadStrategy",
        ),
        ("reloader.logFormat=yaml", "/reloader/logFormat"),
        ("reloader.logLevel=verbose", "/reloader/logLevel"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ] {
        let e = refused(&["--set", set]);
        assert!(
            e.contains("values don't meet the specifications of the schema"),
            "{set}: {e}"
        );
        assert!(e.contains(message), "{set}: {e}");
    }
    for (set, message) in [
        ("reloader.enableHA=yes", "/reloader/enableHA"),
        ("reloader.reloadOnCreate=true", "/reloader/reloadOnCreate"),
    ] {
        let e = refused(&["--set-string", set]);
        assert!(e.contains(message), "{set}: {e}");
    }
}

// ---- devcluster ----

const NS: &str = "ops";
const RELEASE: &str = "reloader";
const NAME: &str = "reloader";

type Env = ToolEnv;

/// `helm upgrade --install` of this chart with a fixture.
trait Install {
    fn upgrade_install(&self, values: &str) -> String;
    fn rollout_status(&self);
}

impl Install for Env {
    fn upgrade_install(&self, values: &str) -> String {
        self.ok(
            "helm",
            &[
                "upgrade",
                "--install",
                RELEASE,
                &chart(),
                "-n",
                NS,
                "-f",
                &fixture(values),
                "--wait",
                "--timeout",
                "60s",
            ],
        )
    }

    fn rollout_status(&self) {
        let status = self.ok(
            "kubectl",
            &[
                "-n",
                NS,
                "rollout",
                "status",
                &format!("deployment/{NAME}"),
                "--timeout=30s",
            ],
        );
        assert!(status.contains("successfully rolled out"), "{status}");
    }
}

/// Starts the reloader as the Deployment's pod spec says: its arguments (listening on a free
/// loopback port instead of :9090), its downward-API environment, and the token of the chart's
/// ServiceAccount. Returns the process and the URLs of its readiness and liveness probes.
fn run_as_deployed(
    deployment: &Value,
    kubeconfig: &Path,
    pod_name: &str,
    log: PathBuf,
) -> (Process, String, String) {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert!(container.get("command").is_none());
    let port = free_port();
    let mut args = strings(&container["args"]);
    args.push(format!("--listen-addr=127.0.0.1:{port}"));
    args.push("--coalesce-window=100ms".into());
    let mut vars = vec![
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("RUST_LOG", "info".to_string()),
    ];
    for var in container["env"].as_array().unwrap() {
        let value = match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.namespace") => NS.to_string(),
            Some("metadata.name") => pod_name.to_string(),
            Some(other) => panic!("unexpected downward-API field {other}"),
            None => str_of(&var["value"]),
        };
        vars.push((var["name"].as_str().unwrap(), value));
    }
    let url = |probe: &str| {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["port"], "http");
        assert_eq!(container["ports"][0]["containerPort"], 9090);
        format!("http://127.0.0.1:{port}{}", get["path"].as_str().unwrap())
    };
    let (ready, live) = (url("readinessProbe"), url("livenessProbe"));
    let process = Process::spawn(env!("CARGO_BIN_EXE_reloader"), &args, &vars, log);
    (process, ready, live)
}

async fn wait_ready(process: &Process, ready: &str, live: &str) {
    for _ in 0..600 {
        if http_try(live).await == Some(200) && http_try(ready).await == Some(200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, body) = http_get(ready).await;
    panic!(
        "probes never passed ({code} {body}):\n{}",
        process.log_text()
    );
}

/// Every request `user` made is granted by one of `roles` (verb on the resource, any group).
fn assert_granted(cluster: &DevCluster, user: &str, roles: &[&Value]) {
    let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for role in roles {
        for (key, verbs) in grants(role) {
            let resource = key.rsplit('/').next().unwrap().to_string();
            granted.entry(resource).or_default().extend(verbs);
        }
    }
    let requests = cluster.requests_by_user();
    let made = requests
        .get(user)
        .unwrap_or_else(|| panic!("no requests by {user}"));
    for kind in made.keys() {
        let mut parts = kind.split(' ');
        let (verb, resource) = (parts.next().unwrap(), parts.next().unwrap_or(""));
        if verb == "other" {
            continue; // discovery
        }
        assert!(
            granted.get(resource).is_some_and(|v| v.contains(verb)),
            "{user} made {kind:?}, which the chart does not grant ({granted:?}); all: {made:?}"
        );
    }
}

async fn configmap_and_deployment(client: &kube::Client, ns: &str) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "app-config"}, "data": {"mode": "one"}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "app", "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [{
                    "name": "app", "image": "busybox",
                    "envFrom": [{"configMapRef": {"name": "app-config"}}]
                }]}
            }
        }
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
}

async fn change_config(client: &kube::Client, ns: &str, mode: &str) {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch(
            "app-config",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"mode": mode}})),
        )
        .await
        .unwrap();
}

fn template_of(d: &Deployment) -> Value {
    serde_json::to_value(d).unwrap()["spec"]["template"].clone()
}

// helm and kubectl run as blocking child processes: the server needs a worker of its own
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_style_release_installs_reloads_and_upgrades_on_devcluster() {
    let (cluster, client) = start_cluster(&[], &[NS, "team-a"]).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let env = Env {
        dir,
        kubeconfig,
        tools: helm::tools(),
    };

    // install, with a values file as upstream's chart users write it
    let out = env.upgrade_install("install.yaml");
    assert!(out.contains("STATUS: deployed"), "{out}");
    let deployment = env.get(&["deployment", NAME, "-n", NS]);
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/owner"],
        "platform"
    );
    let args = strings(&pod["spec"]["containers"][0]["args"]);
    assert!(
        args.contains(&"--reload-strategy=annotations".to_string()),
        "{args:?}"
    );
    assert!(env.exists(&["serviceaccount", NAME, "-n", NS]));
    let cluster_role = env.get(&["clusterrole", "reloader-role"]);
    let meta_info_role = env.get(&["role", "reloader-meta-info", "-n", NS]);
    assert_eq!(grants(&cluster_role), default_grants());
    assert_eq!(
        env.get(&["clusterrolebinding", "reloader-role-binding"])["subjects"][0]["name"],
        NAME
    );
    env.rollout_status();

    // the binary, run as the pod spec says with the ServiceAccount's token, passes its probes
    // and rolls an annotated Deployment when its ConfigMap changes
    let sa_kubeconfig = env.dir.path().join("sa.kubeconfig");
    let user = service_account_kubeconfig(&cluster, &client, NS, NAME, &sa_kubeconfig).await;
    configmap_and_deployment(&client, "default").await;
    let (process, ready, live) = run_as_deployed(
        &deployment,
        &sa_kubeconfig,
        "reloader-first",
        env.dir.path().join("first.log"),
    );
    wait_ready(&process, &ready, &live).await;
    change_config(&client, "default", "two").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    wait_for(
        || async {
            let d = deployments.get("app").await.unwrap();
            template_of(&d)["metadata"]["annotations"]
                .get("reloader.stakater.com/last-reloaded-from")
                .is_some()
        },
        "the Deployment rolled by the annotations strategy",
    )
    .await;
    // RELOADER_NAMESPACE from the chart: upstream's meta-info ConfigMap, under the chart's Role
    assert!(env.exists(&["configmap", "reloader-meta-info", "-n", NS]));
    drop(process);
    // every request it made is one the chart's ClusterRole (or the meta-info Role) grants
    assert_granted(&cluster, &user, &[&cluster_role, &meta_info_role]);

    // upgrade: scoped to team-a (Roles, no ClusterRole), two replicas with the Lease
    env.upgrade_install("upgrade.yaml");
    let deployment = env.get(&["deployment", NAME, "-n", NS]);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let args = strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(
        args.contains(&"--namespaces=team-a".to_string()),
        "{args:?}"
    );
    assert!(args.contains(&"--enable-ha=true".to_string()), "{args:?}");
    assert!(!env.exists(&["clusterrole", "reloader-role"]));
    assert!(!env.exists(&["clusterrolebinding", "reloader-role-binding"]));
    let role = env.get(&["role", "reloader-role", "-n", "team-a"]);
    assert_eq!(grants(&role), default_grants());
    assert_eq!(
        env.get(&["rolebinding", "reloader-role-binding", "-n", "team-a"])["roleRef"]["name"],
        "reloader-role"
    );
    assert!(!env.exists(&["role", "reloader-role", "-n", NS]));
    let lease_role = env.get(&["role", "reloader-leader-election", "-n", NS]);
    env.rollout_status();
    let history = env.ok("helm", &["history", RELEASE, "-n", NS]);
    assert_eq!(
        history
            .lines()
            .filter(|l| l.contains("reloader-0.1.0"))
            .count(),
        2,
        "{history}"
    );

    // the upgraded arguments run too: the Lease the Role names, a reload in team-a
    let second_user = "reloader-second";
    let sa2 = env.dir.path().join("sa2.kubeconfig");
    let user2 = service_account_kubeconfig(&cluster, &client, NS, second_user, &sa2).await;
    configmap_and_deployment(&client, "team-a").await;
    let (process, ready, live) = run_as_deployed(
        &deployment,
        &sa2,
        "reloader-second",
        env.dir.path().join("second.log"),
    );
    wait_ready(&process, &ready, &live).await;
    wait_for(
        || async { env.exists(&["lease", "stakater-reloader-lock", "-n", NS]) },
        "the leader Lease",
    )
    .await;
    change_config(&client, "team-a", "two").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "team-a");
    wait_for(
        || async {
            let d = deployments.get("app").await.unwrap();
            let t = template_of(&d);
            t["spec"]["containers"][0]["env"]
                .as_array()
                .is_some_and(|e| {
                    e.iter()
                        .any(|v| v["name"] == "STAKATER_APP_CONFIG_CONFIGMAP")
                })
        },
        "the team-a Deployment rolled by the env-vars strategy",
    )
    .await;
    drop(process);
    assert_granted(&cluster, &user2, &[&role, &lease_role, &meta_info_role]);
}
