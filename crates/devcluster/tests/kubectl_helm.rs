//! devcluster driven by the real `kubectl` (1.35) and `helm` (4) binaries.
//! They are fetched by `cargo xtask tools` (run by `cargo xtask test`) into `target/tools/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use strongroom_devcluster::{DevCluster, Options};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

struct Env {
    _cluster: DevCluster,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    tools: PathBuf,
}

fn tools_dir() -> PathBuf {
    let dir = std::env::var_os("STRONGROOM_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools"));
    assert!(
        dir.join("kubectl").exists() && dir.join("helm").exists(),
        "kubectl and helm are missing from {}: run `cargo xtask tools` (or `cargo xtask test`)",
        dir.display()
    );
    dir
}

async fn env() -> Env {
    let cluster = DevCluster::start(Options {
        bookmark_interval: Duration::from_secs(1),
        ..Options::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    Env {
        _cluster: cluster,
        dir,
        kubeconfig,
        tools: tools_dir(),
    }
}

impl Env {
    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.tools.join(tool));
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env("HELM_CACHE_HOME", self.dir.path().join("helm-cache"))
            .env("HELM_CONFIG_HOME", self.dir.path().join("helm-config"))
            .env("HELM_DATA_HOME", self.dir.path().join("helm-data"))
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, tool: &str, args: &[&str]) -> Output {
        tokio::time::timeout(Duration::from_secs(60), self.command(tool, args).output())
            .await
            .unwrap()
            .unwrap()
    }

    async fn ok(&self, tool: &str, args: &[&str]) -> String {
        let out = self.run(tool, args).await;
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    async fn kubectl(&self, args: &[&str]) -> String {
        self.ok("kubectl", args).await
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: demo
stringData:
  password: s3cret
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1
        env:
        - name: VERSION
          value: "1"
"#;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn kubectl_apply_client_side_then_server_side() {
    let env = env().await;
    let file = env.write("app.yaml", APP);
    let out = env.kubectl(&["apply", "-f", path(&file)]).await;
    assert!(out.contains("namespace/demo created"), "{out}");
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let file = env.write("app.yaml", &APP.replace("value: \"1\"", "value: \"2\""));
    let out = env.kubectl(&["apply", "-f", path(&file)]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let out = env.kubectl(&["apply", "-f", path(&file)]).await;
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    let value = env
        .kubectl(&[
            "-n",
            "demo",
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[0].value}",
        ])
        .await;
    assert_eq!(value, "2");
    let password = env
        .kubectl(&[
            "-n",
            "demo",
            "get",
            "secret",
            "db",
            "-o",
            "jsonpath={.data.password}",
        ])
        .await;
    assert_eq!(password, "czNjcmV0");

    // server-side apply: conflicts with the client-side manager until forced
    let file = env.write("app.yaml", &APP.replace("value: \"1\"", "value: \"3\""));
    let out = env
        .run("kubectl", &["apply", "--server-side", "-f", path(&file)])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("conflict with \"kubectl-client-side-apply\"")
    );
    let out = env
        .kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            path(&file),
        ])
        .await;
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let managers = env
        .kubectl(&[
            "-n",
            "demo",
            "get",
            "deploy",
            "web",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ])
        .await;
    assert!(managers.contains("kubectl"), "{managers}");
}

#[tokio::test]
async fn kubectl_patch_wait_and_rollout() {
    let env = env().await;
    let file = env.write("app.yaml", APP);
    env.kubectl(&["apply", "-f", path(&file)]).await;
    env.kubectl(&[
        "-n",
        "demo",
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ])
    .await;
    env.kubectl(&[
        "-n",
        "demo",
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"tier":"front"}}}"#,
    ])
    .await;
    env.kubectl(&[
        "-n",
        "demo",
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    ])
    .await;
    let replicas = env
        .kubectl(&[
            "-n",
            "demo",
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.labels.tier} {.metadata.generation}",
        ])
        .await;
    assert_eq!(replicas, "4 front 3");
    let out = env
        .kubectl(&[
            "-n",
            "demo",
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=20s",
        ])
        .await;
    assert!(out.contains("condition met"), "{out}");
    env.kubectl(&["-n", "demo", "rollout", "restart", "deployment/web"])
        .await;
    let out = env
        .kubectl(&[
            "-n",
            "demo",
            "rollout",
            "status",
            "deployment/web",
            "--timeout=20s",
        ])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let restarted = env
        .kubectl(&[
            "-n",
            "demo",
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.metadata.annotations}",
        ])
        .await;
    assert!(
        restarted.contains("kubectl.kubernetes.io/restartedAt"),
        "{restarted}"
    );
}

#[tokio::test]
async fn kubectl_get_watch_streams_new_objects() {
    let env = env().await;
    let mut child = env
        .command(
            "kubectl",
            &[
                "get",
                "configmaps",
                "-n",
                "default",
                "-w",
                "--output-watch-events",
                "-o",
                "name",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // give the watch a moment to start, then create an object
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.kubectl(&[
        "create",
        "configmap",
        "watched",
        "-n",
        "default",
        "--from-literal=a=b",
    ])
    .await;
    let line = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let l = lines.next_line().await.unwrap().unwrap();
            if l.contains("watched") {
                return l;
            }
        }
    })
    .await
    .unwrap();
    assert!(line.trim().ends_with("configmap/watched"), "{line}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn kubectl_delete_cascade_modes() {
    let env = env().await;
    env.kubectl(&["create", "configmap", "owner", "-n", "default"])
        .await;
    let uid = env
        .kubectl(&[
            "get",
            "configmap",
            "owner",
            "-n",
            "default",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .await;
    let dependent = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: owner\n    uid: {uid}\n"
        )
    };
    let f = env.write("dep.yaml", &dependent("kept"));
    env.kubectl(&["apply", "-f", path(&f)]).await;
    env.kubectl(&[
        "delete",
        "configmap",
        "owner",
        "-n",
        "default",
        "--cascade=orphan",
    ])
    .await;
    let refs = env
        .kubectl(&[
            "get",
            "secret",
            "kept",
            "-n",
            "default",
            "-o",
            "jsonpath={.metadata.ownerReferences}",
        ])
        .await;
    assert!(refs.is_empty(), "{refs}");

    env.kubectl(&["create", "configmap", "owner", "-n", "default"])
        .await;
    let uid2 = env
        .kubectl(&[
            "get",
            "configmap",
            "owner",
            "-n",
            "default",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .await;
    let f = env.write("dep2.yaml", &dependent("gone").replace(&uid, &uid2));
    env.kubectl(&["apply", "-f", path(&f)]).await;
    env.kubectl(&[
        "delete",
        "configmap",
        "owner",
        "-n",
        "default",
        "--cascade=foreground",
    ])
    .await;
    let out = env
        .run("kubectl", &["get", "secret", "gone", "-n", "default"])
        .await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound"),
        "{out:?}"
    );
}

#[tokio::test]
async fn kubectl_and_helm_see_crds() {
    let env = env().await;
    let crd = env.write(
        "crd.yaml",
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.test.strongroom.dev
spec:
  group: test.strongroom.dev
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, shortNames: [gd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#,
    );
    env.kubectl(&["apply", "-f", path(&crd)]).await;
    env.kubectl(&[
        "wait",
        "--for=condition=established",
        "crd/gadgets.test.strongroom.dev",
        "--timeout=20s",
    ])
    .await;
    // aggregated discovery lists the new kind with its short name
    let resources = env
        .kubectl(&[
            "api-resources",
            "--api-group=test.strongroom.dev",
            "--no-headers",
        ])
        .await;
    assert!(
        resources.contains("gadgets") && resources.contains("gd"),
        "{resources}"
    );
    let g = env.write("g.yaml", "apiVersion: test.strongroom.dev/v1\nkind: Gadget\nmetadata:\n  name: g1\n  namespace: default\nspec:\n  size: 3\n");
    env.kubectl(&["apply", "-f", path(&g)]).await;
    let size = env
        .kubectl(&[
            "get",
            "gd",
            "g1",
            "-n",
            "default",
            "-o",
            "jsonpath={.spec.size}",
        ])
        .await;
    assert_eq!(size, "3");
}

#[tokio::test]
async fn helm_install_upgrade_uninstall() {
    let env = env().await;
    let chart = env.dir.path().join("chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "message: hello\n").unwrap();
    std::fs::write(
        chart.join("templates/all.yaml"),
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  message: {{ .Values.message | quote }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
      - name: app
        image: nginx:1
"#,
    )
    .unwrap();
    let c = path(&chart);
    let out = env
        .ok(
            "helm",
            &[
                "install",
                "demo",
                c,
                "-n",
                "default",
                "--wait",
                "--timeout",
                "30s",
            ],
        )
        .await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    env.ok(
        "helm",
        &[
            "upgrade",
            "demo",
            c,
            "-n",
            "default",
            "--set",
            "message=bye",
            "--wait",
            "--timeout",
            "30s",
        ],
    )
    .await;
    assert_eq!(
        env.kubectl(&[
            "get",
            "cm",
            "demo-config",
            "-n",
            "default",
            "-o",
            "jsonpath={.data.message}"
        ])
        .await,
        "bye"
    );
    let list = env.ok("helm", &["list", "-n", "default"]).await;
    assert!(
        list.contains("deployed") && list.contains("tiny-0.1.0"),
        "{list}"
    );
    env.ok("helm", &["uninstall", "demo", "-n", "default", "--wait"])
        .await;
    let out = env
        .run("kubectl", &["get", "cm", "demo-config", "-n", "default"])
        .await;
    assert!(!out.status.success());
}

#[tokio::test]
async fn bad_input_gets_the_real_servers_status() {
    let env = env().await;
    let cases = [
        (
            "not-json.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n",
            "error",
        ),
        (
            "unknown-kind.yaml",
            "apiVersion: v1\nkind: Gizmo\nmetadata:\n  name: g\n",
            "no matches for kind \"Gizmo\" in version \"v1\"",
        ),
        (
            "bad-group.yaml",
            "apiVersion: nope.example/v9\nkind: Thing\nmetadata:\n  name: t\n",
            "no matches for kind \"Thing\"",
        ),
        (
            "bad-name.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  namespace: default\n",
            "metadata.name: Invalid value: \"Bad_Name\"",
        ),
    ];
    for (file, text, expected) in cases {
        let f = env.write(file, text);
        let out = env.run("kubectl", &["apply", "-f", path(&f)]).await;
        assert!(!out.status.success(), "{file} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{file}: {err}");
    }
    // an object over 1.5 MiB is refused with 413, and the store keeps what it had
    env.kubectl(&[
        "create",
        "configmap",
        "big",
        "-n",
        "default",
        "--from-literal=a=b",
    ])
    .await;
    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n  namespace: default\ndata:\n  blob: {}\n",
        "x".repeat(1_600_000)
    );
    let f = env.write("big.yaml", &big);
    let out = env.run("kubectl", &["replace", "-f", path(&f)]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Request entity too large") || err.contains("Too long"),
        "{err}"
    );
    assert_eq!(
        env.kubectl(&[
            "get",
            "cm",
            "big",
            "-n",
            "default",
            "-o",
            "jsonpath={.data.a}"
        ])
        .await,
        "b"
    );
}

#[tokio::test]
async fn kubectl_create_token_and_auth_with_it() {
    let env = env().await;
    env.kubectl(&["create", "serviceaccount", "robot", "-n", "default"])
        .await;
    let token = env
        .kubectl(&[
            "create",
            "token",
            "robot",
            "-n",
            "default",
            "--audience",
            "vault",
            "--duration",
            "10m",
        ])
        .await;
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "{token}");
    // the token authenticates kubectl, and RBAC decides: nothing is granted yet
    let sa = "system:serviceaccount:default:robot";
    let out = env
        .run(
            "kubectl",
            &["get", "secrets", "-n", "default", "--token", token],
        )
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("secrets is forbidden: User \"{sa}\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\"")),
        "{err}"
    );
    let can_i = env
        .run(
            "kubectl",
            &[
                "auth", "can-i", "list", "secrets", "-n", "default", "--as", sa,
            ],
        )
        .await;
    assert_eq!(String::from_utf8_lossy(&can_i.stdout).trim(), "no");
    // kubectl create role/rolebinding send protobuf bodies
    env.kubectl(&[
        "create",
        "role",
        "reader",
        "-n",
        "default",
        "--verb=get,list,watch",
        "--resource=secrets",
    ])
    .await;
    env.kubectl(&[
        "create",
        "rolebinding",
        "reader",
        "-n",
        "default",
        "--role=reader",
        "--serviceaccount=default:robot",
    ])
    .await;
    let can_i = env
        .kubectl(&[
            "auth", "can-i", "list", "secrets", "-n", "default", "--as", sa,
        ])
        .await;
    assert_eq!(can_i.trim(), "yes");
    let out = env
        .kubectl(&["get", "secrets", "-n", "default", "--token", token])
        .await;
    assert!(out.is_empty() || out.contains("NAME"), "{out}");
    let can_i = env
        .run(
            "kubectl",
            &[
                "auth", "can-i", "delete", "secrets", "-n", "default", "--token", token,
            ],
        )
        .await;
    assert_eq!(String::from_utf8_lossy(&can_i.stdout).trim(), "no");
    let list = env
        .kubectl(&["auth", "can-i", "--list", "-n", "default", "--token", token])
        .await;
    assert!(
        list.contains("secrets") && list.contains("[get list watch]"),
        "{list}"
    );
    // server-side printing: the usual columns of built-in kinds
    env.kubectl(&[
        "create",
        "secret",
        "generic",
        "s1",
        "-n",
        "default",
        "--from-literal=a=b",
    ])
    .await;
    let secrets = env.kubectl(&["get", "secrets", "-n", "default"]).await;
    assert!(
        secrets.starts_with("NAME") && secrets.contains("TYPE") && secrets.contains("DATA"),
        "{secrets}"
    );
    let roles = env.kubectl(&["get", "rolebindings", "-n", "default"]).await;
    assert!(roles.contains("Role/reader"), "{roles}");
    let oidc = env
        .kubectl(&["get", "--raw", "/.well-known/openid-configuration"])
        .await;
    assert!(oidc.contains("jwks_uri"), "{oidc}");
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// `kubectl create <kind>` writes through client-go's typed clients, which send protobuf:
/// each object is read back as JSON with the fields kubectl set (and no Go zero values).
#[tokio::test]
async fn kubectl_create_sends_protobuf_workloads() {
    let env = env().await;
    let ns = ["-n", "default"];
    env.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1",
        "--replicas=0",
        "--port=8080",
        ns[0],
        ns[1],
    ])
    .await;
    let d = json(
        &env.kubectl(&["get", "deployment", "web", "-n", "default", "-o", "json"])
            .await,
    );
    assert_eq!(d["spec"]["replicas"], 0, "{d}");
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web", "{d}");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1", "{d}");
    assert_eq!(c["ports"][0]["containerPort"], 8080, "{d}");
    assert!(c["ports"][0].get("hostPort").is_none(), "{d}");
    assert!(d["spec"].get("paused").is_none(), "{d}");

    env.kubectl(&[
        "create",
        "job",
        "once",
        "--image=busybox:1",
        "-n",
        "default",
        "--",
        "echo",
        "hi",
    ])
    .await;
    let j = json(
        &env.kubectl(&["get", "job", "once", "-n", "default", "-o", "json"])
            .await,
    );
    let pod = &j["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["command"],
        serde_json::json!(["echo", "hi"]),
        "{j}"
    );
    assert_eq!(pod["restartPolicy"], "Never", "{j}");

    env.kubectl(&[
        "create",
        "cronjob",
        "nightly",
        "--image=busybox:1",
        "--schedule=0 0 * * *",
        "-n",
        "default",
    ])
    .await;
    let cj = json(
        &env.kubectl(&["get", "cronjob", "nightly", "-n", "default", "-o", "json"])
            .await,
    );
    assert_eq!(cj["spec"]["schedule"], "0 0 * * *", "{cj}");
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1",
        "{cj}"
    );

    env.kubectl(&[
        "create",
        "service",
        "clusterip",
        "api",
        "--tcp=5678:8080",
        "-n",
        "default",
    ])
    .await;
    let s = json(
        &env.kubectl(&["get", "service", "api", "-n", "default", "-o", "json"])
            .await,
    );
    assert_eq!(s["spec"]["ports"][0]["port"], 5678, "{s}");
    assert_eq!(s["spec"]["ports"][0]["targetPort"], 8080, "{s}");
    assert_eq!(s["spec"]["selector"]["app"], "api", "{s}");
    assert_eq!(s["spec"]["type"], "ClusterIP", "{s}");

    env.kubectl(&[
        "create",
        "clusterrole",
        "pod-reader",
        "--verb=get,list",
        "--resource=pods",
    ])
    .await;
    env.kubectl(&[
        "create",
        "clusterrolebinding",
        "pod-reader",
        "--clusterrole=pod-reader",
        "--user=alice",
    ])
    .await;
    let can_i = env
        .kubectl(&["auth", "can-i", "list", "pods", "-A", "--as", "alice"])
        .await;
    assert_eq!(can_i.trim(), "yes");
    let listed = env
        .kubectl(&[
            "get",
            "deploy,job,cronjob,svc",
            "-n",
            "default",
            "-o",
            "name",
        ])
        .await;
    for name in [
        "deployment.apps/web",
        "job.batch/once",
        "cronjob.batch/nightly",
        "service/api",
    ] {
        assert!(listed.contains(name), "{listed}");
    }
}
