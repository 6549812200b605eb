//! The Helm chart, rendered by the real `helm` (from `cargo xtask tools`, or `$STRONGROOM_TOOLS`):
//! `helm lint --strict`, upstream's values keys with their meaning and defaults, the schema, the
//! values the chart refuses, and the controller's flag parser fed the rendered arguments. Objects
//! are parsed and their fields asserted. `chart_upgrade.rs` installs and upgrades it on devcluster.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::{Value, json};
use strongroom_testkit::helm::{self, Objects, str_of, strings};

fn chart() -> String {
    format!(
        "{}/../../deploy/charts/sealed-secrets",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/chart/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `helm template` of this chart: the output, or the error text.
fn template(release: &str, namespace: &str, args: &[&str]) -> Result<String, String> {
    helm::template(&chart(), release, namespace, args)
}

/// The rendered objects of a release `ss` in `kube-system` with `args` (values files, --set).
fn render(args: &[&str]) -> Objects {
    render_as("ss", "kube-system", args)
}

fn render_as(release: &str, namespace: &str, args: &[&str]) -> Objects {
    let text = template(release, namespace, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    Objects::parse(&text)
}

/// The error of a rendering that must fail.
fn refused(args: &[&str]) -> String {
    match template("ss", "kube-system", args) {
        Ok(out) => panic!("{args:?} rendered instead of failing:\n{out}"),
        Err(e) => e,
    }
}

/// The verbs a Role or ClusterRole grants on `resource` (any API group), sorted.
fn verbs(role: &Value, resource: &str) -> BTreeSet<String> {
    role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| strings(&r["resources"]).iter().any(|x| x == resource))
        .flat_map(|r| strings(&r["verbs"]))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn lint_strict_passes_with_defaults_and_every_fixture() {
    let mut runs = vec![Vec::new()];
    for f in [
        "upstream-defaults.yaml",
        "controller-flags.yaml",
        "pod.yaml",
        "exposure.yaml",
        "monitoring.yaml",
        "common.yaml",
        "upstream-install.yaml",
        "upstream-upgrade.yaml",
    ] {
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

/// A user who copied upstream's whole values.yaml gets exactly what the defaults give.
#[test]
fn upstream_values_file_at_its_defaults_renders_as_the_defaults() {
    let defaults = render(&[]);
    let upstream = render(&["-f", &fixture("upstream-defaults.yaml")]);
    assert_eq!(defaults.0, upstream.0);
}

/// Every upstream key is in the chart's values.yaml with upstream's default; the documented
/// exceptions are listed here.
#[test]
fn every_upstream_key_has_its_upstream_default() {
    fn leaves(v: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
        match v.as_object() {
            Some(map) if !map.is_empty() => {
                for (k, v) in map {
                    leaves(v, &format!("{prefix}{k}."), out);
                }
            }
            _ => {
                out.insert(prefix.trim_end_matches('.').to_string(), v.clone());
            }
        }
    }
    let read = |path: &str| -> Value {
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let (mut upstream, mut ours) = (BTreeMap::new(), BTreeMap::new());
    leaves(&read(&fixture("upstream-defaults.yaml")), "", &mut upstream);
    leaves(&read(&format!("{}/values.yaml", chart())), "", &mut ours);
    // upstream's true/false grant every namespace even when additionalNamespaces narrows the
    // watch; null decides by additionalNamespaces (the same objects without them)
    let differ = ["rbac.clusterRole", "rbac.namespacedRoles"];
    for (key, value) in &upstream {
        let mine = ours
            .get(key)
            .unwrap_or_else(|| panic!("{key} is missing from values.yaml"));
        if differ.contains(&key.as_str()) {
            assert_eq!(mine, &Value::Null, "{key}");
        } else {
            assert_eq!(mine, value, "default of {key}");
        }
    }
    // the image keys (left out of the fixture) are there too, with our image
    for key in [
        "image.registry",
        "image.repository",
        "image.tag",
        "image.pullPolicy",
        "image.pullSecrets",
    ] {
        assert!(ours.contains_key(key), "{key}");
    }
    assert_eq!(ours["image.pullPolicy"], "IfNotPresent");
    assert_eq!(ours["image.pullSecrets"], json!([]));
    assert!(upstream.len() >= 139, "{}", upstream.len());
}

#[test]
fn names_follow_upstream_rule() {
    let name_of = |release: &str, sets: &[&str]| -> String {
        let objects = render_as(release, "kube-system", sets);
        str_of(&objects.of_kind("Deployment")[0]["metadata"]["name"])
    };
    // the release name when it contains the chart name, else "<release>-sealed-secrets"
    assert_eq!(name_of("sealed-secrets", &[]), "sealed-secrets");
    assert_eq!(
        name_of("sealed-secrets-controller", &[]),
        "sealed-secrets-controller"
    );
    assert_eq!(name_of("ss", &[]), "ss-sealed-secrets");
    assert_eq!(name_of("ss", &["--set", "nameOverride=vault"]), "ss-vault");
    assert_eq!(
        name_of("vault-a", &["--set", "nameOverride=vault"]),
        "vault-a"
    );
    assert_eq!(
        name_of(
            "ss",
            &["--set", "fullnameOverride=sealed-secrets-controller"]
        ),
        "sealed-secrets-controller"
    );
    let long = "a".repeat(70);
    assert_eq!(
        name_of("ss", &["--set", &format!("fullnameOverride={long}-")]),
        "a".repeat(63)
    );

    // every name-derived object follows, and the selector uses nameOverride
    let objects = render(&["--set", "nameOverride=vault"]);
    for (kind, name) in [
        ("ServiceAccount", "ss-vault"),
        ("Service", "ss-vault"),
        ("Service", "ss-vault-metrics"),
        ("ClusterRole", "secrets-unsealer"),
        ("ClusterRoleBinding", "ss-vault"),
        ("Role", "ss-vault-key-admin"),
        ("RoleBinding", "ss-vault-key-admin"),
        ("Role", "ss-vault-service-proxier"),
        ("RoleBinding", "ss-vault-service-proxier"),
    ] {
        objects.get(kind, name);
    }
    let deployment = objects.get("Deployment", "ss-vault");
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": "ss"})
    );
}

#[test]
fn defaults_render_upstream_objects_for_this_controller() {
    let objects = render_as("sealed-secrets", "kube-system", &[]);
    let ids = objects.ids();
    let ns = "kube-system";
    let want: BTreeSet<(String, String, String)> = [
        ("ServiceAccount", "sealed-secrets", ns),
        ("ClusterRole", "secrets-unsealer", ""),
        ("ClusterRoleBinding", "sealed-secrets", ""),
        ("Role", "sealed-secrets-key-admin", ns),
        ("RoleBinding", "sealed-secrets-key-admin", ns),
        ("Role", "sealed-secrets-service-proxier", ns),
        ("RoleBinding", "sealed-secrets-service-proxier", ns),
        ("Service", "sealed-secrets", ns),
        ("Service", "sealed-secrets-metrics", ns),
        ("Deployment", "sealed-secrets", ns),
    ]
    .iter()
    .map(|(k, n, s)| (k.to_string(), n.to_string(), s.to_string()))
    .collect();
    assert_eq!(ids, want);

    let deployment = objects.get("Deployment", "sealed-secrets");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert!(deployment["spec"].get("revisionHistoryLimit").is_none());
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "sealed-secrets");
    assert_eq!(
        pod["securityContext"],
        json!({"fsGroup": 65534, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    let c = objects.container();
    assert_eq!(
        c["image"],
        format!(
            "ghcr.io/strongroom/sealed-secrets-controller:{}",
            chart_app_version()
        )
    );
    // the image's entrypoint runs: no command
    assert!(c.get("command").is_none());
    assert_eq!(
        objects.args(),
        [
            "--update-status",
            "--key-prefix",
            "sealed-secrets-key",
            "--listen-addr",
            ":8080",
            "--listen-metrics-addr",
            ":8081"
        ]
    );
    assert_eq!(
        c["env"],
        json!([
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ])
    );
    assert_eq!(
        c["ports"],
        json!([
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 8081, "protocol": "TCP"},
        ])
    );
    let timings = json!({"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1,
        "failureThreshold": 3, "successThreshold": 1});
    let with = |handler: Value| {
        let mut p = timings.clone();
        p.as_object_mut()
            .unwrap()
            .extend(handler.as_object().unwrap().clone());
        p
    };
    assert_eq!(
        c["livenessProbe"],
        with(json!({"httpGet": {"path": "/healthz", "port": "http"}}))
    );
    assert_eq!(
        c["readinessProbe"],
        with(json!({"httpGet": {"path": "/readyz", "port": "metrics"}}))
    );
    assert!(c.get("startupProbe").is_none());
    assert_eq!(
        c["securityContext"],
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": true, "runAsNonRoot": true, "runAsUser": 1001})
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "tmp", "mountPath": "/tmp"}])
    );
    assert_eq!(pod["volumes"], json!([{"name": "tmp", "emptyDir": {}}]));

    // least privilege: what unsealing needs, cluster-wide
    let unsealer = objects.get("ClusterRole", "secrets-unsealer");
    assert_eq!(verbs(unsealer, "sealedsecrets"), set(&["list", "watch"]));
    assert_eq!(verbs(unsealer, "sealedsecrets/status"), set(&["patch"]));
    assert_eq!(
        verbs(unsealer, "secrets"),
        set(&["get", "list", "watch", "create", "patch", "update"])
    );
    assert_eq!(verbs(unsealer, "events"), set(&["create", "patch"]));
    assert_eq!(verbs(unsealer, "namespaces"), set(&[]));
    let binding = objects.get("ClusterRoleBinding", "sealed-secrets");
    assert_eq!(binding["roleRef"]["name"], "secrets-unsealer");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "sealed-secrets", "namespace": "kube-system"}])
    );
    // key Secrets and the leader Lease in the controller's namespace
    let key_admin = objects.get("Role", "sealed-secrets-key-admin");
    assert_eq!(
        verbs(key_admin, "secrets"),
        set(&["create", "get", "list", "watch"])
    );
    assert_eq!(
        verbs(key_admin, "leases"),
        set(&["create", "get", "update"])
    );
    let lease_rule = key_admin["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| strings(&r["verbs"]).contains(&"update".to_string()))
        .unwrap();
    assert_eq!(
        lease_rule["resourceNames"],
        json!(["sealed-secrets-controller"])
    );
    // kubeseal through the API server's proxy
    let proxier = objects.get("Role", "sealed-secrets-service-proxier");
    assert_eq!(
        proxier["rules"][1]["resourceNames"],
        json!([
            "http:sealed-secrets:",
            "http:sealed-secrets:http",
            "sealed-secrets"
        ])
    );
    assert_eq!(
        objects.get("RoleBinding", "sealed-secrets-service-proxier")["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}])
    );
    let service = objects.get("Service", "sealed-secrets");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}])
    );
    assert_eq!(service["spec"]["type"], "ClusterIP");
    let metrics = objects.get("Service", "sealed-secrets-metrics");
    assert_eq!(metrics["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(
        metrics["metadata"]["labels"]["app.kubernetes.io/component"],
        "metrics"
    );
}

fn chart_app_version() -> String {
    let text = std::fs::read_to_string(format!("{}/Chart.yaml", chart())).unwrap();
    let chart: Value = serde_yaml_ng::from_str(&text).unwrap();
    str_of(&chart["appVersion"])
}

#[test]
fn controller_values_become_upstream_flags() {
    let objects = render(&["-f", &fixture("controller-flags.yaml")]);
    assert_eq!(
        objects.args(),
        [
            "--update-status=false",
            "--skip-recreate",
            "--key-renew-period",
            "0",
            "--key-ttl",
            "8760h",
            "--key-cutoff-time",
            "Mon, 14 Oct 2024 21:45:30 +0200",
            "--rate-limit",
            "5",
            "--rate-limit-burst",
            "10",
            "--key-prefix",
            "my-keys",
            "--additional-namespaces",
            "team-a,team-b",
            "--privatekey-annotations",
            "backup.example.com/owner=platform,team=infra",
            "--privatekey-labels",
            "tier=keys",
            "--log-info-stdout",
            "--log-level",
            "ERROR",
            "--log-format",
            "json",
            "--listen-addr",
            ":9080",
            "--listen-metrics-addr",
            ":9081",
            "--max-unseal-retries",
            "7",
            "--watch-for-secrets",
            "--kubeclient-qps",
            "-1",
            "--kubeclient-burst",
            "20",
            "--concurrency=8",
        ]
    );
    let c = objects.container();
    assert_eq!(c["ports"][0]["containerPort"], 9080);
    assert_eq!(c["ports"][1]["containerPort"], 9081);
    // probes use the port names, so they follow
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");

    // additionalNamespaces: one unsealing Role per watched namespace (the controller's own
    // first), no ClusterRole; skipRecreate drops list/watch on Secrets
    assert!(objects.of_kind("ClusterRole").is_empty());
    assert!(objects.of_kind("ClusterRoleBinding").is_empty());
    let unsealers: Vec<String> = objects
        .of_kind("Role")
        .into_iter()
        .filter(|r| r["metadata"]["name"] == "secrets-unsealer")
        .map(|r| str_of(&r["metadata"]["namespace"]))
        .collect();
    assert_eq!(unsealers, ["kube-system", "team-a", "team-b"]);
    for role in objects.of_kind("Role") {
        if role["metadata"]["name"] == "secrets-unsealer" {
            assert_eq!(
                verbs(role, "secrets"),
                set(&["get", "create", "patch", "update"])
            );
        }
    }
    for ns in ["kube-system", "team-a", "team-b"] {
        let binding = objects
            .of_kind("RoleBinding")
            .into_iter()
            .find(|b| {
                b["metadata"]["name"] == "ss-sealed-secrets" && b["metadata"]["namespace"] == ns
            })
            .unwrap_or_else(|| panic!("no RoleBinding in {ns}"));
        assert_eq!(binding["roleRef"]["name"], "secrets-unsealer");
        assert_eq!(binding["subjects"][0]["namespace"], "kube-system");
    }
}

/// The arguments the chart renders are what the controller's flag parser accepts: it gets past
/// parsing and its settings, to the point where it looks for a cluster.
#[test]
fn rendered_flags_parse_in_the_controller() {
    for values in [
        None,
        Some("controller-flags.yaml"),
        Some("upstream-install.yaml"),
    ] {
        let mut args: Vec<String> = vec![];
        if let Some(v) = values {
            args.extend(["-f".to_string(), fixture(v)]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut flags = render(&args).args();
        // free ports on loopback instead of the pod's
        for (i, flag) in flags.clone().iter().enumerate() {
            if flag == "--listen-addr" || flag == "--listen-metrics-addr" {
                flags[i + 1] = "127.0.0.1:0".to_string();
            }
        }
        let home = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sealed-secrets-controller"))
            .args(&flags)
            .env_clear()
            .env("HOME", home.path())
            .env("KUBECONFIG", home.path().join("no-kubeconfig"))
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(2), "{values:?} {flags:?}: {stderr}");
        assert!(
            stderr.contains("sealed-secrets controller starting"),
            "{values:?} {flags:?}: {stderr}"
        );
    }
}

#[test]
fn pod_values_shape_the_pod() {
    let objects = render(&["-f", &fixture("pod.yaml")]);
    let deployment = objects.get("Deployment", "ss-sealed-secrets");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["revisionHistoryLimit"], 3);
    let template = &deployment["spec"]["template"];
    // podLabels add labels but cannot change the selector's
    assert_eq!(
        template["metadata"]["labels"],
        json!({"app.kubernetes.io/name": "sealed-secrets", "app.kubernetes.io/instance": "ss", "team": "infra"})
    );
    assert_eq!(
        template["metadata"]["annotations"],
        json!({"checksum/config": "abc"})
    );
    let pod = &template["spec"];
    assert_eq!(
        pod["imagePullSecrets"],
        json!([{"name": "regcred"}, {"name": "other"}])
    );
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["runtimeClassName"], "gvisor");
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["hostUsers"], false);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"],
        100
    );
    // the chart's keys stay unless overridden
    assert_eq!(
        pod["securityContext"],
        json!({"fsGroup": 2000, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": "ca", "configMap": {"name": "corp-ca"}}, {"name": "tmp", "emptyDir": {}}])
    );
    let c = objects.container();
    assert_eq!(
        c["image"],
        "registry.example.com/mirror/sealed-secrets-controller:1.2.3"
    );
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["securityContext"]["runAsUser"], 4242);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}})
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "ca", "mountPath": "/etc/ssl/corp"}, {"name": "tmp", "mountPath": "/tmp"}])
    );
    // hostNetwork: the container ports are host ports too
    assert_eq!(c["ports"][0]["hostPort"], 8080);
    assert_eq!(c["ports"][1]["hostPort"], 8081);
    // startup: the chart's TCP check with the values' timings; liveness: the values' timings;
    // readiness disabled, so its custom form applies
    assert_eq!(c["startupProbe"]["tcpSocket"], json!({"port": "http"}));
    assert_eq!(c["startupProbe"]["failureThreshold"], 30);
    assert_eq!(c["livenessProbe"]["initialDelaySeconds"], 5);
    assert_eq!(c["livenessProbe"]["periodSeconds"], 20);
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "http"})
    );
    assert_eq!(
        c["readinessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": "http"}})
    );

    // without hostNetwork, hostPorts choose host ports
    let objects = render(&["--set", "hostPorts.metrics=9999"]);
    let ports = &objects.container()["ports"];
    assert!(ports[0].get("hostPort").is_none());
    assert_eq!(ports[1]["hostPort"], 9999);

    // enabled: false drops a security context, as upstream
    let objects = render(&[
        "--set",
        "podSecurityContext.enabled=false,containerSecurityContext.enabled=false",
    ]);
    let deployment = &objects.of_kind("Deployment")[0];
    assert!(
        deployment["spec"]["template"]["spec"]
            .get("securityContext")
            .is_none()
    );
    assert!(objects.container().get("securityContext").is_none());

    // disabled probes with no custom form: none
    let objects = render(&[
        "--set",
        "livenessProbe.enabled=false,readinessProbe.enabled=false",
    ]);
    assert!(objects.container().get("livenessProbe").is_none());
    assert!(objects.container().get("readinessProbe").is_none());

    // disabled probes with a custom form: the custom form, rendered as a template
    let objects = render(&[
        "--set",
        "livenessProbe.enabled=false,startupProbe.enabled=false",
        "--set-json",
        r#"customLivenessProbe={"exec":{"command":["/bin/check","{{ .Release.Name }}"]}}"#,
        "--set-json",
        r#"customStartupProbe={"tcpSocket":{"port":8080},"failureThreshold":7}"#,
    ]);
    let c = objects.container();
    assert_eq!(
        c["livenessProbe"],
        json!({"exec": {"command": ["/bin/check", "ss"]}})
    );
    assert_eq!(
        c["startupProbe"],
        json!({"tcpSocket": {"port": 8080}, "failureThreshold": 7})
    );
    // an enabled probe wins over its custom form
    let objects = render(&[
        "--set-json",
        r#"customLivenessProbe={"exec":{"command":["/bin/check"]}}"#,
    ]);
    assert_eq!(
        objects.container()["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "http"})
    );

    // serviceAccount.automount is the ServiceAccount's automountServiceAccountToken
    for (value, expected) in [("true", true), ("false", false)] {
        let objects = render(&["--set", &format!("serviceAccount.automount={value}")]);
        let sa = &objects.of_kind("ServiceAccount")[0];
        assert_eq!(sa["automountServiceAccountToken"], expected);
    }
}

#[test]
fn command_and_args_replace_the_defaults_and_extra_args_append() {
    let objects = render(&[
        "--set-json",
        r#"command=["/usr/local/bin/sealed-secrets-controller"]"#,
        "--set-json",
        r#"args=["--key-prefix={{ .Release.Name }}-keys","--update-status"]"#,
        "--set-json",
        r#"extraArgs=["--resync-period=1m"]"#,
    ]);
    let c = objects.container();
    assert_eq!(
        strings(&c["command"]),
        ["/usr/local/bin/sealed-secrets-controller"]
    );
    assert_eq!(
        objects.args(),
        [
            "--key-prefix=ss-keys",
            "--update-status",
            "--resync-period=1m"
        ]
    );
}

#[test]
fn exposure_values_shape_services_ingress_and_network_policy() {
    let objects = render(&["-f", &fixture("exposure.yaml")]);
    let api = objects.get("Service", "ss-sealed-secrets");
    assert_eq!(api["spec"]["type"], "LoadBalancer");
    assert_eq!(api["spec"]["loadBalancerClass"], "service.k8s.aws/nlb");
    assert_eq!(
        api["spec"]["ports"],
        json!([{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "nodePort": 30080}])
    );
    assert_eq!(
        api["metadata"]["annotations"],
        json!({"external-dns.alpha.kubernetes.io/hostname": "seal.example.com"})
    );
    assert_eq!(api["metadata"]["labels"]["exposed"], "yes");
    let metrics = objects.get("Service", "ss-sealed-secrets-metrics");
    assert_eq!(metrics["spec"]["type"], "NodePort");
    assert!(metrics["spec"].get("loadBalancerClass").is_none());
    assert_eq!(
        metrics["spec"]["ports"],
        json!([{"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP", "nodePort": 30081}])
    );
    assert_eq!(
        metrics["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );

    let ingress = objects.get("Ingress", "ss-sealed-secrets");
    assert_eq!(ingress["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    let backend = json!({"service": {"name": "ss-sealed-secrets", "port": {"name": "http"}}});
    let rules = &ingress["spec"]["rules"];
    assert_eq!(rules[0]["host"], "seal.example.com");
    // extraPaths first, then the path to the controller
    assert_eq!(rules[0]["http"]["paths"][0]["path"], "/healthz");
    assert_eq!(
        rules[0]["http"]["paths"][1],
        json!({"path": "/v1/cert.pem", "pathType": "ImplementationSpecific", "backend": backend})
    );
    assert_eq!(rules[1]["host"], "seal.internal");
    assert_eq!(rules[1]["http"]["paths"][0]["backend"], backend);
    // tls with cert-manager's annotation: "<hostname>-tls", then extraTls
    assert_eq!(
        ingress["spec"]["tls"],
        json!([
            {"hosts": ["seal.example.com"], "secretName": "seal.example.com-tls"},
            {"hosts": ["seal.internal"], "secretName": "seal-internal-tls"},
        ])
    );
    // no key material from the chart with cert-manager
    assert!(objects.of_kind("Secret").is_empty());

    let policy = objects.get("NetworkPolicy", "ss-sealed-secrets");
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "sealed-secrets", "app.kubernetes.io/instance": "ss"})
    );
    // the pod's ports, whatever the Services' ports are
    assert_eq!(
        policy["spec"]["ingress"],
        json!([{"ports": [{"port": "http", "protocol": "TCP"}, {"port": "metrics", "protocol": "TCP"}]}])
    );
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        policy["spec"]["egress"],
        json!([{"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"protocol": "TCP", "port": 6443}]}])
    );
}

#[test]
fn ingress_tls_secrets_from_values_or_self_signed() {
    // a Secret from PEM values; tls then points at it when it is named "<hostname>-tls"
    let objects = render(&[
        "--set",
        "ingress.enabled=true,ingress.tls=true",
        "--set-json",
        r#"ingress.secrets=[{"name":"sealed-secrets.local-tls","key":"KEY","certificate":"CERT"}]"#,
    ]);
    let secret = objects.get("Secret", "sealed-secrets.local-tls");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["data"]["tls.crt"], "Q0VSVA==");
    assert_eq!(secret["data"]["tls.key"], "S0VZ");
    let ingress = objects.get("Ingress", "ss-sealed-secrets");
    assert_eq!(
        ingress["spec"]["tls"][0]["secretName"],
        "sealed-secrets.local-tls"
    );

    // self-signed at render time
    let objects = render(&[
        "--set",
        "ingress.enabled=true,ingress.tls=true,ingress.selfSigned=true",
    ]);
    let secret = objects.get("Secret", "sealed-secrets.local-tls");
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(secret["data"][key].as_str().unwrap().len() > 100, "{key}");
    }

    // tls with nothing to provide the certificate: plain HTTP, as upstream
    let objects = render(&["--set", "ingress.enabled=true,ingress.tls=true"]);
    assert!(
        objects.get("Ingress", "ss-sealed-secrets")["spec"]
            .get("tls")
            .is_none()
    );
    // no Ingress without the controller
    let objects = render(&["--set", "ingress.enabled=true,createController=false"]);
    assert!(objects.of_kind("Ingress").is_empty());
}

#[test]
fn monitoring_values_render_operator_objects_dashboard_and_pdb() {
    let objects = render(&["-f", &fixture("monitoring.yaml")]);
    let monitor = objects.get("ServiceMonitor", "ss-sealed-secrets");
    assert_eq!(monitor["metadata"]["namespace"], "monitoring");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        monitor["metadata"]["annotations"],
        json!({"note": "scraped"})
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["honorLabels"], true);
    assert_eq!(endpoint["interval"], "15s");
    assert_eq!(endpoint["scrapeTimeout"], "5s");
    assert_eq!(endpoint["metricRelabelings"][0]["action"], "drop");
    assert_eq!(endpoint["relabelings"][0]["targetLabel"], "cluster");
    assert_eq!(
        monitor["spec"]["namespaceSelector"],
        json!({"matchNames": ["kube-system"]})
    );

    let rule = objects.get("PrometheusRule", "ss-sealed-secrets");
    assert_eq!(rule["metadata"]["namespace"], "kube-system");
    assert_eq!(
        rule["spec"]["groups"][0]["rules"][0]["alert"],
        "SealedSecretsControllerNotReady"
    );

    let dashboard = objects.get("ConfigMap", "ss-sealed-secrets-sealed-secrets-controller");
    assert_eq!(dashboard["metadata"]["namespace"], "grafana");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        dashboard["metadata"]["annotations"]["grafana_folder"],
        "Security"
    );
    let json_text = str_of(&dashboard["data"]["sealed-secrets-controller.json"]);
    let on_disk = std::fs::read_to_string(format!(
        "{}/dashboards/sealed-secrets-controller.json",
        chart()
    ))
    .unwrap();
    assert_eq!(json_text.trim(), on_disk.trim());

    let pdb = objects.get("PodDisruptionBudget", "ss-sealed-secrets");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(
        pdb["spec"],
        json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "sealed-secrets", "app.kubernetes.io/instance": "ss"}}})
    );
    let objects = render(&["--set", "pdb.create=true,pdb.minAvailable=50%"]);
    assert_eq!(
        objects.get("PodDisruptionBudget", "ss-sealed-secrets")["spec"]["minAvailable"],
        "50%"
    );
    // none of these by default
    let objects = render(&[]);
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
        "PodDisruptionBudget",
    ] {
        assert!(objects.of_kind(kind).is_empty(), "{kind}");
    }
}

/// Our own dashboard, on upstream's metric names: every series it queries exists upstream, and
/// it shows each of the main ones.
#[test]
fn dashboard_queries_upstream_metric_names() {
    let text = std::fs::read_to_string(format!(
        "{}/dashboards/sealed-secrets-controller.json",
        chart()
    ))
    .unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if (k == "expr" || k == "query" || k == "definition") && v.is_string() {
                        out.push(str_of(v));
                    }
                    collect(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    collect(&dashboard, &mut exprs);
    let used: BTreeSet<String> = exprs
        .iter()
        .flat_map(|e| {
            e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("sealed_secrets_controller_"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let upstream = set(&[
        "sealed_secrets_controller_build_info",
        "sealed_secrets_controller_unseal_requests_total",
        "sealed_secrets_controller_unseal_errors_total",
        "sealed_secrets_controller_condition_info",
        "sealed_secrets_controller_http_requests_total",
        "sealed_secrets_controller_http_request_duration_seconds_bucket",
    ]);
    assert!(used.is_subset(&upstream), "{used:?}");
    for main in [
        "sealed_secrets_controller_unseal_requests_total",
        "sealed_secrets_controller_unseal_errors_total",
        "sealed_secrets_controller_condition_info",
        "sealed_secrets_controller_http_requests_total",
        "sealed_secrets_controller_http_request_duration_seconds_bucket",
    ] {
        assert!(used.contains(main), "{main} is not shown");
    }
    // upstream's labels
    let all = exprs.join("\n");
    for label in [
        "by (reason)",
        "by (namespace)",
        "by (path, code)",
        "condition=\"Synced\"",
    ] {
        assert!(all.contains(label), "{label}");
    }
    assert_eq!(dashboard["uid"], "strongroom-sealed-secrets");
}

#[test]
fn common_values_reach_every_object() {
    let objects = render(&["-f", &fixture("common.yaml")]);
    for o in &objects.0 {
        let id = format!("{} {}", o["kind"], o["metadata"]["name"]);
        if o["kind"] == "ConfigMap" {
            continue; // extraDeploy objects are the user's, as given
        }
        assert_eq!(o["metadata"]["labels"]["cost-center"], "42", "{id}");
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/name"], "vault",
            "{id}"
        );
        assert_eq!(o["metadata"]["annotations"]["owner"], "ss-team", "{id}");
        let cluster_scoped =
            ["ClusterRole", "ClusterRoleBinding"].contains(&o["kind"].as_str().unwrap());
        if !cluster_scoped {
            assert_eq!(o["metadata"]["namespace"], "secrets", "{id}");
        }
    }
    let sa = objects.get("ServiceAccount", "sealer");
    assert_eq!(sa["automountServiceAccountToken"], false);
    assert_eq!(sa["metadata"]["labels"]["sa"], "yes");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::1:role/sealer"
    );
    let deployment = objects.get("Deployment", "ss-vault");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "sealer"
    );
    let role = objects.get("ClusterRole", "sealer-unsealer");
    assert_eq!(role["metadata"]["labels"]["rbac"], "yes");
    let binding = objects.get("ClusterRoleBinding", "ss-vault");
    assert_eq!(binding["roleRef"]["name"], "sealer-unsealer");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "sealer", "namespace": "secrets"}])
    );
    assert_eq!(
        objects.get("RoleBinding", "ss-vault-service-proxier")["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "sealers"}])
    );
    assert_eq!(
        objects.get("ConfigMap", "extra-map")["data"]["release"],
        "ss"
    );
    objects.get("ConfigMap", "ss-from-string");
}

#[test]
fn rbac_keys_keep_upstream_meaning() {
    let rbac_ids = |args: &[&str]| -> BTreeSet<String> {
        render(args)
            .0
            .iter()
            .filter(|o| str_of(&o["apiVersion"]).starts_with("rbac."))
            .map(|o| {
                format!(
                    "{} {} {}",
                    str_of(&o["kind"]),
                    str_of(&o["metadata"]["namespace"]),
                    str_of(&o["metadata"]["name"])
                )
            })
            .collect()
    };
    let base = [
        "Role kube-system ss-sealed-secrets-key-admin",
        "RoleBinding kube-system ss-sealed-secrets-key-admin",
        "Role kube-system ss-sealed-secrets-service-proxier",
        "RoleBinding kube-system ss-sealed-secrets-service-proxier",
    ];
    let with = |extra: &[&str]| -> BTreeSet<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let cluster = [
        "ClusterRole  secrets-unsealer",
        "ClusterRoleBinding  ss-sealed-secrets",
    ];
    assert_eq!(rbac_ids(&[]), with(&cluster));
    // clusterRole true keeps the ClusterRole with additionalNamespaces (upstream's defaults),
    // with the right to check that they exist
    let objects = render(&[
        "--set",
        "additionalNamespaces={team-a},rbac.clusterRole=true,rbac.namespacedRoles=false",
    ]);
    let role = objects.get("ClusterRole", "secrets-unsealer");
    assert_eq!(verbs(role, "namespaces"), set(&["get"]));
    let rule = role["rules"].as_array().unwrap().last().unwrap();
    assert_eq!(rule["resourceNames"], json!(["team-a"]));
    objects.get("ClusterRoleBinding", "ss-sealed-secrets");
    // namespacedRoles: Roles named namespacedRolesName, bindings named after the release
    assert_eq!(
        rbac_ids(&[
            "--set",
            "additionalNamespaces={team-a},rbac.namespacedRoles=true,rbac.namespacedRolesName=unseal"
        ]),
        with(&[
            "Role kube-system unseal",
            "RoleBinding kube-system ss-sealed-secrets",
            "Role team-a unseal",
            "RoleBinding team-a ss-sealed-secrets",
        ])
    );
    // both false: bind a ClusterRole made elsewhere, as upstream
    assert_eq!(
        rbac_ids(&[
            "--set",
            "rbac.clusterRole=false,rbac.namespacedRoles=false,rbac.clusterRoleName=mine"
        ]),
        with(&["ClusterRoleBinding  ss-sealed-secrets"])
    );
    assert_eq!(
        render(&[
            "--set",
            "rbac.clusterRole=false,rbac.namespacedRoles=false,rbac.clusterRoleName=mine"
        ])
        .get("ClusterRoleBinding", "ss-sealed-secrets")["roleRef"]["name"],
        "mine"
    );
    assert!(rbac_ids(&["--set", "rbac.create=false"]).is_empty());
    // without RBAC the RBAC keys are not checked
    assert!(rbac_ids(&["--set", "rbac.create=false,rbac.namespacedRoles=true"]).is_empty());
    assert_eq!(
        rbac_ids(&["--set", "rbac.serviceProxier.create=false"]),
        [
            "Role kube-system ss-sealed-secrets-key-admin",
            "RoleBinding kube-system ss-sealed-secrets-key-admin",
            "ClusterRole  secrets-unsealer",
            "ClusterRoleBinding  ss-sealed-secrets",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    assert!(
        !rbac_ids(&["--set", "rbac.serviceProxier.bind=false"])
            .contains("RoleBinding kube-system ss-sealed-secrets-service-proxier")
    );
    // Secrets are deleted only with --old-gc-behavior
    let objects = render(&["--set-json", r#"extraArgs=["--old-gc-behavior"]"#]);
    assert!(verbs(objects.get("ClusterRole", "secrets-unsealer"), "secrets").contains("delete"));
    assert!(
        !verbs(
            render(&[]).get("ClusterRole", "secrets-unsealer"),
            "secrets"
        )
        .contains("delete")
    );
}

#[test]
fn without_the_controller_only_the_rest_renders() {
    let objects = render(&["--set", "createController=false"]);
    for kind in ["Deployment", "Service", "Ingress"] {
        assert!(objects.of_kind(kind).is_empty(), "{kind}");
    }
    objects.get("ServiceAccount", "ss-sealed-secrets");
    objects.get("ClusterRole", "secrets-unsealer");
    // the checks still run
    let e = refused(&["--set", "createController=false,rbac.pspEnabled=true"]);
    assert!(e.contains("PodSecurityPolicy"), "{e}");
}

#[test]
fn schema_refuses_typos_and_wrong_types() {
    for (set, message) in [
        // a typo'd top-level key
        (
            "updateStatuss=false",
            "additional properties 'updateStatuss' not allowed",
        ),
        // nested typos
        ("image.tagg=1", "additional properties 'tagg' not allowed"),
        (
            "rbac.serviceProxier.craete=false",
            "additional properties 'craete' not allowed",
        ),
        (
            "metrics.serviceMonitor.enable=true",
            "additional properties 'enable' not allowed",
        ),
        // wrong types and values
        ("replicas=two", "/replicas"),
        ("containerPorts.http=http", "/containerPorts/http"),
        ("logFormat=yaml", "/logFormat"),
        ("service.type=External", "/service/type"),
        ("secretName=Keys_1", "/secretName"),
    ] {
        let e = refused(&["--set", set]);
        assert!(
            e.contains("values don't meet the specifications of the schema"),
            "{set}: {e}"
        );
        assert!(e.contains(message), "{set}: {e}");
    }
    for (set, message) in [
        ("updateStatus=yes", "/updateStatus"),
        ("additionalNamespaces=team-a", "/additionalNamespaces"),
        ("rateLimit=fast", "/rateLimit"),
    ] {
        let e = refused(&["--set-string", set]);
        assert!(e.contains(message), "{set}: {e}");
    }
    // label values must be strings (Kubernetes refuses the object otherwise)
    let e = refused(&["--set", "podLabels.tier=3"]);
    assert!(e.contains("/podLabels/tier"), "{e}");
    // a typo in a values file, as users make them
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(
        &file,
        "fullnameOverride: sealed-secrets-controller\nkeyRenewPeriod: 720h\n",
    )
    .unwrap();
    let e = refused(&["-f", file.to_str().unwrap()]);
    assert!(
        e.contains("additional properties 'keyRenewPeriod' not allowed"),
        "{e}"
    );
}

#[test]
fn values_that_cannot_apply_are_refused_with_a_reason() {
    for (args, message) in [
        (
            vec!["--set", "rbac.pspEnabled=true"],
            "PodSecurityPolicy was removed in Kubernetes 1.25",
        ),
        (
            vec![
                "--set",
                "ingress.enabled=true,ingress.apiVersion=networking.k8s.io/v1beta1",
            ],
            "only networking.k8s.io/v1 is rendered",
        ),
        (vec!["--set", "kubeVersion=1.21.3"], "needs 1.22 or later"),
        (
            vec![
                "--set",
                "image.registry=docker.io,image.repository=bitnami/sealed-secrets-controller,image.tag=0.36.6",
            ],
            "is upstream's controller image",
        ),
        (
            vec!["--set-json", r#"command=["controller"]"#],
            "is upstream's binary",
        ),
        (
            vec!["--set", "rbac.namespacedRoles=true"],
            "rbac.namespacedRoles needs additionalNamespaces",
        ),
        (
            vec![
                "--set",
                "additionalNamespaces={a},rbac.clusterRole=true,rbac.namespacedRoles=true",
            ],
            "both true",
        ),
        (
            vec!["--set", "pdb.create=true,pdb.maxUnavailable=1"],
            "pdb.minAvailable and pdb.maxUnavailable are both set",
        ),
        (
            vec!["--set-string", "privateKeyLabels.team="],
            "label values have to be non-empty strings",
        ),
        (
            vec!["--set-string", "privateKeyAnnotations.note="],
            "annotation values have to be non-empty strings",
        ),
        (
            vec![
                "--set",
                "networkPolicy.enabled=true,networkPolicy.egress.enabled=true",
            ],
            "set networkPolicy.egress.kubeapiCidr and kubeapiPort",
        ),
    ] {
        let e = refused(&args);
        assert!(e.contains(message), "{args:?}: {e}");
    }
}
