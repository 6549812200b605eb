//! The Helm chart (`deploy/charts/external-secrets`), rendered by the real `helm` (from `cargo
//! xtask tools`, or `$STRONGROOM_TOOLS`): `helm lint --strict`, upstream's values keys with
//! their meaning (upstream values files as fixtures), the flags, the RBAC, the pod's security,
//! the CRDs, the values the chart refuses, the controller's flag parser fed the rendered
//! arguments, and an install on devcluster with the binary run as the Deployment says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::{Value, json};
use strongroom_testkit::helm::{self, Objects, ToolEnv, str_of, strings};
use strongroom_testkit::{
    DevCluster, Process, free_port, http_get, http_try, service_account_kubeconfig, start_cluster,
    wait_for,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart() -> String {
    root()
        .join("deploy/charts/external-secrets")
        .display()
        .to_string()
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/chart/{name}", env!("CARGO_MANIFEST_DIR"))
}

const FIXTURES: &[&str] = &[
    "upstream-defaults.yaml",
    "production.yaml",
    "scoped.yaml",
    "install.yaml",
];

fn template(release: &str, namespace: &str, args: &[&str]) -> Result<String, String> {
    helm::template(&chart(), release, namespace, args)
}

fn render(args: &[&str]) -> Objects {
    render_as("rel", "ops", args)
}

fn render_as(release: &str, namespace: &str, args: &[&str]) -> Objects {
    let text = template(release, namespace, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    Objects::parse(&text)
}

fn refused(args: &[&str]) -> String {
    match template("rel", "ops", args) {
        Ok(out) => panic!("{args:?} rendered instead of failing:\n{out}"),
        Err(e) => e,
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A Role's rules as "group/resource" → verbs (resource names ignored).
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

const GENERATORS: &[&str] = &[
    "acraccesstokens",
    "beyondtrustworkloadcredentialsdynamicsecrets",
    "cloudsmithaccesstokens",
    "codeartifactauthorizationtokens",
    "ecrauthorizationtokens",
    "fakes",
    "gcraccesstokens",
    "githubaccesstokens",
    "gitlabdeploytokens",
    "grafanas",
    "mfas",
    "passwords",
    "quayaccesstokens",
    "sshkeys",
    "stsassumeroletokens",
    "stssessiontokens",
    "uuids",
    "vaultdynamicsecrets",
    "webhooks",
];

/// What the controller may do with every reconciler on (the defaults).
fn default_grants() -> BTreeMap<String, BTreeSet<String>> {
    let read = ["get", "list", "watch"];
    let watch_patch = ["get", "list", "watch", "patch"];
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |key: &str, verbs: &[&str]| {
        out.entry(key.to_string())
            .or_default()
            .extend(verbs.iter().map(|v| v.to_string()));
    };
    for kind in [
        "externalsecrets",
        "clusterexternalsecrets",
        "pushsecrets",
        "clusterpushsecrets",
    ] {
        add(&format!("external-secrets.io/{kind}"), &watch_patch);
        add(&format!("external-secrets.io/{kind}/status"), &["patch"]);
        add(
            &format!("external-secrets.io/{kind}/finalizers"),
            &["update"],
        );
    }
    add(
        "external-secrets.io/externalsecrets",
        &["create", "update", "delete"],
    );
    add(
        "external-secrets.io/pushsecrets",
        &["create", "update", "delete"],
    );
    for kind in ["secretstores", "clustersecretstores"] {
        add(&format!("external-secrets.io/{kind}"), &read);
        add(&format!("external-secrets.io/{kind}/status"), &["patch"]);
        // their finalizer, while PushSecrets with deletionPolicy Delete use them
        add(&format!("external-secrets.io/{kind}"), &["patch"]);
    }
    for g in GENERATORS.iter().chain(&["clustergenerators"]) {
        add(&format!("generators.external-secrets.io/{g}"), &read);
    }
    add(
        "generators.external-secrets.io/generatorstates",
        &["list", "watch", "create", "patch", "delete"],
    );
    add(
        "generators.external-secrets.io/generatorstates/status",
        &["patch"],
    );
    add(
        "secrets",
        &["get", "list", "watch", "create", "patch", "delete"],
    );
    add("configmaps", &["get"]);
    add("serviceaccounts", &["get"]);
    add("serviceaccounts/token", &["create"]);
    add("namespaces", &read);
    // the ClusterExternalSecrets' per-Namespace finalizer
    add("namespaces", &["patch"]);
    add("events.k8s.io/events", &["create", "patch"]);
    out
}

fn lease_rules(name: &str) -> Value {
    json!([
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [name], "verbs": ["get", "update"]},
    ])
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

/// A user who copied upstream's values.yaml (webhook and certController included) gets exactly
/// what the defaults give: those sections are accepted and deploy nothing.
#[test]
fn upstream_values_file_at_its_defaults_renders_as_the_defaults() {
    let defaults = render(&[]);
    let upstream = render(&["-f", &fixture("upstream-defaults.yaml")]);
    assert_eq!(defaults.0, upstream.0);
    // (the Webhook generator's CRD, webhooks.generators.external-secrets.io, is not a webhook)
    for object in upstream
        .0
        .iter()
        .filter(|o| o["kind"] != "CustomResourceDefinition")
    {
        let kind = str_of(&object["kind"]);
        let name = str_of(&object["metadata"]["name"]);
        assert!(
            !kind.contains("Webhook") && kind != "Certificate",
            "{kind} {name}"
        );
        assert!(
            !name.contains("webhook") && !name.contains("cert-controller"),
            "{kind} {name}"
        );
    }
    assert_eq!(upstream.of_kind("Deployment").len(), 1);
}

#[test]
fn names_follow_upstream_rule() {
    let ids = |o: &Objects| {
        o.ids()
            .into_iter()
            .filter(|(k, _, _)| k != "CustomResourceDefinition")
            .map(|(k, n, ns)| format!("{k} {n} {ns}"))
            .collect::<BTreeSet<_>>()
    };
    let expected = |full: &str| {
        set(&[
            &format!("ServiceAccount {full} ops"),
            &format!("ClusterRole {full}-controller "),
            &format!("ClusterRoleBinding {full}-controller "),
            &format!("ClusterRole {full}-view "),
            &format!("ClusterRole {full}-edit "),
            &format!("ClusterRole {full}-servicebindings "),
            &format!("Deployment {full} ops"),
        ])
    };
    assert_eq!(ids(&render(&[])), expected("rel-external-secrets"));
    // a release name containing the chart's name is the full name, as upstream
    assert_eq!(
        ids(&render_as("external-secrets", "ops", &[])),
        expected("external-secrets")
    );
    assert_eq!(
        ids(&render(&["--set", "fullnameOverride=eso"])),
        expected("eso")
    );
    let objects = render(&[
        "--set",
        "serviceAccount.name=sa,namespaceOverride=elsewhere",
    ]);
    assert_eq!(
        objects.get("ClusterRoleBinding", "rel-external-secrets-controller")["subjects"],
        json!([{"kind": "ServiceAccount", "name": "sa", "namespace": "elsewhere"}])
    );
    assert_eq!(objects.deployment()["metadata"]["namespace"], "elsewhere");
    let objects = render(&["--set", "serviceAccount.create=false"]);
    assert!(objects.of_kind("ServiceAccount").is_empty());
    assert_eq!(
        objects.deployment()["spec"]["template"]["spec"]["serviceAccountName"],
        "default"
    );
    // createOperator false: the CRDs only
    let objects = render(&["--set", "createOperator=false,rbac.create=false"]);
    assert!(
        objects
            .0
            .iter()
            .all(|o| o["kind"] == "CustomResourceDefinition"),
        "{:?}",
        objects.ids()
    );
}

#[test]
fn defaults_render_a_least_privilege_non_root_controller() {
    let objects = render(&[]);
    let role = objects.get("ClusterRole", "rel-external-secrets-controller");
    assert_eq!(grants(role), default_grants());
    let binding = objects.get("ClusterRoleBinding", "rel-external-secrets-controller");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "rel-external-secrets-controller"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "rel-external-secrets", "namespace": "ops"}])
    );
    // nothing beyond what the controller does: no wildcard, no update of Secrets, no Leases
    let text = serde_json::to_string(role).unwrap();
    assert!(!text.contains('*'), "{text}");
    assert!(
        objects
            .try_get("Role", "rel-external-secrets-leaderelection")
            .is_none()
    );

    let deployment = objects.deployment();
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "external-secrets", "app.kubernetes.io/instance": "rel"})
    );
    assert_eq!(
        deployment["metadata"]["labels"]["app.kubernetes.io/name"],
        "external-secrets"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "rel-external-secrets");
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(pod["hostNetwork"], false);
    let c = objects.container();
    assert_eq!(c["image"], "ghcr.io/strongroom/external-secrets:0.1.0");
    assert!(c.get("command").is_none(), "the image's entrypoint runs");
    assert_eq!(
        objects.args(),
        [
            "--concurrent=1",
            "--metrics-addr=:8080",
            "--live-addr=:8082",
            "--loglevel=info",
            "--zap-time-encoding=epoch",
        ]
    );
    // upstream's hardening: non-root, read-only root, no capabilities, RuntimeDefault seccomp
    assert_eq!(
        c["securityContext"],
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        })
    );
    assert!(pod.get("securityContext").is_none(), "{pod}");
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "live"})
    );
    assert!(c.get("livenessProbe").is_none());
    assert_eq!(
        c["ports"],
        json!([
            {"name": "metrics", "containerPort": 8080, "protocol": "TCP"},
            {"name": "live", "containerPort": 8082, "protocol": "TCP"},
        ])
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "tmp", "mountPath": "/tmp"}])
    );
}

/// Every external-secrets.io CRD of deploy/crds is rendered, identical but for the labels.
#[test]
fn every_external_secrets_crd_is_rendered_as_generated() {
    let objects = render(&[]);
    let mut expected = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("deploy/crds")).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if !file.contains("external-secrets.io_") {
            continue;
        }
        let crd: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = str_of(&crd["metadata"]["name"]);
        let rendered = objects.get("CustomResourceDefinition", &name);
        assert_eq!(rendered["spec"], crd["spec"], "{file}");
        assert_eq!(
            rendered["metadata"]["labels"]["app.kubernetes.io/name"],
            "external-secrets"
        );
        expected.insert(name);
    }
    assert!(expected.contains("externalsecrets.external-secrets.io"));
    let rendered: BTreeSet<String> = objects
        .of_kind("CustomResourceDefinition")
        .iter()
        .map(|c| str_of(&c["metadata"]["name"]))
        .collect();
    assert_eq!(rendered, expected);

    // installCRDs false: none; crds.create*: that one left out and its reconciler off
    let objects = render(&["--set", "installCRDs=false"]);
    assert!(objects.of_kind("CustomResourceDefinition").is_empty());
    let objects = render(&[
        "--set",
        "crds.createClusterSecretStore=false,crds.createClusterExternalSecret=false",
    ]);
    assert!(
        objects
            .try_get(
                "CustomResourceDefinition",
                "clustersecretstores.external-secrets.io"
            )
            .is_none()
    );
    assert!(
        objects
            .try_get(
                "CustomResourceDefinition",
                "externalsecrets.external-secrets.io"
            )
            .is_some()
    );
    let args = objects.args();
    assert!(args.contains(&"--enable-cluster-store-reconciler=false".to_string()));
    assert!(args.contains(&"--enable-cluster-external-secret-reconciler=false".to_string()));
    // crds.annotations, e.g. to keep them on uninstall
    let objects = render(&["-f", &fixture("production.yaml")]);
    for crd in objects.of_kind("CustomResourceDefinition") {
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }
}

/// Every RBAC rule the chart renders has a comment above it saying why.
#[test]
fn every_rbac_rule_is_commented() {
    for args in [
        vec![],
        vec!["-f".to_string(), fixture("production.yaml")],
        vec!["-f".to_string(), fixture("scoped.yaml")],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = template("rel", "ops", &args).unwrap();
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
        assert!(rules >= 10, "{args:?}: {rules} rules");
    }
}

#[test]
fn upstream_values_become_upstream_flags() {
    let objects = render(&["-f", &fixture("production.yaml")]);
    assert_eq!(
        objects.args(),
        [
            "--concurrent=3",
            "--metrics-addr=:8080",
            "--live-addr=:8082",
            "--loglevel=debug",
            "--zap-time-encoding=epoch",
            "--enable-leader-election=true",
            "--enable-cluster-store-reconciler=false",
            "--enable-push-secret-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false",
            "--controller-class=platform",
            "--enable-extended-metric-labels=true",
            // extraArgs, last (sorted by key, as helm ranges over a map)
            "--client-qps=100",
            "--enable-flood-gate=false",
            "--store-requeue-interval=1m",
        ]
    );
    // the reconcilers that are off lose their permissions
    let mut expected = default_grants();
    for gone in [
        "clustersecretstores",
        "clustersecretstores/status",
        "pushsecrets/status",
        "pushsecrets/finalizers",
        "clusterpushsecrets",
        "clusterpushsecrets/status",
        "clusterpushsecrets/finalizers",
    ] {
        expected.remove(&format!("external-secrets.io/{gone}"));
    }
    expected.remove("external-secrets.io/pushsecrets");
    // without PushSecrets the stores carry no finalizer of theirs
    expected.insert(
        "external-secrets.io/secretstores".into(),
        set(&["get", "list", "watch"]),
    );
    assert_eq!(
        grants(objects.get("ClusterRole", "rel-external-secrets-controller")),
        expected
    );
    // leaderElect: the Lease, in the release namespace, by name where a name can be given
    let lease = objects.get("Role", "rel-external-secrets-leaderelection");
    assert_eq!(lease["metadata"]["namespace"], "ops");
    assert_eq!(lease["rules"], lease_rules("external-secrets-controller"));
    assert_eq!(
        objects.get("RoleBinding", "rel-external-secrets-leaderelection")["roleRef"]["name"],
        "rel-external-secrets-leaderelection"
    );

    // single keys
    for (set_arg, flag) in [
        ("scopedNamespace=team-b", "--namespace=team-b"),
        (
            "processClusterStore=false",
            "--enable-cluster-store-reconciler=false",
        ),
        (
            "processSecretStore=false",
            "--enable-secret-store-reconciler=false",
        ),
        (
            "processClusterExternalSecret=false",
            "--enable-cluster-external-secret-reconciler=false",
        ),
        (
            "processClusterPushSecret=false",
            "--enable-cluster-push-secret-reconciler=false",
        ),
        ("leaderElect=true", "--enable-leader-election=true"),
        ("concurrent=7", "--concurrent=7"),
        ("controllerClass=blue", "--controller-class=blue"),
        ("enableHTTP2=true", "--enable-http2=true"),
        ("log.level=warn", "--loglevel=warn"),
        ("metrics.listen.port=9100", "--metrics-addr=:9100"),
        (
            "extraArgs.enable-secrets-caching=",
            "--enable-secrets-caching",
        ),
    ] {
        let args = render(&["--set", set_arg]).args();
        assert!(args.contains(&flag.to_string()), "{set_arg}: {args:?}");
    }
    // without scopedRBAC, a scoped namespace keeps the cluster reconcilers and ClusterRole
    let objects = render(&["--set", "scopedNamespace=team-b"]);
    assert!(!objects.args().iter().any(|a| a.contains("reconciler")));
    assert_eq!(
        grants(objects.get("ClusterRole", "rel-external-secrets-controller")),
        default_grants()
    );
    // upstream's own sanity rule
    let e = refused(&["--set", "processPushSecret=false"]);
    assert!(e.contains("processClusterPushSecret"), "{e}");
}

#[test]
fn generic_targets_add_the_flag_and_only_the_listed_rules() {
    // enabled alone: the flag, and no permission beyond the defaults (as upstream, the user
    // grants the target kinds)
    let objects = render(&["--set", "genericTargets.enabled=true"]);
    assert!(
        objects
            .args()
            .contains(&"--unsafe-allow-generic-targets=true".to_string())
    );
    assert_eq!(
        grants(objects.get("ClusterRole", "rel-external-secrets-controller")),
        default_grants()
    );
    assert!(
        !render(&[])
            .args()
            .iter()
            .any(|a| a.contains("generic-targets"))
    );
    let objects = render(&[
        "--set",
        "genericTargets.enabled=true",
        "--set-json",
        r#"genericTargets.resources=[{"apiGroups":["example.com"],"resources":["appconfigs"],"verbs":["get","list","watch","create","patch"]}]"#,
    ]);
    let mut expected = default_grants();
    expected.insert(
        "example.com/appconfigs".into(),
        set(&["get", "list", "watch", "create", "patch"]),
    );
    assert_eq!(
        grants(objects.get("ClusterRole", "rel-external-secrets-controller")),
        expected
    );
}

#[test]
fn scoped_rbac_is_a_role_in_the_scoped_namespace() {
    let objects = render(&["-f", &fixture("scoped.yaml")]);
    assert!(
        objects
            .of_kind("ClusterRole")
            .iter()
            .all(|r| !str_of(&r["metadata"]["name"]).ends_with("-controller"))
    );
    assert!(objects.of_kind("ClusterRoleBinding").is_empty());
    assert!(objects.of_kind("CustomResourceDefinition").is_empty());
    let role = objects.get("Role", "team-a-eso-controller");
    assert_eq!(role["metadata"]["namespace"], "team-a");
    let granted = grants(role);
    let mut expected = default_grants();
    expected.retain(|k, _| {
        !k.contains("/cluster") && k != "namespaces" && !k.ends_with("clustergenerators")
    });
    // no ClusterExternalSecrets or ClusterPushSecrets to create children for
    expected.insert(
        "external-secrets.io/externalsecrets".into(),
        set(&["get", "list", "watch", "patch"]),
    );
    expected.insert(
        "external-secrets.io/pushsecrets".into(),
        set(&["get", "list", "watch", "patch"]),
    );
    assert_eq!(granted, expected);
    let binding = objects.get("RoleBinding", "team-a-eso-controller");
    assert_eq!(binding["metadata"]["namespace"], "team-a");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "team-a-eso", "namespace": "ops"}])
    );
    // the Lease of extraArgs' leader-election-id, in the release namespace
    let lease = objects.get("Role", "team-a-eso-leaderelection");
    assert_eq!(lease["metadata"]["namespace"], "ops");
    assert_eq!(lease["rules"], lease_rules("team-a-eso"));
    assert_eq!(
        objects.args(),
        [
            "--concurrent=1",
            "--metrics-addr=:8080",
            "--live-addr=:8082",
            "--loglevel=info",
            "--zap-time-encoding=epoch",
            "--enable-leader-election=true",
            "--namespace=team-a",
            "--enable-cluster-store-reconciler=false",
            "--enable-cluster-external-secret-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false",
            "--controller-class=team-a",
            "--leader-election-id=team-a-eso",
        ]
    );
}

#[test]
fn pod_and_monitoring_values_shape_the_release() {
    let objects = render(&["-f", &fixture("production.yaml")]);
    let deployment = objects.deployment();
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["metadata"]["labels"]["team"], "platform");
    let template = &deployment["spec"]["template"];
    assert_eq!(
        template["metadata"]["annotations"],
        json!({"example.com/owner": "platform"})
    );
    assert_eq!(template["metadata"]["labels"]["tier"], "security");
    let pod = &template["spec"];
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "registry-creds"}]));
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    let c = objects.container();
    assert_eq!(
        c["image"],
        "registry.example.com/mirror/strongroom/external-secrets:0.1.0"
    );
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["resources"]["limits"]["memory"], "256Mi");
    assert_eq!(
        c["env"][2],
        json!({"name": "AWS_REGION", "value": "eu-west-1"})
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "live"})
    );
    assert_eq!(c["livenessProbe"]["initialDelaySeconds"], 10);
    let sa = objects.get("ServiceAccount", "rel-external-secrets");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/external-secrets"
    );
    let pdb = objects.get("PodDisruptionBudget", "rel-external-secrets-pdb");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let service = objects.get("Service", "rel-external-secrets-metrics");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}])
    );
    assert_eq!(
        service["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    let monitor = objects.get("ServiceMonitor", "rel-external-secrets-metrics");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "60s");
    // skipIfMissing (the default) renders nothing where the CRD is not served
    let objects = render(&["--set", "serviceMonitor.enabled=true"]);
    assert!(objects.of_kind("ServiceMonitor").is_empty());
    assert!(
        objects
            .try_get("Service", "rel-external-secrets-metrics")
            .is_some()
    );
    // securityContext.enabled false: upstream's meaning, none
    let objects = render(&["--set", "securityContext.enabled=false"]);
    assert!(objects.container().get("securityContext").is_none());
    let objects = render(&["--set", "podSecurityContext.fsGroup=2000"]);
    assert_eq!(
        objects.deployment()["spec"]["template"]["spec"]["securityContext"],
        json!({"fsGroup": 2000})
    );
    let objects = render(&[
        "--set",
        "global.compatibility.openshift.adaptSecurityContext=force",
    ]);
    assert!(
        objects.container()["securityContext"]
            .get("runAsUser")
            .is_none()
    );
    assert_eq!(objects.container()["securityContext"]["runAsNonRoot"], true);
}

#[test]
fn values_that_cannot_apply_are_refused_with_a_reason() {
    for (args, message) in [
        (
            vec![
                "--set",
                "image.repository=ghcr.io/external-secrets/external-secrets",
            ],
            "is upstream's image",
        ),
        (
            vec![
                "--set",
                "global.repository=oci.external-secrets.io/external-secrets/external-secrets",
            ],
            "is upstream's image",
        ),
        (vec!["--set", "image.flavour=ubi"], "no flavours"),
        (
            vec![
                "--set-json",
                r#"genericTargets.resources=[{"apiGroups":[""],"resources":["configmaps"],"verbs":["get"]}]"#,
            ],
            "genericTargets.enabled=true",
        ),
        (
            vec!["--set", "crds.conversion.enabled=true"],
            "no conversion webhook",
        ),
        (
            vec!["--set", "bitwarden-sdk-server.enabled=true"],
            "Bitwarden",
        ),
        (
            vec![
                "--set",
                "serviceMonitor.enabled=true,serviceMonitor.renderMode=failIfMissing",
            ],
            "not served",
        ),
    ] {
        let e = refused(&args);
        assert!(e.contains(message), "{args:?}: {e}");
    }
}

#[test]
fn schema_checks_types_and_lets_other_upstream_keys_through() {
    for (set, path) in [
        ("concurrent=two", "/concurrent"),
        ("replicaCount=many", "/replicaCount"),
        ("log.level=verbose", "/log/level"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        (
            "serviceMonitor.renderMode=sometimes",
            "/serviceMonitor/renderMode",
        ),
    ] {
        let e = refused(&["--set", set]);
        assert!(
            e.contains("values don't meet the specifications of the schema"),
            "{set}: {e}"
        );
        assert!(e.contains(path), "{set}: {e}");
    }
    let e = refused(&["--set-string", "leaderElect=yes"]);
    assert!(e.contains("/leaderElect"), "{e}");
    // keys upstream has (or will have) that this chart does not use are accepted
    render(&[
        "--set",
        "webhook.port=9443,certController.requeueInterval=1m,openshiftFinalizers=false,someNewKey.x=1",
    ]);
    render(&["-f", &fixture("production.yaml")]);
}

/// The binary's own parser takes the rendered arguments: started with them (on free ports and
/// without a cluster), it gets past argument parsing and fails only to reach a cluster.
#[test]
fn secure_metrics_values_become_the_controller_flags() {
    let plain = render(&[]).args();
    assert!(
        !plain.iter().any(|a| a.starts_with("--metrics-secure")),
        "{plain:?}"
    );
    let secure = render(&["--set", "metrics.listen.secure.enabled=true"]).args();
    for flag in [
        "--metrics-secure=true",
        "--metrics-cert-dir=/etc/tls",
        "--metrics-cert-name=/etc/tls/tls.crt",
        "--metrics-key-name=/etc/tls/tls.key",
    ] {
        assert!(secure.iter().any(|a| a == flag), "{flag} in {secure:?}");
    }
}

#[test]
fn rendered_args_are_accepted_by_the_controller() {
    for args in [
        vec![],
        vec![
            "--set".to_string(),
            "metrics.listen.secure.enabled=true".to_string(),
        ],
        vec!["-f".to_string(), fixture("production.yaml")],
        vec!["-f".to_string(), fixture("scoped.yaml")],
        vec!["-f".to_string(), fixture("install.yaml")],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut rendered = render(&args).args();
        rendered.push("--metrics-addr=127.0.0.1:0".into());
        rendered.push("--live-addr=127.0.0.1:0".into());
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_external-secrets-controller"))
            .args(&rendered)
            .env("KUBECONFIG", dir.path().join("none"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("HOME", dir.path())
            .output()
            .unwrap();
        let stderr = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{args:?}: {stderr}");
        for clap_error in ["unexpected argument", "invalid value", "Usage:"] {
            assert!(!stderr.contains(clap_error), "{args:?}: {stderr}");
        }
    }
}

// ---- devcluster ----

const NS: &str = "ops";
const RELEASE: &str = "external-secrets";
const NAME: &str = "external-secrets";

fn upgrade_install(env: &ToolEnv, values: &str) -> String {
    env.ok(
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

/// Starts the controller as the Deployment's pod spec says: its arguments (listening on free
/// loopback ports instead of :8080/:8082), its downward-API environment, and the token of the
/// chart's ServiceAccount. Returns the process and the URL of its readiness probe.
fn run_as_deployed(
    deployment: &Value,
    kubeconfig: &Path,
    pod_name: &str,
    log: PathBuf,
) -> (Process, String) {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert!(container.get("command").is_none());
    let live = free_port();
    let mut args = strings(&container["args"]);
    args.push(format!("--metrics-addr=127.0.0.1:{}", free_port()));
    args.push(format!("--live-addr=127.0.0.1:{live}"));
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
    let probe = &container["readinessProbe"]["httpGet"];
    assert_eq!(probe["port"], "live");
    let ready = format!("http://127.0.0.1:{live}{}", probe["path"].as_str().unwrap());
    let process = Process::spawn(
        env!("CARGO_BIN_EXE_external-secrets-controller"),
        &args,
        &vars,
        log,
    );
    (process, ready)
}

async fn wait_ready(process: &Process, ready: &str) {
    for _ in 0..600 {
        if http_try(ready).await == Some(200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, body) = http_get(ready).await;
    panic!(
        "readiness never passed ({code} {body}):\n{}",
        process.log_text()
    );
}

/// Every request `user` made is granted by one of `roles` (verb on resource[/subresource]).
fn assert_granted(cluster: &DevCluster, user: &str, roles: &[&Value]) {
    let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for role in roles {
        for (key, verbs) in grants(role) {
            // "group/resource[/sub]" → "resource[/sub]"
            let resource = if key.contains('.') {
                key.split_once('/').unwrap().1.to_string()
            } else {
                key
            };
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

const SYNC: &str = r#"
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: fake, namespace: default}
spec:
  provider:
    fake:
      data:
        - {key: db-password, value: s3cret}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: app, namespace: default}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: fake, kind: SecretStore}
  target: {name: app-secret}
  data:
    - secretKey: password
      remoteRef: {key: db-password}
"#;

// helm and kubectl run as blocking child processes: the server needs a worker of its own
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_style_release_installs_and_syncs_on_devcluster() {
    let (cluster, client) = start_cluster(&[], &[NS, "team-a"]).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let env = ToolEnv {
        dir,
        kubeconfig,
        tools: helm::tools(),
    };

    // install, with the CRDs, from an upstream-style values file
    let out = upgrade_install(&env, "install.yaml");
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert!(env.exists(&["crd", "externalsecrets.external-secrets.io"]));
    let deployment = env.get(&["deployment", NAME, "-n", NS]);
    let args = strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(args.contains(&"--concurrent=2".to_string()), "{args:?}");
    assert!(env.exists(&["serviceaccount", NAME, "-n", NS]));
    assert!(env.exists(&["service", "external-secrets-metrics", "-n", NS]));
    let cluster_role = env.get(&["clusterrole", "external-secrets-controller"]);
    assert_eq!(grants(&cluster_role), default_grants());
    let lease_role = env.get(&["role", "external-secrets-leaderelection", "-n", NS]);

    // the binary, run as the pod spec says with the ServiceAccount's token, becomes ready,
    // takes the Lease the Role names, and syncs an ExternalSecret
    let sa_kubeconfig = env.dir.path().join("sa.kubeconfig");
    let user = service_account_kubeconfig(&cluster, &client, NS, NAME, &sa_kubeconfig).await;
    let (process, ready) = run_as_deployed(
        &deployment,
        &sa_kubeconfig,
        "external-secrets-0",
        env.dir.path().join("controller.log"),
    );
    wait_ready(&process, &ready).await;
    wait_for(
        || async { env.exists(&["lease", "external-secrets-controller", "-n", NS]) },
        "the leader Lease",
    )
    .await;
    let manifest = env.dir.path().join("sync.yaml");
    std::fs::write(&manifest, SYNC).unwrap();
    env.ok("kubectl", &["apply", "-f", manifest.to_str().unwrap()]);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    wait_for(
        || async { secrets.get_opt("app-secret").await.unwrap().is_some() },
        "the ExternalSecret's Secret",
    )
    .await;
    drop(process);
    assert_granted(&cluster, &user, &[&cluster_role, &lease_role]);

    // the other fixtures' renderings apply too (kubectl apply of helm template)
    for (values, release) in [("scoped.yaml", "team-a"), ("upstream-defaults.yaml", "eso")] {
        let text = template(
            release,
            NS,
            &["-f", &fixture(values), "--set", "installCRDs=false"],
        )
        .unwrap();
        let file = env.dir.path().join(format!("{release}.yaml"));
        std::fs::write(&file, text).unwrap();
        let out = env.ok("kubectl", &["apply", "-f", file.to_str().unwrap()]);
        assert!(out.contains("deployment.apps/"), "{out}");
    }
    assert!(env.exists(&["role", "team-a-eso-controller", "-n", "team-a"]));
    assert!(env.exists(&["deployment", "eso-external-secrets", "-n", NS]));
}
